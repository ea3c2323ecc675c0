//! Turns the bytes of any SIS `audio_format` into mono float samples
//! ([`decode`], for short audio held in memory), and audio files of any
//! common container into a stream of float chunks ([`stream::open`], for
//! recorded-file jobs of up to 5 hours, in memory that does not grow with the
//! file).
//!
//! Architecture invariant: knows audio, not SIS JSON and not engines. Every
//! decoder is bounded: it stops at `max_ms` of audio so a small compressed
//! body cannot expand into unbounded work or memory.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod amr;
mod compressed;
pub mod g711;
mod mp4;
mod resample;
pub mod stream;
mod vorbis;
mod wav;

pub use resample::{resample, StreamResampler};
use sis_core::{AudioFormat, Pcm, RawEncoding};

/// Why audio could not be decoded. Everything but `Io` describes the input.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AudioError {
    #[error("audio contains no samples")]
    Empty,
    #[error("audio data invalid: {0}")]
    Corrupt(String),
    #[error("audio encoding not supported: {0}")]
    Unsupported(String),
    #[error("audio must be mono, found {0} channels")]
    NotMono(u32),
    #[error("audio is {0} Hz; only 8000 and 16000 Hz are accepted")]
    BadSampleRate(u32),
    #[error("audio is longer than {limit_ms} ms")]
    TooLong { limit_ms: u64 },
    #[error("audio has {found} channels; at most {max} are accepted")]
    TooManyChannels { found: u32, max: u32 },
    /// The file could not be opened or read (not a fault of its content).
    #[error("cannot read the audio file: {0}")]
    Io(String),
}

/// Limits applied while decoding.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Stop and fail once more audio than this has been decoded.
    pub max_ms: u64,
}

pub(crate) fn check_len(samples: usize, rate: u32, limits: DecodeLimits) -> Result<(), AudioError> {
    if rate > 0 && samples as u64 * 1000 / rate as u64 > limits.max_ms {
        return Err(AudioError::TooLong {
            limit_ms: limits.max_ms,
        });
    }
    Ok(())
}

/// Decodes `bytes` declared as `format`. A panic inside a decoder (a
/// third-party decoder meeting malformed data) is contained and reported as
/// corrupt data, so one bad input costs only its own request. Samples that
/// are not finite (a float decoder on garbage) become silence.
pub fn decode(format: AudioFormat, bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    let mut pcm = contain(format.as_str(), || decode_unguarded(format, bytes, limits))?;
    sanitize(&mut pcm.samples);
    Ok(pcm)
}

/// Runs a decoder, turning a panic into [`AudioError::Corrupt`].
pub(crate) fn contain<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, AudioError>,
) -> Result<T, AudioError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(AudioError::Corrupt(format!(
            "{what}: the decoder failed on malformed data"
        )))
    })
}

/// Replaces NaN and infinite samples with silence and clamps the rest to
/// [-1, 1], so nothing past this crate sees a value no microphone makes.
pub fn sanitize(samples: &mut [f32]) {
    for x in samples {
        *x = if x.is_finite() {
            x.clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
}

fn decode_unguarded(
    format: AudioFormat,
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<Pcm, AudioError> {
    let format = if format == AudioFormat::Auto {
        detect(bytes)
            .ok_or_else(|| AudioError::Unsupported("cannot detect the audio container".into()))?
    } else {
        format
    };
    let pcm = match format {
        AudioFormat::Wav => wav::decode(bytes, limits)?,
        AudioFormat::Amr => amr::decode_nb(bytes, limits)?,
        AudioFormat::AmrWb => amr::decode_wb(bytes, limits)?,
        AudioFormat::Mp3 => compressed::decode(bytes, "mp3", limits)?,
        AudioFormat::Aac => compressed::decode(bytes, "aac", limits)?,
        AudioFormat::Auto => return Err(AudioError::Unsupported("auto".into())),
        raw => {
            let (enc, rate) = raw
                .raw()
                .ok_or_else(|| AudioError::Unsupported(raw.as_str().into()))?;
            decode_raw(enc, rate, bytes, limits)?
        }
    };
    if pcm.samples.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(pcm)
}

/// Headerless PCM / A-law / mu-law.
pub fn decode_raw(
    enc: RawEncoding,
    rate: u32,
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<Pcm, AudioError> {
    let samples = match enc {
        RawEncoding::Pcm16Le => {
            if !bytes.len().is_multiple_of(2) {
                return Err(AudioError::Corrupt(format!(
                    "16-bit PCM needs an even number of bytes, got {}",
                    bytes.len()
                )));
            }
            check_len(bytes.len() / 2, rate, limits)?;
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                .collect()
        }
        RawEncoding::MuLaw => {
            check_len(bytes.len(), rate, limits)?;
            bytes.iter().map(|&b| g711::ulaw_to_f32(b)).collect()
        }
        RawEncoding::ALaw => {
            check_len(bytes.len(), rate, limits)?;
            bytes.iter().map(|&b| g711::alaw_to_f32(b)).collect()
        }
    };
    Ok(Pcm {
        samples,
        sample_rate: rate,
    })
}

/// Container detection for `audio_format=auto`.
pub fn detect(bytes: &[u8]) -> Option<AudioFormat> {
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return Some(AudioFormat::Wav);
    }
    if bytes.starts_with(b"#!AMR-WB\n") {
        return Some(AudioFormat::AmrWb);
    }
    if bytes.starts_with(b"#!AMR\n") {
        return Some(AudioFormat::Amr);
    }
    if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
        return Some(AudioFormat::Aac);
    }
    if bytes.starts_with(b"ID3") {
        return Some(AudioFormat::Mp3);
    }
    if bytes.len() >= 2 && bytes[0] == 0xFF {
        // ADTS: 12-bit sync, layer bits 00. MPEG audio: 11-bit sync, layer != 00.
        if bytes[1] & 0xF6 == 0xF0 {
            return Some(AudioFormat::Aac);
        }
        if bytes[1] & 0xE0 == 0xE0 && bytes[1] & 0x06 != 0 {
            return Some(AudioFormat::Mp3);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: DecodeLimits = DecodeLimits { max_ms: 60_000 };

    #[test]
    fn raw_pcm() {
        let p = decode(AudioFormat::Pcm8k16bit, &[0, 0, 0, 0x40, 0, 0xC0], L).unwrap();
        assert_eq!(p.sample_rate, 8000);
        assert_eq!(p.samples, vec![0.0, 0.5, -0.5]);
        assert!(matches!(
            decode(AudioFormat::Pcm16k16bit, &[0, 0, 1], L),
            Err(AudioError::Corrupt(_))
        ));
    }

    #[test]
    fn too_long() {
        let bytes = vec![0u8; 8000 * 61];
        assert_eq!(
            decode(AudioFormat::Ulaw8k8bit, &bytes, L),
            Err(AudioError::TooLong { limit_ms: 60_000 })
        );
    }

    #[test]
    fn detection() {
        assert_eq!(detect(b"#!AMR\n\x3c"), Some(AudioFormat::Amr));
        assert_eq!(detect(b"#!AMR-WB\n"), Some(AudioFormat::AmrWb));
        assert_eq!(detect(b"RIFF\0\0\0\0WAVEfmt "), Some(AudioFormat::Wav));
        assert_eq!(detect(&[0xFF, 0xF1, 0x50]), Some(AudioFormat::Aac));
        assert_eq!(detect(&[0xFF, 0xFB, 0x90]), Some(AudioFormat::Mp3));
        assert_eq!(detect(b"hello"), None);
    }
}
