//! The one place where errors become what a client sees (docs/ERRORS.md):
//! every SIS code `sisd` chooses is chosen here (`sis-protocol` chooses those
//! of malformed requests; the `sis_codes_are_chosen_in_errors_rs` test keeps
//! other modules from choosing one), and every HTTP error response is
//! rendered and logged here, once.
//!
//! Handlers return [`HandlerResult`]; an [`AppError`] becomes a response
//! that carries the error, and [`request_scope`], the outermost layer, gives
//! it its request id, renders the body and writes the request's one log
//! line, into which the error is folded (every request gets that line,
//! failed or not: [`log_request`]). The real-time protocols send errors as
//! messages instead ([`AppError::into_message`], a [`MessageError`] that the
//! session's one line carries: `rasr.rs`).

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sis_audio::AudioError;
use sis_auth::sign::SignError;
use sis_engine::tts::TtsError;
use sis_engine::EngineError;
use sis_fetch::{FetchError, FetchErrorKind};
use sis_jobs::JobError;
use sis_protocol::transcriber;
use sis_protocol::{ApiError, SisCode};

use crate::state::{clip, Notes, RequestId, RequestLog};

/// What every handler returns.
pub type HandlerResult<T = Response> = Result<T, AppError>;

/// An error on its way to the client: what the client is told, and what only
/// the log gets.
#[derive(Clone, Debug)]
pub struct AppError {
    shown: Shown,
    /// The internal cause, or who was refused; logged, never sent.
    detail: Option<String>,
    /// The log line's message; `None`: not logged one by one (a flood would
    /// flood the log too).
    event: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u32>,
    /// Logged at error level although the client is refused (the server's
    /// configuration is at fault).
    server_fault: bool,
}

#[derive(Clone, Debug)]
enum Shown {
    /// A SIS or gateway error body.
    Sis(ApiError),
    /// The IAM token API's own error body.
    Iam { status: StatusCode, message: String },
}

impl From<ApiError> for AppError {
    fn from(error: ApiError) -> AppError {
        AppError {
            shown: Shown::Sis(error),
            detail: None,
            event: Some("request refused"),
            retry_after: None,
            server_fault: false,
        }
    }
}

impl AppError {
    /// A refusal of the authentication layer.
    pub fn auth(error: ApiError) -> AppError {
        AppError {
            event: Some("authentication refused"),
            ..error.into()
        }
    }

    /// An error of the IAM token API, in its own body format.
    pub fn iam(status: StatusCode, message: &str) -> AppError {
        AppError {
            shown: Shown::Iam {
                status,
                message: message.to_string(),
            },
            detail: None,
            event: Some("token request refused"),
            retry_after: None,
            server_fault: false,
        }
    }

    /// Adds what only the log gets.
    pub fn detail(mut self, detail: impl Into<String>) -> AppError {
        self.detail = Some(detail.into());
        self
    }

    /// Logs the refusal at error level: the server's configuration, not the
    /// client, is at fault.
    pub fn server_fault(mut self) -> AppError {
        self.server_fault = true;
        self
    }

    fn quiet(mut self) -> AppError {
        self.event = None;
        self
    }

    fn retry_after(mut self, seconds: u32) -> AppError {
        self.retry_after = Some(seconds);
        self
    }

    fn status(&self) -> StatusCode {
        match &self.shown {
            Shown::Sis(e) => StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            Shown::Iam { status, .. } => *status,
        }
    }

    /// For protocols that send errors as messages (real time): what is
    /// sent, and what the session's log line adds.
    pub fn into_message(self) -> MessageError {
        let server_fault = self.server_fault || self.status().is_server_error();
        let detail = self.detail.clone();
        MessageError {
            shown: self.into_api_error(),
            detail,
            server_fault,
        }
    }

    /// What the client is told.
    fn into_api_error(self) -> ApiError {
        match self.shown {
            Shown::Sis(e) => e,
            Shown::Iam { message, .. } => ApiError::new(SisCode::Internal, message),
        }
    }

    /// The code and message the client is told, for the log.
    /// What a client is told: HTTP status, code, message (for APIs with
    /// a body of their own: the OpenAI-compatible ones).
    pub fn public(&self) -> (StatusCode, &str, &str) {
        let (code, message) = self.shown_code();
        (self.status(), code, message)
    }

    fn shown_code(&self) -> (&str, &str) {
        match &self.shown {
            Shown::Sis(e) => (e.code.as_str(), e.message.as_str()),
            Shown::Iam { message, .. } => ("IAM", message.as_str()),
        }
    }

    fn render(&self, request_id: &str) -> Response {
        let (content_type, body) = match &self.shown {
            Shown::Sis(e) => ("application/json;charset=utf-8", e.body(request_id)),
            Shown::Iam { status, message } => (
                "application/json;charset=utf8",
                sis_protocol::error::IamErrorBody::render(status.as_u16(), message),
            ),
        };
        let mut r = (self.status(), body).into_response();
        let headers = r.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        if let Some(s) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(s));
        }
        r
    }
}

impl IntoResponse for AppError {
    /// The response without its request id; [`request_scope`] renders it
    /// again with the id and logs it.
    fn into_response(self) -> Response {
        let mut r = self.render("");
        r.extensions_mut().insert(self);
        r
    }
}

/// An error a real-time protocol sends as a message (ERROR, FATAL_ERROR):
/// what is sent, and what only the session's log line gets.
#[derive(Clone, Debug)]
pub struct MessageError {
    pub shown: ApiError,
    /// The internal cause of a server fault; logged, never sent.
    pub detail: Option<String>,
    /// Logged at error level.
    pub server_fault: bool,
}

impl From<ApiError> for MessageError {
    fn from(shown: ApiError) -> MessageError {
        MessageError {
            server_fault: shown.status >= 500,
            shown,
            detail: None,
        }
    }
}

/// The outermost layer: gives the request its id (`X-Request-Id`), renders
/// any [`AppError`] from inside, and writes the request's one log line.
pub async fn request_scope(mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = RequestId::generate();
    let api = api_name(req.method(), req.uri().path());
    let notes = RequestLog::default();
    req.extensions_mut().insert(id.clone());
    req.extensions_mut().insert(notes.clone());
    let mut resp = next.run(req).await;
    let error = resp.extensions_mut().remove::<AppError>();
    let status = error.as_ref().map_or(resp.status(), AppError::status);
    if let Some(api) = api {
        let code = error
            .as_ref()
            .map_or("none", |e| e.shown_code().0)
            .to_owned();
        metrics::counter!(crate::metrics::REQUESTS, "api" => api, "code" => code,
            "status" => status.as_str().to_owned())
        .increment(1);
        metrics::histogram!(crate::metrics::REQUEST_SECONDS, "api" => api)
            .record(started.elapsed().as_secs_f64());
    }
    log_request(
        api,
        &id.0,
        status,
        error.as_ref(),
        &notes.take(),
        started.elapsed(),
    );
    if let Some(error) = error {
        resp = error.render(&id.0);
    }
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The API a request calls, by method and path (before routing, so that
/// requests refused by the outer layers are named too); `None` for
/// anything else.
pub fn api_name(method: &Method, path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').collect();
    let name = match parts.as_slice() {
        ["", "v1", p, "asr", "short-audio"] if !p.is_empty() && method == Method::POST => {
            "short-audio"
        }
        ["", "v1", p, "tts"] if !p.is_empty() && method == Method::POST => "tts",
        ["", "v1", p, "asr", "flash"] if !p.is_empty() && method == Method::POST => "flash",
        ["", "v1", p, "asr", "transcriber", "jobs"] if !p.is_empty() && method == Method::POST => {
            "jobs.create"
        }
        ["", "v1", p, "asr", "transcriber", "jobs", j]
            if !p.is_empty() && !j.is_empty() && method == Method::GET =>
        {
            "jobs.get"
        }
        ["", "v1", p, "rasr", m] if !p.is_empty() && !m.is_empty() && method == Method::GET => {
            "rasr"
        }
        ["", "v1", p, "rtts"] if !p.is_empty() && method == Method::GET => "rtts",
        ["", "v1", p, "asr", "vocabularies"] if !p.is_empty() && method == Method::POST => {
            "vocabularies.create"
        }
        ["", "v1", p, "asr", "vocabularies"] if !p.is_empty() && method == Method::GET => {
            "vocabularies.list"
        }
        ["", "v1", p, "asr", "vocabularies", v] if !p.is_empty() && !v.is_empty() => {
            if method == Method::GET {
                "vocabularies.show"
            } else if method == Method::PUT {
                "vocabularies.update"
            } else if method == Method::DELETE {
                "vocabularies.delete"
            } else {
                return None;
            }
        }
        ["", "v1", "audio", "transcriptions"] if method == Method::POST => "openai.transcriptions",
        ["", "v3", "auth", "tokens"] if method == Method::POST => "tokens.issue",
        ["", "v3", "auth", "tokens"] if method == Method::DELETE => "tokens.revoke",
        ["", "health"] if method == Method::GET => "health",
        _ => return None,
    };
    Some(name)
}

/// Seconds of audio rounded to 10 ms, for log lines.
pub fn seconds(s: f64) -> f64 {
    (s * 100.0).round() / 100.0
}

/// Writes one event at a level chosen at run time (tracing fixes the level
/// of each call site).
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            tracing::Level::ERROR => tracing::error!($($rest)+),
            tracing::Level::WARN => tracing::warn!($($rest)+),
            tracing::Level::INFO => tracing::info!($($rest)+),
            _ => tracing::debug!($($rest)+),
        }
    };
}
pub(crate) use event_at;

/// The level of a request's line: debug for what is not an API call
/// (unknown paths: scanners), `/health` (polled), refusals not logged one by
/// one (floods) and accepted WebSocket upgrades (each real-time session has
/// its own line); error for server faults; info otherwise.
fn request_level(
    api: Option<&str>,
    status: StatusCode,
    error: Option<&AppError>,
) -> tracing::Level {
    let quiet = error.is_some_and(|e| e.event.is_none());
    let fault = error.is_some_and(|e| e.server_fault) || status.is_server_error();
    if api.is_none() || api == Some("health") || quiet {
        tracing::Level::DEBUG
    } else if fault {
        tracing::Level::ERROR
    } else if status == StatusCode::SWITCHING_PROTOCOLS {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    }
}

/// The one line of an HTTP request: the API, the project, the status and
/// SIS code, the seconds of audio, the latency and the trace id (the
/// request id, `X-Request-Id`); an error's message and internal cause
/// (never sent) are folded into it. Never a body, a header or a secret.
fn log_request(
    api: Option<&'static str>,
    trace_id: &str,
    status: StatusCode,
    error: Option<&AppError>,
    notes: &Notes,
    latency: std::time::Duration,
) {
    let level = request_level(api, status, error);
    let (code, msg) = match error.map(AppError::shown_code) {
        Some((c, m)) => (Some(c), Some(m)),
        None => (None, None),
    };
    let detail = error.and_then(|e| e.detail.as_deref());
    let message = error.and_then(|e| e.event).unwrap_or("request");
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    event_at!(
        level,
        target: "sisd::request",
        api = api.unwrap_or("none"),
        project = notes.project.as_deref(),
        user = notes.user.as_deref(),
        job_id = notes.job_id.as_deref(),
        vocabulary_id = notes.vocabulary_id.as_deref(),
        vocabulary_version = notes.vocabulary_version,
        text_chars = notes.text_chars,
        status = status.as_u16(),
        code,
        msg,
        detail,
        audio_s = notes.audio_s.map(seconds),
        latency_ms,
        trace_id,
        "{message}"
    );
}

// ---- internal errors ----

pub fn internal_error() -> AppError {
    ApiError::new(SisCode::Internal, "internal service error").into()
}

/// The store could not be used.
pub fn store(e: &sis_store::StoreError) -> AppError {
    internal_error().detail(format!("store unavailable: {e}"))
}

/// Flash: `obs_bucket_name` is not a bucket of this server (SIS.0507).
pub fn flash_bucket_unknown(name: &str) -> ApiError {
    ApiError::new(
        SisCode::FlashBucketInvalid,
        format!("obs_bucket_name '{name}' is not a bucket of this server"),
    )
}

/// Flash: no object of that key (SIS.0512).
pub fn flash_no_object() -> ApiError {
    ApiError::new(
        SisCode::FlashKeyInvalid,
        "obs_object_key names no object of the bucket",
    )
}

/// Flash: the object is empty or larger than 100 MB (SIS.0504).
pub fn flash_size(size: u64) -> ApiError {
    ApiError::new(
        SisCode::FlashAudioSize,
        format!("the object has {size} bytes; flash takes 1 byte to 100 MB"),
    )
}

/// Flash: not done within `--flash-timeout-s` (SIS.0033).
pub fn flash_timeout() -> ApiError {
    ApiError::new(
        SisCode::EngineTimeout,
        "flash recognition did not finish in time",
    )
}

/// What a client is told when flash recognition of a file fails: the job
/// mapping, with flash's own codes for audio too long (SIS.0511).
pub fn flash(e: &JobError) -> ApiError {
    match e {
        JobError::Audio(AudioError::TooLong { .. }) => ApiError::new(
            SisCode::FlashAudioDuration,
            "audio is longer than 30 min, the limit of flash recognition",
        ),
        other => job(other),
    }
}

/// A blocking task that did not finish (it panicked).
pub fn task_failed() -> AppError {
    internal_error().detail("a blocking task failed")
}

fn engine_error(e: &EngineError) -> ApiError {
    match e {
        EngineError::UnknownProperty(p) => {
            ApiError::invalid(format!("'property' {p} is not supported by this server"))
        }
        EngineError::Busy => ApiError::new(
            SisCode::MaxConcurrency,
            "max concurrency exceeded, retry later",
        ),
        EngineError::ShuttingDown => {
            ApiError::new(SisCode::Internal, "service is shutting down").with_status(503)
        }
        EngineError::WorkerLost(_) => ApiError::new(
            SisCode::Internal,
            "the recognition engine stopped while handling this request; retry",
        )
        .with_status(503),
        EngineError::Failed(_) => ApiError::new(SisCode::RecognitionFailed, "recognition failed"),
        EngineError::Pack(_) | EngineError::Load(_) => {
            ApiError::new(SisCode::Internal, "internal service error")
        }
    }
}

/// An engine error; the cause of a server fault goes to the log.
pub fn engine(e: EngineError) -> AppError {
    let shown: AppError = engine_error(&e).into();
    match e {
        EngineError::UnknownProperty(_) | EngineError::Busy | EngineError::ShuttingDown => shown,
        other => shown.detail(other.to_string()),
    }
}

/// A fetch error: the URL's own fault (SIS.0032: a scheme, address or
/// local file the policy refuses, or a file too large) or the network's
/// (SIS.0001, like SIS's storage connection errors).
fn fetch(what: &str, e: &FetchError) -> ApiError {
    match e.kind() {
        FetchErrorKind::Forbidden | FetchErrorKind::BadUrl | FetchErrorKind::LocalFile => {
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

/// Why a request body could not be read: too slow (408, `--body-stall-s`,
/// `--body-timeout-s`) or too large (413).
pub fn body(e: &axum::Error) -> AppError {
    if crate::http::is_body_timeout(e) {
        ApiError::new(
            SisCode::GatewayRequest,
            "Request timeout: the body did not arrive in time.",
        )
        .with_status(408)
        .into()
    } else {
        ApiError::new(SisCode::GatewayRequest, "Request entity too large.")
            .with_status(413)
            .into()
    }
}

/// An upload with no bytes.
pub fn upload_empty() -> AppError {
    ApiError::invalid("the upload is empty").into()
}

/// An upload (`POST .../asr/transcriber/uploads`) past `max` bytes (413).
pub fn upload_too_large(max: u64) -> AppError {
    ApiError::new(
        SisCode::GatewayRequest,
        format!(
            "Request entity too large: an upload may hold {} MB.",
            max / (1024 * 1024)
        ),
    )
    .with_status(413)
    .into()
}

// ---- audio, per API (SIS reports the same fault differently in each) ----

/// Short-audio: the 60 s limit, or the decoder's description.
pub fn short_audio_audio(e: AudioError) -> ApiError {
    match e {
        AudioError::TooLong { .. } => {
            ApiError::invalid("audio is longer than 60 s, the limit of short-audio")
        }
        other => ApiError::invalid(other.to_string()),
    }
}

// ---- speech synthesis ----

/// A synthesis that was not made: the request's fault (voice, rate), the
/// server's (espeak-ng missing or failing; the cause goes to the log), or
/// too many at once.
pub fn tts(e: TtsError) -> AppError {
    match e {
        TtsError::UnknownVoice(v) => ApiError::invalid(format!(
            "'property' {} is not a voice of this server",
            clip(&v)
        ))
        .into(),
        TtsError::RateNotOffered { voice, rate } => ApiError::new(
            SisCode::TtsSampleRate,
            format!("'sample_rate' {rate} is not offered by {voice}: it is offered at 16000 only"),
        )
        .into(),
        TtsError::Busy => ApiError::new(
            SisCode::MaxConcurrency,
            "max concurrency exceeded, retry later",
        )
        .into(),
        TtsError::Unavailable(reason) => AppError::from(ApiError::new(
            SisCode::Internal,
            "speech synthesis is not available on this server",
        ))
        .detail(reason)
        .server_fault(),
        TtsError::Failed(cause) => {
            AppError::from(ApiError::new(SisCode::TtsFailed, "speech synthesis failed"))
                .detail(cause)
        }
    }
}

// ---- hot-word vocabularies ----

/// No vocabulary `id` in the caller's project (another project's answers
/// the same).
pub fn vocabulary_not_found(id: &str) -> AppError {
    vocabulary_missing(id).into()
}

fn vocabulary_missing(id: &str) -> ApiError {
    ApiError::new(
        SisCode::VocabularyNotFound,
        format!("vocabulary {} is not found", clip(id)),
    )
}

/// Why the store refused to create or change a vocabulary named `name`;
/// `per_project` is the limit of vocabularies of a project.
pub fn vocabulary_refused(e: &sis_store::StoreError, name: &str, per_project: usize) -> AppError {
    use sis_store::StoreError;
    match e {
        StoreError::Conflict(_) => ApiError::new(
            SisCode::VocabularyNameTaken,
            format!("vocabulary name '{name}' already exists in this project"),
        )
        .into(),
        StoreError::TooMany(_) => ApiError::new(
            SisCode::TooManyVocabularies,
            format!("too many vocabularies: a project may hold {per_project}"),
        )
        .into(),
        other => store(other),
    }
}

// ---- transcription jobs ----

/// What a client is told of a job's failure (also `sis_jobs::Jobs::public`,
/// for the error documents of jobs that fail while running).
pub fn job(e: &JobError) -> ApiError {
    match e {
        JobError::Request(e) => e.clone(),
        JobError::NotUtf8 => ApiError::invalid("body is not UTF-8"),
        JobError::NotFound => transcriber::not_found(),
        JobError::VocabularyNotFound(id) => vocabulary_missing(id),
        JobError::DiarizationUnavailable => ApiError::new(
            SisCode::Unsupported,
            "speaker diarization of mono audio needs a diarization model, and this server has none: \
             set need_analysis_info.diarization to false, or send stereo audio with channel LEFT_AGENT or RIGHT_AGENT",
        ),
        JobError::AgentChannelNeedsStereo => ApiError::invalid(
            "need_analysis_info.channel LEFT_AGENT/RIGHT_AGENT needs stereo audio; this file is mono",
        ),
        JobError::Fetch { what, error } => fetch(what, error),
        JobError::Audio(AudioError::TooLong { .. }) => ApiError::new(
            SisCode::AudioTooLong,
            "audio is longer than 5 h, the limit of recorded-file jobs",
        ),
        JobError::Audio(other) => ApiError::new(
            SisCode::AudioFormatInvalid,
            format!("Audio format is invalid! ({other})"),
        ),
        JobError::Engine(e) => engine_error(e),
        JobError::Interrupted { times } => ApiError::new(
            SisCode::Internal,
            format!("processing was interrupted {times} times"),
        ),
        JobError::EngineWorkerDied { times } => ApiError::new(
            SisCode::Internal,
            format!("the engine worker died {times} times while recognising this file"),
        ),
        JobError::UploadNotFound(id) => {
            ApiError::invalid(format!("upload {} is not found", clip(id)))
        }
        JobError::TooManyUploads(n) => ApiError::invalid(format!(
            "too many uploads: a project may hold {n}; delete one or wait for it to expire"
        )),
        JobError::Panicked => ApiError::new(SisCode::RecognitionFailed, "recognition failed"),
        JobError::Store(_) => ApiError::new(SisCode::Internal, "internal service error"),
        JobError::ResultUnavailable(_) => ApiError::new(
            SisCode::DependencyFailed,
            "the job's result cannot be read from object storage",
        )
        .with_status(500),
    }
}

impl From<JobError> for AppError {
    fn from(e: JobError) -> AppError {
        let shown: AppError = job(&e).into();
        match e {
            JobError::Store(_)
            | JobError::ResultUnavailable(_)
            | JobError::Panicked
            | JobError::Engine(EngineError::Failed(_) | EngineError::Pack(_))
            | JobError::Engine(EngineError::Load(_) | EngineError::WorkerLost(_)) => {
                shown.detail(e.to_string())
            }
            _ => shown,
        }
    }
}

// ---- the gateway and authentication ----

const IAM_PREFIX: &str = "Incorrect IAM authentication information: ";

/// An unknown path or method (not logged one by one: scanners).
pub fn not_found() -> AppError {
    AppError::from(ApiError::new(
        SisCode::ApiNotFound,
        "The API does not exist or has not been published in the environment.",
    ))
    .quiet()
}

pub fn uri_too_large() -> AppError {
    ApiError::new(SisCode::GatewayRequest, "Request URI too large.")
        .with_status(414)
        .into()
}

pub fn headers_too_large() -> AppError {
    ApiError::new(SisCode::GatewayRequest, "Request headers too large.")
        .with_status(494)
        .into()
}

/// APIG.0301 with the gateway's prefix.
pub fn unauthenticated(message: &str) -> AppError {
    AppError::auth(ApiError::new(
        SisCode::GatewayAuth,
        format!("{IAM_PREFIX}{message}"),
    ))
}

/// A signature that does not verify.
pub fn signature(e: &SignError) -> AppError {
    unauthenticated(&match e {
        SignError::Expired => "calc ak sk signature fail:signature expired".to_string(),
        SignError::MissingDate => "x-sdk-date not found".to_string(),
        SignError::BadDate => "x-sdk-date is malformed".to_string(),
        SignError::MissingSignedHeader(h) => {
            format!("verify aksk signature fail, signed header {h} not found")
        }
        SignError::Malformed => "the Authorization header is malformed".to_string(),
        SignError::Mismatch => "verify aksk signature fail".to_string(),
    })
}

/// A valid token that may not be used here (`reason`).
pub fn token_rejected(reason: &str) -> AppError {
    AppError::auth(ApiError::new(
        SisCode::TokenRejected,
        format!("token verification failed: {reason}"),
    ))
}

/// A valid signature of another project's key.
pub fn other_project() -> AppError {
    AppError::auth(ApiError::new(
        SisCode::GatewayForbidden,
        "The IAM user is not authorized to access the API.",
    ))
}

/// Every password check is busy (not logged one by one).
pub fn sign_ins_throttled() -> AppError {
    AppError::from(ApiError::new(
        SisCode::GatewayThrottled,
        "The throttling threshold has been reached: too many sign-ins at once, retry later.",
    ))
    .retry_after(1)
    .quiet()
}

impl From<crate::quotas::QuotaError> for AppError {
    fn from(e: crate::quotas::QuotaError) -> AppError {
        match e {
            crate::quotas::QuotaError::Refused { limit, service } => quota_exceeded(limit, service),
            crate::quotas::QuotaError::Store(e) => store(&e),
        }
    }
}

/// A quota reached (`sisd quotas`): `limit` is `rps`, `jobs` or
/// `sessions`; `service`: the whole service's, else the project's.
pub fn quota_exceeded(limit: &str, service: bool) -> AppError {
    let what = match limit {
        "rps" => "requests per second",
        "jobs" => "open recognition jobs",
        _ => "real-time sessions",
    };
    let whose = if service {
        "the service"
    } else {
        "this project"
    };
    AppError::from(ApiError::new(
        SisCode::GatewayThrottled,
        format!("The throttling threshold has been reached: {what} of {whose}, retry later."),
    ))
    .retry_after(1)
    .quiet()
}

/// A request to a WebSocket endpoint that is not an upgrade.
pub fn not_a_websocket() -> AppError {
    ApiError::invalid("a WebSocket upgrade request is required").into()
}

// ---- real-time recognition (sent as ERROR / FATAL_ERROR messages) ----

pub mod rasr {
    use sis_audio::AudioError;
    use sis_protocol::{ApiError, SisCode};

    pub fn start_while_open() -> ApiError {
        ApiError::invalid("incorrect time sequence: START while a session is open")
    }

    pub fn end_without_start() -> ApiError {
        ApiError::invalid("incorrect time sequence: END without START")
    }

    pub fn audio_before_start() -> ApiError {
        ApiError::invalid("audio received before START; it is ignored until the next START")
    }

    pub fn property_not_served(property: &str) -> ApiError {
        ApiError::invalid(format!(
            "'property' {property} is not served by any model pack on this server"
        ))
    }

    pub fn needs_vad() -> ApiError {
        ApiError::new(
            SisCode::Unsupported,
            "this mode needs a VAD pack, and none is installed",
        )
    }

    pub fn bad_audio_format() -> ApiError {
        ApiError::invalid("'audio_format' is invalid")
    }

    pub fn audio(e: &AudioError) -> ApiError {
        ApiError::invalid(format!("audio data invalid: {e}"))
    }

    pub fn idle() -> ApiError {
        ApiError::new(SisCode::AudioTimeout, "wait voice timeout")
    }

    pub fn connection_too_long() -> ApiError {
        ApiError::new(
            SisCode::AudioTooLong,
            "the connection reached its 5-hour limit",
        )
    }

    pub fn shutting_down() -> ApiError {
        ApiError::new(SisCode::Internal, "service is shutting down")
    }

    /// The engine side of a session went away.
    pub fn engine_gone() -> ApiError {
        ApiError::new(SisCode::RecognitionFailed, "recognition failed")
    }

    /// The session's engine worker died.
    pub fn engine_stopped() -> ApiError {
        ApiError::new(
            SisCode::RecognitionFailed,
            "recognition failed: the recognition engine stopped; start a new session",
        )
    }
}

// ---- real-time synthesis (sent as ERROR / FATAL_ERROR messages) ----

/// The errors of `wss /v1/{project_id}/rtts` of its own; the rest are those
/// of the START's parser (`sis-protocol`), of synthesis ([`tts`]) and of
/// RASR ([`rasr::idle`], [`rasr::shutting_down`]).
pub mod rtts {
    use sis_protocol::{ApiError, SisCode};

    pub fn binary_before_start() -> ApiError {
        ApiError::invalid("a binary message before START: send START (a JSON text message) first")
    }

    /// Anything the client sends while its text is synthesised (one START
    /// per connection).
    pub fn message_during_synthesis() -> ApiError {
        ApiError::invalid(
            "incorrect time sequence: a message during synthesis (one START per connection)",
        )
    }

    pub fn connection_too_long(minutes: u64) -> ApiError {
        ApiError::new(
            SisCode::AudioTooLong,
            format!("the connection reached its {minutes}-minute limit"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(r: Response) -> (StatusCode, serde_json::Value) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("a body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn gateway_errors_carry_the_request_id_sis_errors_do_not() {
        let (status, v) = body_of(not_found().render("rid-1")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["error_code"], "APIG.0101");
        assert_eq!(v["request_id"], "rid-1");
        let (status, v) = body_of(engine(EngineError::Busy).render("rid-2")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(v["error_code"], "SIS.0312");
        assert!(v.get("request_id").is_none());
    }

    #[tokio::test]
    async fn iam_errors_have_their_own_body() {
        let (status, v) = body_of(
            AppError::iam(
                StatusCode::UNAUTHORIZED,
                "The username or password is wrong.",
            )
            .render("x"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], 401);
        assert_eq!(v["error"]["title"], "Unauthorized");
        assert_eq!(v["error"]["message"], "The username or password is wrong.");
    }

    #[test]
    fn requests_are_named_by_method_and_path() {
        let name = |m: Method, p: &str| api_name(&m, p);
        assert_eq!(
            name(Method::POST, "/v1/p/asr/short-audio"),
            Some("short-audio")
        );
        assert_eq!(name(Method::GET, "/v1/p/asr/short-audio"), None);
        assert_eq!(
            name(Method::POST, "/v1/p/asr/transcriber/jobs"),
            Some("jobs.create")
        );
        assert_eq!(
            name(Method::GET, "/v1/p/asr/transcriber/jobs/j"),
            Some("jobs.get")
        );
        assert_eq!(name(Method::GET, "/v1/p/asr/transcriber/jobs/"), None);
        assert_eq!(name(Method::GET, "/v1/p/rasr/short-stream"), Some("rasr"));
        assert_eq!(name(Method::POST, "/v3/auth/tokens"), Some("tokens.issue"));
        assert_eq!(
            name(Method::DELETE, "/v3/auth/tokens"),
            Some("tokens.revoke")
        );
        assert_eq!(name(Method::GET, "/health"), Some("health"));
        let vocabularies = "/v1/p/asr/vocabularies";
        assert_eq!(
            name(Method::POST, vocabularies),
            Some("vocabularies.create")
        );
        assert_eq!(name(Method::GET, vocabularies), Some("vocabularies.list"));
        assert_eq!(name(Method::PUT, vocabularies), None);
        let one = "/v1/p/asr/vocabularies/V1";
        assert_eq!(name(Method::GET, one), Some("vocabularies.show"));
        assert_eq!(name(Method::PUT, one), Some("vocabularies.update"));
        assert_eq!(name(Method::DELETE, one), Some("vocabularies.delete"));
        assert_eq!(name(Method::POST, one), None);
        assert_eq!(name(Method::GET, "/v1//asr/short-audio"), None);
        assert_eq!(name(Method::GET, "/wp-login.php"), None);
        assert_eq!(name(Method::POST, "/v1/p/tts"), Some("tts"));
        assert_eq!(name(Method::GET, "/v1/p/tts"), None);
        assert_eq!(name(Method::GET, "/v1/p/rtts"), Some("rtts"));
        assert_eq!(name(Method::POST, "/v1/p/rtts"), None);
    }

    #[test]
    fn one_line_per_request_at_the_level_it_deserves() {
        use tracing::Level;
        let ok = StatusCode::OK;
        assert_eq!(request_level(Some("short-audio"), ok, None), Level::INFO);
        assert_eq!(request_level(Some("health"), ok, None), Level::DEBUG);
        assert_eq!(
            request_level(Some("rasr"), StatusCode::SWITCHING_PROTOCOLS, None),
            Level::DEBUG,
            "each session has its own line"
        );
        let refused = AppError::from(ApiError::invalid("x"));
        assert_eq!(
            request_level(Some("short-audio"), refused.status(), Some(&refused)),
            Level::INFO
        );
        let fault = internal_error().detail("store down");
        assert_eq!(
            request_level(Some("jobs.get"), fault.status(), Some(&fault)),
            Level::ERROR
        );
        let config = unauthenticated("Get secretKey failed").server_fault();
        assert_eq!(
            request_level(Some("short-audio"), config.status(), Some(&config)),
            Level::ERROR
        );
        let scan = not_found();
        assert_eq!(
            request_level(None, scan.status(), Some(&scan)),
            Level::DEBUG
        );
        let flood = sign_ins_throttled();
        assert_eq!(
            request_level(Some("tokens.issue"), flood.status(), Some(&flood)),
            Level::DEBUG
        );
    }

    #[test]
    fn real_time_errors_keep_their_cause_for_the_session_line() {
        let m = engine(EngineError::WorkerLost("pipe closed".into())).into_message();
        assert!(m.server_fault);
        assert_eq!(m.detail.as_deref(), Some("engine worker lost: pipe closed"));
        assert!(!m.shown.message.contains("pipe"));
        let m: MessageError = rasr::idle().into();
        assert!(!m.server_fault && m.detail.is_none());
    }

    #[test]
    fn throttled_sign_ins_ask_to_retry() {
        let r = sign_ins_throttled().render("x");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "1");
    }

    #[test]
    fn engine_faults_keep_their_cause_from_the_client() {
        let e = engine(EngineError::WorkerLost("pipe closed".into()));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.detail.as_deref(), Some("engine worker lost: pipe closed"));
        let shown = e.into_api_error();
        assert_eq!(shown.code, SisCode::Internal);
        assert!(!shown.message.contains("pipe"));
    }

    #[test]
    fn job_audio_errors_differ_from_short_audio_ones() {
        let too_long = || AudioError::TooLong { limit_ms: 1 };
        assert_eq!(
            job(&JobError::Audio(too_long())).code,
            SisCode::AudioTooLong
        );
        assert_eq!(short_audio_audio(too_long()).code, SisCode::InvalidParam);
        let corrupt = JobError::Audio(AudioError::Empty);
        assert_eq!(job(&corrupt).code, SisCode::AudioFormatInvalid);
        assert_eq!(
            job(&corrupt).message,
            "Audio format is invalid! (audio contains no samples)"
        );
    }

    #[test]
    fn synthesis_errors() {
        let shown = |e: TtsError| {
            let a = tts(e);
            (
                a.status(),
                a.detail.clone(),
                a.server_fault,
                a.into_api_error(),
            )
        };
        let (status, _, _, e) = shown(TtsError::UnknownVoice("chinese_x_common".into()));
        assert_eq!((status.as_u16(), e.code), (400, SisCode::InvalidParam));
        assert!(e.message.contains("chinese_x_common"));
        let (status, _, _, e) = shown(TtsError::RateNotOffered {
            voice: "chinese_huanvxia_literature",
            rate: 8000,
        });
        assert_eq!((status.as_u16(), e.code.as_str()), (400, "SIS.0402"));
        let (status, detail, fault, e) = shown(TtsError::Unavailable("cannot run x".into()));
        assert_eq!((status.as_u16(), e.code.as_str()), (500, "SIS.0100"));
        assert!(fault && detail.as_deref() == Some("cannot run x"));
        assert!(!e.message.contains("cannot run"));
        let (status, detail, _, e) = shown(TtsError::Failed("espeak-ng exited with 3".into()));
        assert_eq!((status.as_u16(), e.code.as_str()), (500, "SIS.0401"));
        assert!(detail.is_some_and(|d| d.contains("exited")) && !e.message.contains("exited"));
        let (status, _, _, e) = shown(TtsError::Busy);
        assert_eq!((status.as_u16(), e.code.as_str()), (429, "SIS.0312"));
    }

    #[test]
    fn job_faults_are_logged_with_their_cause() {
        let e = AppError::from(JobError::ResultUnavailable("job j key k: missing".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.detail.as_deref().is_some_and(|d| d.contains("missing")));
        let refused = AppError::from(JobError::NotFound);
        assert!(refused.detail.is_none());
        assert_eq!(refused.into_api_error().message, "task id is not found");
    }
}
