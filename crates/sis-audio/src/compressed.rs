//! MP3 and AAC (ADTS or MP4/M4A) through symphonia.

use std::io::Cursor;

use sis_core::Pcm;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::{check_len, AudioError, DecodeLimits};

fn corrupt(kind: &str, e: impl std::fmt::Display) -> AudioError {
    AudioError::Corrupt(format!("{kind}: {e}"))
}

pub fn decode(bytes: &[u8], kind: &str, limits: DecodeLimits) -> Result<Pcm, AudioError> {
    let mut hint = Hint::new();
    // For AAC the container may be ADTS or MP4; let the probe decide between them.
    if kind == "mp3" {
        hint.with_extension("mp3");
    } else if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
        hint.with_extension("m4a");
        crate::mp4::check(&mut Cursor::new(bytes), 0, bytes.len() as u64)?;
    } else {
        hint.with_extension("aac");
    }
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| corrupt(kind, e))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| corrupt(kind, "no audio track"))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(format!("{kind}: {e}")))?;

    let mut rate = params.sample_rate.unwrap_or(0);
    let mut channels = params.channels.map(|c| c.count() as u32).unwrap_or(0);
    let mut samples: Vec<f32> = Vec::new();
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut errors = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) if samples.is_empty() => return Err(corrupt(kind, e)),
            Err(_) => break, // trailing garbage after good audio
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(e)) => {
                errors += 1;
                if errors > 8 && samples.is_empty() {
                    return Err(corrupt(kind, e));
                }
                continue;
            }
            Err(e) => return Err(corrupt(kind, e)),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        channels = spec.channels.count() as u32;
        if channels != 1 {
            return Err(AudioError::NotMono(channels));
        }
        let b = buf.get_or_insert_with(|| SampleBuffer::new(decoded.capacity() as u64, spec));
        if b.capacity() < decoded.capacity() {
            *b = SampleBuffer::new(decoded.capacity() as u64, spec);
        }
        b.copy_interleaved_ref(decoded);
        samples.extend_from_slice(b.samples());
        check_len(samples.len(), rate, limits)?;
    }
    if channels > 1 {
        return Err(AudioError::NotMono(channels));
    }
    if samples.is_empty() {
        return Err(corrupt(
            kind,
            if errors > 0 {
                "no decodable frames"
            } else {
                "no audio frames found"
            },
        ));
    }
    if rate != 8000 && rate != 16000 {
        return Err(AudioError::BadSampleRate(rate));
    }
    Ok(Pcm {
        samples,
        sample_rate: rate,
    })
}
