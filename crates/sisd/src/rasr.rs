//! The RASR WebSocket endpoints (`/v1/{project_id}/rasr/{mode}`, SIS-API.md
//! §6). One async task per connection speaks the protocol; recognition runs
//! on the engine's stream workers (`sis_engine::stream`), never here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use sis_engine::stream::{Segmentation, StreamEvent, StreamParams};
use sis_pool::StreamHandle;
use sis_protocol::rasr::{self, Command, EndReason, Mode, StartConfig};
use sis_protocol::{ApiError, SisCode};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::errors::{from_engine, ErrorResponse};
use crate::server::{AppState, RequestId};

/// No data from the client for this long ends the connection (SIS.0304).
const IDLE_LIMIT: Duration = Duration::from_secs(20);
/// A client that does not take a message for this long (it stopped reading
/// and the socket buffers are full) is dropped, freeing its session.
const SEND_LIMIT: Duration = Duration::from_secs(20);
/// Audio a session may have waiting for its stream worker; beyond it the
/// connection stops reading its socket until the worker catches up.
const MAX_BACKLOG: Duration = Duration::from_secs(2);
/// Longest connection.
const CONNECTION_LIMIT: Duration = Duration::from_secs(5 * 3600);
/// Outgoing bytes a connection may have waiting for the client (pongs
/// included); the client has SEND_LIMIT to take them, or it is dropped.
const WRITE_BUFFER: usize = 16 * 1024;
const MAX_WRITE_BUFFER: usize = 128 * 1024;
/// After a close frame, how long the client has to answer with its own.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// Counts an open connection for as long as it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn count(n: &Arc<AtomicUsize>) -> OpenConnection {
        n.fetch_add(1, Ordering::SeqCst);
        OpenConnection(n.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub async fn upgrade(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path((_project_id, mode)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(mode) = Mode::from_path(&mode) else {
        return ErrorResponse {
            error: ApiError::new(
                SisCode::ApiNotFound,
                "The API does not exist or has not been published in the environment.",
            ),
            request_id: rid.0,
        }
        .into_response();
    };
    match ws {
        Ok(ws) => ws
            .max_message_size(1 << 20)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(MAX_WRITE_BUFFER)
            .on_upgrade(move |socket| async move {
                let _open = OpenConnection::count(&state.rasr_connections);
                Connection::new(state, mode, socket).run().await
            })
            .into_response(),
        Err(_) => ErrorResponse {
            error: ApiError::invalid("a WebSocket upgrade request is required"),
            request_id: rid.0,
        }
        .into_response(),
    }
}

struct Session {
    trace_id: String,
    cfg: StartConfig,
    handle: Option<StreamHandle>,
    events: UnboundedReceiver<StreamEvent>,
    received_bytes: u64,
    bytes_per_second: u64,
    sample_bytes: usize,
    /// Bytes of a sample whose rest is in the next frame.
    carry: Vec<u8>,
    exceeded: bool,
    /// END (no cancel) was sent to the engine; waiting for Finished.
    ending: bool,
}

struct Connection {
    state: AppState,
    mode: Mode,
    socket: WebSocket,
    session: Option<Session>,
    /// An error was reported for stray audio since the last START.
    stray_reported: bool,
}

enum Flow {
    Continue,
    Close,
}

impl Connection {
    fn new(state: AppState, mode: Mode, socket: WebSocket) -> Connection {
        Connection {
            state,
            mode,
            socket,
            session: None,
            stray_reported: false,
        }
    }

    async fn send(&mut self, text: String) -> bool {
        let sent = tokio::time::timeout(SEND_LIMIT, self.socket.send(Message::Text(text.into())));
        matches!(sent.await, Ok(Ok(())))
    }

    async fn run(mut self) {
        let deadline = tokio::time::Instant::now() + CONNECTION_LIMIT;
        let mut stop = self.state.shutdown.subscribe();
        // set when the server is stopping: the open session may finish until then
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        loop {
            if stop_deadline.is_some() && self.session.is_none() {
                // stopping, and no session open: say goodbye
                self.close(1001, "the server is shutting down").await;
                break;
            }
            let backlogged = self.backlogged();
            let flow = tokio::select! {
                // backpressure: while the worker is behind, stop reading
                _ = tokio::time::sleep(Duration::from_millis(5)), if backlogged => Flow::Continue,
                msg = tokio::time::timeout(IDLE_LIMIT, self.socket.recv()), if !backlogged => match msg {
                    Err(_) => {
                        self.fatal(ApiError::new(SisCode::AudioTimeout, "wait voice timeout")).await;
                        Flow::Close
                    }
                    Ok(None) | Ok(Some(Err(_))) => Flow::Close,
                    Ok(Some(Ok(m))) => self.on_message(m).await,
                },
                ev = next_event(&mut self.session) => self.on_event(ev).await,
                _ = tokio::time::sleep_until(deadline) => {
                    self.fatal(ApiError::new(SisCode::AudioTooLong, "the connection reached its 5-hour limit")).await;
                    Flow::Close
                }
                d = crate::shutdown::wait(&mut stop), if stop_deadline.is_none() => {
                    stop_deadline = Some(d);
                    Flow::Continue
                }
                _ = tokio::time::sleep_until(stop_deadline.unwrap_or(deadline)), if stop_deadline.is_some() => {
                    self.fatal(ApiError::new(SisCode::Internal, "service is shutting down")).await;
                    Flow::Close
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        // dropping the session's handle frees its engine resources
        self.session = None;
    }

    async fn fatal(&mut self, e: ApiError) {
        let trace = self
            .session
            .as_ref()
            .map(|s| s.trace_id.clone())
            .unwrap_or_else(new_trace);
        let _ = self.send(rasr::error_response(&trace, &e, true)).await;
        let close = self.socket.send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })));
        let _ = tokio::time::timeout(SEND_LIMIT, close).await;
    }

    /// A close frame, then the client's answer (briefly).
    async fn close(&mut self, code: u16, reason: &'static str) {
        let close = self.socket.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })));
        if !matches!(tokio::time::timeout(SEND_LIMIT, close).await, Ok(Ok(()))) {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_LIMIT, async {
            while let Some(Ok(m)) = self.socket.recv().await {
                if let Message::Close(_) = m {
                    break;
                }
            }
        })
        .await;
    }

    /// Sends what is waiting (the pong to a ping); false when the client
    /// does not take it within SEND_LIMIT.
    async fn flush(&mut self) -> bool {
        let flushed =
            tokio::time::timeout(SEND_LIMIT, futures_util::SinkExt::flush(&mut self.socket));
        matches!(flushed.await, Ok(Ok(())))
    }

    /// ERROR; if a session is open it ends with END(ERROR).
    async fn error(&mut self, e: ApiError) -> Flow {
        let trace = self
            .session
            .as_ref()
            .map(|s| s.trace_id.clone())
            .unwrap_or_else(new_trace);
        if !self.send(rasr::error_response(&trace, &e, false)).await {
            return Flow::Close;
        }
        if self.session.take().is_some()
            && !self
                .send(rasr::end_response(&trace, EndReason::Error))
                .await
        {
            return Flow::Close;
        }
        Flow::Continue
    }

    fn backlogged(&self) -> bool {
        self.session.as_ref().is_some_and(|s| {
            let limit =
                MAX_BACKLOG.as_secs() as usize * s.bytes_per_second as usize / s.sample_bytes;
            s.handle.as_ref().is_some_and(|h| h.backlog() > limit)
        })
    }

    async fn on_message(&mut self, m: Message) -> Flow {
        match m {
            Message::Text(t) => match rasr::parse_command(t.as_str()) {
                Err(e) => self.error(e).await,
                Ok(Command::Start(cfg)) => self.start(*cfg).await,
                Ok(Command::End { cancel }) => self.end(cancel).await,
            },
            Message::Binary(b) => self.audio(&b).await,
            Message::Close(_) => Flow::Close,
            // the WebSocket layer queues the pong (one at most, in a bounded
            // buffer); a client that pings but does not read is dropped
            Message::Ping(_) => {
                if self.flush().await {
                    Flow::Continue
                } else {
                    Flow::Close
                }
            }
            Message::Pong(_) => Flow::Continue,
        }
    }

    async fn start(&mut self, cfg: StartConfig) -> Flow {
        if self.session.is_some() {
            return self
                .error(ApiError::invalid(
                    "incorrect time sequence: START while a session is open",
                ))
                .await;
        }
        self.stray_reported = false;
        let engine = &self.state.engine;
        if !engine.serves_realtime(&cfg.property) {
            return self
                .error(ApiError::invalid(format!(
                    "'property' {} is not served by any model pack on this server",
                    cfg.property.name()
                )))
                .await;
        }
        let segmentation = match self.mode {
            Mode::ShortStream => Segmentation::Whole,
            Mode::ContinueStream => Segmentation::Continuous,
            Mode::SentenceStream => Segmentation::FirstSentence,
        };
        if segmentation != Segmentation::Whole && !engine.has_vad() {
            return self
                .error(ApiError::new(
                    SisCode::Unsupported,
                    "this mode needs a VAD pack, and none is installed",
                ))
                .await;
        }
        let (raw_enc, rate) = match cfg.format.raw() {
            Some(r) => r,
            None => {
                return self
                    .error(ApiError::invalid("'audio_format' is invalid"))
                    .await
            }
        };
        let bytes_per_sample = if raw_enc == sis_core::RawEncoding::Pcm16Le {
            2
        } else {
            1
        };
        let params = StreamParams {
            segmentation,
            options: cfg.options.clone(),
            interim: cfg.interim_results,
            vad_head_ms: cfg.vad_head_ms,
            vad_tail_ms: cfg.vad_tail_ms,
            max_seconds: cfg.max_seconds,
            sample_rate: rate,
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = match engine.open_stream(&cfg.property, params, tx.into()) {
            Ok(h) => h,
            Err(e) => return self.error(from_engine(e)).await,
        };
        let trace_id = new_trace();
        self.session = Some(Session {
            trace_id: trace_id.clone(),
            cfg,
            handle: Some(handle),
            events: rx,
            received_bytes: 0,
            bytes_per_second: rate as u64 * bytes_per_sample,
            sample_bytes: bytes_per_sample as usize,
            carry: Vec::new(),
            exceeded: false,
            ending: false,
        });
        if self.send(rasr::start_response(&trace_id)).await {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    async fn end(&mut self, cancel: bool) -> Flow {
        let Some(s) = self.session.as_mut() else {
            return self
                .error(ApiError::invalid(
                    "incorrect time sequence: END without START",
                ))
                .await;
        };
        if s.ending {
            return Flow::Continue;
        }
        if cancel {
            let trace = s.trace_id.clone();
            self.session = None;
            return if self
                .send(rasr::end_response(&trace, EndReason::Cancel))
                .await
            {
                Flow::Continue
            } else {
                Flow::Close
            };
        }
        s.ending = true;
        if let Some(h) = &s.handle {
            h.end(false);
        }
        Flow::Continue
    }

    async fn audio(&mut self, bytes: &[u8]) -> Flow {
        let mode = self.mode;
        let Some(s) = self.session.as_mut() else {
            if self.stray_reported {
                return Flow::Continue;
            }
            self.stray_reported = true;
            return self
                .error(ApiError::invalid(
                    "audio received before START; it is ignored until the next START",
                ))
                .await;
        };
        if s.ending || s.exceeded {
            return Flow::Continue;
        }
        // Frames shorter than the documented minimum are accepted (the SIS
        // SDK slices a file into fixed pieces, so its last one is usually
        // shorter); the maximum stays enforced.
        let (_, hi) = rasr::frame_bounds(s.cfg.format);
        if bytes.len() > hi {
            let e = rasr::frame_size_error(bytes.len(), s.cfg.format);
            return self.error(e).await;
        }
        let limit = mode.max_audio_ms() * s.bytes_per_second / 1000;
        let take = (limit.saturating_sub(s.received_bytes) as usize).min(bytes.len());
        // a sample split between two frames is joined (a copy only then)
        let joined;
        let data: &[u8] = if s.carry.is_empty() {
            &bytes[..take]
        } else {
            joined = [std::mem::take(&mut s.carry).as_slice(), &bytes[..take]].concat();
            &joined
        };
        let whole = data.len() - data.len() % s.sample_bytes;
        s.carry = data[whole..].to_vec();
        let data = &data[..whole];
        let pcm = if data.is_empty() {
            sis_core::Pcm {
                samples: vec![],
                sample_rate: 0,
            }
        } else {
            match sis_audio::decode(
                s.cfg.format,
                data,
                sis_audio::DecodeLimits { max_ms: u64::MAX },
            ) {
                Ok(p) => p,
                Err(e) => {
                    return self
                        .error(ApiError::invalid(format!("audio data invalid: {e}")))
                        .await
                }
            }
        };
        s.received_bytes += bytes.len() as u64;
        if let Some(h) = &s.handle {
            if !pcm.samples.is_empty() {
                h.audio(pcm.samples);
            }
        }
        if s.received_bytes > limit {
            s.exceeded = true;
            let trace = s.trace_id.clone();
            let ms = mode.max_audio_ms();
            return if self
                .send(rasr::event_response(&trace, "EXCEEDED_AUDIO", ms))
                .await
            {
                Flow::Continue
            } else {
                Flow::Close
            };
        }
        Flow::Continue
    }

    async fn on_event(&mut self, ev: Option<StreamEvent>) -> Flow {
        let Some(s) = self.session.as_mut() else {
            return Flow::Continue;
        };
        let trace = s.trace_id.clone();
        let text = match ev {
            None => {
                // the engine side went away
                return self
                    .error(ApiError::new(
                        SisCode::RecognitionFailed,
                        "recognition failed",
                    ))
                    .await;
            }
            Some(StreamEvent::VoiceStart { ms }) => rasr::event_response(&trace, "VOICE_START", ms),
            Some(StreamEvent::VoiceEnd { ms }) => rasr::event_response(&trace, "VOICE_END", ms),
            Some(StreamEvent::ExceededSilence { ms }) => {
                rasr::event_response(&trace, "EXCEEDED_SILENCE", ms)
            }
            Some(StreamEvent::Result {
                start_ms,
                end_ms,
                is_final,
                transcript,
            }) => rasr::result_response(
                &trace,
                start_ms,
                end_ms,
                is_final,
                &transcript,
                s.cfg.options.need_word_info,
            ),
            Some(StreamEvent::Finished) => {
                self.session = None;
                rasr::end_response(&trace, EndReason::Normal)
            }
            Some(StreamEvent::Failed(m)) => {
                // the session's engine state is gone (its engine worker
                // died): FATAL_ERROR, then a close handshake that reads
                // what the client still sends (closing on unread audio
                // would reset the connection before it reads either)
                tracing::error!(error = %m, "real-time session failed");
                let e = ApiError::new(
                    SisCode::RecognitionFailed,
                    "recognition failed: the recognition engine stopped; start a new session",
                );
                if self.send(rasr::error_response(&trace, &e, true)).await {
                    let close = self.socket.send(Message::Close(Some(CloseFrame {
                        code: 1011,
                        reason: "recognition engine stopped".into(),
                    })));
                    if matches!(tokio::time::timeout(SEND_LIMIT, close).await, Ok(Ok(()))) {
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            while let Some(Ok(m)) = self.socket.recv().await {
                                if let Message::Close(_) = m {
                                    break;
                                }
                            }
                        })
                        .await;
                    }
                }
                return Flow::Close;
            }
        };
        if self.send(text).await {
            Flow::Continue
        } else {
            Flow::Close
        }
    }
}

async fn next_event(session: &mut Option<Session>) -> Option<StreamEvent> {
    match session {
        Some(s) => s.events.recv().await,
        None => std::future::pending().await,
    }
}

fn new_trace() -> String {
    uuid::Uuid::new_v4().to_string()
}
