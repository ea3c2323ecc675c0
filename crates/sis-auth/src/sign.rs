//! `SDK-HMAC-SHA256` request signatures, as the SIS gateway verifies them
//! (spec §2.2): canonical request, string to sign, HMAC with the secret key.
//!
//! The verifier never assumes which headers are signed: the list comes from
//! the `Authorization` header, and every header named there must be present.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// `X-Sdk-Date` may differ from the server's clock by at most this much.
pub const MAX_SKEW_S: i64 = 15 * 60;
/// SHA-256 of the empty body.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// `X-Sdk-Content-Sha256` value that leaves the body out of the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the Authorization header is malformed")]
    Malformed,
    #[error("x-sdk-date not found")]
    MissingDate,
    #[error("x-sdk-date is malformed")]
    BadDate,
    #[error("signature expired")]
    Expired,
    #[error("signed header {0} not found")]
    MissingSignedHeader(String),
    #[error("verify aksk signature fail")]
    Mismatch,
}

/// The parts of `Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    pub fn parse(value: &'a str) -> Result<Authorization<'a>, SignError> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(SignError::Malformed)?;
        let (mut ak, mut signed, mut sig) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or(SignError::Malformed)?;
            let slot = match k {
                "Access" => &mut ak,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut sig,
                _ => return Err(SignError::Malformed),
            };
            if slot.replace(v).is_some() {
                return Err(SignError::Malformed);
            }
        }
        let (ak, signed, sig) = match (ak, signed, sig) {
            (Some(a), Some(h), Some(s)) if !a.is_empty() && !h.is_empty() => (a, h, s),
            _ => return Err(SignError::Malformed),
        };
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SignError::Malformed);
        }
        let signed_headers: Vec<&str> = signed.split(';').collect();
        // Names must be lower-case, non-empty, sorted and unique, as signers emit them.
        let well_formed = signed_headers.iter().all(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        }) && signed_headers.windows(2).all(|w| w[0] < w[1]);
        if !well_formed {
            return Err(SignError::Malformed);
        }
        Ok(Authorization {
            access_key: ak,
            signed_headers,
            signature: sig,
        })
    }
}

/// What of a request the signature covers.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// Lower-hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub body_hash: &'a str,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hi = (b[i + 1] as char).to_digit(16);
            let lo = (b[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn encode_into(out: &mut String, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in raw {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Path segments decoded then re-encoded, with a trailing `/`.
fn canonical_uri(out: &mut String, path: &str) {
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_into(out, &percent_decode(seg));
    }
    if !out.ends_with('/') {
        out.push('/');
    }
}

/// Parameters sorted by key then value, each `enc(key)=enc(value)`.
fn canonical_query(out: &mut String, query: Option<&str>) {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return;
    };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                let mut e = String::new();
                encode_into(&mut e, &percent_decode(s));
                e
            };
            (dec(k), dec(v))
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// The canonical request (spec §2.2 step 4).
pub fn canonical_request(req: &RequestParts<'_>, signed: &[&str]) -> Result<String, SignError> {
    let mut out = String::with_capacity(512);
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    canonical_uri(&mut out, req.path);
    out.push('\n');
    canonical_query(&mut out, req.query);
    out.push('\n');
    for name in signed {
        let mut values = req.headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            return Err(SignError::MissingSignedHeader((*name).to_string()));
        }
        out.push_str(name);
        out.push(':');
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .to_str()
                .map_err(|_| SignError::MissingSignedHeader((*name).to_string()))?;
            out.push_str(v.trim());
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(req.body_hash);
    Ok(out)
}

pub fn string_to_sign(sdk_date: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// Lower-hex HMAC-SHA256 of the string to sign.
pub fn signature(secret_key: &[u8], string_to_sign: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret_key).expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Authorization` value that signs `req` with `access_key` and
/// `secret_key` over the headers `signed` (lower-case names, each present in
/// `req.headers`, `x-sdk-date` among them): what the SDKs send, made by the
/// same canonical request [`verify`] checks.
pub fn authorization(
    access_key: &str,
    secret_key: &str,
    req: &RequestParts<'_>,
    signed: &[&str],
) -> Result<String, SignError> {
    let date = req
        .headers
        .get("x-sdk-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignError::MissingDate)?;
    let mut signed: Vec<&str> = signed.to_vec();
    signed.sort_unstable();
    let canonical = canonical_request(req, &signed)?;
    let sig = signature(secret_key.as_bytes(), &string_to_sign(date, &canonical));
    Ok(format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={sig}",
        signed.join(";")
    ))
}

/// `YYYYMMDDTHHMMSSZ` of Unix seconds `t` (the `X-Sdk-Date` form).
pub fn sdk_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Seconds since the Unix epoch of `YYYYMMDDTHHMMSSZ`.
pub fn parse_sdk_date(s: &str) -> Result<i64, SignError> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(SignError::BadDate);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, SignError> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(SignError::BadDate);
        }
        part.parse().map_err(|_| SignError::BadDate)
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(SignError::BadDate);
    }
    Ok(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Checks the date window and the signature. `now` is Unix seconds.
pub fn verify(
    secret_key: &[u8],
    auth: &Authorization<'_>,
    req: &RequestParts<'_>,
    now: i64,
) -> Result<(), SignError> {
    let date = req
        .headers
        .get("x-sdk-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignError::MissingDate)?;
    let t = parse_sdk_date(date)?;
    if (now - t).abs() > MAX_SKEW_S {
        return Err(SignError::Expired);
    }
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let sts = string_to_sign(date, &canonical);
    let expected = hex::decode(auth.signature).map_err(|_| SignError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret_key).expect("HMAC accepts any key length");
    mac.update(sts.as_bytes());
    // constant-time comparison
    mac.verify_slice(&expected).map_err(|_| SignError::Mismatch)
}

/// Lower-hex SHA-256 of a body.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SK: &str = "FAKESECRETKEY0123456789abcdefghijklmnopqr";
    const PID: &str = "0123456789abcdef0123456789abcdef";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn now_of(date: &str) -> i64 {
        parse_sdk_date(date).unwrap()
    }

    // sdk-captures.md §6, "POST short-audio"
    #[test]
    fn vector_post_short_audio() {
        let body = br#"{"config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_general"}, "data": "AAAA"}"#;
        let auth_v = "SDK-HMAC-SHA256 Access=FAKEACCESSKEY0000001, SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature=27913ea8cca14bc4f9979a18d5bbce674944178bb21eb49760719584a80f0ac1";
        let h = headers(&[
            ("content-type", "application/json;charset=utf-8"),
            ("x-project-id", PID),
            ("x-sdk-date", "20240101T000000Z"),
            ("host", "127.0.0.1:8080"),
            ("authorization", auth_v),
        ]);
        let hash = body_sha256(body);
        assert_eq!(
            hash,
            "447c8c60776806198d164a7f403ae07d29ee9e45da737ef7e32153281796edfe"
        );
        let path = format!("/v1/{PID}/asr/short-audio");
        let req = RequestParts {
            method: "POST",
            path: &path,
            query: None,
            headers: &h,
            body_hash: &hash,
        };
        let auth = Authorization::parse(auth_v).unwrap();
        assert_eq!(auth.access_key, "FAKEACCESSKEY0000001");
        let canonical = canonical_request(&req, &auth.signed_headers).unwrap();
        assert_eq!(
            canonical,
            format!(
                "POST\n/v1/{PID}/asr/short-audio/\n\ncontent-type:application/json;charset=utf-8\nhost:127.0.0.1:8080\nx-project-id:{PID}\nx-sdk-date:20240101T000000Z\n\ncontent-type;host;x-project-id;x-sdk-date\n{hash}"
            )
        );
        let sts = string_to_sign("20240101T000000Z", &canonical);
        assert_eq!(
            sts,
            "SDK-HMAC-SHA256\n20240101T000000Z\n0bd9dfadd410d70c54d2cd63c539334921bc6f20c1fb3ee66ba3a28748bf8258"
        );
        assert_eq!(signature(SK.as_bytes(), &sts), auth.signature);
        verify(SK.as_bytes(), &auth, &req, now_of("20240101T000000Z")).unwrap();
        // the same request with another secret, a tampered body or path fails
        assert_eq!(
            verify(b"other", &auth, &req, now_of("20240101T000000Z")),
            Err(SignError::Mismatch)
        );
        let other = body_sha256(b"{}");
        let tampered = RequestParts {
            body_hash: &other,
            ..req
        };
        assert_eq!(
            verify(SK.as_bytes(), &auth, &tampered, now_of("20240101T000000Z")),
            Err(SignError::Mismatch)
        );
    }

    // sdk-captures.md §6, "GET vocabularies?limit&offset"
    #[test]
    fn vector_get_with_query() {
        let auth_v = "SDK-HMAC-SHA256 Access=FAKEACCESSKEY0000001, SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature=2752778792fa3c526a776d2587fa26c5cb4b8406b578714a07e86e227d57d3a5";
        let h = headers(&[
            ("content-type", "application/json"),
            ("x-project-id", PID),
            ("x-sdk-date", "20240101T000000Z"),
            ("host", "127.0.0.1:8080"),
        ]);
        let path = format!("/v1/{PID}/asr/vocabularies");
        let auth = Authorization::parse(auth_v).unwrap();
        // query order in the URL does not matter
        for q in ["limit=10&offset=0", "offset=0&limit=10"] {
            let req = RequestParts {
                method: "GET",
                path: &path,
                query: Some(q),
                headers: &h,
                body_hash: EMPTY_BODY_SHA256,
            };
            let canonical = canonical_request(&req, &auth.signed_headers).unwrap();
            assert!(canonical.contains("/asr/vocabularies/\nlimit=10&offset=0\n"));
            assert_eq!(
                string_to_sign("20240101T000000Z", &canonical),
                "SDK-HMAC-SHA256\n20240101T000000Z\nb3854f1d544ebcf3c81c24ed9d2ccf4f5cae8bdc6a1a6a54b22708629b777117"
            );
            verify(SK.as_bytes(), &auth, &req, now_of("20240101T000000Z")).unwrap();
        }
        let req = RequestParts {
            method: "GET",
            path: &path,
            query: Some("limit=11&offset=0"),
            headers: &h,
            body_hash: EMPTY_BODY_SHA256,
        };
        assert_eq!(
            verify(SK.as_bytes(), &auth, &req, now_of("20240101T000000Z")),
            Err(SignError::Mismatch)
        );
    }

    // sdk-captures.md §6, "WS handshake GET"
    #[test]
    fn vector_ws_handshake() {
        let auth_v = "SDK-HMAC-SHA256 Access=FAKEACCESSKEY0000001, SignedHeaders=host;x-sdk-date, Signature=e3866e0cf50dde35882a75df0020ef1e6c59e700653d2e1887bee82f368de409";
        let h = headers(&[
            ("x-sdk-date", "20240101T000000Z"),
            ("host", "sis-ext.cn-north-4.myhuaweicloud.com"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "rGTapnzUk55qW3E+OVs3IQ=="),
        ]);
        let path = format!("/v1/{PID}/rasr/short-stream");
        let req = RequestParts {
            method: "GET",
            path: &path,
            query: None,
            headers: &h,
            body_hash: EMPTY_BODY_SHA256,
        };
        let auth = Authorization::parse(auth_v).unwrap();
        let canonical = canonical_request(&req, &auth.signed_headers).unwrap();
        assert_eq!(
            string_to_sign("20240101T000000Z", &canonical),
            "SDK-HMAC-SHA256\n20240101T000000Z\n8edbc2fe78132cf3f6d8f985a6574eba9cc8abf083eba639517991ed444720b5"
        );
        verify(SK.as_bytes(), &auth, &req, now_of("20240101T000000Z")).unwrap();
    }

    #[test]
    fn date_window() {
        let t = now_of("20240101T000000Z");
        assert_eq!(t, 1_704_067_200);
        let auth_v = format!(
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature={}",
            "0".repeat(64)
        );
        let auth = Authorization::parse(&auth_v).unwrap();
        let h = headers(&[("x-sdk-date", "20240101T000000Z"), ("host", "h")]);
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: None,
            headers: &h,
            body_hash: EMPTY_BODY_SHA256,
        };
        assert_eq!(
            verify(b"k", &auth, &req, t + 16 * 60),
            Err(SignError::Expired)
        );
        assert_eq!(
            verify(b"k", &auth, &req, t - 16 * 60),
            Err(SignError::Expired)
        );
        assert_eq!(
            verify(b"k", &auth, &req, t + 14 * 60),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            parse_sdk_date("2024-01-01T00:00:00Z"),
            Err(SignError::BadDate)
        );
        assert_eq!(parse_sdk_date("20241301T000000Z"), Err(SignError::BadDate));
        assert_eq!(parse_sdk_date("2024010１T000000Z"), Err(SignError::BadDate));
        assert_eq!(now_of("20000301T120000Z"), 951_912_000);
    }

    #[test]
    fn missing_signed_header_and_malformed() {
        let h = headers(&[("x-sdk-date", "20240101T000000Z")]);
        let req = RequestParts {
            method: "GET",
            path: "/a",
            query: None,
            headers: &h,
            body_hash: EMPTY_BODY_SHA256,
        };
        assert_eq!(
            canonical_request(&req, &["host", "x-sdk-date"]),
            Err(SignError::MissingSignedHeader("host".into()))
        );
        let sig = "a".repeat(64);
        for bad in [
            "".to_string(),
            "SDK-HMAC-SHA256".to_string(),
            format!("SDK-HMAC-SHA1 Access=A, SignedHeaders=host, Signature={sig}"),
            "SDK-HMAC-SHA256 Access=A, SignedHeaders=host".to_string(),
            format!("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature={sig}"),
            "SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=xyz".to_string(),
            format!("SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date;host, Signature={sig}"),
            format!("SDK-HMAC-SHA256 Access=A, SignedHeaders=Host, Signature={sig}"),
            format!("SDK-HMAC-SHA256 Access=A, Access=B, SignedHeaders=host, Signature={sig}"),
            format!("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature={sig}, Extra=1"),
        ] {
            assert_eq!(
                Authorization::parse(&bad),
                Err(SignError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn uri_and_query_encoding() {
        let mut s = String::new();
        canonical_uri(&mut s, "/v1/p/a%20b/c~d/");
        assert_eq!(s, "/v1/p/a%20b/c~d/");
        let mut s = String::new();
        canonical_uri(&mut s, "/v1/%7Ex/%zz");
        assert_eq!(s, "/v1/~x/%25zz/");
        let mut s = String::new();
        canonical_query(
            &mut s,
            Some("obs_object_key=dir%2Fa%20b.wav&add_punc=yes&b=2&b=1&flag"),
        );
        assert_eq!(
            s,
            "add_punc=yes&b=1&b=2&flag=&obs_object_key=dir%2Fa%20b.wav"
        );
    }

    #[test]
    fn a_signed_request_verifies_and_dates_round_trip() {
        for t in [0i64, 951_782_400, 1_764_374_400, 4_102_444_799] {
            assert_eq!(parse_sdk_date(&sdk_date(t)).unwrap(), t);
        }
        assert_eq!(sdk_date(1_764_374_400), "20251129T000000Z");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "x-sdk-date",
            HeaderValue::from_str(&sdk_date(1_764_374_400)).unwrap(),
        );
        let body_hash = body_sha256(b"{}");
        let req = RequestParts {
            method: "POST",
            path: "/v1/p/asr/short-audio",
            query: None,
            headers: &headers,
            body_hash: &body_hash,
        };
        let value = authorization("AK", SK, &req, &["x-sdk-date", "host", "content-type"]).unwrap();
        assert!(
            value.contains("SignedHeaders=content-type;host;x-sdk-date"),
            "{value}"
        );
        let auth = Authorization::parse(&value).unwrap();
        verify(SK.as_bytes(), &auth, &req, 1_764_374_400).unwrap();
        assert!(verify(b"other", &auth, &req, 1_764_374_400).is_err());
    }
}
