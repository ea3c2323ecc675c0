//! RASR WebSocket messages (SIS-API.md §6): START / END commands from the
//! client, and START, EVENT, RESULT, ERROR, FATAL_ERROR, END responses.

use serde::Serialize;
use serde_json::{Map, Value};
use sis_core::{AudioFormat, Property, RecognitionOptions, Transcript};

use crate::error::{ApiError, SisCode};
use crate::short_audio::{
    check_declared_rate, field, parse_options, parse_property, string, yes_no,
};

/// The three RASR modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ShortStream,
    ContinueStream,
    SentenceStream,
    /// Short audio over WebSocket (`wss /v1/{project_id}/asr/short-audio`,
    /// SIS-API.md §5): the RASR protocol, one final result for the whole
    /// audio at END. Not a `/rasr/{mode}` path.
    ShortAudio,
}

impl Mode {
    pub fn from_path(s: &str) -> Option<Mode> {
        match s {
            "short-stream" => Some(Mode::ShortStream),
            "continue-stream" => Some(Mode::ContinueStream),
            "sentence-stream" => Some(Mode::SentenceStream),
            _ => None,
        }
    }

    /// The mode's path segment, as [`Mode::from_path`] reads it.
    pub fn as_path(self) -> &'static str {
        match self {
            Mode::ShortStream => "short-stream",
            Mode::ContinueStream => "continue-stream",
            Mode::SentenceStream => "sentence-stream",
            Mode::ShortAudio => "short-audio",
        }
    }

    /// Longest audio of one session, in ms (continue-stream: 5 h).
    pub fn max_audio_ms(self) -> u64 {
        match self {
            Mode::ContinueStream => 5 * 3600 * 1000,
            _ => 60_000,
        }
    }
}

/// A validated START.
#[derive(Clone, Debug, PartialEq)]
pub struct StartConfig {
    pub format: AudioFormat,
    pub property: Property,
    pub options: RecognitionOptions,
    pub interim_results: bool,
    /// Leading silence limit, ms (0 in the request means 60000).
    pub vad_head_ms: u32,
    /// Trailing silence that ends a sentence, ms.
    pub vad_tail_ms: u32,
    /// Longest sentence, s.
    pub max_seconds: u32,
}

/// A client text message.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Start(Box<StartConfig>),
    End { cancel: bool },
}

fn int_in(
    cfg: &Map<String, Value>,
    name: &str,
    default: u32,
    lo: u32,
    hi: u32,
) -> Result<u32, ApiError> {
    match cfg.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| ApiError::invalid(format!("'{name}' must be an integer")))?;
            if n < lo as i64 || n > hi as i64 {
                return Err(ApiError::invalid(format!(
                    "'{name}' is out of range [{lo}, {hi}]: {n}"
                )));
            }
            Ok(n as u32)
        }
    }
}

const KNOWN_CONFIG: [&str; 13] = [
    "audio_format",
    "property",
    "add_punc",
    "digit_norm",
    "vad_head",
    "vad_tail",
    "max_seconds",
    "interim_results",
    "vocabulary_id",
    "need_word_info",
    "vad_threshold",
    "user_words",
    "auto_language_detect",
];

/// Parses a client text frame.
pub fn parse_command(text: &str) -> Result<Command, ApiError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("message is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("message must be a JSON object"))?;
    let command = string(field(obj, "command", "command")?, "command")?;
    match command {
        "START" => parse_start(obj).map(|c| Command::Start(Box::new(c))),
        "END" => {
            let cancel = match obj.get("cancel") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s == "true" => true,
                Some(Value::String(s)) if s == "false" => false,
                Some(_) => {
                    return Err(ApiError::invalid(
                        "'cancel' must be true or false (a boolean or a string)",
                    ))
                }
            };
            Ok(Command::End { cancel })
        }
        other => Err(ApiError::invalid(format!(
            "'command' is invalid: '{other}', expected START or END"
        ))),
    }
}

fn parse_start(obj: &Map<String, Value>) -> Result<StartConfig, ApiError> {
    let cfg = field(obj, "config", "config")?
        .as_object()
        .ok_or_else(|| ApiError::invalid("'config' must be an object"))?;
    if let Some(k) = cfg.keys().find(|k| !KNOWN_CONFIG.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "config key '{k}' is not supported"
        )));
    }
    let format_s = string(
        field(cfg, "audio_format", "config.audio_format")?,
        "config.audio_format",
    )?;
    let format = AudioFormat::parse(format_s)
        .filter(|f| f.raw().is_some())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "'audio_format' is invalid: '{format_s}' (real-time recognition takes raw PCM, A-law or mu-law at 8 or 16 kHz)"
            ))
        })?;
    let property = parse_property(cfg)?;
    let options = parse_options(cfg)?;
    let interim_results = yes_no(cfg, "interim_results", false)?;
    let vad_head = int_in(cfg, "vad_head", 10_000, 0, 60_000)?;
    let vad_tail = int_in(cfg, "vad_tail", 500, 0, 3_000)?;
    let max_seconds = int_in(cfg, "max_seconds", 30, 1, 60)?;
    // accepted for SDK compatibility; checked for type only
    int_in(cfg, "vad_threshold", 0, 0, 1_000)?;
    if let Some(v) = cfg.get("user_words") {
        if !v.is_array() && !v.is_null() {
            return Err(ApiError::invalid("'user_words' must be an array"));
        }
    }
    yes_no(cfg, "auto_language_detect", false)?;
    check_declared_rate(format, &property)?;
    Ok(StartConfig {
        format,
        property,
        options,
        interim_results,
        vad_head_ms: if vad_head == 0 { 60_000 } else { vad_head },
        vad_tail_ms: vad_tail,
        max_seconds,
    })
}

/// Allowed binary message sizes in bytes for a format (§6.4): 8 kHz
/// [160, 32768], 16 kHz [320, 65536].
pub fn frame_bounds(format: AudioFormat) -> (usize, usize) {
    match format.raw() {
        Some((_, 8000)) => (160, 32_768),
        _ => (320, 65_536),
    }
}

#[derive(Serialize)]
struct Simple<'a> {
    resp_type: &'a str,
    trace_id: &'a str,
}

pub fn start_response(trace_id: &str) -> String {
    serde_json::to_string(&Simple {
        resp_type: "START",
        trace_id,
    })
    .unwrap_or_default()
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Normal,
    Cancel,
    Error,
}

pub fn end_response(trace_id: &str, reason: EndReason) -> String {
    let reason = match reason {
        EndReason::Normal => "NORMAL",
        EndReason::Cancel => "CANCEL",
        EndReason::Error => "ERROR",
    };
    serde_json::json!({"resp_type": "END", "trace_id": trace_id, "reason": reason}).to_string()
}

/// `EVENT`: VOICE_START, VOICE_END, EXCEEDED_SILENCE, EXCEEDED_AUDIO.
pub fn event_response(trace_id: &str, event: &str, timestamp_ms: u64) -> String {
    serde_json::json!({"resp_type": "EVENT", "trace_id": trace_id, "event": event, "timestamp": timestamp_ms})
        .to_string()
}

/// `ERROR` (session ends, connection stays) or `FATAL_ERROR` (connection closes).
pub fn error_response(trace_id: &str, error: &ApiError, fatal: bool) -> String {
    serde_json::json!({
        "resp_type": if fatal { "FATAL_ERROR" } else { "ERROR" },
        "trace_id": trace_id,
        "error_code": error.code.as_str(),
        "error_msg": error.message,
    })
    .to_string()
}

/// One `RESULT` with one segment; segment and word times are ms from the session start.
pub fn result_response(
    trace_id: &str,
    start_ms: u64,
    end_ms: u64,
    is_final: bool,
    t: &Transcript,
    need_word_info: bool,
) -> String {
    let mut result = serde_json::json!({"text": t.text});
    // left out when the pack's decoder reports no probabilities
    if let Some(score) = t.score {
        result["score"] = score.into();
    }
    if need_word_info {
        result["word_info"] = t
            .words
            .iter()
            .map(|w| {
                serde_json::json!({
                    "start_time": w.start_ms,
                    "end_time": w.end_ms,
                    "word": w.word,
                })
            })
            .collect();
    }
    serde_json::json!({
        "resp_type": "RESULT",
        "trace_id": trace_id,
        "segments": [{"start_time": start_ms, "end_time": end_ms, "is_final": is_final, "result": result}],
    })
    .to_string()
}

/// Error for a frame above the size bound (shorter frames than the
/// documented minimum are accepted: the SDK's last piece of a file is).
pub fn frame_size_error(len: usize, format: AudioFormat) -> ApiError {
    let (_, hi) = frame_bounds(format);
    ApiError::new(
        SisCode::InvalidParam,
        format!(
            "audio frame of {len} bytes is larger than {hi} bytes for {}",
            format.as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_start_and_end() {
        // exactly what the official WS SDK sends (sdk-captures.md §5)
        let c = parse_command(r#"{"command": "START", "config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_general", "add_punc": "yes", "digit_norm": "yes", "vad_head": 10000, "vad_tail": 500, "max_seconds": 30, "interim_results": "yes", "vad_threshold": 0, "need_word_info": "no"}}"#).unwrap();
        let Command::Start(s) = c else { panic!() };
        assert!(s.interim_results && s.options.add_punc);
        assert_eq!(
            (s.vad_head_ms, s.vad_tail_ms, s.max_seconds),
            (10_000, 500, 30)
        );
        assert_eq!(
            parse_command(r#"{"command": "END", "cancel": "false"}"#).unwrap(),
            Command::End { cancel: false }
        );
        assert_eq!(
            parse_command(r#"{"command":"END","cancel":true}"#).unwrap(),
            Command::End { cancel: true }
        );
        assert_eq!(
            parse_command(r#"{"command":"END"}"#).unwrap(),
            Command::End { cancel: false }
        );
    }

    #[test]
    fn defaults_and_head_zero() {
        let Command::Start(s) = parse_command(
            r#"{"command":"START","config":{"audio_format":"ulaw8k8bit","property":"chinese_8k_common","vad_head":0}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.vad_head_ms, s.vad_tail_ms, s.max_seconds),
            (60_000, 500, 30)
        );
        assert!(!s.interim_results && s.options.digit_norm && !s.options.add_punc);
        assert_eq!(frame_bounds(s.format), (160, 32_768));
    }

    #[test]
    fn refusals() {
        for bad in [
            "not json",
            "[]",
            r#"{"config":{}}"#,
            r#"{"command":"PAUSE"}"#,
            r#"{"command":"END","cancel":"maybe"}"#,
            r#"{"command":"START"}"#,
            r#"{"command":"START","config":{"property":"chinese_16k_common"}}"#,
            r#"{"command":"START","config":{"audio_format":"mp3","property":"chinese_16k_common"}}"#,
            r#"{"command":"START","config":{"audio_format":"pcm16k16bit","property":"chinese_8k_common"}}"#,
            r#"{"command":"START","config":{"audio_format":"pcm16k16bit","property":"chinese_16k_common","vad_tail":3001}}"#,
            r#"{"command":"START","config":{"audio_format":"pcm16k16bit","property":"chinese_16k_common","max_seconds":0}}"#,
            r#"{"command":"START","config":{"audio_format":"pcm16k16bit","property":"chinese_16k_common","interim_results":"true"}}"#,
            r#"{"command":"START","config":{"audio_format":"pcm16k16bit","property":"chinese_16k_common","colour":"red"}}"#,
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_carry_trace_id() {
        let t = Transcript {
            text: "你好".into(),
            score: Some(0.8),
            words: vec![],
        };
        for m in [
            start_response("t1"),
            end_response("t1", EndReason::Cancel),
            event_response("t1", "VOICE_START", 120),
            error_response("t1", &ApiError::invalid("x"), true),
            result_response("t1", 100, 900, false, &t, true),
        ] {
            let v: Value = serde_json::from_str(&m).unwrap();
            assert_eq!(v["trace_id"], "t1");
        }
        let v: Value =
            serde_json::from_str(&result_response("t", 100, 900, true, &t, false)).unwrap();
        assert_eq!(v["segments"][0]["is_final"], true);
        assert_eq!(v["segments"][0]["end_time"], 900);
        assert!(v["segments"][0]["result"].get("word_info").is_none());
        let score = v["segments"][0]["result"]["score"].as_f64().unwrap();
        assert!((score - 0.8).abs() < 1e-6, "{score}");
        // a pack whose decoder reports no probabilities: no score at all
        let unscored = Transcript { score: None, ..t };
        let v: Value =
            serde_json::from_str(&result_response("t", 0, 900, true, &unscored, false)).unwrap();
        assert!(v["segments"][0]["result"].get("score").is_none(), "{v}");
        assert_eq!(v["segments"][0]["result"]["text"], "你好");
    }
}
