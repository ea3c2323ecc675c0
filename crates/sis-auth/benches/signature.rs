//! Cost of verifying one `SDK-HMAC-SHA256` signature: the SDK's short-audio
//! request (five signed headers, `user-agent` included), canonical request,
//! string to sign, HMAC and constant-time compare. The body hash is measured
//! separately (it scales with the body).
#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use sis_auth::sign::{self, Authorization, RequestParts};

const SK: &str = "FAKESECRETKEY0123456789abcdefghijklmnopqr";
const PATH: &str = "/v1/0123456789abcdef0123456789abcdef/asr/short-audio";

/// The SDK's short-audio request with these headers and body hash.
fn parts<'a>(headers: &'a HeaderMap, body_hash: &'a str) -> RequestParts<'a> {
    RequestParts {
        method: "POST",
        path: PATH,
        query: None,
        headers,
        body_hash,
    }
}

fn request() -> (HeaderMap, String, String) {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("user-agent", "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 impl/CPython; app/4b21d983-46a1-4009-abcd-ec7e3448c25f"),
        ("accept-encoding", "gzip, deflate"),
        ("accept", "*/*"),
        ("connection", "keep-alive"),
        ("content-type", "application/json;charset=utf-8"),
        ("x-project-id", "0123456789abcdef0123456789abcdef"),
        ("x-sdk-date", "20240101T000000Z"),
        ("host", "127.0.0.1:18765"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    let body_hash = sign::body_sha256(br#"{"config": {"audio_format": "pcm16k16bit"}}"#);
    let signed = "content-type;host;user-agent;x-project-id;x-sdk-date";
    let req = parts(&h, &body_hash);
    let names: Vec<&str> = signed.split(';').collect();
    let sts = sign::string_to_sign(
        "20240101T000000Z",
        &sign::canonical_request(&req, &names).unwrap(),
    );
    let auth = format!(
        "SDK-HMAC-SHA256 Access=FAKEACCESSKEY0000001, SignedHeaders={signed}, Signature={}",
        sign::signature(SK.as_bytes(), &sts)
    );
    (h, auth, body_hash)
}

fn bench(c: &mut Criterion) {
    let (h, auth_v, body_hash) = request();
    let now = sign::parse_sdk_date("20240101T000000Z").unwrap();
    c.bench_function(
        "verify SDK-HMAC-SHA256 (short-audio, 5 signed headers)",
        |b| {
            b.iter(|| {
                let auth = Authorization::parse(black_box(&auth_v)).unwrap();
                let req = parts(&h, &body_hash);
                sign::verify(SK.as_bytes(), &auth, &req, now).unwrap();
            })
        },
    );
    let body = vec![b'A'; 213_000];
    c.bench_function(
        "sha256 of a 213 KB body (5 s of pcm16k16bit as JSON)",
        |b| b.iter(|| sign::body_sha256(black_box(&body))),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
