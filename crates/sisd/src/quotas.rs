//! Quotas (`sisd quotas set`), applied alike on every node through the
//! store (`sis_store::quotas`): requests per second, open jobs and
//! real-time sessions, per project (its own row, else the `*` row) and for
//! the whole service (the `all` row). A refusal is HTTP 429 APIG.0308, like
//! SIS's gateway throttling, and counted in `sis_quota_refusals_total`. A
//! project without limits costs nothing: its requests never reach the
//! store for a quota; a project over its limit is refused before any work,
//! so it cannot slow the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sis_store::{Quota, Refusal, Store, ALL_SCOPE, DEFAULT_SCOPE};

/// How long a node uses the limits it read before reading them again: a
/// change by `sisd quotas set` reaches every node within this.
pub const REFRESH: Duration = Duration::from_secs(2);
/// A session lease lasts this long unless its node renews it (every
/// [`RENEW_EVERY`]); a dead node's sessions stop counting after it.
pub const LEASE: Duration = Duration::from_secs(30);
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Every scope's limits, as last read.
type Limits = Arc<HashMap<String, Quota>>;

pub struct Quotas {
    store: Store,
    /// This process, in the session leases it holds.
    node: String,
    limits: Mutex<Option<(Instant, Limits)>>,
}

/// A real-time session counted against its quotas; the lease ends when
/// this is dropped.
pub struct SessionLease {
    id: String,
    store: Store,
}

impl Drop for SessionLease {
    fn drop(&mut self) {
        let (id, store) = (std::mem::take(&mut self.id), self.store.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.end_session(&id).await {
                    // it expires with its node's next renewal
                    tracing::warn!(error = %e, "cannot end a session lease");
                }
            });
        }
    }
}

impl Quotas {
    pub fn new(store: Store) -> Arc<Quotas> {
        Arc::new(Quotas {
            store,
            node: uuid::Uuid::new_v4().simple().to_string(),
            limits: Mutex::new(None),
        })
    }

    /// Renews this node's session leases and forgets old request counts,
    /// for as long as the process runs.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let q = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            loop {
                tick.tick().await;
                let until = sis_store::now_ms() + LEASE.as_millis() as i64;
                if let Err(e) = q.store.renew_sessions(&q.node, until).await {
                    tracing::warn!(error = %e, "cannot renew session leases");
                }
                if let Err(e) = q.store.purge_request_counts().await {
                    tracing::warn!(error = %e, "cannot purge request counts");
                }
            }
        });
    }

    /// Every scope's limits, read at most every [`REFRESH`]. A store that
    /// cannot be read leaves the last limits in force.
    async fn limits(&self) -> Limits {
        if let Some((at, l)) = &*lock(&self.limits) {
            if at.elapsed() < REFRESH {
                return l.clone();
            }
        }
        let fresh = match self.store.quotas().await {
            Ok(rows) => Arc::new(rows.into_iter().collect::<HashMap<_, _>>()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read quotas; the last ones stay");
                lock(&self.limits)
                    .as_ref()
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default()
            }
        };
        *lock(&self.limits) = Some((Instant::now(), fresh.clone()));
        fresh
    }

    /// The project's limits (its own row, else `*`) and the service's.
    async fn for_project(&self, project_id: &str) -> (Quota, Quota) {
        let l = self.limits().await;
        let own = l
            .get(project_id)
            .or_else(|| l.get(DEFAULT_SCOPE))
            .copied()
            .unwrap_or_default();
        (own, l.get(ALL_SCOPE).copied().unwrap_or_default())
    }

    /// One request of `project_id`: refused past its requests per second.
    pub async fn request(&self, project_id: &str) -> Result<(), QuotaError> {
        let (own, all) = self.for_project(project_id).await;
        for (scope, limit) in [(project_id, own.rps), (ALL_SCOPE, all.rps)] {
            let Some(limit) = limit else { continue };
            match self.store.count_request(scope).await {
                Ok(n) if n > limit => return Err(refused(Refusal::Rps, scope)),
                Ok(_) => {}
                // a store that fails is not a reason to refuse
                Err(e) => tracing::warn!(error = %e, "cannot count a request for its quota"),
            }
        }
        Ok(())
    }

    /// A new job of `project_id`: refused past its open jobs.
    pub async fn job(&self, project_id: &str) -> Result<(), QuotaError> {
        let (own, all) = self.for_project(project_id).await;
        if let Some(limit) = own.jobs {
            let n = self
                .store
                .open_jobs_of(project_id)
                .await
                .map_err(QuotaError::Store)?;
            if n >= limit {
                return Err(refused(Refusal::Jobs, project_id));
            }
        }
        if let Some(limit) = all.jobs {
            let n = self.store.open_jobs().await.map_err(QuotaError::Store)?;
            if n >= limit {
                return Err(refused(Refusal::Jobs, ALL_SCOPE));
            }
        }
        Ok(())
    }

    /// A new real-time session of `project_id`: leased (`None` when no
    /// limit applies), or refused past its sessions.
    pub async fn session(&self, project_id: &str) -> Result<Option<SessionLease>, QuotaError> {
        let (own, all) = self.for_project(project_id).await;
        if own.sessions.is_none() && all.sessions.is_none() {
            return Ok(None);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let until = sis_store::now_ms() + LEASE.as_millis() as i64;
        match self
            .store
            .admit_session(
                &id,
                project_id,
                &self.node,
                own.sessions,
                all.sessions,
                until,
            )
            .await
        {
            Ok(Ok(())) => Ok(Some(SessionLease {
                id,
                store: self.store.clone(),
            })),
            Ok(Err(r)) => Err(refused(r, project_id)),
            Err(e) => Err(QuotaError::Store(e)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a quota check did not admit.
#[derive(Debug)]
pub enum QuotaError {
    /// A limit (`rps`, `jobs`, `sessions`) reached: the service's (`true`)
    /// or the project's.
    Refused {
        limit: &'static str,
        service: bool,
    },
    Store(sis_store::StoreError),
}

fn refused(r: Refusal, scope: &str) -> QuotaError {
    let limit = match r {
        Refusal::Sessions => "sessions",
        Refusal::Jobs => "jobs",
        Refusal::Rps => "rps",
    };
    metrics::counter!(crate::metrics::QUOTA_REFUSALS, "limit" => limit).increment(1);
    QuotaError::Refused {
        limit,
        service: scope == ALL_SCOPE,
    }
}
