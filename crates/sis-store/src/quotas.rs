//! Quotas: the limits operators set per project (or for every project, or
//! for the whole service), and the shared counts they are checked against,
//! so that every node applies them alike:
//! - real-time sessions: a lease per open session (`session_leases`),
//!   admitted in turns per scope (`quota_turns`), so a limit holds with
//!   many nodes admitting at once; a dead node's leases expire;
//! - open jobs (WAITING or RUNNING): counted in `jobs`;
//! - requests per second: counted per scope and second (`request_counts`).

use sqlx::Row;

use crate::{now_ms, Result, Store, StoreError};

/// The scope of every project without a row of its own.
pub const DEFAULT_SCOPE: &str = "*";
/// The scope of the whole service.
pub const ALL_SCOPE: &str = "all";

/// Live leases of project `$1` (every project when `$1` is empty) at `$2`.
const LIVE_SESSIONS: &str = "SELECT COUNT(*) AS n FROM session_leases \
     WHERE ($1 = '' OR project_id = $1) AND expires_ms > $2";

/// One scope's limits; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Real-time sessions open at once.
    pub sessions: Option<i64>,
    /// Jobs open (WAITING or RUNNING) at once.
    pub jobs: Option<i64>,
    /// Requests per second.
    pub rps: Option<i64>,
}

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Sessions,
    Jobs,
    Rps,
}

impl Store {
    /// Sets `scope`'s limits (replacing what it had).
    pub async fn set_quota(&self, scope: &str, q: Quota) -> Result<()> {
        valid_scope(scope)?;
        sqlx::query(
            "INSERT INTO quotas (scope, sessions, jobs, rps, updated_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scope) DO UPDATE SET sessions = $2, jobs = $3, rps = $4, updated_ms = $5",
        )
        .bind(scope)
        .bind(q.sessions)
        .bind(q.jobs)
        .bind(q.rps)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes `scope`'s limits; whether it had any.
    pub async fn clear_quota(&self, scope: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM quotas WHERE scope = $1")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every scope's limits.
    pub async fn quotas(&self) -> Result<Vec<(String, Quota)>> {
        let rows = sqlx::query("SELECT scope, sessions, jobs, rps FROM quotas ORDER BY scope")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("scope")?,
                    Quota {
                        sessions: r.try_get("sessions")?,
                        jobs: r.try_get("jobs")?,
                        rps: r.try_get("rps")?,
                    },
                ))
            })
            .collect()
    }

    /// Admits real-time session `id` of `project` on `node` if neither the
    /// project's limit nor the service's is reached (live leases counted
    /// in turns), leasing it until `expires_ms`.
    pub async fn admit_session(
        &self,
        id: &str,
        project_id: &str,
        node: &str,
        project_limit: Option<i64>,
        all_limit: Option<i64>,
        expires_ms: i64,
    ) -> Result<std::result::Result<(), Refusal>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // turns: the project's first, then the service's (one order for all)
        let mut scopes = vec![project_id];
        if all_limit.is_some() {
            scopes.push(ALL_SCOPE);
        }
        for scope in &scopes {
            sqlx::query(
                "INSERT INTO quota_turns (scope, n) VALUES ($1, 0) ON CONFLICT (scope) DO NOTHING",
            )
            .bind(*scope)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE quota_turns SET n = n + 1 WHERE scope = $1")
                .bind(*scope)
                .execute(&mut *tx)
                .await?;
        }
        for (limit, project) in [(project_limit, Some(project_id)), (all_limit, None)] {
            let Some(limit) = limit else { continue };
            let n: i64 = sqlx::query(LIVE_SESSIONS)
                .bind(project.unwrap_or(""))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if n >= limit {
                tx.rollback().await?;
                return Ok(Err(Refusal::Sessions));
            }
        }
        sqlx::query(
            "INSERT INTO session_leases (id, project_id, node, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(project_id)
        .bind(node)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Extends every lease `node` holds to `expires_ms`; removes leases
    /// that expired (any node's).
    pub async fn renew_sessions(&self, node: &str, expires_ms: i64) -> Result<()> {
        sqlx::query("UPDATE session_leases SET expires_ms = $1 WHERE node = $2")
            .bind(expires_ms)
            .bind(node)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM session_leases WHERE expires_ms <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A session ended.
    pub async fn end_session(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM session_leases WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts one request of `scope` in the current second; returns the
    /// count so far in that second.
    pub async fn count_request(&self, scope: &str) -> Result<i64> {
        let second = now_ms().div_euclid(1000);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO request_counts (scope, second, n) VALUES ($1, $2, 1) \
             ON CONFLICT (scope, second) DO UPDATE SET n = request_counts.n + 1",
        )
        .bind(scope)
        .bind(second)
        .execute(&mut *tx)
        .await?;
        let n: i64 = sqlx::query("SELECT n FROM request_counts WHERE scope = $1 AND second = $2")
            .bind(scope)
            .bind(second)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        tx.commit().await?;
        Ok(n)
    }

    /// Forgets request counts older than a minute.
    pub async fn purge_request_counts(&self) -> Result<()> {
        sqlx::query("DELETE FROM request_counts WHERE second < $1")
            .bind(now_ms().div_euclid(1000) - 60)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open jobs (WAITING or RUNNING) of `project_id`.
    pub async fn open_jobs_of(&self, project_id: &str) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE project_id = $1 AND status IN ('WAITING', 'RUNNING')",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }
}

fn valid_scope(scope: &str) -> Result<()> {
    if scope == DEFAULT_SCOPE || scope == ALL_SCOPE || crate::is_project_id(scope) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "quota scope {scope:?}: a project id, `*` or `all`"
        )))
    }
}
