//! The server's engine: [`EnginePool`] answers as `sis_engine::Engine` does,
//! but the engine itself runs in K supervised worker processes (`sisd
//! engine-worker`, [`run_worker`]), so the server process holds no
//! sherpa-onnx state. A native crash (an `_Exit`, an abort, a segfault in
//! sherpa-onnx or onnxruntime) ends one worker: the short-audio requests,
//! real-time sessions and file transcriptions on it end with
//! [`EngineError::WorkerLost`] (sessions: `StreamEvent::Failed`), the
//! worker is started again with backoff, and every other worker goes on.
//!
//! With K = 0 the engine runs in the server process, as before (no
//! isolation; for comparison and debugging).
//!
//! Architecture invariants:
//! - With K ≥ 1 nothing in the server process calls sherpa-onnx: packs are
//!   checked (`Pack::check`, no sherpa-onnx) and probed in child processes,
//!   then loaded only by workers.
//! - Work goes to the least-loaded ready worker (requests + sessions +
//!   files on it); a session stays on its worker for its life.
//! - Every queue stays bounded as in one process: a session's backlog is
//!   the samples sent minus those its worker reports taken, a file
//!   transcription has at most a few pushes in flight, and the decode
//!   queue is split between the workers.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod remote;
mod wire;
mod worker;

use sis_core::{Pcm, Property, RecognitionOptions, Transcript};
use sis_engine::file::FileSentence;
use sis_engine::stream::{EventSender, StreamParams};
use sis_engine::{
    Engine, EngineConfig, EngineError, FileRequest, PackKind, PackSummary, UtteranceRequest,
};

pub use worker::run_worker;

/// One worker slot, for `/health`.
#[derive(Clone, Debug)]
pub struct WorkerStatus {
    pub index: usize,
    /// The running process (none while it is being restarted).
    pub pid: Option<u32>,
    /// `starting`, `ready` or `restarting`.
    pub state: &'static str,
    /// Times this slot's worker was started again after dying.
    pub restarts: u32,
    /// Work on it now: short-audio requests, sessions, file transcriptions.
    pub requests: usize,
    pub sessions: usize,
    pub files: usize,
}

enum Inner {
    Local(Box<Engine>),
    Remote(remote::Remote),
}

/// The engine the server talks to; see the crate documentation.
pub struct EnginePool {
    inner: Inner,
    packs: Vec<PackSummary>,
    /// The SIS voices TTS packs read (`sis_engine::choose_voices`).
    voices: std::collections::HashMap<String, (usize, i64)>,
}

fn kind_from_str(s: &str) -> Option<PackKind> {
    [
        PackKind::OfflineAsr,
        PackKind::StreamingAsr,
        PackKind::Vad,
        PackKind::Punctuation,
        PackKind::Tts,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

impl EnginePool {
    /// Checks and probes every pack (in this process, without sherpa-onnx,
    /// and in probe processes), then starts `workers` engine worker
    /// processes, which load in parallel; returns when all are ready. With
    /// `workers` = 0 the engine is loaded in this process instead.
    pub fn start(config: EngineConfig, workers: usize) -> Result<EnginePool, EngineError> {
        if workers == 0 {
            let engine = Engine::load(config)?;
            let packs = engine.packs().to_vec();
            return Ok(EnginePool {
                inner: Inner::Local(Box::new(engine)),
                voices: sis_engine::choose_voices(&packs),
                packs,
            });
        }
        sis_engine::check_packs(&config)?;
        let remote = remote::Remote::start(&config, workers)?;
        let packs: Vec<PackSummary> = remote
            .catalog
            .info
            .packs
            .iter()
            .filter_map(|p| {
                Some(PackSummary {
                    name: p.name.clone(),
                    kind: kind_from_str(&p.kind)?,
                    model_type: p.model_type.clone(),
                    properties: p.properties.clone(),
                    test_only: p.test_only,
                    speakers: p.speakers.clone(),
                })
            })
            .collect();
        Ok(EnginePool {
            inner: Inner::Remote(remote),
            voices: sis_engine::choose_voices(&packs),
            packs,
        })
    }

    pub fn packs(&self) -> &[PackSummary] {
        &self.packs
    }

    /// The worker processes (empty when the engine runs in this process).
    pub fn workers(&self) -> Vec<WorkerStatus> {
        match &self.inner {
            Inner::Local(_) => Vec::new(),
            Inner::Remote(r) => r.workers(),
        }
    }

    /// What the engine observed of its work since the last call (decode
    /// call sizes, queue waits, real-time factors), for the metrics.
    pub fn take_observations(&self) -> Vec<sis_engine::observe::Observation> {
        match &self.inner {
            Inner::Local(e) => e.take_observations(),
            Inner::Remote(r) => r.observer.take(),
        }
    }

    pub fn has_punctuation(&self) -> bool {
        match &self.inner {
            Inner::Local(e) => e.has_punctuation(),
            Inner::Remote(r) => r.catalog.info.has_punctuation,
        }
    }

    /// Whether a pack serves `property` for whole audio.
    pub fn serves(&self, property: &Property) -> bool {
        match &self.inner {
            Inner::Local(e) => e.serves(property),
            Inner::Remote(r) => r.catalog.serves(property),
        }
    }

    /// Whether real-time sessions can be opened for `property`.
    pub fn serves_realtime(&self, property: &Property) -> bool {
        match &self.inner {
            Inner::Local(e) => e.serves_realtime(property),
            Inner::Remote(r) => r.catalog.serves_realtime(property),
        }
    }

    /// Whether real-time sessions of `property` run on a streaming pack.
    pub fn realtime_is_streaming(&self, property: &Property) -> bool {
        match &self.inner {
            Inner::Local(e) => e.realtime_is_streaming(property),
            Inner::Remote(r) => r.catalog.realtime_is_streaming(property),
        }
    }

    /// Whether sentence segmentation (a VAD pack) is available.
    pub fn has_vad(&self) -> bool {
        match &self.inner {
            Inner::Local(e) => e.has_vad(),
            Inner::Remote(r) => r.catalog.info.has_vad,
        }
    }

    /// Real-time sessions open now.
    pub fn active_streams(&self) -> usize {
        match &self.inner {
            Inner::Local(e) => e.active_streams(),
            Inner::Remote(r) => r.active_streams(),
        }
    }

    /// Recognises a whole utterance (see `Engine::recognize`).
    pub async fn recognize(
        &self,
        property: &Property,
        pcm: Pcm,
        options: RecognitionOptions,
    ) -> Result<Transcript, EngineError> {
        let request = UtteranceRequest {
            property: property.clone(),
            pcm,
            options,
        };
        match &self.inner {
            Inner::Local(e) => e.recognize(request).await,
            Inner::Remote(r) => r.recognize(request).await,
        }
    }

    /// Whether an installed TTS pack reads the SIS voice `voice`.
    pub fn reads_voice(&self, voice: &str) -> bool {
        self.voices.contains_key(voice)
    }

    /// One sentence read by the TTS pack of `voice` (see
    /// `Engine::synthesize`), in a worker process: a native crash there is
    /// [`EngineError::WorkerLost`] for the sentences on it, nothing more.
    pub async fn synthesize(
        &self,
        voice: &str,
        text: String,
        speed: f32,
    ) -> Result<sis_engine::tts::Voiced, EngineError> {
        match &self.inner {
            Inner::Local(e) => e.synthesize(voice, text, speed).await,
            Inner::Remote(r) => r.synthesize(voice, text, speed).await,
        }
    }

    /// Opens a real-time session; its events arrive on `events`.
    pub fn open_stream(
        &self,
        property: &Property,
        params: StreamParams,
        events: EventSender,
    ) -> Result<StreamHandle, EngineError> {
        Ok(StreamHandle(match &self.inner {
            Inner::Local(e) => StreamInner::Local(e.open_stream(property, params, events)?),
            Inner::Remote(r) => StreamInner::Remote(r.open_stream(property, params, events)?),
        }))
    }

    /// A transcriber for a recorded file (see `Engine::file_transcriber`).
    pub fn file_transcriber(
        &self,
        property: &Property,
        input_rate: u32,
        channels: usize,
        options: RecognitionOptions,
    ) -> Result<FileTranscriber, EngineError> {
        let request = FileRequest {
            property: property.clone(),
            input_rate,
            channels,
            options,
        };
        Ok(FileTranscriber(match &self.inner {
            Inner::Local(e) => FileInner::Local(e.file_transcriber(request)?),
            Inner::Remote(r) => FileInner::Remote(r.file_transcriber(request)?),
        }))
    }
}

enum StreamInner {
    Local(sis_engine::stream::StreamHandle),
    Remote(remote::RemoteStream),
}

/// A live real-time session; dropping it frees everything it holds.
pub struct StreamHandle(StreamInner);

impl StreamHandle {
    /// Audio at the session's sample rate.
    pub fn audio(&self, samples: Vec<f32>) {
        match &self.0 {
            StreamInner::Local(h) => h.audio(samples),
            StreamInner::Remote(h) => h.audio(samples),
        }
    }

    /// Samples sent that the session's stream worker has not taken yet
    /// (for backpressure).
    pub fn backlog(&self) -> usize {
        match &self.0 {
            StreamInner::Local(h) => h.backlog(),
            StreamInner::Remote(h) => h.backlog(),
        }
    }

    /// Ends the session: without `cancel` the remaining results follow,
    /// then `StreamEvent::Finished`.
    pub fn end(&self, cancel: bool) {
        match &self.0 {
            StreamInner::Local(h) => h.end(cancel),
            StreamInner::Remote(h) => h.end(cancel),
        }
    }
}

enum FileInner {
    Local(sis_engine::file::FileTranscriber),
    Remote(remote::RemoteFile),
}

/// A recorded-file transcription. Its methods block: run it on a blocking
/// thread. A worker's death is [`EngineError::WorkerLost`]: the whole file
/// may be tried again.
pub struct FileTranscriber(FileInner);

impl FileTranscriber {
    /// The next piece of audio: one slice per channel, at the input rate.
    pub fn push(&mut self, planar: &[Vec<f32>]) -> Result<(), EngineError> {
        match &mut self.0 {
            FileInner::Local(t) => t.push(planar),
            FileInner::Remote(t) => t.push(planar),
        }
    }

    /// Ends the audio; the sentences in order of start time.
    pub fn finish(self) -> Result<Vec<FileSentence>, EngineError> {
        match self.0 {
            FileInner::Local(t) => t.finish(),
            FileInner::Remote(t) => t.finish(),
        }
    }

    /// Sentences recognised so far (for progress).
    pub fn recognised(&self) -> usize {
        match &self.0 {
            FileInner::Local(t) => t.recognised(),
            FileInner::Remote(t) => t.recognised(),
        }
    }
}

/// The pool as the synthesizer's [`sis_engine::tts::PackVoices`]: each
/// sentence goes to a worker process.
pub struct PoolVoices(pub std::sync::Arc<EnginePool>);

impl sis_engine::tts::PackVoices for PoolVoices {
    fn reads(&self, voice: &str) -> bool {
        self.0.reads_voice(voice)
    }

    fn read(&self, voice: &str, text: String, speed: f32) -> sis_engine::tts::Reading {
        let (pool, voice) = (self.0.clone(), voice.to_string());
        Box::pin(async move {
            pool.synthesize(&voice, text, speed)
                .await
                .map_err(|e| sis_engine::tts::TtsError::Failed(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::kind_from_str;
    use sis_engine::PackKind;

    #[test]
    fn pack_kinds_round_trip() {
        for k in [
            PackKind::OfflineAsr,
            PackKind::StreamingAsr,
            PackKind::Vad,
            PackKind::Punctuation,
            PackKind::Tts,
        ] {
            assert_eq!(kind_from_str(k.as_str()), Some(k));
        }
        assert_eq!(kind_from_str("asr"), None);
    }
}
