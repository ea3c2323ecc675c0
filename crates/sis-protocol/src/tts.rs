//! `POST /v1/{project_id}/tts` (SIS-API.md §9): the request body into a
//! validated [`SynthesisRequest`], the answer into its body.
//!
//! The body: `{"text": "...", "config": {"audio_format", "sample_rate",
//! "property", "speed", "pitch", "volume"}}`; `config` and each of its
//! fields may be left out (defaults: `wav`, `"8000"`, `chinese_xiaoyan_common`,
//! 0, 0, 50). `sample_rate` is a string in SIS (`"8000"`, `"16000"`); the
//! numbers 8000 and 16000 are taken too. Whether `property` names a voice
//! this server has is the engine's check. A `text` that starts with
//! `<speak` is SSML, of which [`parse_ssml`] reads a small subset.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};
use sis_core::tts::{ScriptPiece, SynthesisRequest, TtsFormat, TTS_RATES};

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::ToSchema;

use crate::error::{ApiError, SisCode};
use crate::short_audio::{body_object, field, json_body, string};

/// The request body as [`parse_request`] reads it, for the OpenAPI
/// document (the schema states the parser's rules).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TtsBody {
    /// The text to read (at most 500 characters, not only whitespace), or
    /// SSML: `<speak>` with `<break>` (docs/TTS.md).
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    text: String,
    config: Option<TtsConfig>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TtsConfig {
    /// Default `wav`.
    #[schema(schema_with = tts_format_schema, nullable)]
    audio_format: Option<String>,
    /// `"8000"` (default) or `"16000"`; the numbers are taken too.
    #[schema(schema_with = sample_rate_schema)]
    sample_rate: Option<String>,
    /// A voice (`chinese_xiaoyan_common`, the default; `GET /health` lists
    /// the packs' voices).
    #[schema(min_length = 1, pattern = "^[a-z0-9_]+$")]
    property: Option<String>,
    /// Default 0.
    #[schema(minimum = -500, maximum = 500)]
    speed: Option<i32>,
    /// Default 0.
    #[schema(minimum = -500, maximum = 500)]
    pitch: Option<i32>,
    /// Default 50.
    #[schema(minimum = 0, maximum = 100)]
    volume: Option<i32>,
}

fn tts_format_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(TtsFormat::ALL.map(TtsFormat::as_str)))
}

fn sample_rate_schema() -> ObjectBuilder {
    let mut values: Vec<Value> = TTS_RATES
        .iter()
        .map(|r| Value::from(r.to_string()))
        .collect();
    values.extend(TTS_RATES.iter().map(|r| Value::from(*r)));
    values.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some(values))
}

/// The most characters (not bytes) `text` may hold, SSML markup included.
pub const MAX_TEXT_CHARS: usize = 500;
/// The voice when `property` is not given.
pub const DEFAULT_VOICE: &str = "chinese_xiaoyan_common";
/// The longest SSML `<break>`.
pub const MAX_BREAK_MS: u32 = 10_000;
/// The `<break>` without `time` or `strength` (SSML's `medium`).
const DEFAULT_BREAK_MS: u32 = 500;

/// Parses and validates a synthesis request body.
pub fn parse_request(body: &[u8]) -> Result<SynthesisRequest, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::invalid("request body is not valid UTF-8"));
    }
    let value = json_body(body)?;
    parse_fields(body_object(&value)?, &TTS_FORMATS)
}

/// The formats a request may ask for, its default, and what an error says.
struct Formats {
    default: TtsFormat,
    allowed: &'static [TtsFormat],
    expected: &'static str,
}

const TTS_FORMATS: Formats = Formats {
    default: TtsFormat::Wav,
    allowed: &TtsFormat::ALL,
    expected: "expected wav, mp3 or pcm",
};

/// The one format of real-time synthesis (its default): headerless 16-bit
/// little-endian PCM, mono.
pub const RTTS_FORMAT: TtsFormat = TtsFormat::Pcm;

const RTTS_FORMATS: Formats = Formats {
    default: RTTS_FORMAT,
    allowed: &[RTTS_FORMAT],
    expected: "real-time synthesis streams pcm only (headerless 16-bit little-endian mono)",
};

/// Parses and validates the START message of real-time synthesis
/// (`wss /v1/{project_id}/rtts`, SIS-API.md §9.1):
/// `{"command": "START", "text": "...", "config": {...}}`, the text and
/// config of [`parse_request`] (the same checks, one parser) with these
/// differences: `audio_format` is `pcm` by default and only `pcm` is
/// streamed (`wav` and `mp3` are refused: a WAV header before audio of
/// unknown length, or an MP3 stream cut per sentence, would not be the
/// file `/tts` answers); `subtitle` (SIS's timestamps in RESULT messages)
/// is refused when set, since no RESULT messages are sent.
pub fn parse_rtts_start(message: &str) -> Result<SynthesisRequest, ApiError> {
    let value: Value = serde_json::from_str(message)
        .map_err(|e| ApiError::invalid(format!("message is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("message must be a JSON object"))?;
    let command = string(field(obj, "command", "command")?, "command")?;
    if command != "START" {
        return Err(ApiError::invalid(format!(
            "'command' is invalid: '{}', expected START (one START per connection)",
            clip(command)
        )));
    }
    let req = parse_fields(obj, &RTTS_FORMATS)?;
    let subtitle = obj
        .get("config")
        .and_then(Value::as_object)
        .and_then(|cfg| optional(cfg, "subtitle"));
    if let Some(v) = subtitle {
        return Err(ApiError::invalid(format!(
            "'subtitle' is not supported: {}; this server sends no RESULT timestamps, leave it out",
            clip(&v.to_string())
        )));
    }
    Ok(req)
}

/// The text and config of a synthesis request (`/tts`, or the START of
/// `/rtts`) with the `audio_format`s of `formats`.
fn parse_fields(obj: &Map<String, Value>, formats: &Formats) -> Result<SynthesisRequest, ApiError> {
    let text = string(field(obj, "text", "text")?, "text")?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid("text cannot be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(format!(
            "text is {chars} characters, more than the limit of {MAX_TEXT_CHARS}"
        )));
    }
    let script = if text.trim_start().starts_with("<speak") {
        parse_ssml(text)?
    } else {
        vec![ScriptPiece::Text(text.to_string())]
    };

    let empty = Map::new();
    let cfg = match obj.get("config") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::invalid("'config' must be an object")),
    };
    let format = match optional(cfg, "audio_format") {
        None => formats.default,
        Some(v) => {
            let s = string(v, "config.audio_format")?;
            TtsFormat::parse(s)
                .filter(|f| formats.allowed.contains(f))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "'audio_format' is invalid: '{}', {}",
                        clip(s),
                        formats.expected
                    ))
                })?
        }
    };
    let sample_rate = match optional(cfg, "sample_rate") {
        None => 8000,
        Some(v) => parse_rate(v)?,
    };
    let voice = match optional(cfg, "property") {
        None => DEFAULT_VOICE.to_string(),
        Some(v) => {
            let s = string(v, "config.property")?;
            if s.is_empty() {
                return Err(ApiError::invalid("'property' cannot be empty"));
            }
            s.to_string()
        }
    };
    let speed = integer(cfg, "speed", -500, 500, 0)?;
    let pitch = integer(cfg, "pitch", -500, 500, 0)?;
    let volume = integer(cfg, "volume", 0, 100, 50)?;
    Ok(SynthesisRequest {
        script,
        voice,
        format,
        sample_rate,
        speed: speed as i32,
        pitch: pitch as i32,
        volume: volume as u8,
    })
}

/// A config field, `None` when absent or null.
fn optional<'a>(cfg: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    cfg.get(name).filter(|v| !v.is_null())
}

/// A value as an error message shows it: at most 32 characters.
fn clip(s: &str) -> String {
    match s.char_indices().nth(32) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// `config.sample_rate`: `"8000"` or `"16000"` (SIS sends a string), or
/// the same as a number. Another value is SIS.0402, another type SIS.0032.
fn parse_rate(v: &Value) -> Result<u32, ApiError> {
    let shown = match v {
        Value::String(s) => {
            if let Some(rate) = TTS_RATES.iter().find(|r| r.to_string() == *s) {
                return Ok(*rate);
            }
            format!("'{}'", clip(s))
        }
        Value::Number(n) => {
            if let Some(rate) = n
                .as_u64()
                .and_then(|r| TTS_RATES.iter().find(|&&t| u64::from(t) == r))
            {
                return Ok(*rate);
            }
            n.to_string()
        }
        _ => return Err(ApiError::invalid("'config.sample_rate' must be a string")),
    };
    Err(ApiError::new(
        SisCode::TtsSampleRate,
        format!("'sample_rate' is invalid: {shown}, expected \"8000\" or \"16000\""),
    ))
}

/// An integer config field within `[lo, hi]` (a number with no fraction),
/// `default` when absent.
fn integer(
    cfg: &Map<String, Value>,
    name: &str,
    lo: i64,
    hi: i64,
    default: i64,
) -> Result<i64, ApiError> {
    let Some(v) = optional(cfg, name) else {
        return Ok(default);
    };
    let out_of_range =
        || ApiError::invalid(format!("'{name}' is invalid: {v}, expected [{lo}, {hi}]"));
    let not_integer = || ApiError::invalid(format!("'config.{name}' must be an integer"));
    let Value::Number(number) = v else {
        return Err(not_integer());
    };
    let n = if let Some(i) = number.as_i64() {
        i
    } else if number.as_u64().is_some() {
        return Err(out_of_range());
    } else {
        // a float: integral ones (100.0) are integers
        let f = number.as_f64().unwrap_or(f64::NAN);
        if f.fract() != 0.0 {
            return Err(not_integer());
        }
        if f.abs() > 1e15 {
            return Err(out_of_range());
        }
        f as i64
    };
    if !(lo..=hi).contains(&n) {
        return Err(out_of_range());
    }
    Ok(n)
}

fn ssml_error(what: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!(
        "SSML is invalid: {what} (supported: <speak>, <break time=\"500ms\"/>, plain text)"
    ))
}

/// The SSML subset: one `<speak>` element (its attributes, such as
/// `xml:lang`, are ignored) holding text and `<break/>` elements
/// (`time="500ms"` or `"1.5s"` up to [`MAX_BREAK_MS`], or `strength` from
/// `none` to `x-strong`; neither: 500 ms). The five XML entities and
/// numeric character references are decoded. Anything else — another
/// element, a comment, text after `</speak>`, a tag left open — is
/// SIS.0032, never read aloud as markup.
pub fn parse_ssml(text: &str) -> Result<Vec<ScriptPiece>, ApiError> {
    let rest = text.trim();
    let (open, mut rest) = tag(rest)?;
    if open.name != "speak" || open.closing || open.empty {
        return Err(ssml_error("the text must be one <speak> element"));
    }
    let mut script = Vec::new();
    loop {
        let Some(lt) = rest.find('<') else {
            return Err(ssml_error("<speak> is not closed"));
        };
        let chunk = unescape(&rest[..lt])?;
        if !chunk.trim().is_empty() {
            script.push(ScriptPiece::Text(chunk));
        }
        let (t, after) = tag(&rest[lt..])?;
        rest = after;
        match (t.name, t.closing) {
            ("speak", true) => break,
            ("break", false) if t.empty => script.push(ScriptPiece::Pause {
                ms: break_ms(&t.attrs)?,
            }),
            ("break", false) => return Err(ssml_error("<break> must be empty: <break .../>")),
            (name, _) => return Err(ssml_error(format!("<{name}> is not supported"))),
        }
    }
    if !rest.trim().is_empty() {
        return Err(ssml_error("text after </speak>"));
    }
    if script.is_empty() {
        return Err(ApiError::invalid(
            "text cannot be empty: the SSML holds nothing to read",
        ));
    }
    Ok(script)
}

/// An SSML tag at the start of `s`.
struct Tag<'a> {
    name: &'a str,
    closing: bool,
    /// `<x/>`.
    empty: bool,
    attrs: Vec<(&'a str, String)>,
}

/// Reads the tag `s` starts with; returns it and the text after it.
fn tag(s: &str) -> Result<(Tag<'_>, &str), ApiError> {
    let Some(body) = s.strip_prefix('<') else {
        return Err(ssml_error("a tag was expected"));
    };
    let Some(end) = body.find('>') else {
        return Err(ssml_error("a tag is not closed with '>'"));
    };
    let rest = &body[end + 1..];
    let mut inner = &body[..end];
    let closing = inner.starts_with('/');
    if closing {
        inner = &inner[1..];
    }
    let empty = inner.ends_with('/');
    if empty {
        inner = &inner[..inner.len() - 1];
    }
    let name_end = inner
        .find(|c: char| c.is_whitespace())
        .unwrap_or(inner.len());
    let name = &inner[..name_end];
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
    if !valid_name {
        return Err(ssml_error(format!(
            "'<{}>' is not a tag",
            clip(&body[..end])
        )));
    }
    if closing && empty {
        return Err(ssml_error(format!(
            "'<{}>' is not a tag",
            clip(&body[..end])
        )));
    }
    let mut attrs = Vec::new();
    let mut a = inner[name_end..].trim_start();
    while !a.is_empty() {
        if closing {
            return Err(ssml_error(format!("</{name}> has attributes")));
        }
        let Some(eq) = a.find('=') else {
            return Err(ssml_error(format!("an attribute of <{name}> has no value")));
        };
        let key = a[..eq].trim();
        let v = a[eq + 1..].trim_start();
        let Some(quote) = v.chars().next().filter(|&c| c == '"' || c == '\'') else {
            return Err(ssml_error(format!(
                "attribute {key} of <{name}> is not quoted"
            )));
        };
        let Some(close) = v[1..].find(quote) else {
            return Err(ssml_error(format!(
                "attribute {key} of <{name}> is not closed"
            )));
        };
        attrs.push((key, unescape(&v[1..1 + close])?));
        a = v[1 + close + 1..].trim_start();
    }
    Ok((
        Tag {
            name,
            closing,
            empty,
            attrs,
        },
        rest,
    ))
}

/// The pause of a `<break>`.
fn break_ms(attrs: &[(&str, String)]) -> Result<u32, ApiError> {
    let mut ms = DEFAULT_BREAK_MS;
    for (key, value) in attrs {
        match *key {
            "time" => {
                let v = value.trim();
                let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
                    (n, 1.0)
                } else if let Some(n) = v.strip_suffix('s') {
                    (n, 1000.0)
                } else {
                    return Err(ssml_error(format!(
                        "<break time=\"{}\">: expected milliseconds (500ms) or seconds (1.5s)",
                        clip(v)
                    )));
                };
                let t: f64 = number.trim().parse().map_err(|_| {
                    ssml_error(format!("<break time=\"{}\"> is not a duration", clip(v)))
                })?;
                let t = t * scale;
                if !(0.0..=f64::from(MAX_BREAK_MS)).contains(&t) {
                    return Err(ssml_error(format!(
                        "<break time=\"{}\"> is beyond {MAX_BREAK_MS} ms",
                        clip(v)
                    )));
                }
                ms = t.round() as u32;
            }
            "strength" => {
                ms = match value.as_str() {
                    "none" => 0,
                    "x-weak" => 100,
                    "weak" => 250,
                    "medium" => 500,
                    "strong" => 750,
                    "x-strong" => 1000,
                    other => {
                        return Err(ssml_error(format!(
                            "<break strength=\"{}\"> is unknown",
                            clip(other)
                        )))
                    }
                }
            }
            other => {
                return Err(ssml_error(format!(
                    "<break> has no attribute {}",
                    clip(other)
                )))
            }
        }
    }
    Ok(ms)
}

/// Text with the XML entities and character references decoded.
fn unescape(s: &str) -> Result<String, ApiError> {
    if s.contains('>') {
        return Err(ssml_error("'>' outside a tag (write &gt;)"));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';').filter(|&i| i <= 10) else {
            return Err(ssml_error("'&' that starts no entity (write &amp;)"));
        };
        let name = &after[..semi];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
            }
        };
        let Some(c) = c else {
            return Err(ssml_error(format!("unknown entity &{};", clip(name))));
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Serialize, ToSchema)]
#[schema(as = TtsResult)]
pub struct ResultBody {
    /// The audio file, base64.
    #[schema(content_encoding = "base64")]
    data: String,
}

/// The synthesis response.
#[derive(Serialize, ToSchema)]
#[schema(as = TtsResponse)]
pub struct ResponseBody<'a> {
    trace_id: &'a str,
    result: ResultBody,
}

/// The 200 response body: the audio file, base64.
pub fn response_body(trace_id: &str, audio: &[u8]) -> String {
    let body = ResponseBody {
        trace_id,
        result: ResultBody {
            data: base64::engine::general_purpose::STANDARD.encode(audio),
        },
    };
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SynthesisRequest, ApiError> {
        parse_request(&serde_json::to_vec(&v).unwrap())
    }

    fn text(t: &str) -> ScriptPiece {
        ScriptPiece::Text(t.to_string())
    }

    #[test]
    fn defaults() {
        let r = parse(json!({"text": "你好"})).unwrap();
        assert_eq!(r.script, vec![text("你好")]);
        assert_eq!(
            (r.voice.as_str(), r.format, r.sample_rate),
            ("chinese_xiaoyan_common", TtsFormat::Wav, 8000)
        );
        assert_eq!((r.speed, r.pitch, r.volume), (0, 0, 50));
        let same = parse(json!({"text": "你好", "config": {}})).unwrap();
        assert_eq!(same, r);
        let nulls = parse(json!({"text": "你好", "config": {"audio_format": null,
            "sample_rate": null, "property": null, "speed": null, "pitch": null, "volume": null}}))
        .unwrap();
        assert_eq!(nulls, r);
    }

    #[test]
    fn every_field() {
        // what the v3 SDK sends (sdk-captures.md, RunTts)
        let body = br#"{"text": "\u4f60\u597d\uff0c\u4e16\u754c", "config": {"audio_format": "wav", "sample_rate": "16000", "property": "chinese_xiaoyan_common", "speed": 0, "pitch": 0, "volume": 50}}"#;
        let r = parse_request(body).unwrap();
        assert_eq!(r.script, vec![text("你好，世界")]);
        assert_eq!(r.sample_rate, 16000);
        let r = parse(
            json!({"text": "x", "config": {"audio_format": "mp3", "sample_rate": 16000,
            "property": "english_amy_common", "speed": -500, "pitch": 500, "volume": 100}}),
        )
        .unwrap();
        assert_eq!(
            (r.format, r.sample_rate, r.voice.as_str()),
            (TtsFormat::Mp3, 16000, "english_amy_common")
        );
        assert_eq!((r.speed, r.pitch, r.volume), (-500, 500, 100));
        let r = parse(
            json!({"text": "x", "config": {"audio_format": "pcm", "sample_rate": 8000,
            "speed": 500, "pitch": -500, "volume": 0, "unknown": [1]}}),
        )
        .unwrap();
        assert_eq!((r.format, r.sample_rate), (TtsFormat::Pcm, 8000));
        assert_eq!((r.speed, r.pitch, r.volume), (500, -500, 0));
        // integral floats are integers
        let r = parse(json!({"text": "x", "config": {"speed": 100.0}})).unwrap();
        assert_eq!(r.speed, 100);
    }

    #[test]
    fn text_is_counted_in_characters() {
        let max = "好".repeat(MAX_TEXT_CHARS);
        assert!(max.len() > MAX_TEXT_CHARS);
        assert!(parse(json!({ "text": max })).is_ok());
        let over = format!("{max}a");
        let e = parse(json!({ "text": over })).unwrap_err();
        assert!(e.message.contains("501 characters"), "{}", e.message);
    }

    #[test]
    fn errors() {
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (b"{not json".to_vec(), "SIS.0032", "not valid JSON"),
            (b"[1]".to_vec(), "SIS.0032", "JSON object"),
            (b"{\"text\": \"\xff\xfe\"}".to_vec(), "SIS.0032", "UTF-8"),
            (
                b"{\"text\": \"\\ud800\"}".to_vec(),
                "SIS.0032",
                "not valid JSON",
            ),
        ];
        let json_cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "SIS.0012", "'text' is required"),
            (json!({"text": null}), "SIS.0012", "'text' is required"),
            (json!({"text": 5}), "SIS.0032", "'text' must be a string"),
            (json!({"text": ""}), "SIS.0032", "text cannot be empty"),
            (
                json!({"text": " \n\t "}),
                "SIS.0032",
                "text cannot be empty",
            ),
            (
                json!({"text": "x", "config": "wav"}),
                "SIS.0032",
                "'config' must be an object",
            ),
            (
                json!({"text": "x", "config": {"audio_format": "ogg"}}),
                "SIS.0032",
                "'audio_format' is invalid",
            ),
            (
                json!({"text": "x", "config": {"audio_format": 1}}),
                "SIS.0032",
                "must be a string",
            ),
            (
                json!({"text": "x", "config": {"sample_rate": "11025"}}),
                "SIS.0402",
                "'sample_rate' is invalid",
            ),
            (
                json!({"text": "x", "config": {"sample_rate": 44100}}),
                "SIS.0402",
                "'sample_rate' is invalid",
            ),
            (
                json!({"text": "x", "config": {"sample_rate": "8k"}}),
                "SIS.0402",
                "'sample_rate' is invalid",
            ),
            (
                json!({"text": "x", "config": {"sample_rate": true}}),
                "SIS.0032",
                "must be a string",
            ),
            (
                json!({"text": "x", "config": {"property": 3}}),
                "SIS.0032",
                "must be a string",
            ),
            (
                json!({"text": "x", "config": {"property": ""}}),
                "SIS.0032",
                "'property' cannot be empty",
            ),
            (
                json!({"text": "x", "config": {"speed": 501}}),
                "SIS.0032",
                "'speed' is invalid",
            ),
            (
                json!({"text": "x", "config": {"speed": -501}}),
                "SIS.0032",
                "'speed' is invalid",
            ),
            (
                json!({"text": "x", "config": {"speed": "fast"}}),
                "SIS.0032",
                "must be an integer",
            ),
            (
                json!({"text": "x", "config": {"speed": 1.5}}),
                "SIS.0032",
                "must be an integer",
            ),
            (
                json!({"text": "x", "config": {"speed": 18446744073709551615u64}}),
                "SIS.0032",
                "'speed' is invalid",
            ),
            (
                json!({"text": "x", "config": {"speed": 1e300}}),
                "SIS.0032",
                "'speed' is invalid",
            ),
            (
                json!({"text": "x", "config": {"pitch": -501}}),
                "SIS.0032",
                "'pitch' is invalid",
            ),
            (
                json!({"text": "x", "config": {"pitch": [0]}}),
                "SIS.0032",
                "must be an integer",
            ),
            (
                json!({"text": "x", "config": {"volume": 101}}),
                "SIS.0032",
                "'volume' is invalid",
            ),
            (
                json!({"text": "x", "config": {"volume": -1}}),
                "SIS.0032",
                "'volume' is invalid",
            ),
            (
                json!({"text": "x", "config": {"volume": true}}),
                "SIS.0032",
                "must be an integer",
            ),
            (json!({"text": "<speak>hi"}), "SIS.0032", "SSML is invalid"),
        ];
        let all = cases.into_iter().chain(
            json_cases
                .into_iter()
                .map(|(v, c, m)| (serde_json::to_vec(&v).unwrap(), c, m)),
        );
        for (body, code, msg) in all {
            let e = parse_request(&body).unwrap_err();
            let shown = String::from_utf8_lossy(&body);
            assert_eq!(e.code.as_str(), code, "{shown}: {}", e.message);
            assert!(e.message.contains(msg), "{shown}: {}", e.message);
            assert_eq!(e.status, 400, "{shown}");
        }
    }

    #[test]
    fn ssml_subset() {
        let s = parse_ssml(r#"<speak xml:lang="zh-CN">你好<break time="500ms"/>世界<break time='1.5s' />再见<break/>&lt;A&amp;B&gt; &#x4e2d;&#25991;</speak>"#)
            .unwrap();
        assert_eq!(
            s,
            vec![
                text("你好"),
                ScriptPiece::Pause { ms: 500 },
                text("世界"),
                ScriptPiece::Pause { ms: 1500 },
                text("再见"),
                ScriptPiece::Pause { ms: 500 },
                text("<A&B> 中文"),
            ]
        );
        let s = parse_ssml("  <speak><break strength=\"x-strong\"/></speak>\n").unwrap();
        assert_eq!(s, vec![ScriptPiece::Pause { ms: 1000 }]);
        // as a request: the text field starts with <speak
        let r = parse(json!({"text": "<speak>一<break time=\"200ms\"/>二</speak>"})).unwrap();
        assert_eq!(r.script.len(), 3);
        assert_eq!(r.text_chars(), 2);
        for bad in [
            "<speak>",
            "<speak>hi",
            "<speak>hi</speak>more",
            "<speak><prosody rate=\"fast\">hi</prosody></speak>",
            "<speak><break time=\"forever\"/></speak>",
            "<speak><break time=\"11s\"/></speak>",
            "<speak><break time=\"-1ms\"/></speak>",
            "<speak><break time=\"5\"/></speak>",
            "<speak><break strength=\"huge\"/></speak>",
            "<speak><break length=\"1s\"/></speak>",
            "<speak><break time=1s/></speak>",
            "<speak><break time=\"1s/></speak>",
            "<speak><break>x</break></speak>",
            "<speak>a &nbsp; b</speak>",
            "<speak>a & b</speak>",
            "<speak>a > b</speak>",
            "<speak>a <!-- c --> b</speak>",
            "<speak></speak>",
            "<speak/>",
            "<speaker>hi</speaker>",
            "<speak>hi</speak </speak>",
            "<speak>a < b</speak>",
        ] {
            let e = parse_ssml(bad).unwrap_err();
            assert_eq!(e.code.as_str(), "SIS.0032", "{bad}");
            assert!(
                e.message.contains("SSML") || e.message.contains("empty"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn rtts_start() {
        // what the WebSocket SDK's RttsClient sends (RttsRequest defaults)
        let m = r#"{"command": "START", "config": {"speed": 0, "pitch": 0, "audio_format": "pcm", "sample_rate": "8000", "property": "chinese_xiaoyan_common", "volume": 50}, "text": "\u4f60\u597d"}"#;
        let r = parse_rtts_start(m).unwrap();
        assert_eq!(r.script, vec![text("你好")]);
        assert_eq!((r.format, r.sample_rate), (TtsFormat::Pcm, 8000));
        // the REST parser on the same text and config: the same request
        let body =
            json!({"text": "你好", "config": {"audio_format": "pcm", "sample_rate": "8000"}});
        assert_eq!(parse(body).unwrap(), r);
        // defaults: pcm, not wav
        let r = parse_rtts_start(r#"{"command": "START", "text": "x"}"#).unwrap();
        assert_eq!(
            (r.format, r.sample_rate, r.volume),
            (TtsFormat::Pcm, 8000, 50)
        );
        let r = parse_rtts_start(
            r#"{"command":"START","text":"x","config":{"subtitle":null,"sample_rate":16000}}"#,
        )
        .unwrap();
        assert_eq!(r.sample_rate, 16000);
        for (m, code, msg) in [
            ("{not json", "SIS.0032", "not valid JSON"),
            ("[1]", "SIS.0032", "JSON object"),
            (r#"{"text": "x"}"#, "SIS.0012", "'command' is required"),
            (
                r#"{"command": 1, "text": "x"}"#,
                "SIS.0032",
                "'command' must be a string",
            ),
            (r#"{"command": "END"}"#, "SIS.0032", "expected START"),
            (r#"{"command": "START"}"#, "SIS.0012", "'text' is required"),
            (
                r#"{"command": "START", "text": ""}"#,
                "SIS.0032",
                "text cannot be empty",
            ),
            (
                r#"{"command": "START", "text": "x", "config": {"audio_format": "wav"}}"#,
                "SIS.0032",
                "streams pcm only",
            ),
            (
                r#"{"command": "START", "text": "x", "config": {"audio_format": "mp3"}}"#,
                "SIS.0032",
                "streams pcm only",
            ),
            (
                r#"{"command": "START", "text": "x", "config": {"audio_format": "ogg"}}"#,
                "SIS.0032",
                "'audio_format' is invalid: 'ogg'",
            ),
            (
                r#"{"command": "START", "text": "x", "config": {"sample_rate": "11025"}}"#,
                "SIS.0402",
                "'sample_rate' is invalid",
            ),
            (
                r#"{"command": "START", "text": "x", "config": {"speed": 501}}"#,
                "SIS.0032",
                "'speed' is invalid",
            ),
            (
                r#"{"command": "START", "text": "x", "config": {"subtitle": "word_level"}}"#,
                "SIS.0032",
                "'subtitle' is not supported",
            ),
        ] {
            let e = parse_rtts_start(m).unwrap_err();
            assert_eq!(e.code.as_str(), code, "{m}: {}", e.message);
            assert!(e.message.contains(msg), "{m}: {}", e.message);
        }
        let long = json!({"command": "START", "text": "好".repeat(501)}).to_string();
        assert!(parse_rtts_start(&long)
            .unwrap_err()
            .message
            .contains("501 characters"));
    }

    #[test]
    fn response_shape() {
        let v: Value = serde_json::from_str(&response_body("t-1", b"RIFF")).unwrap();
        assert_eq!(v["trace_id"], "t-1");
        assert_eq!(v["result"]["data"], "UklGRg==");
    }
}
