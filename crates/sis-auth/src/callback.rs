//! Signatures on result callbacks, so a receiver can check that a POST came
//! from this service and was not altered or replayed much later.
//!
//! Header: `X-Sis-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(key, "<t>." + body)>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "X-Sis-Signature";

/// The header value for `body` sent at `timestamp_ms`.
pub fn sign(key: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp_ms},v1={}",
        hex::encode(mac(key, timestamp_ms, body))
    )
}

fn mac(key: &[u8], timestamp_ms: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    m.update(timestamp_ms.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Checks a header value (what a receiver does); constant-time comparison.
pub fn verify(key: &[u8], header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.verify_slice(&v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let h = sign(b"k", 1_700_000_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000000,v1="));
        assert!(verify(b"k", &h, b"{\"a\":1}"));
        assert!(!verify(b"k", &h, b"{\"a\":2}"));
        assert!(!verify(b"other", &h, b"{\"a\":1}"));
        assert!(!verify(b"k", &h.replace("t=17", "t=18"), b"{\"a\":1}"));
        assert!(!verify(b"k", "garbage", b""));
    }
}
