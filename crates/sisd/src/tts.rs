//! `POST /v1/{project_id}/tts` (SIS-API.md §9), the whole request path:
//! read the body (at most `MAX_TTS_BODY_BYTES`), parse it with
//! `sis-protocol`, synthesise with `sis_engine::tts` (espeak-ng processes,
//! then the audio work on the blocking pool), answer with the file in
//! base64. The request's line notes the characters asked for and the
//! seconds of audio made.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sis_protocol::tts;

use crate::errors::{self, HandlerResult};
use crate::state::{AppState, Principal, RequestId, RequestLog, MAX_TTS_BODY_BYTES};

pub async fn handler(
    State(state): State<AppState>,
    // authenticated (a synthesis reads nothing of the project)
    Extension(_caller): Extension<Principal>,
    id: Option<Extension<RequestId>>,
    log: Option<Extension<RequestLog>>,
    body: Body,
) -> HandlerResult {
    let bytes = axum::body::to_bytes(body, MAX_TTS_BODY_BYTES)
        .await
        .map_err(|e| errors::body(&e))?;
    let req = tts::parse_request(&bytes)?;
    drop(bytes);
    if let Some(Extension(log)) = &log {
        let chars = req.text_chars();
        log.note(|n| n.text_chars = Some(chars));
    }
    let out = state.tts.synthesize(&req).await.map_err(errors::tts)?;
    if let Some(Extension(log)) = &log {
        log.note(|n| n.audio_s = Some(out.seconds));
    }
    // the trace id a client reports is the request id of the log line
    let trace_id = match id {
        Some(Extension(RequestId(id))) => id,
        None => RequestId::generate().0,
    };
    Ok((
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        tts::response_body(&trace_id, &out.audio),
    )
        .into_response())
}
