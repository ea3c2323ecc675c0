//! The OpenAI-compatible audio API's wire format (`POST
//! /v1/audio/transcriptions`): its form fields, its response formats
//! (`json`, `text`, `srt`, `vtt`, `verbose_json`) and its error body, so
//! that applications written against the OpenAI audio API (and its
//! official clients) run unchanged with only the base URL and key changed.
//! Subtitles (`srt`, `vtt`) are rendered here once for every user of them.

use serde_json::{json, Value};
use utoipa::ToSchema;

/// The `POST /v1/audio/transcriptions` form as sisd reads it, for the
/// OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TranscriptionForm {
    /// The audio file: any format sisd reads, at most 25 MB and 30 minutes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A property this server serves (`chinese_16k_common`), or any other
    /// name (`whisper-1`): then `language` chooses.
    #[schema(max_length = 4096)]
    model: String,
    #[schema(inline, required = false)]
    language: Language,
    #[schema(inline, required = false)]
    response_format: ResponseFormatName,
    /// `verbose_json` only.
    #[schema(rename = "timestamp_granularities[]", inline, required = false)]
    timestamp_granularities: Vec<Granularity>,
    /// Accepted, not used.
    #[schema(max_length = 4096, required = false)]
    prompt: String,
    /// Accepted, not used.
    #[schema(required = false)]
    temperature: f64,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Language {
    Zh,
    Chinese,
    En,
    English,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ResponseFormatName {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Granularity {
    Word,
    Segment,
}

/// `response_format=json`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Transcription {
    text: String,
}

/// `response_format=verbose_json` (times in seconds).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VerboseTranscription {
    #[schema(example = "transcribe")]
    task: String,
    language: String,
    duration: f64,
    text: String,
    /// With the `segment` granularity (the default).
    #[schema(required = false)]
    segments: Vec<VerboseSegment>,
    /// With the `word` granularity.
    #[schema(required = false)]
    words: Vec<VerboseWord>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VerboseSegment {
    id: u32,
    start: f64,
    end: f64,
    text: String,
    /// When the pack reports probabilities.
    #[schema(required = false)]
    avg_logprob: f64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VerboseWord {
    word: String,
    start: f64,
    end: f64,
}

/// The `POST /v1/audio/speech` body as [`speech_request`] reads it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SpeechBody {
    /// A voice of this server (`chinese_xiaoyan_common`), or any other name
    /// (`tts-1`): the default voice.
    model: String,
    /// At most 500 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    input: String,
    /// OpenAI's voice names are accepted, and not used.
    voice: Option<String>,
    /// Default `mp3`; `pcm` is 16-bit mono at 16 kHz.
    #[schema(inline)]
    response_format: Option<SpeechFormat>,
    /// Default 1.
    #[schema(minimum = 0.5, maximum = 2.0)]
    speed: Option<f64>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SpeechFormat {
    Mp3,
    Wav,
    Pcm,
}

/// The OpenAI error body ([`error_body`]).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiErrorBody {
    error: OpenAiError,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiError {
    message: String,
    #[schema(rename = "type")]
    kind: String,
    param: Option<String>,
    code: Option<String>,
}

/// `response_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    /// The form field's value; `None` for one the API does not have.
    pub fn parse(s: &str) -> Option<ResponseFormat> {
        Some(match s {
            "json" => ResponseFormat::Json,
            "text" => ResponseFormat::Text,
            "srt" => ResponseFormat::Srt,
            "vtt" => ResponseFormat::Vtt,
            "verbose_json" => ResponseFormat::VerboseJson,
            _ => return None,
        })
    }
}

/// What `timestamp_granularities[]` asks for (`verbose_json` only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Granularities {
    pub words: bool,
    pub segments: bool,
}

impl Granularities {
    /// From the field's values (`word`, `segment`); the API's default is
    /// segments only. An unknown value is an error.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Granularities, String> {
        let mut g = Granularities::default();
        let mut any = false;
        for v in values {
            any = true;
            match v {
                "word" => g.words = true,
                "segment" => g.segments = true,
                other => {
                    return Err(format!(
                        "timestamp_granularities: {other:?} is not one of word, segment"
                    ))
                }
            }
        }
        if !any {
            g.segments = true;
        }
        Ok(g)
    }
}

/// One recognised sentence.
pub struct Segment<'a> {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: &'a str,
    /// The decoder's confidence (geometric mean of the token
    /// probabilities), when the pack reports one.
    pub score: Option<f32>,
    /// (word, start ms, end ms) from the start of the audio.
    pub words: Vec<(&'a str, u64, u64)>,
}

/// The response body and its content type.
pub fn render(
    format: ResponseFormat,
    segments: &[Segment<'_>],
    duration_ms: u64,
    language: &str,
    granularities: Granularities,
) -> (&'static str, String) {
    let text = joined_text(segments);
    match format {
        ResponseFormat::Json => ("application/json", json!({ "text": text }).to_string()),
        ResponseFormat::Text => ("text/plain; charset=utf-8", format!("{text}\n")),
        ResponseFormat::Srt => ("text/plain; charset=utf-8", srt(segments)),
        ResponseFormat::Vtt => ("text/vtt; charset=utf-8", vtt(segments)),
        ResponseFormat::VerboseJson => {
            let mut body = json!({
                "task": "transcribe",
                "language": language,
                "duration": duration_ms as f64 / 1000.0,
                "text": text,
            });
            if granularities.segments {
                let segs: Vec<Value> = segments
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let mut v = json!({
                            "id": i,
                            "start": s.start_ms as f64 / 1000.0,
                            "end": s.end_ms as f64 / 1000.0,
                            "text": s.text,
                        });
                        // the mean log-probability of the chosen tokens: the
                        // score is exp of it (sis-engine postprocess)
                        if let Some(score) = s.score.filter(|p| *p > 0.0) {
                            v["avg_logprob"] = json!(f64::from(score).ln());
                        }
                        v
                    })
                    .collect();
                body["segments"] = Value::Array(segs);
            }
            if granularities.words {
                let words: Vec<Value> = segments
                    .iter()
                    .flat_map(|s| s.words.iter())
                    .map(|(w, start, end)| {
                        json!({"word": w, "start": *start as f64 / 1000.0, "end": *end as f64 / 1000.0})
                    })
                    .collect();
                body["words"] = Value::Array(words);
            }
            ("application/json", body.to_string())
        }
    }
}

/// The sentences' texts joined: with a space between sentences that end
/// and start in Latin letters or digits, directly otherwise (Chinese).
pub fn joined_text(segments: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for s in segments {
        let t = s.text.trim();
        if t.is_empty() {
            continue;
        }
        let needs_space = out
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if needs_space {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(ms: u64, sep: char) -> String {
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{f:03}")
}

/// SubRip: one numbered cue per sentence.
pub fn srt(segments: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for (i, s) in segments
        .iter()
        .filter(|s| !s.text.trim().is_empty())
        .enumerate()
    {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(s.start_ms, ','),
            timestamp(s.end_ms, ','),
            s.text.trim()
        ));
    }
    out
}

/// WebVTT: a header, then one cue per sentence.
pub fn vtt(segments: &[Segment<'_>]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments.iter().filter(|s| !s.text.trim().is_empty()) {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start_ms, '.'),
            timestamp(s.end_ms, '.'),
            s.text.trim()
        ));
    }
    out
}

/// `POST /v1/audio/speech`'s body as a synthesis request, or the error
/// (message, parameter). `model` names a voice (a TTS property) when it is
/// one, else the default voice (`voice` names are OpenAI's and are
/// accepted as they are); `speed` in [0.5, 2.0] (sisd's tempo range, 2^(s/500)
/// for SIS speed s); formats `mp3` (default), `wav` and `pcm` (16-bit mono at
/// 16 kHz); text of at most [`crate::tts::MAX_TEXT_CHARS`] characters.
pub fn speech_request(
    body: &[u8],
    is_voice: impl Fn(&str) -> bool,
) -> Result<sis_core::tts::SynthesisRequest, (String, &'static str)> {
    use sis_core::tts::{ScriptPiece, SynthesisRequest, TtsFormat};
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| (format!("the body is not JSON: {e}"), "input"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ("the body is not a JSON object".to_string(), "input"))?;
    let text = |k: &'static str| -> Result<Option<&str>, (String, &'static str)> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err((format!("{k} must be a string"), k)),
        }
    };
    let input = text("input")?.ok_or_else(|| ("input is required".to_string(), "input"))?;
    let chars = input.chars().count();
    if input.trim().is_empty() {
        return Err(("input is empty".into(), "input"));
    }
    if chars > crate::tts::MAX_TEXT_CHARS {
        return Err((
            format!(
                "input is {chars} characters; this server reads at most {}",
                crate::tts::MAX_TEXT_CHARS
            ),
            "input",
        ));
    }
    let model = text("model")?.ok_or_else(|| ("model is required".to_string(), "model"))?;
    let voice = if is_voice(model) {
        model.to_string()
    } else {
        crate::tts::DEFAULT_VOICE.to_string()
    };
    let format = match text("response_format")?.unwrap_or("mp3") {
        "mp3" => TtsFormat::Mp3,
        "wav" => TtsFormat::Wav,
        "pcm" => TtsFormat::Pcm,
        other => {
            return Err((
                format!("response_format {other:?}: this server makes mp3, wav and pcm"),
                "response_format",
            ))
        }
    };
    let speed = match obj.get("speed") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| ("speed must be a number".to_string(), "speed"))?,
    };
    if !(0.5..=2.0).contains(&speed) {
        return Err((
            format!("speed {speed}: this server reads at 0.5 to 2.0 times"),
            "speed",
        ));
    }
    Ok(SynthesisRequest {
        script: vec![ScriptPiece::Text(input.to_string())],
        voice,
        format,
        sample_rate: 16000,
        speed: (500.0 * speed.log2()).round() as i32,
        pitch: 0,
        volume: 50,
    })
}

/// The API's error body.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> String {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: u64, end_ms: u64, text: &'static str) -> Segment<'static> {
        Segment {
            start_ms,
            end_ms,
            text,
            score: Some(0.5),
            words: vec![(text, start_ms, end_ms)],
        }
    }

    #[test]
    fn subtitles_and_formats() {
        let s = [
            seg(500, 2_250, "今天天气很好"),
            seg(3_661_001, 3_662_000, "ok"),
        ];
        assert_eq!(
            srt(&s),
            "1\n00:00:00,500 --> 00:00:02,250\n今天天气很好\n\n2\n01:01:01,001 --> 01:01:02,000\nok\n\n"
        );
        assert_eq!(
            vtt(&s),
            "WEBVTT\n\n00:00:00.500 --> 00:00:02.250\n今天天气很好\n\n01:01:01.001 --> 01:01:02.000\nok\n\n"
        );
        assert_eq!(joined_text(&s), "今天天气很好ok");
        assert_eq!(
            joined_text(&[seg(0, 1, "one"), seg(1, 2, "two")]),
            "one two"
        );
        let (ct, body) = render(
            ResponseFormat::VerboseJson,
            &s,
            3_700_000,
            "zh",
            Granularities {
                words: true,
                segments: true,
            },
        );
        assert_eq!(ct, "application/json");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["duration"], json!(3700.0));
        assert_eq!(v["segments"][1]["start"], json!(3661.001));
        assert!((v["segments"][0]["avg_logprob"].as_f64().unwrap() - 0.5f64.ln()).abs() < 1e-6);
        assert_eq!(v["words"][0]["word"], json!("今天天气很好"));
        assert_eq!(ResponseFormat::parse("mp3"), None);
        assert!(Granularities::parse(["letter"]).is_err());
        let r = speech_request(
            r#"{"model":"tts-1","input":"你好","voice":"alloy","speed":2}"#.as_bytes(),
            |_| false,
        )
        .unwrap();
        assert_eq!(
            (r.speed, r.voice.as_str(), r.format),
            (
                500,
                crate::tts::DEFAULT_VOICE,
                sis_core::tts::TtsFormat::Mp3
            )
        );
        assert_eq!(
            speech_request(br#"{"model":"tts-1","input":"x","speed":4}"#, |_| false)
                .unwrap_err()
                .1,
            "speed"
        );
        assert_eq!(
            speech_request(
                br#"{"model":"tts-1","input":"x","response_format":"opus"}"#,
                |_| false
            )
            .unwrap_err()
            .1,
            "response_format"
        );
        assert_eq!(
            Granularities::parse([]).unwrap(),
            Granularities {
                words: false,
                segments: true
            }
        );
    }
}
