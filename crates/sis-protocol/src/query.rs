//! Query strings (`application/x-www-form-urlencoded`), as the SIS APIs
//! that take parameters in the query read them.

use crate::ApiError;

/// The decoded `key=value` pairs of `query`, in order (a key without `=`
/// has an empty value). A malformed escape or a value that is not UTF-8 is
/// an invalid request.
pub fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(k)?, decode_component(v)?))
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding of one query component.
fn decode_component(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .zip(bytes.get(i + 2).copied().and_then(hex));
                let (hi, lo) =
                    pair.ok_or_else(|| ApiError::invalid("the query string is malformed"))?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid("the query string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_in_order() {
        let got = pairs(Some("name=cn-north-4&a=%E4%BD%A0+b&flag&&x=")).unwrap();
        let want = [
            ("name", "cn-north-4"),
            ("a", "你 b"),
            ("flag", ""),
            ("x", ""),
        ];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
        assert!(pairs(None).unwrap().is_empty());
        assert!(pairs(Some("a=%zz")).is_err());
        assert!(pairs(Some("a=%ff")).is_err());
    }
}
