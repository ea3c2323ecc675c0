//! `POST /v1/{project_id}/asr/flash` (SIS-API.md §8): every parameter in
//! the query, no body; the audio is an object of a bucket the operator
//! mapped; the answer is per channel.

use serde::Serialize;
use serde_json::{Map, Value};
use sis_core::{Property, RecognitionOptions, Transcript};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, SisCode};
use crate::short_audio::{parse_options, parse_property, yes_no, ResultBody};

/// Largest object (SIS: 100 MB).
pub const MAX_OBJECT_BYTES: u64 = 100 * 1000 * 1000;
/// Longest audio (SIS: 30 min).
pub const MAX_AUDIO_MS: u64 = 30 * 60 * 1000;
/// Longest `obs_object_key`, in characters.
pub const MAX_KEY_CHARS: usize = 1024;

/// The container formats flash takes (all read by the same decoder, which
/// recognises each by its content).
pub const FORMATS: &[&str] = &["wav", "mp3", "m4a", "aac", "opus"];

/// The query as [`parse_query`] reads it, for the OpenAPI document (the
/// schema states the parser's rules).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FlashQuery {
    #[param(pattern = "^[a-z0-9]+_(8k|16k)_[a-z0-9_]+$")]
    property: String,
    #[param(schema_with = flash_format_schema, required = true)]
    audio_format: String,
    /// A bucket this server maps (`--flash-bucket`).
    #[param(pattern = "^[a-z0-9.-]{1,63}$")]
    obs_bucket_name: String,
    /// A relative key: no empty, `.` or `..` segments, no control
    /// characters, at most 1024 characters.
    #[param(min_length = 1, max_length = 1024)]
    obs_object_key: String,
    #[param(inline)]
    add_punc: Option<crate::short_audio::YesNo>,
    #[param(inline)]
    digit_norm: Option<crate::short_audio::YesNo>,
    #[param(inline)]
    need_word_info: Option<crate::short_audio::YesNo>,
    #[param(inline)]
    first_channel_only: Option<crate::short_audio::YesNo>,
    vocabulary_id: Option<String>,
}

fn flash_format_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(FORMATS.iter().copied()))
}

/// A validated flash request.
#[derive(Clone, Debug, PartialEq)]
pub struct FlashRequest {
    pub property: Property,
    /// One of [`FORMATS`].
    pub format: String,
    pub bucket: String,
    pub key: String,
    pub options: RecognitionOptions,
    pub first_channel_only: bool,
}

fn missing(name: &str) -> ApiError {
    ApiError::new(SisCode::MissingField, format!("'{name}' is required"))
}

/// The request from its query string (decoded by [`crate::query::pairs`]).
pub fn parse_query(query: Option<&str>) -> Result<FlashRequest, ApiError> {
    let mut cfg: Map<String, Value> = Map::new();
    for (k, v) in crate::query::pairs(query)? {
        cfg.insert(k, Value::String(v));
    }
    let get = |k: &str| cfg.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let property = parse_property(&cfg).map_err(|e| match cfg.get("property") {
        None => missing("property"),
        Some(_) => e,
    })?;
    let format = get("audio_format").ok_or_else(|| missing("audio_format"))?;
    if !FORMATS.contains(&format) {
        return Err(ApiError::invalid(format!(
            "'audio_format' is invalid: '{}', expected one of {}",
            crate::vocabulary::clip(format),
            FORMATS.join(", ")
        )));
    }
    let bucket = get("obs_bucket_name").ok_or_else(|| missing("obs_bucket_name"))?;
    let bucket_ok = bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(ApiError::new(
            SisCode::FlashBucketInvalid,
            "'obs_bucket_name' is invalid",
        ));
    }
    let key = get("obs_object_key").ok_or_else(|| missing("obs_object_key"))?;
    let key_ok = key.chars().count() <= MAX_KEY_CHARS
        && !key.starts_with('/')
        && !key.chars().any(char::is_control)
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if !key_ok {
        return Err(ApiError::new(
            SisCode::FlashKeyInvalid,
            "'obs_object_key' is invalid",
        ));
    }
    Ok(FlashRequest {
        property,
        format: format.to_string(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        options: parse_options(&cfg)?,
        first_channel_only: yes_no(&cfg, "first_channel_only", false)?,
    })
}

/// One recognised sentence of a channel.
#[derive(Clone, Debug)]
pub struct FlashSentence {
    pub start_ms: u64,
    pub end_ms: u64,
    pub transcript: Transcript,
}

/// One recognised sentence (times in ms).
#[derive(Serialize, ToSchema)]
#[schema(as = FlashResultSentence)]
pub struct Sentence<'a> {
    start_time: u64,
    end_time: u64,
    result: ResultBody<'a>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = FlashChannel)]
pub struct Channel<'a> {
    channel_id: u32,
    sentences: Vec<Sentence<'a>>,
}

/// `{"trace_id", "audio_duration", "flash_result": [{"channel_id",
/// "sentences": [...]}]}`, one entry per channel in order.
pub fn response(
    trace_id: &str,
    audio_duration_ms: u64,
    channels: &[Vec<FlashSentence>],
    need_word_info: bool,
) -> Value {
    let flash: Vec<Channel<'_>> = channels
        .iter()
        .enumerate()
        .map(|(i, sentences)| Channel {
            channel_id: i as u32,
            sentences: sentences
                .iter()
                .map(|s| Sentence {
                    start_time: s.start_ms,
                    end_time: s.end_ms,
                    result: ResultBody::of(&s.transcript, need_word_info),
                })
                .collect(),
        })
        .collect();
    serde_json::to_value(FlashResponse {
        trace_id,
        audio_duration: audio_duration_ms,
        flash_result: flash,
    })
    .unwrap_or_default()
}

/// The flash response: one entry per channel, in order.
#[derive(Serialize, ToSchema)]
pub struct FlashResponse<'a> {
    trace_id: &'a str,
    /// ms
    audio_duration: u64,
    flash_result: Vec<Channel<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "property=chinese_8k_common&audio_format=wav&obs_bucket_name=bucket&obs_object_key=dir%2Fa%20b.wav";

    #[test]
    fn the_sdk_query_parses() {
        let r = parse_query(Some(&format!("add_punc=yes&{OK}&first_channel_only=yes"))).unwrap();
        assert_eq!(r.property.name(), "chinese_8k_common");
        assert_eq!(
            (r.bucket.as_str(), r.key.as_str()),
            ("bucket", "dir/a b.wav")
        );
        assert!(r.options.add_punc && r.options.digit_norm && r.first_channel_only);
        let r = parse_query(Some(OK)).unwrap();
        assert!(!r.options.add_punc && !r.first_channel_only);
    }

    #[test]
    fn bad_queries_get_their_codes() {
        let code = |q: &str| parse_query(Some(q)).unwrap_err().code.as_str();
        assert_eq!(code(""), "SIS.0012");
        assert_eq!(
            code(&OK.replace("property=chinese_8k_common&", "")),
            "SIS.0012"
        );
        assert_eq!(code(&OK.replace("chinese_8k_common", "nope")), "SIS.0032");
        assert_eq!(code(&OK.replace("=wav", "=flac")), "SIS.0032");
        assert_eq!(code(&OK.replace("=bucket", "=Bad_Bucket")), "SIS.0507");
        assert_eq!(code(&OK.replace("obs_bucket_name=bucket&", "")), "SIS.0012");
        for key in ["%2Fabs.wav", "a%2F..%2Fb.wav", "a%2F%2Fb", "a%0Ab"] {
            assert_eq!(
                code(&OK.replace("dir%2Fa%20b.wav", key)),
                "SIS.0512",
                "{key}"
            );
        }
        let long = "k".repeat(MAX_KEY_CHARS + 1);
        assert_eq!(code(&OK.replace("dir%2Fa%20b.wav", &long)), "SIS.0512");
        assert_eq!(code(&format!("{OK}&first_channel_only=maybe")), "SIS.0032");
        assert_eq!(code(&format!("{OK}&x=%zz")), "SIS.0032");
    }
}
