//! UTC timestamps as the SIS and IAM APIs write them.

/// Civil date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 in UTC with `frac_digits` (0, 3 or 6) fraction digits, e.g.
/// `2026-11-21T08:30:00.123Z`.
pub fn rfc3339_utc(unix_ms: i64, frac_digits: u8) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    let frac = match frac_digits {
        0 => String::new(),
        3 => format!(".{ms:03}"),
        _ => format!(".{:06}", ms * 1000),
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z")
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc;

    #[test]
    fn formats() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(1_704_067_200_123, 3),
            "2024-01-01T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339_utc(951_782_400_000 + 86_399_000, 6),
            "2000-02-29T23:59:59.000000Z"
        );
        assert_eq!(
            rfc3339_utc(1_795_000_000_000, 3),
            "2026-11-18T11:06:40.000Z"
        );
    }
}
