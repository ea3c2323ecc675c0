//! SIS and gateway error codes, their HTTP statuses and the error body.
//!
//! Every error a client can see is built here; see docs/ERRORS.md for the
//! table of which condition yields which code.

use serde::Serialize;
use utoipa::ToSchema;

/// Error codes this server emits. The string is exactly what SIS sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SisCode {
    /// Required body field missing.
    MissingField,
    /// Parameter value not supported by this deployment.
    Unsupported,
    /// Request body or parameter invalid (JSON, base64, values, audio data).
    InvalidParam,
    /// Engine did not answer in time.
    EngineTimeout,
    /// Internal service error.
    Internal,
    /// `audio_format` does not match the model (sample rates differ).
    FormatModelMismatch,
    /// Recognition failed inside the engine.
    RecognitionFailed,
    /// Too many concurrent requests.
    MaxConcurrency,
    /// Real-time: no data from the client for more than 20 s.
    AudioTimeout,
    /// Real-time: audio or connection beyond its maximum duration.
    AudioTooLong,
    /// Gateway: API does not exist (HTTP 404).
    ApiNotFound,
    /// Gateway: request error, e.g. entity too large (HTTP 400/413).
    GatewayRequest,
    /// Gateway: authentication failed (HTTP 401).
    GatewayAuth,
    /// Gateway: the caller may not use this project (HTTP 403).
    GatewayForbidden,
    /// Token verification failed: wrong project, not project-scoped (HTTP 401).
    TokenRejected,
    /// Gateway: the request was throttled (HTTP 429), e.g. too many password
    /// sign-ins being checked at once.
    GatewayThrottled,
    /// A dependency (the audio's server, storage) could not be reached.
    DependencyFailed,
    /// Transcriber job: the audio could not be decoded.
    AudioFormatInvalid,
    /// The vocabulary (hot-word table) does not exist in the project.
    VocabularyNotFound,
    /// Hot words too long or illegal.
    HotWordInvalid,
    /// A vocabulary of that name exists in the project.
    VocabularyNameTaken,
    /// A vocabulary's `language` is not supported.
    LanguageUnsupported,
    /// The project has as many vocabularies as it may.
    TooManyVocabularies,
    /// Speech synthesis failed (HTTP 500).
    TtsFailed,
    /// Speech synthesis: `sample_rate` invalid, or not offered by the voice.
    TtsSampleRate,
    /// Flash: the object is too large (or empty).
    FlashAudioSize,
    /// Flash: the audio is too long.
    FlashAudioDuration,
    /// Flash: `obs_bucket_name` invalid, or no bucket of that name.
    FlashBucketInvalid,
    /// Flash: `obs_object_key` invalid, or no object of that key.
    FlashKeyInvalid,
}

impl SisCode {
    pub fn as_str(self) -> &'static str {
        match self {
            SisCode::MissingField => "SIS.0012",
            SisCode::Unsupported => "SIS.0031",
            SisCode::InvalidParam => "SIS.0032",
            SisCode::EngineTimeout => "SIS.0033",
            SisCode::Internal => "SIS.0100",
            SisCode::FormatModelMismatch => "SIS.0301",
            SisCode::RecognitionFailed => "SIS.0305",
            SisCode::MaxConcurrency => "SIS.0312",
            SisCode::AudioTimeout => "SIS.0304",
            SisCode::AudioTooLong => "SIS.0309",
            SisCode::ApiNotFound => "APIG.0101",
            SisCode::GatewayRequest => "APIG.0201",
            SisCode::GatewayAuth => "APIG.0301",
            SisCode::GatewayForbidden => "APIG.0302",
            SisCode::TokenRejected => "SIS.0101",
            SisCode::GatewayThrottled => "APIG.0308",
            SisCode::DependencyFailed => "SIS.0001",
            SisCode::AudioFormatInvalid => "SIS.0535",
            SisCode::VocabularyNotFound => "SIS.0201",
            SisCode::HotWordInvalid => "SIS.0203",
            SisCode::VocabularyNameTaken => "SIS.0204",
            SisCode::LanguageUnsupported => "SIS.0205",
            SisCode::TooManyVocabularies => "SIS.0208",
            SisCode::TtsFailed => "SIS.0401",
            SisCode::TtsSampleRate => "SIS.0402",
            SisCode::FlashAudioSize => "SIS.0504",
            SisCode::FlashAudioDuration => "SIS.0511",
            SisCode::FlashBucketInvalid => "SIS.0507",
            SisCode::FlashKeyInvalid => "SIS.0512",
        }
    }

    /// The HTTP status this code is sent with by default.
    pub fn status(self) -> u16 {
        match self {
            SisCode::Internal | SisCode::RecognitionFailed | SisCode::TtsFailed => 500,
            SisCode::EngineTimeout => 504,
            SisCode::MaxConcurrency | SisCode::GatewayThrottled => 429,
            SisCode::ApiNotFound => 404,
            SisCode::GatewayAuth | SisCode::TokenRejected => 401,
            SisCode::GatewayForbidden => 403,
            _ => 400,
        }
    }

    fn is_gateway(self) -> bool {
        self.as_str().starts_with("APIG.")
    }
}

/// An error as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: SisCode,
    pub status: u16,
    pub message: String,
}

/// The SIS error body: `{"error_code", "error_msg"}`, and `request_id`
/// for gateway (`APIG.*`) codes.
#[derive(Serialize, ToSchema)]
#[schema(as = SisError)]
pub struct ErrorBody<'a> {
    /// `SIS.NNNN`, or `APIG.NNNN` for the gateway's errors (docs/ERRORS.md).
    #[schema(pattern = r"^(SIS|APIG)\.[0-9]{4}$", example = "SIS.0032")]
    pub error_code: &'a str,
    pub error_msg: &'a str,
    /// The request's id (gateway codes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub request_id: Option<&'a str>,
}

/// The error body of the IAM token API (`/v3/auth/tokens`):
/// `{"error": {"code", "title", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct IamErrorBody<'a> {
    pub error: IamError<'a>,
}

#[derive(Serialize, ToSchema)]
pub struct IamError<'a> {
    /// The HTTP status.
    pub code: u16,
    pub title: &'a str,
    pub message: &'a str,
}

impl IamErrorBody<'_> {
    /// The body of an IAM error with this HTTP status.
    pub fn render(status: u16, message: &str) -> String {
        let title = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Error",
        };
        let body = IamErrorBody {
            error: IamError {
                code: status,
                title,
                message,
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl ApiError {
    pub fn new(code: SisCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(SisCode::InvalidParam, message)
    }

    /// `{"error_code": ..., "error_msg": ...}`; gateway codes also carry `request_id`.
    pub fn body(&self, request_id: &str) -> String {
        let body = ErrorBody {
            error_code: self.code.as_str(),
            error_msg: &self.message,
            request_id: self.code.is_gateway().then_some(request_id),
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                r#"{{"error_code":"{}","error_msg":"internal error"}}"#,
                self.code.as_str()
            )
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let e = ApiError::invalid("'audio_format' is invalid");
        assert_eq!(e.status, 400);
        let v: serde_json::Value = serde_json::from_str(&e.body("r1")).unwrap();
        assert_eq!(v["error_code"], "SIS.0032");
        assert_eq!(v["error_msg"], "'audio_format' is invalid");
        assert!(v.get("request_id").is_none());
        let g = ApiError::new(SisCode::ApiNotFound, "The API does not exist.");
        let v: serde_json::Value = serde_json::from_str(&g.body("r2")).unwrap();
        assert_eq!(v["request_id"], "r2");
        assert_eq!(g.status, 404);
    }
}
