//! The real router, one request at a time (`tower::ServiceExt::oneshot`):
//! the committed test packs in testdata/models loaded in this process
//! (`--engine-workers 0`), an in-memory SQLite store, the real auth layer,
//! job service and error mapping. No sockets, no mocks.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use sis_engine::EngineConfig;
use sis_pool::EnginePool;
use sis_store::Store;
use tower::ServiceExt;

use crate::config::{AuthMode, VocabularyLimits};
use crate::state::{AppState, AuthState, MemoryBudget};

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "correct horse battery";

/// One engine for every test: loading the packs is the slow part.
fn engine() -> Arc<EnginePool> {
    static ENGINE: OnceLock<Arc<EnginePool>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models");
            let packs = sis_engine::pack::discover(&dir).expect("the committed test packs");
            let config = EngineConfig {
                packs,
                workers: 1,
                queue: 16,
                probe_exe: None,
                max_streams: 4,
                stream_workers: 1,
                ..EngineConfig::default()
            };
            Arc::new(EnginePool::start(config, 0).expect("the test packs load"))
        })
        .clone()
}

/// The synthesizer with the real espeak-ng (installed by `scripts/setup
/// --runtime`).
fn synthesizer() -> Arc<sis_engine::tts::Synthesizer> {
    static TTS: OnceLock<Arc<sis_engine::tts::Synthesizer>> = OnceLock::new();
    TTS.get_or_init(|| {
        Arc::new(sis_engine::tts::Synthesizer::start(
            sis_engine::tts::TtsSettings {
                espeak: "espeak-ng".into(),
                max_processes: 2,
                timeout: std::time::Duration::from_secs(30),
            },
        ))
    })
    .clone()
}

struct TestApp {
    router: Router,
    store: Store,
    state: AppState,
}

/// The vocabulary limits of the test app: small, so each can be reached.
const LIMITS: VocabularyLimits = VocabularyLimits {
    per_project: 3,
    words: 5,
};

async fn app(mode: AuthMode) -> TestApp {
    let name = uuid::Uuid::new_v4().simple();
    // a named in-memory database, shared by the pool's connections (the
    // name is the URI `file:...`, its colon escaped for the URL parser)
    let store = Store::open(&format!("sqlite://file%3Asisd-router-{name}?mode=memory"))
        .await
        .expect("an in-memory store");
    let engine = engine();
    let shutdown = crate::shutdown::Shutdown::default();
    let vocabularies = Arc::new(sis_store::VocabularyCache::new(store.clone()));
    let jobs = Arc::new(sis_jobs::Jobs {
        store: store.clone(),
        objects: None,
        uploads: sis_store::Objects::open(&format!(
            "file://{}",
            std::env::temp_dir()
                .join(format!("sisd-router-uploads-{name}"))
                .display()
        ))
        .expect("an uploads directory"),
        engine: engine.clone(),
        fetcher: sis_fetch::Fetcher::new(sis_fetch::FetchPolicy::default()).expect("a fetcher"),
        config: sis_jobs::JobsConfig {
            workers: 1,
            lease_ms: 30_000,
            retention_ms: 3_600_000,
            spool: std::env::temp_dir(),
            callback_key: vec![7; 32],
            project_max: 1,
            callback_concurrency: 1,
        },
        stop: sis_jobs::Stop::new(shutdown.subscribe()),
        public: crate::errors::job,
        vocabularies: vocabularies.clone(),
    });
    let master_key = sis_auth::MasterKey::from_hex(&sis_auth::MasterKey::generate_hex()).ok();
    let auth = Arc::new(AuthState::new(mode, store.clone(), master_key, 3600, 2));
    let state = AppState {
        engine,
        auth,
        rasr_connections: Default::default(),
        rtts_connections: Default::default(),
        short_audio_budget: Arc::new(MemoryBudget::new(64)),
        jobs,
        vocabularies,
        vocabulary_limits: LIMITS,
        tts: synthesizer(),
        flash: Arc::new(crate::state::FlashSettings {
            buckets: Default::default(),
            timeout: std::time::Duration::from_secs(60),
            spool: std::env::temp_dir(),
        }),
        shutdown,
        metrics_on_main: true,
        quotas: crate::quotas::Quotas::new(store.clone()),
    };
    let router = crate::server::router(state.clone());
    TestApp {
        router,
        store,
        state,
    }
}

impl TestApp {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Response, serde_json::Value) {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router answers");
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("a body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, Response::from_parts(parts, Body::empty()), json)
    }

    async fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, Response, serde_json::Value) {
        self.send(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("a request"),
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Response, serde_json::Value) {
        self.send(Request::get(path).body(Body::empty()).expect("a request"))
            .await
    }

    async fn with_body(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, Response, serde_json::Value) {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json;charset=utf-8")
                .body(Body::from(body.to_string()))
                .expect("a request"),
        )
        .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Response, serde_json::Value) {
        self.send(
            Request::delete(path)
                .body(Body::empty())
                .expect("a request"),
        )
        .await
    }
}

/// 1 s of a 440 Hz tone, 16 kHz 16-bit little-endian PCM, as base64.
fn tone_base64() -> String {
    let pcm: Vec<u8> = (0..16_000)
        .flat_map(|i| {
            let t = i as f32 / 16_000.0;
            let s = (0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 32767.0) as i16;
            s.to_le_bytes()
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(pcm)
}

fn short_audio_body(data: &str, format: &str, property: &str) -> serde_json::Value {
    serde_json::json!({
        "data": data,
        "config": {"audio_format": format, "property": property},
    })
}

fn short_audio_path() -> String {
    format!("/v1/{PROJECT}/asr/short-audio")
}

fn assert_sis_error(status: StatusCode, v: &serde_json::Value, want: (u16, &str, &str)) {
    assert_eq!(status.as_u16(), want.0, "{v}");
    assert_eq!(v["error_code"], want.1, "{v}");
    let msg = v["error_msg"].as_str().unwrap_or_default();
    assert!(msg.contains(want.2), "{msg:?} lacks {:?}", want.2);
}

// ---- short-audio ----

#[tokio::test]
async fn short_audio_recognises() {
    let app = app(AuthMode::None).await;
    let (status, resp, v) = app
        .post_json(
            &short_audio_path(),
            short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["trace_id"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    // the trace id a client reports is the request id its log line carries
    assert_eq!(
        resp.headers()["x-request-id"],
        v["trace_id"].as_str().unwrap_or_default()
    );
    assert!(v["result"]["text"].is_string(), "{v}");
    assert!(v.get("error_code").is_none());
}

#[tokio::test]
async fn short_audio_bad_base64() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(
            &short_audio_path(),
            short_audio_body("not base64!!", "pcm16k16bit", "chinese_16k_general"),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "data base64 encode invalid"));
    assert!(
        v.get("request_id").is_none(),
        "SIS errors carry no request_id"
    );
}

#[tokio::test]
async fn short_audio_bad_format() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(
            &short_audio_path(),
            short_audio_body(&tone_base64(), "pcm44k16bit", "chinese_16k_general"),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "'audio_format' is invalid"));
}

#[tokio::test]
async fn short_audio_rate_must_match_the_property() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(
            &short_audio_path(),
            short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_8k_common"),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0301", ""));
}

#[tokio::test]
async fn short_audio_unknown_property() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(
            &short_audio_path(),
            short_audio_body(&tone_base64(), "pcm16k16bit", "english_16k_common"),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "'property'"));
}

#[tokio::test]
async fn short_audio_needs_authentication() {
    let app = app(AuthMode::Sis).await;
    let (status, resp, v) = app
        .post_json(
            &short_audio_path(),
            short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general"),
        )
        .await;
    assert_sis_error(
        status,
        &v,
        (
            401,
            "APIG.0301",
            "Incorrect IAM authentication information: x-auth-token not found",
        ),
    );
    // a gateway error names the request, as the header does
    let header = resp.headers()["x-request-id"].to_str().expect("ASCII");
    assert_eq!(v["request_id"], header);
}

// ---- IAM-style tokens ----

async fn with_user(app: &TestApp) {
    app.store
        .create_project("acme", "cn-north-4", Some(PROJECT))
        .await
        .expect("a project");
    let hash = sis_auth::secrets::hash_password(PASSWORD).expect("a hash");
    app.store
        .create_user("acme", "alice", &hash)
        .await
        .expect("a user");
}

fn sign_in(password: &str) -> serde_json::Value {
    serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "password": password, "domain": {"name": "acme"}}}},
        "scope": {"project": {"name": "cn-north-4"}},
    }})
}

#[tokio::test]
async fn token_issued_and_accepted() {
    let app = app(AuthMode::Sis).await;
    with_user(&app).await;
    let (status, resp, v) = app.post_json("/v3/auth/tokens", sign_in(PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["token"]["project"]["id"], PROJECT);
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .expect("ASCII")
        .to_string();
    // the token opens the project's APIs
    let (status, _, v) = app
        .send(
            Request::post(short_audio_path())
                .header("x-auth-token", &token)
                .body(Body::from(
                    short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general")
                        .to_string(),
                ))
                .expect("a request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // and no other project's
    let (status, _, v) = app
        .send(
            Request::get("/v1/ffffffffffffffffffffffffffffffff/asr/transcriber/jobs/x")
                .header("x-auth-token", &token)
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
    assert_sis_error(status, &v, (401, "SIS.0101", "belongs to another project"));
}

#[tokio::test]
async fn token_refused_for_a_wrong_password() {
    let app = app(AuthMode::Sis).await;
    with_user(&app).await;
    let (status, resp, v) = app
        .post_json("/v3/auth/tokens", sign_in("wrong password"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["message"], "The username or password is wrong.");
    assert!(!resp.headers().contains_key("x-subject-token"));
    let (status, _, v) = app
        .post_json("/v3/auth/tokens", serde_json::json!({"auth": {}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["title"], "Bad Request");
}

// ---- transcription jobs ----

fn job_body(data_url: &str) -> serde_json::Value {
    serde_json::json!({
        "data_url": data_url,
        "config": {"audio_format": "auto", "property": "chinese_16k_general"},
    })
}

fn jobs_path() -> String {
    format!("/v1/{PROJECT}/asr/transcriber/jobs")
}

#[tokio::test]
async fn job_created_and_read() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(&jobs_path(), job_body("https://example.com/a.wav"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = v["job_id"].as_str().expect("a job id").to_string();
    let (status, _, v) = app.get(&format!("{}/{id}", jobs_path())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "WAITING");
    assert!(v["create_time"].is_string());
    // another project's job answers as a missing one
    let (status, _, v) = app
        .get(&format!(
            "/v1/ffffffffffffffffffffffffffffffff/asr/transcriber/jobs/{id}"
        ))
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "task id is not found"));
}

#[tokio::test]
async fn job_with_a_bad_url_is_refused() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(&jobs_path(), job_body("http://127.0.0.1/a.wav"))
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "data_url is not allowed"));
    let (status, _, v) = app
        .post_json(&jobs_path(), job_body("ftp://example.com/a.wav"))
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "data_url"));
    let mut body = job_body("https://example.com/a.wav");
    body["config"]["need_analysis_info"] = serde_json::json!({"diarization": true});
    let (status, _, v) = app.post_json(&jobs_path(), body).await;
    assert_sis_error(status, &v, (400, "SIS.0031", "diarization"));
}

// ---- the gateway ----

#[tokio::test]
async fn unknown_routes_have_the_gateway_shape() {
    let app = app(AuthMode::None).await;
    for (method, path) in [
        ("GET", "/nothing/here".to_string()),
        ("PUT", short_audio_path()),
        ("DELETE", jobs_path()),
        ("GET", format!("/v1/{PROJECT}/rasr/no-such-mode")),
    ] {
        let (status, resp, v) = app
            .send(
                Request::builder()
                    .method(method)
                    .uri(&path)
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await;
        assert_sis_error(status, &v, (404, "APIG.0101", "does not exist"));
        assert_eq!(
            v["request_id"],
            resp.headers()["x-request-id"].to_str().expect("ASCII"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn rasr_needs_a_websocket_upgrade() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app.get(&format!("/v1/{PROJECT}/rasr/short-stream")).await;
    assert_sis_error(status, &v, (400, "SIS.0032", "WebSocket upgrade"));
    // short audio over WebSocket: the REST path's GET
    let (status, _, v) = app.get(&short_audio_path()).await;
    assert_sis_error(status, &v, (400, "SIS.0032", "WebSocket upgrade"));
}

#[tokio::test]
async fn rtts_needs_a_websocket_upgrade_and_authentication() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app.get(&format!("/v1/{PROJECT}/rtts")).await;
    assert_sis_error(status, &v, (400, "SIS.0032", "WebSocket upgrade"));
    let signed = self::app(AuthMode::Sis).await;
    let (status, _, v) = signed.get(&format!("/v1/{PROJECT}/rtts")).await;
    assert_sis_error(status, &v, (401, "APIG.0301", "x-auth-token not found"));
}

#[tokio::test]
async fn health_lists_the_packs() {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["packs"].as_array().map(Vec::len), Some(4));
    // the committed packs are test packs, and /health says so
    assert_eq!(
        v["test_packs"],
        serde_json::json!([
            "zh-tiny-ctc-offline",
            "zh-tiny-ctc-streaming",
            "zh-tiny-transducer-offline",
            "zh-tiny-transducer-streaming"
        ])
    );
    assert_eq!(v["packs"][0]["test_only"], true);
    assert_eq!(
        v["warning"],
        "serving test packs that only recognise synthetic test speech"
    );
    assert_eq!(v["tts"]["available"], true);
    assert_eq!(v["tts"]["voices"], 38);
}

// ---- speech synthesis ----

fn tts_path() -> String {
    format!("/v1/{PROJECT}/tts")
}

#[tokio::test]
async fn tts_synthesises_what_the_sdk_asks_for() {
    let app = app(AuthMode::None).await;
    // the v3 SDK's body (sdk-captures.md, RunTts)
    let body = r#"{"text": "\u4f60\u597d\uff0c\u4e16\u754c", "config": {"audio_format": "wav", "sample_rate": "16000", "property": "chinese_xiaoyan_common", "speed": 0, "pitch": 0, "volume": 50}}"#;
    let (status, resp, v) = app
        .send(
            Request::post(tts_path())
                .header("content-type", "application/json;charset=utf-8")
                .body(Body::from(body))
                .expect("a request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["trace_id"],
        resp.headers()["x-request-id"].to_str().expect("ASCII")
    );
    let wav = base64::engine::general_purpose::STANDARD
        .decode(v["result"]["data"].as_str().expect("data"))
        .expect("base64");
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        16000
    );
    assert!(wav.len() > 44 + 16000, "at least half a second");
    // no config at all: wav at 8000 Hz
    let (status, _, v) = app
        .post_json(&tts_path(), serde_json::json!({"text": "好"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let wav = base64::engine::general_purpose::STANDARD
        .decode(v["result"]["data"].as_str().expect("data"))
        .expect("base64");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        8000
    );
}

#[tokio::test]
async fn tts_refusals() {
    let app = app(AuthMode::None).await;
    let cases = [
        (
            serde_json::json!({"config": {}}),
            (400, "SIS.0012", "'text' is required"),
        ),
        (
            serde_json::json!({"text": "  "}),
            (400, "SIS.0032", "text cannot be empty"),
        ),
        (
            serde_json::json!({"text": "好".repeat(501)}),
            (400, "SIS.0032", "501 characters"),
        ),
        (
            serde_json::json!({"text": "好", "config": {"property": "chinese_nobody_common"}}),
            (
                400,
                "SIS.0032",
                "'property' chinese_nobody_common is not a voice",
            ),
        ),
        (
            serde_json::json!({"text": "好", "config": {"sample_rate": "11025"}}),
            (400, "SIS.0402", "'sample_rate' is invalid"),
        ),
        (
            serde_json::json!({"text": "好", "config": {"property": "chinese_huanvxia_literature"}}),
            (400, "SIS.0402", "16000 only"),
        ),
        (
            serde_json::json!({"text": "好", "config": {"audio_format": "ogg"}}),
            (400, "SIS.0032", "'audio_format' is invalid"),
        ),
        (
            serde_json::json!({"text": "好", "config": {"volume": 101}}),
            (400, "SIS.0032", "'volume' is invalid"),
        ),
    ];
    for (body, want) in cases {
        let (status, _, v) = app.post_json(&tts_path(), body).await;
        assert_sis_error(status, &v, want);
    }
    let (status, _, v) = app
        .send(
            Request::post(tts_path())
                .body(Body::from(vec![b'{'; 70 * 1024]))
                .expect("a request"),
        )
        .await;
    assert_sis_error(status, &v, (413, "APIG.0201", "Request entity too large."));
}

#[tokio::test]
async fn tts_needs_authentication() {
    let app = app(AuthMode::Sis).await;
    let (status, _, v) = app
        .post_json(&tts_path(), serde_json::json!({"text": "好"}))
        .await;
    assert_sis_error(status, &v, (401, "APIG.0301", "x-auth-token not found"));
}

#[tokio::test]
async fn tts_without_espeak_is_an_internal_error() {
    let mut app = app(AuthMode::None).await;
    app.state.tts = Arc::new(sis_engine::tts::Synthesizer::start(
        sis_engine::tts::TtsSettings {
            espeak: "/nonexistent/espeak-ng".into(),
            max_processes: 1,
            timeout: std::time::Duration::from_secs(5),
        },
    ));
    let router = crate::server::router(app.state.clone());
    app.router = router;
    let (status, _, v) = app
        .post_json(&tts_path(), serde_json::json!({"text": "好"}))
        .await;
    assert_sis_error(
        status,
        &v,
        (
            500,
            "SIS.0100",
            "speech synthesis is not available on this server",
        ),
    );
    let (_, _, h) = app.get("/health").await;
    assert_eq!(h["tts"]["available"], false);
    assert!(h["tts"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("/nonexistent/espeak-ng")));
    assert_eq!(h["status"], "ok");
}

// ---- hot-word vocabularies ----

const OTHER: &str = "ffffffffffffffffffffffffffffffff";

fn vocabularies_path(project: &str) -> String {
    format!("/v1/{project}/asr/vocabularies")
}

fn vocabulary_path(project: &str, id: &str) -> String {
    format!("/v1/{project}/asr/vocabularies/{id}")
}

fn vocabulary(name: &str, contents: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"name": name, "description": "desc", "language": "chinese_mandarin",
                       "contents": contents})
}

/// Creates a vocabulary of `project`; its id.
async fn created(app: &TestApp, project: &str, name: &str) -> String {
    let (status, _, v) = app
        .post_json(
            &vocabularies_path(project),
            vocabulary(name, serde_json::json!(["华为云", "SIS|5", "花为=华为"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["vocabulary_id"].as_str().expect("an id").to_string()
}

/// A create body refused with `code`, `msg`.
async fn create_refused(body: serde_json::Value, code: &str, msg: &str) {
    let app = app(AuthMode::None).await;
    let (status, _, v) = app.post_json(&vocabularies_path(PROJECT), body).await;
    assert_sis_error(status, &v, (400, code, msg));
    // nothing was stored
    let (_, _, v) = app.get(&vocabularies_path(PROJECT)).await;
    assert_eq!(v["count"], 0, "{v}");
}

#[tokio::test]
async fn vocabulary_create_show_list_update_delete() {
    let app = app(AuthMode::None).await;
    let (status, resp, v) = app
        .post_json(
            &vocabularies_path(PROJECT),
            vocabulary("test_vocab", serde_json::json!(["华为", "HUAWEI"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;charset=utf-8"
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    let id = v["vocabulary_id"].as_str().expect("an id").to_string();
    // an upper-case UUID, like SIS's
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(id, id.to_ascii_uppercase());

    let (status, _, v) = app.get(&vocabulary_path(PROJECT, &id)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"vocabulary_id": id, "name": "test_vocab", "description": "desc",
                           "language": "chinese_mandarin", "contents": ["华为", "HUAWEI"]})
    );
    // ids are matched whatever their case
    let (status, _, _) = app
        .get(&vocabulary_path(PROJECT, &id.to_ascii_lowercase()))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, v) = app.get(&vocabularies_path(PROJECT)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"count": 1, "result": [{"vocabulary_id": id, "name": "test_vocab",
                           "language": "chinese_mandarin", "description": "desc"}]})
    );

    // an update replaces every field; a missing description becomes empty
    let (status, _, v) = app
        .with_body(
            "PUT",
            &vocabulary_path(PROJECT, &id),
            serde_json::json!({"name": "renamed", "language": "chinese_mandarin",
                               "contents": ["华为云|8", "西艾斯=SIS"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, serde_json::json!({"vocabulary_id": id}));
    let (_, _, v) = app.get(&vocabulary_path(PROJECT, &id)).await;
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["description"], "");
    assert_eq!(v["contents"], serde_json::json!(["华为云|8", "西艾斯=SIS"]));

    // delete: 200 and no body at all
    let resp = app
        .router
        .clone()
        .oneshot(
            Request::delete(vocabulary_path(PROJECT, &id))
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1024)
        .await
        .expect("a body");
    assert!(bytes.is_empty(), "{bytes:?}");
    let (status, _, v) = app.get(&vocabulary_path(PROJECT, &id)).await;
    assert_sis_error(status, &v, (400, "SIS.0201", "not found"));
    let (_, _, v) = app.get(&vocabularies_path(PROJECT)).await;
    assert_eq!(v, serde_json::json!({"count": 0, "result": []}));
}

#[tokio::test]
async fn vocabulary_unknown_id() {
    let app = app(AuthMode::None).await;
    let missing = "5A7B1C3E-0000-4000-8000-000000000000";
    let (status, _, v) = app.get(&vocabulary_path(PROJECT, missing)).await;
    assert_sis_error(status, &v, (400, "SIS.0201", missing));
    let (status, _, v) = app
        .with_body(
            "PUT",
            &vocabulary_path(PROJECT, missing),
            vocabulary("a", serde_json::json!(["华为"])),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0201", missing));
    let (status, _, v) = app.delete(&vocabulary_path(PROJECT, missing)).await;
    assert_sis_error(status, &v, (400, "SIS.0201", missing));
    let (status, _, v) = app.get(&vocabulary_path(PROJECT, "not-an-id")).await;
    assert_sis_error(status, &v, (400, "SIS.0201", "not found"));
}

#[tokio::test]
async fn vocabulary_of_another_project_answers_as_a_missing_one() {
    let app = app(AuthMode::None).await;
    let id = created(&app, PROJECT, "mine").await;
    let missing = "5A7B1C3E-0000-4000-8000-000000000000";
    let other = |p: &str| vocabulary_path(OTHER, p);
    for path in [other(&id), other(missing)] {
        let (status, _, v) = app.get(&path).await;
        assert_sis_error(status, &v, (400, "SIS.0201", "is not found"));
        let (status, _, v) = app
            .with_body("PUT", &path, vocabulary("x", serde_json::json!(["华为"])))
            .await;
        assert_sis_error(status, &v, (400, "SIS.0201", "is not found"));
        let (status, _, v) = app.delete(&path).await;
        assert_sis_error(status, &v, (400, "SIS.0201", "is not found"));
    }
    let (_, _, v) = app.get(&vocabularies_path(OTHER)).await;
    assert_eq!(v["count"], 0);
    // the same name in another project is another vocabulary
    created(&app, OTHER, "mine").await;
    // and the owner's is untouched
    let (status, _, v) = app.get(&vocabulary_path(PROJECT, &id)).await;
    assert_eq!((status, &v["name"]), (StatusCode::OK, &"mine".into()));
}

#[tokio::test]
async fn vocabulary_name_missing() {
    let mut body = vocabulary("a", serde_json::json!(["华为"]));
    body.as_object_mut().map(|o| o.remove("name"));
    create_refused(body, "SIS.0012", "'name' is required").await;
}

#[tokio::test]
async fn vocabulary_name_with_other_characters() {
    for name in ["a b", "热词表", "a.b", "a/b", ""] {
        let body = vocabulary(name, serde_json::json!(["华为"]));
        create_refused(body, "SIS.0032", "name").await;
    }
}

#[tokio::test]
async fn vocabulary_name_too_long() {
    let body = vocabulary(&"a".repeat(33), serde_json::json!(["华为"]));
    create_refused(body, "SIS.0032", "'name' is invalid").await;
    // 32 bytes of every allowed character are fine
    let app = app(AuthMode::None).await;
    let name = format!("{}_-#9", "Ab".repeat(14));
    assert_eq!(name.len(), 32);
    created(&app, PROJECT, &name).await;
}

#[tokio::test]
async fn vocabulary_name_taken() {
    let app = app(AuthMode::None).await;
    created(&app, PROJECT, "taken").await;
    let (status, _, v) = app
        .post_json(
            &vocabularies_path(PROJECT),
            vocabulary("taken", serde_json::json!(["华为"])),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0204", "'taken' already exists"));
    // renaming another one to it, too
    let id = created(&app, PROJECT, "free").await;
    let (status, _, v) = app
        .with_body(
            "PUT",
            &vocabulary_path(PROJECT, &id),
            vocabulary("taken", serde_json::json!(["华为"])),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0204", "already exists"));
}

#[tokio::test]
async fn vocabulary_description_too_long() {
    let mut body = vocabulary("a", serde_json::json!(["华为"]));
    body["description"] = "描".repeat(86).into();
    create_refused(body, "SIS.0032", "255").await;
}

#[tokio::test]
async fn vocabulary_language_missing() {
    let mut body = vocabulary("a", serde_json::json!(["华为"]));
    body.as_object_mut().map(|o| o.remove("language"));
    create_refused(body, "SIS.0012", "'language' is required").await;
}

#[tokio::test]
async fn vocabulary_language_unsupported() {
    let mut body = vocabulary("a", serde_json::json!(["HELLO"]));
    body["language"] = "english".into();
    create_refused(body, "SIS.0205", "not supported").await;
}

#[tokio::test]
async fn vocabulary_contents_missing() {
    let mut body = vocabulary("a", serde_json::json!([]));
    body.as_object_mut().map(|o| o.remove("contents"));
    create_refused(body, "SIS.0012", "'contents' is required").await;
}

#[tokio::test]
async fn vocabulary_contents_empty_or_not_a_list() {
    create_refused(
        vocabulary("a", serde_json::json!([])),
        "SIS.0032",
        "contents cannot be empty",
    )
    .await;
    create_refused(
        vocabulary("a", serde_json::json!("华为")),
        "SIS.0032",
        "array",
    )
    .await;
    create_refused(
        vocabulary("a", serde_json::json!(["华为", 7])),
        "SIS.0032",
        "contents[1]",
    )
    .await;
}

#[tokio::test]
async fn vocabulary_word_with_a_digit() {
    let body = vocabulary("a", serde_json::json!(["华为", "5G网络"]));
    create_refused(body, "SIS.0203", "contents[1]").await;
}

#[tokio::test]
async fn vocabulary_word_with_a_space() {
    let body = vocabulary("a", serde_json::json!(["HUAWEI CLOUD"]));
    create_refused(body, "SIS.0203", "spaces").await;
}

#[tokio::test]
async fn vocabulary_word_in_lower_case() {
    // the SDK's own example ("Huawei") breaks SIS's rule
    let body = vocabulary("a", serde_json::json!(["华为", "Huawei"]));
    create_refused(body, "SIS.0203", "upper-case").await;
}

#[tokio::test]
async fn vocabulary_word_with_punctuation() {
    let body = vocabulary("a", serde_json::json!(["华为。"]));
    create_refused(body, "SIS.0203", "character").await;
}

#[tokio::test]
async fn vocabulary_word_too_long() {
    let body = vocabulary("a", serde_json::json!(["华".repeat(11)]));
    create_refused(body, "SIS.0203", "more than 32").await;
}

#[tokio::test]
async fn vocabulary_word_with_a_bad_weight() {
    for w in ["华为|0", "华为|11", "华为|", "华为|x"] {
        create_refused(
            vocabulary("a", serde_json::json!([w])),
            "SIS.0203",
            "weight",
        )
        .await;
    }
}

#[tokio::test]
async fn vocabulary_bad_replacement_rule() {
    for w in ["=华为", "花为=", "花=为=华", "花为=华为|3"] {
        create_refused(
            vocabulary("a", serde_json::json!([w])),
            "SIS.0203",
            "SOUND_ALIKE=TARGET",
        )
        .await;
    }
    create_refused(
        vocabulary("a", serde_json::json!(["花为=huawei"])),
        "SIS.0203",
        "upper-case",
    )
    .await;
}

#[tokio::test]
async fn vocabulary_too_many_words() {
    // LIMITS.words is 5
    let body = vocabulary("a", serde_json::json!(["A", "B", "C", "D", "E", "F"]));
    create_refused(body, "SIS.0032", "more than the limit of 5").await;
    let app = app(AuthMode::None).await;
    let (status, _, v) = app
        .post_json(
            &vocabularies_path(PROJECT),
            vocabulary("a", serde_json::json!(["A", "B", "C", "D", "E"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // an update is held to the same limit
    let id = v["vocabulary_id"].as_str().expect("an id");
    let (status, _, v) = app
        .with_body(
            "PUT",
            &vocabulary_path(PROJECT, id),
            vocabulary("a", serde_json::json!(["A", "B", "C", "D", "E", "F"])),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "more than the limit of 5"));
}

#[tokio::test]
async fn vocabulary_too_many_tables() {
    // LIMITS.per_project is 3
    let app = app(AuthMode::None).await;
    let first = created(&app, PROJECT, "v1").await;
    created(&app, PROJECT, "v2").await;
    created(&app, PROJECT, "v3").await;
    let (status, _, v) = app
        .post_json(
            &vocabularies_path(PROJECT),
            vocabulary("v4", serde_json::json!(["华为"])),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0208", "may hold 3"));
    // per project: another project may still create
    created(&app, OTHER, "v4").await;
    // and a deletion frees a place
    let (status, _, _) = app.delete(&vocabulary_path(PROJECT, &first)).await;
    assert_eq!(status, StatusCode::OK);
    created(&app, PROJECT, "v4").await;
}

#[tokio::test]
async fn vocabulary_body_too_large() {
    let app = app(AuthMode::None).await;
    let huge = "A".repeat(sis_protocol::vocabulary::max_body_bytes(LIMITS.words) + 1);
    let (status, _, v) = app
        .post_json(
            &vocabularies_path(PROJECT),
            vocabulary("a", serde_json::json!([huge])),
        )
        .await;
    assert_sis_error(status, &v, (413, "APIG.0201", "too large"));
}

#[tokio::test]
async fn vocabulary_list_pages_and_filters() {
    let app = app(AuthMode::None).await;
    let ids = [
        created(&app, PROJECT, "alpha").await,
        created(&app, PROJECT, "beta").await,
        created(&app, PROJECT, "alphabet").await,
    ];
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (_, _, v) = app
        .get(&format!("{}?offset=1&limit=1", vocabularies_path(PROJECT)))
        .await;
    assert_eq!(v["count"], 3);
    assert_eq!(names(&v), ["beta"]);
    assert_eq!(v["result"][0]["vocabulary_id"], ids[1].as_str());
    let (_, _, v) = app
        .get(&format!("{}?offset=5", vocabularies_path(PROJECT)))
        .await;
    assert_eq!((v["count"].as_u64(), names(&v).len()), (Some(3), 0));
    // the name filter as the v3 SDK sends it: a JSON body on the GET
    let (status, _, v) = app
        .with_body(
            "GET",
            &format!("{}?limit=10&offset=0", vocabularies_path(PROJECT)),
            serde_json::json!({"name": "alpha"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 2);
    assert_eq!(names(&v), ["alpha", "alphabet"]);
    // or in the query
    let (_, _, v) = app
        .get(&format!("{}?name=phab", vocabularies_path(PROJECT)))
        .await;
    assert_eq!(names(&v), ["alphabet"]);
    for bad in ["limit=0", "limit=1001", "offset=-1", "limit=ten"] {
        let (status, _, v) = app
            .get(&format!("{}?{bad}", vocabularies_path(PROJECT)))
            .await;
        assert_sis_error(status, &v, (400, "SIS.0032", "is invalid"));
    }
    let (status, _, v) = app
        .send(
            Request::get(vocabularies_path(PROJECT))
                .body(Body::from("{not json"))
                .expect("a request"),
        )
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "not valid JSON"));
}

#[tokio::test]
async fn vocabulary_other_methods_are_not_apis() {
    let app = app(AuthMode::None).await;
    let id = created(&app, PROJECT, "a").await;
    for (method, path) in [
        ("PUT", vocabularies_path(PROJECT)),
        ("DELETE", vocabularies_path(PROJECT)),
        ("POST", vocabulary_path(PROJECT, &id)),
    ] {
        let (status, _, v) = app
            .send(
                Request::builder()
                    .method(method)
                    .uri(&path)
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await;
        assert_sis_error(status, &v, (404, "APIG.0101", "does not exist"));
    }
}

#[tokio::test]
async fn vocabulary_apis_need_authentication() {
    let app = app(AuthMode::Sis).await;
    let (status, _, v) = app.get(&vocabularies_path(PROJECT)).await;
    assert_sis_error(status, &v, (401, "APIG.0301", "x-auth-token not found"));
}

// ---- vocabulary_id in recognition requests ----

fn with_vocabulary(mut body: serde_json::Value, id: &str) -> serde_json::Value {
    body["config"]["vocabulary_id"] = id.into();
    body
}

#[tokio::test]
async fn short_audio_with_a_vocabulary() {
    let app = app(AuthMode::None).await;
    let id = created(&app, PROJECT, "hot").await;
    let body = || short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general");
    let (status, _, v) = app
        .post_json(&short_audio_path(), with_vocabulary(body(), &id))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _, v) = app
        .post_json(
            &short_audio_path(),
            with_vocabulary(body(), &id.to_ascii_lowercase()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn short_audio_with_an_unknown_vocabulary() {
    let app = app(AuthMode::None).await;
    let body = short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general");
    let (status, _, v) = app
        .post_json(&short_audio_path(), with_vocabulary(body, "vocab-1"))
        .await;
    assert_sis_error(
        status,
        &v,
        (400, "SIS.0201", "vocabulary vocab-1 is not found"),
    );
}

#[tokio::test]
async fn short_audio_with_another_projects_vocabulary() {
    let app = app(AuthMode::None).await;
    let theirs = created(&app, OTHER, "hot").await;
    let body = short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general");
    let (status, _, v) = app
        .post_json(&short_audio_path(), with_vocabulary(body, &theirs))
        .await;
    assert_sis_error(status, &v, (400, "SIS.0201", "is not found"));
}

#[tokio::test]
async fn job_with_a_vocabulary() {
    let app = app(AuthMode::None).await;
    let id = created(&app, PROJECT, "hot").await;
    let theirs = created(&app, OTHER, "hot").await;
    let body = || job_body("https://example.com/a.wav");
    let (status, _, v) = app
        .post_json(&jobs_path(), with_vocabulary(body(), &id))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for unknown in [theirs.as_str(), "5A7B1C3E-0000-4000-8000-000000000000"] {
        let (status, _, v) = app
            .post_json(&jobs_path(), with_vocabulary(body(), unknown))
            .await;
        assert_sis_error(status, &v, (400, "SIS.0201", "is not found"));
    }
}

#[tokio::test]
async fn a_change_reaches_the_next_request_at_once_on_this_server() {
    let app = app(AuthMode::None).await;
    let id = created(&app, PROJECT, "hot").await;
    let resolved = |id: &str| {
        let state = app.state.clone();
        let id = id.to_string();
        async move {
            let mut options = sis_core::RecognitionOptions {
                vocabulary_id: Some(id),
                ..Default::default()
            };
            let resolved = crate::vocabularies::resolve(&state, PROJECT, &mut options).await;
            resolved.map(|()| options.hot_words)
        }
    };
    let first = resolved(&id).await.ok().flatten().expect("hot words");
    assert_eq!(first.version, 1);
    assert_eq!(first.vocabulary_id, id);
    assert_eq!(first.words.as_slice(), ["华为云", "SIS|5", "花为=华为"]);
    let (status, _, _) = app
        .with_body(
            "PUT",
            &vocabulary_path(PROJECT, &id),
            vocabulary("hot", serde_json::json!(["华为"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = resolved(&id).await.ok().flatten().expect("hot words");
    assert_eq!(
        (second.version, second.words.as_slice()),
        (2, &["华为".to_string()][..])
    );
    // what the first request took is unchanged
    assert_eq!(first.words.len(), 3);
    app.delete(&vocabulary_path(PROJECT, &id)).await;
    assert!(resolved(&id).await.is_err(), "deleted: refused");
    // no vocabulary_id: nothing to resolve
    let mut none = sis_core::RecognitionOptions::default();
    crate::vocabularies::resolve(&app.state, PROJECT, &mut none)
        .await
        .expect("nothing to do");
    assert!(none.hot_words.is_none());
}

// ---- the token of a browser's WebSocket upgrade (the console) ----

/// A project with a user and two tokens made in the store: one valid, one
/// expired a minute ago.
async fn with_tokens(app: &TestApp) -> (String, String) {
    app.store
        .create_project("acme", "cn-north-4", Some(PROJECT))
        .await
        .expect("a project");
    let user = app
        .store
        .create_user("acme", "alice", "not-a-password-hash")
        .await
        .expect("a user");
    let now = sis_core::time::now_ms();
    let mut tokens = Vec::new();
    for expires in [now + 3_600_000, now - 60_000] {
        let token = sis_auth::secrets::new_token();
        app.store
            .insert_token(
                &sis_auth::secrets::token_digest(&token),
                &user.id,
                Some(PROJECT),
                now - 120_000,
                expires,
            )
            .await
            .expect("a token");
        tokens.push(token);
    }
    (tokens[0].clone(), tokens[1].clone())
}

/// A WebSocket upgrade request as a browser sends it, offering `protocols`.
fn browser_upgrade(path: &str, protocols: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "127.0.0.1")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", protocols)
        .body(Body::empty())
        .expect("a request")
}

#[tokio::test]
async fn a_websocket_upgrade_may_offer_its_token_as_a_subprotocol() {
    let app = app(AuthMode::Sis).await;
    let (good, expired) = with_tokens(&app).await;
    let path = format!("/v1/{PROJECT}/rasr/continue-stream");
    // a good token passes authentication: what stops this upgrade is only
    // that `oneshot` has no connection to upgrade (the real upgrade:
    // test_auth.py's test_ws_upgrade_with_a_token_subprotocol)
    let (status, _, v) = app
        .send(browser_upgrade(&path, &format!("sis, sis-token.{good}")))
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "WebSocket upgrade"));
    // the token may come in either place of the list
    let (status, _, v) = app
        .send(browser_upgrade(&path, &format!("sis-token.{good}, sis")))
        .await;
    assert_sis_error(status, &v, (400, "SIS.0032", "WebSocket upgrade"));
    // a bad or expired token: the very refusal an X-Auth-Token gets
    for token in ["sis1.not-a-token".to_string(), expired] {
        let (status, _, v) = app
            .send(browser_upgrade(&path, &format!("sis, sis-token.{token}")))
            .await;
        let (h_status, _, h_v) = app
            .send(
                Request::get(&path)
                    .header("x-auth-token", &token)
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!((status, &v["error_code"]), (h_status, &h_v["error_code"]));
        assert_eq!(v["error_msg"], h_v["error_msg"]);
        assert_eq!(v["error_code"], "APIG.0301");
    }
    // a subprotocol without the prefix is no credential
    let (status, _, v) = app.send(browser_upgrade(&path, &good)).await;
    assert_sis_error(status, &v, (401, "APIG.0301", "x-auth-token not found"));
}

#[tokio::test]
async fn a_rest_request_cannot_present_a_token_as_a_subprotocol() {
    let app = app(AuthMode::Sis).await;
    let (good, _) = with_tokens(&app).await;
    let offer = format!("sis, sis-token.{good}");
    // a POST that says it is an upgrade is still no WebSocket upgrade
    let (status, _, v) = app
        .send(
            Request::post(short_audio_path())
                .header("upgrade", "websocket")
                .header("sec-websocket-protocol", &offer)
                .body(Body::from(
                    short_audio_body(&tone_base64(), "pcm16k16bit", "chinese_16k_general")
                        .to_string(),
                ))
                .expect("a request"),
        )
        .await;
    assert_sis_error(status, &v, (401, "APIG.0301", "x-auth-token not found"));
    // nor is a GET without `Upgrade: websocket`
    let (status, _, v) = app
        .send(
            Request::get(vocabularies_path(PROJECT))
                .header("sec-websocket-protocol", &offer)
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
    assert_sis_error(status, &v, (401, "APIG.0301", "x-auth-token not found"));
    // the same token in X-Auth-Token opens it
    let (status, _, v) = app
        .send(
            Request::get(vocabularies_path(PROJECT))
                .header("x-auth-token", &good)
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn the_upgrade_answers_sis_and_never_the_token() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app(AuthMode::Sis).await;
    let (good, _) = with_tokens(&app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
        listener,
        app.router.clone(),
    )));
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("a connection");
    let request = format!(
        "GET /v1/{PROJECT}/rasr/continue-stream HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: sis, sis-token.{good}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("sent");
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed before the answer");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("\r\nsec-websocket-protocol: sis\r\n"),
        "{head}"
    );
    assert!(!head.contains("sis-token"), "{head}");
    assert!(!head.contains(&good.to_ascii_lowercase()), "{head}");
    server.abort();
}

// ---- the web console ----

#[tokio::test]
async fn the_console_is_public_and_strict() {
    let app = app(AuthMode::Sis).await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/capture-worklet.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/voices.json", "application/json"),
    ] {
        let resp = app
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("a request"))
            .await
            .expect("an answer");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        let ct = h["content-type"].to_str().unwrap_or_default();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let csp = h["content-security-policy"].to_str().unwrap_or_default();
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let (status, _, v) = app.get("/console/../Cargo.toml").await;
    assert_sis_error(status, &v, (404, "APIG.0101", ""));
    let (status, _, v) = app.get("/console/nothing.js").await;
    assert_sis_error(status, &v, (404, "APIG.0101", ""));
    let (status, _, v) = app
        .send(
            Request::post("/console")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
    assert_sis_error(status, &v, (404, "APIG.0101", ""));
}

#[tokio::test]
async fn the_openapi_document_is_public() {
    // served without credentials even with --auth sis, and it is this
    // router's document
    let app = app(AuthMode::Sis).await;
    let (status, resp, v) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.1")));
    assert!(v["paths"]["/v1/{project_id}/asr/short-audio"]["post"].is_object());
    let (status, _, v) = app.get(&short_audio_path()).await;
    assert_eq!(
        (status, &v["error_code"]),
        (StatusCode::UNAUTHORIZED, &"APIG.0301".into())
    );
}
