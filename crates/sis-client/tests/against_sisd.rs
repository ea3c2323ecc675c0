//! The client library against a real sisd on loopback (`target/release/sisd`,
//! or `SISD_BIN`; `./scripts/test` builds it before `cargo test`) with
//! `--auth sis`, the project's tiny test packs and held-out speech
//! (`SIS_HELDOUT_DIR`, made by `tools/heldout/make_heldout.py`): AK/SK
//! signatures and a password token reach every kind of API (short audio,
//! a RASR session, vocabularies, TTS and real-time TTS, an upload and its
//! job), and refusals come back as the SIS code.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sis_client::{Auth, Client, ClientError};

const PID: &str = "c11e0000000000000000000000000001";
const PASSWORD: &str = "correct-horse-battery-staple";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sisd_bin() -> PathBuf {
    let bin = std::env::var_os("SISD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/sisd"));
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build --release -p sisd)",
        bin.display()
    );
    bin
}

/// Runs `sisd ARGS` with `env`; its standard output.
fn sisd(env: &[(&str, &Path)], args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = Command::new(sisd_bin());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("sisd runs");
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        i.write_all(text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("sisd runs");
    assert!(
        out.status.success(),
        "sisd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Server {
    child: Child,
    base: String,
    ak: String,
    sk: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn client(&self) -> Client {
        Client::new(
            &self.base,
            PID,
            Auth::AkSk {
                ak: self.ak.clone(),
                sk: self.sk.clone(),
            },
        )
        .expect("a client")
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("a directory");
    let data = dir.path().join("data");
    let models = dir.path().join("models");
    let mk = dir.path().join("mk");
    std::fs::write(&mk, sisd(&[], &["keygen"], None).trim()).expect("master key");
    let env = [
        ("SIS_DATA_DIR", data.as_path()),
        ("SIS_MASTER_KEY_FILE", mk.as_path()),
    ];
    sisd(
        &env,
        &[
            "projects",
            "create",
            "--domain",
            "acme",
            "--name",
            "cn-north-4",
            "--id",
            PID,
        ],
        None,
    );
    let cred: Value =
        serde_json::from_str(sisd(&env, &["credentials", "create", "--project", PID], None).trim())
            .expect("a credential");
    sisd(
        &env,
        &["users", "create", "--domain", "acme", "--name", "alice"],
        Some(&format!("{PASSWORD}\n")),
    );
    let vad = root().join("../shared/models/silero_vad");
    for pack in [
        root().join("testdata/models/zh-tiny-ctc-offline"),
        root().join("testdata/models/zh-tiny-ctc-streaming"),
        vad,
    ] {
        let (p, m) = (pack.to_string_lossy(), models.to_string_lossy());
        sisd(
            &[],
            &["models", "install", "--from", &p, "--models-dir", &m],
            None,
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(sisd_bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--auth",
            "sis",
            "--no-probe",
        ])
        .arg("--models")
        .arg(&models)
        .env("SIS_DATA_DIR", &data)
        .env("SIS_MASTER_KEY_FILE", &mk)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sisd serve");
    let server = Server {
        child,
        base,
        ak: cred["access_key"].as_str().expect("ak").to_string(),
        sk: cred["secret_key"].as_str().expect("sk").to_string(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/health", server.base)).await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "sisd did not become healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first held-out sentence: its 16 kHz WAV and its transcript.
fn heldout() -> (PathBuf, String) {
    let dir = std::env::var_os("SIS_HELDOUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/heldout"));
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (make it: python3 tools/heldout/make_heldout.py {})",
            dir.join("manifest.tsv").display(),
            dir.display()
        )
    });
    let row = manifest
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f.len() == 4 && f[1] == "sentence")
        .expect("a held-out sentence");
    (
        dir.join("16k").join(format!("{}.wav", row[0])),
        row[2].to_string(),
    )
}

async fn finished_job(c: &Client, data_url: &str) -> Value {
    let id = c
        .create_job(
            data_url,
            json!({"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}),
        )
        .await
        .expect("a job");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let doc = c.job(&id).await.expect("the job");
        if doc["status"] != "WAITING" {
            return doc;
        }
        assert!(Instant::now() < deadline, "the job did not end: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_reach_every_kind_of_api() {
    let s = start().await;
    let c = s.client();
    let (wav, text) = heldout();
    let pcm = sis_client::pcm16k(&wav).expect("held-out audio");

    let r = c
        .short_audio(
            &pcm,
            "pcm16k16bit",
            "chinese_16k_general",
            json!({"digit_norm": "no"}),
        )
        .await
        .expect("short audio");
    assert_eq!(r["result"]["text"], text.as_str(), "{r}");

    // a real-time session, 100 ms a message
    let mut rasr = c
        .rasr(
            "continue-stream",
            json!({"audio_format": "pcm16k16bit", "property": "chinese_16k_general",
                   "digit_norm": "no"}),
        )
        .await
        .expect("a RASR session");
    for chunk in pcm.chunks(3200) {
        rasr.audio(chunk).await.expect("audio");
    }
    rasr.end().await.expect("END");
    let mut finals = String::new();
    loop {
        let m = rasr
            .next()
            .await
            .expect("a message")
            .expect("END before the close");
        match m["resp_type"].as_str() {
            Some("RESULT") => {
                for seg in m["segments"].as_array().into_iter().flatten() {
                    if seg["is_final"] == true {
                        finals.push_str(seg["result"]["text"].as_str().unwrap_or_default());
                    }
                }
            }
            Some("END") => break,
            _ => {}
        }
    }
    rasr.close().await;
    assert_eq!(finals, text);

    // vocabularies
    let v = c
        .call(
            "POST",
            "asr/vocabularies",
            None,
            Some(
                &json!({"name": "client", "language": "chinese_mandarin", "contents": ["华为云"]}),
            ),
        )
        .await
        .expect("a vocabulary");
    let id = v["vocabulary_id"].as_str().expect("an id").to_string();
    let shown = c
        .call("GET", &format!("asr/vocabularies/{id}"), None, None)
        .await
        .expect("the vocabulary");
    assert_eq!(shown["contents"], json!(["华为云"]));
    let listed = c
        .call("GET", "asr/vocabularies", Some("offset=0&limit=10"), None)
        .await
        .expect("the list");
    assert_eq!(listed["count"], 1, "{listed}");
    c.call("DELETE", &format!("asr/vocabularies/{id}"), None, None)
        .await
        .expect("deleted");

    // TTS: the real-time audio is the pcm file of /tts for the same config
    let cfg = json!({"audio_format": "pcm", "sample_rate": "16000",
                     "property": "chinese_xiaoyan_common"});
    let whole = c.tts("你好。世界。", cfg.clone()).await.expect("tts");
    let streamed = c
        .rtts("你好。世界。", cfg)
        .await
        .expect("an RTTS session")
        .collect()
        .await
        .expect("the audio");
    assert!(whole.len() > 16_000, "{} bytes", whole.len());
    assert_eq!(streamed, whole);

    // an upload and its job
    let up = c
        .upload(std::fs::read(&wav).expect("the file"), |_| {})
        .await
        .expect("an upload");
    let doc = finished_job(&c, up["data_url"].as_str().expect("data_url")).await;
    assert_eq!(doc["status"], "FINISHED", "{doc}");
    assert_eq!(doc["segments"][0]["result"]["text"], text.as_str(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_token_works_and_refusals_carry_the_sis_code() {
    let s = start().await;
    let token = sis_client::password_token(&s.base, "acme", "alice", PASSWORD, PID)
        .await
        .expect("a token");
    let c = Client::new(&s.base, PID, Auth::Token(token.clone())).expect("a client");
    let listed = c
        .call("GET", "asr/vocabularies", None, None)
        .await
        .expect("the list");
    assert_eq!(listed["count"], 0, "{listed}");
    let code = |r: Result<Value, ClientError>| match r {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("not a refusal: {other:?}"),
    };

    // a wrong password, a wrong secret key, another project's path
    match sis_client::password_token(&s.base, "acme", "alice", "wrong", PID).await {
        Err(ClientError::Api { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
    let bad = Client::new(
        &s.base,
        PID,
        Auth::AkSk {
            ak: s.ak.clone(),
            sk: "x".repeat(40),
        },
    )
    .expect("a client");
    assert_eq!(
        code(bad.call("GET", "asr/vocabularies", None, None).await),
        (401, "APIG.0301".into())
    );
    let elsewhere = Client::new(&s.base, &"f".repeat(32), Auth::Token(token)).expect("a client");
    // (SIS: a token of another project fails its verification)
    assert_eq!(
        code(elsewhere.call("GET", "asr/vocabularies", None, None).await),
        (401, "SIS.0101".into())
    );

    // refusals of the APIs themselves
    let c = s.client();
    let (status, sis) = code(c.job(&"0".repeat(32)).await);
    assert_eq!((status, sis.as_str()), (400, "SIS.0032"));
    let (_, sis) = code(
        c.short_audio(b"\0\0", "pcm16k16bit", "klingon_16k_general", json!({}))
            .await,
    );
    assert!(sis.starts_with("SIS."), "{sis}");
    match c
        .rasr(
            "continue-stream",
            json!({"audio_format": "pcm16k16bit", "property": "klingon_16k_general"}),
        )
        .await
    {
        Err(ClientError::Api { code, .. }) => assert!(code.starts_with("SIS."), "{code}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an unknown property was started"),
    }
    match c.rtts("你好", json!({"audio_format": "wav"})).await {
        Err(ClientError::Api { code, .. }) => assert_eq!(code, "SIS.0032"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("wav was streamed"),
    }
    match c
        .create_job(
            "upload://nothing",
            json!({"audio_format": "auto",
                                                   "property": "chinese_16k_general"}),
        )
        .await
    {
        Err(ClientError::Api {
            status: 400, code, ..
        }) => assert_eq!(code, "SIS.0032"),
        other => panic!("{other:?}"),
    }
    // nothing listens there
    let gone = Client::new("http://127.0.0.1:9", PID, Auth::None).expect("a client");
    assert!(matches!(
        gone.call("GET", "asr/vocabularies", None, None).await,
        Err(ClientError::Connect { .. })
    ));
}
