//! The values of `docker run`/`create` flags turned into typed values, with
//! Docker's own error messages.
//!
//! Owns: the syntax of each flag value and the checks Docker makes on it,
//! both in the CLI (docker/cli `opts/`, `cli/command/container/opts.go`,
//! go-units, go-connections `nat`) and in the daemon (moby `volume/mounts`,
//! `daemon/*`, `moby/sys/signal`). Must not: look at the host (a bind source
//! existing, a device node, the CPU count) or decide defaults; the callers
//! do that with the typed values.
//!
//! Errors are [`EngineError::InvalidArgument`] with the text Docker prints
//! after `docker: `. Where the CLI rejects a value while parsing its flag,
//! the text is pflag's `invalid argument "<value>" for "<flag>" flag: <why>`;
//! where the daemon rejects it, the text is the daemon's message, without
//! the `Error response from daemon: ` that the Docker CLI puts before it.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use crate::error::{EngineError, Result};
use crate::record::{DeviceMapping, HealthConfig, MountSpec, RestartPolicy, Ulimit};

// ---------------------------------------------------------------------------
// Go's formatting and parsing, as Docker's messages show them
// ---------------------------------------------------------------------------

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// pflag's message for a value its `Set` refused.
fn flag_error(flag: &str, value: &str, why: impl Display) -> EngineError {
    invalid(format!(
        "invalid argument {} for {} flag: {why}",
        go_quote(value),
        go_quote(flag)
    ))
}

/// Go's `strconv.Quote` (`%q`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32)
                } else {
                    write!(out, "\\U{:08x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `quote` of Go's `time` package: bytes outside printable ASCII as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) >= 0x80 || c < ' ' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its error text.
fn go_parse_int(s: &str) -> std::result::Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s));
    let range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(s)
        )
    };
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    let mut n: u64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            return Err(syntax());
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
            .ok_or_else(range)?;
    }
    let cutoff = 1u64 << 63;
    if neg {
        if n > cutoff {
            return Err(range());
        }
        Ok((n as i64).wrapping_neg())
    } else if n >= cutoff {
        Err(range())
    } else {
        Ok(n as i64)
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `path.Clean`: lexical, `/`-separated.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Abs` with the working directory given.
fn abs_path(cwd: &Path, p: &str) -> String {
    if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_path(&format!("{}/{p}", cwd.to_string_lossy()))
    }
}

/// An I/O error as Go prints its errno: `no such file or directory`.
fn go_errno(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

// ---------------------------------------------------------------------------
// Sizes, CPUs, durations
// ---------------------------------------------------------------------------

/// go-units `RAMInBytes`: `(?i)^(\d+(\.\d+)*) ?([kmgtp])?i?b?$`, binary units.
fn ram_in_bytes(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(0);
    if i == 0 {
        return Err(bad());
    }
    while i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    let number = &s[..i];
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut mul: i64 = 1;
    if let Some(u) = b.get(i) {
        let shift = match u.to_ascii_lowercase() {
            b'k' => Some(10),
            b'm' => Some(20),
            b'g' => Some(30),
            b't' => Some(40),
            b'p' => Some(50),
            _ => None,
        };
        if let Some(shift) = shift {
            mul = 1 << shift;
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'i' | b'I')) {
        i += 1;
    }
    if matches!(b.get(i), Some(b'b' | b'B')) {
        i += 1;
    }
    if i != b.len() {
        return Err(bad());
    }
    let size: f64 = number.parse().map_err(|_| {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(number)
        )
    })?;
    if !size.is_finite() {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            go_quote(number)
        ));
    }
    let bytes = size * mul as f64;
    // Go converts an out-of-range float to garbage; refuse it instead.
    if bytes >= (1u64 << 63) as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// A size flag (`-m, --memory`, `--memory-reservation`, `--shm-size`...):
/// `12m`, `1g`, `512k`, `100b`, `1.5g`, `2GiB`; binary units, any case.
/// `flag` is pflag's display name, as in `-m, --memory` or `--shm-size`.
///
/// `parse_bytes("-m, --memory", "12q")` fails with
/// `invalid argument "12q" for "-m, --memory" flag: invalid size: '12q'`.
/// Negative sizes do not parse, as in Docker.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    ram_in_bytes(s).map_err(|e| flag_error(flag, s, e))
}

/// `--memory-swap`: a size, or `-1` for unlimited swap.
pub fn parse_memory_swap(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_bytes("--memory-swap", s)
}

/// Docker's minimum memory limit (6 MiB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The daemon's checks of `-m` and `--memory-swap` together (moby
/// `verifyPlatformContainerResources`). 0 means unset for both.
pub fn check_memory(memory: i64, memory_swap: i64) -> Result<()> {
    if memory != 0 && memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if memory > 0 && memory_swap > 0 && memory_swap < memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if memory == 0 && memory_swap > 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    Ok(())
}

/// `--cpus` as nano CPUs: `1.5` is 1 500 000 000. Any rational Go's
/// `big.Rat` reads in decimal: `2`, `0.5`, `.5`, `1e-1`, `3/2`.
///
/// Negative values parse (the CLI lets them through); [`check_nano_cpus`]
/// is the daemon's range check.
pub fn parse_cpus(s: &str) -> Result<i64> {
    nano_cpus(s).map_err(|e| flag_error("--cpus", s, e))
}

fn nano_cpus(s: &str) -> std::result::Result<i64, String> {
    let not_rational = || format!("failed to parse {s} as a rational number");
    const NANO: u128 = 1_000_000_000;
    let (neg, magnitude) = if let Some((a, b)) = s.split_once('/') {
        let (neg, a) = match a.as_bytes().first() {
            Some(b'-') => (true, &a[1..]),
            Some(b'+') => (false, &a[1..]),
            _ => (false, a),
        };
        let num = decimal_u128(a).ok_or_else(not_rational)?;
        let den = decimal_u128(b).ok_or_else(not_rational)?;
        if den == 0 {
            return Err(not_rational());
        }
        let scaled = num.checked_mul(NANO).ok_or("value out of range")?;
        if scaled % den != 0 {
            return Err("value is too precise".into());
        }
        (neg, scaled / den)
    } else {
        let (neg, mantissa, exp) = parse_decimal(s).ok_or_else(not_rational)?;
        // nano = mantissa × 10^(exp + 9), an integer or too precise.
        let mut digits = mantissa.trim_start_matches('0').to_string();
        let mut exp = exp.saturating_add(9);
        while digits.ends_with('0') {
            digits.pop();
            exp = exp.saturating_add(1);
        }
        if digits.is_empty() {
            (neg, 0)
        } else if exp < 0 {
            return Err("value is too precise".into());
        } else {
            let m = decimal_u128(&digits).ok_or("value out of range")?;
            let scale = u32::try_from(exp)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
                .ok_or("value out of range")?;
            (neg, m.checked_mul(scale).ok_or("value out of range")?)
        }
    };
    let v = i64::try_from(magnitude).map_err(|_| "value out of range".to_string())?;
    Ok(if neg { -v } else { v })
}

/// Decimal digits only, at least one, as a u128 (`None` on overflow).
fn decimal_u128(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u128, |n, b| {
        n.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

/// `[+-]digits[.digits][e[+-]digits]` as (negative, all digits, exponent
/// applying to them).
fn parse_decimal(s: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let mut exp: i64 = 0;
    if let Some(e) = exponent {
        let (eneg, edigits) = match e.as_bytes().first() {
            Some(b'-') => (true, &e[1..]),
            Some(b'+') => (false, &e[1..]),
            _ => (false, e),
        };
        if edigits.is_empty() || !all_digits(edigits) {
            return None;
        }
        let v: i64 = edigits.parse().unwrap_or(i64::MAX / 2).min(i64::MAX / 2);
        exp = if eneg { -v } else { v };
    }
    let frac_len = i64::try_from(frac.len()).ok()?;
    Some((neg, format!("{int}{frac}"), exp.saturating_sub(frac_len)))
}

/// The daemon's range check of `--cpus` on a host with `ncpu` CPUs.
pub fn check_nano_cpus(nano_cpus: i64, ncpu: usize) -> Result<()> {
    let max = i64::try_from(ncpu)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    if nano_cpus < 0 || nano_cpus > max {
        return Err(invalid(format!(
            "range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    Ok(())
}

/// A duration flag (`--health-interval`, `--health-timeout`,
/// `--health-start-period`, `--stop-timeout` is not one) as nanoseconds, by
/// Go's `time.ParseDuration`: `30s`, `1m30s`, `500ms`, `1.5h`, `0`, `-2s`;
/// units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
///
/// `parse_duration("--health-interval", "x")` fails with
/// `invalid argument "x" for "--health-interval" flag: time: invalid duration "x"`.
pub fn parse_duration(flag: &str, s: &str) -> Result<i64> {
    go_parse_duration(s).map_err(|e| flag_error(flag, s, e))
}

fn go_parse_duration(orig: &str) -> std::result::Result<i64, String> {
    let bad = || format!("time: invalid duration {}", time_quote(orig));
    const LIMIT: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(bad());
        }
        // [0-9]*
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(bad());
            }
            v = v * 10 + u64::from(s[i] - b'0');
            if v > LIMIT {
                return Err(bad());
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        // (\.[0-9]*)?
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut i = 0;
            let mut overflow = false;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(s[i] - b'0');
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > 0;
            s = &s[i..];
        }
        if !pre && !post {
            return Err(bad());
        }
        // unit
        let i = s
            .iter()
            .position(|c| *c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if i == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let u = String::from_utf8_lossy(&s[..i]).into_owned();
        s = &s[i..];
        let unit: u64 = match u.as_str() {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(&u),
                    time_quote(orig)
                ))
            }
        };
        if v > LIMIT / unit {
            return Err(bad());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(bad());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(bad());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(bad());
    }
    Ok(d as i64)
}

/// Docker's smallest health-check duration (1ms), in nanoseconds.
pub const MIN_HEALTH_DURATION: i64 = 1_000_000;

/// The checks of a health check built from `--health-*`: the CLI's (no
/// negative values) then the daemon's (each duration 0 or at least 1ms).
pub fn validate_healthcheck(h: &HealthConfig) -> Result<()> {
    for (v, flag) in [
        (h.interval, "--health-interval"),
        (h.timeout, "--health-timeout"),
        (h.retries, "--health-retries"),
        (h.start_period, "--health-start-period"),
    ] {
        if v < 0 {
            return Err(invalid(format!("{flag} cannot be negative")));
        }
    }
    let short = |d: i64| d != 0 && d < MIN_HEALTH_DURATION;
    if short(h.interval) {
        return Err(invalid("Interval in Healthcheck cannot be less than 1ms"));
    }
    if short(h.timeout) {
        return Err(invalid("Timeout in Healthcheck cannot be less than 1ms"));
    }
    if h.retries < 0 {
        return Err(invalid("Retries in Healthcheck cannot be negative"));
    }
    if short(h.start_period) {
        return Err(invalid(
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Restart policy, ulimits
// ---------------------------------------------------------------------------

/// `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:N]`; empty is
/// Docker's unset (name `""`, meaning `no`). The CLI's
/// `opts.ParseRestartPolicy` then the daemon's `ValidateRestartPolicy`;
/// Docker prints neither with a flag prefix (`--restart` is a plain string
/// flag), so neither does this.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let mut p = RestartPolicy::default();
    if s.is_empty() {
        return Ok(p);
    }
    let (name, count) = s.split_once(':').unwrap_or((s, ""));
    if s.contains(':') && name.is_empty() {
        return Err(invalid(
            "invalid restart policy format: no policy provided before colon",
        ));
    }
    if !count.is_empty() {
        p.maximum_retry_count = go_parse_int(count).map_err(|_| {
            invalid("invalid restart policy format: maximum retry count must be an integer")
        })?;
    }
    p.name = name.to_string();
    match p.name.as_str() {
        "always" | "unless-stopped" | "no" => {
            if p.maximum_retry_count != 0 {
                let mut msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                if p.maximum_retry_count < 0 {
                    msg.push_str(" and cannot be negative");
                }
                return Err(invalid(msg));
            }
        }
        "on-failure" => {
            if p.maximum_retry_count < 0 {
                return Err(invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    Ok(p)
}

/// The resource names go-units accepts (`RLIMIT_` without the prefix).
pub const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit name=soft[:hard]`: `nofile=1024:2048`, `nproc=512` (hard =
/// soft), `infinity` for -1 (unlimited). go-units `ParseUlimit`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    go_parse_ulimit(s).map_err(|e| flag_error("--ulimit", s, e))
}

fn go_parse_ulimit(s: &str) -> std::result::Result<Ulimit, String> {
    let Some((name, values)) = s.split_once('=') else {
        return Err(format!("invalid ulimit argument: {s}"));
    };
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let value = |v: &str| {
        if v == "infinity" {
            Ok(-1)
        } else {
            go_parse_int(v)
        }
    };
    let parts: Vec<&str> = values.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let soft = value(soft)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = value(hard)?;
            (value(soft)?, hard)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {values}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

// ---------------------------------------------------------------------------
// Mounts: -v, --mount, --tmpfs
// ---------------------------------------------------------------------------

const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];
const CONSISTENCIES: [&str; 3] = ["consistent", "cached", "delegated"];
const TARGET_IS_ROOT: &str = "invalid specification: destination can't be '/'";

/// moby `linuxValidMountMode`: at most one of each kind.
fn valid_mount_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let (mut rw, mut label, mut prop, mut copy, mut consistency) = (0, 0, 0, 0, 0);
    for o in mode.split(',') {
        match o {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            o if PROPAGATIONS.contains(&o) => prop += 1,
            "nocopy" => copy += 1,
            o if CONSISTENCIES.contains(&o) => consistency += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1 && consistency <= 1
}

/// moby's checks of a mount's target: not `/`, absolute.
fn check_target(target: &str) -> std::result::Result<(), String> {
    if clean_path(target) == "/" {
        return Err(TARGET_IS_ROOT.into());
    }
    if !target.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        ));
    }
    Ok(())
}

/// The local volume driver's check of a volume name, as the daemon reports
/// it when it creates the volume.
pub fn check_volume_name(name: &str) -> Result<()> {
    let why = if name.len() == 1 {
        "volume name is too short, names should be at least two alphanumeric characters".to_string()
    } else {
        let b = name.as_bytes();
        let ok = b.first().is_some_and(|c| c.is_ascii_alphanumeric())
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            return Ok(());
        }
        format!(
            "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )
    };
    Err(invalid(format!("create {name}: {why}")))
}

/// docker-cli's `volumespec.Parse` checks (before anything reaches the
/// daemon); Windows drive letters are not special here.
fn cli_volume_spec_check(spec: &str) -> Result<()> {
    if spec.is_empty() {
        return Err(invalid("invalid empty volume spec"));
    }
    if spec.len() <= 2 {
        return Ok(());
    }
    let fields: Vec<&str> = spec.split(':').collect();
    for (i, f) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        let why = if f.is_empty() {
            "empty section between colons"
        } else if i >= 2 && !last {
            "too many colons"
        } else {
            continue;
        };
        return Err(invalid(format!("invalid spec: {spec}: {why}")));
    }
    Ok(())
}

/// `-v`: `/host:/ctr[:opts]` (bind), `name:/ctr[:opts]` (named volume),
/// `/ctr` (anonymous volume). Options: `ro`, `rw`, `z`, `Z`, `nocopy`, a
/// propagation (`shared`, `rshared`, `slave`, `rslave`, `private`,
/// `rprivate`), a consistency (`consistent`, `cached`, `delegated`; ignored).
///
/// A host path starting with `.` is made absolute against `cwd`, as current
/// docker-cli does (`-v ./data:/data`); any other relative host
/// part is a volume name, and Docker's volume-name error tells the user to
/// use an absolute path. The result's `options` are the given options minus
/// `ro`/`rw` and consistency; the target and a bind's source are cleaned.
pub fn parse_volume(spec: &str, cwd: &Path) -> Result<MountSpec> {
    cli_volume_spec_check(spec)?;
    let mut raw = spec.to_string();
    if let Some((host, target)) = spec.split_once(':') {
        if host.starts_with('.') {
            raw = format!("{}:{target}", abs_path(cwd, host));
        }
    }

    // moby `linuxParser.ParseMountRaw`.
    let invalid_spec = || invalid(format!("invalid volume specification: '{raw}'"));
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(invalid_spec());
    }
    let (source, target, mode) = match arr.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => {
            if valid_mount_mode(target) {
                return Err(invalid_spec());
            }
            (*source, *target, "")
        }
        [source, target, mode] => (*source, *target, *mode),
        _ => return Err(invalid_spec()),
    };
    if !valid_mount_mode(mode) {
        return Err(invalid(format!("invalid mode: {mode}")));
    }
    let kind = if source.starts_with('/') {
        "bind"
    } else {
        "volume"
    };
    let opts: Vec<&str> = if mode.is_empty() {
        Vec::new()
    } else {
        mode.split(',').collect()
    };
    let read_only = opts.contains(&"ro");
    let nocopy = opts.contains(&"nocopy");
    let propagation = opts.iter().any(|o| PROPAGATIONS.contains(o));

    let config_error = |why: &str| {
        invalid(format!(
            "invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": {why}"
        ))
    };
    if target.is_empty() {
        return Err(config_error("field Target must not be empty"));
    }
    check_target(target).map_err(|e| config_error(&e))?;
    if kind == "bind" {
        if nocopy {
            return Err(config_error("field VolumeOptions must not be specified"));
        }
    } else {
        if propagation {
            return Err(config_error("field BindOptions must not be specified"));
        }
        if !source.is_empty() {
            check_volume_name(source)?;
        }
    }
    Ok(MountSpec {
        kind: kind.into(),
        source: if kind == "bind" {
            clean_path(source)
        } else {
            source.to_string()
        },
        target: clean_path(target),
        read_only,
        options: opts
            .into_iter()
            .filter(|o| !matches!(*o, "ro" | "rw") && !CONSISTENCIES.contains(o))
            .map(String::from)
            .collect(),
    })
}

/// One record of Go's `encoding/csv` (default settings), as `--mount` reads it.
fn csv_fields(s: &str) -> std::result::Result<Vec<String>, String> {
    let line = s
        .strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s);
    if line.is_empty() {
        return Err("EOF".into());
    }
    let b = line.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let mut field = Vec::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 1
                        ))
                    }
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            fields.push(String::from_utf8_lossy(&field).into_owned());
            match b.get(i) {
                None => return Ok(fields),
                Some(b',') => i += 1,
                Some(_) => {
                    return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    i + 1
                ))
                }
            }
        } else {
            let end = b[i..].iter().position(|c| *c == b',').map(|p| p + i);
            let field = &line[i..end.unwrap_or(b.len())];
            if let Some(q) = field.find('"') {
                return Err(format!(
                    "parse error on line 1, column {}: bare \" in non-quoted field",
                    i + q + 1
                ));
            }
            fields.push(field.to_string());
            match end {
                None => return Ok(fields),
                Some(e) => i = e + 1,
            }
        }
    }
}

/// Docker's tmpfs size option: the largest of g, m, k dividing evenly.
fn tmpfs_size_option(size: i64) -> String {
    for (suffix, div) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if size % div == 0 {
            return format!("size={}{suffix}", size / div);
        }
    }
    format!("size={size}")
}

fn mount_option_unsupported(key: &str) -> String {
    format!("mount option '{key}' is not supported")
}

/// `--mount type=bind,source=/a,target=/b,readonly`: docker-cli's
/// `MountOpt.Set` (CSV fields; keys `type` (default `volume`),
/// `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro[=bool]`,
/// `bind-propagation`, `volume-nocopy[=bool]`, `tmpfs-size`, `tmpfs-mode`,
/// `consistency` (ignored), `bind-recursive=enabled`, `volume-driver=local`)
/// then the daemon's `ValidateMountConfig`. A source `.` or `./...` is made
/// absolute against `cwd`.
///
/// Options of the result: a bind's propagation if given and `no-create`
/// (the daemon refuses a missing bind source for `--mount`; the bundle
/// builder checks), `nocopy` for a volume, Docker's `size=...`/`mode=...`
/// for a tmpfs. Keys Docker has but Barge does not implement (volume
/// drivers, labels and options, subpaths, non-recursive binds) are refused.
pub fn parse_mount(s: &str, cwd: &Path) -> Result<MountSpec> {
    let cli = |why: String| flag_error("--mount", s, why);
    let fields = csv_fields(s).map_err(cli)?;

    let mut kind = "volume".to_string();
    let mut source = String::new();
    let mut target = String::new();
    let mut read_only = false;
    let (mut volume_opts, mut bind_opts, mut tmpfs_opts) = (false, false, false);
    let mut nocopy = false;
    let mut propagation = String::new();
    let (mut tmpfs_size, mut tmpfs_mode) = (0i64, 0u32);

    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), v),
            None => {
                match field.to_lowercase().as_str() {
                    "readonly" | "ro" => read_only = true,
                    "volume-nocopy" => {
                        volume_opts = true;
                        nocopy = true;
                    }
                    "bind-nonrecursive" => {
                        return Err(cli(mount_option_unsupported("bind-nonrecursive")))
                    }
                    _ => {
                        return Err(cli(format!(
                            "invalid field '{field}' must be a key=value pair"
                        )))
                    }
                }
                continue;
            }
        };
        let bad_value = || cli(format!("invalid value for {key}: {val}"));
        match key.as_str() {
            "type" => kind = val.to_lowercase(),
            "source" | "src" => {
                source = if val == "." || val.starts_with("./") {
                    abs_path(cwd, val)
                } else {
                    val.to_string()
                }
            }
            "target" | "dst" | "destination" => target = val.to_string(),
            "readonly" | "ro" => read_only = go_parse_bool(val).ok_or_else(bad_value)?,
            "consistency" => {}
            "bind-propagation" => {
                bind_opts = true;
                propagation = val.to_lowercase();
            }
            "bind-nonrecursive" => {
                bind_opts = true;
                if go_parse_bool(val).ok_or_else(bad_value)? {
                    return Err(cli(mount_option_unsupported("bind-nonrecursive")));
                }
            }
            "bind-recursive" => {
                bind_opts = true;
                match val {
                    "enabled" => {}
                    "disabled" | "writable" | "readonly" => {
                        return Err(cli(mount_option_unsupported(&format!("{key}={val}"))))
                    }
                    _ => {
                        return Err(cli(format!("invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")")))
                    }
                }
            }
            "volume-nocopy" => {
                volume_opts = true;
                nocopy = go_parse_bool(val)
                    .ok_or_else(|| cli(format!("invalid value for volume-nocopy: {val}")))?;
            }
            "volume-driver" => {
                volume_opts = true;
                if val != "local" {
                    return Err(cli(mount_option_unsupported(&format!("{key}={val}"))));
                }
            }
            "volume-label" | "volume-opt" | "volume-subpath" | "image-subpath" => {
                return Err(cli(mount_option_unsupported(&key)))
            }
            "tmpfs-size" => {
                tmpfs_opts = true;
                tmpfs_size = ram_in_bytes(val).map_err(|_| bad_value())?;
            }
            "tmpfs-mode" => {
                tmpfs_opts = true;
                // Go's ParseUint(val, 8, 32): octal digits only, no sign.
                let octal = !val.is_empty() && val.bytes().all(|c| (b'0'..=b'7').contains(&c));
                tmpfs_mode = match octal {
                    true => u32::from_str_radix(val, 8).map_err(|_| bad_value())?,
                    false => return Err(bad_value()),
                };
            }
            _ => return Err(cli(format!("unexpected key '{key}' in '{field}'"))),
        }
    }

    if kind.is_empty() {
        return Err(cli("type is required".into()));
    }
    if target.is_empty() {
        return Err(cli("target is required".into()));
    }
    for (set, family) in [
        (volume_opts, "volume"),
        (bind_opts, "bind"),
        (tmpfs_opts, "tmpfs"),
    ] {
        if set && kind != family {
            return Err(cli(format!(
                "cannot mix '{family}-*' options with mount type '{kind}'"
            )));
        }
    }

    // The daemon's ValidateMountConfig.
    let config_error = |why: &str| {
        invalid(format!(
            "invalid mount config for type {}: {why}",
            go_quote(&kind)
        ))
    };
    check_target(&target).map_err(|e| config_error(&e))?;
    let mut options = Vec::new();
    match kind.as_str() {
        "bind" => {
            if source.is_empty() {
                return Err(config_error("field Source must not be empty"));
            }
            if !propagation.is_empty() {
                if !PROPAGATIONS.contains(&propagation.as_str()) {
                    return Err(config_error(&format!(
                        "invalid propagation mode: {propagation}"
                    )));
                }
                options.push(propagation);
            }
            if !source.starts_with('/') {
                return Err(config_error(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            source = clean_path(&source);
            options.push("no-create".into());
        }
        "volume" => {
            if read_only && source.is_empty() {
                return Err(config_error(
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            if !source.is_empty() {
                check_volume_name(&source)?;
            }
            if nocopy {
                options.push("nocopy".into());
            }
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(config_error("field Source must not be specified"));
            }
            if tmpfs_mode != 0 {
                options.push(format!("mode={tmpfs_mode:o}"));
            }
            if tmpfs_size != 0 {
                options.push(tmpfs_size_option(tmpfs_size));
            }
        }
        "image" => return Err(invalid("mount type \"image\" is not supported")),
        _ => return Err(config_error("mount type unknown")),
    }
    Ok(MountSpec {
        kind,
        source,
        target: clean_path(&target),
        read_only,
        options,
    })
}

/// Mount flags moby/sys/mount knows (anything else must be a tmpfs data
/// option).
const MOUNT_FLAGS: [&str; 32] = [
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
];
const TMPFS_DATA: [&str; 8] = [
    "",
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// `--tmpfs /run[:opts]`, e.g. `/run:rw,size=64m,mode=1777`: the daemon's
/// checks of the destination (absolute, not `/`) and of the options
/// (moby/sys/mount `ParseTmpfsOptions`). `ro`/`rw` set `read_only`; the
/// other options are kept as given.
pub fn parse_tmpfs(s: &str) -> Result<MountSpec> {
    let (dest, opts) = s.split_once(':').unwrap_or((s, ""));
    check_target(dest).map_err(invalid)?;
    let mut read_only = false;
    let mut options = Vec::new();
    for o in opts.split(',') {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "" => {}
            o if MOUNT_FLAGS.contains(&o) => options.push(o.to_string()),
            o => {
                let parts: Vec<&str> = o.splitn(2, '=').collect();
                if !TMPFS_DATA.contains(&parts[0]) {
                    let quoted: Vec<String> = parts.iter().map(|p| go_quote(p)).collect();
                    return Err(invalid(format!(
                        "Invalid tmpfs option [{}]",
                        quoted.join(" ")
                    )));
                }
                options.push(o.to_string());
            }
        }
    }
    Ok(MountSpec {
        kind: "tmpfs".into(),
        source: String::new(),
        target: clean_path(dest),
        read_only,
        options,
    })
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

/// Some of `r`, `w`, `m`, each at most once.
fn valid_device_mode(mode: &str) -> bool {
    let mut seen = [false; 3];
    !mode.is_empty()
        && mode.chars().all(|c| {
            let i = match c {
                'r' => 0,
                'w' => 1,
                'm' => 2,
                _ => return false,
            };
            !std::mem::replace(&mut seen[i], true)
        })
}

/// `--device`: `/dev/fuse`, `/dev/sda:/dev/xvdc`, `/dev/sda:/dev/xvdc:rwm`,
/// `/dev/sda:rw`; permissions default to `rwm`. docker-cli's
/// `validateLinuxPath` and `parseLinuxDevice`; the host path must also be
/// absolute (Docker would fail later, looking the device up).
pub fn parse_device(s: &str) -> Result<DeviceMapping> {
    let bad_format = || invalid(format!("bad format for path: {s}"));
    if s.matches(':').count() > 2 {
        return Err(bad_format());
    }
    let split: Vec<&str> = s.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(bad_format());
    }
    let (host, ctr, perms) = match split.as_slice() {
        [path] => {
            let p = clean_path(path);
            (p.clone(), p, "rwm")
        }
        [path, mode] if valid_device_mode(mode) => {
            let p = clean_path(path);
            (p.clone(), p, *mode)
        }
        [host, ctr] => (host.to_string(), clean_path(ctr), "rwm"),
        [host, ctr, mode] => {
            if !valid_device_mode(mode) {
                return Err(invalid(format!("bad mode specified: {mode}")));
            }
            (host.to_string(), ctr.to_string(), *mode)
        }
        _ => return Err(bad_format()),
    };
    for p in [&ctr, &host] {
        if !p.starts_with('/') {
            return Err(invalid(format!("{p} is not an absolute path")));
        }
    }
    Ok(DeviceMapping {
        path_on_host: host,
        path_in_container: ctr,
        cgroup_permissions: perms.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Environment and labels
// ---------------------------------------------------------------------------

/// `-e K=V` and `-e K` (the value from `lookup`, the caller's environment;
/// dropped when unset), in order. docker-cli `ValidateEnv`: an empty name
/// (`-e =x`) is the only error.
pub fn parse_env(list: &[String], lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(list.len());
    for val in list {
        let (key, has_value) = match val.split_once('=') {
            Some((k, _)) => (k, true),
            None => (val.as_str(), false),
        };
        if key.is_empty() {
            return Err(flag_error(
                "-e, --env",
                val,
                format!("invalid environment variable: {val}"),
            ));
        }
        if has_value {
            out.push(val.clone());
        } else if let Some(v) = lookup(key) {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

/// bufio.Scanner's line limit.
const MAX_KV_LINE: usize = 64 * 1024;

/// Where a key without a value gets one (the caller's environment).
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// docker-cli `pkg/kvfile.Parse`: one `KEY[=VALUE]` a line; leading white
/// space dropped, `#` comments and blank lines skipped, a UTF-8 BOM dropped;
/// a key alone takes its value from `lookup` or is left out.
fn parse_kv_file(path: &Path, lookup: Option<Lookup<'_>>) -> Result<Vec<String>> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| invalid(format!("open {shown}: {}", go_errno(&e))))?;
    let wrap = |why: String| invalid(format!("invalid env file ({shown}): {why}"));
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut number = 0usize;
    loop {
        let mut buf = Vec::new();
        let n = (&mut reader)
            .take(MAX_KV_LINE as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| wrap(format!("read {shown}: {}", go_errno(&e))))?;
        if n == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if n == MAX_KV_LINE {
            return Err(wrap("bufio.Scanner: token too long".into()));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        number += 1;
        let Ok(text) = std::str::from_utf8(&buf) else {
            let bytes: Vec<String> = buf.iter().map(u8::to_string).collect();
            return Err(wrap(format!(
                "invalid utf8 bytes at line {number}: [{}]",
                bytes.join(" ")
            )));
        };
        let text = if number == 1 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let line = text.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(wrap(format!("no variable name on line '{line}'")));
        }
        if key.contains([' ', '\t']) {
            return Err(wrap(format!("variable '{key}' contains whitespaces")));
        }
        if has_value {
            lines.push(line.to_string());
        } else if let Some(v) = lookup.and_then(|f| f(line)) {
            lines.push(format!("{key}={v}"));
        }
    }
    Ok(lines)
}

/// `--env-file`: docker-cli's `ParseEnvFile`; a key alone takes its value
/// from `lookup` (the caller's environment) or is left out.
pub fn parse_env_file(path: &Path, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    parse_kv_file(path, Some(&lookup))
}

/// `-l k=v`, `-l k` (empty value); a later label replaces an earlier one.
/// docker-cli `ValidateLabel`: the key, less leading white space, must be
/// non-empty and free of spaces and tabs.
pub fn parse_label(list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for value in list {
        let (key, val) = value.split_once('=').unwrap_or((value, ""));
        let trimmed = key.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            return Err(flag_error(
                "-l, --label",
                value,
                format!("invalid label '{value}': empty name"),
            ));
        }
        if trimmed.contains([' ', '\t']) {
            return Err(flag_error(
                "-l, --label",
                value,
                format!("label '{trimmed}' contains whitespaces"),
            ));
        }
        out.insert(key.to_string(), val.to_string());
    }
    Ok(out)
}

/// `--label-file`: the env-file format (and its error messages, which say
/// "env file" as Docker's do); a key without `=` is left out, as in
/// docker-cli.
pub fn parse_label_file(path: &Path) -> Result<BTreeMap<String, String>> {
    Ok(parse_kv_file(path, None)?
        .into_iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((&l, ""));
            (k.to_string(), v.to_string())
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// One published port: Docker's `PortBinding` under its `port/proto` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Empty for all addresses; an IPv6 address without brackets.
    pub host_ip: String,
    /// Empty for a random port; a port, or a range (`8000-8010`) to pick
    /// from when one container port is published on a host range.
    pub host_port: String,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
}

impl PortMapping {
    /// Docker's key for the port: `80/tcp`.
    pub fn port_key(&self) -> String {
        format!("{}/{}", self.container_port, self.proto)
    }
}

/// go-connections `parsePortRange`: `80` or `8000-8010`, each 0-65535.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let number = |p: &str| go_parse_int(p).ok().and_then(|n| u16::try_from(n).ok());
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(s)?;
            (n, n)
        }
    };
    (end >= start).then_some((start, end))
}

/// `-p`/`--publish`: `[ip:][host_port:]container_port[/proto]` with ports or
/// ranges (`8080:80`, `127.0.0.1:8080:80/udp`, `80`, `8000-8010:80-90`,
/// `[::1]:80:80`), or the long form `published=8080,target=80,protocol=udp`.
/// One mapping per container port. go-connections `nat.ParsePortSpec`.
pub fn parse_publish(s: &str) -> Result<Vec<PortMapping>> {
    // docker-cli convertToStandardNotation
    let raw = if s.contains('=') {
        let mut params: BTreeMap<&str, &str> = BTreeMap::from([("protocol", "tcp")]);
        for param in s.split(',') {
            match param.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    params.insert(k, v);
                }
                _ => {
                    return Err(invalid(format!(
                        "invalid publish opts format (should be name=value but got '{param}')"
                    )))
                }
            }
        }
        let get = |k: &str| params.get(k).copied().unwrap_or("");
        format!("{}:{}/{}", get("published"), get("target"), get("protocol"))
    } else {
        s.to_string()
    };

    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (mut ip, host_port, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (container_port, proto) = container.split_once('/').unwrap_or((container, ""));
    if container_port.is_empty() {
        return Err(invalid(format!("no port specified: {raw}<empty>")));
    }
    let proto = if proto.is_empty() {
        "tcp".to_string()
    } else {
        proto.to_lowercase()
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid(format!("invalid proto: {proto}")));
    }
    if let Some(inner) = ip.strip_prefix('[') {
        let Some(host) = inner.strip_suffix(']').filter(|h| !h.contains(']')) else {
            let why = if inner.contains(']') {
                "missing port in address"
            } else {
                "missing ']' in address"
            };
            return Err(invalid(format!(
                "invalid IP address {ip}: address {ip}:: {why}"
            )));
        };
        ip = host.to_string();
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(invalid(format!("invalid IP address: {ip}")));
    }
    let (start, end) = port_range(container_port)
        .ok_or_else(|| invalid(format!("invalid containerPort: {container_port}")))?;
    let (mut host_start, mut host_end) = (0u16, 0u16);
    if !host_port.is_empty() {
        (host_start, host_end) = port_range(host_port)
            .ok_or_else(|| invalid(format!("invalid hostPort: {host_port}")))?;
        if end - start != host_end - host_start && end != start {
            return Err(invalid(format!(
                "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            )));
        }
    }
    let count = usize::from(end - start) + 1;
    Ok((start..=end)
        .enumerate()
        .map(|(i, port)| {
            let mut hp = String::new();
            if !host_port.is_empty() {
                hp = (usize::from(host_start) + i).to_string();
                if count == 1 && host_start != host_end {
                    hp = format!("{hp}-{host_end}");
                }
            }
            PortMapping {
                host_ip: ip.clone(),
                host_port: hp,
                container_port: port,
                proto: proto.clone(),
            }
        })
        .collect())
}

/// `--expose PORT[-END][/proto]`: Docker's keys (`80/tcp`) for each port.
pub fn parse_expose(s: &str) -> Result<Vec<String>> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid(format!("invalid proto: {proto}")));
    }
    let (start, end) = port_range(ports)
        .ok_or_else(|| invalid(format!("invalid range format for --expose: {s}")))?;
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `--add-host name:ip` (or `name=ip`): docker-cli `ValidateExtraHost`.
/// The address may be `host-gateway`; an IPv6 one may be in brackets.
pub fn parse_extra_host(s: &str) -> Result<(String, String)> {
    let bad = || invalid(format!("bad format for add-host: {s:?}"));
    let (name, ip) = match s.split_once('=') {
        Some(kv) => kv,
        None => s.split_once(':').ok_or_else(bad)?,
    };
    if name.is_empty() || ip.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad());
    }
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
        return Err(invalid(format!("invalid IP address in add-host: {ip:?}")));
    }
    Ok((name.to_string(), ip.to_string()))
}

// ---------------------------------------------------------------------------
// Sysctls, users, signals, security options, capabilities
// ---------------------------------------------------------------------------

/// `--sysctl k=v`, limited as docker-cli `ValidateSysctl` limits it to the
/// namespaced ones: `kernel.msgmax`, `kernel.msgmnb`, `kernel.msgmni`,
/// `kernel.sem`, `kernel.shmall`, `kernel.shmmax`, `kernel.shmmni`,
/// `kernel.shm_rmid_forced`, `fs.mqueue.*`, `net.*`.
pub fn parse_sysctl(s: &str) -> Result<(String, String)> {
    const KERNEL: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let not_allowed = || flag_error("--sysctl", s, format!("sysctl '{s}' is not allowed"));
    let (k, v) = s.split_once('=').ok_or_else(not_allowed)?;
    if k.is_empty()
        || !(KERNEL.contains(&k) || k.starts_with("net.") || k.starts_with("fs.mqueue."))
    {
        return Err(not_allowed());
    }
    Ok((k.to_string(), v.to_string()))
}

/// `-u user[:group]` split at the first colon; neither part may be empty.
/// (Docker passes the text to the runtime, which then fails to find an
/// empty name.)
pub fn parse_user(s: &str) -> Result<(String, Option<String>)> {
    let (user, group) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if user.is_empty() {
        return Err(invalid(format!(
            "invalid user {}: no user name or uid",
            go_quote(s)
        )));
    }
    if group == Some("") {
        return Err(invalid(format!(
            "invalid user {}: no group name or gid after ':'",
            go_quote(s)
        )));
    }
    Ok((user.to_string(), group.map(String::from)))
}

/// Linux signals by number, as moby/sys/signal names them (without `SIG`);
/// 32 and 33 belong to the C library and have no name.
const SIGNALS: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const SIGNAL_ALIASES: [(&str, i32); 4] = [("IOT", 6), ("CLD", 17), ("POLL", 29), ("UNUSED", 31)];
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// moby/sys/signal `ParseSignal`: a number, or a name in any case with or
/// without `SIG`; `RTMIN`, `RTMIN+1`..`RTMIN+15`, `RTMAX-14`..`RTMAX-1`,
/// `RTMAX`.
fn signal_from_str(raw: &str) -> Option<i32> {
    if let Ok(n) = go_parse_int(raw) {
        return i32::try_from(n)
            .ok()
            .filter(|n| (1..=31).contains(n) || (SIGRTMIN..=SIGRTMAX).contains(n));
    }
    let upper = raw.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS
        .iter()
        .chain(SIGNAL_ALIASES.iter())
        .find(|(s, _)| *s == name)
    {
        return Some(n);
    }
    // Only the spellings in moby's table: no sign, no leading zero.
    let offset = |s: &str, max: i32| {
        s.parse::<i32>()
            .ok()
            .filter(|n| (1..=max).contains(n) && n.to_string() == s)
    };
    match name {
        "RTMIN" => Some(SIGRTMIN),
        "RTMAX" => Some(SIGRTMAX),
        _ => {
            if let Some(n) = name.strip_prefix("RTMIN+") {
                offset(n, 15).map(|n| SIGRTMIN + n)
            } else if let Some(n) = name.strip_prefix("RTMAX-") {
                offset(n, 14).map(|n| SIGRTMAX - n)
            } else {
                None
            }
        }
    }
}

fn signal_name(n: i32) -> Option<String> {
    let name = match n {
        SIGRTMIN => "SIGRTMIN".to_string(),
        SIGRTMAX => "SIGRTMAX".to_string(),
        n if n > SIGRTMIN && n <= SIGRTMIN + 15 => format!("SIGRTMIN+{}", n - SIGRTMIN),
        n if n > SIGRTMIN + 15 && n < SIGRTMAX => format!("SIGRTMAX-{}", SIGRTMAX - n),
        n => format!("SIG{}", SIGNALS.iter().find(|(_, m)| *m == n)?.0),
    };
    Some(name)
}

/// `--stop-signal` and `kill -s` values in canonical form: `TERM`,
/// `SIGTERM`, `sigterm` and `15` are all `SIGTERM`; `37` is `SIGRTMIN+3`.
/// Anything else fails with moby's `Invalid signal: <value>`.
pub fn parse_signal_name(s: &str) -> Result<String> {
    signal_from_str(s)
        .and_then(signal_name)
        .ok_or_else(|| invalid(format!("Invalid signal: {s}")))
}

/// The number of a signal given as [`parse_signal_name`] accepts it.
pub fn signal_number(s: &str) -> Result<i32> {
    signal_from_str(s).ok_or_else(|| invalid(format!("Invalid signal: {s}")))
}

/// A seccomp profile named by `--security-opt seccomp=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompProfile {
    /// `unconfined`: no filter.
    Unconfined,
    /// `builtin`: Docker's default profile, as without the option.
    Builtin,
    /// A JSON profile on the client's file system (docker-cli reads it and
    /// sends its content).
    Path(String),
}

/// One `--security-opt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `no-new-privileges`, `no-new-privileges=true|false` (or `:`).
    NoNewPrivileges(bool),
    Seccomp(SeccompProfile),
    /// `apparmor=PROFILE`.
    Apparmor(String),
    /// `label=...`: `disable`, `user:U`, `role:R`, `type:T`, `level:L`,
    /// `filetype:T`, as given.
    Label(String),
    /// `systempaths=unconfined`: no masked or read-only paths.
    SystemPathsUnconfined,
    /// `writable-cgroups=true|false`.
    WritableCgroups(bool),
}

/// `--security-opt`: docker-cli's `parseSecurityOpts` (a value is needed
/// except for `no-new-privileges`) then the daemon's `parseSecurityOpt`
/// (`key=value`, or the deprecated `key:value`).
pub fn parse_security_opt(opt: &str) -> Result<SecurityOpt> {
    const NNP: &str = "no-new-privileges";
    let (mut k, mut v, mut ok) = match opt.split_once('=') {
        Some((k, v)) => (k, v, true),
        None => (opt, "", false),
    };
    if !ok && k != NNP {
        if let Some((k2, v2)) = opt.split_once(':') {
            (k, v, ok) = (k2, v2, true);
        }
    }
    if (!ok || v.is_empty()) && k != NNP {
        return Err(invalid(format!(
            "invalid --security-opt: {}",
            go_quote(opt)
        )));
    }
    if opt == "systempaths=unconfined" {
        return Ok(SecurityOpt::SystemPathsUnconfined);
    }
    if opt == NNP {
        return Ok(SecurityOpt::NoNewPrivileges(true));
    }
    let daemon_error = || invalid(format!("invalid --security-opt 2: {}", go_quote(opt)));
    let parse_bool = |v: &str| go_parse_bool(v).ok_or_else(daemon_error);
    match k {
        "label" => Ok(SecurityOpt::Label(v.to_string())),
        "apparmor" => Ok(SecurityOpt::Apparmor(v.to_string())),
        "seccomp" => Ok(SecurityOpt::Seccomp(match v {
            "unconfined" => SeccompProfile::Unconfined,
            "builtin" => SeccompProfile::Builtin,
            path => SeccompProfile::Path(path.to_string()),
        })),
        NNP => Ok(SecurityOpt::NoNewPrivileges(parse_bool(v)?)),
        "writable-cgroups" => Ok(SecurityOpt::WritableCgroups(parse_bool(v)?)),
        _ => Err(daemon_error()),
    }
}

/// Every Linux capability up to `CAP_CHECKPOINT_RESTORE` (40), by number.
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `--cap-add`/`--cap-drop` values: `net_admin`, `NET_ADMIN` and
/// `CAP_NET_ADMIN` are `CAP_NET_ADMIN`; `ALL` (any case) stays `ALL`.
/// docker-cli `NormalizeCapability` then moby's check, whose message is
/// `unknown capability: "CAP_FOO"` (the daemon puts `invalid CapAdd: ` or
/// `invalid CapDrop: ` before it).
pub fn normalize_capability(s: &str) -> Result<String> {
    let c = s.trim().to_uppercase();
    if c == "ALL" {
        return Ok(c);
    }
    let c = if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    };
    if !CAPABILITIES.contains(&c.as_str()) {
        return Err(invalid(format!("unknown capability: {}", go_quote(&c))));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\n\x01é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }

    #[test]
    fn clean_path_is_lexical_like_go() {
        for (p, want) in [
            ("", "."),
            ("/", "/"),
            ("/a/../..", "/"),
            ("a/../..", ".."),
            ("/a//b/./c/", "/a/b/c"),
            ("./x", "x"),
        ] {
            assert_eq!(clean_path(p), want, "{p}");
        }
    }

    #[test]
    fn bytes_parse_binary_units_in_any_case() {
        for (s, want) in [
            ("12m", 12 << 20),
            ("1g", 1 << 30),
            ("512k", 512 << 10),
            ("100b", 100),
            ("100", 100),
            ("1.5g", 3 << 29),
            ("2GiB", 2 << 30),
            ("2 MB", 2 << 20),
            ("3Ki", 3 << 10),
            ("1T", 1 << 40),
            ("1p", 1 << 50),
            ("0", 0),
        ] {
            assert_eq!(parse_bytes("-m, --memory", s).ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn bytes_errors_name_the_flag_and_the_size() {
        assert_eq!(
            err(parse_bytes("-m, --memory", "12q")),
            "invalid argument \"12q\" for \"-m, --memory\" flag: invalid size: '12q'"
        );
        assert_eq!(
            err(parse_bytes("--shm-size", "-1")),
            "invalid argument \"-1\" for \"--shm-size\" flag: invalid size: '-1'"
        );
        assert_eq!(
            err(parse_bytes("--shm-size", "1.2.3m")),
            "invalid argument \"1.2.3m\" for \"--shm-size\" flag: strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
        for s in ["", "m", "1.", "1mm", " 1m", "1e3", "99999999p"] {
            assert!(parse_bytes("--shm-size", s).is_err(), "{s}");
        }
    }

    #[test]
    fn memory_swap_minus_one_is_unlimited() {
        assert_eq!(parse_memory_swap("-1").ok(), Some(-1));
        assert_eq!(parse_memory_swap("1g").ok(), Some(1 << 30));
        assert_eq!(
            err(parse_memory_swap("-2")),
            "invalid argument \"-2\" for \"--memory-swap\" flag: invalid size: '-2'"
        );
    }

    #[test]
    fn memory_checks_are_the_daemons() {
        assert!(check_memory(0, 0).is_ok());
        assert!(check_memory(64 << 20, -1).is_ok());
        assert!(check_memory(64 << 20, 128 << 20).is_ok());
        assert_eq!(
            err(check_memory(1 << 20, 0)),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            err(check_memory(64 << 20, 32 << 20)),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            err(check_memory(0, 32 << 20)),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
    }

    #[test]
    fn cpus_are_rationals_in_nano_cpus() {
        for (s, want) in [
            ("1.5", 1_500_000_000),
            ("2", 2_000_000_000),
            ("0.01", 10_000_000),
            (".5", 500_000_000),
            ("5.", 5_000_000_000),
            ("3/2", 1_500_000_000),
            ("1e-1", 100_000_000),
            ("1.5E1", 15_000_000_000),
            ("-1", -1_000_000_000),
            ("0", 0),
            ("0.000000001", 1),
        ] {
            assert_eq!(parse_cpus(s).ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn cpus_errors_are_docker_clis() {
        assert_eq!(
            err(parse_cpus("abc")),
            "invalid argument \"abc\" for \"--cpus\" flag: failed to parse abc as a rational number"
        );
        assert_eq!(
            err(parse_cpus("0.0000000001")),
            "invalid argument \"0.0000000001\" for \"--cpus\" flag: value is too precise"
        );
        assert_eq!(
            err(parse_cpus("1/3")),
            "invalid argument \"1/3\" for \"--cpus\" flag: value is too precise"
        );
        for s in ["", ".", "1/0", "1/-2", "1e", "1.5.2", " 1"] {
            assert!(err(parse_cpus(s)).ends_with("as a rational number"), "{s}");
        }
    }

    #[test]
    fn cpus_range_is_the_daemons() {
        assert!(check_nano_cpus(2_000_000_000, 4).is_ok());
        assert_eq!(
            err(check_nano_cpus(5_000_000_000, 4)),
            "range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"
        );
        assert!(check_nano_cpus(-1, 4).is_err());
    }

    #[test]
    fn durations_follow_go() {
        for (s, want) in [
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("1.5h", 5_400_000_000_000),
            ("0", 0),
            ("-2s", -2_000_000_000),
            ("+1us", 1_000),
            ("1µs", 1_000),
            ("1ns", 1),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("2h45m", 9_900_000_000_000),
        ] {
            assert_eq!(
                parse_duration("--health-interval", s).ok(),
                Some(want),
                "{s}"
            );
        }
    }

    #[test]
    fn duration_errors_are_gos() {
        let flag = "--health-interval";
        assert_eq!(
            err(parse_duration(flag, "x")),
            "invalid argument \"x\" for \"--health-interval\" flag: time: invalid duration \"x\""
        );
        assert_eq!(
            err(parse_duration(flag, "10")),
            "invalid argument \"10\" for \"--health-interval\" flag: time: missing unit in duration \"10\""
        );
        assert_eq!(
            err(parse_duration(flag, "10d")),
            "invalid argument \"10d\" for \"--health-interval\" flag: time: unknown unit \"d\" in duration \"10d\""
        );
        assert_eq!(
            err(parse_duration(flag, "1é")),
            "invalid argument \"1é\" for \"--health-interval\" flag: time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\""
        );
        for s in ["", "-", ".s", "s", "1s.", "9999999999h"] {
            assert!(parse_duration(flag, s).is_err(), "{s}");
        }
    }

    #[test]
    fn healthcheck_checks_cli_then_daemon() {
        let ok = HealthConfig {
            interval: 1_000_000_000,
            ..HealthConfig::default()
        };
        assert!(validate_healthcheck(&ok).is_ok());
        let negative = HealthConfig {
            timeout: -1,
            ..HealthConfig::default()
        };
        assert_eq!(
            err(validate_healthcheck(&negative)),
            "--health-timeout cannot be negative"
        );
        let short = HealthConfig {
            interval: 500_000,
            ..HealthConfig::default()
        };
        assert_eq!(
            err(validate_healthcheck(&short)),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        let start = HealthConfig {
            start_period: 1,
            ..HealthConfig::default()
        };
        assert_eq!(
            err(validate_healthcheck(&start)),
            "StartPeriod in Healthcheck cannot be less than 1ms"
        );
    }

    #[test]
    fn restart_policies_parse() {
        let p = |name: &str, n: i64| RestartPolicy {
            name: name.into(),
            maximum_retry_count: n,
        };
        assert_eq!(parse_restart("").ok(), Some(p("", 0)));
        assert_eq!(parse_restart("no").ok(), Some(p("no", 0)));
        assert_eq!(parse_restart("always").ok(), Some(p("always", 0)));
        assert_eq!(
            parse_restart("unless-stopped").ok(),
            Some(p("unless-stopped", 0))
        );
        assert_eq!(parse_restart("on-failure").ok(), Some(p("on-failure", 0)));
        assert_eq!(parse_restart("on-failure:5").ok(), Some(p("on-failure", 5)));
        assert_eq!(parse_restart("on-failure:").ok(), Some(p("on-failure", 0)));
        assert_eq!(parse_restart("always:0").ok(), Some(p("always", 0)));
    }

    #[test]
    fn restart_errors_are_clis_then_daemons() {
        for (s, want) in [
            ("sometimes", "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
            (":3", "invalid restart policy format: no policy provided before colon"),
            ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
            ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
            ("always:3", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
            ("no:-1", "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"),
        ] {
            assert_eq!(err(parse_restart(s)), want, "{s}");
        }
    }

    #[test]
    fn ulimits_parse() {
        let u = |name: &str, soft, hard| Ulimit {
            name: name.into(),
            soft,
            hard,
        };
        assert_eq!(
            parse_ulimit("nofile=1024:2048").ok(),
            Some(u("nofile", 1024, 2048))
        );
        assert_eq!(parse_ulimit("nproc=512").ok(), Some(u("nproc", 512, 512)));
        assert_eq!(parse_ulimit("core=-1").ok(), Some(u("core", -1, -1)));
        assert_eq!(
            parse_ulimit("memlock=infinity").ok(),
            Some(u("memlock", -1, -1))
        );
        assert_eq!(
            parse_ulimit("stack=1024:infinity").ok(),
            Some(u("stack", 1024, -1))
        );
    }

    #[test]
    fn ulimit_errors_are_go_units() {
        let pre = |v: &str| format!("invalid argument \"{v}\" for \"--ulimit\" flag: ");
        for (s, why) in [
            ("nofile", "invalid ulimit argument: nofile".to_string()),
            ("as=1", "invalid ulimit type: as".to_string()),
            ("NOFILE=1", "invalid ulimit type: NOFILE".to_string()),
            ("nofile=1:2:3", "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`".to_string()),
            ("nofile=abc", "strconv.ParseInt: parsing \"abc\": invalid syntax".to_string()),
            ("nofile=1:x", "strconv.ParseInt: parsing \"x\": invalid syntax".to_string()),
            ("nofile=99999999999999999999", "strconv.ParseInt: parsing \"99999999999999999999\": value out of range".to_string()),
            ("nofile=2048:1024", "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024".to_string()),
            ("nofile=infinity:1024", "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 1024".to_string()),
        ] {
            assert_eq!(err(parse_ulimit(s)), format!("{}{why}", pre(s)), "{s}");
        }
    }

    fn cwd() -> &'static Path {
        Path::new("/home/me/proj")
    }

    fn mount(kind: &str, source: &str, target: &str, ro: bool, opts: &[&str]) -> MountSpec {
        MountSpec {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            read_only: ro,
            options: strings(opts),
        }
    }

    #[test]
    fn volume_forms_parse() {
        for (s, want) in [
            ("/host:/ctr", mount("bind", "/host", "/ctr", false, &[])),
            (
                "/host/:/ctr/x/:ro,z,rshared",
                mount("bind", "/host", "/ctr/x", true, &["z", "rshared"]),
            ),
            ("data:/ctr", mount("volume", "data", "/ctr", false, &[])),
            (
                "my_vol.1:/ctr:nocopy,rw",
                mount("volume", "my_vol.1", "/ctr", false, &["nocopy"]),
            ),
            ("/ctr", mount("volume", "", "/ctr", false, &[])),
            ("/a:/b:cached", mount("bind", "/a", "/b", false, &[])),
            (
                "./data:/data",
                mount("bind", "/home/me/proj/data", "/data", false, &[]),
            ),
            ("../x:/x:ro", mount("bind", "/home/me/x", "/x", true, &[])),
            (".:/src", mount("bind", "/home/me/proj", "/src", false, &[])),
        ] {
            assert_eq!(parse_volume(s, cwd()).ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn volume_errors_are_dockers() {
        for (s, want) in [
            ("", "invalid empty volume spec".to_string()),
            (":/x", "invalid spec: :/x: empty section between colons".into()),
            ("/a::ro", "invalid spec: /a::ro: empty section between colons".into()),
            ("/a:/b:ro:x", "invalid spec: /a:/b:ro:x: too many colons".into()),
            ("/foo:ro", "invalid volume specification: '/foo:ro'".into()),
            ("/a:/b:rx", "invalid mode: rx".into()),
            ("/a:/b:ro,rw", "invalid mode: ro,rw".into()),
            ("/a:x", "invalid volume specification: '/a:x': invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute".into()),
            ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'".into()),
            ("/", "invalid volume specification: '/': invalid mount config for type \"volume\": invalid specification: destination can't be '/'".into()),
            ("x", "invalid volume specification: 'x': invalid mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute".into()),
            ("/a:/b:nocopy", "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified".into()),
            ("vol:/b:shared", "invalid volume specification: 'vol:/b:shared': invalid mount config for type \"volume\": field BindOptions must not be specified".into()),
            ("x/y:/b", "create x/y: \"x/y\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path".into()),
            ("~/y:/b", "create ~/y: \"~/y\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path".into()),
            ("v:/b", "create v: volume name is too short, names should be at least two alphanumeric characters".into()),
        ] {
            assert_eq!(err(parse_volume(s, cwd())), want, "{s}");
        }
    }

    #[test]
    fn mount_forms_parse() {
        for (s, want) in [
            (
                "type=bind,source=/a,target=/b,readonly",
                mount("bind", "/a", "/b", true, &["no-create"]),
            ),
            (
                "type=bind,src=./a,dst=/b,ro=false,bind-propagation=rslave",
                mount(
                    "bind",
                    "/home/me/proj/a",
                    "/b",
                    false,
                    &["rslave", "no-create"],
                ),
            ),
            (
                "source=data,destination=/d,volume-nocopy",
                mount("volume", "data", "/d", false, &["nocopy"]),
            ),
            ("target=/d", mount("volume", "", "/d", false, &[])),
            (
                "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777",
                mount("tmpfs", "", "/t", false, &["mode=1777", "size=64m"]),
            ),
            (
                "type=tmpfs,dst=/t,tmpfs-size=1000",
                mount("tmpfs", "", "/t", false, &["size=1000"]),
            ),
            (
                "\"type=bind\",\"source=/a,b\",TARGET=/b,ro=1",
                mount("bind", "/a,b", "/b", true, &["no-create"]),
            ),
            (
                "type=volume,source=v1,target=/v,consistency=cached,volume-driver=local",
                mount("volume", "v1", "/v", false, &[]),
            ),
        ] {
            assert_eq!(parse_mount(s, cwd()).ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn mount_errors_are_dockers() {
        let cli = |s: &str, why: &str| {
            format!(
                "invalid argument {} for \"--mount\" flag: {why}",
                go_quote(s)
            )
        };
        for (s, want) in [
            ("x", cli("x", "invalid field 'x' must be a key=value pair")),
            ("x=1,target=/a", cli("x=1,target=/a", "unexpected key 'x' in 'x=1'")),
            ("type=,target=/a", cli("type=,target=/a", "type is required")),
            ("type=bind,source=/a", cli("type=bind,source=/a", "target is required")),
            ("target=/a,ro=maybe", cli("target=/a,ro=maybe", "invalid value for ro: maybe")),
            ("target=/a,volume-nocopy=2", cli("target=/a,volume-nocopy=2", "invalid value for volume-nocopy: 2")),
            ("type=tmpfs,target=/a,tmpfs-mode=9", cli("type=tmpfs,target=/a,tmpfs-mode=9", "invalid value for tmpfs-mode: 9")),
            ("type=tmpfs,target=/a,tmpfs-size=1q", cli("type=tmpfs,target=/a,tmpfs-size=1q", "invalid value for tmpfs-size: 1q")),
            ("type=bind,source=/a,target=/b,volume-nocopy", cli("type=bind,source=/a,target=/b,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'")),
            ("type=volume,target=/b,bind-propagation=shared", cli("type=volume,target=/b,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'")),
            ("type=bind,source=/a,target=/b,tmpfs-size=1m", cli("type=bind,source=/a,target=/b,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'")),
            ("", cli("", "EOF")),
            ("type=b\"ind", cli("type=b\"ind", "parse error on line 1, column 7: bare \" in non-quoted field")),
            ("type=bind,target=/b", "invalid mount config for type \"bind\": field Source must not be empty".into()),
            ("type=bind,source=a,target=/b", "invalid mount config for type \"bind\": invalid mount path: 'a' mount path must be absolute".into()),
            ("type=bind,source=/a,target=b", "invalid mount config for type \"bind\": invalid mount path: 'b' mount path must be absolute".into()),
            ("type=bind,source=/a,target=/", "invalid mount config for type \"bind\": invalid specification: destination can't be '/'".into()),
            ("type=bind,source=/a,target=/b,bind-propagation=weird", "invalid mount config for type \"bind\": invalid propagation mode: weird".into()),
            ("type=volume,target=/b,readonly", "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes".into()),
            ("type=tmpfs,source=x,target=/b", "invalid mount config for type \"tmpfs\": field Source must not be specified".into()),
            ("type=foo,target=/b", "invalid mount config for type \"foo\": mount type unknown".into()),
            ("source=/tmp,target=/b", "create /tmp: \"/tmp\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path".into()),
        ] {
            assert_eq!(err(parse_mount(s, cwd())), want, "{s}");
        }
        assert!(err(parse_mount("target=/b,volume-driver=nfs", cwd())).contains("not supported"));
    }

    #[test]
    fn tmpfs_parses_and_checks_options() {
        assert_eq!(
            parse_tmpfs("/run:rw,size=64m,mode=1777").ok(),
            Some(mount(
                "tmpfs",
                "",
                "/run",
                false,
                &["size=64m", "mode=1777"]
            ))
        );
        assert_eq!(
            parse_tmpfs("/run").ok(),
            Some(mount("tmpfs", "", "/run", false, &[]))
        );
        assert_eq!(
            parse_tmpfs("/t/:ro,exec,uid=1000").ok(),
            Some(mount("tmpfs", "", "/t", true, &["exec", "uid=1000"]))
        );
        assert_eq!(
            err(parse_tmpfs("/run:foo")),
            "Invalid tmpfs option [\"foo\"]"
        );
        assert_eq!(
            err(parse_tmpfs("/run:foo=bar")),
            "Invalid tmpfs option [\"foo\" \"bar\"]"
        );
        assert_eq!(
            err(parse_tmpfs("run")),
            "invalid mount path: 'run' mount path must be absolute"
        );
        assert_eq!(
            err(parse_tmpfs("/")),
            "invalid specification: destination can't be '/'"
        );
    }

    #[test]
    fn devices_parse() {
        let d = |h: &str, c: &str, p: &str| DeviceMapping {
            path_on_host: h.into(),
            path_in_container: c.into(),
            cgroup_permissions: p.into(),
        };
        for (s, want) in [
            ("/dev/fuse", d("/dev/fuse", "/dev/fuse", "rwm")),
            ("/dev/sda:/dev/xvdc", d("/dev/sda", "/dev/xvdc", "rwm")),
            ("/dev/sda:/dev/xvdc:r", d("/dev/sda", "/dev/xvdc", "r")),
            ("/dev/sda:mr", d("/dev/sda", "/dev/sda", "mr")),
            ("/dev//fuse/", d("/dev/fuse", "/dev/fuse", "rwm")),
        ] {
            assert_eq!(parse_device(s).ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn device_errors_are_docker_clis() {
        for (s, want) in [
            ("/a:/b:rw:x", "bad format for path: /a:/b:rw:x"),
            (":/b", "bad format for path: :/b"),
            ("/a:/b:x", "bad mode specified: x"),
            ("/a:/b:rr", "bad mode specified: rr"),
            ("/a:b", "b is not an absolute path"),
            ("sda", "sda is not an absolute path"),
            ("sda:/dev/sda", "sda is not an absolute path"),
        ] {
            assert_eq!(err(parse_device(s)), want, "{s}");
        }
    }

    #[test]
    fn env_takes_unset_values_from_the_caller_and_drops_missing_ones() {
        let lookup = |k: &str| match k {
            "HOME" => Some("/root".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let got = parse_env(
            &strings(&["A=1", "HOME", "MISSING", "EMPTY", "B=", "C=x=y"]),
            lookup,
        );
        assert_eq!(
            got.ok(),
            Some(strings(&["A=1", "HOME=/root", "EMPTY=", "B=", "C=x=y"]))
        );
        assert_eq!(
            err(parse_env(&strings(&["=x"]), lookup)),
            "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x"
        );
    }

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, content).expect("write test file");
        p
    }

    #[test]
    fn env_file_follows_kvfile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            &dir,
            "env",
            b"\xef\xbb\xbfA=1\r\n# comment\n\n   B= spaced \nHOME\nMISSING\n\tC=x=y",
        );
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(
            parse_env_file(&p, lookup).ok(),
            Some(strings(&["A=1", "B= spaced ", "HOME=/root", "C=x=y"]))
        );
    }

    #[test]
    fn env_file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = |_: &str| None;
        let p = write(&dir, "ws", b"A=1\nx y=2\n");
        assert_eq!(
            err(parse_env_file(&p, none)),
            format!(
                "invalid env file ({}): variable 'x y' contains whitespaces",
                p.display()
            )
        );
        let p = write(&dir, "noname", b"=2\n");
        assert_eq!(
            err(parse_env_file(&p, none)),
            format!(
                "invalid env file ({}): no variable name on line '=2'",
                p.display()
            )
        );
        let p = write(&dir, "utf8", b"A=1\nB=\xff\n");
        assert_eq!(
            err(parse_env_file(&p, none)),
            format!(
                "invalid env file ({}): invalid utf8 bytes at line 2: [66 61 255]",
                p.display()
            )
        );
        let p = write(&dir, "long", &vec![b'a'; MAX_KV_LINE + 10]);
        assert_eq!(
            err(parse_env_file(&p, none)),
            format!(
                "invalid env file ({}): bufio.Scanner: token too long",
                p.display()
            )
        );
        let missing = dir.path().join("missing");
        assert_eq!(
            err(parse_env_file(&missing, none)),
            format!("open {}: no such file or directory", missing.display())
        );
        assert_eq!(
            err(parse_env_file(dir.path(), none)),
            format!(
                "invalid env file ({0}): read {0}: is a directory",
                dir.path().display()
            )
        );
    }

    #[test]
    fn labels_parse_and_later_ones_win() {
        let got = parse_label(&strings(&["a=1", "b", "c=x=y", "a=2"]));
        let want: BTreeMap<String, String> = [("a", "2"), ("b", ""), ("c", "x=y")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got.ok(), Some(want));
        assert_eq!(
            err(parse_label(&strings(&["=x"]))),
            "invalid argument \"=x\" for \"-l, --label\" flag: invalid label '=x': empty name"
        );
        assert_eq!(
            err(parse_label(&strings(&["a b=x"]))),
            "invalid argument \"a b=x\" for \"-l, --label\" flag: label 'a b' contains whitespaces"
        );
    }

    #[test]
    fn label_file_drops_keys_without_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, "labels", b"a=1\nb\n  c=x y\n");
        let got = parse_label_file(&p).expect("labels");
        assert_eq!(got.len(), 2);
        assert_eq!(got.get("a").map(String::as_str), Some("1"));
        assert_eq!(got.get("c").map(String::as_str), Some("x y"));
    }

    #[test]
    fn expose_forms_parse() {
        assert_eq!(parse_expose("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_expose("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_expose("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_expose("x").is_err());
        assert!(parse_expose("80/icmp").is_err());
    }

    #[test]
    fn extra_hosts_parse() {
        let ok = |s: &str| parse_extra_host(s).unwrap();
        assert_eq!(ok("db:10.0.0.5"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("db=10.0.0.5"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("gw:host-gateway"), ("gw".into(), "host-gateway".into()));
        assert_eq!(ok("v6:[::1]"), ("v6".into(), "::1".into()));
        assert_eq!(ok("v6:::1"), ("v6".into(), "::1".into()));
        for bad in ["db", "db:", ":1.2.3.4", "db:300.1.1.1"] {
            assert!(parse_extra_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn publish_forms_parse() {
        let m = |ip: &str, hp: &str, cp: u16, proto: &str| PortMapping {
            host_ip: ip.into(),
            host_port: hp.into(),
            container_port: cp,
            proto: proto.into(),
        };
        for (s, want) in [
            ("8080:80", vec![m("", "8080", 80, "tcp")]),
            (
                "127.0.0.1:8080:80/udp",
                vec![m("127.0.0.1", "8080", 80, "udp")],
            ),
            ("80", vec![m("", "", 80, "tcp")]),
            ("127.0.0.1::80", vec![m("127.0.0.1", "", 80, "tcp")]),
            ("[::1]:8080:80/SCTP", vec![m("::1", "8080", 80, "sctp")]),
            ("::1:8080:80", vec![m("::1", "8080", 80, "tcp")]),
            (
                "8000-8001:80-81",
                vec![m("", "8000", 80, "tcp"), m("", "8001", 81, "tcp")],
            ),
            ("8000-8010:80", vec![m("", "8000-8010", 80, "tcp")]),
            ("80-81", vec![m("", "", 80, "tcp"), m("", "", 81, "tcp")]),
            (
                "published=8080,target=80,protocol=udp",
                vec![m("", "8080", 80, "udp")],
            ),
            ("target=80", vec![m("", "", 80, "tcp")]),
        ] {
            assert_eq!(parse_publish(s).ok(), Some(want), "{s}");
        }
        assert_eq!(m("", "", 80, "udp").port_key(), "80/udp");
    }

    #[test]
    fn publish_errors_are_nats() {
        for (s, want) in [
            ("abc", "invalid containerPort: abc"),
            ("8080:abc", "invalid containerPort: abc"),
            ("70000", "invalid containerPort: 70000"),
            ("81-80", "invalid containerPort: 81-80"),
            ("x:80", "invalid hostPort: x"),
            ("8080:", "no port specified: 8080:<empty>"),
            ("", "no port specified: <empty>"),
            ("80/foo", "invalid proto: foo"),
            ("1.2.3:80:80", "invalid IP address: 1.2.3"),
            (
                "8000-8002:80-81",
                "invalid ranges specified for container and host Ports: 80-81 and 8000-8002",
            ),
            (
                "published=1,bad",
                "invalid publish opts format (should be name=value but got 'bad')",
            ),
        ] {
            assert_eq!(err(parse_publish(s)), want, "{s}");
        }
    }

    #[test]
    fn sysctls_are_limited_to_namespaced_ones() {
        assert_eq!(
            parse_sysctl("net.ipv4.ip_forward=1").ok(),
            Some(("net.ipv4.ip_forward".into(), "1".into()))
        );
        assert!(parse_sysctl("kernel.shmmax=1").is_ok());
        assert!(parse_sysctl("fs.mqueue.msg_max=20").is_ok());
        assert!(parse_sysctl("net.core.somaxconn=").is_ok());
        for s in [
            "kernel.hostname=x",
            "vm.swappiness=1",
            "net.ipv4.ip_forward",
            "=1",
        ] {
            assert_eq!(
                err(parse_sysctl(s)),
                format!(
                    "invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not allowed"
                )
            );
        }
    }

    #[test]
    fn users_split_at_the_first_colon() {
        assert_eq!(parse_user("app").ok(), Some(("app".into(), None)));
        assert_eq!(
            parse_user("1000:1000").ok(),
            Some(("1000".into(), Some("1000".into())))
        );
        assert_eq!(
            err(parse_user("")),
            "invalid user \"\": no user name or uid"
        );
        assert_eq!(
            err(parse_user(":g")),
            "invalid user \":g\": no user name or uid"
        );
        assert_eq!(
            err(parse_user("u:")),
            "invalid user \"u:\": no group name or gid after ':'"
        );
    }

    #[test]
    fn signals_normalize_to_sig_names() {
        for (s, want) in [
            ("TERM", "SIGTERM"),
            ("SIGTERM", "SIGTERM"),
            ("15", "SIGTERM"),
            ("sigkill", "SIGKILL"),
            ("iot", "SIGABRT"),
            ("SIGCLD", "SIGCHLD"),
            ("poll", "SIGIO"),
            ("RTMIN", "SIGRTMIN"),
            ("SIGRTMIN+3", "SIGRTMIN+3"),
            ("37", "SIGRTMIN+3"),
            ("rtmax-1", "SIGRTMAX-1"),
            ("50", "SIGRTMAX-14"),
            ("49", "SIGRTMIN+15"),
            ("64", "SIGRTMAX"),
            ("+9", "SIGKILL"),
            ("STKFLT", "SIGSTKFLT"),
        ] {
            assert_eq!(parse_signal_name(s).ok().as_deref(), Some(want), "{s}");
        }
        assert_eq!(signal_number("SIGRTMAX").ok(), Some(64));
        assert_eq!(signal_number("hup").ok(), Some(1));
    }

    #[test]
    fn unknown_signals_are_invalid() {
        for s in [
            "0",
            "32",
            "65",
            "-9",
            "FOO",
            "SIGSIGTERM",
            "RTMIN+16",
            "RTMIN+01",
            "RTMAX-15",
            "",
        ] {
            assert_eq!(
                err(parse_signal_name(s)),
                format!("Invalid signal: {s}"),
                "{s}"
            );
        }
    }

    #[test]
    fn security_opts_parse() {
        use SeccompProfile as P;
        use SecurityOpt as O;
        for (s, want) in [
            ("no-new-privileges", O::NoNewPrivileges(true)),
            ("no-new-privileges:true", O::NoNewPrivileges(true)),
            ("no-new-privileges=false", O::NoNewPrivileges(false)),
            ("seccomp=unconfined", O::Seccomp(P::Unconfined)),
            ("seccomp=builtin", O::Seccomp(P::Builtin)),
            ("seccomp=/p.json", O::Seccomp(P::Path("/p.json".into()))),
            ("seccomp:/p.json", O::Seccomp(P::Path("/p.json".into()))),
            (
                "apparmor=docker-default",
                O::Apparmor("docker-default".into()),
            ),
            ("label=disable", O::Label("disable".into())),
            ("label=user:USER", O::Label("user:USER".into())),
            ("label:type:svirt_t", O::Label("type:svirt_t".into())),
            ("systempaths=unconfined", O::SystemPathsUnconfined),
            ("writable-cgroups=true", O::WritableCgroups(true)),
        ] {
            assert_eq!(parse_security_opt(s).ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn security_opt_errors_are_clis_then_daemons() {
        for (s, want) in [
            ("x", "invalid --security-opt: \"x\""),
            ("disable", "invalid --security-opt: \"disable\""),
            ("seccomp=", "invalid --security-opt: \"seccomp=\""),
            ("foo=bar", "invalid --security-opt 2: \"foo=bar\""),
            (
                "no-new-privileges=maybe",
                "invalid --security-opt 2: \"no-new-privileges=maybe\"",
            ),
            (
                "no-new-privileges=",
                "invalid --security-opt 2: \"no-new-privileges=\"",
            ),
            (
                "systempaths=x",
                "invalid --security-opt 2: \"systempaths=x\"",
            ),
        ] {
            assert_eq!(err(parse_security_opt(s)), want, "{s}");
        }
    }

    #[test]
    fn capabilities_normalize() {
        for (s, want) in [
            ("net_admin", "CAP_NET_ADMIN"),
            ("NET_ADMIN", "CAP_NET_ADMIN"),
            ("CAP_NET_ADMIN", "CAP_NET_ADMIN"),
            (" cap_sys_admin ", "CAP_SYS_ADMIN"),
            ("all", "ALL"),
            ("ALL", "ALL"),
            ("checkpoint_restore", "CAP_CHECKPOINT_RESTORE"),
            ("bpf", "CAP_BPF"),
        ] {
            assert_eq!(normalize_capability(s).ok().as_deref(), Some(want), "{s}");
        }
        assert_eq!(
            err(normalize_capability("foo")),
            "unknown capability: \"CAP_FOO\""
        );
        assert_eq!(
            err(normalize_capability("CAP_ALL")),
            "unknown capability: \"CAP_ALL\""
        );
    }
}
