//! Downloads and callbacks against real HTTP servers on loopback sockets.
//!
//! Every refusal test also checks, through the servers' connection counters,
//! that nothing was sent to (or even connected to) the refused address.

mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use server::{file_body, TestServer};
use sis_fetch::{AllowList, FetchError, FetchErrorKind, FetchPolicy, Fetcher};

fn fetcher(allow: &str) -> Fetcher {
    Fetcher::new(policy(allow)).expect("valid policy")
}

fn policy(allow: &str) -> FetchPolicy {
    FetchPolicy {
        allow: AllowList::parse(allow).expect("valid allow-list"),
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        ..FetchPolicy::default()
    }
}

async fn server(ip: &str) -> TestServer {
    TestServer::start(ip).await.expect("bind test server")
}

/// A second loopback address, to tell an allowed loopback server from a
/// refused one. Linux routes all of 127.0.0.0/8 to `lo`; elsewhere the tests
/// that need it are skipped.
async fn second_loopback() -> Option<TestServer> {
    match TestServer::start("127.0.0.2").await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("skipped: cannot bind 127.0.0.2: {e}");
            None
        }
    }
}

struct Dest {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn dest() -> Dest {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audio.bin");
    Dest { _dir: dir, path }
}

#[track_caller]
fn assert_forbidden(err: &FetchError, addr: &str) {
    match err {
        FetchError::Forbidden { addr: a, .. } => {
            let want: std::net::IpAddr = addr.parse().expect("test address");
            assert_eq!(*a, want, "{err}");
        }
        other => panic!("expected Forbidden {addr}, got {other:?}"),
    }
    assert_eq!(err.kind(), FetchErrorKind::Forbidden);
}

#[tokio::test]
async fn loopback_literal_refused_before_connecting() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("");
    let d = dest();
    let url = srv.url("127.0.0.1", "/file");

    let err = f.check_url(&url).expect_err("check_url refuses");
    assert_forbidden(&err, "127.0.0.1");
    let err = f.download(&url, &d.path).await.expect_err("refused");
    assert_forbidden(&err, "127.0.0.1");
    assert!(err.to_string().contains("loopback"), "{err}");
    assert_eq!(srv.connections(), 0, "the server was contacted");
    assert!(!d.path.exists(), "no file for a refused download");
}

/// `localhost` names are loopback without resolving: refused by the early
/// check like `127.0.0.1`, and reaching only the loopback addresses allowed.
#[tokio::test]
async fn localhost_names_are_loopback_without_resolution() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("");
    for host in ["localhost", "LocalHost", "localhost.", "a.b.localhost"] {
        let url = srv.url(host, "/file");
        let err = f.check_url(&url).expect_err(host);
        match &err {
            FetchError::Forbidden { addr, .. } => assert!(addr.is_loopback(), "{addr}"),
            other => panic!("{host}: {other:?}"),
        }
        let err = f.download(&url, &dest().path).await.expect_err(host);
        assert_eq!(err.kind(), FetchErrorKind::Forbidden, "{err:?}");
    }
    assert_eq!(srv.connections(), 0);
    // allowing 127.0.0.1 allows localhost, which then reaches 127.0.0.1 only
    let f = fetcher("127.0.0.1");
    let d = dest();
    for host in ["localhost", "x.localhost"] {
        let url = srv.url(host, "/file");
        f.check_url(&url).expect(host);
        f.download(&url, &d.path).await.expect(host);
        assert_eq!(std::fs::read(&d.path).expect("read"), file_body());
    }
}

#[tokio::test]
async fn blocked_literals_refused_without_connecting() {
    // Bound on every address so that a connection attempt to any loopback
    // form would be counted; the IPv6 one only where IPv6 loopback exists.
    let v4 = server("127.0.0.1").await;
    let v6 = TestServer::start("::1").await.ok();
    let p4 = v4.port();
    let p6 = v6.as_ref().map_or(p4, TestServer::port);
    let f = fetcher("");
    let cases = [
        ("http://10.1.2.3/".to_owned(), "10.1.2.3"),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "169.254.169.254",
        ),
        (format!("http://[::1]:{p6}/file"), "::1"),
        (
            format!("http://[::ffff:127.0.0.1]:{p6}/file"),
            "::ffff:127.0.0.1",
        ),
        (format!("http://[::127.0.0.1]:{p6}/file"), "::127.0.0.1"),
        (
            "http://[64:ff9b::a9fe:a9fe]/".to_owned(),
            "64:ff9b::a9fe:a9fe",
        ),
        ("http://[fd00::2]/".to_owned(), "fd00::2"),
        ("http://[fe80::1]/".to_owned(), "fe80::1"),
        (format!("http://0.0.0.0:{p4}/file"), "0.0.0.0"),
        // Other spellings of 127.0.0.1 that URL parsing normalises.
        (format!("http://2130706433:{p4}/file"), "127.0.0.1"),
        (format!("http://0x7f.1:{p4}/file"), "127.0.0.1"),
        (format!("http://127.1:{p4}/file"), "127.0.0.1"),
        ("https://192.168.1.1/".to_owned(), "192.168.1.1"),
        ("http://172.16.0.1:8080/".to_owned(), "172.16.0.1"),
        ("http://100.64.0.1/".to_owned(), "100.64.0.1"),
        ("http://224.0.0.1/".to_owned(), "224.0.0.1"),
        ("http://255.255.255.255/".to_owned(), "255.255.255.255"),
    ];
    for (url, addr) in cases {
        let err = f.check_url(&url).expect_err(&url);
        assert_forbidden(&err, addr);
        let started = Instant::now();
        let err = f.download(&url, &dest().path).await.expect_err(&url);
        assert_forbidden(&err, addr);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url} took long"
        );
        let err = f.post_json(&url, b"{}", &[]).await.expect_err(&url);
        assert_forbidden(&err, addr);
    }
    assert_eq!(v4.connections(), 0);
    assert_eq!(v6.map_or(0, |s| s.connections()), 0);
}

#[tokio::test]
async fn allow_listed_address_downloads() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("127.0.0.1");
    let d = dest();
    let got = f
        .download(&srv.url("127.0.0.1", "/file"), &d.path)
        .await
        .expect("allowed download");
    let body = file_body();
    assert_eq!(got.bytes, body.len() as u64);
    assert_eq!(got.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(got.redirects, 0);
    assert_eq!(std::fs::read(&d.path).expect("read"), body);
    assert_eq!(srv.targets(), ["/file"]);
}

#[tokio::test]
async fn allow_listed_host_name_downloads() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("LocalHost");
    let d = dest();
    let got = f
        .download(&srv.url("localhost", "/file"), &d.path)
        .await
        .expect("allowed by name");
    assert_eq!(std::fs::read(&d.path).expect("read"), file_body());
    assert_eq!(got.bytes, file_body().len() as u64);
    // The name is allowed, not its addresses.
    let err = f
        .download(&srv.url("127.0.0.1", "/file"), &d.path)
        .await
        .expect_err("the address itself is not allowed");
    assert_forbidden(&err, "127.0.0.1");
    assert_eq!(srv.targets(), ["/file"]);
}

/// The first hop is allowed (127.0.0.1 is allow-listed) and redirects to a
/// server on 127.0.0.2, which is up and reachable but not allow-listed: the
/// redirect target must be checked and refused before any connection. The
/// same chain with 127.0.0.0/8 allowed succeeds, so the refusal comes from the
/// per-hop check and not from the target being unreachable.
#[tokio::test]
async fn redirect_to_blocked_literal_refused() {
    let Some(other) = second_loopback().await else {
        return;
    };
    let first = server("127.0.0.1").await;
    let url = first.url(
        "127.0.0.1",
        &format!("/redirect?to={}", other.url("127.0.0.2", "/file")),
    );

    let err = fetcher("127.0.0.1")
        .download(&url, &dest().path)
        .await
        .expect_err("second hop refused");
    assert_forbidden(&err, "127.0.0.2");
    assert_eq!(first.requests().len(), 1);
    assert_eq!(other.connections(), 0, "the refused hop was contacted");

    let d = dest();
    let got = fetcher("127.0.0.0/8")
        .download(&url, &d.path)
        .await
        .expect("both hops allowed");
    assert_eq!(got.redirects, 1);
    assert_eq!(std::fs::read(&d.path).expect("read"), file_body());
    assert_eq!(other.targets(), ["/file"]);
}

/// The first hop (127.0.0.2, allow-listed by address) redirects to
/// `localhost`, a name: it passes the literal check and must be refused by
/// the resolver once it resolves to loopback, before connecting.
#[tokio::test]
async fn redirect_to_name_refused_after_resolution() {
    let Some(first) = second_loopback().await else {
        return;
    };
    let target = server("127.0.0.1").await;
    let url = first.url(
        "127.0.0.2",
        &format!("/redirect?to={}", target.url("localhost", "/file")),
    );
    let err = fetcher("127.0.0.2")
        .download(&url, &dest().path)
        .await
        .expect_err("second hop refused");
    assert_eq!(err.kind(), FetchErrorKind::Forbidden, "{err:?}");
    assert!(matches!(&err, FetchError::Forbidden { host, .. } if host == "localhost"));
    assert_eq!(first.requests().len(), 1);
    assert_eq!(target.connections(), 0);

    fetcher("127.0.0.2,localhost")
        .download(&url, &dest().path)
        .await
        .expect("allowed by name");
    assert_eq!(target.targets(), ["/file"]);
}

/// Allowed by host name only: a redirect to the same server by its literal
/// address is another host and is refused.
#[tokio::test]
async fn redirect_from_allowed_name_to_literal_refused() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("localhost");
    for to in [
        srv.url("127.0.0.1", "/file"),
        format!("http://[::1]:{}/file", srv.port()),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let url = srv.url("localhost", &format!("/redirect?to={to}"));
        let err = f.download(&url, &dest().path).await.expect_err(&to);
        assert_eq!(err.kind(), FetchErrorKind::Forbidden, "{to}: {err:?}");
    }
    // Only the three redirecting requests arrived; never /file.
    assert_eq!(srv.requests().len(), 3);
    assert!(srv.targets().iter().all(|t| t.starts_with("/redirect")));
}

#[tokio::test]
async fn redirect_limit() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("127.0.0.1");
    assert_eq!(f.policy().max_redirects, 5);
    let d = dest();
    let got = f
        .download(&srv.url("127.0.0.1", "/hop/5"), &d.path)
        .await
        .expect("5 redirects are allowed");
    assert_eq!(got.redirects, 5);
    assert_eq!(std::fs::read(&d.path).expect("read"), file_body());

    let before = srv.requests().len();
    let err = f
        .download(&srv.url("127.0.0.1", "/hop/6"), &d.path)
        .await
        .expect_err("6 redirects are too many");
    assert_eq!(err, FetchError::TooManyRedirects { max: 5 });
    assert_eq!(err.kind(), FetchErrorKind::Redirects);
    let targets = srv.targets();
    assert_eq!(
        targets[before..],
        ["/hop/6", "/hop/5", "/hop/4", "/hop/3", "/hop/2", "/hop/1"]
    );

    let none = Fetcher::new(FetchPolicy {
        max_redirects: 0,
        ..policy("127.0.0.1")
    })
    .expect("valid");
    let err = none
        .download(&srv.url("127.0.0.1", "/hop/1"), &d.path)
        .await
        .expect_err("no redirects allowed");
    assert_eq!(err, FetchError::TooManyRedirects { max: 0 });
}

#[tokio::test]
async fn redirect_to_other_scheme_refused() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("127.0.0.1");
    for to in [
        "file:///etc/passwd",
        "ftp://example.com/a.wav",
        "gopher://127.0.0.1:70/",
    ] {
        let url = srv.url("127.0.0.1", &format!("/redirect?to={to}"));
        let err = f.download(&url, &dest().path).await.expect_err(to);
        assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{to}: {err}");
    }
}

#[tokio::test]
async fn too_large_by_content_length() {
    let srv = server("127.0.0.1").await;
    let f = Fetcher::new(FetchPolicy {
        max_bytes: 1000,
        ..policy("127.0.0.1")
    })
    .expect("valid");
    let d = dest();
    let err = f
        .download(&srv.url("127.0.0.1", "/file"), &d.path)
        .await
        .expect_err("100 KiB over 1000 bytes");
    assert_eq!(err, FetchError::TooLarge { limit: 1000 });
    assert_eq!(err.kind(), FetchErrorKind::TooLarge);
    assert!(!d.path.exists());

    // The length alone decides: this server sends 3 bytes and then stalls
    // for a minute, so only an early refusal returns quickly.
    let started = Instant::now();
    let err = f
        .download(&srv.url("127.0.0.1", "/lying-length"), &d.path)
        .await
        .expect_err("1 GB announced");
    assert_eq!(err, FetchError::TooLarge { limit: 1000 });
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!d.path.exists());
}

#[tokio::test]
async fn too_large_while_streaming_chunked() {
    let srv = server("127.0.0.1").await;
    let f = Fetcher::new(FetchPolicy {
        max_bytes: 5 * 1024,
        ..policy("127.0.0.1")
    })
    .expect("valid");
    let d = dest();
    let got = f
        .download(&srv.url("127.0.0.1", "/chunked/5"), &d.path)
        .await
        .expect("exactly the limit");
    assert_eq!(got.bytes, 5 * 1024);
    assert_eq!(std::fs::read(&d.path).expect("read").len(), 5 * 1024);

    let err = f
        .download(&srv.url("127.0.0.1", "/chunked/6"), &d.path)
        .await
        .expect_err("one chunk over");
    assert_eq!(err, FetchError::TooLarge { limit: 5 * 1024 });
    assert!(!d.path.exists(), "the partial file is removed");

    let err = f
        .download(&srv.url("127.0.0.1", "/chunked/100000"), &d.path)
        .await
        .expect_err("100 MB chunked");
    assert_eq!(err.kind(), FetchErrorKind::TooLarge);
}

#[tokio::test]
async fn total_timeout() {
    let srv = server("127.0.0.1").await;
    let f = Fetcher::new(FetchPolicy {
        total_timeout: Duration::from_millis(500),
        ..policy("127.0.0.1")
    })
    .expect("valid");
    for path in ["/stall", "/stall-body"] {
        let d = dest();
        let started = Instant::now();
        let err = f
            .download(&srv.url("127.0.0.1", path), &d.path)
            .await
            .expect_err(path);
        assert_eq!(err.kind(), FetchErrorKind::Timeout, "{path}: {err:?}");
        assert!(err.to_string().contains("500 ms"), "{err}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5));
        assert!(!d.path.exists(), "{path}: the partial file is removed");
    }
}

#[tokio::test]
async fn stall_timeout() {
    let srv = server("127.0.0.1").await;
    let f = Fetcher::new(FetchPolicy {
        stall_timeout: Duration::from_millis(400),
        ..policy("127.0.0.1")
    })
    .expect("valid");
    // no headers at all, and headers then silence: both stall
    for path in ["/stall", "/stall-body"] {
        let d = dest();
        let started = Instant::now();
        let err = f
            .download(&srv.url("127.0.0.1", path), &d.path)
            .await
            .expect_err(path);
        assert_eq!(
            err,
            FetchError::Stalled {
                after: Duration::from_millis(400)
            },
            "{path}"
        );
        assert_eq!(err.kind(), FetchErrorKind::Timeout);
        assert_eq!(err.to_string(), "the download stalled: no data for 400 ms");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{path}: {took:?}"
        );
        assert!(!d.path.exists(), "{path}: the partial file is removed");
    }
}

#[tokio::test]
async fn a_trickle_misses_its_deadline() {
    let srv = server("127.0.0.1").await;
    // 10 bytes a second, never stalling, against 1000 bytes/s after 500 ms
    let f = Fetcher::new(FetchPolicy {
        total_timeout: Duration::from_millis(500),
        min_rate: 1000,
        stall_timeout: Duration::from_secs(5),
        ..policy("127.0.0.1")
    })
    .expect("valid");
    let d = dest();
    let started = Instant::now();
    let err = f
        .download(&srv.url("127.0.0.1", "/drip"), &d.path)
        .await
        .expect_err("drip");
    let took = started.elapsed();
    match &err {
        FetchError::TooSlow {
            bytes,
            after,
            min_rate,
        } => {
            assert!((1..=10).contains(bytes), "{err}");
            assert_eq!(*min_rate, 1000);
            assert!(*after >= Duration::from_millis(500) && *after < Duration::from_millis(520));
        }
        other => panic!("expected TooSlow, got {other:?}"),
    }
    assert_eq!(err.kind(), FetchErrorKind::Timeout);
    assert!(
        err.to_string()
            .contains("under the minimum of 1000 bytes/s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!d.path.exists(), "the partial file is removed");
}

#[tokio::test]
async fn a_steady_download_outlives_the_base_timeout() {
    let srv = server("127.0.0.1").await;
    // 20 KiB over about a second (20 KiB/s) against a 300 ms base and
    // 10 kB/s: the deadline grows with the body, so it finishes
    let f = Fetcher::new(FetchPolicy {
        total_timeout: Duration::from_millis(300),
        min_rate: 10_000,
        stall_timeout: Duration::from_secs(1),
        ..policy("127.0.0.1")
    })
    .expect("valid");
    let d = dest();
    let started = Instant::now();
    let got = f
        .download(&srv.url("127.0.0.1", "/paced/20/50"), &d.path)
        .await
        .expect("a steady download finishes");
    assert_eq!(got.bytes, 20 * 1024);
    assert!(started.elapsed() > Duration::from_millis(900));
    assert_eq!(std::fs::metadata(&d.path).expect("file").len(), 20 * 1024);
    // the same body at under the minimum rate does not
    let err = Fetcher::new(FetchPolicy {
        min_rate: 40_000,
        ..f.policy().clone()
    })
    .expect("valid")
    .download(&srv.url("127.0.0.1", "/paced/20/50"), &dest().path)
    .await
    .expect_err("too slow");
    assert!(matches!(err, FetchError::TooSlow { .. }), "{err:?}");
}

#[tokio::test]
async fn http_error_status() {
    let srv = server("127.0.0.1").await;
    let err = fetcher("127.0.0.1")
        .download(&srv.url("127.0.0.1", "/status/404"), &dest().path)
        .await
        .expect_err("404");
    assert_eq!(err, FetchError::HttpStatus { status: 404 });
    assert_eq!(err.kind(), FetchErrorKind::HttpStatus);
}

#[tokio::test]
async fn bad_urls_refused() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("127.0.0.1,localhost");
    let long = format!("http://example.com/{}", "a".repeat(2048));
    let cases = [
        "file:///etc/passwd".to_owned(),
        "ftp://example.com/a.wav".to_owned(),
        "gopher://127.0.0.1:70/_GET".to_owned(),
        "ws://example.com/".to_owned(),
        "data:audio/wav;base64,AAAA".to_owned(),
        "not a url".to_owned(),
        "/relative/path".to_owned(),
        "http://".to_owned(),
        srv.url("user:secret@127.0.0.1", "/file"),
        srv.url("user@localhost", "/file"),
        "http://:pw@example.com/".to_owned(),
        "http://example.com:0/".to_owned(),
        long,
    ];
    for url in &cases {
        let err = f.check_url(url).expect_err(url);
        assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{url}: {err}");
        let err = f.download(url, &dest().path).await.expect_err(url);
        assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{url}: {err}");
        let err = f.post_json(url, b"{}", &[]).await.expect_err(url);
        assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{url}: {err}");
    }
    // Credentials never reach an error message.
    let err = f
        .check_url(&srv.url("user:secret@127.0.0.1", "/file"))
        .expect_err("userinfo");
    assert!(!err.to_string().contains("secret"), "{err}");
    assert_eq!(srv.connections(), 0);
    f.check_url("https://files.example.com/a.wav?sig=abc")
        .expect("a public name is fine");
    f.check_url(&"a".repeat(10)).expect_err("no scheme");
}

#[tokio::test]
async fn post_json_delivers() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("127.0.0.1");
    let body = br#"{"job_id":"1","result":"ok"}"#;
    let status = f
        .post_json(
            &srv.url("127.0.0.1", "/callback"),
            body,
            &[("X-Sis-Job".to_owned(), "1".to_owned())],
        )
        .await
        .expect("posted");
    assert_eq!(status, 200);
    let seen = srv.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/callback");
    assert_eq!(seen[0].body, body);
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].header("x-sis-job"), Some("1"));

    let status = f
        .post_json(
            &srv.url("127.0.0.1", "/callback"),
            b"{}",
            &[(
                "Content-Type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
        )
        .await
        .expect("posted");
    assert_eq!(status, 200);
    let seen = srv.requests();
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

#[tokio::test]
async fn post_json_does_not_follow_redirects() {
    let srv = server("127.0.0.1").await;
    let status = fetcher("127.0.0.1")
        .post_json(&srv.url("127.0.0.1", "/callback-redirect"), b"{}", &[])
        .await
        .expect("answered");
    assert_eq!(status, 302);
    assert_eq!(srv.targets(), ["/callback-redirect"]);
}

#[tokio::test]
async fn post_json_refused() {
    let srv = server("127.0.0.1").await;
    let f = fetcher("");
    for host in ["127.0.0.1", "localhost"] {
        let err = f
            .post_json(&srv.url(host, "/callback"), b"{}", &[])
            .await
            .expect_err(host);
        assert_eq!(err.kind(), FetchErrorKind::Forbidden, "{host}: {err:?}");
    }
    assert_eq!(srv.connections(), 0);

    let err = fetcher("127.0.0.1")
        .post_json(
            &srv.url("127.0.0.1", "/callback"),
            b"{}",
            &[("Bad Name".to_owned(), "v".to_owned())],
        )
        .await
        .expect_err("invalid header name");
    assert_eq!(err.kind(), FetchErrorKind::InvalidHeader);
    let err = fetcher("127.0.0.1")
        .post_json(
            &srv.url("127.0.0.1", "/callback"),
            b"{}",
            &[("X-Token".to_owned(), "a\r\nInjected: 1".to_owned())],
        )
        .await
        .expect_err("invalid header value");
    assert_eq!(err, FetchError::InvalidHeader("X-Token".to_owned()));
    assert_eq!(srv.connections(), 0);
}

#[tokio::test]
async fn post_json_timeout() {
    let srv = server("127.0.0.1").await;
    let f = Fetcher::new(FetchPolicy {
        callback_timeout: Duration::from_millis(300),
        ..policy("127.0.0.1")
    })
    .expect("valid");
    // /stall answers nothing to any method.
    let err = f
        .post_json(&srv.url("127.0.0.1", "/stall"), b"{}", &[])
        .await
        .expect_err("stalled");
    assert_eq!(err.kind(), FetchErrorKind::Timeout, "{err:?}");
}

#[tokio::test]
async fn unresolvable_name_is_a_network_error() {
    let err = fetcher("")
        .download("http://no-such-host.invalid/a.wav", &dest().path)
        .await
        .expect_err("unresolvable");
    assert_eq!(err.kind(), FetchErrorKind::Network, "{err:?}");
}

#[test]
fn invalid_policies_rejected() {
    for bad in [
        FetchPolicy {
            max_bytes: 0,
            ..FetchPolicy::default()
        },
        FetchPolicy {
            total_timeout: Duration::ZERO,
            ..FetchPolicy::default()
        },
        FetchPolicy {
            connect_timeout: Duration::ZERO,
            ..FetchPolicy::default()
        },
        FetchPolicy {
            callback_timeout: Duration::ZERO,
            ..FetchPolicy::default()
        },
        FetchPolicy {
            stall_timeout: Duration::ZERO,
            ..FetchPolicy::default()
        },
        FetchPolicy {
            max_redirects: 21,
            ..FetchPolicy::default()
        },
    ] {
        let err = Fetcher::new(bad).expect_err("invalid");
        assert_eq!(err.kind(), FetchErrorKind::Config);
    }
    let f = Fetcher::new(FetchPolicy::default()).expect("the default is valid");
    assert_eq!(f.policy().max_bytes, 300 * 1024 * 1024);
    assert!(f.policy().allow.is_empty());
}

/// `file:` URLs with a directory of job files: copied under the size
/// limit; refused without the directory, outside it, through a link leading
/// out, for a FIFO (without waiting for a writer) and from a redirect.
#[tokio::test]
async fn local_files_only_under_the_directory() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("jobs");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("a.wav"), file_body()).expect("write");
    std::fs::write(root.path().join("secret.wav"), b"secret").expect("write");
    std::os::unix::fs::symlink(root.path().join("secret.wav"), dir.join("out.wav"))
        .expect("symlink");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo.wav"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let file_url = |p: &std::path::Path| format!("file://{}", p.display());
    let good = file_url(&dir.join("a.wav"));

    // not configured: refused like any scheme but http(s)
    let err = fetcher("").check_data_url(&good).expect_err("no directory");
    assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{err}");
    let err = fetcher("")
        .download(&good, &dest().path)
        .await
        .expect_err("no directory");
    assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{err}");

    let srv = server("127.0.0.1").await;
    let f = Fetcher::new(FetchPolicy {
        local_dir: Some(dir.clone()),
        ..policy("127.0.0.1")
    })
    .expect("valid");
    f.check_data_url(&good).expect("a file under the directory");
    // callbacks are never files
    assert_eq!(
        f.check_url(&good).expect_err("callback").kind(),
        FetchErrorKind::BadUrl
    );
    let d = dest();
    let got = f.download(&good, &d.path).await.expect("copied");
    assert_eq!(got.bytes, file_body().len() as u64);
    assert_eq!(std::fs::read(&d.path).expect("read"), file_body());

    for (url, kind) in [
        (
            file_url(&root.path().join("secret.wav")),
            FetchErrorKind::LocalFile,
        ),
        (
            format!("file://{}/../secret.wav", dir.display()),
            FetchErrorKind::LocalFile,
        ),
        (file_url(&dir.join("out.wav")), FetchErrorKind::LocalFile),
        (file_url(&dir.join("fifo.wav")), FetchErrorKind::LocalFile),
        (file_url(&dir), FetchErrorKind::LocalFile),
        (
            format!("file://example.com{}", dir.join("a.wav").display()),
            FetchErrorKind::BadUrl,
        ),
    ] {
        let err = f.check_data_url(&url).expect_err(&url);
        assert_eq!(err.kind(), kind, "{url}: {err}");
        let d = dest();
        let err = tokio::time::timeout(Duration::from_secs(5), f.download(&url, &d.path))
            .await
            .expect("refused at once")
            .expect_err(&url);
        assert_eq!(err.kind(), kind, "{url}: {err}");
        assert!(!d.path.exists());
        assert!(!err.to_string().contains("secret\""), "{err}");
    }

    // the size limit of downloads
    let small = Fetcher::new(FetchPolicy {
        local_dir: Some(dir.clone()),
        max_bytes: 10,
        ..policy("127.0.0.1")
    })
    .expect("valid");
    let err = small.check_data_url(&good).expect_err("too large");
    assert_eq!(err, FetchError::TooLarge { limit: 10 });
    let d = dest();
    let err = small.download(&good, &d.path).await.expect_err("too large");
    assert_eq!(err, FetchError::TooLarge { limit: 10 });
    assert!(!d.path.exists());

    // an HTTP redirect never leads to a local file
    let url = srv.url("127.0.0.1", &format!("/redirect?to={good}"));
    let err = f.download(&url, &dest().path).await.expect_err("redirect");
    assert_eq!(err.kind(), FetchErrorKind::BadUrl, "{err}");

    // the directory must exist
    let err = Fetcher::new(FetchPolicy {
        local_dir: Some(dir.join("missing")),
        ..FetchPolicy::default()
    })
    .expect_err("no such directory");
    assert_eq!(err.kind(), FetchErrorKind::Config);
}
