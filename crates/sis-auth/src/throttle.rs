//! Locks a key (an access key, a user) after repeated authentication
//! failures: 5 consecutive failures lock it for 5 minutes, as the SIS gateway
//! does. In memory, per node; bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: i64,
    last: i64,
}

#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    lock_s: i64,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new(5, 300, 100_000)
    }
}

impl FailureLimiter {
    pub fn new(max_failures: u32, lock_s: i64, capacity: usize) -> FailureLimiter {
        FailureLimiter {
            max_failures: max_failures.max(1),
            lock_s,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `key` is locked at `now` (Unix seconds).
    pub fn is_locked(&self, key: &str, now: i64) -> bool {
        self.map().get(key).is_some_and(|e| e.locked_until > now)
    }

    /// Counts a failure; returns true when this failure locks the key.
    pub fn record_failure(&self, key: &str, now: i64) -> bool {
        let mut map = self.map();
        if map.len() >= self.capacity && !map.contains_key(key) {
            // Drop what is neither locked nor recent; if still full, the oldest half.
            let horizon = now - self.lock_s;
            map.retain(|_, e| e.locked_until > now || e.last > horizon);
            if map.len() >= self.capacity {
                let mut lasts: Vec<i64> = map.values().map(|e| e.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                map.retain(|_, e| e.last > cut);
            }
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            locked_until: 0,
            last: now,
        });
        if e.locked_until != 0 && e.locked_until <= now {
            // an expired lock starts a fresh count
            e.failures = 0;
            e.locked_until = 0;
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= self.max_failures && e.locked_until == 0 {
            e.locked_until = now + self.lock_s;
            return true;
        }
        false
    }

    /// A success clears the count (not an active lock).
    pub fn record_success(&self, key: &str, now: i64) {
        let mut map = self.map();
        if map.get(key).is_some_and(|e| e.locked_until <= now) {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_five_minutes() {
        let l = FailureLimiter::default();
        for i in 0..4 {
            assert!(!l.record_failure("AK", 100 + i));
            assert!(!l.is_locked("AK", 100 + i));
        }
        assert!(l.record_failure("AK", 104));
        assert!(l.is_locked("AK", 105));
        assert!(l.is_locked("AK", 403));
        assert!(!l.is_locked("AK", 404));
        assert!(!l.is_locked("OTHER", 105));
        // a success while locked does not unlock
        l.record_success("AK", 200);
        assert!(l.is_locked("AK", 200));
        // after the lock, counting starts again
        assert!(!l.record_failure("AK", 500));
        assert!(!l.is_locked("AK", 500));
    }

    #[test]
    fn success_resets_and_size_is_bounded() {
        let l = FailureLimiter::new(3, 300, 10);
        l.record_failure("A", 1);
        l.record_failure("A", 2);
        l.record_success("A", 3);
        l.record_failure("A", 4);
        l.record_failure("A", 5);
        assert!(!l.is_locked("A", 6));
        for i in 0..1000 {
            l.record_failure(&format!("k{i}"), 10 + i);
        }
        assert!(l.map().len() <= 10);
    }
}
