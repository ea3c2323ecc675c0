//! Hot-word vocabularies (SIS-API.md §10):
//! `POST/GET /v1/{project_id}/asr/vocabularies` (create, list) and
//! `PUT/GET/DELETE /v1/{project_id}/asr/vocabularies/{vocabulary_id}`, over
//! the store; and [`resolve`], which turns the `vocabulary_id` of a
//! recognition request into the hot words the engine applies.
//!
//! Ids are matched without regard to case (they are upper-case UUIDs);
//! another project's vocabulary answers exactly as a missing one. A change
//! made here drops this server's cached copy at once; other servers see it
//! within `sis_store::vocabularies::REVALIDATE_AFTER`.

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sis_core::RecognitionOptions;
use sis_protocol::vocabulary::{self, SummaryView, VocabularyRequest, VocabularyView};
use sis_store::VocabularyFields;

use crate::errors::{self, AppError, HandlerResult};
use crate::state::{clip, AppState, Principal, RequestLog, MAX_BODY_BYTES};

/// Largest body of the list (a name filter).
const MAX_LIST_BODY_BYTES: usize = 64 * 1024;

fn json(body: String) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

/// The stored form of an id as a client wrote it.
fn canonical(id: &str) -> String {
    id.to_ascii_uppercase()
}

fn note(log: Option<Extension<RequestLog>>, id: &str) {
    if let Some(Extension(log)) = log {
        log.note(|n| n.vocabulary_id = Some(clip(id)));
    }
}

fn fields(req: &VocabularyRequest) -> VocabularyFields<'_> {
    VocabularyFields {
        name: &req.name,
        description: &req.description,
        language: &req.language,
        contents: &req.contents,
    }
}

/// A create or update body, checked against every field rule.
async fn read_vocabulary(state: &AppState, body: Body) -> Result<VocabularyRequest, AppError> {
    let words = state.vocabulary_limits.words;
    let limit = vocabulary::max_body_bytes(words).min(MAX_BODY_BYTES);
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| errors::body(&e))?;
    Ok(vocabulary::parse_vocabulary(&bytes, words)?)
}

/// `POST /v1/{project_id}/asr/vocabularies`.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    log: Option<Extension<RequestLog>>,
    body: Body,
) -> HandlerResult {
    let req = read_vocabulary(&state, body).await?;
    let id = sis_store::new_vocabulary_id();
    let per_project = state.vocabulary_limits.per_project;
    state
        .vocabularies
        .store()
        .create_vocabulary(&caller.project_id, &id, fields(&req), per_project)
        .await
        .map_err(|e| errors::vocabulary_refused(&e, &req.name, per_project))?;
    note(log, &id);
    Ok(json(vocabulary::id_body(&id)))
}

/// `PUT /v1/{project_id}/asr/vocabularies/{vocabulary_id}`: every field
/// replaced.
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    log: Option<Extension<RequestLog>>,
    Path((_project, id)): Path<(String, String)>,
    body: Body,
) -> HandlerResult {
    let id = canonical(&id);
    note(log, &id);
    let req = read_vocabulary(&state, body).await?;
    let per_project = state.vocabulary_limits.per_project;
    let found = state
        .vocabularies
        .store()
        .update_vocabulary(&caller.project_id, &id, fields(&req))
        .await
        .map_err(|e| errors::vocabulary_refused(&e, &req.name, per_project))?;
    if !found {
        return Err(errors::vocabulary_not_found(&id));
    }
    state.vocabularies.forget(&caller.project_id, &id);
    Ok(json(vocabulary::id_body(&id)))
}

/// `GET /v1/{project_id}/asr/vocabularies/{vocabulary_id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    log: Option<Extension<RequestLog>>,
    Path((_project, id)): Path<(String, String)>,
) -> HandlerResult {
    let id = canonical(&id);
    note(log, &id);
    let v = state
        .vocabularies
        .store()
        .vocabulary(&caller.project_id, &id)
        .await
        .map_err(|e| errors::store(&e))?
        .ok_or_else(|| errors::vocabulary_not_found(&id))?;
    Ok(json(vocabulary::vocabulary_body(&VocabularyView {
        vocabulary_id: &v.id,
        name: &v.name,
        description: &v.description,
        language: &v.language,
        contents: &v.contents,
    })))
}

/// `GET /v1/{project_id}/asr/vocabularies?offset=&limit=`, with an optional
/// name filter (a part of the name) in the query or in a JSON body.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    RawQuery(query): RawQuery,
    body: Body,
) -> HandlerResult {
    let bytes = axum::body::to_bytes(body, MAX_LIST_BODY_BYTES)
        .await
        .map_err(|e| errors::body(&e))?;
    let req = vocabulary::parse_list(query.as_deref(), &bytes)?;
    let all = state
        .vocabularies
        .store()
        .list_vocabularies(&caller.project_id)
        .await
        .map_err(|e| errors::store(&e))?;
    let matching: Vec<SummaryView<'_>> = all
        .iter()
        .filter(|v| req.name.as_deref().is_none_or(|n| v.name.contains(n)))
        .map(|v| SummaryView {
            vocabulary_id: &v.id,
            name: &v.name,
            language: &v.language,
            description: &v.description,
        })
        .collect();
    let end = req.offset.saturating_add(req.limit).min(matching.len());
    let page = matching.get(req.offset.min(end)..end).unwrap_or(&[]);
    Ok(json(vocabulary::list_body(matching.len(), page)))
}

/// `DELETE /v1/{project_id}/asr/vocabularies/{vocabulary_id}`: 200, no body.
/// Requests and sessions that already resolved it keep their copy.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    log: Option<Extension<RequestLog>>,
    Path((_project, id)): Path<(String, String)>,
) -> HandlerResult {
    let id = canonical(&id);
    note(log, &id);
    let deleted = state
        .vocabularies
        .store()
        .delete_vocabulary(&caller.project_id, &id)
        .await
        .map_err(|e| errors::store(&e))?;
    state.vocabularies.forget(&caller.project_id, &id);
    if !deleted {
        return Err(errors::vocabulary_not_found(&id));
    }
    Ok(StatusCode::OK.into_response())
}

/// Fills `options.hot_words` from the vocabulary `options.vocabulary_id`
/// names in `project`; an id that names none is refused (SIS.0201), never
/// ignored. Used by short-audio and real-time START; jobs resolve through
/// the same cache (`sis_jobs::Jobs`).
pub async fn resolve(
    state: &AppState,
    project: &str,
    options: &mut RecognitionOptions,
) -> Result<(), AppError> {
    let Some(id) = &options.vocabulary_id else {
        return Ok(());
    };
    let hot = state
        .vocabularies
        .resolve(project, &canonical(id))
        .await
        .map_err(|e| errors::store(&e))?
        .ok_or_else(|| errors::vocabulary_not_found(id))?;
    options.hot_words = Some(hot);
    Ok(())
}

/// Names the vocabulary a request used, and its version, in the request's
/// log line.
pub fn note_used(log: Option<&RequestLog>, options: &RecognitionOptions) {
    if let (Some(log), Some(hot)) = (log, &options.hot_words) {
        log.note(|n| {
            n.vocabulary_id = Some(hot.vocabulary_id.clone());
            n.vocabulary_version = Some(hot.version);
        });
    }
}
