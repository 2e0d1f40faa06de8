//! Human-readable sizes and times, as the docker CLI prints them.

/// Decimal units with 3 significant digits: "4.26MB", "812B", "1.2GB"
/// (go-units' HumanSizeWithPrecision(size, 3)).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    // %.3g: three significant digits, trailing zeros dropped.
    let digits_before = s.find('.').unwrap_or(s.len());
    let keep = 3usize.saturating_sub(digits_before);
    let mut t = format!("{v:.keep$}");
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{t}{}", UNITS[i])
}

/// "3 seconds ago", "2 hours ago", "5 weeks ago" (go-units HumanDuration).
pub fn since(secs: i64) -> String {
    format!("{} ago", duration(secs))
}

/// "3 seconds", "About an hour", "5 weeks" (go-units HumanDuration).
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    let d = |n: i64, unit: &str| -> String {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if s < 1 {
        "Less than a second".to_string()
    } else if s < 60 {
        d(s, "second")
    } else if s < 3600 {
        if s / 60 == 1 {
            "About a minute".to_string()
        } else {
            d(s / 60, "minute")
        }
    } else if s < 48 * 3600 {
        if s / 3600 == 1 {
            "About an hour".to_string()
        } else {
            d(s / 3600, "hour")
        }
    } else if s < 7 * 86400 * 2 {
        d(s / 86400, "day")
    } else if s < 30 * 86400 * 3 {
        d(s / (7 * 86400), "week")
    } else if s < 365 * 86400 * 2 {
        d(s / (30 * 86400), "month")
    } else {
        d(s / (365 * 86400), "year")
    }
}

/// Seconds since the epoch of an RFC 3339 time ("2024-01-02T03:04:05.123Z",
/// "...+01:00"); None if it does not parse.
pub fn parse_rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r[1..3].parse::<i64>().ok()? * 3600 + r[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + h * 3600 + mi * 60 + s - offset)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(812), "812B");
        assert_eq!(size(1_234), "1.23kB");
        assert_eq!(size(4_263_000), "4.26MB");
        assert_eq!(size(12_300_000), "12.3MB");
        assert_eq!(size(123_000_000), "123MB");
        assert_eq!(size(1_000_000_000), "1GB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(since(5), "5 seconds ago");
        assert_eq!(since(70), "About a minute ago");
        assert_eq!(since(7200), "2 hours ago");
        assert_eq!(since(3 * 86400), "3 days ago");
        assert_eq!(since(30 * 86400), "4 weeks ago");
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-02-29T01:01:01.5+01:00"),
            Some(951_782_400 + 3661 - 3600)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}

#[cfg(test)]
mod now_tests {
    #[test]
    fn now_round_trips_through_the_parser() {
        let t = barge_engine::time::now_rfc3339();
        let parsed = super::parse_rfc3339(&t).unwrap();
        assert!((parsed - super::now()).abs() <= 1, "{t}");
    }
}
