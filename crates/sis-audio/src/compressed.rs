//! Compressed audio: symphonia's demuxers (FLAC, Ogg, MP4, MP3, ADTS) with
//! symphonia's decoders, or libopus for Ogg Opus. MP4, Ogg and FLAC are
//! checked by `mp4`, `ogg` and `flac` before the demuxer sees them.

use std::io;

use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{
    CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_AAC, CODEC_TYPE_FLAC, CODEC_TYPE_NULL,
    CODEC_TYPE_OPUS, CODEC_TYPE_VORBIS,
};
use symphonia::core::conv::IntoSample;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::sample::Sample;
use symphonia::default::formats::{AdtsReader, FlacReader, IsoMp4Reader, MpaReader, OggReader};

use crate::container::Container;
use crate::input::Input;
use crate::stream::{Source, SourceInfo, StreamLimits};
use crate::{finite, AudioError};

/// Undecodable packets tolerated in a row once audio has been decoded
/// (each is replaced by silence of its duration), and before any has.
const MAX_BAD_IN_A_ROW: u32 = 250;
const MAX_BAD_AT_START: u32 = 32;
/// A file whose container states its length exactly is truncated if it
/// decodes to less than that by more than this many milliseconds.
const TRUNCATION_SLACK_MS: u64 = 50;
/// Opus decodes at 48 kHz; a packet is at most 120 ms.
const OPUS_RATE: u32 = 48_000;
const OPUS_MAX_FRAMES: usize = 5760;

fn sym_error(what: &str, e: SymError) -> AudioError {
    match e {
        SymError::Unsupported(m) => AudioError::Unsupported(format!("{what}: {m}")),
        SymError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt(format!("{what}: the input ends inside a header"))
        }
        e => AudioError::Corrupt(format!("{what}: {e}")),
    }
}

fn push_planar<S: Sample + IntoSample<f32>>(buf: &AudioBuffer<S>, out: &mut [Vec<f32>]) {
    for (c, o) in out.iter_mut().enumerate() {
        o.extend(buf.chan(c).iter().map(|&s| finite(s.into_sample())));
    }
}

/// Appends a decoded buffer (any sample type) to `out`, whose length must be
/// the buffer's channel count.
fn push_decoded(decoded: &AudioBufferRef<'_>, out: &mut [Vec<f32>]) {
    match decoded {
        AudioBufferRef::U8(b) => push_planar(b, out),
        AudioBufferRef::U16(b) => push_planar(b, out),
        AudioBufferRef::U24(b) => push_planar(b, out),
        AudioBufferRef::U32(b) => push_planar(b, out),
        AudioBufferRef::S8(b) => push_planar(b, out),
        AudioBufferRef::S16(b) => push_planar(b, out),
        AudioBufferRef::S24(b) => push_planar(b, out),
        AudioBufferRef::S32(b) => push_planar(b, out),
        AudioBufferRef::F32(b) => push_planar(b, out),
        AudioBufferRef::F64(b) => push_planar(b, out),
    }
}

/// The channels of the FLAC frame in `data`, by the channel assignment of
/// its header, found as the decoder finds it: at the first byte pair whose
/// top 14 bits are the frame sync code (`None`: no header, or a reserved
/// assignment).
fn flac_frame_channels(data: &[u8]) -> Option<usize> {
    let sync = data
        .windows(2)
        .position(|w| u16::from_be_bytes([w[0], w[1]]) & 0xFFFC == 0xFFF8)?;
    let assignment = data.get(sync + 3)? >> 4;
    match assignment {
        0..=7 => Some(assignment as usize + 1),
        8..=10 => Some(2),
        _ => None,
    }
}

/// Reads bits most-significant first, as AAC packs them.
struct MsbBits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl MsbBits<'_> {
    fn read(&mut self, n: usize) -> Option<usize> {
        let mut v = 0;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8)?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as usize;
            self.pos += 1;
        }
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos = self.pos.checked_add(n)?;
        (self.pos <= self.data.len() * 8).then_some(())
    }
}

/// The sample rate an AAC AudioSpecificConfig states (ISO/IEC 14496-3
/// 1.6.2.1), if it can be read.
fn aac_rate(config: Option<&[u8]>) -> Option<u32> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut b = MsbBits {
        data: config?,
        pos: 0,
    };
    if b.read(5)? == 31 {
        b.read(6)?;
    }
    match b.read(4)? {
        15 => u32::try_from(b.read(24)?).ok(),
        i => RATES.get(i).copied(),
    }
}

/// The number of scale-factor bands of long and short windows at `rate`
/// (the rate's nearest standard rate, ISO/IEC 14496-3 4.5.4 and its tables).
fn aac_band_counts(rate: u32) -> (usize, usize) {
    match rate {
        75132.. => (41, 12),
        55426.. => (47, 12),
        37566.. => (49, 14),
        27713.. => (51, 14),
        18783.. => (47, 15),
        9391.. => (43, 15),
        _ => (40, 15),
    }
}

/// Whether the first channel stream of the AAC frame `data` (of a single
/// channel element, or of a pair; after any fill and data stream elements)
/// uses no more scale-factor bands than the decoder has (`bands`: long,
/// short windows): symphonia's decoder indexes its band table with the
/// frame's count unchecked (a panic). Frames this cannot read are left to
/// the decoder. (The second stream of a pair without a common window, and
/// later elements, come after spectral data this does not parse.)
fn aac_bands_fit(data: &[u8], bands: (usize, usize)) -> bool {
    first_ics_fits(&mut MsbBits { data, pos: 0 }, bands).unwrap_or(true)
}

fn first_ics_fits(b: &mut MsbBits, bands: (usize, usize)) -> Option<bool> {
    // fill and data stream elements before the first channel element
    let mut id = b.read(3)?;
    while id == 6 || id == 4 {
        let bytes = if id == 6 {
            // fill: a 4-bit count, 15 escaping to 14 + an 8-bit one
            match b.read(4)? {
                15 => 14 + b.read(8)?,
                n => n,
            }
        } else {
            // data stream: tag, byte-align flag, an 8-bit count (255
            // escaping to 255 + another), the bytes after an alignment
            b.read(4)?;
            let align = b.read(1)? == 1;
            let n = match b.read(8)? {
                255 => 255 + b.read(8)?,
                n => n,
            };
            if align {
                b.pos = b.pos.div_ceil(8) * 8;
            }
            n
        };
        b.skip(bytes * 8)?;
        id = b.read(3)?;
    }
    match id {
        // single channel or LFE element: tag, global gain, ics_info
        0 | 3 => {
            b.read(4 + 8)?;
        }
        // channel pair: tag, common window, then a shared ics_info or the
        // first channel's global gain and ics_info
        1 => {
            b.read(4)?;
            if b.read(1)? == 0 {
                b.read(8)?;
            }
        }
        _ => return Some(true),
    }
    b.read(1)?; // reserved
    let sequence = b.read(2)?;
    b.read(1)?; // window shape
    Some(if sequence == 2 {
        b.read(4)? <= bands.1
    } else {
        b.read(6)? <= bands.0
    })
}

/// Ogg Opus through libopus. The Ogg demuxer (with gapless on) trims the end
/// padding by the last granule position; the pre-skip is dropped here.
struct OpusDecoder {
    decoder: opus::Decoder,
    channels: usize,
    /// Frames still to drop from the start, and how many the header asked for.
    pre_skip: usize,
    header_pre_skip: usize,
    buf: Vec<f32>,
}

impl OpusDecoder {
    /// From the `OpusHead` packet (RFC 7845 §5.1).
    fn new(head: &[u8], limits: &StreamLimits) -> Result<Self, AudioError> {
        let bad = |m: &str| AudioError::Corrupt(format!("ogg/opus: {m}"));
        if head.len() < 19 || &head[0..8] != b"OpusHead" {
            return Err(bad("missing OpusHead"));
        }
        if head[8] >> 4 != 0 {
            return Err(AudioError::Unsupported(format!(
                "ogg/opus: mapping version {}",
                head[8]
            )));
        }
        let channels = head[9] as usize;
        let pre_skip = u16::from_le_bytes([head[10], head[11]]) as usize;
        let gain = i16::from_le_bytes([head[16], head[17]]);
        let family = head[18];
        if channels == 0 {
            return Err(bad("0 channels"));
        }
        if channels as u32 > limits.max_channels {
            return Err(AudioError::TooManyChannels {
                found: channels as u32,
                max: limits.max_channels,
            });
        }
        if family != 0 {
            // One stream (coupled when stereo) in the identity order is what a
            // plain decoder plays; anything else needs the multistream API.
            let table = head
                .get(19..21 + channels)
                .ok_or_else(|| bad("short channel table"))?;
            let plain = table[0] == 1
                && table[1] as usize == channels - 1
                && table[2..].iter().enumerate().all(|(i, &m)| m as usize == i);
            if !plain {
                return Err(AudioError::Unsupported(
                    "ogg/opus: multistream channel mapping".into(),
                ));
            }
        }
        let layout = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut decoder = opus::Decoder::new(OPUS_RATE, layout)
            .map_err(|e| AudioError::Corrupt(format!("ogg/opus: decoder init: {e}")))?;
        if gain != 0 {
            decoder
                .set_gain(gain as i32)
                .map_err(|e| bad(&format!("output gain {gain}: {e}")))?;
        }
        Ok(OpusDecoder {
            decoder,
            channels,
            pre_skip,
            header_pre_skip: pre_skip,
            buf: vec![0.0; OPUS_MAX_FRAMES * channels],
        })
    }

    /// Decodes one packet into `out`; `Err` is a bad packet.
    fn decode(&mut self, packet: &Packet, out: &mut [Vec<f32>]) -> Result<(), String> {
        if packet.data.is_empty() {
            return Err("empty packet".into());
        }
        let n = self
            .decoder
            .decode_float(&packet.data, &mut self.buf, false)
            .map_err(|e| e.to_string())?;
        let mut from = (packet.trim_start() as usize).min(n);
        let to = n.saturating_sub(packet.trim_end() as usize).max(from);
        let skip = self.pre_skip.min(to - from);
        self.pre_skip -= skip;
        from += skip;
        for frame in self.buf[from * self.channels..to * self.channels].chunks_exact(self.channels)
        {
            for (o, &s) in out.iter_mut().zip(frame) {
                o.push(finite(s));
            }
        }
        Ok(())
    }
}

enum PacketDecoder {
    Symphonia(Box<dyn Decoder>),
    Opus(OpusDecoder),
}

struct SymphoniaSource {
    info: SourceInfo,
    reader: Box<dyn FormatReader>,
    decoder: PacketDecoder,
    track_id: u32,
    /// The time base of packet durations, as (numerator, denominator).
    time_base: Option<(u32, u32)>,
    /// Set by the first decoded packet; later packets must agree.
    spec: Option<(u32, usize)>,
    /// The frames decoded before `open` returned, handed out first.
    first: Vec<Vec<f32>>,
    /// FLAC: the stream's channel count, which every frame must have.
    flac_channels: Option<usize>,
    /// AAC: the scale-factor bands of the decoder's rate (long, short
    /// windows), which a frame may not exceed.
    aac_bands: Option<(usize, usize)>,
    decoded_frames: u64,
    bad_in_a_row: u32,
    ended: bool,
}

/// Opens the input (`len` bytes, the container starting at `start`) with
/// symphonia's demuxer for `container` and decodes up to the first audio,
/// which tells the real rate and channel count. Panics inside symphonia are
/// contained by the caller (`stream::open_layout`, `Stream::fill`).
pub(crate) fn open<'a>(
    mut input: Box<dyn Input + 'a>,
    start: u64,
    len: u64,
    container: Container,
    limits: &StreamLimits,
) -> Result<Box<dyn Source + 'a>, AudioError> {
    let name = container.name();
    // structure checks for what the demuxers and decoders size up front
    let rest = len.saturating_sub(start);
    match container {
        Container::Mp4 => crate::mp4::check(&mut *input, start, rest)?,
        Container::Ogg => crate::ogg::check(&mut *input, start, rest)?,
        Container::Flac => crate::flac::check(&mut *input, start, len)?,
        _ => {}
    }
    let source = input.into_media_source(start, len)?;
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let reader: Result<Box<dyn FormatReader>, SymError> = match container {
        Container::Flac => FlacReader::try_new(mss, &opts).map(|r| Box::new(r) as _),
        Container::Ogg => OggReader::try_new(mss, &opts).map(|r| Box::new(r) as _),
        Container::Mp4 => IsoMp4Reader::try_new(mss, &opts).map(|r| Box::new(r) as _),
        Container::Mp3 => MpaReader::try_new(mss, &opts).map(|r| Box::new(r) as _),
        Container::Adts => AdtsReader::try_new(mss, &opts).map(|r| Box::new(r) as _),
        Container::Wav | Container::AmrNb | Container::AmrWb => {
            Err(SymError::Unsupported("not a symphonia container"))
        }
    };
    let reader = reader.map_err(|e| sym_error(name, e))?;

    let registry = symphonia::default::get_codecs();
    // Opus is decoded here from Ogg only (its header is the OpusHead packet).
    let decodable = |p: &CodecParameters| {
        if p.codec == CODEC_TYPE_OPUS {
            container == Container::Ogg
        } else {
            p.codec != CODEC_TYPE_NULL && registry.get_codec(p.codec).is_some()
        }
    };
    let Some(track) = reader.tracks().iter().find(|t| decodable(&t.codec_params)) else {
        return Err(
            match reader
                .tracks()
                .iter()
                .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            {
                Some(t) if t.codec_params.codec == CODEC_TYPE_OPUS => {
                    AudioError::Unsupported(format!("{name}: Opus outside Ogg"))
                }
                Some(t) => AudioError::Unsupported(format!(
                    "{name}: no decoder for codec {}",
                    t.codec_params.codec
                )),
                None => AudioError::Corrupt(format!("{name}: no audio track")),
            },
        );
    };
    let params = track.codec_params.clone();
    let track_id = track.id;
    if let Some(n) = params.channels.map(|c| c.count() as u32) {
        if n > limits.max_channels {
            return Err(AudioError::TooManyChannels {
                found: n,
                max: limits.max_channels,
            });
        }
    }
    let codec_name = match (container, params.codec) {
        (Container::Ogg, CODEC_TYPE_OPUS) => "ogg/opus",
        (Container::Ogg, CODEC_TYPE_VORBIS) => "ogg/vorbis",
        (Container::Ogg, CODEC_TYPE_FLAC) => "ogg/flac",
        (Container::Mp4, CODEC_TYPE_AAC) => "mp4/aac",
        (c, _) => c.name(),
    };
    let decoder = if params.codec == CODEC_TYPE_OPUS {
        let head = params.extra_data.as_deref().unwrap_or_default();
        PacketDecoder::Opus(OpusDecoder::new(head, limits)?)
    } else {
        let made = registry.make(&params, &DecoderOptions::default());
        PacketDecoder::Symphonia(made.map_err(|e| sym_error(codec_name, e))?)
    };
    let time_base = params.time_base.map(|t| (t.numer, t.denom));
    let mut source = SymphoniaSource {
        info: SourceInfo {
            rate: 0,
            channels: 0,
            codec: codec_name,
            total_frames: None,
            exact_length: false,
        },
        reader,
        decoder,
        track_id,
        time_base,
        spec: None,
        first: Vec::new(),
        flac_channels: (params.codec == CODEC_TYPE_FLAC)
            .then(|| params.channels.map_or(0, |c| c.count())),
        aac_bands: if params.codec == CODEC_TYPE_AAC {
            aac_rate(params.extra_data.as_deref())
                .or(params.sample_rate)
                .map(aac_band_counts)
        } else {
            None
        },
        decoded_frames: 0,
        bad_in_a_row: 0,
        ended: false,
    };
    // Decode until the first audio: it tells the real rate and channels.
    let mut first = Vec::new();
    while source.spec.is_none() {
        if !source.decode_next(&mut first)? {
            return Err(AudioError::Empty);
        }
    }
    source.first = first;
    let (rate, channels) = source.spec.unwrap_or_default();
    let mut total = params.n_frames.map(|n| source.to_frames(n, rate));
    if let (PacketDecoder::Opus(o), Some(n)) = (&source.decoder, total.as_mut()) {
        // The Ogg length (the last granule position) counts the pre-skip.
        *n = n.saturating_sub(o.header_pre_skip as u64);
    }
    source.info.rate = rate;
    source.info.channels = channels as u32;
    source.info.total_frames = total;
    source.info.exact_length =
        total.is_some() && matches!(container, Container::Flac | Container::Mp4 | Container::Ogg);
    Ok(Box::new(source))
}

impl SymphoniaSource {
    /// Converts a count in the track's time base to frames at `rate`.
    fn to_frames(&self, n: u64, rate: u32) -> u64 {
        match self.time_base {
            Some((numer, denom)) if denom > 0 && !(numer == 1 && denom == rate) => {
                (n as u128 * numer as u128 * rate as u128 / denom as u128) as u64
            }
            _ => n,
        }
    }

    /// Decodes packets until one yields audio (appended to `out`, sized to
    /// the channel count if empty) or the file ends (`false`).
    fn decode_next(&mut self, out: &mut Vec<Vec<f32>>) -> Result<bool, AudioError> {
        let what = self.info.codec;
        loop {
            let packet = match self.reader.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(false)
                }
                Err(SymError::ResetRequired) => {
                    return Err(AudioError::Unsupported(format!(
                        "{what}: the stream changes its parameters mid-file (chained streams)"
                    )))
                }
                Err(e) => return Err(sym_error(what, e)),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let before = out.first().map_or(0, Vec::len);
            let result = match &mut self.decoder {
                PacketDecoder::Symphonia(d) => {
                    let frame_fits = self
                        .flac_channels
                        .is_none_or(|n| flac_frame_channels(&packet.data) == Some(n))
                        && self
                            .aac_bands
                            .is_none_or(|bands| aac_bands_fit(&packet.data, bands));
                    let pushed = (|| -> Result<(), SymError> {
                        if !frame_fits {
                            // the decoder would index a channel it has no
                            // buffer for (a panic)
                            return Err(SymError::DecodeError(
                                "a frame the decoder cannot take (channels or bands)",
                            ));
                        }
                        let decoded = d.decode(&packet)?;
                        let spec = decoded.spec();
                        let found = (spec.rate, spec.channels.count());
                        if decoded.frames() == 0 {
                            return Ok(());
                        }
                        match self.spec {
                            None => {
                                self.spec = Some(found);
                                out.resize(found.1, Vec::new());
                            }
                            Some(s) if s != found => {
                                return Err(SymError::Unsupported(
                                    "the sample rate or channel count changes mid-file",
                                ))
                            }
                            Some(_) => {}
                        }
                        if out.len() != found.1 {
                            return Err(SymError::DecodeError("channel count mismatch"));
                        }
                        push_decoded(&decoded, out);
                        Ok(())
                    })();
                    match pushed {
                        Ok(()) => Ok(()),
                        Err(SymError::DecodeError(m)) => Err(m.to_string()),
                        Err(SymError::IoError(e)) => Err(e.to_string()),
                        Err(e) => return Err(sym_error(what, e)),
                    }
                }
                PacketDecoder::Opus(d) => {
                    if self.spec.is_none() {
                        self.spec = Some((OPUS_RATE, d.channels));
                        out.resize(d.channels, Vec::new());
                    }
                    d.decode(&packet, out)
                }
            };
            match result {
                Ok(()) => self.bad_in_a_row = 0,
                Err(m) => {
                    self.bad_in_a_row += 1;
                    let limit = if self.decoded_frames == 0 {
                        MAX_BAD_AT_START
                    } else {
                        MAX_BAD_IN_A_ROW
                    };
                    if self.bad_in_a_row > limit {
                        return Err(AudioError::Corrupt(format!(
                            "{what}: {} undecodable packets in a row ({m})",
                            self.bad_in_a_row
                        )));
                    }
                    // Keep the timeline: a lost packet becomes silence of its length.
                    if let Some((rate, _)) = self.spec {
                        let frames = self.to_frames(packet.dur, rate).min(rate as u64) as usize;
                        for c in out.iter_mut() {
                            c.resize(c.len() + frames, 0.0);
                        }
                    }
                }
            }
            let added = out.first().map_or(0, Vec::len) - before;
            self.decoded_frames += added as u64;
            if added > 0 {
                return Ok(true);
            }
        }
    }
}

impl Source for SymphoniaSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_block(&mut self, out: &mut [Vec<f32>]) -> Result<bool, AudioError> {
        if !self.first.is_empty() {
            for (o, f) in out.iter_mut().zip(std::mem::take(&mut self.first)) {
                o.extend(f);
            }
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        let mut block = Vec::with_capacity(out.len());
        block.resize(out.len(), Vec::new());
        if self.decode_next(&mut block)? {
            if block.len() != out.len() {
                return Err(AudioError::Corrupt(format!(
                    "{}: channel count changes mid-file",
                    self.info.codec
                )));
            }
            for (o, b) in out.iter_mut().zip(block) {
                o.extend(b);
            }
            return Ok(true);
        }
        self.ended = true;
        if let (true, Some(total)) = (self.info.exact_length, self.info.total_frames) {
            let slack = self.info.rate as u64 * TRUNCATION_SLACK_MS / 1000;
            if self.decoded_frames + slack < total {
                return Err(AudioError::Corrupt(format!(
                    "{}: the file is truncated ({} of {} frames present)",
                    self.info.codec, self.decoded_frames, total
                )));
            }
        }
        Ok(false)
    }
}
