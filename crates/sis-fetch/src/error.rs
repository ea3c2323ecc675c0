//! The one error type of this crate and its stable kinds.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::address::BlockedRange;

/// Why a fetch, a callback or a configuration failed.
///
/// Messages never contain a whole URL (signed URLs carry credentials in their
/// query); they name the host and address where that helps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// An allow-list entry could not be parsed.
    #[error("invalid allow-list entry \"{entry}\": {reason}")]
    InvalidAllowEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A [`FetchPolicy`](crate::FetchPolicy) value is out of range, or the HTTP
    /// client could not be built.
    #[error("invalid fetch policy: {0}")]
    InvalidPolicy(String),
    /// The URL (or a redirect's `Location`) is not one this crate fetches.
    #[error("bad URL: {0}")]
    BadUrl(String),
    /// The host is, or resolved to, an address in a blocked range that is not
    /// allow-listed. Nothing was sent to it.
    #[error("refused to connect to {addr} (host {host}): {range} address is not allowed")]
    Forbidden {
        /// The host as the URL names it.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// The blocked range it lies in.
        range: BlockedRange,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve host {host}: {message}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's message.
        message: String,
    },
    /// The body is longer than the limit (by its `Content-Length`, or counted
    /// while streaming).
    #[error("the response body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The operation did not finish in time.
    #[error("{what} timed out after {}", human(*.after))]
    Timeout {
        /// What timed out: `connecting`, `the download`, `the callback`.
        what: &'static str,
        /// The time limit that ran out.
        after: Duration,
    },
    /// A download received no byte for the stall limit
    /// ([`FetchPolicy::stall_timeout`](crate::FetchPolicy::stall_timeout)).
    #[error("the download stalled: no data for {}", human(*.after))]
    Stalled {
        /// The stall limit.
        after: Duration,
    },
    /// A download was slower than its deadline allows: `total_timeout` plus
    /// the time its bytes take at `min_rate`.
    #[error(
        "the download is too slow: {bytes} bytes in {}, under the minimum of {min_rate} bytes/s",
        human(*.after)
    )]
    TooSlow {
        /// The bytes of the body received by then.
        bytes: u64,
        /// The deadline that ran out, from the start of the download.
        after: Duration,
        /// The minimum average rate, in bytes per second.
        min_rate: u64,
    },
    /// The final response of a download is not a success (2xx).
    #[error("the server answered HTTP {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// More redirects than allowed.
    #[error("more than {max} redirects")]
    TooManyRedirects {
        /// The limit.
        max: usize,
    },
    /// Connecting, sending or receiving failed.
    #[error("network error: {0}")]
    Network(String),
    /// Writing the downloaded file failed.
    #[error("cannot write the downloaded file: {0}")]
    Io(String),
    /// A `file:` data URL names a file that may not be read: outside the
    /// configured directory (after links are resolved), missing, or not a
    /// regular file.
    #[error("local file refused: {0}")]
    LocalFile(String),
    /// A header given to [`Fetcher::post_json`](crate::Fetcher::post_json) is
    /// not a valid HTTP header.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
}

/// The stable classification of a [`FetchError`], for mapping to API errors
/// in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FetchErrorKind {
    /// Invalid configuration ([`FetchError::InvalidAllowEntry`],
    /// [`FetchError::InvalidPolicy`]).
    Config,
    /// [`FetchError::BadUrl`].
    BadUrl,
    /// [`FetchError::Forbidden`].
    Forbidden,
    /// [`FetchError::TooLarge`].
    TooLarge,
    /// [`FetchError::Timeout`], [`FetchError::Stalled`],
    /// [`FetchError::TooSlow`].
    Timeout,
    /// [`FetchError::HttpStatus`].
    HttpStatus,
    /// [`FetchError::TooManyRedirects`].
    Redirects,
    /// [`FetchError::Resolve`], [`FetchError::Network`].
    Network,
    /// [`FetchError::Io`].
    Io,
    /// [`FetchError::InvalidHeader`].
    InvalidHeader,
    /// [`FetchError::LocalFile`].
    LocalFile,
}

impl FetchErrorKind {
    /// A stable snake_case name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchErrorKind::Config => "config",
            FetchErrorKind::BadUrl => "bad_url",
            FetchErrorKind::Forbidden => "forbidden_address",
            FetchErrorKind::TooLarge => "too_large",
            FetchErrorKind::Timeout => "timeout",
            FetchErrorKind::HttpStatus => "http_status",
            FetchErrorKind::Redirects => "too_many_redirects",
            FetchErrorKind::Network => "network",
            FetchErrorKind::Io => "io",
            FetchErrorKind::InvalidHeader => "invalid_header",
            FetchErrorKind::LocalFile => "local_file",
        }
    }
}

impl fmt::Display for FetchErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FetchError {
    /// The stable kind of this error.
    pub fn kind(&self) -> FetchErrorKind {
        match self {
            FetchError::InvalidAllowEntry { .. } | FetchError::InvalidPolicy(_) => {
                FetchErrorKind::Config
            }
            FetchError::BadUrl(_) => FetchErrorKind::BadUrl,
            FetchError::Forbidden { .. } => FetchErrorKind::Forbidden,
            FetchError::TooLarge { .. } => FetchErrorKind::TooLarge,
            FetchError::Timeout { .. }
            | FetchError::Stalled { .. }
            | FetchError::TooSlow { .. } => FetchErrorKind::Timeout,
            FetchError::HttpStatus { .. } => FetchErrorKind::HttpStatus,
            FetchError::TooManyRedirects { .. } => FetchErrorKind::Redirects,
            FetchError::Resolve { .. } | FetchError::Network(_) => FetchErrorKind::Network,
            FetchError::Io(_) => FetchErrorKind::Io,
            FetchError::InvalidHeader(_) => FetchErrorKind::InvalidHeader,
            FetchError::LocalFile(_) => FetchErrorKind::LocalFile,
        }
    }

    /// Converts a client error, recovering a [`FetchError`] raised inside the
    /// client (by the checking resolver) from its source chain.
    /// `connect_timeout` is the client's connect limit, the only timeout it
    /// enforces itself (the others wrap the whole operation).
    pub(crate) fn from_client(err: reqwest::Error, connect_timeout: Duration) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(inner) = e.downcast_ref::<FetchError>() {
                return inner.clone();
            }
            source = e.source();
        }
        if err.is_timeout() {
            return FetchError::Timeout {
                what: "connecting",
                after: connect_timeout,
            };
        }
        // The chain without the URL: reqwest's top-level message repeats it.
        let mut message = String::new();
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&e.to_string());
            source = e.source();
        }
        if message.is_empty() {
            message = err.without_url().to_string();
        }
        FetchError::Network(message)
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
