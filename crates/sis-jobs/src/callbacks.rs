//! Delivery of result callbacks: up to `callback_concurrency` POSTs at once,
//! each bounded by the fetch policy's callback timeout, retried with
//! exponential backoff; a URL the address policy refuses is given up at once.

use std::sync::Arc;
use std::time::Duration;

use sis_fetch::FetchErrorKind;

use crate::runner::POLL;
use crate::{now_ms, Jobs};

/// Callback retries: doubling from 1 s, at most 10 minutes apart, 12 tries.
const CALLBACK_TRIES: i64 = 12;
const FIRST_DELAY_MS: i64 = 1000;
const MAX_DELAY_MS: i64 = 600_000;

/// When the next attempt of a callback tried `attempts` times is due, or
/// `None` when it is not tried again: delivered, refused for good, or out
/// of tries.
fn next_attempt(attempts: i64, delivered: bool, permanent: bool, now_ms: i64) -> Option<i64> {
    (!delivered && !permanent && attempts < CALLBACK_TRIES)
        .then(|| now_ms + (FIRST_DELAY_MS << attempts.clamp(0, 20)).min(MAX_DELAY_MS))
}

/// Failures that retrying cannot change: the URL is refused or invalid.
fn is_permanent(kind: FetchErrorKind) -> bool {
    matches!(
        kind,
        FetchErrorKind::Forbidden
            | FetchErrorKind::BadUrl
            | FetchErrorKind::InvalidHeader
            | FetchErrorKind::Config
    )
}

/// Leases due callbacks and delivers each in a task of its own.
pub(crate) async fn deliverer(jobs: Arc<Jobs>) {
    let places = Arc::new(tokio::sync::Semaphore::new(
        jobs.config.callback_concurrency.max(1),
    ));
    // the lease outlives the attempt, so no other deliverer takes it meanwhile
    let timeout_ms =
        i64::try_from(jobs.fetcher.policy().callback_timeout.as_millis()).unwrap_or(i64::MAX / 4);
    let lease_ms = timeout_ms.saturating_add(30_000);
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease = match jobs.store.lease_callback(&token, now_ms(), lease_ms).await {
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
        let s = jobs.clone();
        tokio::spawn(async move {
            deliver(&s, lease).await;
            drop(place);
        });
    }
}

/// One delivery attempt, and its record: delivered, retried later, or
/// given up.
async fn deliver(jobs: &Jobs, lease: sis_store::CallbackLease) {
    let now = now_ms();
    let signature = sis_auth::callback::sign(&jobs.config.callback_key, now, lease.body.as_bytes());
    let headers = vec![(sis_auth::callback::HEADER.to_string(), signature)];
    let sent = jobs
        .fetcher
        .post_json(&lease.url, lease.body.as_bytes(), &headers)
        .await;
    let (ok, permanent, error) = match sent {
        Ok(s) if (200..300).contains(&s) => (true, false, None),
        Ok(s) => (false, false, Some(format!("HTTP {s}"))),
        Err(e) => {
            let permanent = is_permanent(e.kind());
            let msg = if permanent {
                format!("not retried: {e}")
            } else {
                e.to_string()
            };
            (false, permanent, Some(msg))
        }
    };
    let next = next_attempt(lease.attempts, ok, permanent, now_ms());
    if permanent {
        tracing::warn!(job_id = lease.job_id, attempt = lease.attempts, delivered = false, retry = false, error = ?error, "callback not retried: the URL is refused");
    } else {
        tracing::info!(job_id = lease.job_id, attempt = lease.attempts, delivered = ok, retry = next.is_some(), error = ?error, "callback");
    }
    if let Err(e) = jobs
        .store
        .callback_attempted(&lease, ok, next, error.as_deref(), now_ms())
        .await
    {
        tracing::warn!(error = %e, "recording a callback attempt failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_a_second_up_to_ten_minutes() {
        let due = |attempts| next_attempt(attempts, false, false, 0);
        assert_eq!(due(0), Some(1000));
        assert_eq!(due(1), Some(2000));
        assert_eq!(due(3), Some(8000));
        assert_eq!(due(9), Some(512_000));
        assert_eq!(due(10), Some(600_000), "capped at 10 minutes");
        assert_eq!(due(11), Some(600_000));
        assert_eq!(due(12), None, "12 tries in all");
        assert_eq!(
            due(-5),
            Some(1000),
            "a nonsense count does not shift negatively"
        );
    }

    #[test]
    fn delivered_or_refused_callbacks_are_not_tried_again() {
        assert_eq!(next_attempt(1, true, false, 0), None);
        assert_eq!(next_attempt(1, false, true, 0), None);
        assert_eq!(next_attempt(1, false, false, 5), Some(2005));
    }

    #[test]
    fn only_refusals_of_the_url_are_permanent() {
        for k in [
            FetchErrorKind::Forbidden,
            FetchErrorKind::BadUrl,
            FetchErrorKind::InvalidHeader,
            FetchErrorKind::Config,
        ] {
            assert!(is_permanent(k), "{k:?}");
        }
        assert!(!is_permanent(FetchErrorKind::TooLarge));
    }
}
