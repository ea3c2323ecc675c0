//! Streaming decoding of audio files, for recorded-file transcription jobs
//! (SIS: files up to 5 hours and 300 MB), and the one decode path behind
//! every API of this crate: [`crate::decode`] runs the same layout detection,
//! decoders and limits over bytes in memory (`open_bytes`), then reads the
//! stream to its end.
//!
//! [`open`] reads a file incrementally and yields [`Chunk`]s of planar float
//! samples, about `chunk_ms` each; memory does not grow with the length of
//! the file (a buffered read window, one decoded packet, one chunk). With
//! [`FileFormat::Auto`] the container is recognised by its first bytes, never
//! by the file name:
//!
//! | content | magic | decoded by |
//! |---|---|---|
//! | WAV: PCM 8/16/24/32-bit, float 32/64, A-law, μ-law, also `WAVE_FORMAT_EXTENSIBLE` | `RIFF....WAVE` | this crate |
//! | MP3 (MPEG-1/2/2.5 layer III) | `ID3` or a frame sync | symphonia |
//! | AAC in ADTS | `FF F1`/`FF F9` | symphonia |
//! | AAC in MP4/M4A | `....ftyp` | symphonia |
//! | Ogg Vorbis, Ogg FLAC | `OggS` | symphonia |
//! | Ogg Opus | `OggS` + `OpusHead` | symphonia's Ogg demuxer, libopus (`opus` crate) |
//! | FLAC | `fLaC` | symphonia |
//! | AMR-NB, AMR-WB (RFC 4867 storage format) | `#!AMR\n`, `#!AMR-WB\n` | opencore-amr |
//!
//! An ID3v2 tag in front of any of these is skipped. WMA (ASF), RF64, AIFF,
//! multi-channel AMR and Opus multistream are refused with
//! [`AudioError::Unsupported`]. Headerless audio needs [`FileFormat::Raw`].
//!
//! Sample rates are the file's own (Opus always decodes at 48 kHz); callers
//! resample. At most two channels are delivered ([`MAX_CHANNELS`]): a file
//! with more is refused with [`AudioError::TooManyChannels`], not downmixed,
//! because which channels carry speech is the client's business.
//!
//! Encoder delay and padding are removed where the container states them
//! (MP3 with a LAME/Xing header, Ogg Vorbis and Opus); AAC streams keep the
//! encoder's priming samples (1024 frames), as in most decoders.
//!
//! Errors: every malformed input is an [`AudioError`], never a panic (every
//! decoder call, opening and each read, runs inside `contain`, a
//! `catch_unwind`, as a last line of defence). An error ends the stream:
//! later calls return it again.

use std::fs::File;
use std::io::Cursor;
use std::path::Path;

use sis_core::{AudioFormat, RawEncoding};

use crate::container::{self, Container};
use crate::input::{io_error, FileInput, Input};
use crate::{amr, compressed, contain, pcm, AudioError};

/// The most channels a stream delivers.
pub const MAX_CHANNELS: u32 = 2;

/// The highest sample rate taken (the highest any audio format uses); a
/// header stating more lies, and the chunk buffers are sized by the rate.
const MAX_RATE: u32 = 768_000;

/// How to read a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Recognise the container by its first bytes (see the module docs).
    Auto,
    /// Headerless mono samples, as the SIS raw `audio_format`s declare them
    /// (`pcm16k16bit`, `pcm8k16bit`, `ulaw16k8bit`, `ulaw8k8bit`,
    /// `alaw16k8bit`, `alaw8k8bit`).
    Raw {
        encoding: RawEncoding,
        sample_rate: u32,
    },
}

impl FileFormat {
    /// The raw SIS formats map to [`FileFormat::Raw`]; every other one
    /// (`auto`, and container names such as `wav` or `mp3`) to
    /// [`FileFormat::Auto`], because for a file the content decides.
    pub fn from_audio_format(format: AudioFormat) -> FileFormat {
        match format.raw() {
            Some((encoding, sample_rate)) => FileFormat::Raw {
                encoding,
                sample_rate,
            },
            None => FileFormat::Auto,
        }
    }
}

impl From<AudioFormat> for FileFormat {
    fn from(format: AudioFormat) -> Self {
        FileFormat::from_audio_format(format)
    }
}

/// Limits applied while streaming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Fail with [`AudioError::TooLong`] once the audio is longer than this:
    /// at [`open`] when the header states the length exactly (WAV, raw),
    /// otherwise at the first chunk past it.
    pub max_ms: u64,
    /// Refuse files with more channels than this ([`AudioError::TooManyChannels`]).
    /// Values above [`MAX_CHANNELS`] count as `MAX_CHANNELS`; 1 asks for mono files.
    pub max_channels: u32,
    /// Length of each chunk (the last one may be shorter), clamped to 10 ms ..= 10 s.
    pub chunk_ms: u32,
}

impl StreamLimits {
    /// Five hours, the SIS limit for recorded files.
    pub const DEFAULT_MAX_MS: u64 = 5 * 3600 * 1000;
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_ms: Self::DEFAULT_MAX_MS,
            max_channels: MAX_CHANNELS,
            chunk_ms: 1000,
        }
    }
}

/// Consecutive decoded audio, one vector per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    /// Index of the chunk's first frame from the start of the stream (at
    /// [`PcmStream::sample_rate`]), so `start_frame / rate` is its time.
    pub start_frame: u64,
    /// Planar samples in [-1, 1] (what a decoder gives outside it is clamped,
    /// what is not finite becomes 0), one vector per channel (left first),
    /// all of the same length.
    pub channels: Vec<Vec<f32>>,
}

impl Chunk {
    /// Frames (samples per channel) in this chunk.
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// The average of the channels.
    pub fn to_mono(&self) -> Vec<f32> {
        match self.channels.as_slice() {
            [] => Vec::new(),
            [one] => one.clone(),
            many => {
                let scale = 1.0 / many.len() as f32;
                (0..self.frames())
                    .map(|i| many.iter().map(|c| c[i]).sum::<f32>() * scale)
                    .collect()
            }
        }
    }
}

/// A decoder reading a file chunk by chunk.
pub trait PcmStream {
    /// Frames per second of every chunk.
    fn sample_rate(&self) -> u32;
    /// Channels of every chunk: 1 or 2.
    fn channels(&self) -> u32;
    /// What was found, for logs: e.g. `"wav/pcm_s16le"`, `"ogg/opus"`.
    fn codec(&self) -> &'static str;
    /// The length in frames as the container states it, if it does: exact for
    /// WAV, raw, FLAC, MP4 and Ogg; an estimate from the bit rate for MP3
    /// without a Xing header and for ADTS; `None` for AMR.
    fn total_frames(&self) -> Option<u64>;
    /// The next chunk of `chunk_ms` (the last may be shorter), or `None` at
    /// the end of the audio. After an error, every call returns that error.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AudioError>;
}

/// Opens `path` for streaming. Reads the header and decodes the first
/// packet, so a file that is not audio fails here; a file without any sample
/// is [`AudioError::Empty`].
pub fn open(
    path: &Path,
    format: FileFormat,
    limits: StreamLimits,
) -> Result<Box<dyn PcmStream + Send>, AudioError> {
    let file = File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let mut input: Box<dyn Input> = Box::new(FileInput::new(file, len));
    let layout = contain("detection", || Layout::of(&mut *input, len, format))?;
    Ok(Box::new(open_layout(input, len, layout, limits)?))
}

/// A whole file held in memory, decoded along the same path as [`open`]
/// (the same layout detection, decoders and limits) at its own sample
/// rate: returns the rate and the samples, one vector per channel, each
/// [`sanitize`](crate::sanitize)d. For audio this program made or was
/// handed whole (speech synthesis reads its synthesiser's WAV with it).
pub fn read_bytes(
    bytes: &[u8],
    format: FileFormat,
    limits: StreamLimits,
) -> Result<(u32, Vec<Vec<f32>>), AudioError> {
    let layout = layout_of_bytes(bytes, format)?;
    let stream = open_bytes(bytes, layout, limits)?;
    let rate = stream.sample_rate();
    Ok((rate, stream.read_to_end()?))
}

/// The largest number of frames at `rate` that `max_ms` allows.
pub(crate) fn max_frames(max_ms: u64, rate: u32) -> u64 {
    max_ms.saturating_mul(rate as u64) / 1000
}

/// How the bytes of an input are laid out: the one decision between reading
/// them and decoding them, the same for every entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Headerless SIS raw audio.
    Raw {
        encoding: RawEncoding,
        sample_rate: u32,
    },
    /// A container recognised by its first bytes, starting at `start`
    /// (after any ID3v2 tags).
    Container { container: Container, start: u64 },
}

impl Layout {
    /// The layout of an input read as `format`: raw as declared, otherwise
    /// recognised by content ([`container::sniff`]).
    pub(crate) fn of(
        input: &mut dyn Input,
        len: u64,
        format: FileFormat,
    ) -> Result<Layout, AudioError> {
        Ok(match format {
            FileFormat::Raw {
                encoding,
                sample_rate,
            } => Layout::Raw {
                encoding,
                sample_rate,
            },
            FileFormat::Auto => {
                let (container, start) = container::sniff(input, len)?;
                Layout::Container { container, start }
            }
        })
    }
}

/// The one decode path: opens the decoder for `layout` over `input` (`len`
/// bytes) and wraps it in the chunker that enforces `limits`. A panic in
/// any decoder, ours or third-party, becomes [`AudioError::Corrupt`] here or
/// in [`Stream`], whichever call it happens in.
pub(crate) fn open_layout<'a>(
    input: Box<dyn Input + 'a>,
    len: u64,
    layout: Layout,
    limits: StreamLimits,
) -> Result<Stream<'a>, AudioError> {
    let limits = StreamLimits {
        max_channels: limits.max_channels.clamp(1, MAX_CHANNELS),
        chunk_ms: limits.chunk_ms.clamp(10, 10_000),
        ..limits
    };
    let what = match layout {
        Layout::Raw { .. } => "raw",
        Layout::Container { container, .. } => container.name(),
    };
    let source = contain(what, || match layout {
        Layout::Raw {
            encoding,
            sample_rate,
        } => pcm::open_raw(input, len, encoding, sample_rate),
        Layout::Container { container, start } => match container {
            Container::Wav => pcm::open_wav(input, start, len),
            Container::AmrNb => amr::open(input, start, &amr::NB),
            Container::AmrWb => amr::open(input, start, &amr::WB),
            other => compressed::open(input, start, len, other, &limits),
        },
    })?;
    Stream::new(source, limits)
}

/// [`open_layout`] over bytes in memory.
pub(crate) fn open_bytes(
    bytes: &[u8],
    layout: Layout,
    limits: StreamLimits,
) -> Result<Stream<'_>, AudioError> {
    open_layout(
        Box::new(Cursor::new(bytes)),
        bytes.len() as u64,
        layout,
        limits,
    )
}

/// The layout of bytes in memory read as `format`.
pub(crate) fn layout_of_bytes(bytes: &[u8], format: FileFormat) -> Result<Layout, AudioError> {
    contain("detection", || {
        Layout::of(&mut Cursor::new(bytes), bytes.len() as u64, format)
    })
}

/// What a source knows once opened.
pub(crate) struct SourceInfo {
    pub rate: u32,
    pub channels: u32,
    pub codec: &'static str,
    pub total_frames: Option<u64>,
    /// `total_frames` is exact, so the duration limit can be checked at open.
    pub exact_length: bool,
}

/// A decoder producing blocks of any convenient size (a packet, a read).
pub(crate) trait Source: Send {
    fn info(&self) -> &SourceInfo;
    /// Appends the next block to `out` (one vector per channel, `channels`
    /// of them) and returns `true`, or returns `false` at the end of the audio.
    /// A block is at most a few seconds long.
    fn read_block(&mut self, out: &mut [Vec<f32>]) -> Result<bool, AudioError>;
}

/// Cuts a source's blocks into chunks and enforces the limits.
pub(crate) struct Stream<'a> {
    source: Box<dyn Source + 'a>,
    rate: u32,
    channels: u32,
    codec: &'static str,
    total_frames: Option<u64>,
    chunk_frames: usize,
    max_frames: u64,
    limit_ms: u64,
    pending: Vec<Vec<f32>>,
    /// Frames handed out so far.
    emitted: u64,
    ended: bool,
    failed: Option<AudioError>,
}

impl<'a> Stream<'a> {
    fn new(source: Box<dyn Source + 'a>, limits: StreamLimits) -> Result<Self, AudioError> {
        let info = source.info();
        if info.rate == 0 || info.rate > MAX_RATE {
            return Err(AudioError::Corrupt(format!(
                "{}: sample rate {} Hz",
                info.codec, info.rate
            )));
        }
        if info.channels == 0 {
            return Err(AudioError::Corrupt(format!("{}: no channels", info.codec)));
        }
        if info.channels > limits.max_channels {
            return Err(AudioError::TooManyChannels {
                found: info.channels,
                max: limits.max_channels,
            });
        }
        let max_frames = max_frames(limits.max_ms, info.rate);
        if let (true, Some(n)) = (info.exact_length, info.total_frames) {
            if n > max_frames {
                return Err(AudioError::TooLong {
                    limit_ms: limits.max_ms,
                });
            }
        }
        let chunk_frames = ((info.rate as u64 * limits.chunk_ms as u64 / 1000) as usize).max(1);
        let mut stream = Stream {
            rate: info.rate,
            channels: info.channels,
            codec: info.codec,
            total_frames: info.total_frames,
            chunk_frames,
            max_frames,
            limit_ms: limits.max_ms,
            pending: vec![Vec::with_capacity(chunk_frames * 2); info.channels as usize],
            emitted: 0,
            ended: false,
            failed: None,
            source,
        };
        stream.fill()?;
        if stream.ended && stream.pending[0].is_empty() {
            return Err(AudioError::Empty);
        }
        Ok(stream)
    }

    /// Reads blocks until a whole chunk is pending or the audio ends.
    fn fill(&mut self) -> Result<(), AudioError> {
        self.fill_to(self.chunk_frames)
    }

    /// Reads blocks until `frames` are pending or the audio ends. Each read
    /// runs inside [`contain`].
    fn fill_to(&mut self, frames: usize) -> Result<(), AudioError> {
        while !self.ended && self.pending[0].len() < frames {
            let (source, pending) = (&mut self.source, &mut self.pending);
            if !contain(self.codec, || source.read_block(pending))? {
                self.ended = true;
            }
            let n = self.pending[0].len();
            if self.pending.iter().any(|c| c.len() != n) {
                return Err(AudioError::Corrupt(format!(
                    "{}: channels of unequal length",
                    self.codec
                )));
            }
            if self.emitted + n as u64 > self.max_frames {
                return Err(AudioError::TooLong {
                    limit_ms: self.limit_ms,
                });
            }
        }
        Ok(())
    }

    /// The whole audio (one vector per channel), each sample
    /// [`sanitize`](crate::sanitize)d, as the chunks would have delivered it.
    pub(crate) fn read_to_end(mut self) -> Result<Vec<Vec<f32>>, AudioError> {
        self.fill_to(usize::MAX)?;
        let mut channels = std::mem::take(&mut self.pending);
        for c in &mut channels {
            crate::sanitize(c);
        }
        Ok(channels)
    }
}

impl PcmStream for Stream<'_> {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u32 {
        self.channels
    }

    fn codec(&self) -> &'static str {
        self.codec
    }

    fn total_frames(&self) -> Option<u64> {
        self.total_frames
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, AudioError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Err(e) = self.fill() {
            self.failed = Some(e.clone());
            self.pending = Vec::new();
            return Err(e);
        }
        let n = self.pending[0].len().min(self.chunk_frames);
        if n == 0 {
            return Ok(None);
        }
        let channels = self
            .pending
            .iter_mut()
            .map(|c| {
                let rest = c.split_off(n);
                let mut out = std::mem::replace(c, rest);
                crate::sanitize(&mut out);
                out
            })
            .collect();
        let chunk = Chunk {
            start_frame: self.emitted,
            channels,
        };
        self.emitted += n as u64;
        Ok(Some(chunk))
    }
}
