//! The server's side of the engine workers: one supervisor thread per
//! worker slot spawns `<exe> engine-worker`, sends it the engine settings,
//! waits for it to load, then reads its frames until it ends; then fails
//! whatever was on it (requests, sessions, files) and starts a new one,
//! with backoff. A writer thread per worker sends the frames others queue.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use sis_core::{Property, Transcript};
use sis_engine::file::FileSentence;
use sis_engine::observe::Observer;
use sis_engine::stream::{EventSender, StreamEvent, StreamParams};
use sis_engine::tts::Voiced;
use sis_engine::{EngineConfig, EngineError, FileRequest, UtteranceRequest};

use crate::wire::{self, FromWorker, Info, Samples, ToWorker};
use crate::WorkerStatus;

/// Pushes of a file transcription the worker may have queued: enough to
/// keep it busy while the next chunk is read, little memory.
const FILE_WINDOW: usize = 4;
/// Restart delays after a worker's death: doubling from the first, up to
/// the last; reset once a worker has lived for `STABLE`.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const STABLE: Duration = Duration::from_secs(30);
/// Kernel buffer of each pipe to a worker (Linux's default cap for users).
const PIPE_BYTES: libc::c_int = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Out {
    Frame(Vec<u8>),
    Stop,
}

pub(crate) enum FileReply {
    Ack(u64),
    Done(Result<Vec<FileSentence>, EngineError>),
    Lost(String),
}

/// A session as the reader sees it.
struct Link {
    events: EventSender,
    /// Samples the worker reports taken.
    taken: AtomicU64,
    /// The worker died: nothing is waiting any more.
    lost: AtomicBool,
}

#[derive(Default)]
struct Table {
    alive: bool,
    pending: HashMap<u64, tokio::sync::oneshot::Sender<Result<Transcript, EngineError>>>,
    voiced: HashMap<u64, tokio::sync::oneshot::Sender<Result<Voiced, EngineError>>>,
    sessions: HashMap<u64, Arc<Link>>,
    files: HashMap<u64, mpsc::Sender<FileReply>>,
}

impl Table {
    fn load(&self) -> usize {
        self.pending.len() + self.voiced.len() + self.sessions.len() + self.files.len()
    }
}

/// One running worker process.
pub(crate) struct Conn {
    pid: u32,
    out: Sender<Out>,
    table: Mutex<Table>,
    /// The pool's: what the worker observed of its work.
    observer: Arc<Observer>,
}

impl Conn {
    fn send(&self, msg: &ToWorker) {
        let bytes = match msg {
            ToWorker::Recognize { samples, .. } | ToWorker::Audio { samples, .. } => {
                samples.0.len() * 4
            }
            ToWorker::FilePush { planar, .. } => planar.iter().map(|c| c.0.len() * 4 + 8).sum(),
            _ => 64,
        };
        match wire::encode_sized(msg, bytes) {
            Ok(f) => {
                let _ = self.out.send(Out::Frame(f));
            }
            // only a frame over MAX_FRAME; callers bound their payloads
            Err(e) => tracing::error!(error = %e, "cannot encode a frame for an engine worker"),
        }
    }

    fn dispatch(&self, msg: FromWorker) {
        match msg {
            FromWorker::Recognized { id, result } => {
                let result = result.map(Into::into).map_err(Into::into);
                if let Some(tx) = lock(&self.table).pending.remove(&id) {
                    let _ = tx.send(result);
                }
            }
            FromWorker::Synthesized { id, result } => {
                let result = result
                    .map(|(samples, sample_rate)| Voiced {
                        samples: samples.0,
                        sample_rate,
                    })
                    .map_err(Into::into);
                if let Some(tx) = lock(&self.table).voiced.remove(&id) {
                    let _ = tx.send(result);
                }
            }
            FromWorker::Event { id, event } => {
                let event: StreamEvent = event.into();
                if let Some(s) = lock(&self.table).sessions.get(&id) {
                    s.events.send(event);
                }
            }
            FromWorker::Observed(list) => {
                for o in list {
                    self.observer.record(o);
                }
            }
            FromWorker::Taken(list) => {
                let t = lock(&self.table);
                for (id, n) in list {
                    if let Some(s) = t.sessions.get(&id) {
                        s.taken.store(n, Ordering::SeqCst);
                    }
                }
            }
            FromWorker::FileAck { id, recognised } => {
                if let Some(f) = lock(&self.table).files.get(&id) {
                    let _ = f.send(FileReply::Ack(recognised));
                }
            }
            FromWorker::FileDone { id, result } => {
                let result = result
                    .map(|v| v.into_iter().map(Into::into).collect())
                    .map_err(Into::into);
                if let Some(f) = lock(&self.table).files.remove(&id) {
                    let _ = f.send(FileReply::Done(result));
                }
            }
            FromWorker::Ready(_) | FromWorker::LoadFailed(_) => {}
        }
    }

    /// The worker is gone: everything on it ends now, with `why`.
    fn fail_all(&self, why: &str) -> (usize, usize, usize) {
        let t = std::mem::take(&mut *lock(&self.table));
        let counts = (t.pending.len(), t.sessions.len(), t.files.len());
        for (_, tx) in t.pending {
            let _ = tx.send(Err(EngineError::WorkerLost(why.to_string())));
        }
        for (_, tx) in t.voiced {
            let _ = tx.send(Err(EngineError::WorkerLost(why.to_string())));
        }
        for (_, s) in t.sessions {
            s.lost.store(true, Ordering::SeqCst);
            s.events.send(StreamEvent::Failed(why.to_string()));
        }
        for (_, f) in t.files {
            let _ = f.send(FileReply::Lost(why.to_string()));
        }
        let _ = self.out.send(Out::Stop);
        counts
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    Restarting,
}

struct SlotState {
    conn: Option<Arc<Conn>>,
    pid: Option<u32>,
    phase: Phase,
    restarts: u32,
}

struct Slot {
    index: usize,
    state: Mutex<SlotState>,
}

struct Spec {
    exe: PathBuf,
    config: wire::Config,
    closing: Arc<AtomicBool>,
    observer: Arc<Observer>,
}

/// Routing facts from the first worker's `Ready`.
pub(crate) struct Catalog {
    pub info: Info,
}

impl Catalog {
    fn property(&self, p: &Property) -> Option<&wire::PropertyInfo> {
        self.info.properties.iter().find(|q| q.name == p.name())
    }
    pub fn serves(&self, p: &Property) -> bool {
        self.property(p).is_some_and(|q| q.serves)
    }
    pub fn serves_realtime(&self, p: &Property) -> bool {
        self.property(p).is_some_and(|q| q.realtime)
    }
    pub fn realtime_is_streaming(&self, p: &Property) -> bool {
        self.property(p).is_some_and(|q| q.streaming)
    }
    /// `UnknownProperty` unless `served` says the workers serve `p`.
    fn check(&self, p: &Property, served: fn(&Self, &Property) -> bool) -> Result<(), EngineError> {
        if served(self, p) {
            Ok(())
        } else {
            Err(EngineError::UnknownProperty(p.name().to_string()))
        }
    }
}

pub(crate) struct Remote {
    pub catalog: Catalog,
    /// What every worker observed of its work, until taken.
    pub observer: Arc<Observer>,
    slots: Vec<Arc<Slot>>,
    next_id: AtomicU64,
    /// Where the next search for the least-loaded worker starts.
    turn: AtomicUsize,
    active: Arc<AtomicUsize>,
    max_streams: usize,
    closing: Arc<AtomicBool>,
}

impl Remote {
    /// Checked packs only: starts `count` workers, each loading `config`
    /// with its share of the threads and queue, and waits until all are
    /// ready. Any that fails to load fails the start.
    pub fn start(config: &EngineConfig, count: usize) -> Result<Remote, EngineError> {
        let exe = std::env::current_exe()
            .map_err(|e| EngineError::Load(format!("cannot find the sisd executable: {e}")))?;
        let share = |n: usize| n.div_ceil(count).max(1);
        // each worker gets its share of the threads and of the queue;
        // sessions are admitted here, against the whole pool
        let wc = wire::Config::from(&EngineConfig {
            workers: share(config.workers),
            stream_workers: share(config.stream_workers),
            queue: share(config.queue),
            ..config.clone()
        });
        let closing = Arc::new(AtomicBool::new(false));
        let observer = Arc::new(Observer::default());
        let spec = Arc::new(Spec {
            exe,
            config: wc,
            closing: closing.clone(),
            observer: observer.clone(),
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut slots = Vec::new();
        for index in 0..count {
            let slot = Arc::new(Slot {
                index,
                state: Mutex::new(SlotState {
                    conn: None,
                    pid: None,
                    phase: Phase::Starting,
                    restarts: 0,
                }),
            });
            let (slot2, spec, ready_tx) = (slot.clone(), spec.clone(), ready_tx.clone());
            std::thread::Builder::new()
                .name(format!("engine-worker-{index}"))
                .spawn(move || supervise(slot2, spec, ready_tx))
                .map_err(|e| EngineError::Load(format!("cannot start a supervisor: {e}")))?;
            slots.push(slot);
        }
        drop(ready_tx);
        let remote = |info: Info| Remote {
            catalog: Catalog { info },
            observer: observer.clone(),
            slots: slots.clone(),
            next_id: AtomicU64::new(1),
            turn: AtomicUsize::new(0),
            active: Arc::new(AtomicUsize::new(0)),
            max_streams: config.max_streams.max(1),
            closing: closing.clone(),
        };
        let mut first: Option<Info> = None;
        for _ in 0..count {
            match ready_rx.recv() {
                Ok(Ok(info)) => {
                    first.get_or_insert(info);
                }
                Ok(Err(e)) => {
                    closing.store(true, Ordering::SeqCst);
                    stop_all(&slots);
                    return Err(EngineError::Load(e));
                }
                Err(_) => {
                    closing.store(true, Ordering::SeqCst);
                    stop_all(&slots);
                    return Err(EngineError::Load(
                        "an engine worker supervisor stopped".into(),
                    ));
                }
            }
        }
        match first {
            Some(info) => Ok(remote(info)),
            None => Err(EngineError::Load("no engine worker started".into())),
        }
    }

    pub fn active_streams(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.slots
            .iter()
            .map(|s| {
                let st = lock(&s.state);
                let (requests, sessions, files) = st.conn.as_ref().map_or((0, 0, 0), |c| {
                    let t = lock(&c.table);
                    (
                        t.pending.len() + t.voiced.len(),
                        t.sessions.len(),
                        t.files.len(),
                    )
                });
                WorkerStatus {
                    index: s.index,
                    pid: st.pid,
                    state: match st.phase {
                        Phase::Starting => "starting",
                        Phase::Ready => "ready",
                        Phase::Restarting => "restarting",
                    },
                    restarts: st.restarts,
                    requests,
                    sessions,
                    files,
                }
            })
            .collect()
    }

    /// The least-loaded ready worker; among equals, the next in turn (so a
    /// client that sends one request at a time uses every worker).
    fn pick(&self) -> Option<Arc<Conn>> {
        let mut best: Option<(usize, Arc<Conn>)> = None;
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let k = self.slots.len();
        for s in (0..k).map(|i| &self.slots[(first + i) % k]) {
            let conn = {
                let st = lock(&s.state);
                match (&st.conn, st.phase) {
                    (Some(c), Phase::Ready) => c.clone(),
                    _ => continue,
                }
            };
            let load = lock(&conn.table).load();
            if best.as_ref().is_none_or(|(l, _)| load < *l) {
                best = Some((load, conn));
            }
        }
        best.map(|(_, c)| c)
    }

    /// Registers `value` under a new id in one of the tables (`entry`) of
    /// the least-loaded live worker (one that died meanwhile is passed over
    /// for the next); the id and the worker.
    fn register<T>(
        &self,
        entry: impl FnOnce(&mut Table) -> &mut HashMap<u64, T>,
        value: T,
    ) -> Result<(u64, Arc<Conn>), EngineError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        for _ in 0..=self.slots.len() {
            let Some(conn) = self.pick() else { break };
            let mut t = lock(&conn.table);
            if t.alive {
                entry(&mut t).insert(id, value);
                drop(t);
                return Ok((id, conn));
            }
        }
        Err(EngineError::WorkerLost(
            "no engine worker is running (restarting)".into(),
        ))
    }

    pub async fn recognize(&self, request: UtteranceRequest) -> Result<Transcript, EngineError> {
        self.catalog.check(&request.property, Catalog::serves)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (id, conn) = self.register(|t| &mut t.pending, tx)?;
        conn.send(&ToWorker::Recognize {
            id,
            property: request.property.name().to_string(),
            samples: Samples(request.pcm.samples),
            sample_rate: request.pcm.sample_rate,
            options: request.options.into(),
        });
        // a request whose client went away leaves its entry until the
        // worker answers (the decode queue is bounded)
        rx.await.unwrap_or_else(|_| {
            Err(EngineError::WorkerLost(format!(
                "engine worker {} stopped",
                conn.pid
            )))
        })
    }

    /// One sentence read by the TTS pack of `voice`, on a worker.
    pub async fn synthesize(
        &self,
        voice: &str,
        text: String,
        speed: f32,
    ) -> Result<Voiced, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (id, conn) = self.register(|t| &mut t.voiced, tx)?;
        conn.send(&ToWorker::Synthesize {
            id,
            voice: voice.to_string(),
            text,
            speed,
        });
        rx.await.unwrap_or_else(|_| {
            Err(EngineError::WorkerLost(format!(
                "engine worker {} stopped",
                conn.pid
            )))
        })
    }

    pub fn open_stream(
        &self,
        property: &Property,
        params: StreamParams,
        events: EventSender,
    ) -> Result<RemoteStream, EngineError> {
        self.catalog.check(property, Catalog::serves_realtime)?;
        // Admission: refuse beyond capacity instead of slowing everyone.
        if self.active.fetch_add(1, Ordering::SeqCst) >= self.max_streams {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::Busy);
        }
        let link = Arc::new(Link {
            events,
            taken: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        });
        let (id, conn) = match self.register(|t| &mut t.sessions, link.clone()) {
            Ok(placed) => placed,
            Err(e) => {
                self.active.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
        };
        conn.send(&ToWorker::Open {
            id,
            property: property.name().to_string(),
            params: params.into(),
        });
        Ok(RemoteStream {
            id,
            conn,
            link,
            sent: AtomicU64::new(0),
            active: self.active.clone(),
        })
    }

    pub fn file_transcriber(&self, request: FileRequest) -> Result<RemoteFile, EngineError> {
        self.catalog.check(&request.property, Catalog::serves)?;
        if !self.catalog.info.has_vad {
            return Err(EngineError::Failed(
                "file transcription needs the VAD pack".into(),
            ));
        }
        let (tx, rx) = mpsc::channel();
        let (id, conn) = self.register(|t| &mut t.files, tx)?;
        conn.send(&ToWorker::FileOpen {
            id,
            property: request.property.name().to_string(),
            input_rate: request.input_rate,
            channels: request.channels.max(1) as u32,
            options: request.options.into(),
        });
        Ok(RemoteFile {
            id,
            conn,
            replies: rx,
            in_flight: 0,
            recognised: 0,
            finished: false,
        })
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        stop_all(&self.slots);
    }
}

/// Closes every worker's input: each exits at its end.
fn stop_all(slots: &[Arc<Slot>]) {
    for s in slots {
        if let Some(c) = &lock(&s.state).conn {
            let _ = c.out.send(Out::Stop);
        }
    }
}

/// A real-time session on a worker; dropping it frees the session there.
pub(crate) struct RemoteStream {
    id: u64,
    conn: Arc<Conn>,
    link: Arc<Link>,
    sent: AtomicU64,
    active: Arc<AtomicUsize>,
}

impl RemoteStream {
    pub fn audio(&self, samples: Vec<f32>) {
        self.sent.fetch_add(samples.len() as u64, Ordering::SeqCst);
        self.conn.send(&ToWorker::Audio {
            id: self.id,
            samples: Samples(samples),
        });
    }

    /// Samples sent that the worker's stream worker has not taken.
    pub fn backlog(&self) -> usize {
        if self.link.lost.load(Ordering::SeqCst) {
            return 0;
        }
        let sent = self.sent.load(Ordering::SeqCst);
        sent.saturating_sub(self.link.taken.load(Ordering::SeqCst)) as usize
    }

    pub fn end(&self, cancel: bool) {
        self.conn.send(&ToWorker::End {
            id: self.id,
            cancel,
        });
    }
}

impl Drop for RemoteStream {
    fn drop(&mut self) {
        lock(&self.conn.table).sessions.remove(&self.id);
        self.conn.send(&ToWorker::Close { id: self.id });
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A file transcription on a worker. Its methods block (run it on a
/// blocking thread, as the in-process one).
pub(crate) struct RemoteFile {
    id: u64,
    conn: Arc<Conn>,
    replies: mpsc::Receiver<FileReply>,
    in_flight: usize,
    recognised: usize,
    finished: bool,
}

impl RemoteFile {
    fn lost(&self, why: Option<String>) -> EngineError {
        EngineError::WorkerLost(
            why.unwrap_or_else(|| format!("engine worker {} stopped", self.conn.pid)),
        )
    }

    /// Waits for the worker's next answer about this file.
    fn next(&mut self) -> Result<Option<Vec<FileSentence>>, EngineError> {
        match self.replies.recv() {
            Ok(FileReply::Ack(n)) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.recognised = n as usize;
                Ok(None)
            }
            Ok(FileReply::Done(r)) => {
                self.finished = true;
                r.map(Some)
            }
            Ok(FileReply::Lost(why)) => {
                self.finished = true;
                Err(self.lost(Some(why)))
            }
            Err(_) => {
                self.finished = true;
                Err(self.lost(None))
            }
        }
    }

    pub fn push(&mut self, planar: &[Vec<f32>]) -> Result<(), EngineError> {
        if self.finished {
            return Err(self.lost(None));
        }
        self.conn.send(&ToWorker::FilePush {
            id: self.id,
            planar: planar.iter().map(|c| Samples(c.clone())).collect(),
        });
        self.in_flight += 1;
        while self.in_flight >= FILE_WINDOW {
            if self.next()?.is_some() {
                // an early end is an error the worker reported
                return Err(EngineError::Failed(
                    "the worker ended the transcription early".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<FileSentence>, EngineError> {
        if self.finished {
            return Err(self.lost(None));
        }
        self.conn.send(&ToWorker::FileFinish { id: self.id });
        loop {
            if let Some(done) = self.next()? {
                return Ok(done);
            }
        }
    }

    pub fn recognised(&self) -> usize {
        self.recognised
    }
}

impl Drop for RemoteFile {
    fn drop(&mut self) {
        if !self.finished {
            lock(&self.conn.table).files.remove(&self.id);
            self.conn.send(&ToWorker::FileClose { id: self.id });
        }
    }
}

/// Runs one worker slot for the life of the server: start, serve, and
/// after a death, log it and start again. The first start's outcome goes
/// to `ready` (a failure there stops the slot: the server does not start).
fn supervise(slot: Arc<Slot>, spec: Arc<Spec>, ready: mpsc::Sender<Result<Info, String>>) {
    let mut ready = Some(ready);
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = Instant::now();
        match launch(&spec) {
            Ok((mut child, conn, reader, info)) => {
                {
                    let mut st = lock(&slot.state);
                    st.conn = Some(conn.clone());
                    st.pid = Some(conn.pid);
                    st.phase = Phase::Ready;
                }
                if spec.closing.load(Ordering::SeqCst) {
                    // the server gave up starting: this one ends with its input
                    let _ = conn.out.send(Out::Stop);
                }
                match ready.take() {
                    Some(r) => {
                        let _ = r.send(Ok(info));
                    }
                    None => tracing::info!(
                        worker = slot.index,
                        pid = conn.pid,
                        "engine worker restarted and ready"
                    ),
                }
                let why = serve(&conn, reader);
                {
                    let mut st = lock(&slot.state);
                    st.phase = Phase::Restarting;
                    st.conn = None;
                }
                let lost = conn.fail_all(&format!("engine worker {} stopped", conn.pid));
                // the pipe is closed: the process has exited or is exiting
                let _ = child.kill();
                let status = child.wait();
                if spec.closing.load(Ordering::SeqCst) {
                    return;
                }
                log_death(slot.index, conn.pid, status, &why, started.elapsed(), lost);
                lock(&slot.state).restarts += 1;
            }
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e));
                    return;
                }
                if spec.closing.load(Ordering::SeqCst) {
                    return;
                }
                lock(&slot.state).restarts += 1;
                tracing::error!(worker = slot.index, error = %e, "engine worker failed to start again");
            }
        }
        if started.elapsed() >= STABLE {
            backoff = BACKOFF_FIRST;
        }
        {
            let mut st = lock(&slot.state);
            st.phase = Phase::Restarting;
            st.pid = None;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if spec.closing.load(Ordering::SeqCst) {
            return;
        }
        lock(&slot.state).phase = Phase::Starting;
    }
}

fn log_death(
    index: usize,
    pid: u32,
    status: std::io::Result<ExitStatus>,
    why: &str,
    uptime: Duration,
    (requests, sessions, files): (usize, usize, usize),
) {
    let (code, signal) = match &status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    tracing::error!(
        worker = index,
        pid,
        %status,
        exit_code = ?code,
        signal = ?signal,
        uptime_s = uptime.as_secs_f64(),
        why,
        requests,
        sessions,
        files,
        "engine worker died; its requests, sessions and files failed; restarting it"
    );
}

type Reader = BufReader<std::process::ChildStdout>;

/// Spawns a worker, sends it its settings and waits until it has loaded.
fn launch(spec: &Spec) -> Result<(Child, Arc<Conn>, Reader, Info), String> {
    let mut child = Command::new(&spec.exe)
        .arg("engine-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {} engine-worker: {e}", spec.exe.display()))?;
    let pid = child.id();
    let fail = |child: &mut Child, what: String| {
        let _ = child.kill();
        let status = child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        format!("engine worker {pid}: {what} ({status})")
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(fail(&mut child, "no pipes".into()));
    };
    widen_pipe(stdin.as_raw_fd());
    widen_pipe(stdout.as_raw_fd());
    let mut input = BufWriter::with_capacity(1 << 16, stdin);
    if let Err(e) = wire::send(&mut input, &ToWorker::Init(spec.config.clone())) {
        return Err(fail(&mut child, format!("cannot send its settings: {e}")));
    }
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut buf = Vec::new();
    let info = match wire::read_frame(&mut reader, &mut buf) {
        Ok(true) => match wire::decode::<FromWorker>(&buf) {
            Ok(FromWorker::Ready(info)) => info,
            Ok(FromWorker::LoadFailed(e)) => {
                return Err(fail(&mut child, format!("cannot load the engine: {e}")))
            }
            Ok(_) => return Err(fail(&mut child, "unexpected first frame".into())),
            Err(e) => return Err(fail(&mut child, format!("bad first frame: {e}"))),
        },
        Ok(false) => return Err(fail(&mut child, "exited while loading".into())),
        Err(e) => return Err(fail(&mut child, format!("unreadable: {e}"))),
    };
    let (out, rx) = unbounded();
    std::thread::Builder::new()
        .name(format!("engine-out-{pid}"))
        .spawn(move || write_loop(input, rx))
        .map_err(|e| fail(&mut child, format!("cannot start its writer: {e}")))?;
    let conn = Arc::new(Conn {
        pid,
        out,
        table: Mutex::new(Table {
            alive: true,
            ..Default::default()
        }),
        observer: spec.observer.clone(),
    });
    Ok((child, conn, reader, info))
}

/// Reads the worker's frames until its end; returns why it ended.
fn serve(conn: &Conn, mut reader: Reader) -> String {
    let mut buf = Vec::new();
    loop {
        match wire::read_frame(&mut reader, &mut buf) {
            Ok(true) => match wire::decode::<FromWorker>(&buf) {
                Ok(msg) => conn.dispatch(msg),
                Err(e) => return format!("undecodable frame: {e}"),
            },
            Ok(false) => return "its pipe closed".into(),
            Err(e) => return format!("unreadable pipe: {e}"),
        }
    }
}

/// Writes queued frames until `Stop` or a dead pipe; dropping the pipe then
/// ends the worker's input.
fn write_loop(mut w: BufWriter<ChildStdin>, rx: Receiver<Out>) {
    let _ = wire::pump(&rx, &mut w, |w, out| match out {
        Out::Frame(f) => w.write_all(&f).map(|()| true),
        Out::Stop => Ok(false),
    });
}

/// Larger pipes: a short-audio request (up to 3.8 MB) or a burst of frames
/// crosses in fewer wake-ups. Best effort (the system may cap the size).
fn widen_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: F_SETPIPE_SZ only resizes the pipe's kernel buffer.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES);
    }
}
