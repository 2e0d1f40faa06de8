//! Timestamps as Docker prints them (RFC 3339 with nanoseconds, UTC).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds and nanoseconds since the epoch.
pub fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// Seconds and nanoseconds since the epoch as RFC 3339 (UTC, nine
/// fraction digits).
pub use barge_runtime::utils::rfc3339;

/// Now as RFC 3339 (`2026-11-28T15:16:30.123456789Z`).
pub fn now_rfc3339() -> String {
    let (s, n) = now();
    barge_runtime::utils::rfc3339(s, n)
}

/// Parses what [`now_rfc3339`] writes (and Docker's `0001-01-01T00:00:00Z`);
/// `None` for anything else or the zero time.
pub fn parse_rfc3339(t: &str) -> Option<(i64, u32)> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y <= 1 {
        return None;
    }
    let rest = t.get(19..)?;
    let nanos = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
            let mut padded = digits.clone();
            padded.truncate(9);
            while padded.len() < 9 {
                padded.push('0');
            }
            padded.parse::<u32>().ok()?
        }
        None => 0,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + s, nanos))
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since `t` (RFC 3339), or `None`.
pub fn seconds_since(t: &str) -> Option<i64> {
    let (s, _) = parse_rfc3339(t)?;
    Some(now().0 - s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = barge_runtime::utils::rfc3339(1_764_342_990, 123_456_789);
        assert_eq!(parse_rfc3339(&s), Some((1_764_342_990, 123_456_789)));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339("2026-11-28T15:16:30Z"),
            Some((1_795_878_990, 0))
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
