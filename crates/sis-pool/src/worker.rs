//! The engine worker process (`sisd engine-worker`): loads an [`Engine`] as
//! the server would, then serves it over the frames of [`crate::wire`]. It
//! owns every sherpa-onnx object of the service; if native code ends it, the
//! server fails only what this process held and starts another.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::FromRawFd;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use sis_core::{Pcm, Property};
use sis_engine::stream::{EventSender, StreamEvent, StreamHandle};
use sis_engine::{Engine, EngineError, FileRequest, UtteranceRequest};

use crate::wire::{self, FromWorker, Info, PackInfo, PropertyInfo, ToWorker};

/// How often the sessions' progress (samples taken) is reported.
const TAKEN_EVERY: Duration = Duration::from_millis(25);
/// The engine's observations (for the server's metrics) go to the server
/// every this many [`TAKEN_EVERY`] (half a second).
const OBSERVED_EVERY_TICKS: u32 = 20;

struct Session {
    handle: StreamHandle,
    /// Samples handed to the stream worker.
    sent: u64,
    /// What the server was last told had been taken.
    reported: u64,
}

type Sessions = Arc<Mutex<HashMap<u64, Session>>>;

enum FileCmd {
    Push(Vec<Vec<f32>>),
    Finish,
}

/// The worker's entry point. Returns only on a failure before the engine
/// is serving; afterwards the process exits when the server closes the pipe.
pub fn run_worker() -> Result<(), String> {
    let out = protocol_output()?;
    orphan_guard();
    let (tx, rx) = unbounded::<FromWorker>();
    let writer = std::thread::Builder::new()
        .name("worker-out".into())
        .spawn(move || write_loop(out, rx))
        .map_err(|e| format!("cannot start the writer: {e}"))?;
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut buf = Vec::new();
    let config = match wire::read_frame(&mut input, &mut buf) {
        Ok(true) => match wire::decode::<ToWorker>(&buf) {
            Ok(ToWorker::Init(c)) => c,
            _ => return Err("the first frame is not Init".into()),
        },
        _ => return Err("no configuration from the server".into()),
    };
    let engine = match Engine::load(config.into()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            let _ = tx.send(FromWorker::LoadFailed(e.to_string()));
            drop(tx);
            let _ = writer.join();
            return Err(e.to_string());
        }
    };
    let _ = tx.send(FromWorker::Ready(info(&engine)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("worker-rt")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let sessions: Sessions = Arc::default();
    {
        let (sessions, engine, tx) = (sessions.clone(), engine.clone(), tx.clone());
        std::thread::Builder::new()
            .name("worker-taken".into())
            .spawn(move || report_taken(sessions, engine, tx))
            .map_err(|e| format!("cannot start the progress reporter: {e}"))?;
    }
    let mut files: HashMap<u64, mpsc::Sender<FileCmd>> = HashMap::new();
    loop {
        match wire::read_frame(&mut input, &mut buf) {
            Ok(true) => {}
            // the server closed the pipe (it stops, or it gave up on us):
            // nothing is left to do, and the engine's threads need no join
            Ok(false) => {
                engine.log_stream_batches();
                std::process::exit(0)
            }
            Err(e) => {
                tracing::error!(error = %e, "engine worker: unreadable frame from the server");
                std::process::exit(2);
            }
        }
        let msg = match wire::decode::<ToWorker>(&buf) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "engine worker: undecodable frame from the server");
                std::process::exit(2);
            }
        };
        match msg {
            ToWorker::Init(_) => {}
            ToWorker::Recognize {
                id,
                property,
                samples,
                sample_rate,
                options,
            } => {
                let (engine, tx) = (engine.clone(), tx.clone());
                rt.spawn(async move {
                    let pcm = Pcm {
                        samples: samples.0,
                        sample_rate,
                    };
                    let request = property_named(property).map(|property| UtteranceRequest {
                        property,
                        pcm,
                        options: options.into(),
                    });
                    let result = match request {
                        Ok(request) => engine.recognize(request).await,
                        Err(e) => Err(e),
                    };
                    let _ = tx.send(FromWorker::Recognized {
                        id,
                        result: result.map(Into::into).map_err(Into::into),
                    });
                });
            }
            ToWorker::Synthesize {
                id,
                voice,
                text,
                speed,
            } => {
                let (engine, tx) = (engine.clone(), tx.clone());
                rt.spawn(async move {
                    let result = engine.synthesize(&voice, text, speed).await;
                    let _ = tx.send(FromWorker::Synthesized {
                        id,
                        result: result
                            .map(|v| (wire::Samples(v.samples), v.sample_rate))
                            .map_err(Into::into),
                    });
                });
            }
            ToWorker::Open {
                id,
                property,
                params,
            } => {
                // the stream worker writes its events straight onto the
                // protocol channel: no forwarding task, no extra wake-up
                let events = {
                    let tx = tx.clone();
                    EventSender::new(move |ev: StreamEvent| {
                        let _ = tx.send(FromWorker::Event {
                            id,
                            event: ev.into(),
                        });
                    })
                };
                let opened = property_named(property)
                    .and_then(|p| engine.open_stream(&p, params.into(), events));
                match opened {
                    Ok(handle) => {
                        lock(&sessions).insert(
                            id,
                            Session {
                                handle,
                                sent: 0,
                                reported: 0,
                            },
                        );
                    }
                    Err(e) => {
                        let _ = tx.send(FromWorker::Event {
                            id,
                            event: wire::Event::Failed(e.to_string()),
                        });
                    }
                }
            }
            ToWorker::Audio { id, samples } => {
                if let Some(s) = lock(&sessions).get_mut(&id) {
                    s.sent += samples.0.len() as u64;
                    s.handle.audio(samples.0);
                }
            }
            ToWorker::End { id, cancel } => {
                if let Some(s) = lock(&sessions).get(&id) {
                    s.handle.end(cancel);
                }
            }
            ToWorker::Close { id } => {
                // dropping the handle frees the session on its stream worker
                let s = lock(&sessions).remove(&id);
                drop(s);
            }
            ToWorker::FileOpen {
                id,
                property,
                input_rate,
                channels,
                options,
            } => {
                let (cmds, rx) = mpsc::channel();
                let (engine, ftx) = (engine.clone(), tx.clone());
                let started = std::thread::Builder::new()
                    .name(format!("file-{id}"))
                    .spawn(move || {
                        let request = property_named(property).map(|property| FileRequest {
                            property,
                            input_rate,
                            channels: channels as usize,
                            options: options.into(),
                        });
                        let result = transcribe_file(&engine, request, rx, id, &ftx);
                        if let Some(result) = result {
                            let _ = ftx.send(FromWorker::FileDone {
                                id,
                                result: result
                                    .map(|v| v.into_iter().map(Into::into).collect())
                                    .map_err(Into::into),
                            });
                        }
                    });
                match started {
                    Ok(_) => {
                        files.insert(id, cmds);
                    }
                    Err(e) => {
                        let _ = tx.send(FromWorker::FileDone {
                            id,
                            result: Err(wire::WireError::Failed(format!(
                                "cannot start a file thread: {e}"
                            ))),
                        });
                    }
                }
            }
            ToWorker::FilePush { id, planar } => {
                let planar = planar.into_iter().map(|s| s.0).collect();
                if let Some(f) = files.get(&id) {
                    if f.send(FileCmd::Push(planar)).is_err() {
                        files.remove(&id);
                    }
                }
            }
            ToWorker::FileFinish { id } => {
                if let Some(f) = files.remove(&id) {
                    let _ = f.send(FileCmd::Finish);
                }
            }
            ToWorker::FileClose { id } => {
                // the file thread ends when its channel closes
                files.remove(&id);
            }
        }
    }
}

/// A property named on the pipe.
fn property_named(name: String) -> Result<Property, EngineError> {
    Property::parse(&name).ok_or(EngineError::UnknownProperty(name))
}

/// Runs one file transcription on this thread (its VADs may not move).
/// `None` when the server closed it before the end.
fn transcribe_file(
    engine: &Engine,
    request: Result<FileRequest, EngineError>,
    cmds: mpsc::Receiver<FileCmd>,
    id: u64,
    tx: &Sender<FromWorker>,
) -> Option<Result<Vec<sis_engine::file::FileSentence>, EngineError>> {
    let mut t = match request.and_then(|r| engine.file_transcriber(r)) {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    for cmd in cmds {
        match cmd {
            FileCmd::Push(planar) => {
                if let Err(e) = t.push(&planar) {
                    return Some(Err(e));
                }
                let _ = tx.send(FromWorker::FileAck {
                    id,
                    recognised: t.recognised() as u64,
                });
            }
            FileCmd::Finish => return Some(t.finish()),
        }
    }
    None
}

/// What the loaded engine serves, for the server's routing.
fn info(engine: &Engine) -> Info {
    let mut properties: Vec<PropertyInfo> = Vec::new();
    for p in engine.packs() {
        for name in &p.properties {
            if properties.iter().any(|q| &q.name == name) {
                continue;
            }
            if let Some(prop) = Property::parse(name) {
                properties.push(PropertyInfo {
                    name: name.clone(),
                    serves: engine.serves(&prop),
                    realtime: engine.serves_realtime(&prop),
                    streaming: engine.realtime_is_streaming(&prop),
                });
            }
        }
    }
    Info {
        packs: engine
            .packs()
            .iter()
            .map(|p| PackInfo {
                name: p.name.clone(),
                kind: p.kind.as_str().to_string(),
                model_type: p.model_type.clone(),
                properties: p.properties.clone(),
                test_only: p.test_only,
                speakers: p.speakers.clone(),
            })
            .collect(),
        properties,
        has_vad: engine.has_vad(),
        has_punctuation: engine.has_punctuation(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tells the server, every [`TAKEN_EVERY`], how far each session's stream
/// worker has got, so its backlog (and so backpressure) is the same as in
/// one process.
fn report_taken(sessions: Sessions, engine: Arc<Engine>, tx: Sender<FromWorker>) {
    let mut ticks = 0u32;
    loop {
        std::thread::sleep(TAKEN_EVERY);
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(OBSERVED_EVERY_TICKS) {
            let observed = engine.take_observations();
            if !observed.is_empty() && tx.send(FromWorker::Observed(observed)).is_err() {
                return;
            }
        }
        let mut changed = Vec::new();
        for (&id, s) in lock(&sessions).iter_mut() {
            let taken = s.sent.saturating_sub(s.handle.backlog() as u64);
            if taken != s.reported {
                s.reported = taken;
                changed.push((id, taken));
            }
        }
        if !changed.is_empty() && tx.send(FromWorker::Taken(changed)).is_err() {
            return;
        }
    }
}

/// Encodes and writes messages; flushes when none is waiting. Exits the
/// process when the server is gone.
fn write_loop(out: File, rx: Receiver<FromWorker>) {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    let pumped = wire::pump(&rx, &mut w, |w, msg| {
        w.write_all(&wire::encode(&msg)?).map(|()| true)
    });
    if let Err(e) = pumped {
        // the server is gone (or a frame could not be encoded): nothing
        // this process does can reach anyone any more
        tracing::debug!(error = %e, "engine worker: cannot write to the server");
        std::process::exit(0);
    }
    // every sender is gone: the engine failed to load, LoadFailed is out
}

/// The protocol's output is a duplicate of stdout; stdout itself then
/// points at stderr, so native code that prints cannot corrupt the frames.
fn protocol_output() -> Result<File, String> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) and dup2 act on descriptors only; the
    // new descriptor is owned by the File below and by nothing else.
    unsafe {
        let fd = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(format!(
                "cannot duplicate stdout: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            return Err(format!(
                "cannot point stdout at stderr: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(File::from_raw_fd(fd))
    }
}

/// A worker never outlives the server: it is killed when the server dies,
/// and leaves SIGINT/SIGTERM (sent to a whole process group or service) to
/// the server, which stops gracefully and then closes the pipe.
fn orphan_guard() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and signal(SIG_IGN) change only this
    // process's signal dispositions; no memory is passed.
    unsafe {
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        if libc::getppid() == 1 {
            // the server died before the guard was set
            libc::_exit(0);
        }
    }
}
