//! Real-time recognition sessions (RASR). A fixed pool of stream worker
//! threads owns every live session's recognizer stream and VAD (a session is
//! pinned to one worker for its life, because sherpa-onnx's VAD may not move
//! between threads). A worker applies the queued commands of its sessions
//! and, when a batch is due ([`Batching`]), decodes the oldest ready streams
//! of one model in one multi-stream call; the tails of ended whole-stream
//! sessions (no VAD) go to a queue every worker takes from, first. Events go
//! back on each session's channel. No thread per connection; nothing decodes
//! on the async runtime.

#[cfg(test)]
mod tests;
mod worker;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Sender};
use sis_core::{RecognitionOptions, Transcript};

use crate::postprocess::Postprocessor;
use crate::registry::{AsrModel, VadSource};
use crate::EngineError;
use worker::StreamWorker;
pub use worker::INTERIM_STEP_S;

/// When a stream worker runs a decode pass (`EngineConfig`): once
/// `max_batch` of its streams are ready, or when the first ready one has
/// waited `wait`. A longer wait makes larger multi-stream calls (less CPU
/// per stream with a model whose cost is in the network) at the price of up
/// to `wait` of latency per chunk; zero decodes whatever is ready at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    pub max_batch: usize,
    pub wait: std::time::Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch: DEFAULT_MAX_BATCH,
            wait: std::time::Duration::from_millis(DEFAULT_BATCH_WAIT_MS),
        }
    }
}

/// Ready streams that start a decode pass without waiting.
pub const DEFAULT_MAX_BATCH: usize = 8;
/// How long the first ready stream waits for others (ms).
pub const DEFAULT_BATCH_WAIT_MS: u64 = 20;

/// Multi-stream decode calls of every stream worker, and the streams they
/// decoded: their ratio is the batch size achieved.
#[derive(Debug, Default)]
pub struct BatchStats {
    calls: AtomicU64,
    streams: AtomicU64,
    /// Each call's size, for the server's metrics.
    observer: Arc<crate::observe::Observer>,
}

impl BatchStats {
    pub(crate) fn new(observer: Arc<crate::observe::Observer>) -> BatchStats {
        BatchStats {
            observer,
            ..BatchStats::default()
        }
    }

    /// `calls` decode calls decoded `streams` streams in all (their sizes
    /// observed as even shares).
    pub(crate) fn record(&self, calls: usize, streams: usize) {
        self.calls.fetch_add(calls as u64, Ordering::Relaxed);
        self.streams.fetch_add(streams as u64, Ordering::Relaxed);
        for i in 0..calls {
            let share = streams / calls + usize::from(i < streams % calls);
            self.observer
                .record(crate::observe::Observation::StreamBatch(
                    u32::try_from(share).unwrap_or(u32::MAX),
                ));
        }
    }

    /// (decode calls, streams decoded in them) so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.streams.load(Ordering::Relaxed),
        )
    }

    /// Logs the totals (at the end of an engine's life).
    pub fn log(&self) {
        let (calls, streams) = self.totals();
        if calls > 0 {
            tracing::info!(
                calls,
                streams,
                streams_per_call = format!("{:.2}", streams as f64 / calls as f64),
                "real-time decode calls"
            );
        }
    }
}

/// How a session segments its audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segmentation {
    /// One utterance: the whole stream (short-stream).
    Whole,
    /// Sentences split by the VAD, each recognised (continue-stream).
    Continuous,
    /// The first sentence only; VOICE_* events (sentence-stream).
    FirstSentence,
}

#[derive(Clone, Debug)]
pub struct StreamParams {
    pub segmentation: Segmentation,
    pub options: RecognitionOptions,
    pub interim: bool,
    pub vad_head_ms: u32,
    pub vad_tail_ms: u32,
    pub max_seconds: u32,
    /// Sample rate of the audio the session will send (8000 or 16000).
    pub sample_rate: u32,
}

/// What a session reports, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    VoiceStart {
        ms: u64,
    },
    VoiceEnd {
        ms: u64,
    },
    ExceededSilence {
        ms: u64,
    },
    /// Word times in `transcript` are ms from the session start.
    Result {
        start_ms: u64,
        end_ms: u64,
        is_final: bool,
        transcript: Transcript,
    },
    /// After `end(false)`: every result has been sent.
    Finished,
    Failed(String),
}

/// Where a session's events go: a channel to the session's task in one
/// process, or straight onto the protocol pipe in an engine worker (no hop
/// through a forwarding task). Sending never blocks; a receiver that is gone
/// is ignored.
#[derive(Clone)]
pub struct EventSender(std::sync::Arc<dyn Fn(StreamEvent) + Send + Sync>);

impl EventSender {
    pub fn new(f: impl Fn(StreamEvent) + Send + Sync + 'static) -> Self {
        EventSender(std::sync::Arc::new(f))
    }

    pub fn send(&self, event: StreamEvent) {
        (self.0)(event)
    }
}

impl From<tokio::sync::mpsc::UnboundedSender<StreamEvent>> for EventSender {
    fn from(tx: tokio::sync::mpsc::UnboundedSender<StreamEvent>) -> Self {
        EventSender::new(move |e| {
            let _ = tx.send(e);
        })
    }
}

/// What a session's handle asks of its stream worker.
enum Cmd {
    Open {
        id: u64,
        model: Arc<AsrModel>,
        params: Box<StreamParams>,
        events: EventSender,
    },
    Audio {
        id: u64,
        samples: Vec<f32>,
        /// The session's count of samples sent and not yet taken by the worker.
        backlog: Arc<AtomicUsize>,
    },
    End {
        id: u64,
        cancel: bool,
    },
    Close {
        id: u64,
    },
}

pub(crate) struct Hub {
    workers: Vec<Sender<Cmd>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    next_id: AtomicU64,
    active: Arc<AtomicUsize>,
    capacity: usize,
    stats: Arc<BatchStats>,
}

/// A live session; dropping it frees everything it holds on its worker.
pub struct StreamHandle {
    id: u64,
    tx: Sender<Cmd>,
    active: Arc<AtomicUsize>,
    backlog: Arc<AtomicUsize>,
}

impl StreamHandle {
    /// Audio at the session's sample rate.
    pub fn audio(&self, samples: Vec<f32>) {
        self.backlog.fetch_add(samples.len(), Ordering::SeqCst);
        let _ = self.tx.send(Cmd::Audio {
            id: self.id,
            samples,
            backlog: self.backlog.clone(),
        });
    }

    /// Samples sent that the worker has not taken yet. A connection stops
    /// reading its socket while this is high, so a client that sends faster
    /// than the workers decode is slowed down by TCP instead of filling memory.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::SeqCst)
    }

    /// Ends the session: without `cancel` the remaining results follow, then
    /// [`StreamEvent::Finished`].
    pub fn end(&self, cancel: bool) {
        let _ = self.tx.send(Cmd::End {
            id: self.id,
            cancel,
        });
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Close { id: self.id });
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hub {
    /// Starts `workers` stream workers; at most `capacity` sessions may be
    /// open at once. Sessions that segment by VAD need `vad`.
    pub(crate) fn start(
        post: Arc<Postprocessor>,
        vad: Option<VadSource>,
        workers: usize,
        capacity: usize,
        batching: Batching,
        observer: Arc<crate::observe::Observer>,
    ) -> Result<Hub, EngineError> {
        let mut txs = Vec::new();
        let mut threads = Vec::new();
        let stats = Arc::new(BatchStats::new(observer));
        let endings = unbounded();
        for i in 0..workers.max(1) {
            let (tx, rx) = unbounded();
            let (post, vad, stats, endings) =
                (post.clone(), vad.clone(), stats.clone(), endings.clone());
            let t = std::thread::Builder::new()
                .name(format!("stream-{i}"))
                .spawn(move || StreamWorker::new(post, vad, batching, endings, stats).run(rx))
                .map_err(|e| EngineError::Load(format!("cannot start stream worker: {e}")))?;
            txs.push(tx);
            threads.push(t);
        }
        Ok(Hub {
            workers: txs,
            threads,
            next_id: AtomicU64::new(1),
            active: Arc::new(AtomicUsize::new(0)),
            capacity,
            stats,
        })
    }

    pub(crate) fn open(
        &self,
        model: Arc<AsrModel>,
        params: StreamParams,
        events: EventSender,
    ) -> Result<StreamHandle, EngineError> {
        // Admission: refuse beyond capacity instead of slowing everyone.
        let prev = self.active.fetch_add(1, Ordering::SeqCst);
        if prev >= self.capacity {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::Busy);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tx = self.workers[(id as usize) % self.workers.len()].clone();
        let handle = StreamHandle {
            id,
            tx: tx.clone(),
            active: self.active.clone(),
            backlog: Arc::default(),
        };
        tx.send(Cmd::Open {
            id,
            model,
            params: Box::new(params),
            events,
        })
        .map_err(|_| EngineError::ShuttingDown)?;
        Ok(handle)
    }

    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub(crate) fn batch_stats(&self) -> &BatchStats {
        &self.stats
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.workers.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.stats.log();
    }
}
