//! Helpers shared by the streaming tests: test files made by Debian's ffmpeg
//! (and the repo's `amr-encode`) from synthetic tones, and signal checks.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `Some(reason)` when ffmpeg cannot be run, so tests can skip.
pub fn ffmpeg_missing() -> Option<String> {
    match Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`ffmpeg -version` exited with {s}")),
        Err(e) => Some(format!("ffmpeg not found ({e})")),
    }
}

/// Skips the calling test (returns) with a printed reason when ffmpeg is missing.
#[macro_export]
macro_rules! require_ffmpeg {
    () => {
        if let Some(why) = common::ffmpeg_missing() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// A synthetic source for ffmpeg's lavfi: mono 440 Hz, or stereo with
/// 440 Hz on the left and 1000 Hz on the right, at `rate` Hz.
pub fn tone(stereo: bool, rate: u32, seconds: f64) -> String {
    if stereo {
        format!("aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*1000*t):s={rate}:d={seconds}:c=stereo")
    } else {
        format!("aevalsrc=0.25*sin(2*PI*440*t):s={rate}:d={seconds}:c=mono")
    }
}

/// Runs `ffmpeg -f lavfi -i SOURCE ARGS... OUT` and returns OUT.
pub fn ffmpeg(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", source])
        .args(args)
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed for {name}: {args:?}");
    out
}

/// The repository's test-only AMR encoder (`cargo build -p sis-testkit`), if built.
pub fn amr_encoder() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AMR_ENCODE") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("amr-encode"))
        .find(|p| p.is_file())
}

/// Upward zero crossings per second over `x` (a crude but codec-proof
/// dominant-frequency estimate for a pure tone), with hysteresis.
pub fn tone_frequency(x: &[f32], rate: u32) -> f64 {
    let mut below = false;
    let mut crossings = 0usize;
    let (mut first, mut last) = (None, 0usize);
    for (i, &s) in x.iter().enumerate() {
        if s < -0.02 {
            below = true;
        } else if s > 0.02 && below {
            below = false;
            crossings += 1;
            first.get_or_insert(i);
            last = i;
        }
    }
    match first {
        Some(f) if crossings > 1 => (crossings - 1) as f64 * rate as f64 / (last - f) as f64,
        _ => 0.0,
    }
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The process's peak resident memory (VmHWM), in KiB.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
