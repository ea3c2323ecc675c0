//! `wss /v1/{project_id}/rtts` (SIS-API.md §9.1): real-time speech
//! synthesis, one synthesis per connection. The client sends START (the
//! text and config of `/tts`, parsed by `sis-protocol`'s
//! `tts::parse_rtts_start`); the server answers START, then the audio as
//! binary messages (headerless 16-bit PCM, [`CHUNK_MS`] each) sentence by
//! sentence as `sis_engine::tts::Synthesis` gives them, then END, and
//! closes. The audio one after the other is exactly the `pcm` answer of
//! `/tts` for the same text and config.
//!
//! Errors are ERROR / FATAL_ERROR messages (the shapes of RASR, §6.6), each
//! followed by a close: a START refused (its parser's or the synthesizer's
//! SIS code) or a binary message before it gets ERROR; anything sent during
//! synthesis gets ERROR and END(ERROR), the synthesis stopped; a synthesis
//! that fails gets ERROR (SIS.0401) and END(ERROR); no START within the
//! idle limit, the connection's lifetime or the server's stop get
//! FATAL_ERROR. A client that goes away stops the synthesis: its espeak-ng
//! processes are killed. One log line per connection.

use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, State};
use sis_core::tts::SynthesisRequest;
use sis_engine::tts::{Synthesis, TtsError};
use sis_protocol::rasr::{self as messages, EndReason};
use sis_protocol::tts;

use crate::errors::{
    self, event_at, rasr as realtime, rtts as refuse, HandlerResult, MessageError,
};
use crate::state::{AppState, Principal, RequestId};
use crate::ws::{self, close, Ending, Inbound, Socket};

/// Audio per binary message, in milliseconds (1600 bytes at 8 kHz, 3200 at
/// 16 kHz; a sentence's last message is shorter).
pub const CHUNK_MS: usize = 100;

/// `GET /v1/{project_id}/rtts`: the upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    id: Option<Extension<RequestId>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HandlerResult {
    let open = state.rtts_connections.clone();
    let project = caller.project_id.clone();
    let request_id = id.map(|Extension(RequestId(id))| id).unwrap_or_default();
    ws::accept(upgrade, &caller, ws::RTTS, &open, move |socket| {
        Connection::new(state, project, request_id, socket).run()
    })
}

/// What the connection's one line reports.
struct Record {
    project: String,
    /// The upgrade request's id (`X-Request-Id`).
    request_id: String,
    /// Every message of the connection carries it.
    trace_id: String,
    opened: Instant,
    /// When the START was accepted.
    started: Option<Instant>,
    /// Of the START accepted.
    property: Option<String>,
    sample_rate: Option<u32>,
    text_chars: Option<usize>,
    /// From START to the first audio message.
    first_audio_ms: Option<u64>,
    /// Samples sent.
    samples: u64,
}

enum Flow {
    Continue,
    /// The connection is over (closed, or the client gone), and how.
    End(Ending),
}

struct Connection {
    state: AppState,
    socket: Socket,
    record: Record,
    /// The synthesis under way, once START is accepted.
    synthesis: Option<Synthesis>,
    /// Whether a START was accepted (the synthesis may be over).
    started: bool,
}

impl Connection {
    fn new(state: AppState, project: String, request_id: String, socket: Socket) -> Connection {
        Connection {
            state,
            socket,
            record: Record {
                project,
                request_id,
                trace_id: uuid::Uuid::new_v4().to_string(),
                opened: Instant::now(),
                started: None,
                property: None,
                sample_rate: None,
                text_chars: None,
                first_audio_ms: None,
                samples: 0,
            },
            synthesis: None,
            started: false,
        }
    }

    async fn run(mut self) {
        let lifetime = self.socket.limits().lifetime;
        let deadline = tokio::time::Instant::now() + lifetime;
        let mut stop = self.state.shutdown.subscribe();
        // set when the server is stopping: a synthesis under way may finish until then
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        let ending = loop {
            if stop_deadline.is_some() && !self.started {
                self.socket
                    .close_handshake(close::GOING_AWAY, "the server is shutting down")
                    .await;
                break Ending::new("shutdown");
            }
            // before START the idle limit; after it the client has nothing to send
            let wait = if self.started {
                lifetime
            } else {
                self.socket.limits().idle
            };
            let flow = tokio::select! {
                msg = self.socket.recv_within(wait) => self.on_message(msg).await,
                part = next_part(&mut self.synthesis) => self.on_part(part).await,
                _ = tokio::time::sleep_until(deadline) => {
                    let minutes = lifetime.as_secs() / 60;
                    self.fatal(refuse::connection_too_long(minutes).into(), "too_long").await
                }
                d = crate::shutdown::wait(&mut stop), if stop_deadline.is_none() => {
                    stop_deadline = Some(d);
                    Flow::Continue
                }
                _ = tokio::time::sleep_until(stop_deadline.unwrap_or(deadline)), if stop_deadline.is_some() => {
                    self.fatal(realtime::shutting_down().into(), "shutdown").await
                }
            };
            if let Flow::End(ending) = flow {
                break ending;
            }
        };
        // dropping the synthesis aborts what is left of it and kills its
        // espeak-ng processes
        self.synthesis = None;
        self.log(ending);
    }

    /// The connection's one line: at error level when a server fault ended
    /// it, else info. Never the text or audio.
    fn log(&self, end: Ending) {
        let e = end.error.as_ref();
        let level = if e.is_some_and(|e| e.server_fault) {
            tracing::Level::ERROR
        } else {
            tracing::Level::INFO
        };
        let r = &self.record;
        let duration_ms = millis(r.opened.elapsed());
        let audio_s = r
            .sample_rate
            .map(|rate| errors::seconds(r.samples as f64 / f64::from(rate)));
        event_at!(
            level,
            api = "rtts",
            project = r.project.as_str(),
            property = r.property.as_deref(),
            sample_rate = r.sample_rate,
            text_chars = r.text_chars,
            audio_s,
            first_audio_ms = r.first_audio_ms,
            end = end.how,
            code = e.map(|e| e.shown.code.as_str()),
            msg = e.map(|e| e.shown.message.as_str()),
            detail = e.and_then(|e| e.detail.as_deref()),
            duration_ms,
            trace_id = r.trace_id.as_str(),
            request_id = r.request_id.as_str(),
            "real-time synthesis"
        );
    }

    /// FATAL_ERROR, then the close handshake.
    async fn fatal(&mut self, e: MessageError, how: &'static str) -> Flow {
        let sent = self
            .socket
            .send_text(messages::error_response(
                &self.record.trace_id,
                &e.shown,
                true,
            ))
            .await;
        if sent {
            self.socket.close_handshake(close::NORMAL, "").await;
        }
        Flow::End(Ending::error(how, e))
    }

    /// ERROR (and END(ERROR) once a synthesis was started), then the close
    /// handshake.
    async fn error(&mut self, e: MessageError, how: &'static str) -> Flow {
        self.synthesis = None;
        let trace = self.record.trace_id.clone();
        let mut sent = self
            .socket
            .send_text(messages::error_response(&trace, &e.shown, false))
            .await;
        if sent && self.started {
            sent = self
                .socket
                .send_text(messages::end_response(&trace, EndReason::Error))
                .await;
        }
        if sent {
            self.socket.close_handshake(close::NORMAL, "").await;
        }
        Flow::End(Ending::error(how, e))
    }

    async fn on_message(&mut self, m: Inbound) -> Flow {
        match m {
            Inbound::Text(_) | Inbound::Binary(_) if self.started => {
                self.error(refuse::message_during_synthesis().into(), "error")
                    .await
            }
            Inbound::Text(t) => match tts::parse_rtts_start(t.as_str()) {
                Ok(req) => self.start(req).await,
                Err(e) => self.error(e.into(), "refused").await,
            },
            Inbound::Binary(_) => {
                self.error(refuse::binary_before_start().into(), "refused")
                    .await
            }
            Inbound::Closed => gone(),
            Inbound::Idle => self.fatal(realtime::idle().into(), "idle_timeout").await,
            // a client that pings but does not read is dropped
            Inbound::Ping => {
                if self.socket.flush().await {
                    Flow::Continue
                } else {
                    gone()
                }
            }
            Inbound::Pong => Flow::Continue,
        }
    }

    async fn start(&mut self, req: SynthesisRequest) -> Flow {
        self.record.property = Some(crate::state::clip(&req.voice));
        self.record.sample_rate = Some(req.sample_rate);
        self.record.text_chars = Some(req.text_chars());
        let synthesis = match self.state.tts.open(&req) {
            Ok(s) => s,
            Err(e) => return self.error(errors::tts(e).into_message(), "refused").await,
        };
        self.synthesis = Some(synthesis);
        self.started = true;
        self.record.started = Some(Instant::now());
        let start = messages::start_response(&self.record.trace_id);
        if self.socket.send_text(start).await {
            Flow::Continue
        } else {
            gone()
        }
    }

    async fn on_part(&mut self, part: Option<Result<Vec<i16>, TtsError>>) -> Flow {
        match part {
            Some(Ok(samples)) => {
                let rate = self.record.sample_rate.unwrap_or(8000) as usize;
                let chunk_bytes = (rate * CHUNK_MS / 1000 * 2).max(2);
                let bytes = sis_audio::encode_pcm16(&samples);
                for chunk in bytes.chunks(chunk_bytes) {
                    if !self.socket.send_binary(chunk.to_vec()).await {
                        return gone();
                    }
                    if self.record.first_audio_ms.is_none() {
                        self.record.first_audio_ms =
                            self.record.started.map(|t| millis(t.elapsed()));
                    }
                    self.record.samples += (chunk.len() / 2) as u64;
                }
                Flow::Continue
            }
            Some(Err(e)) => self.error(errors::tts(e).into_message(), "error").await,
            None => {
                self.synthesis = None;
                let end = messages::end_response(&self.record.trace_id, EndReason::Normal);
                if !self.socket.send_text(end).await {
                    return gone();
                }
                self.socket.close_handshake(close::NORMAL, "").await;
                Flow::End(Ending::new("end"))
            }
        }
    }
}

/// The client closed the connection, or stopped reading.
fn gone() -> Flow {
    Flow::End(Ending::new("client_gone"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The next part of the synthesis under way; never, when there is none.
async fn next_part(synthesis: &mut Option<Synthesis>) -> Option<Result<Vec<i16>, TtsError>> {
    match synthesis {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
