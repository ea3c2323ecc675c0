//! What every handler shares: the application state, the request id, the
//! authenticated caller, and the request limits. Handlers, the auth layer
//! and the error layer depend on this module; it depends on none of them.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use sis_auth::secrets::MasterKey;
use sis_auth::FailureLimiter;
use sis_pool::EnginePool;
use sis_store::Store;

use crate::config::{AuthMode, VocabularyLimits};
use crate::shutdown::Shutdown;

// ---- request limits (the SIS gateway's) ----

/// Largest request body accepted at all.
pub const MAX_BODY_BYTES: usize = 12 * 1024 * 1024;
/// Request headers, in all (APIG.0201, 494).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Request URI (APIG.0201, 414).
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Largest `POST /v3/auth/tokens` body.
pub const MAX_TOKEN_BODY_BYTES: usize = 64 * 1024;
/// Largest transcription job create body.
pub const MAX_JOB_BODY_BYTES: usize = 64 * 1024;
/// Largest speech synthesis body (500 characters, each at most a 12-byte
/// JSON escape, and the config, fit many times over).
pub const MAX_TTS_BODY_BYTES: usize = 64 * 1024;

/// Decoded audio a short-audio request may hold at most: 60 s of f32 at 16 kHz
/// (the engine works at the model's rate; 8 kHz audio is resampled up).
const DECODED_MAX_BYTES: usize = 60 * 16_000 * 4;

// ---- per request ----

/// The id of a request: in its `X-Request-Id` header, gateway error bodies
/// and log lines. Set by the outermost layer (`errors::request_scope`).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::new_v4().to_string())
    }
}

/// What the layers and handlers learn of a request for its one log line
/// (`errors::request_scope` writes it once the request is answered). Never
/// a secret, a body or audio.
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<Mutex<Notes>>);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Notes {
    /// The project of the path (`/v1/{project_id}/`), or the token's scope.
    pub project: Option<String>,
    /// The user a token is asked for (`domain/name`).
    pub user: Option<String>,
    /// Seconds of audio, once decoded.
    pub audio_s: Option<f64>,
    /// The job created or read.
    pub job_id: Option<String>,
    /// The vocabulary created, read, changed or deleted, or the one a
    /// recognition used (with its version).
    pub vocabulary_id: Option<String>,
    pub vocabulary_version: Option<i64>,
    /// Characters of text a synthesis was asked to read.
    pub text_chars: Option<usize>,
}

/// A value the client chose, as a log line shows it: at most 64 characters.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

impl RequestLog {
    pub fn note(&self, f: impl FnOnce(&mut Notes)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn take(&self) -> Notes {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Who is calling, once authenticated; handlers read the project from it,
/// never from anything else. Only the auth layer creates one.
#[derive(Clone, Debug)]
pub struct Principal {
    pub project_id: String,
}

// ---- shared ----

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<EnginePool>,
    pub auth: Arc<AuthState>,
    /// Open RASR WebSocket connections.
    pub rasr_connections: Arc<AtomicUsize>,
    /// Open real-time synthesis WebSocket connections.
    pub rtts_connections: Arc<AtomicUsize>,
    /// Memory short-audio requests may hold together.
    pub short_audio_budget: Arc<MemoryBudget>,
    pub jobs: Arc<sis_jobs::Jobs>,
    /// Hot-word vocabularies: the store, and the cache recognition requests
    /// resolve `vocabulary_id` through (shared with the job service).
    pub vocabularies: Arc<sis_store::VocabularyCache>,
    pub vocabulary_limits: VocabularyLimits,
    /// Speech synthesis (espeak-ng processes).
    pub tts: Arc<sis_engine::tts::Synthesizer>,
    /// Flash recognition: its buckets by name, its time limit, where
    /// objects wait while they are recognised.
    pub flash: Arc<FlashSettings>,
    /// Set on SIGTERM/SIGINT; real-time connections watch it.
    pub shutdown: Shutdown,
    /// `/metrics` is served on the main listener (no `--metrics-listen`).
    pub metrics_on_main: bool,
    /// Operators' limits per project and for the service.
    pub quotas: Arc<crate::quotas::Quotas>,
}

/// Flash recognition's settings (`--flash-bucket`, `--flash-timeout-s`).
pub struct FlashSettings {
    pub buckets: std::collections::HashMap<String, sis_store::Objects>,
    pub timeout: std::time::Duration,
    /// A directory for the downloaded objects (DATA_DIR/jobs).
    pub spool: std::path::PathBuf,
}

/// What the auth layer and the token API need.
pub struct AuthState {
    pub mode: AuthMode,
    pub store: Store,
    pub master_key: Option<MasterKey>,
    pub token_ttl_s: i64,
    /// 5 signature failures of one access key lock it for 5 minutes.
    pub ak_failures: FailureLimiter,
    /// 5 wrong passwords of one user lock its sign-in for 5 minutes.
    pub user_failures: FailureLimiter,
    /// Password checks (argon2id, 19 MiB each) running at once; a sign-in
    /// that finds none free is refused at once (429 APIG.0308).
    pub password_checks: Arc<tokio::sync::Semaphore>,
}

impl AuthState {
    pub fn new(
        mode: AuthMode,
        store: Store,
        master_key: Option<MasterKey>,
        token_ttl_s: i64,
        password_checks: usize,
    ) -> AuthState {
        AuthState {
            mode,
            store,
            master_key,
            token_ttl_s,
            ak_failures: FailureLimiter::default(),
            user_failures: FailureLimiter::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(password_checks)),
        }
    }
}

/// Admission of short-audio requests by the memory they will hold, not only
/// by count (the decode queue): a request takes its share before its body is
/// read and gives it back when answered, so many large bodies at once are
/// refused instead of growing the heap. Units are KiB.
pub struct MemoryBudget(tokio::sync::Semaphore);

impl MemoryBudget {
    pub fn new(mb: usize) -> MemoryBudget {
        MemoryBudget(tokio::sync::Semaphore::new(mb.saturating_mul(1024)))
    }

    /// A request whose body is `body_bytes` long (or unknown: the largest
    /// allowed), or `None` when the budget is spent.
    pub fn admit(&self, body_bytes: Option<usize>) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let body = body_bytes.unwrap_or(MAX_BODY_BYTES).min(MAX_BODY_BYTES);
        // the body, its decoded base64, and the decoded audio
        let kib = (2 * body + DECODED_MAX_BYTES).div_ceil(1024);
        self.0.try_acquire_many(u32::try_from(kib).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_body_and_decoded_audio() {
        // 8 MiB: one largest body (2 x 12 MiB + 3.7 MiB) does not fit
        let budget = MemoryBudget::new(8);
        assert!(budget.admit(None).is_none());
        let small = budget.admit(Some(100_000)).expect("a small body fits");
        // 2 x 100 kB + 3.84 MB decoded, about 3.9 MiB: a second fits, a third not
        let second = budget.admit(Some(100_000)).expect("a second fits");
        assert!(budget.admit(Some(100_000)).is_none());
        drop(second);
        drop(small);
        assert!(
            budget.admit(Some(1_000_000)).is_some(),
            "given back when answered"
        );
    }
}
