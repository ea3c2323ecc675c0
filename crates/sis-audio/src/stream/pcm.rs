//! Uncompressed samples: headerless SIS raw formats, and RIFF/WAVE, whose
//! header is parsed here and checked against the file, never trusted.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use sis_core::RawEncoding;

use super::{io_error, Source, SourceInfo};
use crate::{g711, AudioError};

/// Frames read per block.
const BLOCK_FRAMES: usize = 4096;
/// The largest `fmt ` chunk read (the standard ones are 16, 18 or 40 bytes).
const MAX_FMT_LEN: u32 = 1024;
/// The most chunks walked before `data` (real files have a handful).
const MAX_CHUNKS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SampleCodec {
    U8,
    S16,
    S24,
    S32,
    F32,
    F64,
    ALaw,
    MuLaw,
}

impl SampleCodec {
    fn width(self) -> usize {
        match self {
            SampleCodec::U8 | SampleCodec::ALaw | SampleCodec::MuLaw => 1,
            SampleCodec::S16 => 2,
            SampleCodec::S24 => 3,
            SampleCodec::S32 | SampleCodec::F32 => 4,
            SampleCodec::F64 => 8,
        }
    }

    fn wav_name(self) -> &'static str {
        match self {
            SampleCodec::U8 => "wav/pcm_u8",
            SampleCodec::S16 => "wav/pcm_s16le",
            SampleCodec::S24 => "wav/pcm_s24le",
            SampleCodec::S32 => "wav/pcm_s32le",
            SampleCodec::F32 => "wav/pcm_f32le",
            SampleCodec::F64 => "wav/pcm_f64le",
            SampleCodec::ALaw => "wav/pcm_alaw",
            SampleCodec::MuLaw => "wav/pcm_mulaw",
        }
    }
}

fn finite(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Decodes interleaved little-endian samples into planar floats.
fn deinterleave(codec: SampleCodec, bytes: &[u8], out: &mut [Vec<f32>]) {
    fn run(bytes: &[u8], width: usize, out: &mut [Vec<f32>], f: impl Fn(&[u8]) -> f32) {
        let channels = out.len();
        for frame in bytes.chunks_exact(width * channels) {
            for (c, s) in frame.chunks_exact(width).enumerate() {
                out[c].push(f(s));
            }
        }
    }
    let w = codec.width();
    match codec {
        SampleCodec::U8 => run(bytes, w, out, |s| (s[0] as f32 - 128.0) / 128.0),
        SampleCodec::S16 => run(bytes, w, out, |s| {
            i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0
        }),
        SampleCodec::S24 => run(bytes, w, out, |s| {
            // Sign-extend through the top byte of an i32.
            (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f32 / 8_388_608.0
        }),
        SampleCodec::S32 => run(bytes, w, out, |s| {
            i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 2_147_483_648.0
        }),
        SampleCodec::F32 => run(bytes, w, out, |s| {
            finite(f32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        }),
        SampleCodec::F64 => run(bytes, w, out, |s| {
            finite(f64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]) as f32)
        }),
        SampleCodec::ALaw => run(bytes, w, out, |s| g711::alaw_to_f32(s[0])),
        SampleCodec::MuLaw => run(bytes, w, out, |s| g711::ulaw_to_f32(s[0])),
    }
}

/// Interleaved samples from a known byte range of the file.
struct PcmSource {
    info: SourceInfo,
    reader: BufReader<File>,
    codec: SampleCodec,
    /// Bytes of whole frames left to read.
    remaining: u64,
    buf: Vec<u8>,
}

impl PcmSource {
    fn open(
        file: File,
        offset: u64,
        codec: SampleCodec,
        channels: u32,
        rate: u32,
        frames: u64,
        name: &'static str,
    ) -> Result<Box<dyn Source>, AudioError> {
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        reader.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        let frame_bytes = codec.width() * channels as usize;
        Ok(Box::new(PcmSource {
            info: SourceInfo {
                rate,
                channels,
                codec: name,
                total_frames: Some(frames),
                exact_length: true,
            },
            reader,
            codec,
            remaining: frames * frame_bytes as u64,
            buf: vec![0; BLOCK_FRAMES * frame_bytes],
        }))
    }
}

impl Source for PcmSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_block(&mut self, out: &mut [Vec<f32>]) -> Result<bool, AudioError> {
        let n = (self.buf.len() as u64).min(self.remaining) as usize;
        if n == 0 {
            return Ok(false);
        }
        self.reader
            .read_exact(&mut self.buf[..n])
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => AudioError::Corrupt(format!(
                    "{}: the file ended early (was it truncated while being read?)",
                    self.info.codec
                )),
                _ => io_error(e),
            })?;
        self.remaining -= n as u64;
        deinterleave(self.codec, &self.buf[..n], out);
        Ok(true)
    }
}

/// A headerless SIS raw file: every byte is audio.
pub(crate) fn open_raw(
    file: File,
    len: u64,
    encoding: RawEncoding,
    rate: u32,
) -> Result<Box<dyn Source>, AudioError> {
    let (codec, name) = match encoding {
        RawEncoding::Pcm16Le => (SampleCodec::S16, "raw/pcm_s16le"),
        RawEncoding::MuLaw => (SampleCodec::MuLaw, "raw/pcm_mulaw"),
        RawEncoding::ALaw => (SampleCodec::ALaw, "raw/pcm_alaw"),
    };
    if rate == 0 {
        return Err(AudioError::BadSampleRate(0));
    }
    let width = codec.width() as u64;
    if !len.is_multiple_of(width) {
        return Err(AudioError::Corrupt(format!(
            "16-bit PCM needs an even number of bytes, got {len}"
        )));
    }
    PcmSource::open(file, 0, codec, 1, rate, len / width, name)
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn corrupt(msg: impl Into<String>) -> AudioError {
    AudioError::Corrupt(format!("WAV: {}", msg.into()))
}

/// The tail shared by every `WAVE_FORMAT_EXTENSIBLE` sub-format GUID
/// (`xxxxxxxx-0000-0010-8000-00aa00389b71`).
const KSDATAFORMAT_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

struct Fmt {
    codec: SampleCodec,
    channels: u32,
    rate: u32,
}

fn parse_fmt(c: &[u8]) -> Result<Fmt, AudioError> {
    if c.len() < 16 {
        return Err(corrupt("fmt chunk shorter than 16 bytes"));
    }
    let mut tag = u16le(c, 0);
    let channels = u16le(c, 2) as u32;
    let rate = u32le(c, 4);
    let byte_rate = u32le(c, 8);
    let block_align = u16le(c, 12) as u32;
    let bits = u16le(c, 14);
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag starts the sub-format GUID.
        if c.len() < 40 {
            return Err(corrupt("extensible fmt chunk shorter than 40 bytes"));
        }
        if c[26..40] != KSDATAFORMAT_TAIL {
            return Err(AudioError::Unsupported(
                "WAV: extensible sub-format is not a standard audio format".into(),
            ));
        }
        tag = u16le(c, 24);
    }
    let codec = match (tag, bits) {
        (1, 8) => SampleCodec::U8,
        (1, 16) => SampleCodec::S16,
        (1, 24) => SampleCodec::S24,
        (1, 32) => SampleCodec::S32,
        (3, 32) => SampleCodec::F32,
        (3, 64) => SampleCodec::F64,
        (6, 8) => SampleCodec::ALaw,
        (7, 8) => SampleCodec::MuLaw,
        (1 | 3 | 6 | 7, b) => {
            return Err(AudioError::Unsupported(format!(
                "WAV format tag {tag} with {b} bits per sample"
            )))
        }
        (t, _) => {
            return Err(AudioError::Unsupported(format!(
                "WAV format tag 0x{t:04x} (only PCM, float, A-law and mu-law)"
            )))
        }
    };
    if channels == 0 {
        return Err(corrupt("0 channels"));
    }
    if rate == 0 || rate > 768_000 {
        return Err(corrupt(format!("sample rate {rate} Hz")));
    }
    let frame = codec.width() as u32 * channels;
    if block_align != frame || byte_rate as u64 != rate as u64 * frame as u64 {
        return Err(corrupt(format!(
            "inconsistent header: block_align {block_align} and byte_rate {byte_rate} \
             do not fit {rate} Hz, {bits} bits, {channels} channels"
        )));
    }
    Ok(Fmt {
        codec,
        channels,
        rate,
    })
}

/// Reads exactly `buf.len()` bytes; the file ending first is a corrupt header.
fn read_header(file: &mut File, buf: &mut [u8], what: &str) -> Result<(), AudioError> {
    file.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt(format!("{what} truncated")),
        _ => io_error(e),
    })
}

/// Walks the RIFF chunks up to `data` (seeking over the others), then
/// streams the data chunk. A data size of 0 or 0xFFFFFFFF (written by
/// encoders that cannot seek back) means "to the end of the file".
pub(crate) fn open_wav(mut file: File, len: u64) -> Result<Box<dyn Source>, AudioError> {
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let mut riff = [0u8; 12];
    read_header(&mut file, &mut riff, "RIFF header")?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(corrupt("missing RIFF/WAVE header"));
    }
    let mut at = 12u64;
    let mut fmt: Option<Fmt> = None;
    for _ in 0..MAX_CHUNKS {
        if at + 8 > len {
            return Err(corrupt("no data chunk"));
        }
        let mut head = [0u8; 8];
        read_header(&mut file, &mut head, "chunk header")?;
        let id = [head[0], head[1], head[2], head[3]];
        let size = u32le(&head, 4);
        let body = at + 8;
        let remaining = len - body;
        if &id == b"data" {
            let fmt = fmt.ok_or_else(|| corrupt("data chunk before fmt chunk"))?;
            let bytes = if size == 0 || size == u32::MAX {
                remaining
            } else if size as u64 > remaining {
                return Err(corrupt(format!(
                    "header declares {size} bytes of audio but only {remaining} are present"
                )));
            } else {
                size as u64
            };
            // A partial trailing frame is padding, not audio.
            let frames = bytes / (fmt.codec.width() as u64 * fmt.channels as u64);
            return PcmSource::open(
                file,
                body,
                fmt.codec,
                fmt.channels,
                fmt.rate,
                frames,
                fmt.codec.wav_name(),
            );
        }
        if size as u64 > remaining {
            return Err(corrupt(format!(
                "chunk '{}' declares {size} bytes, only {remaining} present",
                String::from_utf8_lossy(&id)
            )));
        }
        if &id == b"fmt " {
            if size > MAX_FMT_LEN {
                return Err(corrupt(format!("fmt chunk of {size} bytes")));
            }
            let mut c = vec![0u8; size as usize];
            read_header(&mut file, &mut c, "fmt chunk")?;
            fmt = Some(parse_fmt(&c)?);
        }
        // Chunks are padded to even sizes.
        at = body + size as u64 + (size as u64 & 1);
        file.seek(SeekFrom::Start(at)).map_err(io_error)?;
    }
    Err(corrupt(format!(
        "no data chunk in the first {MAX_CHUNKS} chunks"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_codecs() {
        let mut out = vec![Vec::new(), Vec::new()];
        // Two stereo frames of 24-bit: (max, min), (0, -1 LSB).
        let bytes = [
            0xFF, 0xFF, 0x7F, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF,
        ];
        deinterleave(SampleCodec::S24, &bytes, &mut out);
        assert_eq!(out[0], vec![8_388_607.0 / 8_388_608.0, 0.0]);
        assert_eq!(out[1], vec![-1.0, -1.0 / 8_388_608.0]);

        let mut out = vec![Vec::new()];
        deinterleave(SampleCodec::U8, &[0, 128, 255], &mut out);
        assert_eq!(out[0], vec![-1.0, 0.0, 127.0 / 128.0]);

        let mut out = vec![Vec::new()];
        let mut bytes = f32::NAN.to_le_bytes().to_vec();
        bytes.extend(0.25f32.to_le_bytes());
        deinterleave(SampleCodec::F32, &bytes, &mut out);
        assert_eq!(out[0], vec![0.0, 0.25]);
    }

    fn extensible(sub: u16, bits: u16, tail_ok: bool) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0xFFFEu16.to_le_bytes());
        v.extend(2u16.to_le_bytes());
        v.extend(48000u32.to_le_bytes());
        let align = 2 * bits / 8;
        v.extend((48000 * align as u32).to_le_bytes());
        v.extend(align.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(22u16.to_le_bytes());
        v.extend(bits.to_le_bytes()); // valid bits
        v.extend(3u32.to_le_bytes()); // FL | FR
        v.extend(sub.to_le_bytes());
        if tail_ok {
            v.extend(KSDATAFORMAT_TAIL);
        } else {
            v.extend([0u8; 14]);
        }
        v
    }

    #[test]
    fn fmt_chunks() {
        let f = parse_fmt(&extensible(3, 32, true)).unwrap();
        assert_eq!((f.codec, f.channels, f.rate), (SampleCodec::F32, 2, 48000));
        let f = parse_fmt(&extensible(1, 24, true)).unwrap();
        assert_eq!(f.codec, SampleCodec::S24);
        assert!(matches!(
            parse_fmt(&extensible(1, 24, false)),
            Err(AudioError::Unsupported(_))
        ));
        assert!(matches!(
            parse_fmt(&extensible(1, 24, true)[..30]),
            Err(AudioError::Corrupt(_))
        ));
        // MS ADPCM
        let mut adpcm = extensible(1, 16, true)[..16].to_vec();
        adpcm[0] = 2;
        adpcm[1] = 0;
        assert!(matches!(parse_fmt(&adpcm), Err(AudioError::Unsupported(_))));
        // block_align lies
        let mut bad = extensible(1, 16, true);
        bad[12] = 3;
        assert!(matches!(parse_fmt(&bad), Err(AudioError::Corrupt(_))));
    }
}
