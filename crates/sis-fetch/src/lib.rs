//! Outbound HTTP for recorded-file transcription jobs: downloading a job's
//! `data_url` into a file and POSTing results to its `callback_url`, without
//! letting a caller make the server reach its own network (server-side
//! request forgery).
//!
//! # The rules
//!
//! - Only `http` and `https` URLs, with a host, without user info, shorter
//!   than [`MAX_URL_LEN`] bytes. Proxy environment variables are ignored: a
//!   proxy would connect on our behalf to addresses we never checked.
//! - Every address a request would connect to is checked first. An IP-literal
//!   host is checked as written ([`Fetcher::check_url`] does this at job
//!   creation, without network access). A host name is resolved, and refused
//!   if **any** of its addresses is blocked; the connection then goes only to
//!   the addresses that were checked (they are handed to the HTTP client by
//!   the resolver itself), so a DNS answer that changes between the check and
//!   the connection (DNS rebinding) cannot reach a blocked address.
//! - Blocked by default ([`blocked_range`]): IPv4 `0.0.0.0/8`, `10.0.0.0/8`,
//!   `100.64.0.0/10`, `127.0.0.0/8`, `169.254.0.0/16` (with the cloud metadata
//!   address `169.254.169.254`), `172.16.0.0/12`, `192.0.0.0/24`,
//!   `192.168.0.0/16`, `198.18.0.0/15`, `224.0.0.0/4`, `240.0.0.0/4` and
//!   `255.255.255.255`; IPv6 `::`, `::1`, `fc00::/7`, `fe80::/10`,
//!   `fec0::/10`, `ff00::/8`, `64:ff9b:1::/48` and Teredo `2001::/32`. IPv6
//!   forms that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
//!   IPv4-compatible `::/96`, `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96`, 6to4
//!   `2002::/16`) are judged by that IPv4 address.
//! - The operator's [`AllowList`] (configuration, and `SIS_FETCH_ALLOW`, e.g.
//!   `127.0.0.1` for local testing) exempts a URL whose host is exactly an
//!   allow-listed name, and an address inside an allow-listed network.
//! - Downloads follow at most [`FetchPolicy::max_redirects`] redirects, and
//!   every target is checked by the same rules before anything is sent to it.
//!   Redirects are followed here, not inside the HTTP client, so that a
//!   refusal is the same typed error at every hop.
//! - Downloads stream to a file, stop as soon as [`FetchPolicy::max_bytes`] is
//!   exceeded (by `Content-Length` before reading, or counted while
//!   streaming). A download's deadline is [`FetchPolicy::total_timeout`] plus
//!   the time the bytes received so far take at [`FetchPolicy::min_rate`]
//!   (so a body that trickles in is cut off, and a large file at a
//!   reasonable rate finishes), and it fails when no byte arrives for
//!   [`FetchPolicy::stall_timeout`].
//! - `localhost` and names under `.localhost` are never resolved: they stand
//!   for `127.0.0.1` and `::1` (RFC 6761), so they are judged like those
//!   addresses when a job is created, and reach only the ones allowed.
//! - Callbacks ([`Fetcher::post_json`]) obey the same address rules, follow no
//!   redirect, and are bounded by [`FetchPolicy::callback_timeout`].
//! - `file:` data URLs ([`Fetcher::check_data_url`], [`Fetcher::download`])
//!   are refused unless [`FetchPolicy::local_dir`] names a directory; then a
//!   URL may name a regular file under it, and nothing else: no `..`, no
//!   path outside it, no symbolic link leading out of it (checked on the
//!   canonical path), no FIFO, device, socket or directory (checked before
//!   opening, and on the opened file, which is opened without following a
//!   link and without blocking), at most [`FetchPolicy::max_bytes`]. A
//!   redirect never leads to a `file:` URL.
//!
//! Every failure is a [`FetchError`] whose [`FetchError::kind`] is stable, so
//! the server maps them to SIS errors in one place.
//!
//! ```no_run
//! # async fn job() -> Result<(), sis_fetch::FetchError> {
//! use sis_fetch::{AllowList, FetchPolicy, Fetcher};
//!
//! // Once, at start-up: configuration errors surface here.
//! let allow = AllowList::parse("files.example.com")?.union(&AllowList::from_env()?);
//! let fetcher = Fetcher::new(FetchPolicy { allow, ..FetchPolicy::default() })?;
//!
//! // At job creation: no network access.
//! let data_url = "https://files.example.com/call.wav";
//! fetcher.check_url(data_url)?;
//!
//! // In the job.
//! let got = fetcher.download(data_url, std::path::Path::new("/var/lib/sisd/job.wav")).await?;
//! println!("{} bytes of {:?}", got.bytes, got.content_type);
//! let status = fetcher
//!     .post_json("https://hooks.example.com/sis", br#"{"status":"done"}"#, &[])
//!     .await?;
//! # let _ = status;
//! # Ok(())
//! # }
//! ```

mod address;
mod allow;
mod error;
mod fetcher;
mod local;
mod policy;

pub use address::{blocked_range, is_blocked, BlockedRange, Cidr};
pub use allow::{AllowList, ALLOW_ENV};
pub use error::{FetchError, FetchErrorKind};
pub use fetcher::{Download, Fetcher, MAX_URL_LEN};
pub use policy::{FetchPolicy, DEFAULT_MAX_BYTES, MAX_REDIRECTS_LIMIT};
