//! Recorded-file transcription jobs (SIS-API.md §7):
//! `POST /v1/{project_id}/asr/transcriber/jobs` and
//! `GET /v1/{project_id}/asr/transcriber/jobs/{job_id}`, and the callback body.

use serde::Serialize;
use serde_json::{Map, Value};
use sis_core::{AudioFormat, Property, RecognitionOptions, Transcript};

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::error::{ApiError, SisCode};
use crate::short_audio::{
    body_object, check_declared_rate, config_object, field, json_body, parse_options,
    parse_property, string,
};
use crate::short_audio::{property_schema, YesNo};

/// Longest accepted `data_url` / `callback_url`, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// The create body as [`parse_create`] reads it, for the OpenAPI document
/// (the schema states the parser's rules; the network rules for the URLs
/// are the fetcher's: docs/ERRORS.md).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobCreateBody {
    /// `http(s)://` (or `file://` under `--job-files-dir`), under 2048
    /// bytes (not stated as a `maxLength`: schema generators cannot
    /// combine it with the pattern), no whitespace.
    #[schema(pattern = r"^(https?|file)://\S+$")]
    data_url: String,
    config: JobConfig,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobConfig {
    #[schema(schema_with = job_audio_format_schema)]
    audio_format: String,
    #[schema(schema_with = property_schema)]
    property: String,
    add_punc: Option<YesNo>,
    digit_norm: Option<YesNo>,
    need_word_info: Option<YesNo>,
    vocabulary_id: Option<String>,
    /// Where the result is POSTed: `http(s)://`, under 2048 bytes (not
    /// stated as a `maxLength`: schema generators cannot combine it with the
    /// pattern).
    #[schema(pattern = r"^(https?://\S+)?$")]
    callback_url: Option<String>,
    need_analysis_info: Option<AnalysisInfo>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AnalysisInfo {
    diarization: Option<bool>,
    channel: Option<ChannelName>,
    emotion: Option<bool>,
    speed: Option<bool>,
}

#[derive(ToSchema)]
#[allow(dead_code, clippy::enum_variant_names)]
pub enum ChannelName {
    #[schema(rename = "MONO")]
    Mono,
    #[schema(rename = "LEFT_AGENT")]
    LeftAgent,
    #[schema(rename = "RIGHT_AGENT")]
    RightAgent,
}

/// `auto` and the raw formats.
fn job_audio_format_schema() -> ObjectBuilder {
    let raw = AudioFormat::ALL
        .into_iter()
        .filter(|f| f.raw().is_some())
        .map(AudioFormat::as_str);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(std::iter::once("auto").chain(raw)))
}

/// `{"job_id"}`, the create response.
#[derive(Serialize, ToSchema)]
pub struct JobCreated<'a> {
    pub job_id: &'a str,
}

/// The job as GET reports it ([`job_body`]: `start_time`, `finish_time`
/// and the result or error fields once it is FINISHED or ERROR).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobStatus {
    #[schema(inline)]
    status: JobState,
    /// RFC 3339, UTC.
    create_time: String,
    start_time: Option<String>,
    finish_time: Option<String>,
    /// FINISHED: the audio's duration in ms.
    audio_duration: Option<u64>,
    /// FINISHED: the recognised sentences.
    segments: Option<Vec<Seg<'static>>>,
    /// ERROR.
    error_code: Option<String>,
    error_msg: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum JobState {
    Waiting,
    Finished,
    Error,
}

/// How the job's audio is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Detected from the content (WAV, MP3, M4A/AAC, OGG, FLAC, AMR...).
    Auto,
    /// A raw SIS format (PCM, A-law, mu-law at 8 or 16 kHz).
    Raw(AudioFormat),
}

/// Which channel of a stereo file is the agent (`need_analysis_info.channel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentChannel {
    Mono,
    Left,
    Right,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnalysisRequest {
    pub diarization: bool,
    pub channel: AgentChannel,
    pub emotion: bool,
    pub speed: bool,
}

/// A validated create request.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriberRequest {
    pub data_url: String,
    pub format: FileFormat,
    pub property: Property,
    pub options: RecognitionOptions,
    pub callback_url: Option<String>,
    pub analysis: Option<AnalysisRequest>,
}

fn bool_field(obj: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(format!(
            "'config.need_analysis_info.{name}' must be true or false"
        ))),
    }
}

fn parse_analysis(v: &Value) -> Result<AnalysisRequest, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("'config.need_analysis_info' must be an object"))?;
    let channel = match obj.get("channel") {
        None | Some(Value::Null) => AgentChannel::Mono,
        Some(v) => match string(v, "config.need_analysis_info.channel")? {
            "MONO" => AgentChannel::Mono,
            "LEFT_AGENT" => AgentChannel::Left,
            "RIGHT_AGENT" => AgentChannel::Right,
            other => {
                return Err(ApiError::invalid(format!(
                    "'channel' is invalid: '{other}', expected MONO, LEFT_AGENT or RIGHT_AGENT"
                )))
            }
        },
    };
    Ok(AnalysisRequest {
        diarization: bool_field(obj, "diarization", true)?,
        channel,
        emotion: bool_field(obj, "emotion", true)?,
        speed: bool_field(obj, "speed", true)?,
    })
}

/// The URL's form: `http(s)://`, or for a data URL also `file://` (whether
/// a file may be read is the fetcher's policy, decided where it is read),
/// under [`MAX_URL_BYTES`], without whitespace.
/// `data_url` (`is_data`) may also be a `file://` URL (when the operator
/// allows a directory) or an `upload://ID` (sisd's uploads).
fn check_url(url: &str, what: &str, is_data: bool) -> Result<(), ApiError> {
    let ok_scheme = url.starts_with("http://")
        || url.starts_with("https://")
        || (is_data && (url.starts_with("file://") || url.starts_with("upload://")));
    if !ok_scheme || url.len() >= MAX_URL_BYTES || url.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(format!("{what} is invalid or too long")));
    }
    Ok(())
}

/// Parses and validates a create request body (everything but the network
/// rules for the URLs, which belong to the fetcher).
pub fn parse_create(body: &[u8]) -> Result<TranscriberRequest, ApiError> {
    let value = json_body(body)?;
    let obj = body_object(&value)?;
    let data_url = match obj.get("data_url") {
        None | Some(Value::Null) => return Err(ApiError::invalid("data url is empty")),
        Some(v) => string(v, "data_url")?,
    };
    if data_url.is_empty() {
        return Err(ApiError::invalid("data url is empty"));
    }
    check_url(data_url, "data_url", true)?;
    let cfg = config_object(obj)?;
    let format_s = string(
        field(cfg, "audio_format", "config.audio_format")?,
        "config.audio_format",
    )?;
    let format = match format_s {
        "auto" => FileFormat::Auto,
        s => match AudioFormat::parse(s) {
            Some(f) if f.raw().is_some() => FileFormat::Raw(f),
            _ if matches!(s, "vox8k4bit" | "v3_8k4bit") => {
                return Err(ApiError::new(
                    SisCode::Unsupported,
                    format!("'audio_format' {s} is not supported by this server"),
                ))
            }
            _ => return Err(ApiError::invalid("'audio_format' is invalid")),
        },
    };
    let property = parse_property(cfg)?;
    let options = parse_options(cfg)?;
    if let FileFormat::Raw(f) = format {
        check_declared_rate(f, &property)?;
    }
    let callback_url = match cfg.get("callback_url") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let u = string(v, "config.callback_url")?;
            if u.is_empty() {
                None
            } else {
                check_url(u, "callback_url", false)?;
                Some(u.to_string())
            }
        }
    };
    let analysis = match cfg.get("need_analysis_info") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_analysis(v)?),
    };
    Ok(TranscriberRequest {
        data_url: data_url.to_string(),
        format,
        property,
        options,
        callback_url,
        analysis,
    })
}

/// `{"job_id": ...}`, the create response.
pub fn create_response(job_id: &str) -> String {
    serde_json::to_string(&JobCreated { job_id }).unwrap_or_default()
}

/// The answer to `POST /v1/{project_id}/asr/transcriber/uploads` (a sisd
/// extension): what a job names as `data_url`, the stored size and when
/// the upload is deleted.
pub fn upload_response(upload_id: &str, data_url: &str, size: u64, expires_ms: i64) -> String {
    serde_json::to_string(&Uploaded {
        upload_id,
        data_url,
        size,
        expire_time: sis_core::time::rfc3339_utc(expires_ms, 3),
    })
    .unwrap_or_default()
}

/// The answer to an upload ([`upload_response`]).
#[derive(Serialize, ToSchema)]
pub struct Uploaded<'a> {
    /// 32 lowercase hex digits.
    pub upload_id: &'a str,
    /// What a job names as `data_url`: `upload://{upload_id}`.
    pub data_url: &'a str,
    /// Bytes stored.
    pub size: u64,
    /// When the upload is deleted (RFC 3339, UTC), unless deleted before.
    pub expire_time: String,
}

/// One recognised sentence of a job, with its analysis.
#[derive(Clone, Debug, Default)]
pub struct FileSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub transcript: Transcript,
    pub role: Option<&'static str>,
    pub emotion: Option<&'static str>,
    pub speed: Option<f64>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SegmentAnalysis)]
pub struct Analysis {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emotion: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f64>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SegmentResult)]
pub struct SegResult<'a> {
    text: &'a str,
    /// left out when the pack's decoder reports no probabilities
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_info: Option<Analysis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    word_info: Option<Vec<crate::short_audio::WordInfo<'a>>>,
}

/// One sentence of a job (times in ms).
#[derive(Serialize, ToSchema)]
#[schema(as = JobSegment)]
pub struct Seg<'a> {
    start_time: u64,
    end_time: u64,
    result: SegResult<'a>,
}

/// The result part of a finished job: `audio_duration` and `segments`, as a
/// JSON object (stored with the job, merged into GET and callback bodies).
pub fn result_document(
    audio_duration_ms: u64,
    segments: &[FileSegment],
    need_word_info: bool,
) -> Value {
    let segs: Vec<Seg> = segments
        .iter()
        .map(|s| {
            let analysis = (s.role.is_some() || s.emotion.is_some() || s.speed.is_some())
                .then_some(Analysis {
                    role: s.role,
                    emotion: s.emotion,
                    speed: s.speed,
                });
            Seg {
                start_time: s.start_ms,
                end_time: s.end_ms,
                result: SegResult {
                    text: &s.transcript.text,
                    score: s.transcript.score,
                    analysis_info: analysis,
                    word_info: crate::short_audio::word_info(&s.transcript, need_word_info),
                },
            }
        })
        .collect();
    serde_json::json!({ "audio_duration": audio_duration_ms, "segments": segs })
}

/// The error part of a failed job.
pub fn error_document(e: &ApiError) -> Value {
    serde_json::json!({ "error_code": e.code.as_str(), "error_msg": e.message })
}

/// Job state as GET and the callback report it.
pub struct JobView<'a> {
    pub status: &'a str,
    pub create_ms: i64,
    pub start_ms: Option<i64>,
    pub finish_ms: Option<i64>,
    /// `result_document` (FINISHED) or `error_document` (ERROR), as stored.
    pub document: Option<&'a str>,
}

fn time(ms: i64) -> Value {
    Value::String(sis_core::time::rfc3339_utc(ms, 3))
}

/// The GET response body; the callback body is the same plus `job_id`.
/// Internal states other than FINISHED and ERROR are reported as WAITING, the
/// only other status SIS documents.
pub fn job_body(view: &JobView<'_>, job_id_for_callback: Option<&str>) -> String {
    let status = match view.status {
        "FINISHED" | "ERROR" => view.status,
        _ => "WAITING",
    };
    let mut out = Map::new();
    if let Some(id) = job_id_for_callback {
        out.insert("job_id".into(), Value::String(id.to_string()));
    }
    out.insert("status".into(), Value::String(status.to_string()));
    out.insert("create_time".into(), time(view.create_ms));
    if status != "WAITING" {
        if let Some(t) = view.start_ms {
            out.insert("start_time".into(), time(t));
        }
        if let Some(t) = view.finish_ms {
            out.insert("finish_time".into(), time(t));
        }
        if let Some(Ok(Value::Object(doc))) = view.document.map(serde_json::from_str::<Value>) {
            out.extend(doc);
        }
    }
    Value::Object(out).to_string()
}

/// The not-found answer (unknown, another project's, or expired job).
pub fn not_found() -> ApiError {
    ApiError::invalid("task id is not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn create_defaults_and_fields() {
        let r = parse_create(&body(serde_json::json!({
            "data_url": "https://files.example.com/a.wav",
            "config": {"audio_format": "auto", "property": "chinese_8k_common"}
        })))
        .expect("valid");
        assert_eq!(r.format, FileFormat::Auto);
        assert!(r.options.digit_norm && !r.options.add_punc && r.analysis.is_none());
        // a local file is a data URL's form (the server's policy decides)
        let local = parse_create(&body(serde_json::json!({
            "data_url": "file:///srv/jobs/a.wav",
            "config": {"audio_format": "auto", "property": "chinese_8k_common"}
        })))
        .expect("valid");
        assert_eq!(local.data_url, "file:///srv/jobs/a.wav");
        let r = parse_create(&body(serde_json::json!({
            "data_url": "http://h/a",
            "config": {"audio_format": "alaw8k8bit", "property": "chinese_8k_common",
                       "callback_url": "https://cb.example.com/x",
                       "need_analysis_info": {"channel": "LEFT_AGENT", "emotion": false}}
        })))
        .expect("valid");
        assert_eq!(r.callback_url.as_deref(), Some("https://cb.example.com/x"));
        assert_eq!(
            r.analysis,
            Some(AnalysisRequest {
                diarization: true,
                channel: AgentChannel::Left,
                emotion: false,
                speed: true
            })
        );
    }

    #[test]
    fn create_errors() {
        let cases = [
            (
                serde_json::json!({"config": {}}),
                "SIS.0032",
                "data url is empty",
            ),
            (
                serde_json::json!({"data_url": "", "config": {}}),
                "SIS.0032",
                "data url is empty",
            ),
            (
                serde_json::json!({"data_url": "ftp://h/a", "config": {}}),
                "SIS.0032",
                "data_url is invalid or too long",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "auto", "property": "chinese_8k_common", "callback_url": "file:///srv/cb"}}),
                "SIS.0032",
                "callback_url is invalid or too long",
            ),
            (
                serde_json::json!({"data_url": "http://h/a"}),
                "SIS.0012",
                "'config' is required",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "mp3", "property": "chinese_8k_common"}}),
                "SIS.0032",
                "'audio_format' is invalid",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "vox8k4bit", "property": "chinese_8k_common"}}),
                "SIS.0031",
                "'audio_format' vox8k4bit is not supported by this server",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "pcm16k16bit", "property": "chinese_8k_common"}}),
                "SIS.0301",
                "",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "auto", "property": "chinese_8k_common", "callback_url": "x"}}),
                "SIS.0032",
                "callback_url is invalid or too long",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "auto", "property": "chinese_8k_common", "need_analysis_info": {"channel": "BOTH"}}}),
                "SIS.0032",
                "'channel' is invalid: 'BOTH', expected MONO, LEFT_AGENT or RIGHT_AGENT",
            ),
            (
                serde_json::json!({"data_url": "http://h/a", "config": {"audio_format": "auto", "property": "chinese_8k_common", "need_analysis_info": {"speed": "yes"}}}),
                "SIS.0032",
                "'config.need_analysis_info.speed' must be true or false",
            ),
        ];
        for (v, code, msg) in cases {
            let e = parse_create(&body(v.clone())).expect_err("invalid");
            assert_eq!(e.code.as_str(), code, "{v}");
            if !msg.is_empty() {
                assert_eq!(e.message, msg, "{v}");
            }
        }
        let long = format!("http://h/{}", "a".repeat(MAX_URL_BYTES));
        let e = parse_create(&body(serde_json::json!({"data_url": long, "config": {}})))
            .expect_err("long");
        assert_eq!(e.message, "data_url is invalid or too long");
    }

    #[test]
    fn job_bodies() {
        let t = Transcript {
            text: "一二".into(),
            score: Some(0.8),
            words: vec![sis_core::WordTiming {
                word: "一".into(),
                start_ms: 10,
                end_ms: 20,
            }],
        };
        let doc = result_document(
            5000,
            &[FileSegment {
                start_ms: 0,
                end_ms: 900,
                transcript: t,
                role: Some("AGENT"),
                emotion: None,
                speed: Some(2.5),
            }],
            true,
        )
        .to_string();
        let view = JobView {
            status: "FINISHED",
            create_ms: 1_000,
            start_ms: Some(2_000),
            finish_ms: Some(3_500),
            document: Some(&doc),
        };
        let v: Value = serde_json::from_str(&job_body(&view, None)).expect("json");
        assert_eq!(v["status"], "FINISHED");
        assert_eq!(v["create_time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["finish_time"], "1970-01-01T00:00:03.500Z");
        assert_eq!(v["audio_duration"], 5000);
        assert_eq!(
            v["segments"][0]["result"]["analysis_info"],
            serde_json::json!({"role": "AGENT", "speed": 2.5})
        );
        assert_eq!(v["segments"][0]["result"]["word_info"][0]["word"], "一");
        assert!(v.get("job_id").is_none());
        let cb: Value = serde_json::from_str(&job_body(&view, Some("j1"))).expect("json");
        assert_eq!(cb["job_id"], "j1");
        let running = JobView {
            status: "RUNNING",
            create_ms: 1,
            start_ms: Some(2),
            finish_ms: None,
            document: None,
        };
        let v: Value = serde_json::from_str(&job_body(&running, None)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"status": "WAITING", "create_time": "1970-01-01T00:00:00.001Z"})
        );
    }
}
