//! `POST /v1/{project_id}/asr/transcriber/jobs` and
//! `GET /v1/{project_id}/asr/transcriber/jobs/{job_id}`: read the body,
//! call the job service (`sis-jobs`), answer.

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sis_protocol::transcriber;

use crate::errors::{self, HandlerResult};
use crate::state::{clip, AppState, Principal, RequestLog, MAX_JOB_BODY_BYTES};

fn json(body: String) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    log: Option<Extension<RequestLog>>,
    body: Body,
) -> HandlerResult {
    let bytes = axum::body::to_bytes(body, MAX_JOB_BODY_BYTES)
        .await
        .map_err(|e| errors::body(&e))?;
    state.quotas.job(&caller.project_id).await?;
    let id = state.jobs.create(&caller.project_id, &bytes).await?;
    if let Some(Extension(log)) = log {
        log.note(|n| n.job_id = Some(id.clone()));
    }
    Ok(json(transcriber::create_response(&id)))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    log: Option<Extension<RequestLog>>,
    Path((_project, job_id)): Path<(String, String)>,
) -> HandlerResult {
    if let Some(Extension(log)) = log {
        log.note(|n| n.job_id = Some(clip(&job_id)));
    }
    Ok(json(state.jobs.get(&caller.project_id, &job_id).await?))
}
