//! Helpers shared by the tests and the decoder fuzz driver: test files made
//! by Debian's ffmpeg (and the repo's `amr-encode`) from synthetic tones or
//! real speech, and signal checks.
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
    run_ffmpeg(
        dir,
        name,
        &[
            "-f".as_ref(),
            "lavfi".as_ref(),
            "-i".as_ref(),
            source.as_ref(),
        ],
        args,
    )
}

/// Runs `ffmpeg -i INPUT ARGS... OUT` and returns OUT.
pub fn ffmpeg_file(dir: &Path, name: &str, input: &Path, args: &[&str]) -> PathBuf {
    run_ffmpeg(dir, name, &["-i".as_ref(), input.as_os_str()], args)
}

fn run_ffmpeg(dir: &Path, name: &str, input: &[&std::ffi::OsStr], args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(input)
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

/// The WAV files of real speech under `dir`, or `SIS_SHARED_AUDIO`, or
/// `../shared/audio` next to the repository (never committed), one level
/// of folders deep, sorted.
pub fn speech_files(dir: Option<&Path>) -> Vec<PathBuf> {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SIS_SHARED_AUDIO").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/audio"));
    let entries = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let mut found: Vec<PathBuf> = entries(&dir)
        .into_iter()
        .flat_map(|p| if p.is_dir() { entries(&p) } else { vec![p] })
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    found.sort();
    found
}

/// One clip of real speech for test inputs (see [`speech_files`]); `None`
/// when there is none.
pub fn speech_clip() -> Option<PathBuf> {
    let files = speech_files(None);
    files
        .iter()
        .find(|p| p.ends_with("sherpa-onnx-paraformer-zh-int8-2025-10-07/1.wav"))
        .or(files.first())
        .cloned()
}

/// Pseudo-random bytes (a fixed LCG, so failures reproduce).
pub fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// CRC-32 of Ogg pages (polynomial 0x04c11db7, no reflection, initial 0).
pub fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Encodes headerless 16-bit PCM (`raw`) with the repository's AMR encoder
/// (`kind`: "nb" or "wb"); `None` when it is not built.
pub fn amr_encode(dir: &Path, name: &str, kind: &str, raw: &Path) -> Option<PathBuf> {
    let encoder = amr_encoder()?;
    let out = dir.join(name);
    let status = Command::new(encoder)
        .arg(kind)
        .arg(raw)
        .arg(&out)
        .status()
        .expect("run amr-encode");
    assert!(status.success(), "amr-encode {kind} failed");
    Some(out)
}
