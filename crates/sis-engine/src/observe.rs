//! What the engine measures of its own work for the server's metrics: each
//! multi-stream decode call's size, each utterance's wait in the queue and
//! its real-time factor. Observations go into a bounded buffer that the
//! owner drains ([`Engine::take_observations`](crate::Engine::take_observations));
//! when nobody drains it, new ones are dropped (and counted), so an engine
//! without a metrics reader never grows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Observations kept until drained.
pub const CAPACITY: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Observation {
    /// A real-time multi-stream decode call of this many streams.
    StreamBatch(u32),
    /// An utterance (short audio, flash) decode call of this many segments.
    UtteranceBatch(u32),
    /// An utterance waited this long (s) in the queue before its decode.
    QueueWait(f32),
    /// An utterance's decode time over its audio's duration.
    RealTimeFactor(f32),
}

#[derive(Debug, Default)]
pub struct Observer {
    kept: Mutex<Vec<Observation>>,
    dropped: AtomicU64,
}

impl Observer {
    pub fn record(&self, o: Observation) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < CAPACITY {
            kept.push(o);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Everything recorded since the last call.
    pub fn take(&self) -> Vec<Observation> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Observations dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_drained() {
        let o = Observer::default();
        for i in 0..CAPACITY + 10 {
            o.record(Observation::StreamBatch(i as u32));
        }
        assert_eq!(o.dropped(), 10);
        let got = o.take();
        assert_eq!(got.len(), CAPACITY);
        assert_eq!(got[3], Observation::StreamBatch(3));
        assert!(o.take().is_empty());
        o.record(Observation::QueueWait(0.5));
        assert_eq!(o.take(), vec![Observation::QueueWait(0.5)]);
    }
}
