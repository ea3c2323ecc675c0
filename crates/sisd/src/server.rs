//! The routes, and the layers every request passes: `errors::request_scope`
//! (request id, error rendering and logging), `auth::size_limits`, and on
//! every `/v1/{project_id}/` route `auth::authenticate`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::errors::{self, HandlerResult};
use crate::state::AppState;
use crate::{auth, console, flash, jobs, rasr, rtts, short_audio, tts, vocabularies};

pub fn router(state: AppState) -> Router {
    // Every SIS API lives under /v1/{project_id}/ and is authenticated.
    let sis_api = Router::new()
        .route(
            "/v1/{project_id}/asr/short-audio",
            post(short_audio::handler)
                .get(rasr::short_audio_upgrade)
                .fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/flash",
            post(flash::handler).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/tts",
            post(tts::handler).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/rtts",
            get(rtts::upgrade).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/transcriber/jobs",
            post(jobs::create).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/transcriber/jobs/{job_id}",
            get(jobs::get).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/transcriber/uploads",
            post(jobs::upload).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/transcriber/uploads/{upload_id}",
            axum::routing::delete(jobs::delete_upload).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/rasr/{mode}",
            get(rasr::upgrade).fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/vocabularies",
            post(vocabularies::create)
                .get(vocabularies::list)
                .fallback(not_found),
        )
        .route(
            "/v1/{project_id}/asr/vocabularies/{vocabulary_id}",
            put(vocabularies::update)
                .get(vocabularies::show)
                .delete(vocabularies::delete)
                .fallback(not_found),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            quota_per_second,
        ))
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
        .route("/v3/projects", get(auth::list_projects).fallback(not_found))
        .with_state(state.auth.clone());
    let public = Router::new()
        .route("/health", get(health))
        // the web console: static files; the page signs in itself
        .route("/console", get(console::index).fallback(not_found))
        .route("/console/", get(console::index).fallback(not_found))
        .route("/console/{file}", get(console::asset).fallback(not_found))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi_json))
        // authenticated by its own API keys (openai.rs)
        .route(
            "/v1/audio/transcriptions",
            post(crate::openai::transcriptions)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::openai::MAX_FILE_BYTES + 64 * 1024,
                ))
                .fallback(not_found),
        )
        .route(
            "/v1/audio/speech",
            post(crate::openai::speech).fallback(not_found),
        );
    let public = if state.metrics_on_main {
        public.route("/metrics", get(serve_metrics))
    } else {
        public
    };
    Router::new()
        .merge(public)
        .merge(sis_api)
        .fallback(not_found)
        .with_state(state)
        .merge(iam)
        .layer(middleware::from_fn(auth::size_limits))
        .layer(middleware::from_fn(errors::request_scope))
}

/// `GET /ready`: 200 when this node should get traffic (its engine has
/// packs that recognise and a worker to run them, the store answers, it is
/// not draining), else 503 with the reasons; for load balancers and
/// Kubernetes readiness probes (`/health` says whether it is alive).
async fn ready(State(state): State<AppState>) -> Response {
    let mut not = Vec::new();
    if state.shutdown.begun() {
        not.push("draining".to_string());
    }
    let recognises = state.engine.packs().iter().any(|p| {
        matches!(
            p.kind,
            sis_engine::PackKind::OfflineAsr | sis_engine::PackKind::StreamingAsr
        )
    });
    if !recognises {
        not.push("no speech recognition pack loaded".to_string());
    }
    let workers = state.engine.workers();
    if !workers.is_empty() && !workers.iter().any(|w| w.state == "ready") {
        not.push("no engine worker is ready".to_string());
    }
    let store = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.jobs.store.open_jobs(),
    )
    .await;
    match store {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => not.push(format!("store: {e}")),
        Err(_) => not.push("store: no answer in 2 s".to_string()),
    }
    let status = if not.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "ready": not.is_empty(), "reasons": not })),
    )
        .into_response()
}

/// The layer on every `/v1/{project_id}/` route, after authentication:
/// the project's requests per second.
async fn quota_per_second(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let project = req
        .extensions()
        .get::<crate::state::Principal>()
        .map(|p| p.project_id.clone());
    if let Some(project) = project {
        if let Err(e) = state.quotas.request(&project).await {
            return errors::AppError::from(e).into_response();
        }
    }
    next.run(req).await
}

/// `GET /metrics` (Prometheus text format).
pub async fn serve_metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(&state.engine, &state.jobs.store).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /openapi.json`: the OpenAPI document of every route (openapi.rs).
async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
        .into_response()
}

async fn not_found() -> HandlerResult {
    Err(errors::not_found())
}

async fn health(State(state): State<AppState>) -> Response {
    let packs: Vec<serde_json::Value> = state
        .engine
        .packs()
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name, "kind": p.kind.as_str(), "model_type": p.model_type,
                "properties": p.properties, "test_only": p.test_only,
            })
        })
        .collect();
    let test_packs: Vec<&str> = state
        .engine
        .packs()
        .iter()
        .filter(|p| p.test_only)
        .map(|p| p.name.as_str())
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
    let tts = match state.tts.availability() {
        sis_engine::tts::Availability::Ready { version } => serde_json::json!({
            "engine": "espeak-ng", "available": true, "version": version,
            "voices": sis_engine::tts::VOICES.len(),
            "max_processes": state.tts.settings().max_processes,
        }),
        sis_engine::tts::Availability::Unavailable { reason } => serde_json::json!({
            "engine": "espeak-ng", "available": false, "reason": reason,
            "voices": sis_engine::tts::VOICES.len(),
        }),
    };
    // live counters, so leaks show from outside (tests, operators)
    let mut body = serde_json::json!({
        "engine_workers": workers,
        "status": "ok",
        "packs": packs,
        "test_packs": test_packs,
        "tts": tts,
        "rasr_connections": state.rasr_connections.load(Ordering::SeqCst),
        "rtts_connections": state.rtts_connections.load(Ordering::SeqCst),
        "realtime_sessions": state.engine.active_streams(),
        "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
    });
    if !test_packs.is_empty() {
        body["warning"] = sis_engine::pack::TEST_ONLY_WARNING.into();
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
