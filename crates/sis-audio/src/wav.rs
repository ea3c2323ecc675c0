//! RIFF/WAVE: the header is parsed and checked against the file, never trusted.
//!
//! Accepted: mono, 8 or 16 kHz, 16-bit PCM (tag 1), A-law (6) or mu-law (7),
//! also inside WAVE_FORMAT_EXTENSIBLE. A data size of 0 or 0xFFFFFFFF (written
//! by streaming encoders that cannot seek back) means "to the end of the file".

use sis_core::{Pcm, RawEncoding};

use crate::{decode_raw, AudioError, DecodeLimits};

struct Fmt {
    tag: u16,
    channels: u16,
    rate: u32,
    byte_rate: u32,
    block_align: u16,
    bits: u16,
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32le(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn corrupt(msg: impl Into<String>) -> AudioError {
    AudioError::Corrupt(format!("WAV: {}", msg.into()))
}

fn parse_fmt(c: &[u8]) -> Result<Fmt, AudioError> {
    if c.len() < 16 {
        return Err(corrupt("fmt chunk shorter than 16 bytes"));
    }
    let get16 = |at| u16le(c, at).ok_or_else(|| corrupt("fmt chunk truncated"));
    let get32 = |at| u32le(c, at).ok_or_else(|| corrupt("fmt chunk truncated"));
    let mut tag = get16(0)?;
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
        if c.len() < 40 {
            return Err(corrupt("extensible fmt chunk shorter than 40 bytes"));
        }
        tag = get16(24)?;
    }
    Ok(Fmt {
        tag,
        channels: get16(2)?,
        rate: get32(4)?,
        byte_rate: get32(8)?,
        block_align: get16(12)?,
        bits: get16(14)?,
    })
}

pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(corrupt("missing RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut fmt: Option<Fmt> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32le(bytes, at + 4).ok_or_else(|| corrupt("chunk header truncated"))?;
        let body_start = at + 8;
        let remaining = bytes.len() - body_start;
        if id == b"data" {
            let fmt = fmt.ok_or_else(|| corrupt("data chunk before fmt chunk"))?;
            let declared = size as usize;
            let len = if size == 0 || size == u32::MAX {
                remaining
            } else if declared > remaining {
                return Err(corrupt(format!(
                    "header declares {declared} bytes of audio but only {remaining} are present"
                )));
            } else {
                declared
            };
            return decode_data(&fmt, &bytes[body_start..body_start + len], limits);
        }
        if size as usize > remaining {
            return Err(corrupt(format!(
                "chunk '{}' declares {size} bytes, only {remaining} present",
                String::from_utf8_lossy(id)
            )));
        }
        if id == b"fmt " {
            fmt = Some(parse_fmt(&bytes[body_start..body_start + size as usize])?);
        }
        // Chunks are padded to even sizes.
        at = body_start + size as usize + (size as usize & 1);
    }
    Err(corrupt("no data chunk"))
}

fn decode_data(f: &Fmt, data: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    let enc = match (f.tag, f.bits) {
        (1, 16) => RawEncoding::Pcm16Le,
        (6, 8) => RawEncoding::ALaw,
        (7, 8) => RawEncoding::MuLaw,
        (1, b) => {
            return Err(AudioError::Unsupported(format!(
                "WAV PCM with {b} bits per sample (16 required)"
            )))
        }
        (t, b) => {
            return Err(AudioError::Unsupported(format!(
                "WAV format tag {t} with {b} bits"
            )))
        }
    };
    if f.channels != 1 {
        return Err(AudioError::NotMono(f.channels as u32));
    }
    if f.rate != 8000 && f.rate != 16000 {
        return Err(AudioError::BadSampleRate(f.rate));
    }
    let width = (f.bits / 8) as u32;
    if f.block_align as u32 != width || f.byte_rate != f.rate * width {
        return Err(corrupt(format!(
            "inconsistent header: block_align {} and byte_rate {} do not fit {} Hz, {} bits, mono",
            f.block_align, f.byte_rate, f.rate, f.bits
        )));
    }
    // An odd trailing byte of 16-bit data is padding, not a sample.
    let usable = data.len() - data.len() % width as usize;
    decode_raw(enc, f.rate, &data[..usable], limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: DecodeLimits = DecodeLimits { max_ms: 60_000 };

    fn wav(tag: u16, ch: u16, rate: u32, bits: u16, data: &[u8], declared: Option<u32>) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        v.extend(16u32.to_le_bytes());
        v.extend(tag.to_le_bytes());
        v.extend(ch.to_le_bytes());
        v.extend(rate.to_le_bytes());
        let align = ch * bits / 8;
        v.extend((rate * align as u32).to_le_bytes());
        v.extend(align.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(b"LIST");
        v.extend(4u32.to_le_bytes());
        v.extend(b"INFO");
        v.extend(b"data");
        v.extend(declared.unwrap_or(data.len() as u32).to_le_bytes());
        v.extend(data);
        v
    }

    #[test]
    fn accepted() {
        let p = decode(&wav(1, 1, 16000, 16, &[0, 0x40, 0, 0xC0], None), L).unwrap();
        assert_eq!((p.sample_rate, p.samples.clone()), (16000, vec![0.5, -0.5]));
        let p = decode(&wav(7, 1, 8000, 8, &[0xFF, 0x80], None), L).unwrap();
        assert_eq!(p.samples.len(), 2);
        let p = decode(&wav(6, 1, 8000, 8, &[0xD5; 10], Some(u32::MAX)), L).unwrap();
        assert_eq!(p.samples.len(), 10);
    }

    #[test]
    fn lies_and_unsupported() {
        assert!(matches!(
            decode(&wav(1, 1, 16000, 16, &[0; 10], Some(100000)), L),
            Err(AudioError::Corrupt(_))
        ));
        assert_eq!(
            decode(&wav(1, 2, 16000, 16, &[0; 8], None), L),
            Err(AudioError::NotMono(2))
        );
        assert_eq!(
            decode(&wav(1, 1, 44100, 16, &[0; 8], None), L),
            Err(AudioError::BadSampleRate(44100))
        );
        assert!(matches!(
            decode(&wav(1, 1, 16000, 24, &[0; 9], None), L),
            Err(AudioError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&wav(85, 1, 16000, 0, &[0; 9], None), L),
            Err(AudioError::Unsupported(_))
        ));
        let mut bad = wav(1, 1, 16000, 16, &[0; 8], None);
        bad[28..32].copy_from_slice(&1234u32.to_le_bytes()); // byte_rate lies
        assert!(matches!(decode(&bad, L), Err(AudioError::Corrupt(_))));
        assert!(matches!(
            decode(b"RIFF\0\0\0\0WAVE", L),
            Err(AudioError::Corrupt(_))
        ));
        assert!(matches!(
            decode(b"nonsense", L),
            Err(AudioError::Corrupt(_))
        ));
    }
}
