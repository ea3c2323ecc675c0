//! `POST /v1/{project_id}/asr/short-audio` (SIS-API.md §4).

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};
use sis_core::{AudioFormat, Property, RecognitionOptions, Transcript};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::error::{ApiError, SisCode};

/// Largest accepted `data` field (base64 text), per the SIS documentation.
pub const MAX_BASE64_BYTES: usize = 4 * 1024 * 1024;
/// Longest accepted audio, in milliseconds.
pub const MAX_AUDIO_MS: u64 = 60_000;

/// The request body as [`parse_request`] reads it, for the OpenAPI
/// document (the parser reads the JSON itself, to answer each mistake with
/// SIS's code and message; the schema states the same rules).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ShortAudioBody {
    /// The audio file (or raw samples), base64; whitespace is ignored. At
    /// most 4 MB of base64 and 60 s of audio.
    #[schema(
        min_length = 1,
        max_length = 4194304,
        pattern = r"^[A-Za-z0-9+/]+={0,2}$"
    )]
    data: String,
    config: ShortAudioConfig,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ShortAudioConfig {
    #[schema(schema_with = audio_format_schema)]
    audio_format: String,
    #[schema(schema_with = property_schema)]
    property: String,
    /// Default `no`.
    add_punc: Option<YesNo>,
    /// Default `yes`.
    digit_norm: Option<YesNo>,
    /// Default `no`.
    need_word_info: Option<YesNo>,
    /// Accepted, not used.
    auto_language_detect: Option<YesNo>,
    /// A hot-word vocabulary of the project (empty: none).
    vocabulary_id: Option<String>,
}

/// SIS's booleans.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum YesNo {
    Yes,
    No,
}

/// Every `audio_format` short audio takes ([`AudioFormat::ALL`]).
pub fn audio_format_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(AudioFormat::ALL.map(AudioFormat::as_str)))
}

/// The form [`Property::parse`] accepts: `LANGUAGE_8k|16k_DOMAIN`. Which
/// of them the server recognises depends on its packs (`GET /health`).
pub const PROPERTY_PATTERN: &str = "^[a-z0-9]+_(8k|16k)_[a-z0-9_]+$";

pub fn property_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(PROPERTY_PATTERN))
        .examples(["chinese_16k_common"])
}

/// A validated short-audio request.
#[derive(Clone, Debug, PartialEq)]
pub struct ShortAudioRequest {
    pub audio: Vec<u8>,
    pub format: AudioFormat,
    pub property: Property,
    pub options: RecognitionOptions,
}

pub(crate) fn field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a Value, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(ApiError::new(
            SisCode::MissingField,
            format!("'{path}' is required"),
        )),
        Some(v) => Ok(v),
    }
}

pub(crate) fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, ApiError> {
    v.as_str()
        .ok_or_else(|| ApiError::invalid(format!("'{path}' must be a string")))
}

pub(crate) fn yes_no(
    cfg: &Map<String, Value>,
    name: &str,
    default: bool,
) -> Result<bool, ApiError> {
    match cfg.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match string(v, &format!("config.{name}"))? {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(ApiError::invalid(format!(
                "'{name}' is invalid: '{other}', expected 'yes' or 'no'"
            ))),
        },
    }
}

/// The request body as JSON.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))
}

pub(crate) fn body_object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::invalid("request body must be a JSON object"))
}

/// The required `config` object.
pub(crate) fn config_object(obj: &Map<String, Value>) -> Result<&Map<String, Value>, ApiError> {
    field(obj, "config", "config")?
        .as_object()
        .ok_or_else(|| ApiError::invalid("'config' must be an object"))
}

/// `config.property`, required and known.
pub(crate) fn parse_property(cfg: &Map<String, Value>) -> Result<Property, ApiError> {
    let prop_s = string(
        field(cfg, "property", "config.property")?,
        "config.property",
    )?;
    Property::parse(prop_s)
        .ok_or_else(|| ApiError::invalid(format!("'property' is invalid: '{prop_s}'")))
}

/// The recognition options shared by short-audio and real-time START.
pub(crate) fn parse_options(cfg: &Map<String, Value>) -> Result<RecognitionOptions, ApiError> {
    Ok(RecognitionOptions {
        add_punc: yes_no(cfg, "add_punc", false)?,
        digit_norm: yes_no(cfg, "digit_norm", true)?,
        need_word_info: yes_no(cfg, "need_word_info", false)?,
        vocabulary_id: match cfg.get("vocabulary_id") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(string(v, "config.vocabulary_id")?.to_string()).filter(|s| !s.is_empty())
            }
        },
        // resolved by the server against the store
        hot_words: None,
    })
}

/// Parses and validates a request body. Checks everything that can be checked
/// without decoding the audio; the sample-rate rule for container formats is
/// checked after decoding (see [`check_sample_rate`]).
pub fn parse_request(body: &[u8]) -> Result<ShortAudioRequest, ApiError> {
    let value = json_body(body)?;
    let obj = body_object(&value)?;
    let cfg = config_object(obj)?;

    let format_s = string(
        field(cfg, "audio_format", "config.audio_format")?,
        "config.audio_format",
    )?;
    let format = AudioFormat::parse(format_s)
        .ok_or_else(|| ApiError::invalid(format!("'audio_format' is invalid: '{format_s}'")))?;

    let property = parse_property(cfg)?;
    let options = parse_options(cfg)?;
    // Accepted and type-checked; model selection by language is a later feature.
    yes_no(cfg, "auto_language_detect", false)?;

    let data = string(field(obj, "data", "data")?, "data")?;
    if data.is_empty() {
        return Err(ApiError::invalid("data cannot be empty"));
    }
    if data.len() > MAX_BASE64_BYTES {
        return Err(ApiError::invalid(format!(
            "data is {} bytes of base64, larger than the 4 MB limit",
            data.len()
        )));
    }
    let audio = decode_base64(data)?;

    check_declared_rate(format, &property)?;
    Ok(ShortAudioRequest {
        audio,
        format,
        property,
        options,
    })
}

fn decode_base64(data: &str) -> Result<Vec<u8>, ApiError> {
    // Clients wrap lines (MIME style); ignore ASCII whitespace, nothing else.
    let compact: std::borrow::Cow<'_, [u8]> = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        data.bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>()
            .into()
    } else {
        data.as_bytes().into()
    };
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let audio = engine
        .decode(&compact[..])
        .map_err(|_| ApiError::invalid("data base64 encode invalid"))?;
    if audio.is_empty() {
        return Err(ApiError::invalid("data cannot be empty"));
    }
    Ok(audio)
}

/// Raw formats name their sample rate; it must equal the property's.
pub(crate) fn check_declared_rate(
    format: AudioFormat,
    property: &Property,
) -> Result<(), ApiError> {
    let declared = match format {
        AudioFormat::Amr => Some(8000),
        AudioFormat::AmrWb => Some(16000),
        f => f.raw().map(|(_, rate)| rate),
    };
    match declared {
        Some(rate) => check_sample_rate(rate, property),
        None => Ok(()),
    }
}

/// The property's sample rate must match the audio's (SIS.0301).
pub fn check_sample_rate(audio_rate: u32, property: &Property) -> Result<(), ApiError> {
    if audio_rate == property.sample_rate() {
        Ok(())
    } else {
        Err(ApiError::new(
            SisCode::FormatModelMismatch,
            format!(
                "'audio_format' is not match model: audio is {} Hz, property {} expects {} Hz",
                audio_rate,
                property.name(),
                property.sample_rate()
            ),
        ))
    }
}

/// A word and its time (ms from the start of the audio).
#[derive(Serialize, ToSchema)]
pub struct WordInfo<'a> {
    start_time: u32,
    end_time: u32,
    word: &'a str,
}

/// A result's `word_info`, when it was asked for (every API that returns
/// recognised text writes it so).
pub(crate) fn word_info(
    transcript: &Transcript,
    need_word_info: bool,
) -> Option<Vec<WordInfo<'_>>> {
    need_word_info.then(|| {
        transcript
            .words
            .iter()
            .map(|w| WordInfo {
                start_time: w.start_ms,
                end_time: w.end_ms,
                word: &w.word,
            })
            .collect()
    })
}

/// `{"text", "score", "word_info"?}`: a recognised sentence's `result`.
#[derive(Serialize, ToSchema)]
#[schema(as = RecognitionResult)]
pub struct ResultBody<'a> {
    text: &'a str,
    /// The decoder's confidence; left out when the pack's decoder reports
    /// no probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    score: Option<f32>,
    /// With `need_word_info: yes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    word_info: Option<Vec<WordInfo<'a>>>,
}

impl<'a> ResultBody<'a> {
    pub(crate) fn of(transcript: &'a Transcript, need_word_info: bool) -> ResultBody<'a> {
        ResultBody {
            text: &transcript.text,
            score: transcript.score,
            word_info: word_info(transcript, need_word_info),
        }
    }
}

/// The short-audio response.
#[derive(Serialize, ToSchema)]
#[schema(as = ShortAudioResponse)]
pub struct ResponseBody<'a> {
    trace_id: &'a str,
    result: ResultBody<'a>,
}

/// The 200 response body.
pub fn response_body(trace_id: &str, transcript: &Transcript, need_word_info: bool) -> String {
    let body = ResponseBody {
        trace_id,
        result: ResultBody::of(transcript, need_word_info),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sis_core::WordTiming;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn ok(data: &str, cfg: Value) -> Result<ShortAudioRequest, ApiError> {
        parse_request(&body(serde_json::json!({"data": data, "config": cfg})))
    }

    #[test]
    fn defaults() {
        let r = ok(
            "AAAA",
            serde_json::json!({"audio_format": "pcm16k16bit", "property": "chinese_16k_common"}),
        )
        .unwrap();
        assert_eq!(r.audio, vec![0, 0, 0]);
        assert!(r.options.digit_norm);
        assert!(!r.options.add_punc && !r.options.need_word_info);
        assert_eq!(r.options.vocabulary_id, None);
    }

    #[test]
    fn errors() {
        let cfg =
            serde_json::json!({"audio_format": "pcm16k16bit", "property": "chinese_16k_common"});
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (b"{not json".to_vec(), "SIS.0032", "not valid JSON"),
            (b"[1,2]".to_vec(), "SIS.0032", "JSON object"),
            (
                body(serde_json::json!({"config": cfg})),
                "SIS.0012",
                "'data'",
            ),
            (
                body(serde_json::json!({"data": "AAAA"})),
                "SIS.0012",
                "'config'",
            ),
            (
                body(serde_json::json!({"data": 5, "config": cfg})),
                "SIS.0032",
                "'data' must be a string",
            ),
            (
                body(serde_json::json!({"data": "", "config": cfg})),
                "SIS.0032",
                "cannot be empty",
            ),
            (
                body(serde_json::json!({"data": "@@@@", "config": cfg})),
                "SIS.0032",
                "base64",
            ),
            (
                body(serde_json::json!({"data": "data:audio/wav;base64,AAAA", "config": cfg})),
                "SIS.0032",
                "base64",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"property": "chinese_16k_common"}}),
                ),
                "SIS.0012",
                "audio_format",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "flac", "property": "chinese_16k_common"}}),
                ),
                "SIS.0032",
                "'audio_format' is invalid",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": 1, "property": "chinese_16k_common"}}),
                ),
                "SIS.0032",
                "must be a string",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "pcm16k16bit"}}),
                ),
                "SIS.0012",
                "property",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "pcm16k16bit", "property": "klingon"}}),
                ),
                "SIS.0032",
                "'property' is invalid",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "pcm16k16bit", "property": "chinese_8k_common"}}),
                ),
                "SIS.0301",
                "not match model",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "amr", "property": "chinese_16k_common"}}),
                ),
                "SIS.0301",
                "not match model",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_common", "add_punc": "maybe"}}),
                ),
                "SIS.0032",
                "'add_punc'",
            ),
            (
                body(
                    serde_json::json!({"data": "AAAA", "config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_common", "digit_norm": true}}),
                ),
                "SIS.0032",
                "digit_norm",
            ),
            (
                body(serde_json::json!({"data": "AAAA", "config": "x"})),
                "SIS.0032",
                "'config' must be an object",
            ),
        ];
        for (b, code, msg) in cases {
            let e = parse_request(&b).unwrap_err();
            assert_eq!(e.code.as_str(), code, "{}", String::from_utf8_lossy(&b));
            assert!(
                e.message.contains(msg),
                "{} — {}",
                e.message,
                String::from_utf8_lossy(&b)
            );
        }
    }

    #[test]
    fn base64_limit() {
        let big = "A".repeat(MAX_BASE64_BYTES + 4);
        let e = ok(
            &big,
            serde_json::json!({"audio_format": "pcm16k16bit", "property": "chinese_16k_common"}),
        )
        .unwrap_err();
        assert!(e.message.contains("4 MB"));
    }

    #[test]
    fn response_shape() {
        let t = Transcript {
            text: "138".into(),
            score: Some(0.9),
            words: vec![WordTiming {
                word: "138".into(),
                start_ms: 10,
                end_ms: 200,
            }],
        };
        let v: Value = serde_json::from_str(&response_body("t1", &t, true)).unwrap();
        assert_eq!(v["trace_id"], "t1");
        assert_eq!(v["result"]["word_info"][0]["start_time"], 10);
        let v: Value = serde_json::from_str(&response_body("t1", &t, false)).unwrap();
        assert!(v["result"].get("word_info").is_none());
        assert!((v["result"]["score"].as_f64().unwrap() - 0.9).abs() < 1e-6);
        let unscored = Transcript { score: None, ..t };
        let v: Value = serde_json::from_str(&response_body("t1", &unscored, false)).unwrap();
        assert!(v["result"].get("score").is_none(), "{v}");
    }
}
