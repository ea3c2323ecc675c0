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

use crate::config::AuthMode;
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

struct TestApp {
    router: Router,
    store: Store,
}

async fn app(mode: AuthMode) -> TestApp {
    let name = uuid::Uuid::new_v4().simple();
    // a named in-memory database, shared by the pool's connections (the
    // name is the URI `file:...`, its colon escaped for the URL parser)
    let store = Store::open(&format!("sqlite://file%3Asisd-router-{name}?mode=memory"))
        .await
        .expect("an in-memory store");
    let engine = engine();
    let shutdown = crate::shutdown::Shutdown::default();
    let jobs = Arc::new(sis_jobs::Jobs {
        store: store.clone(),
        objects: None,
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
    });
    let master_key = sis_auth::MasterKey::from_hex(&sis_auth::MasterKey::generate_hex()).ok();
    let auth = Arc::new(AuthState::new(mode, store.clone(), master_key, 3600, 2));
    let router = crate::server::router(AppState {
        engine,
        auth,
        rasr_connections: Default::default(),
        short_audio_budget: Arc::new(MemoryBudget::new(64)),
        jobs,
        shutdown,
    });
    TestApp { router, store }
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
        ("GET", short_audio_path()),
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
}
