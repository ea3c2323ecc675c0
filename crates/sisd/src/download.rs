//! Downloads of catalog packs for `sisd models install NAME`: into a partial
//! file that survives failures, resumed with `Range: bytes=N-` (a server that
//! answers a range request with the whole file is read from the start), with
//! a progress bar on a terminal and progress lines otherwise. The sha256 is
//! checked by the installer once the file is whole (`sis_engine::install`).
//!
//! Not `sis-fetch`: that crate downloads clients' URLs under an address
//! policy; this is the operator's own choice of mirror, loopback included.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

/// Tries per download; each after the first resumes the partial file.
const ATTEMPTS: u32 = 5;
/// No byte for this long: the attempt fails (and the next resumes).
const STALL: Duration = Duration::from_secs(60);

/// One file to download.
pub struct Download<'a> {
    pub url: &'a str,
    /// The partial file (kept between attempts and runs).
    pub part: &'a Path,
    /// The size the catalog pins; a server offering another is refused.
    pub bytes: u64,
    /// For messages (the catalog name).
    pub label: &'a str,
    pub connect_timeout: Duration,
}

enum Failure {
    /// Worth another attempt (connection lost, server error, stall).
    Retry(anyhow::Error),
    /// Not (refused connection on the first try, 404, wrong size).
    Fatal(anyhow::Error),
}

/// Downloads `d.url` into `d.part` until it holds `d.bytes` bytes.
pub fn download(d: &Download<'_>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(d))
}

async fn run(d: &Download<'_>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(d.connect_timeout)
        .read_timeout(STALL)
        .user_agent(concat!("sisd/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut progress = Progress::new(d.label, d.bytes);
    for attempt in 1..=ATTEMPTS {
        match attempt_once(&client, d, attempt, &mut progress).await {
            Ok(()) => {
                progress.finish();
                return Ok(());
            }
            Err(Failure::Fatal(e)) => {
                progress.abandon();
                return Err(e);
            }
            Err(Failure::Retry(e)) if attempt < ATTEMPTS => {
                let wait = Duration::from_secs(1 << (attempt - 1));
                progress.note(&format!(
                    "{}: {e:#}; retrying in {} s",
                    d.label,
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
            }
            Err(Failure::Retry(e)) => {
                progress.abandon();
                return Err(e.context(format!(
                    "{}: gave up after {ATTEMPTS} attempts; {} is kept and the next run resumes it",
                    d.label,
                    d.part.display()
                )));
            }
        }
    }
    Err(anyhow!("{}: no attempt made", d.label))
}

/// An error and its causes ("error sending request: dns error: ...").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn part_len(part: &Path) -> u64 {
    fs::metadata(part).map(|m| m.len()).unwrap_or(0)
}

/// `bytes START-END/TOTAL` → (START, TOTAL when stated).
fn content_range(resp: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

async fn attempt_once(
    client: &reqwest::Client,
    d: &Download<'_>,
    attempt: u32,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Fatal(anyhow!("{}: {e}", d.part.display()));
    let mut have = part_len(d.part);
    if have > d.bytes {
        // not a prefix of the pinned file
        fs::remove_file(d.part).map_err(io)?;
        have = 0;
    }
    if have == d.bytes {
        return Ok(());
    }
    let mut req = client.get(d.url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        // an unreachable network or host: say so at once
        Err(e) if e.is_connect() && attempt == 1 => {
            return Err(Failure::Fatal(anyhow!(
                "cannot connect to {}: {} (no network? set --base-url to a mirror, or --url)",
                d.url,
                chain(&e)
            )))
        }
        Err(e) => return Err(Failure::Retry(anyhow!("{}", chain(&e)))),
    };
    let status = resp.status();
    let append = match status.as_u16() {
        206 => match content_range(&resp) {
            Some((start, total)) if start == have => {
                if let Some(total) = total {
                    check_size(d, total)?;
                }
                true
            }
            _ => {
                fs::remove_file(d.part).map_err(io)?;
                return Err(Failure::Retry(anyhow!(
                    "the server sent another range than asked; starting over"
                )));
            }
        },
        200 => {
            if have > 0 {
                progress.note(&format!(
                    "{}: the server does not resume downloads; starting over",
                    d.label
                ));
            }
            if let Some(total) = resp.content_length() {
                check_size(d, total)?;
            }
            have = 0;
            false
        }
        416 => {
            // the partial file is not a prefix the server can continue
            fs::remove_file(d.part).map_err(io)?;
            return Err(Failure::Retry(anyhow!(
                "the server cannot resume at byte {have}; starting over"
            )));
        }
        408 | 429 | 500..=599 => {
            return Err(Failure::Retry(anyhow!("HTTP {status} from {}", d.url)));
        }
        _ => return Err(Failure::Fatal(anyhow!("HTTP {status} from {}", d.url))),
    };
    progress.start(d.url, have);
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(d.part)
        .map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                have += bytes.len() as u64;
                if have > d.bytes {
                    drop(out);
                    let _ = fs::remove_file(d.part);
                    return Err(Failure::Fatal(anyhow!(
                        "{} sent more than the catalog's {} bytes for {}: not the pinned file",
                        d.url,
                        d.bytes,
                        d.label
                    )));
                }
                out.write_all(&bytes).map_err(io)?;
                progress.set(have);
            }
            Ok(None) => break,
            Err(e) => {
                // what arrived is kept: the next attempt resumes after it
                out.flush().map_err(io)?;
                return Err(Failure::Retry(anyhow!(
                    "connection lost after {have} of {} bytes: {}",
                    d.bytes,
                    chain(&e)
                )));
            }
        }
    }
    out.flush().map_err(io)?;
    if have < d.bytes {
        return Err(Failure::Retry(anyhow!(
            "the server closed the connection after {have} of {} bytes",
            d.bytes
        )));
    }
    Ok(())
}

/// A server that offers another size than the catalog's is not serving the
/// pinned file: refused before anything is downloaded.
fn check_size(d: &Download<'_>, total: u64) -> Result<(), Failure> {
    if total == d.bytes {
        return Ok(());
    }
    let _ = fs::remove_file(d.part);
    Err(Failure::Fatal(anyhow!(
        "{} offers {total} bytes but the catalog's {} is {} bytes: not the pinned file (refused)",
        d.url,
        d.label,
        d.bytes
    )))
}

/// A progress bar on a terminal; otherwise a line at start and every 10 %.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    /// The last tenth reported by a line.
    reported: u64,
}

impl Progress {
    fn new(label: &str, total: u64) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            reported: 0,
        }
    }

    fn start(&mut self, url: &str, from: u64) {
        let line = if from > 0 {
            format!(
                "{}: resuming at byte {from} of {} from {url}",
                self.label, self.total
            )
        } else {
            format!(
                "{}: downloading {} bytes from {url}",
                self.label, self.total
            )
        };
        self.note(&line);
        self.reported = from * 10 / self.total.max(1);
        if let Some(bar) = &self.bar {
            bar.set_position(from);
        }
    }

    fn set(&mut self, pos: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(pos),
            None => {
                let tenth = pos * 10 / self.total.max(1);
                if tenth > self.reported {
                    self.reported = tenth;
                    eprintln!(
                        "{}: {}% ({pos} of {} bytes)",
                        self.label,
                        tenth * 10,
                        self.total
                    );
                }
            }
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{}: downloaded {} bytes", self.label, self.total);
    }

    fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
