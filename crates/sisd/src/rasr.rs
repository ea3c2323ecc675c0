//! The RASR WebSocket endpoints (`/v1/{project_id}/rasr/{mode}`, SIS-API.md
//! §6), and short audio over WebSocket (`/v1/{project_id}/asr/short-audio`,
//! §5: the same protocol; the audio of a session is kept until END and
//! recognised whole, as `POST .../asr/short-audio` recognises it, one final
//! RESULT). One async task per connection speaks the protocol; recognition
//! runs on the engine's stream workers (`sis_engine::stream`) or, for short
//! audio, its decode queue, never here.

use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Path, State};
use sis_engine::stream::{Segmentation, StreamEvent, StreamParams};
use sis_engine::EngineError;
use sis_pool::StreamHandle;
use sis_protocol::rasr::{self, Command, EndReason, Mode, StartConfig};
use sis_protocol::ApiError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::errors::{self, event_at, rasr as refuse, HandlerResult, MessageError};
use crate::state::{AppState, Principal, RequestId};
use crate::vocabularies;
use crate::ws::{self, close, Ending, Inbound, Socket};

/// Audio a session may have waiting for its stream worker; beyond it the
/// connection stops reading its socket until the worker catches up.
const MAX_BACKLOG: Duration = Duration::from_secs(2);

/// `GET /v1/{project_id}/rasr/{mode}`: the upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    id: Option<Extension<RequestId>>,
    Path((_project_id, mode)): Path<(String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HandlerResult {
    let mode = Mode::from_path(&mode).ok_or_else(errors::not_found)?;
    accept(state, caller, id, mode, upgrade).await
}

/// Upgrades to a connection of `mode`, its place in the project's
/// real-time sessions quota held for the connection's life.
async fn accept(
    state: AppState,
    caller: Principal,
    id: Option<Extension<RequestId>>,
    mode: Mode,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HandlerResult {
    // draining: refused before the upgrade (503), so a load balancer can
    // send the client to another node (deploy/nginx/sisd.conf does)
    if state.shutdown.begun() {
        return Err(errors::engine(EngineError::ShuttingDown));
    }
    let open = state.rasr_connections.clone();
    let who = Who {
        project: caller.project_id.clone(),
        request_id: id.map(|Extension(RequestId(id))| id).unwrap_or_default(),
    };
    let lease = state.quotas.session(&caller.project_id).await?;
    ws::accept(
        upgrade,
        &caller,
        ws::REALTIME,
        &open,
        move |socket| async move {
            let _lease = lease;
            Connection::new(state, mode, who, socket).run().await
        },
    )
}

/// `GET /v1/{project_id}/asr/short-audio`: the upgrade (the same path's
/// POST is the REST API).
pub async fn short_audio_upgrade(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    id: Option<Extension<RequestId>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HandlerResult {
    accept(state, caller, id, Mode::ShortAudio, upgrade).await
}

/// A short-audio session's audio, kept until END.
struct Whole {
    samples: Vec<f32>,
    rate: u32,
    /// Where its result goes (the session's event channel).
    events: UnboundedSender<StreamEvent>,
    /// An engine error other than a lost worker, sent before the
    /// `Failed` event it explains.
    refusal: tokio::sync::oneshot::Sender<EngineError>,
}

/// Whose connection it is, for its log lines.
struct Who {
    project: String,
    /// The upgrade request's id (`X-Request-Id`): every session of the
    /// connection names it.
    request_id: String,
}

struct Session {
    trace_id: String,
    started: Instant,
    /// Final results sent.
    sentences: u64,
    cfg: StartConfig,
    handle: Option<StreamHandle>,
    /// Short audio: the audio so far (taken at END).
    whole: Option<Whole>,
    /// Short audio: why the engine refused the audio, when it did (then
    /// ERROR and END, the connection kept, rather than FATAL_ERROR).
    refusal: Option<tokio::sync::oneshot::Receiver<EngineError>>,
    events: UnboundedReceiver<StreamEvent>,
    received_bytes: u64,
    bytes_per_second: u64,
    sample_bytes: usize,
    /// Bytes of a sample whose rest is in the next frame.
    carry: Vec<u8>,
    exceeded: bool,
    /// END (no cancel) was sent to the engine; waiting for Finished.
    ending: bool,
    /// Counted in `sis_rasr_sessions_open` while it lives.
    _open: crate::metrics::OpenSession,
    /// When its first audio arrived, until its first result (metrics).
    first_audio: Option<Instant>,
    first_result: bool,
    /// When END arrived (metrics: END to the final result).
    end_at: Option<Instant>,
}

struct Connection {
    state: AppState,
    mode: Mode,
    who: Who,
    socket: Socket,
    session: Option<Session>,
    /// An error was reported for stray audio since the last START.
    stray_reported: bool,
}

enum Flow {
    Continue,
    Close,
}

impl Connection {
    fn new(state: AppState, mode: Mode, who: Who, socket: Socket) -> Connection {
        Connection {
            state,
            mode,
            who,
            socket,
            session: None,
            stray_reported: false,
        }
    }

    async fn send(&mut self, text: String) -> bool {
        self.socket.send_text(text).await
    }

    async fn run(mut self) {
        let deadline = tokio::time::Instant::now() + self.socket.limits().lifetime;
        let mut stop = self.state.shutdown.subscribe();
        // set when the server is stopping: the open session may finish until then
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        loop {
            if stop_deadline.is_some() && self.session.is_none() {
                // stopping, and no session open: say goodbye
                self.socket
                    .close_handshake(close::GOING_AWAY, "the server is shutting down")
                    .await;
                break;
            }
            let backlogged = self.backlogged();
            let flow = tokio::select! {
                // backpressure: while the worker is behind, stop reading
                _ = tokio::time::sleep(Duration::from_millis(5)), if backlogged => Flow::Continue,
                msg = self.socket.recv(), if !backlogged => self.on_message(msg).await,
                ev = next_event(&mut self.session) => self.on_event(ev).await,
                _ = tokio::time::sleep_until(deadline) => {
                    self.fatal(refuse::connection_too_long().into(), "too_long").await;
                    Flow::Close
                }
                d = crate::shutdown::wait(&mut stop), if stop_deadline.is_none() => {
                    stop_deadline = Some(d);
                    Flow::Continue
                }
                _ = tokio::time::sleep_until(stop_deadline.unwrap_or(deadline)), if stop_deadline.is_some() => {
                    self.fatal(refuse::shutting_down().into(), "shutdown").await;
                    Flow::Close
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        // a session still open: the client closed the connection or
        // stopped reading (every other end was logged where it happened);
        // dropping the session's handle frees its engine resources
        if let Some(s) = self.session.take() {
            self.log_session(s, Ending::new("client_gone"));
        }
    }

    /// The API its log lines name.
    fn api(&self) -> &'static str {
        match self.mode {
            Mode::ShortAudio => "short-audio-ws",
            _ => "rasr",
        }
    }

    /// The one line of a session, when it ends: at error level when a
    /// server fault ended it, else info. Never audio or results.
    fn log_session(&self, s: Session, end: Ending) {
        let e = end.error.as_ref();
        let level = if e.is_some_and(|e| e.server_fault) {
            tracing::Level::ERROR
        } else {
            tracing::Level::INFO
        };
        let duration_ms = u64::try_from(s.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let audio_s = errors::seconds(s.received_bytes as f64 / s.bytes_per_second.max(1) as f64);
        let hot = s.cfg.options.hot_words.as_ref();
        event_at!(
            level,
            api = self.api(),
            mode = self.mode.as_path(),
            project = self.who.project.as_str(),
            property = s.cfg.property.name(),
            vocabulary_id = hot.map(|h| h.vocabulary_id.as_str()),
            vocabulary_version = hot.map(|h| h.version),
            audio_s,
            sentences = s.sentences,
            end = end.how,
            code = e.map(|e| e.shown.code.as_str()),
            msg = e.map(|e| e.shown.message.as_str()),
            detail = e.and_then(|e| e.detail.as_deref()),
            duration_ms,
            trace_id = s.trace_id.as_str(),
            request_id = self.who.request_id.as_str(),
            "real-time session"
        );
    }

    /// The line of an error sent while no session is open (a START
    /// refused, a command out of order, a connection closed for idling).
    fn log_outside(&self, e: &MessageError, trace_id: &str, property: Option<&str>, what: &str) {
        let level = if e.server_fault {
            tracing::Level::ERROR
        } else {
            tracing::Level::INFO
        };
        event_at!(
            level,
            api = self.api(),
            mode = self.mode.as_path(),
            project = self.who.project.as_str(),
            property,
            code = e.shown.code.as_str(),
            msg = e.shown.message.as_str(),
            detail = e.detail.as_deref(),
            trace_id,
            request_id = self.who.request_id.as_str(),
            "{what}"
        );
    }

    /// FATAL_ERROR, then a close frame (the connection ends); `how` names
    /// the session's end in its line.
    async fn fatal(&mut self, e: MessageError, how: &'static str) {
        let trace = match self.session.take() {
            Some(s) => {
                let trace = s.trace_id.clone();
                self.log_session(s, Ending::error(how, e.clone()));
                trace
            }
            None => {
                let trace = new_trace();
                self.log_outside(&e, &trace, None, "real-time connection closed");
                trace
            }
        };
        let _ = self
            .send(rasr::error_response(&trace, &e.shown, true))
            .await;
        let _ = self.socket.close_frame(close::NORMAL, "").await;
    }

    /// ERROR; if a session is open it ends with END(ERROR) (its line
    /// carries the error), else the error has a line of its own.
    async fn error(&mut self, e: MessageError) -> Flow {
        self.error_for(e, None).await
    }

    /// [`Connection::error`] for a START refused: its line names the property.
    async fn error_for(&mut self, e: MessageError, property: Option<&str>) -> Flow {
        let trace = match &self.session {
            Some(s) => s.trace_id.clone(),
            None => {
                let trace = new_trace();
                let what = if property.is_some() {
                    "real-time session refused"
                } else {
                    "real-time message refused"
                };
                self.log_outside(&e, &trace, property, what);
                trace
            }
        };
        let sent = self
            .send(rasr::error_response(&trace, &e.shown, false))
            .await;
        let ended = match self.session.take() {
            Some(s) => {
                self.log_session(s, Ending::error("error", e));
                true
            }
            None => false,
        };
        if !sent {
            return Flow::Close;
        }
        if ended
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

    async fn on_message(&mut self, m: Inbound) -> Flow {
        match m {
            Inbound::Text(t) => match rasr::parse_command(t.as_str()) {
                Err(e) => self.error(e.into()).await,
                Ok(Command::Start(cfg)) => self.start(*cfg).await,
                Ok(Command::End { cancel }) => self.end(cancel).await,
            },
            Inbound::Binary(b) => self.audio(&b).await,
            Inbound::Closed => Flow::Close,
            Inbound::Idle => {
                self.fatal(refuse::idle().into(), "idle_timeout").await;
                Flow::Close
            }
            // a client that pings but does not read is dropped
            Inbound::Ping => {
                if self.socket.flush().await {
                    Flow::Continue
                } else {
                    Flow::Close
                }
            }
            Inbound::Pong => Flow::Continue,
        }
    }

    async fn start(&mut self, mut cfg: StartConfig) -> Flow {
        if self.session.is_some() {
            return self.error(refuse::start_while_open().into()).await;
        }
        self.stray_reported = false;
        let property = cfg.property.name().to_string();
        let refused = |e: ApiError| MessageError::from(e);
        let engine = &self.state.engine;
        let whole = self.mode == Mode::ShortAudio;
        let served = if whole {
            engine.serves(&cfg.property)
        } else {
            engine.serves_realtime(&cfg.property)
        };
        if !served {
            let e = refused(refuse::property_not_served(&property));
            return self.error_for(e, Some(&property)).await;
        }
        let segmentation = match self.mode {
            Mode::ShortStream | Mode::ShortAudio => Segmentation::Whole,
            Mode::ContinueStream => Segmentation::Continuous,
            Mode::SentenceStream => Segmentation::FirstSentence,
        };
        if segmentation != Segmentation::Whole && !engine.has_vad() {
            return self
                .error_for(refused(refuse::needs_vad()), Some(&property))
                .await;
        }
        let (raw_enc, rate) = match cfg.format.raw() {
            Some(r) => r,
            None => {
                return self
                    .error_for(refused(refuse::bad_audio_format()), Some(&property))
                    .await
            }
        };
        // the vocabulary as it is now; the session keeps it to its end,
        // whatever happens to the table meanwhile
        let project = self.who.project.clone();
        if let Err(e) = vocabularies::resolve(&self.state, &project, &mut cfg.options).await {
            return self.error_for(e.into_message(), Some(&property)).await;
        }
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
        let mut refusal = None;
        let (handle, whole) = if whole {
            let (refused, refusal_rx) = tokio::sync::oneshot::channel();
            refusal = Some(refusal_rx);
            let whole = Whole {
                samples: Vec::new(),
                rate,
                events: tx,
                refusal: refused,
            };
            (None, Some(whole))
        } else {
            match engine.open_stream(&cfg.property, params, tx.into()) {
                Ok(h) => (Some(h), None),
                Err(e) => {
                    let e = errors::engine(e).into_message();
                    return self.error_for(e, Some(&property)).await;
                }
            }
        };
        let trace_id = new_trace();
        self.session = Some(Session {
            trace_id: trace_id.clone(),
            started: Instant::now(),
            sentences: 0,
            cfg,
            handle,
            whole,
            refusal,
            events: rx,
            received_bytes: 0,
            bytes_per_second: rate as u64 * bytes_per_sample,
            sample_bytes: bytes_per_sample as usize,
            carry: Vec::new(),
            exceeded: false,
            ending: false,
            _open: crate::metrics::OpenSession::new(self.mode.as_path()),
            first_audio: None,
            first_result: false,
            end_at: None,
        });
        if self.send(rasr::start_response(&trace_id)).await {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    async fn end(&mut self, cancel: bool) -> Flow {
        let Some(s) = self.session.as_mut() else {
            return self.error(refuse::end_without_start().into()).await;
        };
        if s.ending {
            return Flow::Continue;
        }
        if cancel {
            let trace = s.trace_id.clone();
            if let Some(s) = self.session.take() {
                self.log_session(s, Ending::new("cancel"));
            }
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
        s.end_at = Some(Instant::now());
        if let Some(h) = &s.handle {
            h.end(false);
        }
        if let Some(w) = s.whole.take() {
            let engine = self.state.engine.clone();
            let (property, options) = (s.cfg.property.clone(), s.cfg.options.clone());
            tokio::spawn(recognize_whole(engine, property, options, w));
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
            return self.error(refuse::audio_before_start().into()).await;
        };
        if s.ending || s.exceeded {
            return Flow::Continue;
        }
        s.first_audio.get_or_insert_with(Instant::now);
        // Frames shorter than the documented minimum are accepted (the SIS
        // SDK slices a file into fixed pieces, so its last one is usually
        // shorter); the maximum stays enforced.
        let (_, hi) = rasr::frame_bounds(s.cfg.format);
        if bytes.len() > hi {
            let e = rasr::frame_size_error(bytes.len(), s.cfg.format);
            return self.error(e.into()).await;
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
                Err(e) => return self.error(refuse::audio(&e).into()).await,
            }
        };
        s.received_bytes += bytes.len() as u64;
        if let Some(w) = &mut s.whole {
            w.samples.extend_from_slice(&pcm.samples);
        } else if let Some(h) = &s.handle {
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
                let e = MessageError {
                    detail: Some("the session's event channel closed".into()),
                    server_fault: true,
                    ..refuse::engine_gone().into()
                };
                return self.error(e).await;
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
            }) => {
                if is_final {
                    s.sentences += 1;
                }
                if let (false, Some(t)) = (s.first_result, s.first_audio) {
                    s.first_result = true;
                    metrics::histogram!(crate::metrics::RASR_FIRST_PARTIAL)
                        .record(t.elapsed().as_secs_f64());
                }
                if let (true, Some(t)) = (is_final, s.end_at) {
                    metrics::histogram!(crate::metrics::RASR_FINAL)
                        .record(t.elapsed().as_secs_f64());
                }
                rasr::result_response(
                    &trace,
                    start_ms,
                    end_ms,
                    is_final,
                    &transcript,
                    s.cfg.options.need_word_info,
                )
            }
            Some(StreamEvent::Finished) => {
                if let Some(s) = self.session.take() {
                    self.log_session(s, Ending::new("end"));
                }
                rasr::end_response(&trace, EndReason::Normal)
            }
            Some(StreamEvent::Failed(m)) => {
                if let Some(e) = s.refusal.take().and_then(|mut r| r.try_recv().ok()) {
                    // short audio the engine refused (busy, shutting
                    // down, a failed decode): the REST API's error, as
                    // ERROR then END; the connection stays
                    return self.error(errors::engine(e).into_message()).await;
                }
                // the session's engine state is gone (its engine worker
                // died): FATAL_ERROR, then a close handshake that reads
                // what the client still sends (closing on unread audio
                // would reset the connection before it reads either)
                let e = MessageError {
                    detail: Some(m),
                    server_fault: true,
                    ..refuse::engine_stopped().into()
                };
                let shown = e.shown.clone();
                if let Some(s) = self.session.take() {
                    self.log_session(s, Ending::error("engine_failed", e));
                }
                if self.send(rasr::error_response(&trace, &shown, true)).await {
                    self.socket
                        .close_handshake(close::INTERNAL_ERROR, "recognition engine stopped")
                        .await;
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

/// A short-audio session's audio recognised whole (the REST API's path:
/// `EnginePool::recognize`), its one final result and the end sent as the
/// session's events. A lost engine worker is the session's `Failed` (as in
/// RASR: FATAL_ERROR); any other engine error is sent on `refusal` first
/// (ERROR with the REST API's code, then END).
async fn recognize_whole(
    engine: std::sync::Arc<sis_pool::EnginePool>,
    property: sis_core::Property,
    options: sis_core::RecognitionOptions,
    w: Whole,
) {
    let end_ms = (w.samples.len() as u64 * 1000) / u64::from(w.rate.max(1));
    let pcm = sis_core::Pcm {
        samples: w.samples,
        sample_rate: w.rate,
    };
    match engine.recognize(&property, pcm, options).await {
        Ok(transcript) => {
            let _ = w.events.send(StreamEvent::Result {
                start_ms: 0,
                end_ms,
                is_final: true,
                transcript,
            });
            let _ = w.events.send(StreamEvent::Finished);
        }
        Err(EngineError::WorkerLost(m)) => {
            let _ = w.events.send(StreamEvent::Failed(m));
        }
        Err(e) => {
            let why = e.to_string();
            let _ = w.refusal.send(e);
            let _ = w.events.send(StreamEvent::Failed(why));
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
