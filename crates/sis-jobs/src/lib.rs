//! Recorded-file transcription jobs (SIS-API.md §7), without HTTP: creating
//! and reading jobs, the workers that lease them from the store, download
//! the audio, transcribe and analyse it, the callback deliverer and the
//! retention purge. `sisd` reads request bodies, calls [`Jobs`] and answers.
//!
//! Architecture invariants:
//! - Everything durable is in the store (`sis_store::jobs`), so any number
//!   of servers sharing one store share one queue; a result is written only
//!   under the lease that computed it.
//! - This crate says what went wrong ([`JobError`]); what a client is told
//!   (SIS code, status, message) is decided by the server's one error
//!   mapping, passed in as [`Jobs::public`] and used for the error documents
//!   the workers store.
//! - No HTTP types: handlers hand over bytes and get bytes back.
//! - Decoding and recognition run on blocking threads, never on the async
//!   runtime.

mod callbacks;
mod error;
mod fairness;
mod runner;
mod transcribe;
mod uploads;

use std::path::PathBuf;
use std::sync::Arc;

use sis_core::RecognitionOptions;
use sis_engine::EngineError;
use sis_fetch::Fetcher;
use sis_pool::EnginePool;
use sis_protocol::transcriber::{self, JobView};
use sis_protocol::ApiError;
use sis_store::{JobStatus, Objects, Store, VocabularyCache};
use tokio::sync::watch;

pub use error::JobError;
pub use transcribe::{recognize_file, AudioFile, Channels, FileRun};
pub use uploads::{Upload, MAX_PER_PROJECT as MAX_UPLOADS_PER_PROJECT};

/// Validated job settings (from the server's config).
#[derive(Clone, Debug)]
pub struct JobsConfig {
    pub workers: usize,
    /// A worker's lease on a job, renewed every third of it; a job whose
    /// worker died is taken again this long after its last renewal.
    pub lease_ms: i64,
    pub retention_ms: i64,
    /// Where downloaded audio waits while its job runs.
    pub spool: PathBuf,
    pub callback_key: Vec<u8>,
    /// Jobs of one project that this node runs at once (at most `workers`),
    /// so one project cannot hold every worker.
    pub project_max: usize,
    /// Callbacks delivered at once (each bounded by the fetch policy's
    /// `callback_timeout`).
    pub callback_concurrency: usize,
}

/// What a client is told of a [`JobError`]: the server's error mapping.
pub type PublicError = fn(&JobError) -> ApiError;

/// The server's stop as jobs see it: once set, workers lease nothing more
/// and give running jobs back to the queue.
#[derive(Clone)]
pub struct Stop(watch::Receiver<Option<tokio::time::Instant>>);

impl Stop {
    /// From the receiver of the server's stop (set to the real-time
    /// deadline once the stop begins; jobs ignore the deadline).
    pub fn new(rx: watch::Receiver<Option<tokio::time::Instant>>) -> Stop {
        Stop(rx)
    }

    pub fn is_set(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Resolves once the stop has begun.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(Option::is_some).await.is_err() {
            // the sender lives as long as the server; never here in practice
            std::future::pending::<()>().await;
        }
    }
}

/// The job service: what handlers call, and what the workers share.
pub struct Jobs {
    pub store: Store,
    /// When set, downloaded audio is kept there until the job ends (a worker
    /// taking the job over reads it instead of data_url) and result documents
    /// live there instead of in the store.
    pub objects: Option<Objects>,
    /// Where uploads are (`uploads.rs`): `objects` when there is one, else
    /// a directory of this node.
    pub uploads: Objects,
    pub engine: Arc<EnginePool>,
    pub fetcher: Fetcher,
    pub config: JobsConfig,
    pub stop: Stop,
    /// The server's error mapping, for the error documents of failed jobs.
    pub public: PublicError,
    /// Where `config.vocabulary_id` is resolved: at creation (an unknown id
    /// is refused at once) and again when the job runs (the job uses the
    /// table as it is then).
    pub vocabularies: Arc<VocabularyCache>,
}

fn now_ms() -> i64 {
    sis_store::now_ms()
}

impl Jobs {
    /// Checks a create request and queues the job; returns its id.
    pub async fn create(&self, project: &str, body: &[u8]) -> Result<String, JobError> {
        let req = transcriber::parse_create(body).map_err(JobError::Request)?;
        if !self.engine.serves(&req.property) {
            return Err(JobError::Engine(EngineError::UnknownProperty(
                req.property.name().to_string(),
            )));
        }
        transcribe::check_analysis(&req)?;
        self.hot_words(project, req.options.clone()).await?;
        match uploads::named(&req.data_url) {
            Some(id) => {
                self.upload_size(project, id).await?;
            }
            None => self
                .fetcher
                .check_data_url(&req.data_url)
                .map_err(|error| JobError::Fetch {
                    what: "data_url",
                    error,
                })?,
        }
        if let Some(cb) = &req.callback_url {
            self.fetcher
                .check_url(cb)
                .map_err(|error| JobError::Fetch {
                    what: "callback_url",
                    error,
                })?;
        }
        let text = std::str::from_utf8(body).map_err(|_| JobError::NotUtf8)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.store
            .create_job(&id, project, text, now_ms())
            .await
            .map_err(JobError::Store)?;
        // the request's own line (the server's) names the job
        tracing::debug!(job_id = id, project, "job accepted");
        Ok(id)
    }

    /// The options with the vocabulary they name resolved, as the engine
    /// takes them.
    pub(crate) async fn hot_words(
        &self,
        project: &str,
        mut options: RecognitionOptions,
    ) -> Result<RecognitionOptions, JobError> {
        if let Some(id) = &options.vocabulary_id {
            let hot = self
                .vocabularies
                .resolve(project, &id.to_ascii_uppercase())
                .await
                .map_err(JobError::Store)?
                .ok_or_else(|| JobError::VocabularyNotFound(id.clone()))?;
            options.hot_words = Some(hot);
        }
        Ok(options)
    }

    /// The GET body of a job of `project`.
    pub async fn get(&self, project: &str, job_id: &str) -> Result<String, JobError> {
        let job = self
            .store
            .job(project, job_id, now_ms())
            .await
            .map_err(JobError::Store)?
            .ok_or(JobError::NotFound)?;
        let document = self.stored_document(&job).await?;
        let view = JobView {
            status: job.status.as_str(),
            create_ms: job.created_ms,
            start_ms: job.started_ms,
            finish_ms: job.finished_ms,
            document: document.as_deref(),
        };
        Ok(transcriber::job_body(&view, None))
    }

    /// The job's result or error document, from the store or object storage.
    async fn stored_document(&self, j: &sis_store::Job) -> Result<Option<String>, JobError> {
        match (j.status, &j.result_key) {
            (JobStatus::Finished, Some(key)) => {
                let unavailable =
                    |why: &str| JobError::ResultUnavailable(format!("job {} {key}: {why}", j.id));
                let Some(objects) = &self.objects else {
                    return Err(unavailable(
                        "result in object storage, but none is configured",
                    ));
                };
                match objects.get(key).await {
                    Ok(Some(b)) => String::from_utf8(b.to_vec())
                        .map(Some)
                        .map_err(|_| unavailable("result object is not UTF-8")),
                    Ok(None) => Err(unavailable("result object is missing")),
                    Err(e) => Err(unavailable(&e.to_string())),
                }
            }
            (JobStatus::Finished, None) => Ok(j.result.clone()),
            (JobStatus::Error, _) => Ok(j.error.clone()),
            _ => Ok(None),
        }
    }

    /// Starts the job workers, the callback deliverer and the retention
    /// purge; returns the workers, which end once the stop has begun and
    /// their jobs are released.
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let workers = runner::spawn_workers(self);
        let s = self.clone();
        tokio::spawn(async move { callbacks::deliverer(s).await });
        let s = self.clone();
        tokio::spawn(async move { runner::purge(s).await });
        workers
    }
}
