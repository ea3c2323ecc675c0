//! A client for the SIS API as sisd (and Huawei Cloud SIS) serves it: AK/SK
//! signatures made by `sis-auth` (the code the server verifies with) or an
//! IAM token, the REST APIs as JSON values ([`Client::call`], with helpers
//! for short audio, TTS, jobs and sisd's uploads), and real-time
//! recognition ([`Client::rasr`]) and synthesis ([`Client::rtts`]) sessions
//! over WebSocket. Errors carry the SIS code, the message and the request
//! id. Used by the `sis` command-line client (`src/bin/sis.rs`); its tests
//! against a real sisd are in `tests/against_sisd.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// How requests are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    /// AK/SK signatures (`SDK-HMAC-SHA256`), as the Huawei SDKs sign.
    AkSk { ak: String, sk: String },
    /// An IAM token (`X-Auth-Token`).
    Token(String),
    /// Nothing (a server run with `--auth none`).
    None,
}

/// What went wrong, as a person should read it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error: its code and message.
    #[error("{code}: {message} (HTTP {status}{})", request_id.as_deref().map(|r| format!(", request {r}")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The service could not be reached or the connection broke.
    #[error("cannot reach {endpoint}: {why}")]
    Connect { endpoint: String, why: String },
    /// A local audio file that cannot be read.
    #[error("{0}")]
    Audio(String),
    /// An answer that is not what the API describes.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The SIS code, when the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A request's body.
enum Payload {
    None,
    Json(Vec<u8>),
    /// Bytes sent as `application/octet-stream`, and what to tell of the
    /// bytes sent so far.
    Binary(Vec<u8>, Box<dyn Fn(u64) + Send + Sync>),
}

const OCTET_STREAM: &str = "application/octet-stream";

/// How much of an upload goes out at once.
const PIECE: usize = 256 * 1024;

pub struct Client {
    endpoint: String,
    project_id: String,
    auth: Auth,
    http: reqwest::Client,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Client {
    /// `endpoint`: `http(s)://host[:port]`.
    pub fn new(endpoint: &str, project_id: &str, auth: Auth) -> Result<Client, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ClientError::Connect {
                endpoint,
                why: "the endpoint must start with http:// or https://".into(),
            });
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ClientError::Connect {
                endpoint: endpoint.clone(),
                why: e.to_string(),
            })?;
        Ok(Client {
            endpoint,
            project_id: project_id.to_string(),
            auth,
            http,
        })
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    fn host(&self) -> &str {
        let rest = self.endpoint.split_once("://").map_or("", |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    /// The headers that authenticate `method path?query` with `body`.
    fn auth_headers(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        content_type: Option<&'static str>,
    ) -> Result<HeaderMap, ClientError> {
        let mut h = HeaderMap::new();
        let bad = |e: http::header::InvalidHeaderValue| ClientError::Protocol(e.to_string());
        if let Some(ct) = content_type {
            h.insert("content-type", HeaderValue::from_static(ct));
        }
        match &self.auth {
            Auth::None => {}
            Auth::Token(t) => {
                h.insert("x-auth-token", HeaderValue::from_str(t).map_err(bad)?);
            }
            Auth::AkSk { ak, sk } => {
                h.insert("host", HeaderValue::from_str(self.host()).map_err(bad)?);
                h.insert(
                    "x-sdk-date",
                    HeaderValue::from_str(&sis_auth::sign::sdk_date(now_s())).map_err(bad)?,
                );
                // an upload is signed without its body, as the v3 SDK
                // signs octet-stream (the server then streams it)
                let unsigned = content_type == Some(OCTET_STREAM);
                let body_hash = if unsigned {
                    h.insert(
                        "x-sdk-content-sha256",
                        HeaderValue::from_static(sis_auth::sign::UNSIGNED_PAYLOAD),
                    );
                    sis_auth::sign::UNSIGNED_PAYLOAD.to_string()
                } else {
                    sis_auth::sign::body_sha256(body)
                };
                let req = sis_auth::sign::RequestParts {
                    method,
                    path,
                    query,
                    headers: &h,
                    body_hash: &body_hash,
                };
                let mut signed = vec!["host", "x-sdk-date"];
                if content_type.is_some() {
                    signed.push("content-type");
                }
                if unsigned {
                    signed.push("x-sdk-content-sha256");
                }
                let value = sis_auth::sign::authorization(ak, sk, &req, &signed)
                    .map_err(|e| ClientError::Protocol(format!("cannot sign: {e}")))?;
                h.insert("authorization", HeaderValue::from_str(&value).map_err(bad)?);
            }
        }
        Ok(h)
    }

    fn connect_error(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Connect {
            endpoint: self.endpoint.clone(),
            why: e.to_string(),
        }
    }

    /// Sends a request to `/v1/{project_id}/{tail}`; the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        tail: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let payload = match body {
            Some(b) => Payload::Json(b.to_string().into_bytes()),
            None => Payload::None,
        };
        self.send(method, tail, query, payload).await
    }

    /// Uploads a file's bytes for a job (`POST .../asr/transcriber/uploads`,
    /// a sisd extension); `progress` is told the bytes sent so far as the
    /// body goes out. The answer holds the `data_url` a job names.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Value, ClientError> {
        let payload = Payload::Binary(bytes, Box::new(progress));
        self.send("POST", "asr/transcriber/uploads", None, payload)
            .await
    }

    /// Creates a transcription job (`POST .../asr/transcriber/jobs`); its id.
    pub async fn create_job(&self, data_url: &str, config: Value) -> Result<String, ClientError> {
        let body = json!({ "data_url": data_url, "config": config });
        let r = self
            .call("POST", "asr/transcriber/jobs", None, Some(&body))
            .await?;
        r["job_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Protocol(format!("no job_id in {r}")))
    }

    /// A job's document (`GET .../asr/transcriber/jobs/{job_id}`).
    pub async fn job(&self, job_id: &str) -> Result<Value, ClientError> {
        self.call("GET", &format!("asr/transcriber/jobs/{job_id}"), None, None)
            .await
    }

    async fn send(
        &self,
        method: &str,
        tail: &str,
        query: Option<&str>,
        payload: Payload,
    ) -> Result<Value, ClientError> {
        let path = format!("/v1/{}/{}", self.project_id, tail.trim_start_matches('/'));
        let (bytes, content_type): (&[u8], _) = match &payload {
            Payload::None => (&[], None),
            Payload::Json(b) => (b, Some("application/json;charset=utf-8")),
            Payload::Binary(b, _) => (b, Some(OCTET_STREAM)),
        };
        let mut headers = self.auth_headers(method, &path, query, bytes, content_type)?;
        // reqwest sets Host itself, from the URL: the same value
        headers.remove("host");
        let url = match query {
            Some(q) => format!("{}{path}?{q}", self.endpoint),
            None => format!("{}{path}", self.endpoint),
        };
        let m = http::Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut req = self.http.request(m, url).headers(headers);
        match payload {
            Payload::None => {}
            Payload::Json(b) => req = req.body(b),
            Payload::Binary(b, progress) => {
                let len = b.len();
                let body = bytes::Bytes::from(b);
                // 256 kB pieces, each reported once it is handed to the connection
                let pieces = (0..len.div_ceil(PIECE)).map(move |i| {
                    let end = ((i + 1) * PIECE).min(len);
                    progress(end as u64);
                    Ok::<_, std::io::Error>(body.slice(i * PIECE..end))
                });
                req = req
                    .header("content-length", len)
                    .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                        pieces,
                    )));
            }
        }
        let resp = req.send().await.map_err(|e| self.connect_error(e))?;
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.map_err(|e| self.connect_error(e))?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|_| ClientError::Protocol(format!("HTTP {status}: {text:.200}")))?
        };
        if status >= 400 {
            let mut e = api_error(status, &value, &text);
            if let ClientError::Api { request_id: r, .. } = &mut e {
                *r = request_id.or(r.take());
            }
            return Err(e);
        }
        Ok(value)
    }

    /// Short audio (at most 60 s): `audio` in `audio_format` (e.g. `wav`,
    /// `pcm16k16bit`), `config` the request's other settings.
    pub async fn short_audio(
        &self,
        audio: &[u8],
        audio_format: &str,
        property: &str,
        config: Value,
    ) -> Result<Value, ClientError> {
        use base64::Engine as _;
        let mut cfg = json!({ "audio_format": audio_format, "property": property });
        if let (Some(c), Some(extra)) = (cfg.as_object_mut(), config.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        let body = json!({
            "config": cfg,
            "data": base64::engine::general_purpose::STANDARD.encode(audio),
        });
        self.call("POST", "asr/short-audio", None, Some(&body))
            .await
    }

    /// Speech synthesis (`/tts`): the audio file's bytes.
    pub async fn tts(&self, text: &str, config: Value) -> Result<Vec<u8>, ClientError> {
        use base64::Engine as _;
        let body = json!({ "text": text, "config": config });
        let r = self.call("POST", "tts", None, Some(&body)).await?;
        let data = r["result"]["data"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("no result.data in the answer".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| ClientError::Protocol(format!("result.data: {e}")))
    }

    /// Opens a real-time session (`mode`: `short-stream`,
    /// `sentence-stream`, `continue-stream`) and sends START with `config`.
    pub async fn rasr(&self, mode: &str, config: Value) -> Result<RasrSession, ClientError> {
        let ws = self.websocket(&format!("rasr/{mode}")).await?;
        let mut s = RasrSession { ws };
        s.send_json(&json!({ "command": "START", "config": config }))
            .await?;
        match s.next().await? {
            Some(m) if m["resp_type"] == "START" => Ok(s),
            Some(m) => Err(message_error(&m)),
            None => Err(ClientError::Protocol(
                "the session closed before START".into(),
            )),
        }
    }

    /// Real-time synthesis (`/rtts`) of `text` with `config` (`pcm` audio):
    /// a session whose [`RttsSession::next`] gives the audio as it comes.
    pub async fn rtts(&self, text: &str, config: Value) -> Result<RttsSession, ClientError> {
        let ws = self.websocket("rtts").await?;
        let mut s = RasrSession { ws };
        s.send_json(&json!({ "command": "START", "text": text, "config": config }))
            .await?;
        match s.next().await? {
            Some(m) if m["resp_type"] == "START" => Ok(RttsSession { ws: s.ws }),
            Some(m) => Err(message_error(&m)),
            None => Err(ClientError::Protocol(
                "the session closed before START".into(),
            )),
        }
    }

    /// The authenticated WebSocket upgrade request for
    /// `/v1/{project_id}/{tail}` (`ws://` or `wss://`), for callers that
    /// drive the socket themselves (the load generator).
    pub fn upgrade_request(&self, tail: &str) -> Result<http::Request<()>, ClientError> {
        let path = format!("/v1/{}/{tail}", self.project_id);
        let ws_url = format!(
            "{}{path}",
            self.endpoint
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        let mut req = ws_url
            .into_client_request()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut headers = self.auth_headers("GET", &path, None, b"", None)?;
        headers.remove("host");
        for (k, v) in headers.iter() {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }

    /// A WebSocket to `/v1/{project_id}/{tail}`, authenticated on the
    /// upgrade; a refused upgrade is the service's error.
    async fn websocket(&self, tail: &str) -> Result<Ws, ClientError> {
        let req = self.upgrade_request(tail)?;
        let (ws, _) = match tokio_tungstenite::connect_async(req).await {
            Ok(c) => c,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .unwrap_or(Value::Null);
                return Err(api_error(status, &body, "refused"));
            }
            Err(e) => return Err(self.connect_error(e)),
        };
        Ok(ws)
    }
}

/// What a real-time synthesis session gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Synthesised {
    /// 16-bit little-endian mono PCM, in order.
    Audio(Vec<u8>),
    /// The END message: the synthesis is complete.
    End,
}

/// A real-time synthesis session after START.
pub struct RttsSession {
    ws: Ws,
}

impl RttsSession {
    /// The next piece of audio, or [`Synthesised::End`]; an ERROR message
    /// as an error; `None` when the connection closed before END.
    pub async fn next(&mut self) -> Result<Option<Synthesised>, ClientError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Protocol(format!("the session broke: {e}")))
                }
                Some(Ok(Message::Binary(b))) => return Ok(Some(Synthesised::Audio(b.to_vec()))),
                Some(Ok(Message::Text(t))) => {
                    let m: Value = serde_json::from_str(t.as_str())
                        .map_err(|e| ClientError::Protocol(format!("not JSON: {e}")))?;
                    match m["resp_type"].as_str() {
                        Some("END") => return Ok(Some(Synthesised::End)),
                        Some("ERROR") | Some("FATAL_ERROR") => return Err(message_error(&m)),
                        _ => continue,
                    }
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The whole audio, until END.
    pub async fn collect(mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        loop {
            match self.next().await? {
                Some(Synthesised::Audio(a)) => out.extend_from_slice(&a),
                Some(Synthesised::End) => {
                    let _ = self.ws.close(None).await;
                    return Ok(out);
                }
                None => {
                    return Err(ClientError::Protocol(
                        "the session closed before its END".into(),
                    ))
                }
            }
        }
    }
}

/// The file as 16 kHz mono 16-bit PCM bytes.
pub fn pcm16k(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    let limits = sis_audio::stream::StreamLimits::default();
    let mut s = sis_audio::stream::open(path, sis_audio::stream::FileFormat::Auto, limits)
        .map_err(|e| ClientError::Audio(format!("{}: {e}", path.display())))?;
    let mut resampler = sis_audio::StreamResampler::new(s.sample_rate(), 16000);
    let mut out = Vec::new();
    while let Some(chunk) = s
        .next_chunk()
        .map_err(|e| ClientError::Audio(format!("{}: {e}", path.display())))?
    {
        resampler.push(&chunk.to_mono(), &mut out);
    }
    resampler.finish(&mut out);
    Ok(sis_audio::to_i16(&out)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect())
}

/// An IAM-style token (`POST /v3/auth/tokens`, password method) for
/// `user` of `domain`, scoped to `project_id`: what [`Auth::Token`] takes.
pub async fn password_token(
    endpoint: &str,
    domain: &str,
    user: &str,
    password: &str,
    project_id: &str,
) -> Result<String, ClientError> {
    let endpoint = endpoint.trim_end_matches('/');
    let connect = |e: reqwest::Error| ClientError::Connect {
        endpoint: endpoint.to_string(),
        why: e.to_string(),
    };
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"id": project_id}}}});
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/v3/auth/tokens"))
        .header("content-type", "application/json;charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .map_err(connect)?;
    let status = resp.status().as_u16();
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.map_err(connect)?;
    match token {
        Some(t) if status < 400 => Ok(t),
        _ => {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Err(api_error(status, &v, &text))
        }
    }
}

/// The error an answer's body describes: SIS's `error_code`/`error_msg`
/// (and `request_id`), or IAM's `error.code`/`error.message`; `fallback`
/// when it names no message.
fn api_error(status: u16, body: &Value, fallback: &str) -> ClientError {
    ClientError::Api {
        status,
        code: body["error_code"]
            .as_str()
            .or(body["error"]["code"].as_str())
            .unwrap_or("unknown")
            .to_string(),
        message: body["error_msg"]
            .as_str()
            .or(body["error"]["message"].as_str())
            .unwrap_or(fallback)
            .to_string(),
        request_id: body["request_id"].as_str().map(str::to_string),
    }
}

/// An ERROR or FATAL_ERROR message as an error.
pub fn message_error(m: &Value) -> ClientError {
    ClientError::Api {
        status: 0,
        code: m["error_code"].as_str().unwrap_or("unknown").to_string(),
        message: m["error_msg"].as_str().unwrap_or_default().to_string(),
        request_id: m["trace_id"].as_str().map(str::to_string),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A real-time session after START.
pub struct RasrSession {
    ws: Ws,
}

impl RasrSession {
    async fn send_json(&mut self, v: &Value) -> Result<(), ClientError> {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .map_err(|e| ClientError::Protocol(format!("the session broke: {e}")))
    }

    /// Audio in the START's format.
    pub async fn audio(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .await
            .map_err(|e| ClientError::Protocol(format!("the session broke: {e}")))
    }

    pub async fn end(&mut self) -> Result<(), ClientError> {
        self.send_json(&json!({ "command": "END" })).await
    }

    /// The next message (RESULT, EVENT, ERROR, END ...); `None` when the
    /// connection closed.
    pub async fn next(&mut self) -> Result<Option<Value>, ClientError> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Protocol(format!("the session broke: {e}")))
                }
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .map(Some)
                        .map_err(|e| ClientError::Protocol(format!("not JSON: {e}")))
                }
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Whether a message is waiting, without waiting for one.
    pub async fn try_next(&mut self) -> Result<Option<Value>, ClientError> {
        match tokio::time::timeout(std::time::Duration::from_millis(0), self.next()).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
