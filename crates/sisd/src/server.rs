//! HTTP routes. Handlers stay thin: parse with `sis-protocol`, decode with
//! `sis-audio` (on the blocking pool), recognise with `sis-engine`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{self, AuthState, Principal};
use sis_pool::EnginePool;
use sis_protocol::{short_audio, ApiError, SisCode};

use crate::errors::{from_audio, from_engine, ErrorResponse};

/// Largest request body accepted at all (the SIS gateway's limit).
pub const MAX_BODY_BYTES: usize = 12 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<EnginePool>,
    pub auth: Arc<AuthState>,
    /// Open RASR WebSocket connections.
    pub rasr_connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Memory short-audio requests may hold together.
    pub short_audio_budget: Arc<MemoryBudget>,
    pub jobs: Arc<crate::jobs::JobsState>,
    /// Set on SIGTERM/SIGINT; real-time connections watch it.
    pub shutdown: crate::shutdown::Shutdown,
}

#[derive(Clone)]
pub struct RequestId(pub String);

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

pub fn router(state: AppState) -> Router {
    // Every SIS API lives under /v1/{project_id}/ and is authenticated.
    let sis_api = Router::new()
        .route(
            "/v1/{project_id}/asr/short-audio",
            post(short_audio_handler).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/transcriber/jobs",
            post(crate::jobs::create_handler).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/transcriber/jobs/{job_id}",
            get(crate::jobs::get_handler).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/rasr/{mode}",
            get(crate::rasr::upgrade).fallback(not_found),
        )
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ));
    let iam = Router::new()
        .route(
            "/v3/auth/tokens",
            post(auth::issue_token)
                .delete(auth::revoke_token)
                .fallback(not_found),
        )
        .with_state(state.auth.clone());
    Router::new()
        .route("/health", get(health))
        .merge(sis_api)
        .fallback(not_found)
        .with_state(state)
        .merge(iam)
        .layer(middleware::from_fn(auth::size_limits))
        .layer(middleware::from_fn(request_id))
}

async fn health(State(state): State<AppState>) -> Response {
    let packs: Vec<serde_json::Value> = state
        .engine
        .packs()
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name, "kind": p.kind.as_str(), "model_type": p.model_type,
                "properties": p.properties,
            })
        })
        .collect();
    let workers: Vec<serde_json::Value> = state
        .engine
        .workers()
        .iter()
        .map(|w| {
            serde_json::json!({
                "index": w.index, "pid": w.pid, "state": w.state, "restarts": w.restarts,
                "requests": w.requests, "sessions": w.sessions, "files": w.files,
            })
        })
        .collect();
    // live counters, so leaks show from outside (tests, operators)
    let body = serde_json::json!({
        "engine_workers": workers,
        "status": "ok",
        "packs": packs,
        "rasr_connections": state.rasr_connections.load(std::sync::atomic::Ordering::SeqCst),
        "realtime_sessions": state.engine.active_streams(),
        "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found(Extension(rid): Extension<RequestId>) -> Response {
    ErrorResponse {
        error: ApiError::new(
            SisCode::ApiNotFound,
            "The API does not exist or has not been published in the environment.",
        ),
        request_id: rid.0,
    }
    .into_response()
}

async fn short_audio_handler(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let request_id = rid.0.clone();
    match short_audio(state, principal.project_id, headers, body).await {
        Ok(body) => (
            StatusCode::OK,
            [("content-type", "application/json;charset=utf-8")],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::info!(request_id, code = error.code.as_str(), msg = %error.message, "short-audio rejected");
            ErrorResponse { error, request_id }.into_response()
        }
    }
}

/// Admission of short-audio requests by the memory they will hold, not only
/// by count (the decode queue): a request takes its share before its body is
/// read and gives it back when answered, so many large bodies at once are
/// refused instead of growing the heap. Units are KiB.
pub struct MemoryBudget(tokio::sync::Semaphore);

/// Decoded audio a short-audio request may hold at most: 60 s of f32 at 16 kHz
/// (the engine works at the model's rate; 8 kHz audio is resampled up).
const DECODED_MAX_BYTES: usize = 60 * 16_000 * 4;

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

/// Why a request body could not be read: too slow (408, `--body-stall-s`,
/// `--body-timeout-s`) or too large (413).
pub fn body_error(e: axum::Error) -> ApiError {
    if crate::http::is_body_timeout(&e) {
        ApiError::new(
            SisCode::GatewayRequest,
            "Request timeout: the body did not arrive in time.",
        )
        .with_status(408)
    } else {
        ApiError::new(SisCode::GatewayRequest, "Request entity too large.").with_status(413)
    }
}

async fn short_audio(
    state: AppState,
    _project_id: String,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<String, ApiError> {
    let length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let budget = state.short_audio_budget.clone();
    let _held = budget
        .admit(length)
        .ok_or_else(|| from_engine(sis_engine::EngineError::Busy))?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(body_error)?;
    let req = short_audio::parse_request(&bytes)?;
    drop(bytes);
    if !state.engine.serves(&req.property) {
        return Err(from_engine(sis_engine::EngineError::UnknownProperty(
            req.property.name().to_string(),
        )));
    }
    let format = req.format;
    let audio = req.audio;
    let limits = sis_audio::DecodeLimits {
        max_ms: short_audio::MAX_AUDIO_MS,
    };
    let pcm = tokio::task::spawn_blocking(move || sis_audio::decode(format, &audio, limits))
        .await
        .map_err(|_| ApiError::new(SisCode::Internal, "internal service error"))?
        .map_err(from_audio)?;
    short_audio::check_sample_rate(pcm.sample_rate, &req.property)?;
    let need_word_info = req.options.need_word_info;
    let transcript = state
        .engine
        .recognize(&req.property, pcm, req.options)
        .await
        .map_err(from_engine)?;
    let trace_id = uuid::Uuid::new_v4().to_string();
    Ok(short_audio::response_body(
        &trace_id,
        &transcript,
        need_word_info,
    ))
}
