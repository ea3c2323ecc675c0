//! `POST /v1/{project_id}/asr/short-audio`, the whole request path: admit by
//! memory, read the body, parse with `sis-protocol`, resolve its
//! `vocabulary_id`, decode with `sis-audio` (on the blocking pool),
//! recognise with the engine, answer.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use sis_engine::EngineError;
use sis_protocol::short_audio;

use crate::errors::{self, HandlerResult};
use crate::state::{AppState, Principal, RequestId, RequestLog, MAX_BODY_BYTES};
use crate::vocabularies;

pub async fn handler(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    id: Option<Extension<RequestId>>,
    log: Option<Extension<RequestLog>>,
    headers: HeaderMap,
    body: Body,
) -> HandlerResult {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let budget = state.short_audio_budget.clone();
    let _held = budget
        .admit(length)
        .ok_or_else(|| errors::engine(EngineError::Busy))?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| errors::body(&e))?;
    let mut req = short_audio::parse_request(&bytes)?;
    drop(bytes);
    if !state.engine.serves(&req.property) {
        return Err(errors::engine(EngineError::UnknownProperty(
            req.property.name().to_string(),
        )));
    }
    vocabularies::resolve(&state, &caller.project_id, &mut req.options).await?;
    vocabularies::note_used(log.as_ref().map(|Extension(l)| l), &req.options);
    let format = req.format;
    let audio = req.audio;
    let limits = sis_audio::DecodeLimits {
        max_ms: short_audio::MAX_AUDIO_MS,
    };
    let pcm = tokio::task::spawn_blocking(move || sis_audio::decode(format, &audio, limits))
        .await
        .map_err(|_| errors::task_failed())?
        .map_err(errors::short_audio_audio)?;
    if let Some(Extension(log)) = &log {
        let audio_s = pcm.samples.len() as f64 / f64::from(pcm.sample_rate.max(1));
        log.note(|n| n.audio_s = Some(audio_s));
    }
    short_audio::check_sample_rate(pcm.sample_rate, &req.property)?;
    let need_word_info = req.options.need_word_info;
    let transcript = state
        .engine
        .recognize(&req.property, pcm, req.options)
        .await
        .map_err(errors::engine)?;
    // the trace id a client reports is the request id of the log line
    let trace_id = match id {
        Some(Extension(RequestId(id))) => id,
        None => RequestId::generate().0,
    };
    Ok((
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        short_audio::response_body(&trace_id, &transcript, need_word_info),
    )
        .into_response())
}
