//! Recorded-file transcription jobs (SIS-API.md §7): the create and get
//! handlers, the workers that lease jobs from the store, and the callback
//! deliverer. Everything durable is in the store (`sis_store::jobs`), so any
//! number of `sisd` processes sharing one store share one queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sis_engine::EngineError;
use sis_fetch::{FetchError, FetchErrorKind, Fetcher};
use sis_pool::EnginePool;
use sis_protocol::transcriber::{
    self, AgentChannel, FileFormat, FileSegment, JobView, TranscriberRequest,
};
use sis_protocol::{ApiError, SisCode};
use sis_store::{JobStatus, Lease, Objects, Store};

use crate::auth::Principal;
use crate::errors::{from_engine, ErrorResponse};
use crate::server::{AppState, RequestId};

/// A job interrupted this many times (its worker died each time) ends in ERROR.
const MAX_ATTEMPTS: i64 = 3;
/// Runs of one lease's file through the engine: the engine worker running
/// it died each time (a file that kills every worker ends in ERROR).
const ENGINE_TRIES: u64 = 3;
/// Idle workers look for new jobs this often.
const POLL: Duration = Duration::from_millis(300);
/// Callback retries: doubling from 1 s, at most 10 minutes apart, 12 tries.
const CALLBACK_TRIES: i64 = 12;
/// Longest audio a job may have (SIS: 5 h).
const MAX_AUDIO_MS: u64 = 5 * 3600 * 1000;

/// Validated job settings (from the server's config).
#[derive(Clone, Debug)]
pub struct JobsConfig {
    pub workers: usize,
    /// A worker's lease on a job, renewed every third of it; a job whose
    /// worker died is taken again this long after its last renewal.
    pub lease_ms: i64,
    pub retention_ms: i64,
    pub spool: PathBuf,
    pub callback_key: Vec<u8>,
    /// Object storage for audio and results (`sis_store::Objects::open`).
    pub objects_url: Option<String>,
    /// Jobs of one project that this node runs at once (at most `workers`),
    /// so one project cannot hold every worker.
    pub project_max: usize,
    /// Callbacks delivered at once (each bounded by the fetch policy's
    /// `callback_timeout`).
    pub callback_concurrency: usize,
}

pub struct JobsState {
    pub store: Store,
    /// When set, downloaded audio is kept there until the job ends (a worker
    /// taking the job over reads it instead of data_url) and result documents
    /// live there instead of in the store.
    pub objects: Option<Objects>,
    pub engine: Arc<EnginePool>,
    pub fetcher: Fetcher,
    pub config: JobsConfig,
    /// On SIGTERM/SIGINT workers lease nothing more and give running jobs
    /// back to the queue.
    pub shutdown: crate::shutdown::Shutdown,
}

fn now_ms() -> i64 {
    sis_store::now_ms()
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [("content-type", "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

/// Where a fetch error is reported: the URL's own fault (SIS.0032) or the
/// network's (SIS.0001, like SIS's storage connection errors).
pub fn from_fetch(what: &str, e: &FetchError) -> ApiError {
    match e.kind() {
        FetchErrorKind::Forbidden | FetchErrorKind::BadUrl => {
            ApiError::invalid(format!("{what} is not allowed: {e}"))
        }
        FetchErrorKind::TooLarge => ApiError::invalid(format!(
            "{what}: the audio file is larger than the limit ({e})"
        )),
        _ => ApiError::new(
            SisCode::DependencyFailed,
            format!("{what} could not be fetched: {e}"),
        ),
    }
}

/// What the server can compute of `need_analysis_info`; the rest is refused.
fn check_analysis(req: &TranscriberRequest) -> Result<(), ApiError> {
    if let Some(a) = req.analysis {
        if a.diarization && a.channel == AgentChannel::Mono {
            return Err(ApiError::new(
                SisCode::Unsupported,
                "speaker diarization of mono audio needs a diarization model, and this server has none: \
                 set need_analysis_info.diarization to false, or send stereo audio with channel LEFT_AGENT or RIGHT_AGENT",
            ));
        }
    }
    Ok(())
}

pub async fn create_handler(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Extension(principal): Extension<Principal>,
    body: Body,
) -> Response {
    match create(&state.jobs, &principal.project_id, body).await {
        Ok(id) => json(StatusCode::OK, transcriber::create_response(&id)),
        Err(error) => {
            tracing::info!(request_id = rid.0, code = error.code.as_str(), msg = %error.message, "job rejected");
            ErrorResponse {
                error,
                request_id: rid.0,
            }
            .into_response()
        }
    }
}

async fn create(jobs: &JobsState, project: &str, body: Body) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(crate::server::body_error)?;
    let req = transcriber::parse_create(&bytes)?;
    if !jobs.engine.serves(&req.property) {
        return Err(from_engine(sis_engine::EngineError::UnknownProperty(
            req.property.name().to_string(),
        )));
    }
    check_analysis(&req)?;
    jobs.fetcher
        .check_url(&req.data_url)
        .map_err(|e| from_fetch("data_url", &e))?;
    if let Some(cb) = &req.callback_url {
        jobs.fetcher
            .check_url(cb)
            .map_err(|e| from_fetch("callback_url", &e))?;
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::invalid("body is not UTF-8"))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    jobs.store
        .create_job(&id, project, text, now_ms())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot store job");
            ApiError::new(SisCode::Internal, "internal service error")
        })?;
    tracing::info!(job_id = id, project, "job accepted");
    Ok(id)
}

pub async fn get_handler(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Extension(principal): Extension<Principal>,
    Path((_project, job_id)): Path<(String, String)>,
) -> Response {
    let job = state
        .jobs
        .store
        .job(&principal.project_id, &job_id, now_ms())
        .await;
    let error = match job {
        Ok(Some(j)) => match stored_document(&state.jobs, &j).await {
            Ok(document) => {
                let view = JobView {
                    status: j.status.as_str(),
                    create_ms: j.created_ms,
                    start_ms: j.started_ms,
                    finish_ms: j.finished_ms,
                    document: document.as_deref(),
                };
                return json(StatusCode::OK, transcriber::job_body(&view, None));
            }
            Err(e) => e,
        },
        Ok(None) => transcriber::not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read job");
            ApiError::new(SisCode::Internal, "internal service error")
        }
    };
    ErrorResponse {
        error,
        request_id: rid.0,
    }
    .into_response()
}

/// The job's result or error document, from the store or object storage.
async fn stored_document(jobs: &JobsState, j: &sis_store::Job) -> Result<Option<String>, ApiError> {
    match (j.status, &j.result_key) {
        (JobStatus::Finished, Some(key)) => {
            let unavailable = |msg: String| {
                tracing::error!(job_id = j.id, key, "{msg}");
                ApiError::new(
                    SisCode::DependencyFailed,
                    "the job's result cannot be read from object storage",
                )
                .with_status(500)
            };
            let Some(objects) = &jobs.objects else {
                return Err(unavailable(
                    "result in object storage, but none is configured".into(),
                ));
            };
            match objects.get(key).await {
                Ok(Some(b)) => String::from_utf8(b.to_vec())
                    .map(Some)
                    .map_err(|_| unavailable("result object is not UTF-8".into())),
                Ok(None) => Err(unavailable("result object is missing".into())),
                Err(e) => Err(unavailable(e.to_string())),
            }
        }
        (JobStatus::Finished, None) => Ok(j.result.clone()),
        (JobStatus::Error, _) => Ok(j.error.clone()),
        _ => Ok(None),
    }
}

/// Starts the job workers, the callback deliverer and the retention purge;
/// returns the workers, which end once the stop has begun and their jobs
/// are released.
pub fn spawn(state: Arc<JobsState>) -> Vec<tokio::task::JoinHandle<()>> {
    let fair = Arc::new(Fairness::new(state.config.project_max));
    let workers = (0..state.config.workers.max(1))
        .map(|i| {
            let (s, f) = (state.clone(), fair.clone());
            tokio::spawn(async move { worker(s, f, i).await })
        })
        .collect();
    let s = state.clone();
    tokio::spawn(async move { deliverer(s).await });
    let s = state;
    tokio::spawn(async move {
        loop {
            match s.store.purge_jobs(now_ms()).await {
                Ok(keys) => {
                    if let Some(objects) = &s.objects {
                        for k in keys {
                            if let Err(e) = objects.delete(&k).await {
                                tracing::warn!(key = k, error = %e, "deleting an expired object failed");
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "purging expired jobs failed"),
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    workers
}

/// The jobs each project runs on this node, so that one project cannot hold
/// every job worker (`JobsConfig::project_max`): the jobs of a project at its
/// limit are left in the queue for other nodes, or until one of its jobs ends.
struct Fairness {
    max: usize,
    running: std::sync::Mutex<HashMap<String, usize>>,
    /// Leases are taken one at a time, so that two workers cannot both take
    /// a project's last free place.
    leasing: tokio::sync::Mutex<()>,
}

/// A running job's place in its project's count; given back when dropped.
struct ProjectSlot {
    fair: Arc<Fairness>,
    project: String,
}

impl Fairness {
    fn new(max: usize) -> Fairness {
        Fairness {
            max: max.max(1),
            running: std::sync::Mutex::new(HashMap::new()),
            leasing: tokio::sync::Mutex::new(()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // the counts stay consistent even if a holder panicked
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The projects that run as many jobs here as they may.
    fn busy(&self) -> Vec<String> {
        self.counts()
            .iter()
            .filter(|(_, n)| **n >= self.max)
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn take(self: &Arc<Self>, project: &str) -> ProjectSlot {
        *self.counts().entry(project.to_string()).or_insert(0) += 1;
        ProjectSlot {
            fair: self.clone(),
            project: project.to_string(),
        }
    }
}

impl Drop for ProjectSlot {
    fn drop(&mut self) {
        let mut counts = self.fair.counts();
        if let Some(n) = counts.get_mut(&self.project) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.project);
            }
        }
    }
}

async fn worker(state: Arc<JobsState>, fair: Arc<Fairness>, i: usize) {
    loop {
        if state.shutdown.is_started() {
            return;
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let leased = {
            let _one_at_a_time = fair.leasing.lock().await;
            let busy = fair.busy();
            state
                .store
                .lease_job_except(&token, now_ms(), state.config.lease_ms, &busy)
                .await
                .map(|l| l.map(|lease| (fair.take(&lease.job.project_id), lease)))
        };
        match leased {
            Ok(Some((_slot, lease))) => {
                let id = lease.job.id.clone();
                tracing::info!(
                    job_id = id,
                    worker = i,
                    attempt = lease.job.attempts,
                    "job started"
                );
                run(&state, lease).await;
            }
            Ok(None) => tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = state.shutdown.started() => {}
            },
            Err(e) => {
                tracing::warn!(error = %e, "leasing a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

enum Outcome {
    Finished(String),
    Failed(ApiError),
    /// The lease went to another worker: write nothing.
    Lost,
    /// The server is stopping: the job goes back to the queue.
    Released,
}

async fn run(state: &Arc<JobsState>, lease: Lease) {
    let lost = Arc::new(AtomicBool::new(false));
    let lease_ms = state.config.lease_ms;
    let heartbeat = {
        let (store, id, token, lost) = (
            state.store.clone(),
            lease.job.id.clone(),
            lease.token.clone(),
            lost.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((lease_ms / 3) as u64)).await;
                match store.renew_lease(&id, &token, now_ms() + lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, job_id = id, "lease renewal failed"),
                }
            }
        })
    };
    let req = transcriber::parse_create(lease.job.request.as_bytes());
    let outcome = match &req {
        _ if lease.job.attempts > MAX_ATTEMPTS => Outcome::Failed(ApiError::new(
            SisCode::Internal,
            format!("processing was interrupted {MAX_ATTEMPTS} times"),
        )),
        Err(e) => Outcome::Failed(e.clone()),
        Ok(req) => tokio::select! {
            o = process(state, &lease, req, &lost) => o,
            _ = state.shutdown.started() => Outcome::Released,
        },
    };
    heartbeat.abort();
    let now = now_ms();
    let expires = now + state.config.retention_ms;
    let (status, document) = match outcome {
        Outcome::Released => {
            // the decoder, if running, stops at its next chunk
            lost.store(true, Ordering::SeqCst);
            let released = state.store.release_job(&lease.job.id, &lease.token).await;
            let spooled = state.config.spool.join(format!("{}.audio", lease.job.id));
            let _ = tokio::fs::remove_file(&spooled).await;
            match released {
                Ok(_) => tracing::info!(
                    job_id = lease.job.id,
                    "stopping: job given back to the queue"
                ),
                Err(e) => {
                    tracing::warn!(job_id = lease.job.id, error = %e, "stopping: cannot release the job; another worker takes it when its lease runs out")
                }
            }
            return;
        }
        Outcome::Lost => {
            tracing::warn!(
                job_id = lease.job.id,
                "lease lost; another worker has the job"
            );
            return;
        }
        Outcome::Finished(doc) => (JobStatus::Finished, doc),
        Outcome::Failed(e) => {
            tracing::info!(job_id = lease.job.id, code = e.code.as_str(), msg = %e.message, "job failed");
            (
                JobStatus::Error,
                transcriber::error_document(&e).to_string(),
            )
        }
    };
    // a result document goes to object storage first, under a key of this
    // lease's own, so a worker that loses the race cannot overwrite it
    let mut result_key = None;
    if let (JobStatus::Finished, Some(objects)) = (status, &state.objects) {
        let key = format!("results/{}/{}.json", lease.job.id, lease.token);
        if let Err(e) = objects.put(&key, document.clone().into_bytes()).await {
            tracing::error!(job_id = lease.job.id, error = %e, "cannot store the result; the job goes back to the queue");
            let _ = state.store.release_job(&lease.job.id, &lease.token).await;
            return;
        }
        result_key = Some(key);
    }
    let callback_url = req.ok().and_then(|r| r.callback_url);
    let callback_body = callback_url.as_ref().map(|_| {
        let view = JobView {
            status: status.as_str(),
            create_ms: lease.job.created_ms,
            start_ms: lease.job.started_ms,
            finish_ms: Some(now),
            document: Some(&document),
        };
        transcriber::job_body(&view, Some(&lease.job.id))
    });
    let callback = callback_url.as_deref().zip(callback_body.as_deref());
    match state
        .store
        .complete_job(
            &lease.job.id,
            &lease.token,
            status,
            &document,
            result_key.as_deref(),
            now,
            expires,
            callback,
        )
        .await
    {
        Ok(true) => {
            tracing::info!(job_id = lease.job.id, status = status.as_str(), "job done");
            if let Some(objects) = &state.objects {
                if let Err(e) = objects.delete(&audio_key(&lease.job.id)).await {
                    tracing::warn!(job_id = lease.job.id, error = %e, "cannot delete the audio copy");
                }
            }
        }
        Ok(false) => {
            tracing::warn!(job_id = lease.job.id, "lease lost before completion");
            if let (Some(objects), Some(key)) = (&state.objects, &result_key) {
                let _ = objects.delete(key).await;
            }
        }
        Err(e) => tracing::error!(job_id = lease.job.id, error = %e, "cannot store job result"),
    }
}

fn audio_key(job_id: &str) -> String {
    format!("audio/{job_id}")
}

/// Puts the job's audio at `path`: the copy in object storage when an
/// earlier lease left one, else a download of data_url (copied to object
/// storage when there is one, for whoever takes the job over).
async fn fetch_audio(
    state: &JobsState,
    lease: &Lease,
    req: &TranscriberRequest,
    path: &std::path::Path,
) -> Result<(), ApiError> {
    let id = &lease.job.id;
    if let (Some(objects), Some(key)) = (&state.objects, &lease.job.audio_key) {
        match objects.get_to_file(key, path).await {
            Ok(true) => {
                tracing::info!(job_id = id, key, "audio taken from object storage");
                return Ok(());
            }
            Ok(false) => tracing::warn!(
                job_id = id,
                key,
                "audio copy missing; fetching data_url again"
            ),
            Err(e) => {
                tracing::warn!(job_id = id, error = %e, "audio copy unreadable; fetching data_url again")
            }
        }
    }
    if let Err(e) = state.fetcher.download(&req.data_url, path).await {
        return Err(from_fetch("data_url", &e));
    }
    if let Some(objects) = &state.objects {
        let key = audio_key(id);
        let kept = match objects.put_file(&key, path).await {
            Ok(()) => state
                .store
                .set_audio_key(id, &lease.token, &key)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match kept {
            Ok(()) => tracing::info!(job_id = id, key = %key, "audio copy kept in object storage"),
            // the job goes on; only a takeover would fetch data_url again
            Err(e) => tracing::warn!(job_id = id, error = %e, "cannot keep a copy of the audio"),
        }
    }
    Ok(())
}

async fn process(
    state: &Arc<JobsState>,
    lease: &Lease,
    req: &TranscriberRequest,
    lost: &Arc<AtomicBool>,
) -> Outcome {
    let path = state.config.spool.join(format!("{}.audio", lease.job.id));
    let _ = tokio::fs::remove_file(&path).await;
    if let Err(e) = fetch_audio(state, lease, req, &path).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Outcome::Failed(e);
    }
    if lost.load(Ordering::SeqCst) {
        let _ = tokio::fs::remove_file(&path).await;
        return Outcome::Lost;
    }
    let mut tries = 0;
    let result = loop {
        tries += 1;
        let (engine, req2, lost2, p2) = (
            state.engine.clone(),
            req.clone(),
            lost.clone(),
            path.clone(),
        );
        let r = tokio::task::spawn_blocking(move || transcribe(&engine, &req2, &p2, &lost2)).await;
        match r {
            // the engine worker died under it: the file again, from the
            // start, on a live worker (the lease is still ours)
            Ok(Ok(Transcribed::WorkerLost(why))) if tries < ENGINE_TRIES => {
                tracing::warn!(job_id = lease.job.id, attempt = tries, error = %why, "the engine worker running the job died; running it again");
                tokio::time::sleep(Duration::from_secs(tries)).await;
            }
            other => break other,
        }
    };
    let _ = tokio::fs::remove_file(&path).await;
    match result {
        Ok(Ok(Transcribed::Done(doc))) => Outcome::Finished(doc),
        Ok(Ok(Transcribed::LeaseLost)) => Outcome::Lost,
        Ok(Ok(Transcribed::WorkerLost(_))) => Outcome::Failed(ApiError::new(
            SisCode::Internal,
            format!("the engine worker died {ENGINE_TRIES} times while recognising this file"),
        )),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::Failed(ApiError::new(
            SisCode::RecognitionFailed,
            "recognition failed",
        )),
    }
}

fn audio_error(e: sis_audio::AudioError) -> ApiError {
    match e {
        sis_audio::AudioError::TooLong { .. } => ApiError::new(
            SisCode::AudioTooLong,
            "audio is longer than 5 h, the limit of recorded-file jobs",
        ),
        other => ApiError::new(
            SisCode::AudioFormatInvalid,
            format!("Audio format is invalid! ({other})"),
        ),
    }
}

/// How one run of a file through the engine ended, short of an error.
enum Transcribed {
    Done(String),
    /// The lease went to another worker meanwhile.
    LeaseLost,
    /// The engine worker running it died: the run may be repeated.
    WorkerLost(String),
}

/// An engine error: a worker's death may be retried, any other ends the job.
fn engine_failed(e: EngineError) -> Result<Transcribed, ApiError> {
    match e {
        EngineError::WorkerLost(why) => Ok(Transcribed::WorkerLost(why)),
        other => Err(from_engine(other)),
    }
}

/// Decodes and recognises the file.
fn transcribe(
    engine: &EnginePool,
    req: &TranscriberRequest,
    path: &std::path::Path,
    lost: &AtomicBool,
) -> Result<Transcribed, ApiError> {
    let format = match req.format {
        FileFormat::Auto => sis_audio::stream::FileFormat::Auto,
        FileFormat::Raw(f) => sis_audio::stream::FileFormat::from_audio_format(f),
    };
    let limits = sis_audio::stream::StreamLimits {
        max_ms: MAX_AUDIO_MS,
        ..Default::default()
    };
    let mut stream = sis_audio::stream::open(path, format, limits).map_err(audio_error)?;
    let rate = stream.sample_rate();
    let channels = stream.channels() as usize;
    let analysis = req.analysis;
    let by_channel = matches!(
        analysis.map(|a| a.channel),
        Some(AgentChannel::Left | AgentChannel::Right)
    );
    if by_channel && channels != 2 && analysis.is_some_and(|a| a.diarization) {
        return Err(ApiError::invalid(
            "need_analysis_info.channel LEFT_AGENT/RIGHT_AGENT needs stereo audio; this file is mono",
        ));
    }
    // stereo without roles by channel is mixed down (SIS: "auto-converted")
    let separate = channels == 2 && by_channel;
    let mut t = match engine.file_transcriber(
        &req.property,
        rate,
        if separate { 2 } else { 1 },
        req.options.clone(),
    ) {
        Ok(t) => t,
        Err(e) => return engine_failed(e),
    };
    let mut samples: u64 = 0;
    while let Some(chunk) = stream.next_chunk().map_err(audio_error)? {
        if lost.load(Ordering::SeqCst) {
            return Ok(Transcribed::LeaseLost);
        }
        samples += chunk.frames() as u64;
        let pushed = if separate || chunk.channels.len() == 1 {
            t.push(&chunk.channels)
        } else {
            t.push(&[chunk.to_mono()])
        };
        if let Err(e) = pushed {
            return engine_failed(e);
        }
    }
    let sentences = match t.finish() {
        Ok(s) => s,
        Err(e) => return engine_failed(e),
    };
    let duration_ms = samples * 1000 / rate.max(1) as u64;
    let segments: Vec<FileSegment> = sentences
        .into_iter()
        .map(|s| {
            let role = match analysis {
                Some(a) if a.diarization && separate => {
                    let agent = if a.channel == AgentChannel::Left {
                        0
                    } else {
                        1
                    };
                    Some(if s.channel == agent { "AGENT" } else { "USER" })
                }
                _ => None,
            };
            let chars = s
                .transcript
                .text
                .chars()
                .filter(|c| c.is_alphanumeric())
                .count() as f64;
            let secs = (s.end_ms.saturating_sub(s.start_ms)) as f64 / 1000.0;
            FileSegment {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                role,
                emotion: analysis.filter(|a| a.emotion).map(|_| "UNKNOWN"),
                speed: analysis.filter(|a| a.speed).map(|_| {
                    if secs > 0.0 {
                        (chars / secs * 100.0).round() / 100.0
                    } else {
                        0.0
                    }
                }),
                transcript: s.transcript,
            }
        })
        .collect();
    Ok(Transcribed::Done(
        transcriber::result_document(duration_ms, &segments, req.options.need_word_info)
            .to_string(),
    ))
}

/// Delivers due callbacks, up to `callback_concurrency` at once, each
/// bounded by the fetch policy's callback timeout: a slow receiver holds one
/// place, not everyone's callbacks.
async fn deliverer(state: Arc<JobsState>) {
    let places = Arc::new(tokio::sync::Semaphore::new(
        state.config.callback_concurrency.max(1),
    ));
    // the lease outlives the attempt, so no other deliverer takes it meanwhile
    let timeout_ms =
        i64::try_from(state.fetcher.policy().callback_timeout.as_millis()).unwrap_or(i64::MAX / 4);
    let lease_ms = timeout_ms.saturating_add(30_000);
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease = match state.store.lease_callback(&token, now_ms(), lease_ms).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                drop(place);
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => {
                drop(place);
                tracing::warn!(error = %e, "leasing a callback failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let s = state.clone();
        tokio::spawn(async move {
            deliver(&s, lease).await;
            drop(place);
        });
    }
}

/// One delivery attempt, and its record: delivered, retried later with
/// exponential backoff, or given up. A URL the address policy refuses (or
/// that is not valid) is given up at once: retrying cannot change the answer.
async fn deliver(state: &JobsState, lease: sis_store::CallbackLease) {
    let now = now_ms();
    let signature =
        sis_auth::callback::sign(&state.config.callback_key, now, lease.body.as_bytes());
    let headers = vec![(sis_auth::callback::HEADER.to_string(), signature)];
    let sent = state
        .fetcher
        .post_json(&lease.url, lease.body.as_bytes(), &headers)
        .await;
    let (ok, permanent, error) = match sent {
        Ok(s) if (200..300).contains(&s) => (true, false, None),
        Ok(s) => (false, false, Some(format!("HTTP {s}"))),
        Err(e) => {
            let permanent = matches!(
                e.kind(),
                FetchErrorKind::Forbidden
                    | FetchErrorKind::BadUrl
                    | FetchErrorKind::InvalidHeader
                    | FetchErrorKind::Config
            );
            let msg = if permanent {
                format!("not retried: {e}")
            } else {
                e.to_string()
            };
            (false, permanent, Some(msg))
        }
    };
    let next = (!ok && !permanent && lease.attempts < CALLBACK_TRIES)
        .then(|| now_ms() + (1000i64 << lease.attempts.clamp(0, 20)).min(600_000));
    if permanent {
        tracing::warn!(job_id = lease.job_id, attempt = lease.attempts, delivered = false, retry = false, error = ?error, "callback not retried: the URL is refused");
    } else {
        tracing::info!(job_id = lease.job_id, attempt = lease.attempts, delivered = ok, retry = next.is_some(), error = ?error, "callback");
    }
    if let Err(e) = state
        .store
        .callback_attempted(&lease, ok, next, error.as_deref(), now_ms())
        .await
    {
        tracing::warn!(error = %e, "recording a callback attempt failed");
    }
}
