//! `rasr-load` — a real-time load generator for streaming recognition over
//! WebSocket. It opens N concurrent streams; each sends 16 kHz audio in
//! 100 ms chunks paced at real time (stream starts are staggered at random
//! within the first second), ends the stream, and waits for the last result.
//! It prints one JSON line: first-partial and final latency at p50/p95/p99,
//! failures, the generator's own CPU and memory, and (with `--server-pid`) the
//! server's CPU time and RSS over the run (with its child processes: sisd's
//! engine workers), read from `/proc`.
//!
//! With `--ak`/`--sk` (or `HUAWEICLOUD_SDK_AK`/`_SK`) SIS upgrades are
//! signed by the client library (`sis-client`), for a server run with
//! `--auth sis`; each stream signs its own upgrade, as clients do.
//!
//! Two protocols, so that sisd and a peer can be driven by the same code:
//! - `sis`: SIS RASR (`START` text, PCM16 binary frames, `END`; the server
//!   answers `START`, `RESULT`s, then `END`);
//! - `sherpa`: sherpa-onnx's `online-websocket-server` (float32 binary frames,
//!   the text `Done`; JSON results, the last with `is_eof`, then `Done!`).
//!
//! Latencies: first partial = first audio frame sent → first result with
//! non-empty text; final = `END`/`Done` sent → the final result (SIS: the
//! `RESULT` with `is_final`, or `END` if none; sherpa: the JSON with
//! `is_eof`, or `Done!` if none). A stream fails on a connect error, a server
//! error message, a close before the end of the exchange, or the timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use sis_testkit::procfs::{self, tree_cpu_s, tree_status_kb};
use sis_testkit::{pct, read_wav, wav_paths, RATE};
/// SIS frames must be at least 320 bytes (160 samples) at 16 kHz.
const MIN_FRAME_SAMPLES: usize = 160;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Proto {
    /// Huawei Cloud SIS RASR (sisd).
    Sis,
    /// sherpa-onnx online WebSocket server.
    Sherpa,
}

#[derive(Parser, Debug)]
#[command(
    name = "rasr-load",
    about = "N concurrent real-time streams against a RASR (sis) or sherpa-onnx WebSocket server; prints one JSON line"
)]
struct Args {
    /// Protocol the server speaks.
    #[arg(long, value_enum)]
    proto: Proto,
    /// WebSocket URL, e.g. ws://127.0.0.1:8080/v1/bench/rasr/short-stream or ws://127.0.0.1:6006.
    #[arg(long)]
    url: String,
    /// Concurrent streams.
    #[arg(short = 'n', long = "streams")]
    streams: usize,
    /// Seconds of audio per stream (consecutive clips, cut to this length).
    #[arg(long, default_value_t = 6.0, conflicts_with = "clips")]
    duration: f64,
    /// Whole clips per stream instead of --duration.
    #[arg(long)]
    clips: Option<usize>,
    /// Audio per frame, ms.
    #[arg(long, default_value_t = 100)]
    chunk_ms: u64,
    /// Stream starts are spread uniformly over this many ms.
    #[arg(long, default_value_t = 1000)]
    stagger_ms: u64,
    /// Seed for clip choice and start times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A stream that has not finished this many seconds after its audio ended fails.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// SIS `property` in START.
    #[arg(long, default_value = "chinese_16k_general")]
    property: String,
    /// SIS `vocabulary_id` in START (hot words).
    #[arg(long)]
    vocabulary_id: Option<String>,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Measure this process (the server) over the run: CPU from
    /// /proc/PID/stat, RSS from /proc/PID/status.
    #[arg(long)]
    server_pid: Option<u32>,
    /// AK/SK credentials for SIS upgrades (a server with --auth sis).
    #[arg(
        long,
        env = "HUAWEICLOUD_SDK_AK",
        hide_env_values = true,
        requires = "sk"
    )]
    ak: Option<String>,
    #[arg(
        long,
        env = "HUAWEICLOUD_SDK_SK",
        hide_env_values = true,
        requires = "ak"
    )]
    sk: Option<String>,
    /// Free text copied into the output line.
    #[arg(long)]
    label: Option<String>,
    /// 16 kHz mono 16-bit WAV files, or directories of them.
    #[arg(required = true)]
    wavs: Vec<PathBuf>,
}

/// Every clip's samples back to back; a stream plays ranges of it.
struct Audio {
    samples: Vec<i16>,
    clips: Vec<std::ops::Range<usize>>,
}

/// The audio one stream sends: ranges of [`Audio::samples`].
struct Plan {
    ranges: Vec<std::ops::Range<usize>>,
    total: usize,
}

impl Plan {
    /// Samples [from, from + len) of the stream, zero-padded to the SIS minimum frame.
    fn frame(&self, audio: &Audio, from: usize, len: usize) -> Vec<i16> {
        let mut out = Vec::with_capacity(len.max(MIN_FRAME_SAMPLES));
        let mut skip = from;
        for r in &self.ranges {
            if out.len() >= len {
                break;
            }
            if skip >= r.len() {
                skip -= r.len();
                continue;
            }
            let start = r.start + skip;
            let take = (r.end - start).min(len - out.len());
            out.extend_from_slice(&audio.samples[start..start + take]);
            skip = 0;
        }
        if out.len() < MIN_FRAME_SAMPLES {
            out.resize(MIN_FRAME_SAMPLES, 0);
        }
        out
    }
}

/// splitmix64: small, seedable, good enough for start times and clip choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn load_audio(inputs: &[PathBuf]) -> anyhow::Result<Audio> {
    let mut samples = Vec::new();
    let mut clips = Vec::new();
    for p in wav_paths(inputs, "")? {
        let s = read_wav(&p)?;
        if s.is_empty() {
            continue;
        }
        let start = samples.len();
        samples.extend_from_slice(&s);
        clips.push(start..samples.len());
    }
    if clips.is_empty() {
        bail!("every WAV file is empty");
    }
    Ok(Audio { samples, clips })
}

/// Consecutive clips from a random one: `clips` whole clips, or `duration`
/// seconds (the last clip cut).
fn plan(audio: &Audio, rng: &mut Rng, clips: Option<usize>, duration: f64) -> Plan {
    let mut i = rng.below(audio.clips.len() as u64) as usize;
    let mut ranges = Vec::new();
    let mut total = 0;
    let want = (duration * RATE as f64).round().max(1.0) as usize;
    loop {
        let r = audio.clips[i % audio.clips.len()].clone();
        i += 1;
        match clips {
            Some(k) => {
                total += r.len();
                ranges.push(r);
                if ranges.len() >= k.max(1) {
                    break;
                }
            }
            None => {
                let take = r.len().min(want - total);
                total += take;
                ranges.push(r.start..r.start + take);
                if total >= want {
                    break;
                }
            }
        }
    }
    Plan { ranges, total }
}

/// What one stream measured.
#[derive(Default)]
struct Outcome {
    first_partial_ms: Option<f64>,
    final_ms: Option<f64>,
    /// `kind: detail` of the failure, if it failed.
    error: Option<String>,
    /// Latest frame send relative to its schedule.
    max_lag_ms: f64,
    connect_ms: f64,
}

struct Config {
    proto: Proto,
    url: String,
    chunk: Duration,
    chunk_samples: usize,
    timeout: Duration,
    start_msg: String,
    /// Signs SIS upgrades (`--ak`/`--sk`); with it `url` is `tail` under
    /// the client's endpoint and project.
    signer: Option<(sis_client::Client, String)>,
}

/// The client that signs upgrades to `url`
/// (`ws[s]://HOST/v1/{project_id}/TAIL`), and `TAIL`.
fn signer(url: &str, ak: &str, sk: &str) -> anyhow::Result<(sis_client::Client, String)> {
    let http = url
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let Some((endpoint, rest)) = http.split_once("/v1/") else {
        bail!("--url {url}: expected ws://HOST/v1/PROJECT_ID/rasr/MODE");
    };
    let Some((project, tail)) = rest.split_once('/') else {
        bail!("--url {url}: expected ws://HOST/v1/PROJECT_ID/rasr/MODE");
    };
    let auth = sis_client::Auth::AkSk {
        ak: ak.to_string(),
        sk: sk.to_string(),
    };
    Ok((
        sis_client::Client::new(endpoint, project, auth)?,
        tail.to_string(),
    ))
}

fn encode(proto: Proto, s: &[i16]) -> Vec<u8> {
    match proto {
        Proto::Sis => s.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Proto::Sherpa => s
            .iter()
            .flat_map(|v| (*v as f32 / 32768.0).to_le_bytes())
            .collect(),
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Whether the exchange is over (SIS `END`, sherpa `Done!`).
enum Seen {
    More,
    Done,
}

struct StreamState<'a> {
    cfg: &'a Config,
    first_sent: Option<Instant>,
    end_sent: Option<Instant>,
    out: &'a mut Outcome,
}

impl StreamState<'_> {
    fn partial_text(&mut self, text: &str) {
        if !text.is_empty() && self.out.first_partial_ms.is_none() {
            if let Some(t) = self.first_sent {
                self.out.first_partial_ms = Some(ms_since(t));
            }
        }
    }

    fn final_now(&mut self) -> Result<(), String> {
        if self.out.final_ms.is_none() {
            let t = self
                .end_sent
                .ok_or_else(|| "protocol: final result before the end of audio".to_string())?;
            self.out.final_ms = Some(ms_since(t));
        }
        Ok(())
    }

    fn on_text(&mut self, text: &str) -> Result<Seen, String> {
        match self.cfg.proto {
            Proto::Sherpa => {
                if text == "Done!" {
                    self.final_now()?;
                    return Ok(Seen::Done);
                }
                let v: Value = serde_json::from_str(text)
                    .map_err(|e| format!("protocol: result is not JSON: {e}"))?;
                self.partial_text(v["text"].as_str().unwrap_or(""));
                if v["is_eof"].as_bool() == Some(true) {
                    self.final_now()?;
                }
                Ok(Seen::More)
            }
            Proto::Sis => {
                let v: Value = serde_json::from_str(text)
                    .map_err(|e| format!("protocol: response is not JSON: {e}"))?;
                match v["resp_type"].as_str().unwrap_or("") {
                    "RESULT" => {
                        let segs = v["segments"].as_array().cloned().unwrap_or_default();
                        for seg in segs {
                            self.partial_text(seg["result"]["text"].as_str().unwrap_or(""));
                            if seg["is_final"].as_bool() == Some(true) && self.end_sent.is_some() {
                                self.final_now()?;
                            }
                        }
                        Ok(Seen::More)
                    }
                    "END" => {
                        let reason = v["reason"].as_str().unwrap_or("");
                        if reason != "NORMAL" {
                            return Err(format!("server-end: reason {reason}"));
                        }
                        self.final_now()?;
                        Ok(Seen::Done)
                    }
                    t @ ("ERROR" | "FATAL_ERROR") => Err(format!(
                        "server-error: {t} {} {}",
                        v["error_code"].as_str().unwrap_or(""),
                        v["error_msg"].as_str().unwrap_or("")
                    )),
                    _ => Ok(Seen::More),
                }
            }
        }
    }
}

async fn exchange(
    cfg: &Config,
    audio: &Audio,
    plan: &Plan,
    out: &mut Outcome,
) -> Result<(), String> {
    let t = Instant::now();
    // Nagle off: a small END right after a frame must not wait for an ACK.
    let connected = match &cfg.signer {
        Some((client, tail)) => {
            let req = client
                .upgrade_request(tail)
                .map_err(|e| format!("connect: {e}"))?;
            tokio_tungstenite::connect_async_with_config(req, None, true).await
        }
        None => tokio_tungstenite::connect_async_with_config(cfg.url.as_str(), None, true).await,
    };
    let (mut ws, _) = connected.map_err(|e| format!("connect: {e}"))?;
    out.connect_ms = ms_since(t);
    if cfg.proto == Proto::Sis {
        ws.send(Message::text(cfg.start_msg.clone()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .map_err(|e| format!("protocol: response is not JSON: {e}"))?;
                    match v["resp_type"].as_str().unwrap_or("") {
                        "START" => break,
                        "ERROR" | "FATAL_ERROR" => {
                            return Err(format!(
                                "start-refused: {} {}",
                                v["error_code"].as_str().unwrap_or(""),
                                v["error_msg"].as_str().unwrap_or("")
                            ))
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err("closed: before START was answered".into())
                }
                Some(Err(e)) => return Err(format!("ws-error: {e}")),
                Some(Ok(_)) => {}
            }
        }
    }
    let frames = plan.total.div_ceil(cfg.chunk_samples);
    let mut st = StreamState {
        cfg,
        first_sent: None,
        end_sent: None,
        out,
    };
    let t0 = Instant::now();
    let mut next = 0usize;
    loop {
        let send_at = t0 + cfg.chunk * next as u32;
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Seen::Done = st.on_text(t.as_str())? {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err("closed: before the end of the exchange".into())
                }
                Some(Err(e)) => return Err(format!("ws-error: {e}")),
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(send_at), if st.end_sent.is_none() => {
                let now = Instant::now();
                let lag = now.saturating_duration_since(send_at).as_secs_f64() * 1000.0;
                st.out.max_lag_ms = st.out.max_lag_ms.max(lag);
                let from = next * cfg.chunk_samples;
                let len = cfg.chunk_samples.min(plan.total - from);
                let frame = encode(cfg.proto, &plan.frame(audio, from, len));
                if st.first_sent.is_none() {
                    st.first_sent = Some(now);
                }
                ws.send(Message::binary(frame)).await.map_err(|e| format!("send: {e}"))?;
                next += 1;
                if next == frames {
                    // the end of audio goes right after its last frame, as a live client sends it
                    let end = match cfg.proto {
                        Proto::Sis => r#"{"command":"END","cancel":false}"#,
                        Proto::Sherpa => "Done",
                    };
                    st.end_sent = Some(Instant::now());
                    ws.send(Message::text(end)).await.map_err(|e| format!("send: {e}"))?;
                }
            }
        }
    }
    // close politely; the sherpa server never closes by itself
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ok(())
}

async fn run_stream(cfg: Arc<Config>, audio: Arc<Audio>, plan: Plan, start: Instant) -> Outcome {
    tokio::time::sleep_until(start).await;
    let audio_len = Duration::from_secs_f64(plan.total as f64 / RATE as f64);
    let deadline = start + audio_len + cfg.timeout;
    let mut out = Outcome::default();
    let r = tokio::time::timeout_at(deadline, exchange(&cfg, &audio, &plan, &mut out)).await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.error = Some(e),
        Err(_) => out.error = Some("timeout: no end of exchange in time".into()),
    }
    out
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let r = |x: Option<f64>| x.map(round2);
    json!({
        "count": v.len(),
        "p50": r(pct(&v, 50.0)),
        "p95": r(pct(&v, 95.0)),
        "p99": r(pct(&v, 99.0)),
        "max": r(v.last().copied()),
        "mean": r(if v.is_empty() { None } else { Some(v.iter().sum::<f64>() / v.len() as f64) }),
    })
}

fn mb(kb: u64) -> f64 {
    round2(kb as f64 / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.streams == 0 {
        bail!("-n must be at least 1");
    }
    if args.chunk_ms == 0 {
        bail!("--chunk-ms must be at least 1");
    }
    let audio = Arc::new(load_audio(&args.wavs)?);
    let mut rng = Rng(args.seed);
    let mut plans = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        let offset = Duration::from_micros(rng.below(args.stagger_ms.max(1) * 1000));
        plans.push((plan(&audio, &mut rng, args.clips, args.duration), offset));
    }
    let audio_s: f64 = plans.iter().map(|(p, _)| p.total as f64).sum::<f64>() / RATE as f64;
    let cfg = Arc::new(Config {
        proto: args.proto,
        url: args.url.clone(),
        chunk: Duration::from_millis(args.chunk_ms),
        chunk_samples: (RATE as u64 * args.chunk_ms / 1000).max(1) as usize,
        timeout: Duration::from_secs(args.timeout_s),
        start_msg: {
            let mut config = json!({
                "audio_format": "pcm16k16bit",
                "property": args.property,
                "interim_results": "yes",
            });
            if let Some(id) = &args.vocabulary_id {
                config["vocabulary_id"] = json!(id);
            }
            json!({"command": "START", "config": config}).to_string()
        },
        signer: match (&args.ak, &args.sk) {
            (Some(ak), Some(sk)) => Some(signer(&args.url, ak, sk)?),
            _ => None,
        },
    });

    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };

    let server = args.server_pid.map(|p| p.to_string());
    // the server and its engine workers
    let server_cpu0 = server.as_deref().and_then(tree_cpu_s);
    let server_rss0 = server.as_deref().and_then(|p| tree_status_kb(p, "VmRSS:"));
    let gen_cpu0 = procfs::cpu_s("self");
    let wall0 = std::time::Instant::now();

    let (outcomes, server_rss_peak) = rt.block_on(async {
        let start = Instant::now() + Duration::from_millis(50);
        let mut tasks = tokio::task::JoinSet::new();
        for (p, offset) in plans {
            tasks.spawn(run_stream(cfg.clone(), audio.clone(), p, start + offset));
        }
        // sample the server's RSS while the streams run
        let sampler = server.clone().map(|pid| {
            tokio::spawn(async move {
                let mut peak = 0u64;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    match tree_status_kb(&pid, "VmRSS:") {
                        Some(kb) => peak = peak.max(kb),
                        None => return peak,
                    }
                }
            })
        });
        let mut outcomes = Vec::with_capacity(tasks.len());
        while let Some(r) = tasks.join_next().await {
            outcomes.push(r.unwrap_or_else(|e| Outcome {
                error: Some(format!("task: {e}")),
                ..Outcome::default()
            }));
        }
        let mut peak = None;
        if let Some(s) = sampler {
            s.abort();
            peak = s.await.ok();
        }
        (outcomes, peak)
    });

    let wall = wall0.elapsed().as_secs_f64();
    let gen_cpu = match (gen_cpu0, procfs::cpu_s("self")) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let server_cpu = match (server_cpu0, server.as_deref().and_then(tree_cpu_s)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let server_hwm = server.as_deref().and_then(|p| tree_status_kb(p, "VmHWM:"));
    let server_rss_end = server.as_deref().and_then(|p| tree_status_kb(p, "VmRSS:"));
    // the sampler is aborted at the end, so take the last reading too
    let peak = match (server_rss_peak, server_rss_end) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };

    let n = args.streams;
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples: Vec<String> = Vec::new();
    let (mut first, mut fin, mut lag, mut conn) = (vec![], vec![], vec![], vec![]);
    let mut no_partial = 0;
    for o in &outcomes {
        lag.push(o.max_lag_ms);
        if let Some(e) = &o.error {
            let kind = e.split(':').next().unwrap_or("other").to_string();
            *failures.entry(kind).or_default() += 1;
            if examples.len() < 3 && !examples.contains(e) {
                examples.push(e.clone());
            }
            continue;
        }
        conn.push(o.connect_ms);
        match o.first_partial_ms {
            Some(v) => first.push(v),
            None => no_partial += 1,
        }
        if let Some(v) = o.final_ms {
            fin.push(v);
        }
    }
    for e in &examples {
        eprintln!("rasr-load: failure: {e}");
    }
    let failed: usize = failures.values().sum();
    let pct_of = |cpu: f64| round2(cpu / wall * 100.0);
    let line = json!({
        "proto": match args.proto { Proto::Sis => "sis", Proto::Sherpa => "sherpa" },
        "label": args.label,
        "n": n,
        "ok": n - failed,
        "failures": failed,
        "failure_kinds": failures,
        "failure_examples": examples,
        "audio_s_per_stream": round2(audio_s / n as f64),
        "chunk_ms": args.chunk_ms,
        "first_partial_ms": summary(first),
        "no_partial": no_partial,
        "final_ms": summary(fin),
        "connect_ms": summary(conn),
        "send_lag_ms": summary(lag),
        "wall_s": round2(wall),
        "generator": {
            "threads": args.threads.max(1),
            "cpu_s": gen_cpu.map(round2),
            "cpu_pct": gen_cpu.map(pct_of),
            "rss_mb": procfs::status_kb("self", "VmRSS:").map(mb),
        },
        "server": server.as_ref().map(|pid| json!({
            "pid": pid,
            "cpu_s": server_cpu.map(round2),
            "cpu_pct": server_cpu.map(pct_of),
            // percent of one core per real-time stream: CPU time over audio time
            "cpu_pct_per_stream": server_cpu.map(|c| round4(c / audio_s * 100.0)),
            "rss_idle_mb": server_rss0.map(mb),
            "rss_peak_mb": peak.map(mb),
            "rss_hwm_mb": server_hwm.map(mb),
            "mb_per_stream": match (server_rss0, peak) {
                (Some(a), Some(b)) => Some(round4(b.saturating_sub(a) as f64 / 1024.0 / n as f64)),
                _ => None,
            },
        })),
    });
    println!("{line}");
    Ok(())
}
