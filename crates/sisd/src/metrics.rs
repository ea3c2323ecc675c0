//! Prometheus metrics: every name, its labels and its help text are
//! declared here once; the rest of the server records through the
//! `metrics` crate's macros with these names, and `/metrics` renders them
//! with `metrics-exporter-prometheus`. Labels carry no project id, user or
//! request content (their number is bounded by the code, not by clients).

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests by API (`errors::api_name`), SIS code (`none` when answered
/// without an error) and HTTP status.
pub const REQUESTS: &str = "sis_requests_total";
/// Request latency by API (a WebSocket API: until the upgrade).
pub const REQUEST_SECONDS: &str = "sis_request_duration_seconds";
/// Real-time sessions open now, by mode (`short-stream`, `sentence-stream`,
/// `continue-stream`, `short-audio` for short audio over WebSocket).
pub const RASR_OPEN: &str = "sis_rasr_sessions_open";
/// Real-time sessions started, by mode.
pub const RASR_STARTED: &str = "sis_rasr_sessions_total";
/// From a session's first audio to its first result.
pub const RASR_FIRST_PARTIAL: &str = "sis_rasr_first_result_seconds";
/// From END to the final result.
pub const RASR_FINAL: &str = "sis_rasr_final_result_seconds";
/// Streams (or utterance segments) per multi-stream decode call, by path
/// (`stream`: real-time, `utterance`: short audio and flash).
pub const DECODE_BATCH: &str = "sis_decode_batch_size";
/// How long an utterance waited in the engine's queue.
pub const DECODE_QUEUE_WAIT: &str = "sis_decode_queue_wait_seconds";
/// Utterance decode calls: decode time over the audio's duration.
pub const DECODE_RTF: &str = "sis_decode_real_time_factor";
/// Recorded-file jobs by state (read from the store at each scrape).
pub const JOBS: &str = "sis_jobs";
/// Age of the oldest job waiting for a worker (0 when none).
pub const JOBS_OLDEST_WAITING: &str = "sis_jobs_oldest_waiting_seconds";
/// Model packs loaded, by kind.
pub const PACKS: &str = "sis_model_packs_loaded";
/// Engine worker processes up.
pub const ENGINE_WORKERS: &str = "sis_engine_workers_up";
/// Refused authentications, by cause.
pub const AUTH_FAILURES: &str = "sis_auth_failures_total";
/// Requests and sessions refused by a quota, by limit.
pub const QUOTA_REFUSALS: &str = "sis_quota_refusals_total";

/// Latency buckets (seconds): 5 ms to 2 min.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Batch sizes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// Real-time factors.
const RTF_BUCKETS: &[f64] = &[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0];

/// The recorder: installed once per process (tests build many routers).
static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();

/// The process's recorder, installed on first use, every metric described.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| match install() {
            Ok(h) => h,
            Err(e) => {
                // another recorder is installed: render an empty registry
                tracing::error!(error = %e, "cannot install the metrics recorder");
                PrometheusBuilder::new().build_recorder().handle()
            }
        })
        .clone()
}

fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(DECODE_BATCH.into()), BATCH_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(DECODE_RTF.into()), RTF_BUCKETS)?
        .install_recorder()?;
    describe_counter!(REQUESTS, "Requests by API, SIS code and HTTP status");
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "Request latency by API");
    describe_gauge!(RASR_OPEN, "Real-time sessions open, by mode");
    describe_counter!(RASR_STARTED, "Real-time sessions started, by mode");
    describe_histogram!(
        RASR_FIRST_PARTIAL,
        Unit::Seconds,
        "Real-time sessions: first audio to first result"
    );
    describe_histogram!(
        RASR_FINAL,
        Unit::Seconds,
        "Real-time sessions: END to the final result"
    );
    describe_histogram!(
        DECODE_BATCH,
        "Streams per multi-stream decode call, by path"
    );
    describe_histogram!(
        DECODE_QUEUE_WAIT,
        Unit::Seconds,
        "Time an utterance waited in the engine's queue"
    );
    describe_histogram!(
        DECODE_RTF,
        "Utterance decode calls: decode time over audio duration"
    );
    describe_gauge!(JOBS, "Recorded-file jobs by state");
    describe_gauge!(
        JOBS_OLDEST_WAITING,
        Unit::Seconds,
        "Age of the oldest waiting job"
    );
    describe_gauge!(PACKS, "Model packs loaded, by kind");
    describe_gauge!(ENGINE_WORKERS, "Engine worker processes up");
    describe_counter!(AUTH_FAILURES, "Refused authentications, by cause");
    describe_counter!(QUOTA_REFUSALS, "Requests refused by a quota, by limit");
    Ok(handle)
}

/// One refused authentication.
pub fn auth_failure(cause: &'static str) {
    counter!(AUTH_FAILURES, "cause" => cause).increment(1);
}

/// A real-time session's place in [`RASR_OPEN`]: counted from creation to drop.
pub struct OpenSession(&'static str);

impl OpenSession {
    pub fn new(mode: &'static str) -> OpenSession {
        gauge!(RASR_OPEN, "mode" => mode).increment(1.0);
        counter!(RASR_STARTED, "mode" => mode).increment(1);
        OpenSession(mode)
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        gauge!(RASR_OPEN, "mode" => self.0).decrement(1.0);
    }
}

/// Records what the engine observed of its work since the last call.
pub fn record_engine(engine: &sis_pool::EnginePool) {
    use sis_engine::observe::Observation;
    for o in engine.take_observations() {
        match o {
            Observation::StreamBatch(n) => {
                histogram!(DECODE_BATCH, "path" => "stream").record(f64::from(n))
            }
            Observation::UtteranceBatch(n) => {
                histogram!(DECODE_BATCH, "path" => "utterance").record(f64::from(n))
            }
            Observation::QueueWait(s) => histogram!(DECODE_QUEUE_WAIT).record(f64::from(s)),
            Observation::RealTimeFactor(r) => histogram!(DECODE_RTF).record(f64::from(r)),
        }
    }
}

/// Sets the gauges read at each scrape: packs, engine workers, jobs (from
/// `store`), then renders every metric.
pub async fn render(engine: &sis_pool::EnginePool, store: &sis_store::Store) -> String {
    record_engine(engine);
    for kind in ["offline_asr", "streaming_asr", "vad", "punctuation", "tts"] {
        let n = engine
            .packs()
            .iter()
            .filter(|p| p.kind.as_str() == kind)
            .count();
        gauge!(PACKS, "kind" => kind).set(n as f64);
    }
    let workers = engine.workers();
    let up = if workers.is_empty() {
        1 // the engine runs in the server process
    } else {
        workers.iter().filter(|w| w.state == "ready").count()
    };
    gauge!(ENGINE_WORKERS).set(up as f64);
    match store.job_states().await {
        Ok((by_state, oldest)) => {
            for s in ["WAITING", "RUNNING", "FINISHED", "ERROR"] {
                let n = by_state.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
                gauge!(JOBS, "state" => s).set(n as f64);
            }
            let now_ms = sis_store::now_ms();
            let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
            gauge!(JOBS_OLDEST_WAITING).set(age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count jobs"),
    }
    handle().render()
}
