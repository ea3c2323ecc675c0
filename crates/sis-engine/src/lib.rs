//! The speech engine: model packs, sherpa-onnx recognizers, and the three
//! ways audio reaches them — the decode scheduler for whole utterances
//! (`batch.rs`), the real-time stream workers (`stream.rs`) and the file
//! pipeline (`file.rs`). [`Engine`] puts them together.
//!
//! Speech synthesis is [`tts`]: espeak-ng run as a separate process, no
//! sherpa-onnx (it runs in the server process, not in engine workers).
//!
//! Architecture invariants:
//! - This is the only crate that depends on sherpa-onnx, and within it only
//!   `sherpa.rs` names it: `clippy.toml` forbids its types and functions
//!   elsewhere, and `tests/sherpa_boundary.rs` fails on any other mention.
//! - No pack reaches sherpa-onnx before [`pack::Pack::check`] (and, at server
//!   start, a child-process probe) accepted it: sherpa-onnx ends the process on
//!   configurations it rejects (`registry.rs`).
//! - Every recognition stream is made by one function
//!   (`sherpa::Recognizer::create_stream`) from the request's
//!   [`DecodingContext`]; a request's hot words reach sherpa-onnx only
//!   there, only for a transducer it biases (`decoding::hot_word_support`),
//!   and only as a list `hotwords::check_bias_list` accepted; every other
//!   pack gets them applied to the text after decoding (`hotwords.rs`).
//! - The scheduler, the stream workers and the file pipeline get only what
//!   they use: the chosen model (`registry::AsrModel`), a VAD source and the
//!   post-processor; none sees the registry or the `Engine`
//!   (`tests/sherpa_boundary.rs`).
//! - Decoding never runs on the async runtime's threads: requests become jobs
//!   on a bounded queue; worker threads batch queued jobs for the same model
//!   into one multi-stream decode call. A full queue refuses new work
//!   ([`EngineError::Busy`]) instead of slowing everyone down.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod batch;
pub mod decoding;
pub mod file;
pub mod hotwords;
pub mod install;
pub mod observe;
pub mod onnx_meta;
pub mod pack;
mod postprocess;
mod registry;
mod sherpa;
pub mod stream;
#[cfg(test)]
mod testsupport;
pub mod tts;

use std::path::PathBuf;
use std::sync::Arc;

use sis_core::{Pcm, Property, RecognitionOptions, Transcript};

pub use decoding::{DecodingContext, DecodingMethod, HotWordSupport};
pub use pack::{Pack, PackError, PackKind};
pub use registry::{check_packs, choose_voices, probe_pack, PackSummary};
pub use sherpa::VadSettings;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("property {0} is not served by any installed model pack")]
    UnknownProperty(String),
    #[error("the server is at capacity; try again later")]
    Busy,
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("{0}")]
    Load(String),
    #[error("recognition failed: {0}")]
    Failed(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The engine worker process serving the request or session stopped
    /// (a native crash), or none is running; the caller may retry.
    #[error("engine worker lost: {0}")]
    WorkerLost(String),
}

/// Validated engine settings (built once from the server's config).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Pack directories to load.
    pub packs: Vec<PathBuf>,
    /// Decode worker threads.
    pub workers: usize,
    /// Jobs that may wait for a worker; more are refused.
    pub queue: usize,
    /// Jobs one worker decodes together in one call.
    pub max_batch: usize,
    /// Threads sherpa-onnx uses inside one decode call.
    pub threads_per_decode: i32,
    /// Run `<exe> models probe <pack>` in a child process before loading a
    /// pack in this process.
    pub probe_exe: Option<PathBuf>,
    /// Split audio at pauses with the VAD pack (when installed) before decoding.
    pub use_vad: bool,
    /// Only audio at least this long is split by the VAD; shorter audio is
    /// decoded whole (splitting a few seconds gains nothing and costs a VAD pass).
    pub vad_min_audio_s: f32,
    pub vad: VadSettings,
    /// Real-time sessions that may be open at once; more are refused.
    pub max_streams: usize,
    /// Threads that run real-time sessions.
    pub stream_workers: usize,
    /// When a stream worker runs a multi-stream decode pass.
    pub stream_batching: stream::Batching,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        EngineConfig {
            packs: vec![],
            workers: cores,
            queue: 256,
            max_batch: 8,
            threads_per_decode: 1,
            probe_exe: None,
            use_vad: true,
            vad_min_audio_s: 10.0,
            vad: VadSettings::default(),
            max_streams: 1000,
            stream_workers: cores,
            stream_batching: stream::Batching::default(),
        }
    }
}

/// A recorded file to transcribe: its property, rate and channel count,
/// and what the caller asked for.
#[derive(Clone, Debug)]
pub struct FileRequest {
    pub property: Property,
    pub input_rate: u32,
    pub channels: usize,
    pub options: RecognitionOptions,
}

/// A whole utterance to recognise (short audio): samples at the property's
/// rate, and what the caller asked for.
#[derive(Clone, Debug)]
pub struct UtteranceRequest {
    pub property: Property,
    pub pcm: Pcm,
    pub options: RecognitionOptions,
}

/// The engine: the packs and the three paths to them.
pub struct Engine {
    registry: registry::Registry,
    post: Arc<postprocess::Postprocessor>,
    scheduler: batch::DecodeScheduler,
    hub: stream::Hub,
    /// Syntheses by TTS packs at once (each on a blocking thread).
    tts_slots: Arc<tokio::sync::Semaphore>,
    observer: Arc<observe::Observer>,
}

impl Engine {
    /// Checks, probes and loads every pack, then starts the workers. Any bad
    /// pack fails the whole load with a message naming it.
    pub fn load(config: EngineConfig) -> Result<Engine, EngineError> {
        let (registry, punctuation) = registry::Registry::load(&config)?;
        let post = Arc::new(postprocess::Postprocessor::new(punctuation));
        let observer = Arc::new(observe::Observer::default());
        let scheduler = batch::DecodeScheduler::start(
            batch::SchedulerSettings {
                workers: config.workers,
                queue: config.queue,
                max_batch: config.max_batch,
                vad_min_audio_s: config.vad_min_audio_s,
            },
            post.clone(),
            registry.vad().filter(|_| config.use_vad),
            observer.clone(),
        )?;
        let hub = stream::Hub::start(
            post.clone(),
            registry.vad().cloned(),
            config.stream_workers,
            config.max_streams.max(1),
            config.stream_batching,
            observer.clone(),
        )?;
        Ok(Engine {
            registry,
            post,
            scheduler,
            hub,
            tts_slots: Arc::new(tokio::sync::Semaphore::new(config.workers.max(1))),
            observer,
        })
    }

    pub fn packs(&self) -> &[PackSummary] {
        self.registry.packs()
    }

    pub fn has_punctuation(&self) -> bool {
        self.post.has_punctuation()
    }

    /// Whether a pack serves `property` for whole audio.
    pub fn serves(&self, property: &Property) -> bool {
        self.registry.serves(property)
    }

    /// Whether real-time sessions can be opened for `property`.
    pub fn serves_realtime(&self, property: &Property) -> bool {
        self.registry.serves_realtime(property)
    }

    /// Whether real-time sessions of `property` run on a streaming pack
    /// (otherwise an offline pack, which needs the VAD pack for sentences).
    pub fn realtime_is_streaming(&self, property: &Property) -> bool {
        self.registry.realtime_is_streaming(property)
    }

    /// Whether sentence segmentation (a VAD pack) is available.
    pub fn has_vad(&self) -> bool {
        self.registry.vad().is_some()
    }

    /// Opens a real-time session; its events arrive on `events`.
    pub fn open_stream(
        &self,
        property: &Property,
        params: stream::StreamParams,
        events: stream::EventSender,
    ) -> Result<stream::StreamHandle, EngineError> {
        let model = self.registry.for_realtime(property)?;
        self.hub.open(model, params, events)
    }

    /// Real-time sessions open now.
    /// Whether an installed TTS pack reads the SIS voice `voice`.
    pub fn reads_voice(&self, voice: &str) -> bool {
        self.registry.for_voice(voice).is_some()
    }

    /// One sentence read with `voice` by the TTS pack that reads it, at
    /// `speed` (1 = the model's own pace), on a blocking thread (as many at
    /// once as the engine has decode workers).
    pub async fn synthesize(
        &self,
        voice: &str,
        text: String,
        speed: f32,
    ) -> Result<tts::Voiced, EngineError> {
        let (model, sid) = self
            .registry
            .for_voice(voice)
            .ok_or_else(|| EngineError::UnknownProperty(voice.to_string()))?;
        let sid = i32::try_from(sid).map_err(|_| EngineError::Failed("speaker id".into()))?;
        let _slot = self
            .tts_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        tokio::task::spawn_blocking(move || {
            let samples = model.tts.generate(&text, sid, speed)?;
            Ok(tts::Voiced {
                samples,
                sample_rate: model.tts.sample_rate(),
            })
        })
        .await
        .map_err(|e| EngineError::Failed(format!("a synthesis task failed: {e}")))?
    }

    /// (multi-stream decode calls, streams decoded in them) of the
    /// real-time sessions so far.
    pub fn stream_batch_totals(&self) -> (u64, u64) {
        self.hub.batch_stats().totals()
    }

    /// What the engine observed of its work since the last call (decode
    /// call sizes, queue waits, real-time factors), for the server's metrics.
    pub fn take_observations(&self) -> Vec<observe::Observation> {
        self.observer.take()
    }

    /// Logs [`Engine::stream_batch_totals`] (what the engine logs when it
    /// is dropped; for a process that exits without dropping it).
    pub fn log_stream_batches(&self) {
        self.hub.batch_stats().log();
    }

    pub fn active_streams(&self) -> usize {
        self.hub.active()
    }

    /// Recognises a whole utterance. Its audio must be at the property's rate.
    pub async fn recognize(&self, request: UtteranceRequest) -> Result<Transcript, EngineError> {
        let model = self.registry.for_whole_audio(&request.property)?;
        self.scheduler
            .recognize(model, request.pcm, request.options)
            .await
    }

    /// A transcriber for a recorded file, recognised with the offline pack
    /// serving its property (or a streaming one, if that is all there is).
    /// Needs the VAD pack.
    pub fn file_transcriber(
        &self,
        request: FileRequest,
    ) -> Result<file::FileTranscriber, EngineError> {
        let model = self.registry.for_whole_audio(&request.property)?;
        let vad = self
            .registry
            .vad()
            .ok_or_else(|| EngineError::Failed("file transcription needs the VAD pack".into()))?;
        file::FileTranscriber::start(
            model,
            vad,
            self.post.clone(),
            request.input_rate,
            request.channels,
            request.options,
        )
    }
}

/// sherpa-onnx with nothing around it: the peer that the short-audio benchmark
/// compares the service with (same pack, same decode call, same process).
pub mod bench_support {
    use crate::{pack::Pack, sherpa::Recognizer, DecodingContext, EngineError};

    pub struct DirectDecoder {
        recognizer: Recognizer,
        rate: u32,
    }

    impl DirectDecoder {
        pub fn new(pack: &Pack) -> Result<DirectDecoder, EngineError> {
            pack.check()?;
            Ok(DirectDecoder {
                recognizer: Recognizer::load(pack, 1)?,
                rate: pack.manifest.sample_rate,
            })
        }

        /// Decodes one utterance; returns its tokens joined.
        pub fn decode(&self, samples: &[f32]) -> String {
            self.recognizer
                .decode_batch(self.rate, &[(&DecodingContext::default(), samples)])
                .into_iter()
                .flat_map(|r| r.tokens)
                .collect()
        }
    }
}
