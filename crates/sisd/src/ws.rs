//! WebSocket plumbing for the real-time APIs (RASR, real-time TTS; the
//! short-audio WebSocket next), so each speaks only its protocol:
//!
//! - **auth on upgrade**: [`accept`] takes the caller's [`Principal`], which
//!   only the auth layer makes, so an endpoint cannot upgrade a request that
//!   was not authenticated (a refused upgrade gets the JSON error and status
//!   before any upgrade);
//! - **frame and buffer limits**: the largest message, and outgoing bytes
//!   held for a slow client (pongs included), per [`Limits`];
//! - **timers**: [`Socket::recv`] gives up after the idle limit,
//!   every send after the send limit, a close handshake after the close
//!   limit, and [`Limits::lifetime`] bounds a connection;
//! - **ping/pong**: the WebSocket layer queues the pong (one at most);
//!   [`Socket::flush`] sends it within the send limit, so a client that
//!   pings but does not read is dropped;
//! - **close codes** ([`close`]) and the close handshake;
//! - the subprotocol: [`SUBPROTOCOL`] when offered, nothing else;
//! - the count of open connections (`/health`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};

use crate::errors::{self, AppError, MessageError};
use crate::state::Principal;

/// WebSocket close codes the server sends (RFC 6455 §7.4.1).
pub mod close {
    /// The exchange is over (after a FATAL_ERROR too).
    pub const NORMAL: u16 = 1000;
    /// The server is stopping.
    pub const GOING_AWAY: u16 = 1001;
    /// The server cannot go on with the connection (its engine stopped).
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// The limits of one kind of real-time connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest message (frame or reassembled message) accepted.
    pub max_message: usize,
    /// No message from the client for this long ends the connection.
    pub idle: Duration,
    /// A client that does not take a message for this long (it stopped
    /// reading and the socket buffers are full) is dropped.
    pub send: Duration,
    /// After a close frame, how long the client has to answer with its own.
    pub close: Duration,
    /// Longest connection.
    pub lifetime: Duration,
    /// Outgoing bytes buffered before a write is pushed to the socket, and
    /// the most that may wait for the client; beyond it sends wait (and
    /// time out after `send`).
    pub write_buffer: usize,
    pub max_write_buffer: usize,
    /// The buffer socket reads go into (tungstenite's default, 128 KiB,
    /// ends up resident per connection as audio streams through it: most of
    /// a real-time stream's memory). Larger messages still arrive whole.
    pub read_buffer: usize,
}

/// Real-time recognition (SIS-API.md §6): 20 s idle and send limits, 5 h.
pub const REALTIME: Limits = Limits {
    max_message: 1 << 20,
    idle: Duration::from_secs(20),
    send: Duration::from_secs(20),
    close: Duration::from_secs(2),
    lifetime: Duration::from_secs(5 * 3600),
    write_buffer: 16 * 1024,
    max_write_buffer: 128 * 1024,
    read_buffer: 8 * 1024,
};

/// Real-time synthesis (SIS-API.md §9.1): one START of at most 500
/// characters (64 KiB, as the `/tts` body), 20 s to send it, 20 s for each
/// audio message to be taken, 10 minutes in all.
pub const RTTS: Limits = Limits {
    max_message: crate::state::MAX_TTS_BODY_BYTES,
    lifetime: Duration::from_secs(10 * 60),
    ..REALTIME
};

/// The subprotocol the server answers when a client offers it (the
/// console does, beside its `sis-token.<token>`, `auth.rs`): a browser
/// drops a connection whose answer chooses none of the protocols it
/// offered. The token subprotocol is never chosen, so never echoed.
pub const SUBPROTOCOL: &str = "sis";

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

/// Upgrades an authenticated request (`_caller`) to a WebSocket under
/// `limits`, counted in `open` while it lives, and runs `serve` on it.
pub fn accept<F, Fut>(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    _caller: &Principal,
    limits: Limits,
    open: &Arc<AtomicUsize>,
    serve: F,
) -> Result<Response, AppError>
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let upgrade = upgrade.map_err(|_| errors::not_a_websocket())?;
    let open = open.clone();
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(limits.max_message)
        .read_buffer_size(limits.read_buffer)
        .write_buffer_size(limits.write_buffer)
        .max_write_buffer_size(limits.max_write_buffer)
        .on_upgrade(move |ws| async move {
            let _open = OpenConnection::count(&open);
            serve(Socket { ws, limits }).await
        })
        .into_response())
}

/// What the client sent.
pub enum Inbound {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A ping: its pong is queued; [`Socket::flush`] sends it.
    Ping,
    Pong,
    /// A close frame, the end of the stream, or a broken connection.
    Closed,
    /// Nothing for the idle limit.
    Idle,
}

/// An upgraded connection under its [`Limits`].
pub struct Socket {
    ws: WebSocket,
    limits: Limits,
}

impl Socket {
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The next message, waiting at most the idle limit. Cancel-safe.
    pub async fn recv(&mut self) -> Inbound {
        self.recv_within(self.limits.idle).await
    }

    /// The next message, waiting at most `limit` ([`Inbound::Idle`] after
    /// it). Cancel-safe.
    pub async fn recv_within(&mut self, limit: Duration) -> Inbound {
        match tokio::time::timeout(limit, self.ws.recv()).await {
            Err(_) => Inbound::Idle,
            Ok(None) | Ok(Some(Err(_))) => Inbound::Closed,
            Ok(Some(Ok(m))) => match m {
                Message::Text(t) => Inbound::Text(t),
                Message::Binary(b) => Inbound::Binary(b),
                Message::Ping(_) => Inbound::Ping,
                Message::Pong(_) => Inbound::Pong,
                Message::Close(_) => Inbound::Closed,
            },
        }
    }

    /// Sends a text message; false when the client does not take it within
    /// the send limit (or is gone).
    pub async fn send_text(&mut self, text: String) -> bool {
        let sent = tokio::time::timeout(self.limits.send, self.ws.send(Message::Text(text.into())));
        matches!(sent.await, Ok(Ok(())))
    }

    /// Sends a binary message; false when the client does not take it
    /// within the send limit (or is gone).
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> bool {
        let sent = tokio::time::timeout(
            self.limits.send,
            self.ws.send(Message::Binary(bytes.into())),
        );
        matches!(sent.await, Ok(Ok(())))
    }

    /// Sends what is waiting (the pong to a ping); false when the client
    /// does not take it within the send limit.
    pub async fn flush(&mut self) -> bool {
        let flushed =
            tokio::time::timeout(self.limits.send, futures_util::SinkExt::flush(&mut self.ws));
        matches!(flushed.await, Ok(Ok(())))
    }

    /// Sends a close frame (within the send limit); true when sent.
    pub async fn close_frame(&mut self, code: u16, reason: &'static str) -> bool {
        let close = self.ws.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })));
        matches!(
            tokio::time::timeout(self.limits.send, close).await,
            Ok(Ok(()))
        )
    }

    /// A close frame, then the client's answer for at most the close limit,
    /// reading (and dropping) what it still sends: closing on unread data
    /// would reset the connection before the client reads what was sent.
    pub async fn close_handshake(&mut self, code: u16, reason: &'static str) {
        if !self.close_frame(code, reason).await {
            return;
        }
        let _ = tokio::time::timeout(self.limits.close, async {
            while let Some(Ok(m)) = self.ws.recv().await {
                if let Message::Close(_) = m {
                    break;
                }
            }
        })
        .await;
    }
}

/// How a WebSocket session (RASR) or connection (RTTS) ended, for its one
/// log line: `end`, `cancel`, `refused`, `client_gone`, `error`,
/// `idle_timeout`, `too_long`, `shutdown`, `engine_failed` (each handler
/// documents the ones it uses), and the error the client was told, if any.
pub(crate) struct Ending {
    pub(crate) how: &'static str,
    pub(crate) error: Option<MessageError>,
}

impl Ending {
    pub(crate) fn new(how: &'static str) -> Ending {
        Ending { how, error: None }
    }

    pub(crate) fn error(how: &'static str, e: MessageError) -> Ending {
        Ending {
            how,
            error: Some(e),
        }
    }
}
