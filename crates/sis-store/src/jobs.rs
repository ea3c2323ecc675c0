//! Transcription jobs as a durable queue, and their result callbacks.
//!
//! Guarantees, on SQLite and PostgreSQL alike:
//! - an accepted job is a committed row before its id is returned;
//! - a worker takes a job with one conditional `UPDATE` (a lease: a random
//!   token and a deadline it renews by heartbeats), so two workers never hold
//!   the same job; a job whose worker died is leased again after the deadline;
//! - a result is written only by the lease holder (`... AND lease_owner = $token`),
//!   in the same transaction as its callback, so a job is never finished twice
//!   and every finished job with a `callback_url` has a delivery row.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Waiting,
    Running,
    Finished,
    Error,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "WAITING",
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Error => "ERROR",
        }
    }

    fn parse(s: &str) -> JobStatus {
        match s {
            "RUNNING" => JobStatus::Running,
            "FINISHED" => JobStatus::Finished,
            "ERROR" => JobStatus::Error,
            _ => JobStatus::Waiting,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub project_id: String,
    pub status: JobStatus,
    /// The validated request, as the protocol crate serialised it.
    pub request: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub attempts: i64,
    /// The result document (FINISHED) or error document (ERROR).
    pub result: Option<String>,
    pub error: Option<String>,
    /// Where the result document is, when it is in object storage.
    pub result_key: Option<String>,
    /// Where a copy of the downloaded audio is, when it is in object storage.
    pub audio_key: Option<String>,
}

/// A job held by a worker; `token` proves the lease.
#[derive(Clone, Debug)]
pub struct Lease {
    pub job: Job,
    pub token: String,
}

/// A callback to deliver, held by one deliverer.
#[derive(Clone, Debug)]
pub struct CallbackLease {
    pub job_id: String,
    pub url: String,
    pub body: String,
    pub attempts: i64,
    pub token: String,
}

const JOB_COLUMNS: &str =
    "id, project_id, status, request, created_ms, started_ms, finished_ms, attempts, result, error, \
     result_key, audio_key";

fn job_row(r: &AnyRow) -> Result<Job> {
    let status: String = r.try_get("status")?;
    Ok(Job {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        status: JobStatus::parse(&status),
        request: r.try_get("request")?,
        created_ms: r.try_get("created_ms")?,
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get("finished_ms")?,
        attempts: r.try_get("attempts")?,
        result: r.try_get("result")?,
        error: r.try_get("error")?,
        result_key: r.try_get("result_key")?,
        audio_key: r.try_get("audio_key")?,
    })
}

impl Store {
    /// Records a new job (WAITING). Returns once it is committed.
    pub async fn create_job(
        &self,
        id: &str,
        project_id: &str,
        request: &str,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (id, project_id, status, request, created_ms, attempts) \
             VALUES ($1, $2, 'WAITING', $3, $4, 0)",
        )
        .bind(id)
        .bind(project_id)
        .bind(request)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The project's job, unless it expired.
    pub async fn job(&self, project_id: &str, id: &str, now_ms: i64) -> Result<Option<Job>> {
        let q = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND project_id = $2 \
             AND (expires_ms IS NULL OR expires_ms > $3)"
        );
        let r = sqlx::query(&q)
            .bind(id)
            .bind(project_id)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(job_row).transpose()
    }

    /// Takes the oldest waiting job, or a running one whose lease ran out.
    pub async fn lease_job(
        &self,
        token: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>> {
        self.lease_job_except(token, now_ms, lease_ms, &[]).await
    }

    /// Like [`Store::lease_job`], but skips the jobs of `busy_projects` (the
    /// projects that already run as many jobs as they may on the caller's
    /// node), so one project cannot hold every worker.
    pub async fn lease_job_except(
        &self,
        token: &str,
        now_ms: i64,
        lease_ms: i64,
        busy_projects: &[String],
    ) -> Result<Option<Lease>> {
        let mut select = String::from(
            "SELECT id FROM jobs WHERE (status = 'WAITING' \
             OR (status = 'RUNNING' AND lease_until < $1))",
        );
        if !busy_projects.is_empty() {
            let params: Vec<String> = (0..busy_projects.len())
                .map(|i| format!("${}", i + 2))
                .collect();
            select.push_str(&format!(" AND project_id NOT IN ({})", params.join(", ")));
        }
        select.push_str(" ORDER BY created_ms LIMIT 1");
        for _ in 0..5 {
            let mut q = sqlx::query(&select).bind(now_ms);
            for p in busy_projects {
                q = q.bind(p);
            }
            let candidate: Option<String> = q
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?;
            let Some(id) = candidate else {
                return Ok(None);
            };
            // the condition is re-checked on the row itself: of two workers
            // racing for it, one updates it and the other matches nothing
            let taken = sqlx::query(
                "UPDATE jobs SET status = 'RUNNING', lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1, started_ms = COALESCE(started_ms, $3) \
                 WHERE id = $4 AND (status = 'WAITING' OR (status = 'RUNNING' AND lease_until < $3))",
            )
            .bind(token)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(&id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if taken == 1 {
                let q =
                    format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND lease_owner = $2");
                let r = sqlx::query(&q)
                    .bind(&id)
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await?;
                return Ok(match r {
                    Some(r) => Some(Lease {
                        job: job_row(&r)?,
                        token: token.to_string(),
                    }),
                    None => None,
                });
            }
        }
        Ok(None)
    }

    /// Extends a lease; false when it was lost (the job went to someone else).
    pub async fn renew_lease(&self, id: &str, token: &str, until_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'RUNNING'",
        )
        .bind(until_ms)
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Puts a leased job back in the queue (a worker shutting down).
    pub async fn release_job(&self, id: &str, token: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'WAITING', lease_owner = NULL, lease_until = NULL, \
             attempts = attempts - 1 WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'",
        )
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records where a copy of the leased job's audio is kept; false when
    /// the lease was lost.
    pub async fn set_audio_key(&self, id: &str, token: &str, key: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET audio_key = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'RUNNING'",
        )
        .bind(key)
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a leased job (FINISHED with its result document, or ERROR with
    /// `error`) and, in the same transaction, queues its callback. A FINISHED
    /// document already in object storage is given as `result_key` (and
    /// `document` is not stored). False when the lease was lost: nothing is
    /// written, so a job is finished once.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_job(
        &self,
        id: &str,
        token: &str,
        status: JobStatus,
        document: &str,
        result_key: Option<&str>,
        now_ms: i64,
        expires_ms: i64,
        callback: Option<(&str, &str)>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let column = if status == JobStatus::Finished {
            "result"
        } else {
            "error"
        };
        let stored = match (status, result_key) {
            (JobStatus::Finished, Some(_)) => None,
            _ => Some(document),
        };
        let q = format!(
            "UPDATE jobs SET status = $1, {column} = $2, result_key = $3, finished_ms = $4, \
             expires_ms = $5, lease_owner = NULL, lease_until = NULL \
             WHERE id = $6 AND lease_owner = $7 AND status = 'RUNNING'"
        );
        let n = sqlx::query(&q)
            .bind(status.as_str())
            .bind(stored)
            .bind(result_key)
            .bind(now_ms)
            .bind(expires_ms)
            .bind(id)
            .bind(token)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some((url, body)) = callback {
            sqlx::query(
                "INSERT INTO callbacks (job_id, url, body, attempts, next_ms) VALUES ($1, $2, $3, 0, $4)",
            )
            .bind(id)
            .bind(url)
            .bind(body)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes jobs (and delivered or abandoned callbacks) past their expiry;
    /// returns the object keys they named, for the caller to delete.
    pub async fn purge_jobs(&self, now_ms: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT result_key, audio_key FROM jobs WHERE expires_ms IS NOT NULL AND expires_ms <= $1",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = Vec::new();
        for r in &rows {
            for c in ["result_key", "audio_key"] {
                if let Some(k) = r.try_get::<Option<String>, _>(c)? {
                    keys.push(k);
                }
            }
        }
        sqlx::query("DELETE FROM jobs WHERE expires_ms IS NOT NULL AND expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM callbacks WHERE job_id NOT IN (SELECT id FROM jobs)")
            .execute(&self.pool)
            .await?;
        Ok(keys)
    }

    /// Jobs by status, and when the oldest WAITING one was created (ms),
    /// for the metrics.
    pub async fn job_states(&self) -> Result<(Vec<(String, i64)>, Option<i64>)> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut by_state = Vec::new();
        for r in rows {
            by_state.push((r.try_get::<String, _>("status")?, r.try_get::<i64, _>("n")?));
        }
        let r = sqlx::query("SELECT MIN(created_ms) AS t FROM jobs WHERE status = 'WAITING'")
            .fetch_one(&self.pool)
            .await?;
        Ok((by_state, r.try_get::<Option<i64>, _>("t")?))
    }

    /// Jobs not yet finished (WAITING or RUNNING), for metrics and tests.
    pub async fn open_jobs(&self) -> Result<i64> {
        let r =
            sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('WAITING', 'RUNNING')")
                .fetch_one(&self.pool)
                .await?;
        Ok(r.try_get("n")?)
    }

    /// Takes a callback that is due.
    pub async fn lease_callback(
        &self,
        token: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<CallbackLease>> {
        let candidate: Option<String> = sqlx::query(
            "SELECT job_id FROM callbacks WHERE delivered_ms IS NULL AND next_ms <= $1 \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_ms LIMIT 1",
        )
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get("job_id"))
        .transpose()?;
        let Some(id) = candidate else {
            return Ok(None);
        };
        let n = sqlx::query(
            "UPDATE callbacks SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE job_id = $3 AND delivered_ms IS NULL AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(token)
        .bind(now_ms + lease_ms)
        .bind(&id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        let r = sqlx::query(
            "SELECT job_id, url, body, attempts FROM callbacks WHERE job_id = $1 AND lease_owner = $2",
        )
        .bind(&id)
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match r {
            Some(r) => Some(CallbackLease {
                job_id: r.try_get("job_id")?,
                url: r.try_get("url")?,
                body: r.try_get("body")?,
                attempts: r.try_get("attempts")?,
                token: token.to_string(),
            }),
            None => None,
        })
    }

    /// Records a delivery attempt: delivered, or to be retried at `next_ms`
    /// (`None`: given up).
    pub async fn callback_attempted(
        &self,
        lease: &CallbackLease,
        delivered: bool,
        next_ms: Option<i64>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        if delivered {
            sqlx::query(
                "UPDATE callbacks SET delivered_ms = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE job_id = $2 AND lease_owner = $3",
            )
            .bind(now_ms)
            .bind(&lease.job_id)
            .bind(&lease.token)
            .execute(&self.pool)
            .await?;
        } else {
            // given up: delivered_ms stays NULL and next_ms moves far away
            let next = next_ms.unwrap_or(i64::MAX / 2);
            sqlx::query(
                "UPDATE callbacks SET next_ms = $1, last_error = $2, lease_owner = NULL, lease_until = NULL \
                 WHERE job_id = $3 AND lease_owner = $4",
            )
            .bind(next)
            .bind(error.unwrap_or(""))
            .bind(&lease.job_id)
            .bind(&lease.token)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&format!("sqlite://{}/t.db", d.path().display()))
            .await
            .expect("open");
        (d, s)
    }

    #[tokio::test]
    async fn lease_finish_once_and_expire() {
        let (_d, s) = store().await;
        s.create_job("j1", "p1", "{}", 100).await.expect("create");
        s.create_job("j2", "p1", "{}", 200).await.expect("create");
        let a = s
            .lease_job("ta", 1000, 500)
            .await
            .expect("lease")
            .expect("job");
        assert_eq!(a.job.id, "j1");
        assert_eq!(a.job.status, JobStatus::Running);
        let b = s
            .lease_job("tb", 1000, 500)
            .await
            .expect("lease")
            .expect("job");
        assert_eq!(b.job.id, "j2");
        assert!(s.lease_job("tc", 1000, 500).await.expect("lease").is_none());
        // a's lease runs out: c takes j1, a can no longer finish or renew it
        let c = s
            .lease_job("tc", 1600, 500)
            .await
            .expect("lease")
            .expect("job");
        assert_eq!((c.job.id.as_str(), c.job.attempts), ("j1", 2));
        assert!(!s.renew_lease("j1", "ta", 5000).await.expect("renew"));
        let done = |tok: &'static str| {
            let s = s.clone();
            async move {
                s.complete_job(
                    "j1",
                    tok,
                    JobStatus::Finished,
                    "{\"r\":1}",
                    None,
                    1700,
                    9000,
                    Some(("http://x/", "{}")),
                )
                .await
                .expect("complete")
            }
        };
        assert!(!done("ta").await);
        assert!(done("tc").await);
        assert!(!done("tc").await, "finished once");
        let j = s.job("p1", "j1", 1800).await.expect("get").expect("job");
        assert_eq!(
            (j.status, j.result.as_deref()),
            (JobStatus::Finished, Some("{\"r\":1}"))
        );
        assert!(
            s.job("p2", "j1", 1800).await.expect("get").is_none(),
            "other project"
        );
        assert!(
            s.job("p1", "j1", 9000).await.expect("get").is_none(),
            "expired"
        );
        // the callback row came with the result, and is delivered once
        let cb = s
            .lease_callback("d1", 1800, 1000)
            .await
            .expect("cb")
            .expect("due");
        assert!(s
            .lease_callback("d2", 1800, 1000)
            .await
            .expect("cb")
            .is_none());
        s.callback_attempted(&cb, false, Some(2500), Some("503"), 1900)
            .await
            .expect("retry");
        assert!(
            s.lease_callback("d2", 2000, 1000)
                .await
                .expect("cb")
                .is_none(),
            "not yet due"
        );
        let cb = s
            .lease_callback("d2", 2600, 1000)
            .await
            .expect("cb")
            .expect("due again");
        assert_eq!(cb.attempts, 2);
        s.callback_attempted(&cb, true, None, None, 2700)
            .await
            .expect("done");
        assert!(s
            .lease_callback("d3", 99_000, 1000)
            .await
            .expect("cb")
            .is_none());
        assert!(s.purge_jobs(9000).await.expect("purge").is_empty());
        assert!(s.job("p1", "j1", 0).await.expect("get").is_none(), "purged");
        assert_eq!(s.open_jobs().await.expect("open"), 1);
        // release puts a job back
        assert!(s.release_job("j2", "tb").await.expect("release"));
        let again = s
            .lease_job("td", 2000, 500)
            .await
            .expect("lease")
            .expect("job");
        assert_eq!((again.job.id.as_str(), again.job.attempts), ("j2", 1));
        // a result in object storage: the row names it, and purge returns its keys
        assert!(s.set_audio_key("j2", "td", "audio/j2").await.expect("key"));
        assert!(!s.set_audio_key("j2", "zz", "audio/j2").await.expect("key"));
        assert!(s
            .complete_job(
                "j2",
                "td",
                JobStatus::Finished,
                "{}",
                Some("results/j2/td.json"),
                2100,
                9500,
                None
            )
            .await
            .expect("complete"));
        let j = s.job("p1", "j2", 2200).await.expect("get").expect("job");
        assert_eq!(
            (j.result, j.result_key.as_deref(), j.audio_key.as_deref()),
            (None, Some("results/j2/td.json"), Some("audio/j2"))
        );
        let mut keys = s.purge_jobs(9500).await.expect("purge");
        keys.sort();
        assert_eq!(keys, ["audio/j2", "results/j2/td.json"]);
    }

    #[tokio::test]
    async fn busy_projects_are_skipped() {
        let (_d, s) = store().await;
        s.create_job("a1", "pa", "{}", 100).await.expect("create");
        s.create_job("a2", "pa", "{}", 200).await.expect("create");
        s.create_job("c1", "pc", "{}", 250).await.expect("create");
        s.create_job("b1", "pb", "{}", 300).await.expect("create");
        let busy = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let l = s
            .lease_job_except("t1", 1000, 500, &busy(&["pa"]))
            .await
            .expect("lease")
            .expect("job");
        assert_eq!(
            l.job.id, "c1",
            "the oldest job of a project that is not busy"
        );
        let l = s
            .lease_job_except("t2", 1000, 500, &busy(&["pa", "pc"]))
            .await
            .expect("lease")
            .expect("job");
        assert_eq!(l.job.id, "b1");
        assert!(s
            .lease_job_except("t3", 1000, 500, &busy(&["pa", "pb"]))
            .await
            .expect("lease")
            .is_none());
        let l = s
            .lease_job("t4", 1000, 500)
            .await
            .expect("lease")
            .expect("job");
        assert_eq!(l.job.id, "a1");
        // a takeover (lease ran out) is skipped the same way
        assert!(s
            .lease_job_except("t5", 2000, 500, &busy(&["pa", "pb", "pc"]))
            .await
            .expect("lease")
            .is_none());
        let l = s
            .lease_job_except("t6", 2000, 500, &busy(&["pb", "pc"]))
            .await
            .expect("lease")
            .expect("job");
        assert_eq!((l.job.id.as_str(), l.job.attempts), ("a1", 2));
    }
}
