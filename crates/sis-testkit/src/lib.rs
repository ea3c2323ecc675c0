//! Test-only helpers. Nothing in the server depends on this crate. What the
//! load generators (`rasr-load`, `short-load`) share: reading held-out WAV
//! clips, a server's CPU and memory from `/proc`, percentiles.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The rate every load generator sends.
pub const RATE: usize = 16_000;

/// The WAV files given: files as they are, directories' `*.wav` whose name
/// starts with `prefix`, in name order. None is an error.
pub fn wav_paths(inputs: &[PathBuf], prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|q| q.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
                .filter(|q| {
                    q.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(prefix))
                })
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        bail!("no WAV files given");
    }
    Ok(out)
}

/// The samples of a 16 kHz mono 16-bit PCM WAV file (RIFF chunks walked).
pub fn read_wav(path: &Path) -> anyhow::Result<Vec<i16>> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        bail!("{}: not a RIFF/WAVE file", path.display());
    }
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let mut at = 12;
    let mut fmt_ok = false;
    while at + 8 <= b.len() {
        let size = u32_at(at + 4).unwrap_or(0) as usize;
        let body = at + 8;
        let end = body.saturating_add(size).min(b.len());
        match &b[at..at + 4] {
            b"fmt " => {
                let tag = u16_at(body).unwrap_or(0);
                let ch = u16_at(body + 2).unwrap_or(0);
                let rate = u32_at(body + 4).unwrap_or(0);
                let bits = u16_at(body + 14).unwrap_or(0);
                if !(tag == 1 || tag == 0xFFFE) || ch != 1 || rate != RATE as u32 || bits != 16 {
                    bail!(
                        "{}: need 16 kHz mono 16-bit PCM (format {tag}, {ch} ch, {rate} Hz, {bits} bit)",
                        path.display()
                    );
                }
                fmt_ok = true;
            }
            b"data" if fmt_ok => {
                return Ok(b[body..end]
                    .chunks_exact(2)
                    .map(|s| i16::from_le_bytes([s[0], s[1]]))
                    .collect());
            }
            b"data" => bail!("{}: data chunk before fmt chunk", path.display()),
            _ => {}
        }
        at = end + (size & 1);
    }
    bail!("{}: no data chunk", path.display())
}

/// A server's CPU time and memory, and the machine's, from `/proc`.
pub mod procfs {
    fn clk_tck() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    /// utime + stime of a process, seconds (`pid` a number or "self").
    pub fn cpu_s(pid: &str) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // the fields after the command name (which may hold spaces and parentheses)
        let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        Some((utime + stime) / clk_tck())
    }

    /// A `Vm...:` line of /proc/PID/status, kB.
    pub fn status_kb(pid: &str, key: &str) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        s.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// A process and all its descendants (sisd's engine workers).
    pub fn tree(pid: &str) -> Vec<String> {
        let mut out = vec![pid.to_string()];
        let mut i = 0;
        while i < out.len() {
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", out[i])) {
                for t in tasks.flatten() {
                    if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                        out.extend(c.split_whitespace().map(str::to_string));
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// CPU seconds of a process and its descendants (None when it is gone).
    pub fn tree_cpu_s(pid: &str) -> Option<f64> {
        let own = cpu_s(pid)?;
        Some(own + tree(pid)[1..].iter().filter_map(|c| cpu_s(c)).sum::<f64>())
    }

    /// A `Vm...:` figure of a process plus its descendants', kB.
    pub fn tree_status_kb(pid: &str, key: &str) -> Option<u64> {
        let own = status_kb(pid, key)?;
        Some(
            own + tree(pid)[1..]
                .iter()
                .filter_map(|c| status_kb(c, key))
                .sum::<u64>(),
        )
    }

    /// CPU seconds the whole machine has been busy (not idle, not iowait).
    pub fn machine_busy_s() -> Option<f64> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<f64> = s
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 5 {
            return None;
        }
        Some((v.iter().sum::<f64>() - v[3] - v[4]) / clk_tck())
    }
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(pct(&v, 50.0), Some(10.0));
        assert_eq!(pct(&v, 95.0), Some(19.0));
        assert_eq!(pct(&v, 0.0), Some(1.0));
        assert_eq!(pct(&[], 50.0), None);
    }

    #[test]
    fn this_process_is_measured() {
        assert!(procfs::cpu_s("self").is_some_and(|s| s >= 0.0));
        assert!(procfs::tree_status_kb("self", "VmRSS:").is_some_and(|kb| kb > 0));
        assert!(procfs::machine_busy_s().is_some());
    }
}
