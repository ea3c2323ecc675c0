//! `POST /v1/{project_id}/asr/transcriber/jobs` and
//! `GET /v1/{project_id}/asr/transcriber/jobs/{job_id}`: read the body,
//! call the job service (`sis-jobs`), answer. And uploads (a sisd
//! extension): `POST .../asr/transcriber/uploads` stores a file a job then
//! names as `data_url: "upload://ID"`; `DELETE .../uploads/{upload_id}`.

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sis_protocol::transcriber;
use tokio::io::AsyncWriteExt;

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

/// `POST /v1/{project_id}/asr/transcriber/uploads`: the body (any audio file
/// a job reads, at most `--fetch-max-mb`) streamed to the spool, then kept
/// as an upload of the caller's project.
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: Body,
) -> HandlerResult {
    let max = state.jobs.fetcher.policy().max_bytes;
    let spooled = crate::flash::Spooled::new(&state, "upload");
    let spool_error = |e: std::io::Error| {
        tracing::error!(error = %e, "cannot spool an upload");
        errors::internal_error()
    };
    let mut file = tokio::fs::File::create(&spooled.0)
        .await
        .map_err(spool_error)?;
    let mut size = 0u64;
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| errors::body(&e))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(errors::upload_too_large(max));
        }
        file.write_all(&chunk).await.map_err(spool_error)?;
    }
    file.flush().await.map_err(spool_error)?;
    drop(file);
    if size == 0 {
        return Err(errors::upload_empty());
    }
    let u = state.jobs.upload(&caller.project_id, &spooled.0).await?;
    Ok(json(transcriber::upload_response(
        &u.id,
        &u.data_url(),
        u.size,
        u.expires_ms,
    )))
}

/// `DELETE /v1/{project_id}/asr/transcriber/uploads/{upload_id}`: 200, no body.
pub async fn delete_upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((_project, upload_id)): Path<(String, String)>,
) -> HandlerResult {
    state
        .jobs
        .delete_upload(&caller.project_id, &upload_id)
        .await?;
    Ok(StatusCode::OK.into_response())
}
