//! The speech engine: model packs, sherpa-onnx recognizers and the decode
//! scheduler that runs them on a bounded pool of worker threads.
//!
//! Architecture invariants:
//! - This is the only crate that depends on sherpa-onnx, and within it only
//!   `sherpa.rs` calls it.
//! - No pack reaches sherpa-onnx before [`pack::Pack::check`] (and, at server
//!   start, a child-process probe) accepted it: sherpa-onnx ends the process on
//!   configurations it rejects.
//! - Decoding never runs on the async runtime's threads: requests become jobs
//!   on a bounded queue; worker threads batch queued jobs for the same model
//!   into one multi-stream decode call. A full queue refuses new work
//!   ([`EngineError::Busy`]) instead of slowing everyone down.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod file;
pub mod install;
pub mod onnx_meta;
pub mod pack;
mod postprocess;
mod sherpa;
pub mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use sis_core::{Pcm, Property, RecognitionOptions, Transcript};

pub use pack::{Pack, PackError, PackKind};
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
        }
    }
}

/// A loaded ASR pack.
struct AsrModel {
    pack: Pack,
    recognizer: sherpa::Recognizer,
}

/// Summary of a loaded pack, for `/health` and `models list`.
#[derive(Clone, Debug)]
pub struct PackSummary {
    pub name: String,
    pub kind: PackKind,
    pub model_type: String,
    pub properties: Vec<String>,
}

struct Job {
    model: usize,
    pcm: Pcm,
    options: RecognitionOptions,
    reply: tokio::sync::oneshot::Sender<Result<Transcript, EngineError>>,
}

struct Shared {
    models: Vec<AsrModel>,
    punctuation: Option<sherpa_onnx::OfflinePunctuation>,
    vad_pack: Option<Pack>,
    config: EngineConfig,
}

pub struct Engine {
    shared: Arc<Shared>,
    by_property: HashMap<String, usize>,
    /// The pack real-time sessions of a property use: a streaming pack when
    /// one serves it, else an offline pack (VAD + re-decoding).
    realtime_by_property: HashMap<String, usize>,
    hub: stream::Hub,
    tx: Option<Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    summaries: Vec<PackSummary>,
}

/// Loads a checked pack in this process (used by the child-process probe).
pub fn probe_pack(pack: &Pack) -> Result<(), EngineError> {
    pack.check()?;
    match pack.manifest.kind {
        PackKind::OfflineAsr | PackKind::StreamingAsr => {
            smoke_recognizer(pack, &sherpa::load_recognizer(pack, 1)?);
        }
        PackKind::Vad => smoke_vad(pack)?,
        PackKind::Punctuation => smoke_punctuation(pack, &sherpa::load_punctuation(pack)?)?,
    }
    Ok(())
}

/// One 1 s decode of silence: proves the graph runs, not only loads, before
/// any client audio reaches it (a bad configuration can end the process on
/// the first decode rather than at load).
fn smoke_recognizer(pack: &Pack, rec: &sherpa::Recognizer) {
    let silence = vec![0f32; pack.manifest.sample_rate as usize];
    sherpa::decode_batch(rec, pack.manifest.sample_rate, &[&silence]);
}

fn smoke_vad(pack: &Pack) -> Result<(), EngineError> {
    let vad = sherpa::load_vad(pack, VadSettings::default(), 5.0)?;
    sherpa::vad_segments(&vad, &vec![0f32; sherpa::VAD_RATE as usize]);
    Ok(())
}

fn smoke_punctuation(pack: &Pack, p: &sherpa_onnx::OfflinePunctuation) -> Result<(), EngineError> {
    p.add_punctuation("今天天气很好我们去公园 hello world 好吗")
        .map(|_| ())
        .ok_or_else(|| {
            EngineError::Load(format!(
                "punctuation pack {} returned nothing for a test sentence",
                pack.name()
            ))
        })
}

fn probe_in_child(exe: &std::path::Path, pack: &Pack) -> Result<(), EngineError> {
    let out = std::process::Command::new(exe)
        .args(["models", "probe"])
        .arg(&pack.dir)
        .output()
        .map_err(|e| EngineError::Load(format!("cannot run probe {}: {e}", exe.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    Err(EngineError::Pack(PackError {
        pack: pack.dir.display().to_string(),
        problem: format!(
            "sherpa-onnx rejected the pack in a probe process ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ),
    }))
}

/// What [`Engine::load`] does before it loads anything, without loading:
/// opens and checks every pack, and probes it in a child process when
/// `probe_exe` is set. Used by a server that loads its engines in worker
/// processes, so a broken pack stops it with the pack's name.
pub fn check_packs(config: &EngineConfig) -> Result<Vec<Pack>, EngineError> {
    let mut packs = Vec::new();
    for dir in &config.packs {
        let pack = Pack::open(dir)?;
        pack.check()?;
        if let Some(exe) = &config.probe_exe {
            probe_in_child(exe, &pack)?;
        }
        packs.push(pack);
    }
    Ok(packs)
}

impl Engine {
    /// Checks, probes and loads every pack, then starts the workers. Any bad
    /// pack fails the whole load with a message naming it.
    pub fn load(config: EngineConfig) -> Result<Engine, EngineError> {
        let mut models = Vec::new();
        let mut punctuation = None;
        let mut vad_pack = None;
        let mut by_property = HashMap::new();
        let mut realtime_by_property: HashMap<String, usize> = HashMap::new();
        let mut summaries = Vec::new();
        for dir in &config.packs {
            let pack = Pack::open(dir)?;
            pack.check()?;
            if let Some(exe) = &config.probe_exe {
                probe_in_child(exe, &pack)?;
            }
            let m = &pack.manifest;
            summaries.push(PackSummary {
                name: m.name.clone(),
                kind: m.kind,
                model_type: m.model_type.clone(),
                properties: m.properties.clone(),
            });
            match m.kind {
                PackKind::OfflineAsr | PackKind::StreamingAsr => {
                    let idx = models.len();
                    for p in &m.properties {
                        // Streaming packs win over offline ones for real time.
                        let better = match realtime_by_property.get(p) {
                            None => true,
                            Some(&j) => {
                                let other: &AsrModel = &models[j];
                                other.pack.manifest.kind == PackKind::OfflineAsr
                                    && m.kind == PackKind::StreamingAsr
                            }
                        };
                        if better {
                            realtime_by_property.insert(p.clone(), idx);
                        }
                    }
                    for p in &m.properties {
                        // Offline packs win over streaming ones for whole-file requests.
                        let better = match by_property.get(p) {
                            None => true,
                            Some(&j) => {
                                let other: &AsrModel = &models[j];
                                other.pack.manifest.kind == PackKind::StreamingAsr
                                    && m.kind == PackKind::OfflineAsr
                            }
                        };
                        if better {
                            by_property.insert(p.clone(), idx);
                        }
                    }
                    let recognizer = sherpa::load_recognizer(&pack, config.threads_per_decode)?;
                    // in this process too: with --no-probe nothing else runs
                    // the graph before the first client does
                    smoke_recognizer(&pack, &recognizer);
                    models.push(AsrModel { pack, recognizer });
                }
                PackKind::Vad => {
                    smoke_vad(&pack)?;
                    vad_pack = Some(pack);
                }
                PackKind::Punctuation => {
                    let p = sherpa::load_punctuation(&pack)?;
                    smoke_punctuation(&pack, &p)?;
                    punctuation = Some(p);
                }
            }
        }
        let shared = Arc::new(Shared {
            models,
            punctuation,
            vad_pack,
            config: config.clone(),
        });
        let (tx, rx) = bounded::<Job>(config.queue.max(1));
        let mut workers = Vec::new();
        for i in 0..config.workers.max(1) {
            let shared = shared.clone();
            let rx = rx.clone();
            let vad = match (&shared.vad_pack, shared.config.use_vad) {
                (Some(p), true) => Some(sherpa::load_vad(p, shared.config.vad, 70.0)?),
                _ => None,
            };
            let handle = std::thread::Builder::new()
                .name(format!("decode-{i}"))
                .spawn(move || worker(shared, rx, vad))
                .map_err(|e| EngineError::Load(format!("cannot start decode worker: {e}")))?;
            workers.push(handle);
        }
        let hub = stream::Hub::start(
            shared.clone(),
            config.stream_workers,
            config.max_streams.max(1),
        )?;
        Ok(Engine {
            shared,
            by_property,
            realtime_by_property,
            hub,
            tx: Some(tx),
            workers,
            summaries,
        })
    }

    pub fn packs(&self) -> &[PackSummary] {
        &self.summaries
    }

    pub fn has_punctuation(&self) -> bool {
        self.shared.punctuation.is_some()
    }

    /// The sample rate audio for `property` is decoded at, if served.
    pub fn serves(&self, property: &Property) -> bool {
        self.by_property.contains_key(property.name())
    }

    /// Whether real-time sessions can be opened for `property`.
    pub fn serves_realtime(&self, property: &Property) -> bool {
        self.realtime_by_property.contains_key(property.name())
    }

    /// Whether real-time sessions of `property` run on a streaming pack
    /// (otherwise an offline pack, which needs the VAD pack for sentences).
    pub fn realtime_is_streaming(&self, property: &Property) -> bool {
        self.realtime_by_property
            .get(property.name())
            .and_then(|&i| self.shared.models.get(i))
            .is_some_and(|m| m.pack.manifest.kind == PackKind::StreamingAsr)
    }

    /// Whether sentence segmentation (a VAD pack) is available.
    pub fn has_vad(&self) -> bool {
        self.shared.vad_pack.is_some()
    }

    /// Opens a real-time session; its events arrive on `events`.
    pub fn open_stream(
        &self,
        property: &Property,
        params: stream::StreamParams,
        events: stream::EventSender,
    ) -> Result<stream::StreamHandle, EngineError> {
        let model = *self
            .realtime_by_property
            .get(property.name())
            .ok_or_else(|| EngineError::UnknownProperty(property.name().to_string()))?;
        self.hub.open(model, params, events)
    }

    /// Real-time sessions open now.
    pub fn active_streams(&self) -> usize {
        self.hub.active()
    }

    /// The pack that serves `property` for whole audio (short audio, files).
    fn model_for(&self, property: &Property) -> Result<usize, EngineError> {
        self.by_property
            .get(property.name())
            .copied()
            .ok_or_else(|| EngineError::UnknownProperty(property.name().to_string()))
    }

    /// Recognises a whole utterance. `pcm` must be at the property's rate.
    pub async fn recognize(
        &self,
        property: &Property,
        pcm: Pcm,
        options: RecognitionOptions,
    ) -> Result<Transcript, EngineError> {
        let model = self.model_for(property)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(EngineError::ShuttingDown)?;
        tx.try_send(Job {
            model,
            pcm,
            options,
            reply,
        })
        .map_err(|e| match e {
            TrySendError::Full(_) => EngineError::Busy,
            TrySendError::Disconnected(_) => EngineError::ShuttingDown,
        })?;
        rx.await
            .map_err(|_| EngineError::Failed("decode worker stopped".into()))?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Pads speech regions and joins those separated by short pauses, so words at
/// the edges are not clipped.
fn regions(raw: &[(usize, usize)], len: usize, rate: usize) -> Vec<(usize, usize)> {
    // Silero reports onsets late on soft starts (a leading 一 was clipped with
    // 250 ms), so the lead pad is longer than the tail pad.
    let lead = rate * 2 / 5;
    let pad = rate / 4;
    let join_gap = rate * 3 / 10;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in raw {
        let s = s.saturating_sub(lead);
        let e = (e + pad).min(len);
        match out.last_mut() {
            Some(last) if s <= last.1 + join_gap => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn worker(shared: Arc<Shared>, rx: Receiver<Job>, vad: Option<sherpa_onnx::VoiceActivityDetector>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < shared.config.max_batch {
            // Batch only what is already waiting: never delay a lone request.
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Group by model so each group is one multi-stream decode.
        let mut groups: HashMap<usize, Vec<Job>> = HashMap::new();
        for j in batch {
            groups.entry(j.model).or_default().push(j);
        }
        for (model, jobs) in groups {
            run_group(&shared, model, jobs, vad.as_ref());
        }
    }
}

fn run_group(
    shared: &Shared,
    model: usize,
    jobs: Vec<Job>,
    vad: Option<&sherpa_onnx::VoiceActivityDetector>,
) {
    let m = &shared.models[model];
    let rate = m.pack.manifest.sample_rate;
    // Audio at the model's rate, and the speech regions to decode.
    let prepared: Vec<(Pcm, Vec<(usize, usize)>)> = jobs
        .iter()
        .map(|j| {
            let audio = if j.pcm.sample_rate == rate {
                j.pcm.clone()
            } else {
                sis_audio::resample(&j.pcm, rate)
            };
            let len = audio.samples.len();
            let long_enough = len as f32 >= shared.config.vad_min_audio_s * rate as f32;
            let regs = match vad {
                Some(v) if rate == 16000 && long_enough => {
                    regions(&sherpa::vad_segments(v, &audio.samples), len, rate as usize)
                }
                _ => vec![(0, len)],
            };
            (audio, regs)
        })
        .collect();
    let segments: Vec<&[f32]> = prepared
        .iter()
        .flat_map(|(a, regs)| regs.iter().map(move |&(s, e)| &a.samples[s..e]))
        .collect();
    let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sherpa::decode_batch(&m.recognizer, rate, &segments)
    }));
    let mut results = match results {
        Ok(r) => r.into_iter(),
        Err(_) => {
            for j in jobs {
                let _ = j
                    .reply
                    .send(Err(EngineError::Failed("decoder panicked".into())));
            }
            return;
        }
    };
    for (job, (audio, regs)) in jobs.into_iter().zip(prepared) {
        let mut pieces = Vec::new();
        for &(s, _) in &regs {
            let r = results.next().unwrap_or_default();
            pieces.push((s as f32 / rate as f32, r));
        }
        let duration_s = audio.samples.len() as f32 / rate as f32;
        let t = postprocess::transcript(
            &pieces,
            duration_s,
            &job.options,
            shared.punctuation.as_ref(),
        );
        let _ = job.reply.send(Ok(t));
    }
}

#[cfg(test)]
mod tests {
    use super::regions;

    #[test]
    fn regions_pad_and_join() {
        // 16 kHz: lead 6400, tail 4000 samples, join gaps under 4800
        let r = regions(
            &[(8000, 16000), (20000, 30000), (60000, 70000)],
            72000,
            16000,
        );
        assert_eq!(r, vec![(1600, 34000), (53600, 72000)]);
        assert!(regions(&[], 100, 16000).is_empty());
    }
}

/// sherpa-onnx with nothing around it: the peer that the short-audio benchmark
/// compares the service with (same pack, same decode call, same process).
pub mod bench_support {
    use crate::{pack::Pack, sherpa, EngineError};

    pub struct DirectDecoder {
        recognizer: sherpa::Recognizer,
        rate: u32,
    }

    impl DirectDecoder {
        pub fn new(pack: &Pack) -> Result<DirectDecoder, EngineError> {
            pack.check()?;
            Ok(DirectDecoder {
                recognizer: sherpa::load_recognizer(pack, 1)?,
                rate: pack.manifest.sample_rate,
            })
        }

        /// Decodes one utterance; returns its tokens joined.
        pub fn decode(&self, samples: &[f32]) -> String {
            sherpa::decode_batch(&self.recognizer, self.rate, &[samples])
                .into_iter()
                .flat_map(|r| r.tokens)
                .collect()
        }
    }
}
