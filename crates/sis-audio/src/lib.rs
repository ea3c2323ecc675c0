//! Turns audio bytes into float samples along one decode path, whichever
//! API receives them: [`decode`] for audio held in memory (short-audio,
//! RASR frames; next flash recognition and TTS checks) and [`stream::open`]
//! for files read chunk by chunk (recorded-file jobs of up to 5 hours, in
//! memory that does not grow with the file).
//!
//! The path: an input (a file or a slice, `input`) → its layout (raw as
//! declared, or the container recognised by its first bytes, `container`) →
//! one decoder per container (`pcm` for raw and WAV, `amr`, `compressed` for
//! everything symphonia or libopus decodes, after the structure checks of
//! `mp4`, `ogg` and `flac`) → the chunker that enforces the
//! limits and sanitizes samples (`stream::Stream`). [`decode`] adds
//! short-audio's rules on top (mono, 8 or 16 kHz, the declared container);
//! it is not a second parser.
//!
//! The way out, for speech synthesis: [`effects`] (speed, pitch and volume
//! as the SIS curves define them), [`encode_wav`], [`encode_pcm16`] and
//! [`encode_mp3`] (LAME, linked as the system's shared library).
//!
//! Architecture invariant: knows audio, not SIS JSON and not engines. Every
//! decoder is bounded: it stops at `max_ms` of audio so a small compressed
//! body cannot expand into unbounded work or memory; every decoder call runs
//! inside [`contain`], so a panic costs one input, not the process.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod amr;
mod compressed;
mod container;
pub mod effects;
mod encode;
mod flac;
pub mod g711;
mod input;
mod mp4;
mod ogg;
mod pcm;
mod resample;
pub mod stream;
mod vorbis;

pub use encode::{encode_mp3, encode_pcm16, encode_wav, to_i16, EncodeError};
pub use resample::{resample, StreamResampler};
use sis_core::{AudioFormat, Pcm, RawEncoding};

use stream::{FileFormat, Layout, PcmStream, StreamLimits};

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

/// The sample rates [`decode`] accepts (the rates of the SIS models).
const DECODE_RATES: [u32; 2] = [8000, 16000];

/// Decodes `bytes` declared as `format` into mono samples at 8 or 16 kHz.
///
/// The bytes go through the same layout detection and decoders as
/// [`stream::open`]; on top of them come short-audio's rules: a container
/// `format` (`wav`, `mp3`, `aac`, `amr`, `amrwb`) must match what the content
/// is ([`AudioError::Corrupt`] otherwise), `auto` takes any container the
/// streaming API takes, the audio must be mono ([`AudioError::NotMono`]), no
/// longer than `limits.max_ms` ([`AudioError::TooLong`]), hold a sample
/// ([`AudioError::Empty`]) and, once read without error, be at 8 or 16 kHz
/// ([`AudioError::BadSampleRate`]; whether the rate fits the model is the
/// caller's check). The rate is checked last so that the answer never depends
/// on how much audio a stream reads before it opens.
/// A panic inside a decoder is contained and reported as corrupt data, so one
/// bad input costs only its own request. Samples that are not finite become
/// silence and the rest are clamped to [-1, 1].
pub fn decode(format: AudioFormat, bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    let mut pcm = contain(format.as_str(), || decode_unguarded(format, bytes, limits))?;
    sanitize(&mut pcm.samples);
    Ok(pcm)
}

fn decode_unguarded(
    format: AudioFormat,
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<Pcm, AudioError> {
    if let Some((encoding, rate)) = format.raw() {
        let pcm = decode_raw(encoding, rate, bytes, limits)?;
        if pcm.samples.is_empty() {
            return Err(AudioError::Empty);
        }
        return Ok(pcm);
    }
    let layout = match stream::layout_of_bytes(bytes, FileFormat::Auto) {
        Ok(layout) => layout,
        Err(AudioError::Empty) => return Err(AudioError::Empty),
        Err(e) => {
            let found = match &e {
                AudioError::Corrupt(m) | AudioError::Unsupported(m) => m.clone(),
                other => other.to_string(),
            };
            return Err(mismatch(format, &found).unwrap_or(e));
        }
    };
    if let Layout::Container { container, .. } = layout {
        if format != AudioFormat::Auto && container.audio_format() != Some(format) {
            let found = format!("found {}", container.name());
            if let Some(e) = mismatch(format, &found) {
                return Err(e);
            }
        }
    }
    let short_audio = StreamLimits {
        max_ms: limits.max_ms,
        max_channels: 1,
        ..StreamLimits::default()
    };
    let stream = stream::open_bytes(bytes, layout, short_audio).map_err(mono)?;
    let rate = stream.sample_rate();
    // The rate is checked once the audio is read, so an error in the content
    // comes first whatever size the stream's first chunk is.
    let mut channels = stream.read_to_end().map_err(mono)?;
    if !DECODE_RATES.contains(&rate) {
        return Err(AudioError::BadSampleRate(rate));
    }
    Ok(Pcm {
        samples: channels.pop().unwrap_or_default(),
        sample_rate: rate,
    })
}

/// The error for content that is not the container `declared` promises
/// (`found` says what it is instead); `None` when `declared` promises
/// nothing (`auto`).
fn mismatch(declared: AudioFormat, found: &str) -> Option<AudioError> {
    let promise = container::promise(declared)?;
    Some(AudioError::Corrupt(format!(
        "{declared}: {promise} expected, {found}"
    )))
}

/// Short-audio takes one channel: more is "not mono", whatever the count.
fn mono(e: AudioError) -> AudioError {
    match e {
        AudioError::TooManyChannels { found, .. } => AudioError::NotMono(found),
        other => other,
    }
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

/// A sample as it leaves a decoder: a non-finite value (a float decoder on
/// garbage) becomes silence.
pub(crate) fn finite(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Replaces NaN and infinite samples with silence and clamps the rest to
/// [-1, 1], so nothing past this crate sees a value no microphone makes.
pub fn sanitize(samples: &mut [f32]) {
    for x in samples {
        *x = finite(*x).clamp(-1.0, 1.0);
    }
}

/// Headerless PCM / A-law / mu-law held in memory: the raw decoder of the
/// one path (the same layout rules as [`stream::FileFormat::Raw`]),
/// converted in one pass because RASR calls it for every frame. Fails with
/// [`AudioError::TooLong`] past `limits.max_ms`; empty input gives no
/// samples (not an error: [`decode`] refuses it).
pub fn decode_raw(
    enc: RawEncoding,
    rate: u32,
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<Pcm, AudioError> {
    Ok(Pcm {
        samples: pcm::decode_raw(enc, rate, bytes, limits.max_ms)?,
        sample_rate: rate,
    })
}

/// The SIS `audio_format` of the container `bytes` start with (after any
/// ID3v2 tags), by the same recognition as `auto` uses; `None` when the
/// bytes are no container, or one SIS has no name for (FLAC, Ogg: [`decode`]
/// takes those as `auto`).
pub fn detect(bytes: &[u8]) -> Option<AudioFormat> {
    match stream::layout_of_bytes(bytes, FileFormat::Auto) {
        Ok(Layout::Container { container, .. }) => container.audio_format(),
        _ => None,
    }
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
        assert_eq!(detect(b"\0\0\0\x20ftypM4A "), Some(AudioFormat::Aac));
        assert_eq!(detect(b"fLaC\0\0\0\x22"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn declared_container_must_match() {
        // the content is Ogg, the request says wav
        let e = decode(AudioFormat::Wav, b"OggS\0\x02\0\0\0\0\0\0\0\0", L).unwrap_err();
        assert!(
            matches!(&e, AudioError::Corrupt(m) if m.contains("RIFF") && m.contains("ogg")),
            "{e}"
        );
        // not a container at all
        let e = decode(AudioFormat::Mp3, b"\x00garbage\x00garbage", L).unwrap_err();
        assert!(
            matches!(&e, AudioError::Corrupt(m) if m.starts_with("mp3: ")),
            "{e}"
        );
        // AMR-WB declared as AMR-NB
        let e = decode(AudioFormat::Amr, b"#!AMR-WB\n\x7c", L).unwrap_err();
        assert!(
            matches!(&e, AudioError::Corrupt(m) if m.contains("amr-wb")),
            "{e}"
        );
        // auto takes either; empty input is empty whatever was declared
        assert_eq!(
            decode(AudioFormat::Auto, b"#!AMR-WB\n\x7c", L)
                .unwrap()
                .sample_rate,
            16000
        );
        assert_eq!(decode(AudioFormat::Wav, b"", L), Err(AudioError::Empty));
    }
}
