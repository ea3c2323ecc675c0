//! A client for the SIS API as sisd (and Huawei Cloud SIS) serves it: AK/SK
//! signatures made by `sis-auth` (the code the server verifies with) or an
//! IAM token, the REST APIs as JSON values, and real-time sessions over
//! WebSocket. Errors carry the SIS code, the message and the request id.
//! Used by the `sis` command-line client (`src/bin/sis.rs`).

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
            return Err(ClientError::Api {
                status,
                code: value["error_code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
                message: value["error_msg"]
                    .as_str()
                    .unwrap_or(text.as_str())
                    .to_string(),
                request_id,
            });
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
        let path = format!("/v1/{}/rasr/{mode}", self.project_id);
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
        let (ws, _) = match tokio_tungstenite::connect_async(req).await {
            Ok(c) => c,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .unwrap_or(Value::Null);
                return Err(ClientError::Api {
                    status,
                    code: body["error_code"].as_str().unwrap_or("unknown").to_string(),
                    message: body["error_msg"].as_str().unwrap_or("refused").to_string(),
                    request_id: body["request_id"].as_str().map(str::to_string),
                });
            }
            Err(e) => return Err(self.connect_error(e)),
        };
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
