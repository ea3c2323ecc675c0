//! Proxy environment variables are ignored: a proxy would connect on our
//! behalf to addresses this crate never checked.
//!
//! A file of its own because it sets process environment variables: it runs
//! in its own process, with no other test reading them.

mod server;

use std::time::Duration;

use server::{file_body, TestServer};
use sis_fetch::{AllowList, FetchErrorKind, FetchPolicy, Fetcher};

#[tokio::test]
async fn proxy_environment_is_ignored() {
    let origin = TestServer::start("127.0.0.1").await.expect("bind");
    let proxy = TestServer::start("127.0.0.1").await.expect("bind");
    let proxy_url = proxy.url("127.0.0.1", "");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(var, &proxy_url);
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");

    let f = Fetcher::new(FetchPolicy {
        allow: AllowList::parse("127.0.0.1").expect("valid"),
        total_timeout: Duration::from_secs(20),
        ..FetchPolicy::default()
    })
    .expect("valid");
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join("a.wav");
    f.download(&origin.url("127.0.0.1", "/file"), &dest)
        .await
        .expect("direct download");
    assert_eq!(std::fs::read(&dest).expect("read"), file_body());

    // A refused URL stays refused: the proxy (allowed itself) is not asked.
    let strict = Fetcher::new(FetchPolicy::default()).expect("valid");
    let err = strict
        .download(&origin.url("localhost", "/file"), &dest)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), FetchErrorKind::Forbidden);
    let err = strict
        .download("http://169.254.169.254/latest/meta-data", &dest)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), FetchErrorKind::Forbidden);

    assert_eq!(proxy.connections(), 0, "the proxy was used");
    assert_eq!(origin.targets(), ["/file"]);
}
