//! Accepting and serving HTTP/1.1 connections with the limits `axum::serve`
//! does not have (issue 11):
//!
//! - at most `max_connections` sockets at once (WebSockets included: the
//!   permit travels inside the socket into an upgrade); beyond it a new
//!   connection is closed at once, and `accept` errors (EMFILE...) are backed
//!   off instead of spun on;
//! - a connection must finish its first request's headers within
//!   `header_timeout` of being accepted, and later ones within
//!   `header_timeout` of their first byte;
//! - a keep-alive connection with no request for `idle_timeout` is closed,
//!   and so is one whose response the client stops reading for as long;
//! - a request body that sends nothing for `body_stall`, or is not complete
//!   `body_timeout` after its headers, fails ([`BodyTimeout`]); handlers
//!   answer 408 and the connection is closed after the response;
//! - on [`Shutdown`] the listener closes, idle connections close, and
//!   requests in flight finish (keep-alive off).
//!
//! A WebSocket upgrade ends the HTTP connection here; `ws.rs` bounds the
//! WebSocket itself (20 s without a message, clients that stop reading).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::shutdown::Shutdown;

/// Validated connection limits (`config.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_stall: Duration,
    pub body_timeout: Duration,
}

/// Open connections: one permit each, held by the socket itself.
pub struct Connections {
    sem: Arc<Semaphore>,
    max: usize,
}

impl Connections {
    pub fn new(max: usize) -> Connections {
        Connections {
            sem: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub fn open(&self) -> usize {
        self.max - self.sem.available_permits()
    }

    /// Resolves when every connection (WebSockets included) is closed.
    pub async fn all_closed(&self) {
        let n = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.sem.acquire_many(n).await;
    }
}

/// Accepts connections until the stop begins, then returns (the listener
/// closes). Connections carry on in their own tasks.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(5);
    let mut refused: u64 = 0;
    let mut last_warning: Option<Instant> = None;
    let mut warn = |what: &str, detail: String| {
        // at most one line per 10 s, however hard a client pushes
        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(detail, "{what}");
            last_warning = Some(Instant::now());
        }
    };
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.started() => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = Duration::from_millis(5);
                let Ok(permit) = connections.sem.clone().try_acquire_owned() else {
                    refused += 1;
                    warn(
                        "connection limit reached; new connections are closed",
                        format!("{} open, {refused} refused so far", connections.max),
                    );
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (router, shutdown) = (router.clone(), shutdown.clone());
                tokio::spawn(serve_connection(stream, permit, router, limits, shutdown));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS...: wait for descriptors to free up
                warn("accept failed; backing off", e.to_string());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.started() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracing::info!("listener closed");
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

const NONE: u64 = u64::MAX;

/// What a connection's socket and requests did, in ms since it was accepted.
struct Activity {
    epoch: Instant,
    /// Last byte read or written.
    last_io: AtomicU64,
    /// First byte read while no request was in flight (a new request head).
    head_started: AtomicU64,
    /// When the last request in flight finished.
    idle_since: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.head_started.store(NONE, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection is to be closed, in ms; `None` while a request
    /// is in flight (its body has its own limits; its handler may take long).
    fn deadline(&self, limits: &Limits) -> Option<u64> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let header = limits.header_timeout.as_millis() as u64;
        if self.requests.load(Ordering::SeqCst) == 0 {
            return Some(header);
        }
        match self.head_started.load(Ordering::SeqCst) {
            NONE => {
                let quiet = self
                    .idle_since
                    .load(Ordering::SeqCst)
                    .max(self.last_io.load(Ordering::Relaxed));
                Some(quiet + limits.idle_timeout.as_millis() as u64)
            }
            started => Some(started + header),
        }
    }
}

/// A request in flight on its connection, until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::SeqCst);
        a.head_started.store(NONE, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The socket, recording activity, and holding the connection's permit
/// for as long as it lives (after an upgrade too).
struct TrackedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// How often a connection that has served a request re-checks its limits.
const BUSY_CHECK: Duration = Duration::from_secs(1);

async fn serve_connection(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    router: Router,
    limits: Limits,
    shutdown: Shutdown,
) {
    let activity = Arc::new(Activity::new());
    let io = TrackedIo {
        stream,
        activity: activity.clone(),
        _permit: permit,
    };
    let svc_activity = activity.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = svc_activity.begin_request();
        let mut router = router.clone();
        async move {
            let _in_flight = in_flight;
            let timed_out = Arc::new(AtomicBool::new(false));
            let req = req.map(|b| Body::new(TimedBody::new(b, &limits, timed_out.clone())));
            let mut resp = match tower_service::Service::call(&mut router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if timed_out.load(Ordering::SeqCst) {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut stop = shutdown.subscribe();
    let mut stopping = false;
    loop {
        // a new request head may start at any time and bring its deadline
        // forward, so only the first one's deadline is slept on in one go
        let recheck = Instant::now() + BUSY_CHECK;
        let wake = match activity.deadline(&limits) {
            Some(ms) if activity.requests.load(Ordering::SeqCst) == 0 => {
                activity.epoch + Duration::from_millis(ms)
            }
            Some(ms) => recheck.min(activity.epoch + Duration::from_millis(ms)),
            None => recheck,
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {
                if activity.deadline(&limits).is_some_and(|ms| activity.now() >= ms) {
                    tracing::debug!(requests = activity.requests.load(Ordering::SeqCst), "connection closed: header or idle timeout");
                    return;
                }
            }
            _ = crate::shutdown::wait(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A request body that did not arrive in time (`--body-stall-s`,
/// `--body-timeout-s`).
#[derive(Debug)]
pub struct BodyTimeout {
    stalled: bool,
}

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.stalled {
            write!(f, "the request body stalled")
        } else {
            write!(f, "the request body did not arrive in time")
        }
    }
}

impl std::error::Error for BodyTimeout {}

/// Whether `e` (or what it wraps) is a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body under its stall and whole-body limits. Timers are made
/// only when the body is read and not already there.
struct TimedBody {
    inner: Incoming,
    stall: Duration,
    deadline: Instant,
    stall_at: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Incoming, limits: &Limits, timed_out: Arc<AtomicBool>) -> TimedBody {
        TimedBody {
            inner,
            stall: limits.body_stall,
            deadline: Instant::now() + limits.body_timeout,
            stall_at: None,
            timer: None,
            timed_out,
        }
    }

    fn fail(&mut self, stalled: bool) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.timed_out.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Err(Box::new(BodyTimeout { stalled }))))
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.timed_out.load(Ordering::SeqCst) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stall_at = None;
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let now = Instant::now();
        let stall_at = *this.stall_at.get_or_insert(now + this.stall);
        let at = stall_at.min(this.deadline);
        let stalled = stall_at <= this.deadline;
        if now >= at {
            return this.fail(stalled);
        }
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => this.fail(stalled),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
