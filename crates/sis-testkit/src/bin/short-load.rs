//! `short-load` — a fixed-concurrency load generator for one-shot recognition
//! of short clips: `C` connections, each sending one request after another
//! (a new one as soon as the last is answered), until `N` requests have been
//! answered. It prints one JSON line: requests per second, latency
//! percentiles, failures, the CPU time the server used per request (with
//! `--server-pid`: utime+stime from `/proc/PID/stat` of the server and its
//! child processes, sisd's engine workers), the generator's own CPU time,
//! and the CPU time the rest of the machine used meanwhile (`/proc/stat`).
//!
//! Two protocols, so that sisd and a peer are driven by the same code:
//! - `sis`: `POST /v1/{project}/asr/short-audio` over HTTP/1.1 keep-alive, the
//!   JSON body `{"data": BASE64, "config": {"audio_format": "pcm16k16bit",
//!   "property": ...}}`; the answer's `result.text` is the transcript;
//! - `sherpa`: sherpa-onnx's `offline-websocket-server`. Per clip, over one
//!   WebSocket that stays open: binary messages carrying, back to back, the
//!   sample rate (int32 little-endian), the byte count of the samples that
//!   follow (int32 LE, 4 x samples) and the samples (float32 LE in [-1, 1]),
//!   cut into messages of `--ws-chunk-bytes` (the first one includes the
//!   8-byte header). The server decodes once it has that many bytes and
//!   answers one text message, a JSON object whose `text` is the transcript.
//!   The next clip may follow on the same connection. At the end the client
//!   sends the text `Done` and the server closes the connection.
//!
//! Clips: 16 kHz mono 16-bit WAV files, each padded with silence or cut to
//! `--duration` seconds, and sent with the API's defaults. Request `i` of the measurement sends clip
//! `(i + --offset) mod clips`, so two runs with the same offset send the same
//! clips in the same order. Before the measurement each connection sends
//! `--warmup` requests (not measured), and with `--transcripts K` the first
//! connection first decodes clips 0..K one at a time and reports their text
//! (sis: asked with `digit_norm: no`, the recogniser's own text, which is
//! what the peer answers).
//! Latency: the first byte of a request written -> its whole answer read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sis_testkit::procfs::{self, machine_busy_s, tree_cpu_s, tree_status_kb};
use sis_testkit::{pct, read_wav, wav_paths, RATE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Proto {
    /// Huawei Cloud SIS short-audio over HTTP (sisd).
    Sis,
    /// sherpa-onnx offline WebSocket server.
    Sherpa,
}

#[derive(Parser, Debug)]
#[command(
    name = "short-load",
    about = "Short-audio recognition at a fixed concurrency against sisd (sis) or sherpa-onnx-offline-websocket-server (sherpa); prints one JSON line"
)]
struct Args {
    /// Protocol the server speaks.
    #[arg(long, value_enum)]
    proto: Proto,
    /// sis: http://HOST:PORT/v1/PROJECT/asr/short-audio; sherpa: ws://HOST:PORT.
    #[arg(long)]
    url: String,
    /// Requests in flight at once (one connection each).
    #[arg(short = 'c', long, default_value_t = 1)]
    concurrency: usize,
    /// Measured requests in all.
    #[arg(short = 'n', long, default_value_t = 192)]
    requests: usize,
    /// Each clip is padded with silence or cut to this many seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Use only WAV files whose name starts with this ("" for all).
    #[arg(long, default_value = "s")]
    prefix: String,
    /// At most this many clips (the first, by name).
    #[arg(long, default_value_t = 32)]
    max_clips: usize,
    /// Request i sends clip (i + offset) mod clips.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Unmeasured requests per connection before the measurement.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Decode clips 0..K one at a time before the measurement and report their text.
    #[arg(long, default_value_t = 0)]
    transcripts: usize,
    /// sis: the `property` of the requests.
    #[arg(long, default_value = "chinese_16k_common")]
    property: String,
    /// sherpa: bytes per WebSocket message (the 8-byte header + samples,
    /// then samples; 10240 as sherpa-onnx's example clients; 0: one message).
    #[arg(long, default_value_t = 10240)]
    ws_chunk_bytes: usize,
    /// A request not answered within this many seconds fails.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Measure this process (the server) and its children over the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Free text copied into the output line.
    #[arg(long)]
    label: Option<String>,
    /// 16 kHz mono 16-bit WAV files, or directories of them.
    #[arg(required = true)]
    wavs: Vec<PathBuf>,
}

// ------------------------------------------------------------------ clips

/// One clip, ready to send in either protocol.
struct Clip {
    name: String,
    /// sis: the request head and JSON body
    http_head: Bytes,
    http_body: Bytes,
    /// sherpa: the WebSocket messages
    ws_msgs: Vec<Bytes>,
}

impl Clip {
    /// `raw_text`: sis requests ask for `digit_norm: no` (the API's default is
    /// yes: digits written as numerals), so that the text compares with the
    /// peer's.
    fn new(
        name: String,
        pcm: &[i16],
        url: &Url,
        property: &str,
        ws_chunk: usize,
        raw_text: bool,
    ) -> Clip {
        let pcm_bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut config = json!({"audio_format": "pcm16k16bit", "property": property});
        if raw_text {
            config["digit_norm"] = json!("no");
        }
        let body = json!({"data": BASE64.encode(&pcm_bytes), "config": config}).to_string();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            url.path,
            url.host_port,
            body.len()
        );
        let mut ws = Vec::with_capacity(8 + 4 * pcm.len());
        ws.extend_from_slice(&(RATE as i32).to_le_bytes());
        ws.extend_from_slice(&((4 * pcm.len()) as i32).to_le_bytes());
        for s in pcm {
            ws.extend_from_slice(&(f32::from(*s) / 32768.0).to_le_bytes());
        }
        let ws = Bytes::from(ws);
        let step = if ws_chunk == 0 { ws.len() } else { ws_chunk };
        let ws_msgs = (0..ws.len())
            .step_by(step)
            .map(|i| ws.slice(i..(i + step).min(ws.len())))
            .collect();
        Clip {
            name,
            http_head: Bytes::from(head),
            http_body: Bytes::from(body),
            ws_msgs,
        }
    }

    fn bytes(&self, proto: Proto) -> usize {
        match proto {
            Proto::Sis => self.http_head.len() + self.http_body.len(),
            Proto::Sherpa => self.ws_msgs.iter().map(Bytes::len).sum(),
        }
    }
}

/// What this tool needs of a URL: `scheme://host:port/path`.
struct Url {
    full: String,
    host_port: String,
    path: String,
}

fn parse_url(s: &str) -> anyhow::Result<Url> {
    let rest = s
        .split_once("://")
        .map(|(_, r)| r)
        .with_context(|| format!("not a URL: {s}"))?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !host_port.contains(':') {
        bail!("give the port in {s}");
    }
    Ok(Url {
        full: s.to_string(),
        host_port: host_port.to_string(),
        path: path.to_string(),
    })
}

// ------------------------------------------------------------------ connections

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Conn {
    Http(BufReader<TcpStream>),
    Ws(Box<Ws>),
}

async fn connect(proto: Proto, url: &Url) -> Result<Conn, String> {
    match proto {
        Proto::Sis => {
            let s = TcpStream::connect(url.host_port.as_str())
                .await
                .map_err(|e| format!("connect: {e}"))?;
            s.set_nodelay(true).map_err(|e| format!("connect: {e}"))?;
            Ok(Conn::Http(BufReader::with_capacity(64 * 1024, s)))
        }
        Proto::Sherpa => {
            let (ws, _) =
                tokio_tungstenite::connect_async_with_config(url.full.as_str(), None, true)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
            Ok(Conn::Ws(Box::new(ws)))
        }
    }
}

/// One request; the transcript on success.
async fn request(conn: &mut Conn, clip: &Clip) -> Result<String, String> {
    match conn {
        Conn::Http(r) => {
            let s = r.get_mut();
            s.write_all(&clip.http_head)
                .await
                .map_err(|e| format!("send: {e}"))?;
            s.write_all(&clip.http_body)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut line = String::new();
            if r.read_line(&mut line)
                .await
                .map_err(|e| format!("recv: {e}"))?
                == 0
            {
                return Err("closed: before the answer".into());
            }
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("protocol: status line {line:?}"))?;
            let mut len = None;
            loop {
                line.clear();
                if r.read_line(&mut line)
                    .await
                    .map_err(|e| format!("recv: {e}"))?
                    == 0
                {
                    return Err("closed: in the answer's head".into());
                }
                if line == "\r\n" || line == "\n" {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse::<usize>().ok();
                } else if l.starts_with("transfer-encoding:") {
                    return Err("protocol: chunked answer (not supported here)".into());
                }
            }
            let len = len.ok_or("protocol: answer without content-length")?;
            let mut body = vec![0u8; len];
            r.read_exact(&mut body)
                .await
                .map_err(|e| format!("recv: {e}"))?;
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("protocol: answer is not JSON: {e}"))?;
            if status != 200 {
                return Err(format!(
                    "status-{status}: {} {}",
                    v["error_code"].as_str().unwrap_or(""),
                    v["error_msg"].as_str().unwrap_or("")
                ));
            }
            v["result"]["text"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "protocol: no result.text".into())
        }
        Conn::Ws(ws) => {
            for m in &clip.ws_msgs {
                ws.feed(Message::Binary(m.clone()))
                    .await
                    .map_err(|e| format!("send: {e}"))?;
            }
            ws.flush().await.map_err(|e| format!("send: {e}"))?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str())
                            .map_err(|e| format!("protocol: result is not JSON: {e}"))?;
                        return v["text"]
                            .as_str()
                            .map(str::to_string)
                            .ok_or_else(|| "protocol: no text in the result".into());
                    }
                    Some(Ok(Message::Close(f))) => {
                        return Err(format!(
                            "closed: {}",
                            f.map(|f| f.reason.to_string()).unwrap_or_default()
                        ))
                    }
                    None => return Err("closed: before the result".into()),
                    Some(Err(e)) => return Err(format!("ws-error: {e}")),
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// The end of a connection: sherpa's `Done` (the server then closes).
async fn finish(conn: Conn) {
    if let Conn::Ws(mut ws) = conn {
        let _ = ws.send(Message::text("Done")).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

// ------------------------------------------------------------------ /proc

// ------------------------------------------------------------------ stats

fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

struct Done {
    latency_ms: f64,
    error: Option<String>,
}

/// What every connection's task shares.
struct Run {
    proto: Proto,
    url: Arc<Url>,
    clips: Arc<Vec<Clip>>,
    /// the next request's index
    next: AtomicUsize,
    total: usize,
    offset: usize,
    timeout: Duration,
}

/// One connection: requests one after another until `total` have been taken.
async fn worker(run: Arc<Run>, mut conn: Option<Conn>) -> (Vec<Done>, Option<Conn>) {
    let mut out = Vec::new();
    loop {
        let i = run.next.fetch_add(1, Ordering::Relaxed);
        if i >= run.total {
            break;
        }
        let clip = &run.clips[(i + run.offset) % run.clips.len()];
        let t = Instant::now();
        let r = match conn.as_mut() {
            None => Err("connect: no connection".to_string()),
            Some(c) => match tokio::time::timeout(run.timeout, request(c, clip)).await {
                Ok(r) => r,
                Err(_) => Err("timeout: no answer in time".into()),
            },
        };
        let latency_ms = t.elapsed().as_secs_f64() * 1000.0;
        let error = r.err();
        if error.is_some() {
            // a connection in an unknown state is not reused
            conn = connect(run.proto, &run.url).await.ok();
        }
        out.push(Done { latency_ms, error });
    }
    (out, conn)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.requests == 0 {
        bail!("-c and -n must be at least 1");
    }
    let url = Arc::new(parse_url(&args.url)?);
    let want = (args.duration * RATE as f64).round() as usize;
    let mut clips = Vec::new();
    let mut raw_clips = Vec::new();
    for p in wav_paths(&args.wavs, &args.prefix)?
        .into_iter()
        .take(args.max_clips)
    {
        let mut s = read_wav(&p)?;
        s.resize(want, 0);
        let name = p
            .file_stem()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if raw_clips.len() < args.transcripts {
            raw_clips.push(Clip::new(
                name.clone(),
                &s,
                &url,
                &args.property,
                args.ws_chunk_bytes,
                true,
            ));
        }
        clips.push(Clip::new(
            name,
            &s,
            &url,
            &args.property,
            args.ws_chunk_bytes,
            false,
        ));
    }
    if clips.is_empty() {
        bail!("no clips (check the WAV paths and --prefix)");
    }
    let clips = Arc::new(clips);
    let timeout = Duration::from_secs(args.timeout_s);
    let proto = args.proto;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = args.server_pid.map(|p| p.to_string());

    let result = rt.block_on(async {
        let mut conns = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            conns.push(connect(proto, &url).await.map_err(anyhow::Error::msg)?);
        }
        // transcripts of the first clips, one at a time
        let mut transcripts = Vec::new();
        for clip in &raw_clips {
            let text = tokio::time::timeout(timeout, request(&mut conns[0], clip))
                .await
                .map_err(|_| anyhow::anyhow!("timeout in the transcripts"))?
                .map_err(anyhow::Error::msg)?;
            transcripts.push(json!({"clip": clip.name, "text": text}));
        }
        // warm-up: every connection at once
        let mut set = tokio::task::JoinSet::new();
        for (k, mut c) in conns.into_iter().enumerate() {
            let clips = clips.clone();
            let n = args.warmup;
            set.spawn(async move {
                for j in 0..n {
                    let clip = &clips[(k + j) % clips.len()];
                    match tokio::time::timeout(timeout, request(&mut c, clip)).await {
                        Err(_) => return Err("warm-up: no answer in time".to_string()),
                        Ok(Err(e)) => return Err(format!("warm-up: {e}")),
                        Ok(Ok(_)) => {}
                    }
                }
                Ok(c)
            });
        }
        let mut conns = Vec::new();
        while let Some(r) = set.join_next().await {
            conns.push(r?.map_err(anyhow::Error::msg)?);
        }

        let server_cpu0 = server.as_deref().and_then(tree_cpu_s);
        let gen_cpu0 = procfs::cpu_s("self");
        let busy0 = machine_busy_s();
        let t0 = Instant::now();
        let run = Arc::new(Run {
            proto,
            url: url.clone(),
            clips: clips.clone(),
            next: AtomicUsize::new(0),
            total: args.requests,
            offset: args.offset,
            timeout,
        });
        let mut set = tokio::task::JoinSet::new();
        for c in conns {
            set.spawn(worker(run.clone(), Some(c)));
        }
        let mut done = Vec::new();
        let mut conns = Vec::new();
        while let Some(r) = set.join_next().await {
            let (d, c) = r?;
            done.extend(d);
            conns.extend(c);
        }
        let wall = t0.elapsed().as_secs_f64();
        let server_cpu = match (server_cpu0, server.as_deref().and_then(tree_cpu_s)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let gen_cpu = match (gen_cpu0, procfs::cpu_s("self")) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let busy = match (busy0, machine_busy_s()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        for c in conns {
            finish(c).await;
        }
        anyhow::Ok((done, wall, server_cpu, gen_cpu, busy, transcripts))
    });
    let (done, wall, server_cpu, gen_cpu, busy, transcripts) = result?;

    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples: Vec<String> = Vec::new();
    let mut lat = Vec::new();
    for d in &done {
        match &d.error {
            Some(e) => {
                let kind = e.split(':').next().unwrap_or("other").to_string();
                *failures.entry(kind).or_default() += 1;
                if examples.len() < 3 && !examples.contains(e) {
                    examples.push(e.clone());
                }
            }
            None => lat.push(d.latency_ms),
        }
    }
    for e in &examples {
        eprintln!("short-load: failure: {e}");
    }
    let ok = lat.len();
    let failed = done.len() - ok;
    let n = done.len().max(1) as f64;
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    let pct_of = |cpu: f64| r2(cpu / wall * 100.0);
    let other = match (busy, server_cpu, gen_cpu) {
        (Some(b), s, Some(g)) => Some(r2((b - s.unwrap_or(0.0) - g).max(0.0) / wall * 100.0)),
        _ => None,
    };
    let line = json!({
        "proto": match proto { Proto::Sis => "sis", Proto::Sherpa => "sherpa" },
        "label": args.label,
        "concurrency": args.concurrency,
        "requests": done.len(),
        "ok": ok,
        "failures": failed,
        "failure_kinds": failures,
        "failure_examples": examples,
        "clips": clips.len(),
        "audio_s_per_request": args.duration,
        "bytes_per_request": clips[0].bytes(proto),
        "offset": args.offset,
        "wall_s": r3(wall),
        "rps": r3(ok as f64 / wall),
        "latency_ms": {
            "p50": pct(&sorted, 50.0).map(r2),
            "p95": pct(&sorted, 95.0).map(r2),
            "p99": pct(&sorted, 99.0).map(r2),
            "max": sorted.last().copied().map(r2),
            "mean": if ok == 0 { None } else { Some(r2(lat.iter().sum::<f64>() / ok as f64)) },
        },
        // in the order the requests finished
        "latencies_ms": lat.iter().map(|v| r2(*v)).collect::<Vec<_>>(),
        "server": server.as_ref().map(|pid| json!({
            "pid": pid,
            "processes": procfs::tree(pid).len(),
            "cpu_s": server_cpu.map(r3),
            "cpu_ms_per_req": server_cpu.map(|c| r3(c * 1000.0 / n)),
            "cpu_pct": server_cpu.map(pct_of),
            "rss_mb": tree_status_kb(pid, "VmRSS:").map(|k| r2(k as f64 / 1024.0)),
        })),
        "generator": {
            "cpu_s": gen_cpu.map(r3),
            "cpu_ms_per_req": gen_cpu.map(|c| r3(c * 1000.0 / n)),
            "cpu_pct": gen_cpu.map(pct_of),
        },
        "machine_busy_s": busy.map(r3),
        // CPU used by neither the server nor the generator, % of one core
        "other_cpu_pct": other,
        "transcripts": transcripts,
    });
    println!("{line}");
    Ok(())
}
