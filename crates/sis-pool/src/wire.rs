//! The protocol between the server and an engine worker: length-prefixed
//! frames (u32 little-endian length, then a postcard message) over the
//! worker's stdin (server → worker) and a duplicate of its stdout (worker →
//! server). The message types mirror `sis-core` and `sis-engine` values,
//! which know nothing of serde; they exist only on this pipe.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sis_core::{HotWords, RecognitionOptions, Transcript, WordTiming};
use sis_engine::file::FileSentence;
use sis_engine::stream::{Batching, Segmentation, StreamEvent, StreamParams};
use sis_engine::{EngineConfig, EngineError, VadSettings};

/// Largest frame either side accepts (60 s of short audio is 3.8 MB).
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// Float samples carried as their bytes (both ends are the same executable
/// on the same machine, so native byte order), not one float at a time.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Samples(pub Vec<f32>);

impl Serialize for Samples {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytemuck::cast_slice(&self.0))
    }
}

impl<'de> Deserialize<'de> for Samples {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <&'de [u8]>::deserialize(d)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "samples: length not a multiple of 4",
            ));
        }
        Ok(Samples(bytemuck::pod_collect_to_vec(bytes)))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Options {
    add_punc: bool,
    digit_norm: bool,
    need_word_info: bool,
    vocabulary_id: Option<String>,
    hot_words: Option<WireHotWords>,
}

/// [`HotWords`] on the wire (the words travel with each request or session).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireHotWords {
    vocabulary_id: String,
    version: i64,
    words: Vec<String>,
}

impl From<RecognitionOptions> for Options {
    fn from(o: RecognitionOptions) -> Self {
        Options {
            add_punc: o.add_punc,
            digit_norm: o.digit_norm,
            need_word_info: o.need_word_info,
            vocabulary_id: o.vocabulary_id,
            hot_words: o.hot_words.map(|h| WireHotWords {
                vocabulary_id: h.vocabulary_id,
                version: h.version,
                words: h.words.to_vec(),
            }),
        }
    }
}

impl From<Options> for RecognitionOptions {
    fn from(o: Options) -> Self {
        RecognitionOptions {
            add_punc: o.add_punc,
            digit_norm: o.digit_norm,
            need_word_info: o.need_word_info,
            vocabulary_id: o.vocabulary_id,
            hot_words: o.hot_words.map(|h| HotWords {
                vocabulary_id: h.vocabulary_id,
                version: h.version,
                words: std::sync::Arc::new(h.words),
            }),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Word {
    word: String,
    start_ms: u32,
    end_ms: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTranscript {
    text: String,
    score: Option<f32>,
    words: Vec<Word>,
}

impl From<Transcript> for WireTranscript {
    fn from(t: Transcript) -> Self {
        WireTranscript {
            text: t.text,
            score: t.score,
            words: t
                .words
                .into_iter()
                .map(|w| Word {
                    word: w.word,
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                })
                .collect(),
        }
    }
}

impl From<WireTranscript> for Transcript {
    fn from(t: WireTranscript) -> Self {
        Transcript {
            text: t.text,
            score: t.score,
            words: t
                .words
                .into_iter()
                .map(|w| WordTiming {
                    word: w.word,
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Params {
    segmentation: u8,
    options: Options,
    interim: bool,
    vad_head_ms: u32,
    vad_tail_ms: u32,
    max_seconds: u32,
    sample_rate: u32,
}

impl From<StreamParams> for Params {
    fn from(p: StreamParams) -> Self {
        Params {
            segmentation: match p.segmentation {
                Segmentation::Whole => 0,
                Segmentation::Continuous => 1,
                Segmentation::FirstSentence => 2,
            },
            options: p.options.into(),
            interim: p.interim,
            vad_head_ms: p.vad_head_ms,
            vad_tail_ms: p.vad_tail_ms,
            max_seconds: p.max_seconds,
            sample_rate: p.sample_rate,
        }
    }
}

impl From<Params> for StreamParams {
    fn from(p: Params) -> Self {
        StreamParams {
            segmentation: match p.segmentation {
                0 => Segmentation::Whole,
                1 => Segmentation::Continuous,
                _ => Segmentation::FirstSentence,
            },
            options: p.options.into(),
            interim: p.interim,
            vad_head_ms: p.vad_head_ms,
            vad_tail_ms: p.vad_tail_ms,
            max_seconds: p.max_seconds,
            sample_rate: p.sample_rate,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Event {
    VoiceStart(u64),
    VoiceEnd(u64),
    ExceededSilence(u64),
    Result {
        start_ms: u64,
        end_ms: u64,
        is_final: bool,
        transcript: WireTranscript,
    },
    Finished,
    Failed(String),
}

impl From<StreamEvent> for Event {
    fn from(e: StreamEvent) -> Self {
        match e {
            StreamEvent::VoiceStart { ms } => Event::VoiceStart(ms),
            StreamEvent::VoiceEnd { ms } => Event::VoiceEnd(ms),
            StreamEvent::ExceededSilence { ms } => Event::ExceededSilence(ms),
            StreamEvent::Result {
                start_ms,
                end_ms,
                is_final,
                transcript,
            } => Event::Result {
                start_ms,
                end_ms,
                is_final,
                transcript: transcript.into(),
            },
            StreamEvent::Finished => Event::Finished,
            StreamEvent::Failed(m) => Event::Failed(m),
        }
    }
}

impl From<Event> for StreamEvent {
    fn from(e: Event) -> Self {
        match e {
            Event::VoiceStart(ms) => StreamEvent::VoiceStart { ms },
            Event::VoiceEnd(ms) => StreamEvent::VoiceEnd { ms },
            Event::ExceededSilence(ms) => StreamEvent::ExceededSilence { ms },
            Event::Result {
                start_ms,
                end_ms,
                is_final,
                transcript,
            } => StreamEvent::Result {
                start_ms,
                end_ms,
                is_final,
                transcript: transcript.into(),
            },
            Event::Finished => StreamEvent::Finished,
            Event::Failed(m) => StreamEvent::Failed(m),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    UnknownProperty(String),
    Busy,
    Load(String),
    Failed(String),
    ShuttingDown,
    WorkerLost(String),
}

impl From<EngineError> for WireError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownProperty(p) => WireError::UnknownProperty(p),
            EngineError::Busy => WireError::Busy,
            EngineError::Pack(p) => WireError::Load(p.to_string()),
            EngineError::Load(m) => WireError::Load(m),
            EngineError::Failed(m) => WireError::Failed(m),
            EngineError::ShuttingDown => WireError::ShuttingDown,
            EngineError::WorkerLost(m) => WireError::WorkerLost(m),
        }
    }
}

impl From<WireError> for EngineError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::UnknownProperty(p) => EngineError::UnknownProperty(p),
            WireError::Busy => EngineError::Busy,
            WireError::Load(m) => EngineError::Load(m),
            WireError::Failed(m) => EngineError::Failed(m),
            WireError::ShuttingDown => EngineError::ShuttingDown,
            WireError::WorkerLost(m) => EngineError::WorkerLost(m),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Sentence {
    channel: u32,
    start_ms: u64,
    end_ms: u64,
    transcript: WireTranscript,
}

impl From<FileSentence> for Sentence {
    fn from(s: FileSentence) -> Self {
        Sentence {
            channel: s.channel as u32,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            transcript: s.transcript.into(),
        }
    }
}

impl From<Sentence> for FileSentence {
    fn from(s: Sentence) -> Self {
        FileSentence {
            channel: s.channel as usize,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            transcript: s.transcript.into(),
        }
    }
}

/// The engine settings a worker loads with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Config {
    packs: Vec<PathBuf>,
    workers: usize,
    queue: usize,
    max_batch: usize,
    threads_per_decode: i32,
    use_vad: bool,
    vad_min_audio_s: f32,
    vad: (f32, f32, f32, f32),
    max_streams: usize,
    stream_workers: usize,
    /// (max batch, wait in µs)
    stream_batching: (usize, u64),
}

impl From<&EngineConfig> for Config {
    fn from(c: &EngineConfig) -> Self {
        Config {
            packs: c.packs.clone(),
            workers: c.workers,
            queue: c.queue,
            max_batch: c.max_batch,
            threads_per_decode: c.threads_per_decode,
            use_vad: c.use_vad,
            vad_min_audio_s: c.vad_min_audio_s,
            vad: (
                c.vad.threshold,
                c.vad.min_silence_s,
                c.vad.min_speech_s,
                c.vad.max_speech_s,
            ),
            max_streams: c.max_streams,
            stream_workers: c.stream_workers,
            stream_batching: (
                c.stream_batching.max_batch,
                c.stream_batching.wait.as_micros() as u64,
            ),
        }
    }
}

impl From<Config> for EngineConfig {
    fn from(c: Config) -> Self {
        EngineConfig {
            packs: c.packs,
            workers: c.workers,
            queue: c.queue,
            max_batch: c.max_batch,
            threads_per_decode: c.threads_per_decode,
            // the server checked and probed every pack before starting workers
            probe_exe: None,
            use_vad: c.use_vad,
            vad_min_audio_s: c.vad_min_audio_s,
            vad: VadSettings {
                threshold: c.vad.0,
                min_silence_s: c.vad.1,
                min_speech_s: c.vad.2,
                max_speech_s: c.vad.3,
            },
            max_streams: c.max_streams,
            stream_workers: c.stream_workers,
            stream_batching: Batching {
                max_batch: c.stream_batching.0,
                wait: Duration::from_micros(c.stream_batching.1),
            },
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PackInfo {
    pub name: String,
    pub kind: String,
    pub model_type: String,
    pub properties: Vec<String>,
    pub test_only: bool,
    pub speakers: Vec<(String, i64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PropertyInfo {
    pub name: String,
    pub serves: bool,
    pub realtime: bool,
    pub streaming: bool,
}

/// What a loaded worker serves (the answers of `Engine`'s queries).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Info {
    pub packs: Vec<PackInfo>,
    pub properties: Vec<PropertyInfo>,
    pub has_vad: bool,
    pub has_punctuation: bool,
}

/// Server → worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// The first frame.
    Init(Config),
    Recognize {
        id: u64,
        property: String,
        samples: Samples,
        sample_rate: u32,
        options: Options,
    },
    Open {
        id: u64,
        property: String,
        params: Params,
    },
    Audio {
        id: u64,
        samples: Samples,
    },
    End {
        id: u64,
        cancel: bool,
    },
    Close {
        id: u64,
    },
    FileOpen {
        id: u64,
        property: String,
        input_rate: u32,
        channels: u32,
        options: Options,
    },
    FilePush {
        id: u64,
        planar: Vec<Samples>,
    },
    FileFinish {
        id: u64,
    },
    FileClose {
        id: u64,
    },
    /// One sentence for a TTS pack.
    Synthesize {
        id: u64,
        voice: String,
        text: String,
        speed: f32,
    },
}

/// Worker → server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    Ready(Info),
    LoadFailed(String),
    Recognized {
        id: u64,
        result: Result<WireTranscript, WireError>,
    },
    Event {
        id: u64,
        event: Event,
    },
    /// Per session: the samples its stream worker has taken so far.
    Taken(Vec<(u64, u64)>),
    /// What the engine observed of its work since the last report.
    Observed(Vec<sis_engine::observe::Observation>),
    /// One `FilePush` done; sentences recognised so far.
    FileAck {
        id: u64,
        recognised: u64,
    },
    FileDone {
        id: u64,
        result: Result<Vec<Sentence>, WireError>,
    },
    Synthesized {
        id: u64,
        /// The samples and their rate.
        result: Result<(Samples, u32), WireError>,
    },
}

/// A message as a frame: its length, then its bytes.
pub(crate) fn encode<T: Serialize>(msg: &T) -> io::Result<Vec<u8>> {
    encode_sized(msg, 64)
}

/// [`encode`] into a buffer made for about `bytes` (no regrowth for samples).
pub(crate) fn encode_sized<T: Serialize>(msg: &T, bytes: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(bytes + 32);
    buf.extend_from_slice(&[0u8; 4]);
    let mut buf =
        postcard::to_extend(msg, buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let len = u32::try_from(buf.len() - 4)
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

/// Reads the next frame into `buf`; false at a clean end of the stream.
pub(crate) fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(buf: &'a [u8]) -> io::Result<T> {
    postcard::from_bytes(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one frame and flushes.
pub(crate) fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    w.write_all(&encode(msg)?)?;
    w.flush()
}

/// While frames come faster than one per this, a writer sleeps this long
/// between batches instead of waking for each frame.
const GATHER: Duration = Duration::from_millis(2);
/// Wake-ups this close together in a row switch a writer to batches.
const QUICK_WAKES: u32 = 4;

/// Writes what arrives on `rx` to `w` with `write` (which returns false to
/// stop), flushing after each batch, until every sender is gone. Under light
/// traffic every message is written at once; under dense traffic (hundreds
/// of real-time sessions) the loop gathers a millisecond's worth per write,
/// so the pipe's reader wakes once per batch rather than once per frame and
/// the senders never have to wake a parked writer.
pub(crate) fn pump<T, W: Write>(
    rx: &Receiver<T>,
    w: &mut W,
    mut write: impl FnMut(&mut W, T) -> io::Result<bool>,
) -> io::Result<()> {
    let mut dense = false;
    let mut quick = 0u32;
    let mut last = Instant::now();
    loop {
        let first = if dense {
            std::thread::sleep(GATHER);
            match rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => {
                    dense = false;
                    quick = 0;
                    continue;
                }
                Err(TryRecvError::Disconnected) => return w.flush(),
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => return w.flush(),
            }
        };
        let now = Instant::now();
        quick = if now - last < GATHER { quick + 1 } else { 0 };
        last = now;
        let mut n = 0usize;
        let mut next = Some(first);
        while let Some(m) = next {
            if !write(w, m)? {
                return w.flush();
            }
            n += 1;
            next = rx.try_recv().ok();
        }
        w.flush()?;
        // stay in batches while a millisecond brings more than one frame
        dense = if dense { n > 1 } else { quick >= QUICK_WAKES };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msg = ToWorker::Audio {
            id: 7,
            samples: Samples(vec![0.0, -1.0, 0.5, f32::MIN_POSITIVE]),
        };
        let frame = encode(&msg).expect("encodes");
        let mut r = &frame[..];
        let mut buf = Vec::new();
        assert!(read_frame(&mut r, &mut buf).expect("reads"));
        match decode::<ToWorker>(&buf).expect("decodes") {
            ToWorker::Audio { id, samples } => {
                assert_eq!(id, 7);
                assert_eq!(samples.0, vec![0.0, -1.0, 0.5, f32::MIN_POSITIVE]);
            }
            other => panic!("{other:?}"),
        }
        // then a clean end
        assert!(!read_frame(&mut r, &mut buf).expect("reads"));
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let frame = encode(&FromWorker::Taken(vec![(1, 2)])).expect("encodes");
        let mut r = &frame[..frame.len() - 1];
        assert!(read_frame(&mut r, &mut Vec::new()).is_err());
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(read_frame(&mut &huge[..], &mut Vec::new()).is_err());
        assert!(decode::<FromWorker>(&[0xff, 0xff]).is_err());
        let odd = postcard::to_stdvec(&[1u8, 2, 3][..]).expect("encodes");
        assert!(decode::<Samples>(&odd).is_err());
    }

    #[test]
    fn pump_writes_everything_in_order_then_stops() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let sender = std::thread::spawn(move || {
            for i in 0..2000u32 {
                tx.send(i).expect("sends");
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let mut out: Vec<u8> = Vec::new();
        pump(&rx, &mut out, |w, i| {
            w.write_all(&i.to_le_bytes())?;
            Ok(true)
        })
        .expect("pumps");
        sender.join().expect("joins");
        let got: Vec<u32> = out
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, (0..2000).collect::<Vec<_>>());
        // false stops it
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..3u32 {
            tx.send(i).expect("sends");
        }
        let mut seen = Vec::new();
        pump(&rx, &mut Vec::new(), |_, i| {
            seen.push(i);
            Ok(i < 1)
        })
        .expect("pumps");
        assert_eq!(seen, vec![0, 1]);
    }

    #[test]
    fn values_survive_the_wire() {
        let t = Transcript {
            text: "一二".into(),
            score: Some(0.5),
            words: vec![WordTiming {
                word: "一".into(),
                start_ms: 1,
                end_ms: 2,
            }],
        };
        let ev = StreamEvent::Result {
            start_ms: 3,
            end_ms: 4,
            is_final: true,
            transcript: t.clone(),
        };
        let bytes = postcard::to_stdvec(&Event::from(ev.clone())).expect("encodes");
        let back: StreamEvent = decode::<Event>(&bytes).expect("decodes").into();
        assert_eq!(back, ev);
        let p = StreamParams {
            segmentation: Segmentation::FirstSentence,
            options: RecognitionOptions {
                add_punc: true,
                vocabulary_id: Some("v".into()),
                hot_words: Some(HotWords {
                    vocabulary_id: "v".into(),
                    version: 7,
                    words: std::sync::Arc::new(vec!["华为云".into(), "SIS".into()]),
                }),
                ..Default::default()
            },
            interim: true,
            vad_head_ms: 1,
            vad_tail_ms: 2,
            max_seconds: 3,
            sample_rate: 8000,
        };
        let back: StreamParams = Params::from(p.clone()).into();
        assert_eq!(format!("{back:?}"), format!("{p:?}"));
    }
}
