//! The HTTP client: URL checks, the checking resolver, downloads and
//! callbacks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::time::Instant;
use url::{Host, Url};

use crate::address::blocked_range;
use crate::allow::AllowList;
use crate::error::FetchError;
use crate::local::LocalDir;
use crate::policy::FetchPolicy;

/// URLs must be shorter than this many bytes.
pub const MAX_URL_LEN: usize = 2048;

/// The write buffer between the socket and the file.
const WRITE_BUFFER: usize = 256 * 1024;

/// A finished download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// Bytes written to the destination file.
    pub bytes: u64,
    /// The final response's `Content-Type`, when present and printable.
    pub content_type: Option<String>,
    /// How many redirects were followed.
    pub redirects: usize,
}

/// Downloads `data_url` files and POSTs callbacks under a [`FetchPolicy`].
///
/// Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Fetcher {
    policy: Arc<FetchPolicy>,
    client: reqwest::Client,
    /// [`FetchPolicy::local_dir`], resolved.
    local: Option<Arc<LocalDir>>,
}

impl Fetcher {
    /// Validates `policy` and builds the client: no proxy (environment proxy
    /// variables are ignored), no automatic redirects, and a resolver that
    /// refuses blocked addresses. A [`FetchPolicy::local_dir`] must exist
    /// and be a directory.
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetchError> {
        policy.validate()?;
        let local = match &policy.local_dir {
            Some(dir) => Some(Arc::new(LocalDir::new(dir)?)),
            None => None,
        };
        let allow = Arc::new(policy.allow.clone());
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .dns_resolver(Arc::new(CheckingResolver { allow }))
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("sisd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::InvalidPolicy(format!("cannot build the HTTP client: {e}")))?;
        Ok(Fetcher {
            policy: Arc::new(policy),
            client,
            local,
        })
    }

    /// The policy this fetcher enforces.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Checks `url` without any network access, for early validation when a
    /// job is created: shorter than [`MAX_URL_LEN`], scheme `http` or
    /// `https`, a host, no user info, and, when the host is an IP address
    /// or a localhost name (`localhost`, `*.localhost`: always the loopback
    /// addresses), that address allowed. Other host names are checked when
    /// fetched, after resolution. For callback URLs; data URLs are checked
    /// by [`Fetcher::check_data_url`].
    pub fn check_url(&self, url: &str) -> Result<(), FetchError> {
        self.parse_checked(url).map(|_| ())
    }

    /// [`Fetcher::check_url`] for a URL to [`download`](Fetcher::download):
    /// also a `file:` URL when [`FetchPolicy::local_dir`] is set, checked
    /// against the directory (the file exists, is a regular file under it
    /// once links are resolved, and is not over `max_bytes`).
    pub fn check_data_url(&self, url: &str) -> Result<(), FetchError> {
        match self.parse_local(url)? {
            Some((local, parsed)) => local.check(&parsed, self.policy.max_bytes),
            None => self.check_url(url),
        }
    }

    /// Downloads `url` into the file `dest` (created or truncated), streaming
    /// the body, and returns what was written.
    ///
    /// Redirects (301, 302, 303, 307, 308) are followed up to
    /// `max_redirects`, each target checked like the first URL before it is
    /// requested. The final response must be a success (2xx). A
    /// `Content-Length` over `max_bytes` is refused before the body is read,
    /// and the body is counted while it streams and cut at the first byte past
    /// the limit. The whole operation must end by `total_timeout` plus the
    /// time the bytes received so far take at `min_rate` (a deadline that
    /// grows with the body, so a trickle is cut off and a large file at a
    /// reasonable rate finishes: [`FetchError::TooSlow`]), and it fails as
    /// soon as no byte arrives for `stall_timeout` ([`FetchError::Stalled`]).
    /// On any error the partial file is removed.
    ///
    /// A `file:` URL (only with [`FetchPolicy::local_dir`]) is copied from
    /// that directory under the same size limit; see the crate documentation
    /// for what it may name.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<Download, FetchError> {
        if let Some((local, parsed)) = self.parse_local(url)? {
            let bytes = local.copy(&parsed, dest, self.policy.max_bytes).await?;
            return Ok(Download {
                bytes,
                content_type: None,
                redirects: 0,
            });
        }
        let clock = Clock {
            start: Instant::now(),
            policy: &self.policy,
        };
        self.download_inner(url, dest, &clock).await
    }

    /// POSTs `body` to `url` with `Content-Type: application/json` (unless
    /// `headers` sets another) and `headers`, and returns the response status,
    /// whatever it is.
    ///
    /// The same address rules apply; redirects are not followed (a 3xx status
    /// is returned as is). Bounded by `callback_timeout`. The response body is
    /// not read.
    pub async fn post_json(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(String, String)],
    ) -> Result<u16, FetchError> {
        let url = self.parse_checked(url)?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let invalid = || FetchError::InvalidHeader(name.clone());
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let header_value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            map.append(header_name, header_value);
        }
        if !map.contains_key(CONTENT_TYPE) {
            map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let send = self
            .client
            .post(url)
            .headers(map)
            .body(body.to_vec())
            .send();
        let limit = self.policy.callback_timeout;
        match tokio::time::timeout(limit, send).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(e)) => Err(FetchError::from_client(e, self.policy.connect_timeout)),
            Err(_) => Err(FetchError::Timeout {
                what: "the callback",
                after: limit,
            }),
        }
    }

    async fn download_inner(
        &self,
        url: &str,
        dest: &Path,
        clock: &Clock<'_>,
    ) -> Result<Download, FetchError> {
        let mut current = self.parse_checked(url)?;
        let mut redirects = 0;
        let mut response = loop {
            let response = clock
                .wait(self.client.get(current.clone()).send(), 0)
                .await?
                .map_err(|e| FetchError::from_client(e, self.policy.connect_timeout))?;
            let Some(next) = redirect_target(&current, &response)? else {
                break response;
            };
            if redirects == self.policy.max_redirects {
                return Err(FetchError::TooManyRedirects {
                    max: self.policy.max_redirects,
                });
            }
            // Checked before anything is sent to it; a host name is checked
            // again, after resolution, by the resolver when connecting.
            self.check_parsed(&next)?;
            redirects += 1;
            current = next;
        };

        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::HttpStatus {
                status: status.as_u16(),
            });
        }
        let max = self.policy.max_bytes;
        if response.content_length().is_some_and(|len| len > max) {
            return Err(FetchError::TooLarge { limit: max });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        let io = |e: std::io::Error| FetchError::Io(e.to_string());
        let file = tokio::fs::File::create(dest).await.map_err(io)?;
        let partial = PartialFile::new(dest);
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut written: u64 = 0;
        while let Some(chunk) = clock
            .wait(response.chunk(), written)
            .await?
            .map_err(|e| FetchError::from_client(e, self.policy.connect_timeout))?
        {
            let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            written = written.saturating_add(len);
            if written > max {
                return Err(FetchError::TooLarge { limit: max });
            }
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        out.into_inner().sync_all().await.map_err(io)?;
        partial.keep();
        Ok(Download {
            bytes: written,
            content_type,
            redirects,
        })
    }

    /// A `file:` URL and the directory it may name a file in; `None` for
    /// any other scheme; refused when no directory is configured.
    fn parse_local(&self, url: &str) -> Result<Option<(&LocalDir, Url)>, FetchError> {
        let is_file = url
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("file:"));
        if !is_file {
            return Ok(None);
        }
        let Some(local) = &self.local else {
            return Err(FetchError::BadUrl(
                "scheme \"file\" is not allowed (only http and https: no directory of job files is configured)".to_owned(),
            ));
        };
        if url.len() >= MAX_URL_LEN {
            return Err(url_too_long());
        }
        let parsed = Url::parse(url).map_err(|e| FetchError::BadUrl(format!("{e}")))?;
        Ok(Some((local, parsed)))
    }

    fn parse_checked(&self, url: &str) -> Result<Url, FetchError> {
        if url.len() >= MAX_URL_LEN {
            return Err(url_too_long());
        }
        let parsed = Url::parse(url).map_err(|e| FetchError::BadUrl(format!("{e}")))?;
        self.check_parsed(&parsed)?;
        Ok(parsed)
    }

    fn check_parsed(&self, url: &Url) -> Result<(), FetchError> {
        if url.as_str().len() >= MAX_URL_LEN {
            return Err(url_too_long());
        }
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(FetchError::BadUrl(format!(
                "scheme {scheme:?} is not allowed (only http and https)"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::BadUrl(
                "user info (credentials) in the URL is not allowed".to_owned(),
            ));
        }
        if url.port() == Some(0) {
            return Err(FetchError::BadUrl("port 0 is not allowed".to_owned()));
        }
        let host = url.host_str().unwrap_or_default();
        match url.host() {
            None => Err(FetchError::BadUrl("the URL has no host".to_owned())),
            Some(Host::Domain("")) => Err(FetchError::BadUrl("the URL has no host".to_owned())),
            Some(Host::Domain(name)) if is_localhost(name) => {
                localhost_addrs(&self.policy.allow, name).map(|_| ())
            }
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(addr)) => check_addr(&self.policy.allow, host, addr.into()),
            Some(Host::Ipv6(addr)) => check_addr(&self.policy.allow, host, addr.into()),
        }
    }
}

/// The time limits of one download: its deadline (`total_timeout` plus the
/// bytes received so far at `min_rate`) and the stall limit.
struct Clock<'a> {
    start: Instant,
    policy: &'a FetchPolicy,
}

impl Clock<'_> {
    /// The deadline after `received` bytes, as an offset from the start.
    fn allowed(&self, received: u64) -> Duration {
        let p = self.policy;
        if p.min_rate == 0 {
            return p.total_timeout;
        }
        let micros = u128::from(received) * 1_000_000 / u128::from(p.min_rate);
        let extra = Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX));
        p.total_timeout.saturating_add(extra)
    }

    /// Runs one network wait (a response's headers, or the next piece of a
    /// body after `received` bytes): whichever comes first of the stall limit
    /// (counted from now) and the deadline ends it with an error.
    async fn wait<F: std::future::Future>(
        &self,
        fut: F,
        received: u64,
    ) -> Result<F::Output, FetchError> {
        let allowed = self.allowed(received);
        let deadline = self.start.checked_add(allowed);
        let stall_at = Instant::now().checked_add(self.policy.stall_timeout);
        let stalled = match (stall_at, deadline) {
            (Some(s), Some(d)) => s < d,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let at = if stalled { stall_at } else { deadline };
        let Some(at) = at else {
            return Ok(fut.await);
        };
        match tokio::time::timeout_at(at, fut).await {
            Ok(out) => Ok(out),
            Err(_) if stalled => Err(FetchError::Stalled {
                after: self.policy.stall_timeout,
            }),
            Err(_) if self.policy.min_rate == 0 => Err(FetchError::Timeout {
                what: "the download",
                after: allowed,
            }),
            Err(_) => Err(FetchError::TooSlow {
                bytes: received,
                after: allowed,
                min_rate: self.policy.min_rate,
            }),
        }
    }
}

fn url_too_long() -> FetchError {
    FetchError::BadUrl(format!("longer than {} bytes", MAX_URL_LEN - 1))
}

/// The URL a redirect response points to, or `None` when `response` is not a
/// redirect to follow.
fn redirect_target(current: &Url, response: &reqwest::Response) -> Result<Option<Url>, FetchError> {
    let followed = [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ];
    if !followed.contains(&response.status()) {
        return Ok(None);
    }
    let Some(location) = response.headers().get(LOCATION) else {
        return Ok(None);
    };
    let location = location
        .to_str()
        .map_err(|_| FetchError::BadUrl("the redirect Location is not printable".to_owned()))?;
    if location.len() >= MAX_URL_LEN {
        return Err(url_too_long());
    }
    current
        .join(location)
        .map(Some)
        .map_err(|e| FetchError::BadUrl(format!("redirect Location: {e}")))
}

/// Refuses `addr` (reached through `host`) when it lies in a blocked range
/// and neither the host name nor the address is allow-listed.
fn check_addr(allow: &AllowList, host: &str, addr: IpAddr) -> Result<(), FetchError> {
    let Some(range) = blocked_range(addr) else {
        return Ok(());
    };
    if allow.allows_host(host) || allow.allows_addr(addr) {
        return Ok(());
    }
    Err(FetchError::Forbidden {
        host: host.to_owned(),
        addr,
        range,
    })
}

/// Names that are this machine whatever DNS says (RFC 6761 §6.3):
/// `localhost` and names under `.localhost`, with or without the final dot.
/// They are not resolved: they stand for [`LOCALHOST`], so a URL naming one
/// is judged when the job is created, like `127.0.0.1`, instead of failing
/// when it is fetched.
fn is_localhost(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// The addresses of a localhost name.
const LOCALHOST: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The addresses a localhost name `host` may reach: all of [`LOCALHOST`]
/// when the name is allow-listed, else those allowed by address (with
/// `127.0.0.1` allowed, `localhost` reaches `127.0.0.1`); refused when none is.
fn localhost_addrs(allow: &AllowList, host: &str) -> Result<Vec<IpAddr>, FetchError> {
    let named = allow.allows_host(host) || allow.allows_host(host.trim_end_matches('.'));
    let addrs: Vec<IpAddr> = LOCALHOST
        .into_iter()
        .filter(|a| named || allow.allows_addr(*a))
        .collect();
    if addrs.is_empty() {
        for addr in LOCALHOST {
            check_addr(allow, host, addr)?;
        }
    }
    Ok(addrs)
}

/// Resolves host names for the client and refuses the connection when any
/// address is blocked. The client connects only to the addresses returned
/// here, so what was checked is what is connected to (a DNS answer that
/// changes between the check and the connection cannot matter).
struct CheckingResolver {
    allow: Arc<AllowList>,
}

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_localhost(&host) {
                let addrs = localhost_addrs(&allow, &host)?;
                let addrs: reqwest::dns::Addrs =
                    Box::new(addrs.into_iter().map(|a| SocketAddr::new(a, 0)));
                return Ok(addrs);
            }
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| FetchError::Resolve {
                    host: host.clone(),
                    message: e.to_string(),
                })?;
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for addr in resolved {
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
            if addrs.is_empty() {
                return Err(FetchError::Resolve {
                    host,
                    message: "no addresses".to_owned(),
                }
                .into());
            }
            // Any blocked address refuses the host: a name that mixes public
            // and internal addresses is not trusted.
            for addr in &addrs {
                check_addr(&allow, &host, addr.ip())?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Removes the destination file when dropped, unless kept: a failed or
/// timed-out (dropped) download leaves nothing behind.
pub(crate) struct PartialFile {
    path: Option<PathBuf>,
}

impl PartialFile {
    pub(crate) fn new(path: &Path) -> PartialFile {
        PartialFile {
            path: Some(path.to_path_buf()),
        }
    }

    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: the download has already failed.
            let _ = std::fs::remove_file(path);
        }
    }
}
