//! short-audio throughput and latency, side by side with sherpa-onnx decoding
//! the same clips directly in the same run. Run with `scripts/bench`.
//!
//! For each concurrency C (1, 4, 16), in interleaved rounds: C client threads
//! send 5 s clips (pcm16k16bit) to a real `sisd` over loopback HTTP, and C
//! threads decode the same clips with the same offline pack through sherpa-onnx
//! directly, alternating which goes first. The median ratio of requests per
//! second, and of CPU time per request, is the service's overhead. sisd runs
//! with its defaults (2 engine worker processes; its CPU time includes
//! theirs), and with the engine in its own process (`--engine-workers 0`),
//! so the cost of the worker processes shows against the same peer.
//! `BENCH_SHORT_CONFIGS` (e.g. `0,1`) picks configurations by index.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sis_core::AudioFormat;

const CLIP_SAMPLES: usize = 5 * 16000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 5 s clips: held-out sentences, each padded with silence (or cut) to 5.0 s.
fn clips(n: usize) -> Vec<Vec<f32>> {
    let dir = std::env::var("SIS_HELDOUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/heldout"));
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("16k"))
        .expect("held-out set (run scripts/test or tools/heldout/make_heldout.py first)")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('s'))
        })
        .collect();
    names.sort();
    for p in names.into_iter().take(n) {
        let pcm = sis_audio::decode(
            AudioFormat::Wav,
            &std::fs::read(&p).unwrap(),
            sis_audio::DecodeLimits { max_ms: 60_000 },
        )
        .unwrap();
        let mut s = pcm.samples;
        s.resize(CLIP_SAMPLES, 0.0);
        out.push(s);
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Stats {
    rps: f64,
    /// latencies in ms
    lat: Vec<f64>,
}

/// Runs `per_thread` calls of `f` on each of `c` threads; latencies in ms.
fn measure<F>(c: usize, per_thread: usize, f: F) -> Stats
where
    F: Fn(usize, usize) + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(c + 1));
    let handles: Vec<_> = (0..c)
        .map(|t| {
            let f = f.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                let mut lat = Vec::with_capacity(per_thread);
                for i in 0..per_thread {
                    let t0 = Instant::now();
                    f(t, i);
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let all: Vec<f64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = t0.elapsed().as_secs_f64();
    Stats {
        rps: all.len() as f64 / wall,
        lat: all,
    }
}

/// Minimal HTTP/1.1 keep-alive client: enough for a benchmark, no dependency.
struct Http {
    reader: BufReader<TcpStream>,
}

impl Http {
    fn connect(port: u16) -> Http {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        Http {
            reader: BufReader::new(s),
        }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf).unwrap();
        (status, buf)
    }
}

fn start_server(models: &Path, port: u16, extra: &[&str]) -> Child {
    let exe = root().join("target/release/sisd");
    let data = tempfile::tempdir().unwrap().keep();
    let mut child = Command::new(&exe)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .arg("--models")
        .arg(models)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/sisd (cargo build --release -p sisd)");
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("sisd did not start");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// utime + stime of a process in seconds (Linux `/proc/PID/stat`).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the stat line: 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of a process and its children (sisd's engine workers).
fn tree_cpu_seconds(pid: &str) -> f64 {
    let mut total = cpu_seconds(pid);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            total += children.split_whitespace().map(cpu_seconds).sum::<f64>();
        }
    }
    total
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    pct(v, 0.5)
}

struct Row {
    rps: Vec<f64>,
    lat: Vec<f64>,
    cpu_ms_per_req: Vec<f64>,
}

impl Row {
    fn new() -> Row {
        Row {
            rps: Vec::new(),
            lat: Vec::new(),
            cpu_ms_per_req: Vec::new(),
        }
    }
}

fn main() {
    let total: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let clips = Arc::new(clips(32));
    assert!(!clips.is_empty());
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        clips
            .iter()
            .map(|c| {
                let bytes: Vec<u8> = c
                    .iter()
                    .flat_map(|&x| ((x * 32768.0).clamp(-32768.0, 32767.0) as i16).to_le_bytes())
                    .collect();
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                format!(
                    r#"{{"data":"{b64}","config":{{"audio_format":"pcm16k16bit","property":"chinese_16k_common"}}}}"#
                )
                .into_bytes()
            })
            .collect(),
    );

    // Packs as the server sees them: the offline test pack (+ Silero VAD if available).
    let models = tempfile::tempdir().unwrap();
    let sisd = root().join("target/release/sisd");
    for src in [
        root().join("testdata/models/zh-tiny-ctc-offline"),
        root().join("../shared/models/silero_vad"),
    ] {
        if src.exists() {
            let ok = Command::new(&sisd)
                .args(["models", "install", "--from"])
                .arg(&src)
                .arg("--models-dir")
                .arg(models.path())
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "install {}", src.display());
        }
    }
    let offline =
        sis_engine::Pack::open(&root().join("testdata/models/zh-tiny-ctc-offline")).unwrap();
    let direct = Arc::new(sis_engine::bench_support::DirectDecoder::new(&offline).unwrap());

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    println!(
        "short-audio benchmark: 5 s clips (pcm16k16bit), {total} requests per measurement, \
         {rounds} interleaved rounds (sisd and direct alternate which goes first), {cores} cores"
    );
    println!(
        "| concurrency | path | req/s (median of rounds) | p50 ms | p95 ms | CPU ms/req (median) \
         | sisd / direct req/s: median [min, max] | sisd / direct CPU per req (median) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let configs: Vec<(&str, Vec<&str>, Vec<usize>)> = vec![
        ("sisd (defaults)", vec![], vec![1, 4, 16]),
        (
            "sisd, engine in-process",
            vec!["--engine-workers", "0"],
            vec![1, 4, 16],
        ),
        (
            "sisd, VAD on every clip",
            vec!["--vad-min-audio-s", "0"],
            vec![1, 16],
        ),
    ];
    let picked: Option<Vec<usize>> = std::env::var("BENCH_SHORT_CONFIGS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    for (i, (label, extra, concurrencies)) in configs.into_iter().enumerate() {
        if picked.as_ref().is_some_and(|p| !p.contains(&i)) {
            continue;
        }
        let port = free_port();
        let mut child = start_server(models.path(), port, &extra);
        let pid = child.id().to_string();
        for c in concurrencies {
            let per = (total / c).max(1);
            let n = (per * c) as f64;
            // warm-up: every connection once, and the peer once per thread
            Http::connect(port).post("/v1/p/asr/short-audio", &bodies[0]);
            let conns: Arc<Vec<std::sync::Mutex<Http>>> = Arc::new(
                (0..c)
                    .map(|_| std::sync::Mutex::new(Http::connect(port)))
                    .collect(),
            );
            direct.decode(&clips[0]);
            let (mut served, mut peer) = (Row::new(), Row::new());
            let mut ratios = Vec::new();
            let mut cpu_ratios = Vec::new();
            for round in 0..rounds {
                let run_served = |row: &mut Row| {
                    let b = bodies.clone();
                    let cs = conns.clone();
                    let cpu0 = tree_cpu_seconds(&pid);
                    let s = measure(c, per, move |t, i| {
                        let (status, _) = cs[t]
                            .lock()
                            .unwrap()
                            .post("/v1/p/asr/short-audio", &b[(t * 7 + i + round) % b.len()]);
                        assert_eq!(status, 200);
                    });
                    row.cpu_ms_per_req
                        .push((tree_cpu_seconds(&pid) - cpu0) * 1000.0 / n);
                    row.rps.push(s.rps);
                    row.lat.extend(s.lat);
                    s.rps
                };
                let run_peer = |row: &mut Row| {
                    let d = direct.clone();
                    let cl = clips.clone();
                    let cpu0 = cpu_seconds("self");
                    let s = measure(c, per, move |t, i| {
                        d.decode(&cl[(t * 7 + i + round) % cl.len()]);
                    });
                    row.cpu_ms_per_req
                        .push((cpu_seconds("self") - cpu0) * 1000.0 / n);
                    row.rps.push(s.rps);
                    row.lat.extend(s.lat);
                    s.rps
                };
                let (a, b) = if round % 2 == 0 {
                    let a = run_served(&mut served);
                    (a, run_peer(&mut peer))
                } else {
                    let b = run_peer(&mut peer);
                    (run_served(&mut served), b)
                };
                ratios.push(a / b);
                let k = served.cpu_ms_per_req.len() - 1;
                cpu_ratios.push(served.cpu_ms_per_req[k] / peer.cpu_ms_per_req[k]);
            }
            let min = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = ratios.iter().cloned().fold(0.0, f64::max);
            for (name, row, extra_cols) in [
                (
                    label,
                    &mut served,
                    format!(
                        "{:.3} [{min:.3}, {max:.3}] | {:.3}",
                        median(&mut ratios),
                        median(&mut cpu_ratios)
                    ),
                ),
                ("sherpa-onnx direct", &mut peer, " | ".to_string()),
            ] {
                row.lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
                println!(
                    "| {c} | {name} | {:.1} | {:.1} | {:.1} | {:.2} | {extra_cols} |",
                    median(&mut row.rps),
                    pct(&row.lat, 0.5),
                    pct(&row.lat, 0.95),
                    median(&mut row.cpu_ms_per_req),
                );
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
