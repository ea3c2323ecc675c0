//! The decoder fuzz targets, shared by the fuzz driver
//! (`examples/fuzz_decoders.rs`) and the regression replay
//! (`tests/regressions.rs`): the seed files of each target, the mutations,
//! and the checks one input goes through.
//!
//! A target is one decoder of the one decode path; its seeds are real speech
//! (`../shared/audio`) encoded by ffmpeg (and `amr-encode` for AMR) into the
//! containers that decoder reads. An input runs through both APIs and must
//! (1) give the same answer in memory and from a file, (2) give only finite
//! samples in [-1, 1] in contiguous chunks, (3) never report an I/O error for
//! bytes that are all there. Panics, hangs and memory are watched by the
//! driver (a panic hook, a per-input time limit, a counting allocator).
//! The equivalence table (`tests/equivalence.rs`) runs its rows through the
//! same [`exercise`]. Includers also declare `mod common;`.
#![allow(dead_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use sis_audio::stream::{self, FileFormat, PcmStream, StreamLimits};
use sis_audio::{decode, detect, AudioError, DecodeLimits};
use sis_core::AudioFormat;

/// One decoder of the one path, and the files that reach it.
pub struct Target {
    pub name: &'static str,
    /// What a short-audio client would declare for these files.
    pub declared: AudioFormat,
    /// ffmpeg output arguments per seed file (after `-i CLIP -t SECONDS`),
    /// space-separated; none for the AMR targets, which use `amr-encode`.
    pub encodings: &'static [&'static str],
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "wav",
        declared: AudioFormat::Wav,
        encodings: &[
            "-ar 16000 -ac 1 -c:a pcm_s16le -f wav",
            "-ar 8000 -ac 2 -c:a pcm_s16le -f wav",
            "-ar 8000 -ac 1 -c:a pcm_alaw -f wav",
            "-ar 16000 -ac 1 -c:a pcm_mulaw -f wav",
            "-ar 16000 -ac 1 -c:a pcm_f32le -f wav",
            "-ar 16000 -ac 2 -c:a pcm_s24le -f wav",
            "-ar 8000 -ac 1 -c:a pcm_u8 -f wav",
        ],
    },
    Target {
        name: "raw",
        declared: AudioFormat::Pcm16k16bit,
        encodings: &[
            "-ar 16000 -ac 1 -f s16le",
            "-ar 8000 -ac 1 -f alaw",
            "-ar 16000 -ac 1 -f mulaw",
        ],
    },
    Target {
        name: "amr",
        declared: AudioFormat::Amr,
        encodings: &[],
    },
    Target {
        name: "amrwb",
        declared: AudioFormat::AmrWb,
        encodings: &[],
    },
    Target {
        name: "mp3",
        declared: AudioFormat::Mp3,
        encodings: &[
            "-ar 16000 -ac 1 -c:a libmp3lame -b:a 32k -f mp3",
            "-ar 8000 -ac 1 -c:a libmp3lame -b:a 16k -f mp3",
            "-ar 44100 -ac 2 -c:a libmp3lame -b:a 64k -f mp3",
        ],
    },
    Target {
        name: "aac",
        declared: AudioFormat::Aac,
        encodings: &[
            "-ar 16000 -ac 1 -c:a aac -b:a 48k -f adts",
            "-ar 16000 -ac 2 -c:a aac -b:a 64k -f adts",
        ],
    },
    Target {
        name: "m4a",
        declared: AudioFormat::Aac,
        encodings: &[
            "-ar 16000 -ac 1 -c:a aac -b:a 48k -f ipod",
            "-ar 16000 -ac 1 -c:a aac -b:a 48k -movflags +faststart -f ipod",
            "-ar 16000 -ac 2 -c:a aac -b:a 64k -movflags frag_keyframe+empty_moov -f mp4",
        ],
    },
    Target {
        name: "flac",
        declared: AudioFormat::Auto,
        encodings: &[
            "-ar 16000 -ac 1 -c:a flac -f flac",
            "-ar 8000 -ac 2 -c:a flac -f flac",
            "-ar 16000 -ac 1 -c:a flac -f ogg",
        ],
    },
    Target {
        name: "vorbis",
        declared: AudioFormat::Auto,
        encodings: &[
            "-ar 16000 -ac 1 -c:a libvorbis -f ogg",
            "-ar 16000 -ac 2 -c:a libvorbis -f ogg",
        ],
    },
    Target {
        name: "opus",
        declared: AudioFormat::Auto,
        encodings: &[
            "-ar 16000 -ac 1 -c:a libopus -b:a 24k -f ogg",
            "-ar 48000 -ac 2 -c:a libopus -b:a 48k -f ogg",
        ],
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The raw formats the `raw` target's seeds are in, by seed index.
const RAW_FORMATS: [AudioFormat; 3] = [
    AudioFormat::Pcm16k16bit,
    AudioFormat::Alaw8k8bit,
    AudioFormat::Ulaw16k8bit,
];

/// The format an input of `target` made from seed `seed` is read as.
pub fn declared(target: &Target, seed: usize) -> AudioFormat {
    if target.name == "raw" {
        RAW_FORMATS[seed % RAW_FORMATS.len()]
    } else {
        target.declared
    }
}

// ------------------------------------------------------- counting allocator

/// A global allocator for the fuzz driver and the regression replay (each
/// declares it as its `#[global_allocator]`).
/// Counts live heap bytes and their peak; refuses an allocation that would
/// take the total past `LIMIT` (0: no limit), which aborts the process.
pub struct Counting;

pub static CURRENT: AtomicUsize = AtomicUsize::new(0);
pub static PEAK: AtomicUsize = AtomicUsize::new(0);
pub static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// The largest allocation refused for the limit (a fallible allocation
/// may survive the refusal; it is a finding all the same).
pub static REFUSED: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn take(size: usize) -> bool {
        let now = CURRENT.fetch_add(size, Relaxed) + size;
        let limit = LIMIT.load(Relaxed);
        if limit != 0 && now > limit {
            CURRENT.fetch_sub(size, Relaxed);
            REFUSED.fetch_max(size, Relaxed);
            return false;
        }
        PEAK.fetch_max(now, Relaxed);
        true
    }

    /// Counts `size` bytes and runs `alloc`, or refuses them (null).
    fn counted(size: usize, alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
        if !Counting::take(size) {
            return std::ptr::null_mut();
        }
        let p = alloc();
        if p.is_null() {
            CURRENT.fetch_sub(size, Relaxed);
        }
        p
    }
}

// SAFETY: every method forwards to the system allocator with the caller's
// layout and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        Counting::counted(layout.size(), || unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        Counting::counted(layout.size(), || unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Counting::take(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                CURRENT.fetch_sub(new_size - old, Relaxed);
            }
        } else if new_size < old {
            CURRENT.fetch_sub(old - new_size, Relaxed);
        }
        p
    }
}

// ---------------------------------------------------------------- seeds

/// `ffmpeg -ss FROM -t SECONDS -i INPUT ARGS OUT` (`args` space-separated).
fn ffmpeg(args: &str, input: &Path, from_s: f64, seconds: f64, out: &Path) -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args([
            "-ss",
            &format!("{from_s:.2}"),
            "-t",
            &format!("{seconds:.2}"),
            "-i",
        ])
        .arg(input)
        .args(args.split_whitespace())
        .arg(out)
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes the seed files of `target` into `dir` (`NAME-K.dat`) from the
/// first `clips` speech files, `seconds` of each starting at 0.5 s; returns
/// them, or why there are none.
pub fn make_seeds(
    target: &Target,
    speech: &[PathBuf],
    clips: usize,
    seconds: f64,
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for (c, clip) in speech.iter().take(clips).enumerate() {
        if target.name.starts_with("amr") {
            let (kind, rate) = if target.name == "amr" {
                ("nb", "8000")
            } else {
                ("wb", "16000")
            };
            let encoder = crate::common::amr_encoder()
                .ok_or("amr-encode is not built (cargo build --release -p sis-testkit)")?;
            let raw = dir.join(format!("{}-{c}.raw", target.name));
            let args = format!("-ar {rate} -ac 1 -f s16le");
            if !ffmpeg(&args, clip, 0.5, seconds, &raw) {
                return Err(format!("ffmpeg failed on {}", clip.display()));
            }
            let path = dir.join(format!("{}-{c}.dat", target.name));
            let ok = Command::new(&encoder)
                .arg(kind)
                .arg(&raw)
                .arg(&path)
                .status();
            if !ok.is_ok_and(|s| s.success()) {
                return Err("amr-encode failed".into());
            }
            out.push(path);
            continue;
        }
        for (e, args) in target.encodings.iter().enumerate() {
            let path = dir.join(format!(
                "{}-{}.dat",
                target.name,
                c * target.encodings.len() + e
            ));
            if !ffmpeg(args, clip, 0.5, seconds, &path) {
                return Err(format!("ffmpeg {args:?} failed on {}", clip.display()));
            }
            out.push(path);
        }
    }
    if out.is_empty() {
        return Err("no speech files".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------- mutations

/// SplitMix64: small, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A position, half the time inside the first 512 bytes (where headers are).
fn pos(rng: &mut Rng, len: usize) -> usize {
    if rng.chance(50) {
        rng.below(len.min(512))
    } else {
        rng.below(len)
    }
}

const INTERESTING_U32: [u32; 12] = [
    0,
    1,
    2,
    0x7F,
    0xFF,
    0x8000,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
    44,
];

fn interesting(rng: &mut Rng, orig: u32, len: usize) -> u32 {
    match rng.below(8) {
        0..=2 => INTERESTING_U32[rng.below(INTERESTING_U32.len())],
        3 => orig.wrapping_mul(2),
        4 => orig / 2,
        5 => orig.wrapping_add(1 + rng.below(8) as u32),
        6 => len as u32 + rng.below(64) as u32,
        _ => rng.next() as u32,
    }
}

/// Overwrites the 32-bit field at `at` (little- or big-endian) with a lie.
fn lie_u32(rng: &mut Rng, d: &mut [u8], at: usize, big: bool) {
    if at + 4 > d.len() {
        return;
    }
    let b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
    let orig = if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    };
    let v = interesting(rng, orig, d.len());
    let bytes = if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    };
    d[at..at + 4].copy_from_slice(&bytes);
}

/// Positions of four printable ASCII letters in a row (chunk and atom names).
fn tags(d: &[u8]) -> Vec<usize> {
    let tag = |b: u8| b.is_ascii_alphanumeric() || b == b' ';
    d.windows(4)
        .enumerate()
        .filter(|(_, w)| w.iter().all(|&b| tag(b)) && w.iter().any(|b| b.is_ascii_alphabetic()))
        .map(|(i, _)| i)
        .take(4096)
        .collect()
}

/// One mutation of `d`; `other` is another seed (for splices). Returns its name.
fn mutate_once(rng: &mut Rng, d: &mut Vec<u8>, other: &[u8]) -> &'static str {
    if d.is_empty() {
        d.extend_from_slice(&other[..other.len().min(64)]);
        return "refill";
    }
    let len = d.len();
    match rng.below(12) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let p = pos(rng, len);
                d[p] ^= 1 << rng.below(8);
            }
            "bit flips"
        }
        1 => {
            for _ in 0..1 + rng.below(8) {
                let p = pos(rng, len);
                d[p] = [0, 0xFF, 0x7F, 0x80, 1, rng.next() as u8][rng.below(6)];
            }
            "byte sets"
        }
        2 => {
            d.truncate(rng.below(len));
            "truncation"
        }
        3 => {
            let k = rng.below(len.min(64)) + 1;
            d.drain(..k.min(len));
            "front dropped"
        }
        4 => {
            let p = pos(rng, len);
            let n = 1 + rng.below(64);
            let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            d.splice(p..p, junk);
            "insertion"
        }
        5 => {
            let a = pos(rng, len);
            let b = (a + 1 + rng.below(256)).min(len);
            d.drain(a..b);
            "deletion"
        }
        6 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(1024)).min(len);
            let piece = d[a..b].to_vec();
            let p = rng.below(len);
            d.splice(p..p, piece);
            "duplication"
        }
        7 => {
            let cut = rng.below(len);
            let from = rng.below(other.len().max(1));
            d.truncate(cut);
            d.extend_from_slice(&other[from.min(other.len())..]);
            "splice"
        }
        8 | 9 => {
            // the size next to a chunk or atom name: RIFF keeps it after (LE),
            // MP4 before (BE)
            let t = tags(d);
            if t.is_empty() {
                let (p, big) = (pos(rng, len), rng.chance(50));
                lie_u32(rng, d, p, big);
            } else {
                let at = t[rng.below(t.len())];
                if rng.chance(50) {
                    lie_u32(rng, d, at + 4, false);
                } else if at >= 4 {
                    lie_u32(rng, d, at - 4, true);
                }
            }
            "length lie"
        }
        10 => {
            let p = pos(rng, len);
            let big = rng.chance(50);
            if rng.chance(50) && p + 2 <= len {
                let v = [0u16, 1, 0xFF, 0xFFFF, 0x8000, rng.next() as u16][rng.below(6)];
                let b = if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                d[p..p + 2].copy_from_slice(&b);
            } else {
                lie_u32(rng, d, p, big);
            }
            "field lie"
        }
        _ => {
            // a frame header: after an MPEG/ADTS sync, or an AMR frame type
            let syncs: Vec<usize> = d
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w[0] == 0xFF && w[1] & 0xE0 == 0xE0)
                .map(|(i, _)| i)
                .take(4096)
                .collect();
            if syncs.is_empty() {
                let p = pos(rng, len);
                d[p] = rng.next() as u8;
            } else {
                let at = syncs[rng.below(syncs.len())];
                let k = (at + 1 + rng.below(6)).min(len - 1);
                d[k] ^= 1 << rng.below(8);
            }
            "frame header"
        }
    }
}

/// Recomputes the CRC of every whole Ogg page, so the demuxer takes the
/// mutated pages to the decoders instead of dropping them.
fn fix_ogg_crcs(d: &mut [u8]) {
    let mut at = 0;
    while at + 27 <= d.len() {
        if &d[at..at + 4] != b"OggS" {
            at += 1;
            continue;
        }
        let segs = d[at + 26] as usize;
        let Some(lacing) = d.get(at + 27..at + 27 + segs) else {
            break;
        };
        let body: usize = lacing.iter().map(|&l| l as usize).sum();
        let end = at + 27 + segs + body;
        if end > d.len() {
            break;
        }
        d[at + 22..at + 26].fill(0);
        let crc = crate::common::ogg_crc(&d[at..end]);
        d[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

/// Input `i` of a run: seed file `seed` mutated 1 to 4 times. Deterministic
/// in (`run_seed`, `i`), so a finding can be made again from its number.
pub fn make_input(run_seed: u64, i: u64, seeds: &[Vec<u8>]) -> (usize, Vec<u8>, u32) {
    let mut rng = Rng::new(run_seed ^ i.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let s = rng.below(seeds.len());
    let other = &seeds[rng.below(seeds.len())];
    let mut d = seeds[s].clone();
    for _ in 0..1 + rng.below(4) {
        mutate_once(&mut rng, &mut d, other);
    }
    if d.starts_with(b"OggS") && rng.chance(75) {
        fix_ogg_crcs(&mut d);
    }
    let chunk_ms = [10, 100, 1000, 3000, 10_000][rng.below(5)];
    (s, d, chunk_ms)
}

// ---------------------------------------------------------------- checks

/// Short-audio's duration limit, and the cap of the unlimited stream (so an
/// input that legitimately expands to hours does not read as a hang).
pub const SHORT_MS: u64 = 60_000;
pub const STREAM_CAP_MS: u64 = 20 * 60_000;

/// How one input went through both APIs, and what was wrong with it (a
/// finding when not empty).
pub struct Verdict {
    /// `decode`: in memory, under short-audio's rules.
    pub memory: Outcome,
    /// `stream::open` without short-audio's limits (2 channels, 20 minutes).
    pub stream: Outcome,
    pub problems: Vec<String>,
}

impl Verdict {
    /// The stream's outcome in a word or two, for histograms.
    pub fn class(&self) -> String {
        match &self.stream {
            Ok((rate, c)) => format!("ok {rate} Hz x{}", c.len()),
            Err(e) => {
                let s = format!("{e:?}");
                s.split(['(', ' ']).next().unwrap_or_default().to_string()
            }
        }
    }
}

/// Rate and planar samples, or why not.
pub type Outcome = Result<(u32, Vec<Vec<f32>>), AudioError>;

pub fn describe(o: &Outcome) -> String {
    match o {
        Ok((rate, c)) => format!("ok {rate} Hz x{} {} frames", c.len(), c[0].len()),
        Err(e) => format!("{e:?}"),
    }
}

/// Reads a stream to its end, checking the chunks on the way; keeps the
/// samples of the first `keep_ms` (so 20 minutes of stereo need not be held).
pub fn drain(
    s: Result<Box<dyn PcmStream + Send>, AudioError>,
    keep_ms: u64,
    problems: &mut Vec<String>,
) -> Outcome {
    let mut s = s?;
    let rate = s.sample_rate();
    let n = s.channels() as usize;
    let mut out = vec![Vec::new(); n];
    let keep = keep_ms.saturating_mul(rate as u64) / 1000;
    let mut frames = 0u64;
    if rate == 0 || n == 0 || n > 2 {
        problems.push(format!("stream opened with {rate} Hz, {n} channels"));
        return Err(AudioError::Corrupt("no audio".into()));
    }
    loop {
        let chunk = match s.next_chunk() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                // errors are sticky
                if s.next_chunk() != Err(e.clone()) {
                    problems.push(format!("the error {e:?} is not repeated"));
                }
                return Err(e);
            }
        };
        if chunk.start_frame != frames || chunk.channels.len() != n {
            problems.push("chunks are not contiguous".into());
        }
        if chunk.channels.iter().any(|c| c.len() != chunk.frames()) || chunk.frames() == 0 {
            problems.push("a chunk's channels differ in length, or it is empty".into());
        }
        frames += chunk.frames() as u64;
        for (all, c) in out.iter_mut().zip(chunk.channels) {
            if c.iter().any(|x| !x.is_finite() || x.abs() > 1.0) {
                problems.push("a streamed sample not finite or outside [-1, 1]".into());
            }
            if (all.len() as u64) < keep {
                all.extend(c);
            }
        }
    }
    if s.next_chunk().ok().flatten().is_some() {
        problems.push("a chunk after the end".into());
    }
    Ok((rate, out))
}

fn check_samples(what: &str, o: &Outcome, problems: &mut Vec<String>) {
    if let Ok((_, c)) = o {
        if c.iter().flatten().any(|x| !x.is_finite() || x.abs() > 1.0) {
            problems.push(format!("{what}: a sample not finite or outside [-1, 1]"));
        }
        if c.is_empty() || c[0].is_empty() {
            problems.push(format!("{what}: accepted without a sample"));
        }
    }
    match o {
        Err(AudioError::Io(m)) => {
            problems.push(format!("{what}: I/O error on bytes all present: {m}"))
        }
        Err(AudioError::Corrupt(m)) if m.contains("decoder failed on malformed data") => {
            problems.push(format!("{what}: a decoder panicked ({m})"))
        }
        _ => {}
    }
}

/// `decode` of `bytes` as `format` with short-audio's 60 s.
pub fn in_memory(format: AudioFormat, bytes: &[u8]) -> Outcome {
    decode(format, bytes, DecodeLimits { max_ms: SHORT_MS })
        .map(|p| (p.sample_rate, vec![p.samples]))
}

/// `stream::open` of `file` under short-audio's rules, written against the
/// streaming API: one channel ("not mono" otherwise), 60 s, then (the audio
/// read) 8 or 16 kHz.
pub fn stream_short(
    file: &Path,
    format: FileFormat,
    chunk_ms: u32,
    problems: &mut Vec<String>,
) -> Outcome {
    let limits = StreamLimits {
        max_ms: SHORT_MS,
        max_channels: 1,
        chunk_ms,
    };
    let not_mono = |e: AudioError| match e {
        AudioError::TooManyChannels { found, .. } => AudioError::NotMono(found),
        other => other,
    };
    let (rate, samples) =
        drain(stream::open(file, format, limits), u64::MAX, problems).map_err(not_mono)?;
    if ![8000, 16000].contains(&rate) {
        return Err(AudioError::BadSampleRate(rate));
    }
    Ok((rate, samples))
}

/// Runs one input through both APIs (`file` is a scratch path the input is
/// written to for `stream::open`) and checks them against each other.
pub fn exercise(declared: AudioFormat, bytes: &[u8], file: &Path, chunk_ms: u32) -> Verdict {
    let mut problems = Vec::new();
    if let Err(e) = std::fs::write(file, bytes) {
        let e = AudioError::Io(e.to_string());
        return Verdict {
            memory: Err(e.clone()),
            stream: Err(e),
            problems: vec!["cannot write the scratch file".into()],
        };
    }
    let raw = declared.raw().is_some();
    let as_auto = if raw { declared } else { AudioFormat::Auto };
    let file_format = FileFormat::from(declared);

    // in memory, and from the file under the same rules: one answer
    let memory = in_memory(as_auto, bytes);
    check_samples("decode", &memory, &mut problems);
    let streamed_short = stream_short(file, file_format, chunk_ms, &mut problems);
    if memory != streamed_short {
        problems.push(format!(
            "decode gives {} but the stream under the same rules {}",
            describe(&memory),
            describe(&streamed_short)
        ));
    }

    // the declared container: the same answer, or "declared X, found Y"
    if !raw && declared != AudioFormat::Auto {
        let as_declared = in_memory(declared, bytes);
        let is_it = bytes.is_empty() || detect(bytes) == Some(declared);
        let ok = if is_it {
            as_declared == memory
        } else {
            let prefix = format!("{declared}: ");
            matches!(&as_declared, Err(AudioError::Corrupt(m)) if m.starts_with(&prefix) && m.contains("expected"))
        };
        if !ok {
            problems.push(format!(
                "decode as {declared} gives {} (auto: {})",
                describe(&as_declared),
                describe(&memory)
            ));
        }
    }

    // the file without short-audio's limits: stereo, any rate, 20 minutes
    let limits = StreamLimits {
        max_ms: STREAM_CAP_MS,
        max_channels: 2,
        chunk_ms,
    };
    // (the samples of 61 s at most: more cannot equal short-audio's)
    let streamed = drain(
        stream::open(file, file_format, limits),
        SHORT_MS + 1000,
        &mut problems,
    );
    check_samples("stream", &streamed, &mut problems);
    if let (Ok(m), Ok(s)) = (&memory, &streamed) {
        if m != s {
            problems.push("decode and the unlimited stream decode different samples".into());
        }
    }
    Verdict {
        memory,
        stream: streamed,
        problems,
    }
}

/// The `audio_format` a committed regression input is sent as, from its
/// name (`FORMAT-N.bin`; `aac_m4a` and friends are sent as `aac`).
pub fn regression_format(path: &Path) -> Option<AudioFormat> {
    let stem = path.file_stem()?.to_str()?;
    let prefix = stem.rsplit_once('-').map_or(stem, |(p, _)| p);
    match prefix {
        "aac_adts" | "aac_m4a" | "aac_m4a_frag" => Some(AudioFormat::Aac),
        other => AudioFormat::parse(other),
    }
}
