//! OpenAI-compatible audio: `POST /v1/audio/transcriptions` and `POST
//! /v1/audio/speech` (synthesis by `AppState::tts`, the /tts path), so
//! applications written for the OpenAI audio API (and the official `openai`
//! clients) work with only their base URL and key changed. The key is an
//! API key an operator maps to a project (`sisd api-keys create`); with
//! `--auth none` any key (or none) is the project `default`. The form's
//! `file` (any format sisd reads, at most 25 MB and 30 minutes) is spooled
//! and recognised by the jobs' file path (`flash::recognize_spooled`);
//! `model` names a property (`chinese_16k_general`, ...) or, when it is
//! not one (`whisper-1`), the property is chosen by `language` (`zh`,
//! default, or `en`). The wire format is `sis_protocol::openai`; errors
//! have the OpenAI body (`{"error": {...}}`).

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sis_core::{Property, RecognitionOptions};
use sis_jobs::Channels;
use sis_protocol::openai::{self, Granularities, ResponseFormat, Segment};

use crate::config::AuthMode;
use crate::errors::AppError;
use crate::flash::{recognize_spooled, Spooled};
use crate::state::{AppState, RequestLog};

/// The largest upload (the OpenAI API's own limit).
pub const MAX_FILE_BYTES: usize = 25 * 1024 * 1024;
/// The longest audio.
const MAX_AUDIO_MS: u64 = 30 * 60 * 1000;
/// The project of requests when the server runs without authentication.
pub const UNAUTHENTICATED_PROJECT: &str = "default";

/// An OpenAI-style error, rendered at the end of the request.
struct OaError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
}

impl IntoResponse for OaError {
    fn into_response(self) -> Response {
        let code = match self.status {
            StatusCode::UNAUTHORIZED => Some("invalid_api_key"),
            _ => None,
        };
        (
            self.status,
            [("content-type", "application/json")],
            openai::error_body(&self.message, self.kind, self.param, code),
        )
            .into_response()
    }
}

fn invalid(message: impl Into<String>, param: &'static str) -> OaError {
    OaError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        kind: "invalid_request_error",
        param: Some(param),
    }
}

/// A sisd error as the OpenAI API would say it.
fn from_app(e: &AppError) -> OaError {
    let (status, code, message) = e.public();
    let kind = match status.as_u16() {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    OaError {
        status,
        message: format!("{message} ({code})"),
        kind,
        param: None,
    }
}

/// The project the request's bearer key belongs to.
async fn project_of(state: &AppState, headers: &HeaderMap) -> Result<String, OaError> {
    if state.auth.mode == AuthMode::None {
        return Ok(UNAUTHENTICATED_PROJECT.to_string());
    }
    let refused = |why: &str| {
        crate::metrics::auth_failure("api_key");
        OaError {
            status: StatusCode::UNAUTHORIZED,
            message: why.to_string(),
            kind: "invalid_request_error",
            param: None,
        }
    };
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| refused("You didn't provide an API key (Authorization: Bearer KEY)."))?;
    let digest = sis_auth::secrets::token_digest(key);
    match state.auth.store.api_key_project(&digest).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(refused("Incorrect API key provided.")),
        Err(e) => Err(from_app(&crate::errors::store(&e))),
    }
}

/// The request's project, noted in its log line, within its quota.
async fn admit(
    state: &AppState,
    log: Option<&Extension<RequestLog>>,
    headers: &HeaderMap,
) -> Result<String, OaError> {
    let project = project_of(state, headers).await?;
    if let Some(Extension(log)) = log {
        log.note(|n| n.project = Some(crate::state::clip(&project)));
    }
    state
        .quotas
        .request(&project)
        .await
        .map_err(|e| from_app(&AppError::from(e)))?;
    Ok(project)
}

/// The form's fields.
#[derive(Default)]
struct Form {
    file: Option<Vec<u8>>,
    model: Option<String>,
    language: Option<String>,
    response_format: Option<String>,
    granularities: Vec<String>,
}

async fn read_form(mut form: Multipart) -> Result<Form, OaError> {
    let mut f = Form::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(invalid(format!("the form cannot be read: {e}"), "file")),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let bytes = field.bytes().await.map_err(|e| OaError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("the file cannot be read (at most 25 MB): {e}"),
                kind: "invalid_request_error",
                param: Some("file"),
            })?;
            f.file = Some(bytes.to_vec());
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| invalid(format!("{name}: {e}"), "file"))?;
        if text.len() > 4096 {
            return Err(invalid(format!("{name} is too long"), "file"));
        }
        match name.as_str() {
            "model" => f.model = Some(text),
            "language" => f.language = Some(text),
            "response_format" => f.response_format = Some(text),
            "timestamp_granularities[]" | "timestamp_granularities"
                if f.granularities.len() < 4 =>
            {
                f.granularities.push(text)
            }
            // prompt, temperature, stream, ...: accepted, not used
            _ => {}
        }
    }
    Ok(f)
}

/// `model` when it is a property this server serves, else the general
/// property of `language`.
fn property_for(state: &AppState, model: &str, language: &str) -> Result<Property, OaError> {
    if let Some(p) = Property::parse(model).filter(|p| state.engine.serves(p)) {
        return Ok(p);
    }
    let name = match language {
        "" | "zh" | "chinese" => "chinese_16k_general",
        "en" | "english" => "english_16k_general",
        other => {
            return Err(invalid(
                format!("language {other:?}: this server recognises zh and en"),
                "language",
            ))
        }
    };
    match Property::parse(name).filter(|p| state.engine.serves(p)) {
        Some(p) => Ok(p),
        None => Err(invalid(
            format!("model {model:?}: no pack serves it or {name} here (`sisd models list`)"),
            "model",
        )),
    }
}

pub async fn transcriptions(
    State(state): State<AppState>,
    log: Option<Extension<RequestLog>>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    match transcribe(state, log, headers, form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn transcribe(
    state: AppState,
    log: Option<Extension<RequestLog>>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, OaError> {
    admit(&state, log.as_ref(), &headers).await?;
    let form = form.map_err(|e| invalid(format!("expected multipart/form-data: {e}"), "file"))?;
    let f = read_form(form).await?;
    let file = f
        .file
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid("file is required", "file"))?;
    let model = f
        .model
        .ok_or_else(|| invalid("model is required", "model"))?;
    let format = match f.response_format.as_deref() {
        None => ResponseFormat::Json,
        Some(s) => ResponseFormat::parse(s).ok_or_else(|| {
            invalid(
                format!("response_format {s:?}: one of json, text, srt, verbose_json, vtt"),
                "response_format",
            )
        })?,
    };
    let granularities = Granularities::parse(f.granularities.iter().map(String::as_str))
        .map_err(|e| invalid(e, "timestamp_granularities"))?;
    let language = f.language.unwrap_or_default();
    let property = property_for(&state, &model, &language)?;
    let options = RecognitionOptions {
        need_word_info: granularities.words && format == ResponseFormat::VerboseJson,
        ..RecognitionOptions::default()
    };
    let spooled = Spooled::new(&state, "openai");
    if let Err(e) = tokio::fs::write(&spooled.0, &file).await {
        tracing::error!(error = %e, "cannot spool an upload");
        return Err(from_app(&crate::errors::task_failed()));
    }
    drop(file);
    let deadline = tokio::time::Instant::now() + state.flash.timeout;
    let (sentences, audio_ms, _) = recognize_spooled(
        &state,
        &spooled.0,
        &property,
        &options,
        Channels::Mixed,
        MAX_AUDIO_MS,
        deadline,
    )
    .await
    .map_err(|e| from_app(&e))?;
    if let Some(Extension(log)) = &log {
        log.note(|n| n.audio_s = Some(audio_ms as f64 / 1000.0));
    }
    let segments: Vec<Segment<'_>> = sentences
        .iter()
        .map(|s| Segment {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: &s.transcript.text,
            score: s.transcript.score,
            words: s
                .transcript
                .words
                .iter()
                .map(|w| (w.word.as_str(), u64::from(w.start_ms), u64::from(w.end_ms)))
                .collect(),
        })
        .collect();
    let language = if property.name().starts_with("english") {
        "english"
    } else {
        "chinese"
    };
    let (content_type, body) = openai::render(format, &segments, audio_ms, language, granularities);
    Ok((StatusCode::OK, [("content-type", content_type)], body).into_response())
}

pub async fn speech(
    State(state): State<AppState>,
    log: Option<Extension<RequestLog>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match speak(state, log, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn speak(
    state: AppState,
    log: Option<Extension<RequestLog>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, OaError> {
    admit(&state, log.as_ref(), &headers).await?;
    let bytes = axum::body::to_bytes(body, crate::state::MAX_TTS_BODY_BYTES)
        .await
        .map_err(|e| from_app(&crate::errors::body(&e)))?;
    let engine = state.engine.clone();
    let req = openai::speech_request(&bytes, |m| {
        sis_engine::tts::voice(m).is_some() || engine.reads_voice(m)
    })
    .map_err(|(message, param)| invalid(message, param))?;
    if let Some(Extension(log)) = &log {
        let chars = req.text_chars();
        log.note(|n| n.text_chars = Some(chars));
    }
    let out = state
        .tts
        .synthesize(&req)
        .await
        .map_err(|e| from_app(&crate::errors::tts(e)))?;
    if let Some(Extension(log)) = &log {
        log.note(|n| n.audio_s = Some(out.seconds));
    }
    let content_type = match req.format {
        sis_core::tts::TtsFormat::Mp3 => "audio/mpeg",
        sis_core::tts::TtsFormat::Wav => "audio/wav",
        sis_core::tts::TtsFormat::Pcm => "audio/pcm",
    };
    Ok((StatusCode::OK, [("content-type", content_type)], out.audio).into_response())
}
