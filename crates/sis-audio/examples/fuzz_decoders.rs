//! Fuzzes every decoder of `sis-audio`'s one decode path on stable Rust:
//! real speech (`../shared/audio`) encoded into each target's containers,
//! mutated with a seeded RNG (bit flips, byte sets, truncation, insertion,
//! deletion, duplication, splices, lying length and header fields, frame
//! headers; Ogg CRCs fixed up so mutated pages reach the decoders), each
//! input run through `decode` and `stream::open` (`tests/fuzz/mod.rs`).
//!
//! A finding is a panic (even a contained one), a hang (an input running
//! past `--timeout-s`), a crash or an allocation past `--max-mib` (the
//! counting allocator below refuses it, which aborts the worker), or a
//! disagreement between the APIs. Each target runs in a worker process; the
//! parent watches it, saves the offending input under `--out` and restarts
//! the worker after it.
//!
//!     cargo run --release -p sis-audio --example fuzz_decoders -- --minutes-per-target 10
//!     cargo run --release -p sis-audio --example fuzz_decoders -- --seconds-per-target 2
//!     cargo run --release -p sis-audio --example fuzz_decoders -- --target mp3 --seed 7
//!     cargo run --release -p sis-audio --example fuzz_decoders -- --replay FILE...
//!
//! Exits 1 when there is a finding.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fuzz/mod.rs"]
mod fuzz;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;

// ------------------------------------------------------------------ options

struct Opts {
    per_target: Duration,
    targets: Vec<&'static fuzz::Target>,
    seed: u64,
    audio: Option<PathBuf>,
    clips: usize,
    clip_seconds: f64,
    timeout: Duration,
    max_mib: usize,
    out: PathBuf,
    replay: Vec<PathBuf>,
}

const USAGE: &str = "usage: fuzz_decoders [--seconds-per-target N | --minutes-per-target N] \
[--target NAME]... [--seed N] [--audio DIR] [--clips N] [--clip-seconds S] [--timeout-s N] \
[--max-mib N] [--out DIR] | --replay FILE...";

fn parse(args: &[String]) -> Result<Opts, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        per_target: Duration::from_secs(60),
        targets: Vec::new(),
        seed: 0,
        audio: None,
        clips: 3,
        clip_seconds: 1.5,
        timeout: Duration::from_secs(10),
        max_mib: 256,
        out: root.join("target/fuzz-decoders"),
        replay: Vec::new(),
    };
    let mut it = args.iter();
    let mut seed_given = false;
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--seconds-per-target" => o.per_target = Duration::from_secs_f64(num(val()?)?),
            "--minutes-per-target" => o.per_target = Duration::from_secs_f64(num(val()?)? * 60.0),
            "--target" => {
                let v = val()?;
                o.targets
                    .push(fuzz::target(&v).ok_or(format!("unknown target {v}"))?);
            }
            "--seed" => {
                o.seed = num(val()?)? as u64;
                seed_given = true;
            }
            "--audio" => o.audio = Some(PathBuf::from(val()?)),
            "--clips" => o.clips = num(val()?)? as usize,
            "--clip-seconds" => o.clip_seconds = num(val()?)?,
            "--timeout-s" => o.timeout = Duration::from_secs_f64(num(val()?)?),
            "--max-mib" => o.max_mib = num(val()?)? as usize,
            "--out" => o.out = PathBuf::from(val()?),
            "--replay" => o.replay.extend(it.by_ref().map(PathBuf::from)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if o.targets.is_empty() {
        o.targets = fuzz::TARGETS.iter().collect();
    }
    if !seed_given {
        o.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs());
    }
    Ok(o)
}

// ------------------------------------------------------------------- worker

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut p) = PANICS.lock() {
            p.push(format!("panic at {at}: {msg}"));
        }
    }));
}

fn load_seeds(dir: &Path, target: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "dat")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.rsplit_once('-').is_some_and(|(t, _)| t == target))
        })
        .collect();
    // seed index order (NAME-K.dat), which `fuzz::declared` relies on
    paths.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit_once('-'))
            .and_then(|(_, k)| k.parse::<usize>().ok())
    });
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// `--worker TARGET SEEDS_DIR RUN_SEED FIRST MILLIS MAX_MIB SCRATCH`: runs
/// inputs FIRST, FIRST+1, ... for MILLIS ms, telling the parent on stdout
/// `S i` before and `D i PEAK_BYTES MICROS CLASS [| PROBLEM]...` after each.
fn worker(args: &[String]) -> Result<(), String> {
    let [target, dir, seed, first, millis, max_mib, scratch] = args else {
        return Err("worker: wrong arguments".into());
    };
    let target = fuzz::target(target).ok_or("worker: unknown target")?;
    let num = |s: &String| s.parse::<u64>().map_err(|e| e.to_string());
    let (seed, first, millis, max_mib) = (num(seed)?, num(first)?, num(millis)?, num(max_mib)?);
    let seeds = load_seeds(Path::new(dir), target.name);
    if seeds.is_empty() {
        return Err(format!("worker: no seeds for {}", target.name));
    }
    record_panics();
    let deadline = Instant::now() + Duration::from_millis(millis);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut i = first;
    while Instant::now() < deadline {
        let (s, input, chunk_ms) = fuzz::make_input(seed, i, &seeds);
        writeln!(out, "S {i}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
        let base = fuzz::CURRENT.load(Relaxed);
        fuzz::PEAK.store(base, Relaxed);
        fuzz::LIMIT.store(base + (max_mib as usize) * 1024 * 1024, Relaxed);
        let t = Instant::now();
        let verdict = fuzz::exercise(
            fuzz::declared(target, s),
            &input,
            Path::new(scratch),
            chunk_ms,
        );
        let micros = t.elapsed().as_micros();
        fuzz::LIMIT.store(0, Relaxed);
        let peak = fuzz::PEAK.load(Relaxed).saturating_sub(base);
        let class = verdict.class().replace(' ', "_");
        let mut problems = verdict.problems;
        if let Ok(mut p) = PANICS.lock() {
            problems.append(&mut p);
        }
        let refused = fuzz::REFUSED.swap(0, Relaxed);
        if refused > 0 {
            problems.push(format!(
                "memory: an allocation of {refused} bytes was refused (over {max_mib} MiB)"
            ));
        }
        let mut line = format!("D {i} {peak} {micros} {class}");
        for p in problems {
            line.push_str(" | ");
            line.push_str(&p.replace('\n', " "));
        }
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
        i += 1;
    }
    Ok(())
}

// ------------------------------------------------------------------- parent

#[derive(Default)]
struct Stats {
    inputs: u64,
    elapsed: Duration,
    peak_bytes: usize,
    slowest_us: u128,
    classes: BTreeMap<String, u64>,
    findings: Vec<String>,
    restarts: u32,
}

/// Starts a worker for `target` on the seeds in `work`, where it also keeps
/// its scratch input (`TARGET.input`) and its stderr (`TARGET.stderr`).
fn spawn_worker(
    exe: &Path,
    target: &str,
    work: &Path,
    o: &Opts,
    first: u64,
    millis: u64,
) -> Result<(Child, mpsc::Receiver<String>), String> {
    let scratch = work.join(format!("{target}.input"));
    let err =
        std::fs::File::create(work.join(format!("{target}.stderr"))).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--worker")
        .args([
            target,
            &work.display().to_string(),
            &o.seed.to_string(),
            &first.to_string(),
            &millis.to_string(),
            &o.max_mib.to_string(),
            &scratch.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start a worker: {e}"))?;
    let stdout = child.stdout.take().ok_or("no worker stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}

fn save_finding(
    o: &Opts,
    target: &str,
    kind: &str,
    i: u64,
    input: &[u8],
    detail: &str,
) -> Result<String, String> {
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let base = o.out.join(format!("{target}-{kind}-seed{}-{i}", o.seed));
    std::fs::write(base.with_extension("bin"), input).map_err(|e| e.to_string())?;
    std::fs::write(
        base.with_extension("txt"),
        format!(
            "target {target}, seed {}, input {i}: {kind}\n{detail}\nreplay: cargo run --release -p sis-audio --example fuzz_decoders -- --replay {}\n",
            o.seed,
            base.with_extension("bin").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(base.with_extension("bin").display().to_string())
}

/// What a dead worker said: its first lines (the panic or the failed
/// allocation) and its last ones.
fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= 12 {
        return lines.join("\n");
    }
    format!(
        "{}\n...\n{}",
        lines[..4].join("\n"),
        lines[lines.len() - 6..].join("\n")
    )
}

fn run_target(
    exe: &Path,
    target: &'static fuzz::Target,
    work: &Path,
    o: &Opts,
) -> Result<Stats, String> {
    let seed_bytes = load_seeds(work, target.name);
    let stderr = work.join(format!("{}.stderr", target.name));
    let mut stats = Stats::default();
    let start = Instant::now();
    let mut next = 0u64;
    while start.elapsed() < o.per_target {
        let left = (o.per_target.saturating_sub(start.elapsed()).as_millis() as u64).max(1);
        let (mut child, rx) = spawn_worker(exe, target.name, work, o, next, left)?;
        let mut current: Option<(u64, Instant)> = None;
        let ended = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let mut f = line.splitn(5, ' ');
                    match (f.next(), f.next().and_then(|v| v.parse::<u64>().ok())) {
                        (Some("S"), Some(i)) => current = Some((i, Instant::now())),
                        (Some("D"), Some(i)) => {
                            current = None;
                            next = i + 1;
                            stats.inputs += 1;
                            let peak: usize = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                            let us: u128 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                            let rest = f.next().unwrap_or_default();
                            let mut parts = rest.split(" | ");
                            let class = parts.next().unwrap_or_default().replace('_', " ");
                            *stats.classes.entry(class).or_default() += 1;
                            stats.peak_bytes = stats.peak_bytes.max(peak);
                            stats.slowest_us = stats.slowest_us.max(us);
                            let problems: Vec<&str> = parts.collect();
                            if !problems.is_empty() {
                                let (_, input, _) = fuzz::make_input(o.seed, i, &seed_bytes);
                                let kind = if problems.iter().any(|p| p.contains("panic")) {
                                    "panic"
                                } else {
                                    "check"
                                };
                                let saved = save_finding(
                                    o,
                                    target.name,
                                    kind,
                                    i,
                                    &input,
                                    &problems.join("\n"),
                                )?;
                                stats.findings.push(format!(
                                    "{kind} (input {i}): {} -> {saved}",
                                    problems.join("; ")
                                ));
                            }
                        }
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some((i, since)) = current {
                        if since.elapsed() > o.timeout {
                            let _ = child.kill();
                            let _ = child.wait();
                            let (_, input, _) = fuzz::make_input(o.seed, i, &seed_bytes);
                            let detail = format!("no answer after {:?}", o.timeout);
                            let saved = save_finding(o, target.name, "hang", i, &input, &detail)?;
                            stats
                                .findings
                                .push(format!("hang (input {i}): {detail} -> {saved}"));
                            next = i + 1;
                            break true;
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map_err(|e| e.to_string())?;
                    if let Some((i, _)) = current {
                        // died inside an input: abort, crash, or memory refused
                        let (_, input, _) = fuzz::make_input(o.seed, i, &seed_bytes);
                        let detail = format!(
                            "worker ended ({status}) inside the input:\n{}",
                            tail(&stderr)
                        );
                        let kind = if detail.contains("memory allocation") {
                            "memory"
                        } else {
                            "crash"
                        };
                        let saved = save_finding(o, target.name, kind, i, &input, &detail)?;
                        stats
                            .findings
                            .push(format!("{kind} (input {i}): {status} -> {saved}"));
                        next = i + 1;
                        break true;
                    }
                    if !status.success() {
                        return Err(format!(
                            "{} worker failed ({status}): {}",
                            target.name,
                            tail(&stderr)
                        ));
                    }
                    break false;
                }
            }
        };
        if ended {
            stats.restarts += 1;
        } else {
            break;
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn replay(o: &Opts) -> Result<bool, String> {
    record_panics();
    let scratch = std::env::temp_dir().join(format!("fuzz-decoders-replay-{}", std::process::id()));
    let mut clean = true;
    for path in &o.replay {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // by name (a committed regression), else every declared format
        let formats: Vec<_> = match fuzz::regression_format(path) {
            Some(f) => vec![f],
            None => fuzz::TARGETS.iter().map(|t| fuzz::declared(t, 0)).collect(),
        };
        for f in formats {
            let t = Instant::now();
            let base = fuzz::CURRENT.load(Relaxed);
            fuzz::PEAK.store(base, Relaxed);
            fuzz::LIMIT.store(base + o.max_mib * 1024 * 1024, Relaxed);
            let v = fuzz::exercise(f, &bytes, &scratch, 1000);
            fuzz::LIMIT.store(0, Relaxed);
            let class = v.class();
            let mut problems = v.problems;
            problems.append(
                &mut PANICS
                    .lock()
                    .map(|mut p| std::mem::take(&mut *p))
                    .unwrap_or_default(),
            );
            println!(
                "{} as {f}: {} in {:.1} ms, peak {:.1} MiB{}",
                path.display(),
                class,
                t.elapsed().as_secs_f64() * 1000.0,
                fuzz::PEAK.load(Relaxed).saturating_sub(base) as f64 / 1048576.0,
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("\n  {}", problems.join("\n  "))
                }
            );
            clean &= problems.is_empty();
        }
    }
    let _ = std::fs::remove_file(&scratch);
    Ok(clean)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--worker") {
        if let Err(e) = worker(&args[1..]) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let code = match run(&o) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("fuzz_decoders: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// Returns whether the run found nothing.
fn run(o: &Opts) -> Result<bool, String> {
    if !o.replay.is_empty() {
        return replay(o);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let work = std::env::temp_dir().join(format!("fuzz-decoders-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let speech = common::speech_files(o.audio.as_deref());
    if speech.is_empty() {
        return Err("no speech files (../shared/audio or --audio DIR)".into());
    }
    println!(
        "fuzz_decoders: seed {}, {:.0} s per target, {} speech clips of {} s, timeout {:?}, {} MiB per input",
        o.seed,
        o.per_target.as_secs_f64(),
        o.clips.min(speech.len()),
        o.clip_seconds,
        o.timeout,
        o.max_mib
    );
    let mut clean = true;
    for target in &o.targets {
        let seeds = match fuzz::make_seeds(target, &speech, o.clips, o.clip_seconds, &work) {
            Ok(s) => s,
            Err(e) => {
                println!("{:7} SKIPPED: {e}", target.name);
                continue;
            }
        };
        let s = run_target(&exe, target, &work, o)?;
        let classes: Vec<String> = s.classes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "{:7} {:>8} inputs in {:6.1} s ({:6.0}/s) from {} seeds; peak {:5.1} MiB, slowest {:7.1} ms; {} findings; {}",
            target.name,
            s.inputs,
            s.elapsed.as_secs_f64(),
            s.inputs as f64 / s.elapsed.as_secs_f64().max(1e-9),
            seeds.len(),
            s.peak_bytes as f64 / 1048576.0,
            s.slowest_us as f64 / 1000.0,
            s.findings.len(),
            classes.join(", ")
        );
        for f in &s.findings {
            println!("    {f}");
        }
        clean &= s.findings.is_empty();
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(clean)
}
