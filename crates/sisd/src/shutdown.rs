//! The graceful stop: SIGTERM or SIGINT starts it once; listeners, HTTP
//! connections, real-time sessions and job workers (`sis_jobs::Stop`)
//! watch it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Whether the stop has begun, and by when real-time sessions must end.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<Option<Instant>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Shutdown {
    /// Starts the stop (once); real-time sessions get `grace` to finish.
    pub fn begin(&self, grace: Duration) {
        self.tx.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(Instant::now() + grace);
                true
            } else {
                false
            }
        });
    }

    /// Whether the stop has begun (the server is draining).
    pub fn begun(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// A receiver for [`Shutdown::wait`] kept by a long-lived task.
    pub fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.tx.subscribe()
    }

    /// Resolves when the stop has begun, with the real-time deadline.
    pub async fn started(&self) -> Instant {
        wait(&mut self.subscribe()).await
    }
}

/// Resolves when the stop has begun, with the real-time deadline.
pub async fn wait(rx: &mut watch::Receiver<Option<Instant>>) -> Instant {
    let deadline = rx.wait_for(Option::is_some).await.map(|d| *d);
    match deadline {
        Ok(d) => d.unwrap_or_else(Instant::now),
        // the sender lives as long as any Shutdown; never here in practice
        Err(_) => std::future::pending().await,
    }
}

/// Resolves on SIGTERM or SIGINT, with the signal's name.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server gracefully");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
