//! The limits and allow-list of a [`Fetcher`](crate::Fetcher).

use std::path::PathBuf;
use std::time::Duration;

use crate::allow::AllowList;
use crate::error::FetchError;

/// The largest body [`FetchPolicy::default`] downloads: 300 MiB (SIS accepts
/// recorded files up to 300 MB).
pub const DEFAULT_MAX_BYTES: u64 = 300 * 1024 * 1024;

/// The most redirects a policy may allow.
pub const MAX_REDIRECTS_LIMIT: usize = 20;

/// What a [`Fetcher`](crate::Fetcher) may reach, and for how long and how much.
///
/// Validated once by [`Fetcher::new`](crate::Fetcher::new).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Hosts and networks exempt from the blocked ranges.
    pub allow: AllowList,
    /// The largest body a download may write, in bytes (at least 1).
    pub max_bytes: u64,
    /// The limit on establishing one connection (DNS and TCP and TLS).
    pub connect_timeout: Duration,
    /// The base of a download's deadline: a download (every redirect hop
    /// and the body) must be done within `total_timeout` plus the time its
    /// size takes at [`min_rate`](FetchPolicy::min_rate). The deadline grows
    /// with the bytes received, so a body that arrives slower than
    /// `min_rate` on average (after this grace) is cut off, while a large
    /// file at a reasonable rate always finishes.
    pub total_timeout: Duration,
    /// The average rate, in bytes per second, a download must keep beyond
    /// `total_timeout`; 0: no rate is required (the deadline is
    /// `total_timeout` itself).
    pub min_rate: u64,
    /// The longest a download may go without receiving a byte (waiting for
    /// each response's headers, or between pieces of the body).
    pub stall_timeout: Duration,
    /// The most redirects a download follows (0 to
    /// [`MAX_REDIRECTS_LIMIT`]).
    pub max_redirects: usize,
    /// The limit on a whole callback POST, until its response status.
    pub callback_timeout: Duration,
    /// The directory whose regular files a data URL may name as
    /// `file:///PATH` (see the `local` rules in the crate documentation);
    /// `None`: `file:` URLs are refused like any other scheme.
    pub local_dir: Option<PathBuf>,
}

impl Default for FetchPolicy {
    /// Nothing allow-listed, 300 MiB, 10 s to connect, a download deadline
    /// of 60 s plus 1 s per 100 kB received, 15 s without data at most,
    /// 5 redirects, 10 s per callback, no local files.
    fn default() -> FetchPolicy {
        FetchPolicy {
            allow: AllowList::none(),
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            min_rate: 100_000,
            stall_timeout: Duration::from_secs(15),
            max_redirects: 5,
            callback_timeout: Duration::from_secs(10),
            local_dir: None,
        }
    }
}

impl FetchPolicy {
    /// Checks that every limit is in range.
    pub fn validate(&self) -> Result<(), FetchError> {
        let bad = |what: &str| Err(FetchError::InvalidPolicy(what.to_owned()));
        if self.max_bytes == 0 {
            return bad("max_bytes must be at least 1");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout must be positive");
        }
        if self.total_timeout.is_zero() {
            return bad("total_timeout must be positive");
        }
        if self.stall_timeout.is_zero() {
            return bad("stall_timeout must be positive");
        }
        if self.callback_timeout.is_zero() {
            return bad("callback_timeout must be positive");
        }
        if self.max_redirects > MAX_REDIRECTS_LIMIT {
            return Err(FetchError::InvalidPolicy(format!(
                "max_redirects must be at most {MAX_REDIRECTS_LIMIT}"
            )));
        }
        Ok(())
    }
}
