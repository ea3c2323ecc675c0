//! short-audio throughput and latency, side by side with sherpa-onnx decoding
//! the same clips directly in the same run. Run with `scripts/bench`.
//!
//! For each concurrency C (1, 4, 16): C client threads send 5 s clips
//! (pcm16k16bit) to a real `sisd` over loopback HTTP; then C threads decode the
//! same clips with the same offline pack through sherpa-onnx directly. The
//! ratio of requests per second is the service's overhead.
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
    p50: f64,
    p95: f64,
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
    let mut all: Vec<f64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = t0.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stats {
        rps: all.len() as f64 / wall,
        p50: pct(&all, 0.5),
        p95: pct(&all, 0.95),
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

fn main() {
    let total: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
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
        "short-audio benchmark: 5 s clips (pcm16k16bit), {total} requests per run, {cores} cores"
    );
    println!("| concurrency | path | req/s | p50 ms | p95 ms | sisd / direct req/s |");
    println!("|---|---|---|---|---|---|");
    for (label, extra) in [
        ("sisd (defaults)", vec![]),
        ("sisd --no-vad", vec!["--no-vad"]),
        ("sisd, VAD on every clip", vec!["--vad-min-audio-s", "0"]),
    ] {
        let port = free_port();
        let mut child = start_server(models.path(), port, &extra);
        for c in [1usize, 4, 16] {
            let per = (total / c).max(1);
            // warm-up
            Http::connect(port).post("/v1/p/asr/short-audio", &bodies[0]);
            let b = bodies.clone();
            let conns: Vec<std::sync::Mutex<Http>> = (0..c)
                .map(|_| std::sync::Mutex::new(Http::connect(port)))
                .collect();
            let conns = Arc::new(conns);
            let served = measure(c, per, move |t, i| {
                let (status, _) = conns[t]
                    .lock()
                    .unwrap()
                    .post("/v1/p/asr/short-audio", &b[(t * 7 + i) % b.len()]);
                assert_eq!(status, 200);
            });
            let d = direct.clone();
            let cl = clips.clone();
            let peer = measure(c, per, move |t, i| {
                d.decode(&cl[(t * 7 + i) % cl.len()]);
            });
            println!(
                "| {c} | {label} | {:.1} | {:.1} | {:.1} | {:.3} |",
                served.rps,
                served.p50,
                served.p95,
                served.rps / peer.rps
            );
            println!(
                "| {c} | sherpa-onnx direct | {:.1} | {:.1} | {:.1} | |",
                peer.rps, peer.p50, peer.p95
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
