//! The one place where internal errors become SIS errors (see docs/ERRORS.md).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sis_audio::AudioError;
use sis_engine::EngineError;
use sis_protocol::{ApiError, SisCode};

pub fn from_audio(e: AudioError) -> ApiError {
    match e {
        AudioError::TooLong { .. } => {
            ApiError::invalid("audio is longer than 60 s, the limit of short-audio")
        }
        other => ApiError::invalid(other.to_string()),
    }
}

pub fn from_engine(e: EngineError) -> ApiError {
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
        EngineError::WorkerLost(m) => {
            tracing::error!(error = %m, "request lost with its engine worker");
            ApiError::new(
                SisCode::Internal,
                "the recognition engine stopped while handling this request; retry",
            )
            .with_status(503)
        }
        EngineError::Failed(m) => {
            tracing::error!(error = %m, "recognition failed");
            ApiError::new(SisCode::RecognitionFailed, "recognition failed")
        }
        EngineError::Pack(_) | EngineError::Load(_) => {
            tracing::error!(error = %e, "engine error");
            ApiError::new(SisCode::Internal, "internal service error")
        }
    }
}

/// An [`ApiError`] on its way out, tagged with the request id.
pub struct ErrorResponse {
    pub error: ApiError,
    pub request_id: String,
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = (status, self.error.body(&self.request_id)).into_response();
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/json;charset=utf-8"),
        );
        r
    }
}
