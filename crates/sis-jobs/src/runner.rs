//! The job workers: each leases a job from the store, keeps the lease alive,
//! fetches the audio, runs it through the engine and records the outcome;
//! and the retention purge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sis_protocol::transcriber::{self, JobView, TranscriberRequest};
use sis_protocol::ApiError;
use sis_store::{Job, JobStatus, Lease};

use crate::fairness::Fairness;
use crate::transcribe::{transcribe, Transcribed};
use crate::{now_ms, JobError, Jobs, PublicError};

/// A job interrupted this many times (its worker died each time) ends in ERROR.
const MAX_ATTEMPTS: i64 = 3;
/// Runs of one lease's file through the engine: the engine worker running
/// it died each time (a file that kills every worker ends in ERROR).
const ENGINE_TRIES: u64 = 3;
/// Idle workers look for new jobs this often.
pub(crate) const POLL: Duration = Duration::from_millis(300);

pub(crate) fn spawn_workers(jobs: &Arc<Jobs>) -> Vec<tokio::task::JoinHandle<()>> {
    let fair = Arc::new(Fairness::new(jobs.config.project_max));
    (0..jobs.config.workers.max(1))
        .map(|i| {
            let (s, f) = (jobs.clone(), fair.clone());
            tokio::spawn(async move { worker(s, f, i).await })
        })
        .collect()
}

/// Deletes expired jobs (and their objects), every minute.
pub(crate) async fn purge(jobs: Arc<Jobs>) {
    loop {
        match jobs.store.purge_jobs(now_ms()).await {
            Ok(keys) => {
                if let Some(objects) = &jobs.objects {
                    for k in keys {
                        if let Err(e) = objects.delete(&k).await {
                            tracing::warn!(key = k, error = %e, "deleting an expired object failed");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "purging expired jobs failed"),
        }
        match jobs.purge_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "expired uploads deleted"),
            Err(e) => tracing::warn!(error = %e, "purging expired uploads failed"),
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

async fn worker(jobs: Arc<Jobs>, fair: Arc<Fairness>, i: usize) {
    loop {
        if jobs.stop.is_set() {
            return;
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let leased = {
            let _one_at_a_time = fair.leasing.lock().await;
            let busy = fair.busy();
            jobs.store
                .lease_job_except(&token, now_ms(), jobs.config.lease_ms, &busy)
                .await
                .map(|l| l.map(|lease| (fair.take(&lease.job.project_id), lease)))
        };
        match leased {
            Ok(Some((_slot, lease))) => {
                tracing::info!(
                    job_id = lease.job.id,
                    project = lease.job.project_id,
                    worker = i,
                    attempt = lease.job.attempts,
                    "job started"
                );
                run(&jobs, lease).await;
            }
            Ok(None) => tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = jobs.stop.wait() => {}
            },
            Err(e) => {
                tracing::warn!(error = %e, "leasing a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How a leased job's run ended.
#[derive(Debug)]
enum Outcome {
    /// The result document and the audio's length.
    Finished {
        document: String,
        audio_ms: u64,
    },
    Failed(JobError),
    /// The lease went to another worker: write nothing.
    Lost,
    /// The server is stopping: the job goes back to the queue.
    Released,
}

/// Why a job ended in ERROR: what the client is told, and the cause (for
/// the log only).
#[derive(Debug, PartialEq)]
struct Failure {
    shown: ApiError,
    cause: String,
}

/// What is written for an [`Outcome`].
#[derive(Debug, PartialEq)]
enum Settlement {
    /// The job ends with this status and document.
    Complete {
        status: JobStatus,
        document: String,
        audio_ms: Option<u64>,
        failure: Option<Failure>,
    },
    /// The job goes back to the queue.
    Release,
    /// Nothing: another worker holds the job.
    Nothing,
}

fn settle(outcome: Outcome, public: PublicError) -> Settlement {
    match outcome {
        Outcome::Finished { document, audio_ms } => Settlement::Complete {
            status: JobStatus::Finished,
            document,
            audio_ms: Some(audio_ms),
            failure: None,
        },
        Outcome::Failed(e) => {
            let shown = public(&e);
            Settlement::Complete {
                status: JobStatus::Error,
                document: transcriber::error_document(&shown).to_string(),
                audio_ms: None,
                failure: Some(Failure {
                    shown,
                    cause: e.to_string(),
                }),
            }
        }
        Outcome::Lost => Settlement::Nothing,
        Outcome::Released => Settlement::Release,
    }
}

/// The job's request, unless the job has been interrupted too often.
fn admit(
    job: &Job,
    req: &Result<TranscriberRequest, ApiError>,
) -> Result<TranscriberRequest, JobError> {
    if job.attempts > MAX_ATTEMPTS {
        return Err(JobError::Interrupted {
            times: MAX_ATTEMPTS,
        });
    }
    req.clone().map_err(JobError::Request)
}

/// The body POSTed to the job's callback_url.
fn callback_body(job: &Job, status: JobStatus, finish_ms: i64, document: &str) -> String {
    let view = JobView {
        status: status.as_str(),
        create_ms: job.created_ms,
        start_ms: job.started_ms,
        finish_ms: Some(finish_ms),
        document: Some(document),
    };
    transcriber::job_body(&view, Some(&job.id))
}

fn audio_key(job_id: &str) -> String {
    format!("audio/{job_id}")
}

/// A result document's key: one per lease, so a worker that lost the race
/// cannot overwrite the winner's.
fn result_key(lease: &Lease) -> String {
    format!("results/{}/{}.json", lease.job.id, lease.token)
}

fn spooled(jobs: &Jobs, job_id: &str) -> std::path::PathBuf {
    jobs.config.spool.join(format!("{job_id}.audio"))
}

/// Renews the lease every third of its length until aborted; sets `lost`
/// when the store says another worker has the job.
fn heartbeat(jobs: &Jobs, lease: &Lease, lost: &Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let lease_ms = jobs.config.lease_ms;
    let (store, id, token, lost) = (
        jobs.store.clone(),
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
}

/// The one line of a job that ended: at info, with what its client is told
/// and the cause when it failed; never its URLs (a signed URL carries
/// credentials in its query).
fn log_done(
    job: &Job,
    status: JobStatus,
    audio_ms: Option<u64>,
    failure: Option<&Failure>,
    now: i64,
    run_ms: u64,
) {
    // to 10 ms
    let audio_s = audio_ms.map(|ms| (ms as f64 / 10.0).round() / 100.0);
    let latency_ms = now.saturating_sub(job.created_ms);
    let (code, msg, cause) = match failure {
        Some(f) => (
            Some(f.shown.code.as_str()),
            Some(f.shown.message.as_str()),
            Some(f.cause.as_str()),
        ),
        None => (None, None, None),
    };
    tracing::info!(
        job_id = job.id,
        project = job.project_id,
        status = status.as_str(),
        code,
        msg,
        cause,
        audio_s,
        latency_ms,
        run_ms,
        attempt = job.attempts,
        "job done"
    );
}

async fn run(jobs: &Arc<Jobs>, lease: Lease) {
    let started = std::time::Instant::now();
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = heartbeat(jobs, &lease, &lost);
    let req = transcriber::parse_create(lease.job.request.as_bytes());
    let outcome = match admit(&lease.job, &req) {
        Err(e) => Outcome::Failed(e),
        Ok(mut req) => tokio::select! {
            o = async {
                // the vocabulary as it is when the job runs: an update made
                // since its creation applies; a deletion fails the job
                match jobs.hot_words(&lease.job.project_id, req.options.clone()).await {
                    Ok(options) => req.options = options,
                    Err(e) => return Outcome::Failed(e),
                }
                process(jobs, &lease, &req, &lost).await
            } => o,
            _ = jobs.stop.wait() => Outcome::Released,
        },
    };
    heartbeat.abort();
    let now = now_ms();
    let id = &lease.job.id;
    let (status, document, audio_ms, failure) = match settle(outcome, jobs.public) {
        Settlement::Release => {
            // the decoder, if running, stops at its next chunk
            lost.store(true, Ordering::SeqCst);
            let released = jobs.store.release_job(id, &lease.token).await;
            let _ = tokio::fs::remove_file(spooled(jobs, id)).await;
            match released {
                Ok(_) => tracing::info!(job_id = id, "stopping: job given back to the queue"),
                Err(e) => {
                    tracing::warn!(job_id = id, error = %e, "stopping: cannot release the job; another worker takes it when its lease runs out")
                }
            }
            return;
        }
        Settlement::Nothing => {
            tracing::warn!(job_id = id, "lease lost; another worker has the job");
            return;
        }
        Settlement::Complete {
            status,
            document,
            audio_ms,
            failure,
        } => (status, document, audio_ms, failure),
    };
    // a result document goes to object storage first, under a key of this
    // lease's own
    let mut stored_at = None;
    if let (JobStatus::Finished, Some(objects)) = (status, &jobs.objects) {
        let key = result_key(&lease);
        if let Err(e) = objects.put(&key, document.clone().into_bytes()).await {
            tracing::error!(job_id = id, error = %e, "cannot store the result; the job goes back to the queue");
            let _ = jobs.store.release_job(id, &lease.token).await;
            return;
        }
        stored_at = Some(key);
    }
    let callback_url = req.ok().and_then(|r| r.callback_url);
    let callback_body = callback_url
        .as_ref()
        .map(|_| callback_body(&lease.job, status, now, &document));
    let callback = callback_url.as_deref().zip(callback_body.as_deref());
    let completed = jobs
        .store
        .complete_job(
            id,
            &lease.token,
            status,
            &document,
            stored_at.as_deref(),
            now,
            now + jobs.config.retention_ms,
            callback,
        )
        .await;
    match completed {
        Ok(true) => {
            let run_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            log_done(&lease.job, status, audio_ms, failure.as_ref(), now, run_ms);
            if let Some(objects) = &jobs.objects {
                if let Err(e) = objects.delete(&audio_key(id)).await {
                    tracing::warn!(job_id = id, error = %e, "cannot delete the audio copy");
                }
            }
        }
        Ok(false) => {
            tracing::warn!(job_id = id, "lease lost before completion");
            if let (Some(objects), Some(key)) = (&jobs.objects, &stored_at) {
                let _ = objects.delete(key).await;
            }
        }
        Err(e) => tracing::error!(job_id = id, error = %e, "cannot store job result"),
    }
}

/// Puts the job's audio at `path`: the copy in object storage when an
/// earlier lease left one, else a download of data_url (copied to object
/// storage when there is one, for whoever takes the job over).
async fn fetch_audio(
    jobs: &Jobs,
    lease: &Lease,
    req: &TranscriberRequest,
    path: &std::path::Path,
) -> Result<(), JobError> {
    let id = &lease.job.id;
    if let (Some(objects), Some(key)) = (&jobs.objects, &lease.job.audio_key) {
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
    if let Some(upload) = crate::uploads::named(&req.data_url) {
        // already in the uploads' storage, where a takeover finds it too
        return jobs.fetch_upload(&lease.job.project_id, upload, path).await;
    }
    if let Err(error) = jobs.fetcher.download(&req.data_url, path).await {
        return Err(JobError::Fetch {
            what: "data_url",
            error,
        });
    }
    if let Some(objects) = &jobs.objects {
        let key = audio_key(id);
        let kept = match objects.put_file(&key, path).await {
            Ok(()) => jobs
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
    jobs: &Arc<Jobs>,
    lease: &Lease,
    req: &TranscriberRequest,
    lost: &Arc<AtomicBool>,
) -> Outcome {
    let path = spooled(jobs, &lease.job.id);
    let _ = tokio::fs::remove_file(&path).await;
    if let Err(e) = fetch_audio(jobs, lease, req, &path).await {
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
        let (engine, req2, lost2, p2) =
            (jobs.engine.clone(), req.clone(), lost.clone(), path.clone());
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
        Ok(Ok(Transcribed::Done { document, audio_ms })) => {
            Outcome::Finished { document, audio_ms }
        }
        Ok(Ok(Transcribed::LeaseLost)) => Outcome::Lost,
        Ok(Ok(Transcribed::WorkerLost(_))) => Outcome::Failed(JobError::EngineWorkerDied {
            times: ENGINE_TRIES,
        }),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::Failed(JobError::Panicked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sis_protocol::SisCode;

    fn public(e: &JobError) -> ApiError {
        match e {
            JobError::Interrupted { times } => {
                ApiError::new(SisCode::Internal, format!("interrupted {times} times"))
            }
            other => ApiError::invalid(other.to_string()),
        }
    }

    fn job(attempts: i64) -> Job {
        Job {
            id: "j1".into(),
            project_id: "p".into(),
            status: JobStatus::Running,
            request: String::new(),
            created_ms: 1_700_000_000_000,
            started_ms: Some(1_700_000_001_000),
            finished_ms: None,
            attempts,
            result: None,
            error: None,
            result_key: None,
            audio_key: None,
        }
    }

    fn request() -> Result<TranscriberRequest, ApiError> {
        transcriber::parse_create(
            br#"{"data_url":"https://example.com/a.wav","callback_url":"https://example.com/cb","config":{"audio_format":"auto","property":"chinese_16k_general"}}"#,
        )
    }

    #[test]
    fn outcomes_settle_into_what_is_written() {
        assert_eq!(
            settle(
                Outcome::Finished {
                    document: "{}".into(),
                    audio_ms: 1500
                },
                public
            ),
            Settlement::Complete {
                status: JobStatus::Finished,
                document: "{}".into(),
                audio_ms: Some(1500),
                failure: None,
            }
        );
        let Settlement::Complete {
            status,
            document,
            audio_ms,
            failure,
        } = settle(Outcome::Failed(JobError::Interrupted { times: 3 }), public)
        else {
            panic!("a failure completes the job");
        };
        assert_eq!(status, JobStatus::Error);
        assert_eq!(audio_ms, None);
        let failure = failure.expect("the failure, for the log");
        assert_eq!(failure.shown.code.as_str(), "SIS.0100");
        assert_eq!(failure.cause, "interrupted 3 times");
        let doc: serde_json::Value = serde_json::from_str(&document).expect("JSON");
        assert_eq!(doc["error_code"], "SIS.0100");
        assert_eq!(doc["error_msg"], "interrupted 3 times");
        assert_eq!(settle(Outcome::Lost, public), Settlement::Nothing);
        assert_eq!(settle(Outcome::Released, public), Settlement::Release);
    }

    #[test]
    fn a_job_interrupted_too_often_fails_whatever_its_request() {
        assert!(admit(&job(1), &request()).is_ok());
        assert!(admit(&job(MAX_ATTEMPTS), &request()).is_ok());
        assert!(matches!(
            admit(&job(MAX_ATTEMPTS + 1), &request()),
            Err(JobError::Interrupted {
                times: MAX_ATTEMPTS
            })
        ));
        let bad = Err(ApiError::invalid("bad"));
        assert!(matches!(admit(&job(1), &bad), Err(JobError::Request(_))));
    }

    #[test]
    fn callback_body_names_the_job_and_carries_its_document() {
        let body = callback_body(
            &job(1),
            JobStatus::Finished,
            1_700_000_002_000,
            r#"{"audio_duration":1000,"segments":[]}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["job_id"], "j1");
        assert_eq!(v["status"], "FINISHED");
        assert_eq!(v["create_time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["start_time"], "2023-11-14T22:13:21.000Z");
        assert_eq!(v["finish_time"], "2023-11-14T22:13:22.000Z");
        assert_eq!(v["audio_duration"], 1000);
        let failed = callback_body(
            &job(1),
            JobStatus::Error,
            1_700_000_002_000,
            r#"{"error_code":"SIS.0535","error_msg":"x"}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&failed).expect("JSON");
        assert_eq!(
            (v["status"].as_str(), v["error_code"].as_str()),
            (Some("ERROR"), Some("SIS.0535"))
        );
    }

    #[test]
    fn object_keys_are_per_job_and_per_lease() {
        let lease = Lease {
            job: job(1),
            token: "t1".into(),
        };
        assert_eq!(audio_key("j1"), "audio/j1");
        assert_eq!(result_key(&lease), "results/j1/t1.json");
    }
}
