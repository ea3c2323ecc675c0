//! Uncompressed samples: headerless SIS raw formats, and RIFF/WAVE, whose
//! header is parsed here and checked against the input, never trusted.
//!
//! WAV: PCM 8/16/24/32-bit, float 32/64, A-law and mu-law, also inside
//! `WAVE_FORMAT_EXTENSIBLE` (standard sub-format GUIDs only), any rate and
//! channel count (the limits of the caller decide). A data size of 0 or
//! 0xFFFFFFFF (written by streaming encoders that cannot seek back) means "to
//! the end of the input"; a larger one than the input holds is refused.

use std::io::{Read, Seek, SeekFrom};

use sis_core::RawEncoding;

use crate::input::{io_error, Input};
use crate::stream::{Source, SourceInfo};
use crate::{finite, g711, AudioError};

/// Frames read per block, and the most bytes a block may take (a header may
/// declare frames of up to 64 KiB).
const BLOCK_FRAMES: usize = 4096;
const BLOCK_BYTES: usize = 64 * 1024;
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

/// Decodes interleaved little-endian samples into planar floats.
fn deinterleave(codec: SampleCodec, bytes: &[u8], out: &mut [Vec<f32>]) {
    fn run(bytes: &[u8], width: usize, out: &mut [Vec<f32>], f: impl Fn(&[u8]) -> f32) {
        if let [mono] = out {
            mono.extend(bytes.chunks_exact(width).map(f));
            return;
        }
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

/// Interleaved samples from a known byte range of the input.
struct PcmSource<'a> {
    info: SourceInfo,
    reader: Box<dyn Input + 'a>,
    codec: SampleCodec,
    /// Bytes of whole frames left to read.
    remaining: u64,
    buf: Vec<u8>,
}

impl<'a> PcmSource<'a> {
    fn open(
        mut reader: Box<dyn Input + 'a>,
        offset: u64,
        codec: SampleCodec,
        channels: u32,
        rate: u32,
        frames: u64,
        name: &'static str,
    ) -> Result<Box<dyn Source + 'a>, AudioError> {
        reader.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        let frame_bytes = codec.width() * channels as usize;
        // never more than the input holds, so a lying header costs nothing
        let block = (BLOCK_BYTES / frame_bytes)
            .clamp(1, BLOCK_FRAMES)
            .min(usize::try_from(frames).unwrap_or(usize::MAX))
            .max(1);
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
            buf: vec![0; block * frame_bytes],
        }))
    }
}

impl Source for PcmSource<'_> {
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
                    "{}: the input ended early (was it truncated while being read?)",
                    self.info.codec
                )),
                _ => io_error(e),
            })?;
        self.remaining -= n as u64;
        deinterleave(self.codec, &self.buf[..n], out);
        Ok(true)
    }
}

/// The layout of headerless SIS raw audio of `len` bytes: its sample codec
/// and name, and its length in frames. Every byte is audio, mono.
fn raw_layout(
    encoding: RawEncoding,
    rate: u32,
    len: u64,
) -> Result<(SampleCodec, &'static str, u64), AudioError> {
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
    Ok((codec, name, len / width))
}

/// A headerless SIS raw input of `len` bytes, streamed.
pub(crate) fn open_raw<'a>(
    input: Box<dyn Input + 'a>,
    len: u64,
    encoding: RawEncoding,
    rate: u32,
) -> Result<Box<dyn Source + 'a>, AudioError> {
    let (codec, name, frames) = raw_layout(encoding, rate, len)?;
    PcmSource::open(input, 0, codec, 1, rate, frames, name)
}

/// Headerless SIS raw audio held in memory, converted in one pass (no
/// reads, no blocks: RASR calls this for every frame it receives). Checks
/// the same layout and length rule as [`open_raw`] with the stream's limits.
pub(crate) fn decode_raw(
    encoding: RawEncoding,
    rate: u32,
    bytes: &[u8],
    max_ms: u64,
) -> Result<Vec<f32>, AudioError> {
    let (codec, _, frames) = raw_layout(encoding, rate, bytes.len() as u64)?;
    if frames > crate::stream::max_frames(max_ms, rate) {
        return Err(AudioError::TooLong { limit_ms: max_ms });
    }
    let mut out = [Vec::with_capacity(frames as usize)];
    deinterleave(codec, bytes, &mut out);
    let [samples] = out;
    Ok(samples)
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

/// Reads exactly `buf.len()` bytes; the input ending first is a corrupt header.
fn read_header(input: &mut dyn Input, buf: &mut [u8], what: &str) -> Result<(), AudioError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt(format!("{what} truncated")),
        _ => io_error(e),
    })
}

/// Walks the RIFF chunks of the input from `start` (after an ID3 tag) up
/// to `data` (seeking over the others), then streams the data chunk. A data
/// size of 0 or 0xFFFFFFFF (written by encoders that cannot seek back) means
/// "to the end of the input".
pub(crate) fn open_wav<'a>(
    mut input: Box<dyn Input + 'a>,
    start: u64,
    len: u64,
) -> Result<Box<dyn Source + 'a>, AudioError> {
    input.seek(SeekFrom::Start(start)).map_err(io_error)?;
    let mut riff = [0u8; 12];
    read_header(&mut *input, &mut riff, "RIFF header")?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(corrupt("missing RIFF/WAVE header"));
    }
    let mut at = start + 12;
    let mut fmt: Option<Fmt> = None;
    for _ in 0..MAX_CHUNKS {
        if at + 8 > len {
            return Err(corrupt("no data chunk"));
        }
        let mut head = [0u8; 8];
        read_header(&mut *input, &mut head, "chunk header")?;
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
                input,
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
            read_header(&mut *input, &mut c, "fmt chunk")?;
            fmt = Some(parse_fmt(&c)?);
        }
        // Chunks are padded to even sizes.
        at = body + size as u64 + (size as u64 & 1);
        input.seek(SeekFrom::Start(at)).map_err(io_error)?;
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

    const L: crate::DecodeLimits = crate::DecodeLimits { max_ms: 60_000 };

    /// A WAV with a LIST chunk between `fmt ` and `data`, as many tools write.
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

    fn decode(bytes: &[u8]) -> Result<sis_core::Pcm, AudioError> {
        crate::decode(sis_core::AudioFormat::Wav, bytes, L)
    }

    #[test]
    fn accepted() {
        let p = decode(&wav(1, 1, 16000, 16, &[0, 0x40, 0, 0xC0], None)).unwrap();
        assert_eq!((p.sample_rate, p.samples.clone()), (16000, vec![0.5, -0.5]));
        let p = decode(&wav(7, 1, 8000, 8, &[0xFF, 0x80], None)).unwrap();
        assert_eq!(p.samples.len(), 2);
        let p = decode(&wav(6, 1, 8000, 8, &[0xD5; 10], Some(u32::MAX))).unwrap();
        assert_eq!(p.samples.len(), 10);
        // any standard sample format, as for recorded files (short-audio
        // took only 16-bit PCM, A-law and mu-law before the paths were one)
        let p = decode(&wav(1, 1, 16000, 24, &[0, 0, 0x40, 0, 0, 0xC0], None)).unwrap();
        assert_eq!(p.samples, vec![0.5, -0.5]);
        let mut f32s = 0.25f32.to_le_bytes().to_vec();
        f32s.extend(f32::NAN.to_le_bytes());
        let p = decode(&wav(3, 1, 8000, 32, &f32s, None)).unwrap();
        assert_eq!(p.samples, vec![0.25, 0.0]);
        // a smaller data size than the file holds: the rest is not audio
        let p = decode(&wav(1, 1, 16000, 16, &[0; 40], Some(8))).unwrap();
        assert_eq!(p.samples.len(), 4);
    }

    #[test]
    fn lies_and_unsupported() {
        assert!(matches!(
            decode(&wav(1, 1, 16000, 16, &[0; 10], Some(100000))),
            Err(AudioError::Corrupt(m)) if m.contains("header declares")
        ));
        assert_eq!(
            decode(&wav(1, 2, 16000, 16, &[0; 8], None)),
            Err(AudioError::NotMono(2))
        );
        assert_eq!(
            decode(&wav(1, 1, 44100, 16, &[0; 8], None)),
            Err(AudioError::BadSampleRate(44100))
        );
        assert!(matches!(
            decode(&wav(1, 1, 16000, 12, &[0; 9], None)),
            Err(AudioError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&wav(85, 1, 16000, 0, &[0; 9], None)),
            Err(AudioError::Unsupported(_))
        ));
        let mut bad = wav(1, 1, 16000, 16, &[0; 8], None);
        bad[28..32].copy_from_slice(&1234u32.to_le_bytes()); // byte_rate lies
        assert!(matches!(decode(&bad), Err(AudioError::Corrupt(m)) if m.contains("inconsistent")));
        assert!(matches!(
            decode(b"RIFF\0\0\0\0WAVE"),
            Err(AudioError::Corrupt(_))
        ));
        assert!(matches!(decode(b"nonsense"), Err(AudioError::Corrupt(_))));
        // a header without data is empty, whichever way it says so
        assert_eq!(
            decode(&wav(1, 1, 16000, 16, &[], None)),
            Err(AudioError::Empty)
        );
        assert_eq!(
            decode(&wav(1, 1, 16000, 16, &[7], None)),
            Err(AudioError::Empty)
        );
    }

    #[test]
    fn raw_in_memory_and_streamed_agree() {
        use crate::stream::{open_bytes, Layout, StreamLimits};
        let bytes: Vec<u8> = (0..=255u8).collect();
        for enc in [RawEncoding::Pcm16Le, RawEncoding::ALaw, RawEncoding::MuLaw] {
            let one = decode_raw(enc, 8000, &bytes, u64::MAX).unwrap();
            let layout = Layout::Raw {
                encoding: enc,
                sample_rate: 8000,
            };
            let streamed = open_bytes(&bytes, layout, StreamLimits::default())
                .unwrap()
                .read_to_end()
                .unwrap();
            assert_eq!(streamed, vec![one]);
        }
        assert!(matches!(
            decode_raw(RawEncoding::Pcm16Le, 8000, &[0; 3], u64::MAX),
            Err(AudioError::Corrupt(_))
        ));
        assert_eq!(
            decode_raw(RawEncoding::MuLaw, 8000, &[0; 8001], 1000),
            Err(AudioError::TooLong { limit_ms: 1000 })
        );
        assert_eq!(
            decode_raw(RawEncoding::MuLaw, 8000, &[0; 8000], 1000)
                .unwrap()
                .len(),
            8000
        );
    }
}
