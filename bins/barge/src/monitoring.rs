//! Watching containers: `stats` (the runtime's cgroup counters, turned into
//! the docker CLI's percentages and sizes), `events` (the engine's event log,
//! filtered, then followed) and `container prune`.
//!
//! `stats` and `events` only read the engine's state; prune removes stopped
//! containers through the engine's own `remove`, never by hand.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use barge_engine::events::{self as engine_events, Event};
use barge_engine::lifecycle;
use barge_engine::store::{Container, Engine};
use serde_json::{json, Value};

use crate::format::{print_rows, Template};
use crate::human;

/// Running, paused and restarting containers count as running (Docker's
/// `IsRunning`).
pub(crate) fn is_running(c: &Container) -> bool {
    matches!(c.state.status.as_str(), "running" | "paused" | "restarting")
}

/// A write to a closed pipe (`barge events | head`) ends the command quietly.
fn quiet_on_broken_pipe(r: std::io::Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

// ------------------------------------------------------------------ units

/// Go's `%.<prec>g` for the values go-units prints (0 ≤ v < 10^prec).
fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i64;
    let decimals = (prec as i64 - 1 - exp).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s
}

/// go-units `CustomSize`.
fn go_size(bytes: f64, prec: usize, base: f64, units: &[&str]) -> String {
    let mut v = bytes;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", go_g(v, prec), units[i])
}

/// go-units `HumanSize` (decimal units, 4 significant digits): "4.263MB".
pub(crate) fn human_size(bytes: u64) -> String {
    go_size(
        bytes as f64,
        4,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
    )
}

/// go-units `BytesSize` (binary units, 4 significant digits): "1.5MiB".
fn bytes_size(bytes: f64) -> String {
    go_size(
        bytes,
        4,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"],
    )
}

// ------------------------------------------------------------------ times

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A Go duration (`90s`, `1h30m`, `1.5h`, `-10m`) in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let per: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * per;
    }
    let n = total as i64;
    Some(if neg { -n } else { n })
}

/// Docker's `--since`/`--until` value (`GetTimestamp`): a Go duration back
/// from now, an RFC 3339 date or time (`2026-11-28`, `2026-11-28T15:16`,
/// `2026-11-28T15:16:30.5Z`, `...+01:00`), or Unix seconds (`1764342990.5`).
/// Returns nanoseconds since the epoch. Times without a zone are read as UTC.
fn parse_timestamp(value: &str, now: i64) -> Result<i64> {
    let bad = || anyhow!("failed to parse value as time or duration: {value:?}");
    if value != "0" {
        if let Some(d) = parse_go_duration(value) {
            return Ok(now - d);
        }
    }
    if value.contains('-') && value.len() >= 10 {
        return parse_date_time(value).ok_or_else(bad);
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let s: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mut digits = frac.to_string();
        digits.truncate(9);
        while digits.len() < 9 {
            digits.push('0');
        }
        nanos = digits.parse().map_err(|_| bad())?;
    }
    Ok(s * 1_000_000_000 + nanos)
}

/// `YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±HH:MM]` in nanoseconds.
fn parse_date_time(v: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, rest) = v.split_at(10);
    let mut d = date.split('-');
    let (y, mo, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return None;
    }
    // Split the zone off the end.
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if rest.len() >= 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (c, z) = rest.split_at(rest.len() - 6);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..].split_once(':')?;
        (c, sign * (num(h)? * 3600 + num(m)? * 60))
    } else {
        (rest, 0)
    };
    let (mut h, mut mi, mut s, mut nanos) = (0, 0, 0, 0);
    if !clock.is_empty() {
        let clock = clock.strip_prefix('T')?;
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.split(':');
        h = num(parts.next()?)?;
        if let Some(p) = parts.next() {
            mi = num(p)?;
        }
        if let Some(p) = parts.next() {
            s = num(p)?;
        }
        if parts.next().is_some() || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        if !frac.is_empty() {
            let mut digits = frac.to_string();
            digits.truncate(9);
            while digits.len() < 9 {
                digits.push('0');
            }
            nanos = num(&digits)?;
        }
    }
    let epoch = human::parse_rfc3339(&format!("{y:04}-{mo:02}-{day:02}T00:00:00Z"))?;
    Some((epoch + h * 3600 + mi * 60 + s - offset) * 1_000_000_000 + nanos)
}

/// RFC 3339 with nanoseconds, UTC (Go's `RFC3339NanoFixed`).
fn rfc3339_nanos(time_nano: i64) -> String {
    barge_engine::time::rfc3339(
        time_nano.div_euclid(1_000_000_000),
        time_nano.rem_euclid(1_000_000_000) as u32,
    )
}

// ------------------------------------------------------------------ filters

/// `--filter key=value` options: the same key twice is an OR, different keys
/// an AND (Docker's `filters.Args`).
#[derive(Debug, Default)]
struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    fn parse(items: &[String], accepted: &[&str]) -> Result<Filters> {
        let mut f = Filters::default();
        for item in items {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
            let k = k.trim().to_ascii_lowercase();
            if !accepted.contains(&k.as_str()) {
                bail!("invalid filter '{k}'");
            }
            f.0.entry(k).or_default().push(v.to_string());
        }
        Ok(f)
    }

    fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    fn has(&self, key: &str) -> bool {
        !self.values(key).is_empty()
    }

    fn exact(&self, key: &str, source: &str) -> bool {
        let v = self.values(key);
        v.is_empty() || v.iter().any(|x| x == source)
    }

    fn fuzzy(&self, key: &str, source: &str) -> bool {
        let v = self.values(key);
        v.is_empty() || v.iter().any(|x| source.starts_with(x.as_str()))
    }

    /// Every `k` / `k=v` of `key` is in `map`.
    fn kv_list(&self, key: &str, map: &BTreeMap<String, String>) -> bool {
        let v = self.values(key);
        if v.is_empty() {
            return true;
        }
        v.iter().all(|want| match want.split_once('=') {
            Some((k, val)) => map.get(k).is_some_and(|x| x == val),
            None => map.contains_key(want),
        })
    }
}

// ------------------------------------------------------------------ stats

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: every running one, and new ones as they start)
    pub containers: Vec<String>,
}

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn stats_title(field: &str) -> String {
    match field {
        "Container" => "CONTAINER",
        "Name" => "NAME",
        "ID" => "CONTAINER ID",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// The host's CPU time (nanoseconds, as the daemon sums `/proc/stat`'s
/// first seven `cpu` fields) and its online CPUs (the `cpuN` lines).
fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let mut total = None;
    let mut cpus = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u64 = f.take(7).filter_map(|x| x.parse::<u64>().ok()).sum();
                total = Some(ticks * (1_000_000_000 / 100));
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    Some((total?, cpus))
}

fn host_cpu() -> (u64, u64) {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t))
        .unwrap_or((0, 0))
}

/// `MemTotal` in bytes (the limit shown for a container without one).
fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let l = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// One reading of a running container, in the daemon's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    /// Container CPU time, nanoseconds.
    cpu_total: u64,
    /// Host CPU time at the same moment, nanoseconds.
    system: u64,
    online_cpus: u64,
    /// Usage without the inactive page cache.
    mem_used: u64,
    mem_limit: u64,
    net_rx: u64,
    net_tx: u64,
    blk_read: u64,
    blk_write: u64,
    pids: u64,
}

/// A sample from runc's `events --stats` JSON (`{"type":"stats","data":{...}}`).
fn parse_sample(v: &Value, (system, online_cpus): (u64, u64), machine_memory: u64) -> Sample {
    let d = v.get("data").unwrap_or(v);
    let u = |p: &str| d.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let usage = u("/memory/usage/usage");
    let raw = |k: &str| {
        d.pointer(&format!("/memory/raw/{k}"))
            .and_then(Value::as_u64)
    };
    // docker-cli's calculateMemUsageUnixNoCache: v1 names it
    // total_inactive_file, v2 inactive_file.
    let mem_used = match raw("total_inactive_file") {
        Some(v1) if v1 < usage => usage - v1,
        _ => usage - raw("inactive_file").filter(|v2| *v2 < usage).unwrap_or(0),
    };
    let mut mem_limit = u("/memory/usage/limit");
    if machine_memory > 0 && (mem_limit == 0 || mem_limit > machine_memory) {
        mem_limit = machine_memory;
    }
    let (mut blk_read, mut blk_write) = (0, 0);
    if let Some(entries) = d
        .pointer("/blkio/ioServiceBytesRecursive")
        .and_then(Value::as_array)
    {
        for e in entries {
            let value = e.get("value").and_then(Value::as_u64).unwrap_or(0);
            match e
                .get("op")
                .and_then(Value::as_str)
                .and_then(|o| o.bytes().next())
            {
                Some(b'r' | b'R') => blk_read += value,
                Some(b'w' | b'W') => blk_write += value,
                _ => {}
            }
        }
    }
    let (mut net_rx, mut net_tx) = (0, 0);
    if let Some(ifs) = d.get("network_interfaces").and_then(Value::as_array) {
        for i in ifs {
            if i.get("name").and_then(Value::as_str) == Some("lo") {
                continue;
            }
            net_rx += i.get("rx_bytes").and_then(Value::as_u64).unwrap_or(0);
            net_tx += i.get("tx_bytes").and_then(Value::as_u64).unwrap_or(0);
        }
    }
    let percpu = d
        .pointer("/cpu/usage/percpu")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0) as u64;
    Sample {
        cpu_total: u("/cpu/usage/total"),
        system,
        online_cpus: if online_cpus > 0 { online_cpus } else { percpu },
        mem_used,
        mem_limit,
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        pids: u("/pids/current"),
    }
}

/// docker-cli's calculateCPUPercentUnix.
fn cpu_percent(prev: &Sample, cur: &Sample) -> f64 {
    let cpu_delta = cur.cpu_total as f64 - prev.cpu_total as f64;
    let system_delta = cur.system as f64 - prev.system as f64;
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * cur.online_cpus as f64 * 100.0
    } else {
        0.0
    }
}

/// What one round of sampling found for a container.
enum Reading {
    /// Removed, or its stats could not be read: shown as `--`.
    Invalid,
    /// Not running: zeros.
    Stopped {
        name: String,
    },
    Running {
        name: String,
        sample: Sample,
    },
}

fn read_one(engine: &Engine, id: &str, machine_memory: u64) -> Reading {
    let Ok(c) = engine.container(id) else {
        return Reading::Invalid;
    };
    let name = c.record.name.clone();
    if !is_running(&c) {
        return Reading::Stopped { name };
    }
    let rt = lifecycle::runtime_of(engine, &c.record);
    match rt.stats(id) {
        Ok(v) => Reading::Running {
            name,
            sample: parse_sample(&v, host_cpu(), machine_memory),
        },
        // It may have stopped meanwhile.
        Err(_) => match engine.container(id) {
            Ok(c) if !is_running(&c) => Reading::Stopped { name },
            _ => Reading::Invalid,
        },
    }
}

/// A container being watched, with its last reading.
struct Watched {
    /// As the user named it (or the short id when watching all).
    container: String,
    id: String,
    name: String,
    prev: Option<Sample>,
    row: StatsRow,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct StatsRow {
    cpu: f64,
    mem: u64,
    limit: u64,
    net: (u64, u64),
    blk: (u64, u64),
    pids: u64,
    invalid: bool,
}

impl Watched {
    fn new(container: String, id: String) -> Watched {
        Watched {
            container,
            id,
            name: String::new(),
            prev: None,
            row: StatsRow::default(),
        }
    }

    fn update(&mut self, r: Reading) {
        match r {
            Reading::Invalid => {
                self.prev = None;
                self.row = StatsRow {
                    invalid: true,
                    ..StatsRow::default()
                };
            }
            Reading::Stopped { name } => {
                self.name = name;
                self.prev = None;
                self.row = StatsRow::default();
            }
            Reading::Running { name, sample } => {
                self.name = name;
                let cpu = self.prev.map(|p| cpu_percent(&p, &sample)).unwrap_or(0.0);
                self.row = StatsRow {
                    cpu,
                    mem: sample.mem_used,
                    limit: sample.mem_limit,
                    net: (sample.net_rx, sample.net_tx),
                    blk: (sample.blk_read, sample.blk_write),
                    pids: sample.pids,
                    invalid: false,
                };
                self.prev = Some(sample);
            }
        }
    }

    /// The fields of docker-cli's stats formatter (keys sorted, as its
    /// `{{json .}}` prints them).
    fn json(&self, trunc: bool) -> Value {
        let r = &self.row;
        let pct = |v: f64| format!("{v:.2}%");
        let dash = |s: String| if r.invalid { "--".to_string() } else { s };
        let mem_pct = if r.limit > 0 {
            r.mem as f64 / r.limit as f64 * 100.0
        } else {
            0.0
        };
        let id = if trunc {
            barge_engine::ids::short(&self.id)
        } else {
            self.id.as_str()
        };
        let mem_usage = if r.invalid {
            "-- / --".to_string()
        } else {
            format!(
                "{} / {}",
                bytes_size(r.mem as f64),
                bytes_size(r.limit as f64)
            )
        };
        let name = if self.name.is_empty() {
            "--"
        } else {
            self.name.as_str()
        };
        json!({
            "BlockIO": dash(format!("{} / {}", human::size(r.blk.0), human::size(r.blk.1))),
            "CPUPerc": dash(pct(r.cpu)),
            "Container": self.container,
            "ID": id,
            "MemPerc": dash(pct(mem_pct)),
            "MemUsage": mem_usage,
            "Name": name,
            "NetIO": dash(format!("{} / {}", human::size(r.net.0), human::size(r.net.1))),
            "PIDs": dash(r.pids.to_string()),
        })
    }
}

/// Adds new containers and drops gone ones when watching all of them (the
/// CLI's reaction to `start`/`die` events), then reads every container once.
fn sample_round(engine: &Engine, watched: &mut Vec<Watched>, every: bool, all: bool, mem: u64) {
    if every {
        let list: Vec<Container> = engine
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| all || is_running(c))
            .collect();
        watched.retain(|w| list.iter().any(|c| c.record.id == w.id));
        for c in &list {
            if !watched.iter().any(|w| w.id == c.record.id) {
                let short = barge_engine::ids::short(&c.record.id).to_string();
                watched.push(Watched::new(short, c.record.id.clone()));
            }
        }
    }
    let readings: Vec<Reading> = std::thread::scope(|s| {
        let handles: Vec<_> = watched
            .iter()
            .map(|w| {
                let id = w.id.as_str();
                s.spawn(move || read_one(engine, id, mem))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Reading::Invalid))
            .collect()
    });
    for (w, r) in watched.iter_mut().zip(readings) {
        w.update(r);
    }
}

pub fn stats(root: &Path, a: &StatsArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let fmt = match a.format.as_deref() {
        None | Some("table") => STATS_TABLE,
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    let tmpl = Template::parse(fmt)?;
    let every = a.containers.is_empty();
    let mut watched: Vec<Watched> = Vec::new();
    let mut code = 0;
    for name in &a.containers {
        match engine.resolve(name) {
            Ok(id) => {
                if !watched.iter().any(|w| &w.container == name) {
                    watched.push(Watched::new(name.clone(), id));
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    if code != 0 {
        return Ok(code);
    }
    let mem = machine_memory();
    let tty = std::io::stdout().is_terminal();
    // CPU % needs two readings: the first frame comes a second after the
    // first reading, as the daemon's first frame does.
    sample_round(&engine, &mut watched, every, a.all, mem);
    let mut first_frame = true;
    let mut tick = Instant::now();
    loop {
        if watched.iter().any(|w| w.prev.is_some()) || !a.no_stream {
            tick += Duration::from_secs(1);
            std::thread::sleep(tick.saturating_duration_since(Instant::now()));
            sample_round(&engine, &mut watched, every, a.all, mem);
        }
        let rows: Vec<Value> = watched.iter().map(|w| w.json(!a.no_trunc)).collect();
        if a.no_stream && rows.is_empty() {
            return Ok(0);
        }
        let table = print_rows(&tmpl, &rows, &stats_title)?;
        let frame = if tty && !a.no_stream {
            // Redraw in place: home, each line then erase-to-end-of-line,
            // then erase what an earlier, longer table left below.
            let mut f = String::from(if first_frame {
                "\x1b[2J\x1b[H"
            } else {
                "\x1b[H"
            });
            for l in table.lines() {
                f.push_str(l);
                f.push_str("\x1b[K\n");
            }
            f.push_str("\x1b[J");
            f
        } else {
            table
        };
        first_frame = false;
        let mut out = std::io::stdout().lock();
        if !quiet_on_broken_pipe(out.write_all(frame.as_bytes()).and_then(|_| out.flush()))? {
            return Ok(0);
        }
        if a.no_stream || (watched.is_empty() && !every) {
            return Ok(0);
        }
    }
}

// ------------------------------------------------------------------ events

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (container=, event=, image=, label=, type=, scope=)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ('json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

const EVENT_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// The repository of an image reference without its tag (Docker's
/// `stripTag`): `busybox:latest` → `busybox`.
fn strip_tag(image: &str) -> String {
    match barge_image::store::parse_reference(image) {
        Ok(mut r) if r.digest.is_none() => {
            r.tag = None;
            r.familiar()
        }
        _ => image.to_string(),
    }
}

/// Docker's event filter (`daemon/events/filter.go`). `labels` are the
/// container's labels (the log's attributes may not carry them).
fn event_matches(f: &Filters, ev: &Event, labels: &BTreeMap<String, String>) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    let by_name = |key: &str| f.fuzzy(key, &ev.actor.id) || f.fuzzy(key, attr("name"));
    let fuzzy_event = f
        .values("event")
        .iter()
        .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"));
    let event_ok = if fuzzy_event {
        f.fuzzy("event", &ev.action)
    } else {
        f.exact("event", &ev.action)
    };
    let image_attr = if ev.kind == "image" { "name" } else { "image" };
    let image_ok = f.exact("image", &ev.actor.id)
        || f.exact("image", attr(image_attr))
        || f.exact("image", &strip_tag(&ev.actor.id))
        || f.exact("image", &strip_tag(attr(image_attr)));
    let mut all_labels = labels.clone();
    all_labels.extend(ev.actor.attributes.clone());
    event_ok
        && f.exact("type", &ev.kind)
        && (!f.has("scope") || f.exact("scope", &ev.scope))
        && [
            "container",
            "daemon",
            "plugin",
            "volume",
            "network",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| by_name(k))
        && image_ok
        && f.kv_list("label", &all_labels)
}

/// Docker's default event line: `<time> container start <id> (k=v, ...)`.
fn event_text(ev: &Event) -> String {
    let t = if ev.time_nano != 0 {
        ev.time_nano
    } else {
        ev.time * 1_000_000_000
    };
    let mut s = format!(
        "{} {} {} {}",
        rfc3339_nanos(t),
        ev.kind,
        ev.action,
        ev.actor.id
    );
    if !ev.actor.attributes.is_empty() {
        let attrs: Vec<String> = ev
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

/// An event as a template sees it: Docker's JSON keys plus the Go field
/// names of `events.Message` (`.Status`, `.ID`, `.From`, `.Time`...).
/// `attr_keys` the template reads that the event lacks are null, which
/// prints `<no value>` as Go prints a missing map key.
fn event_row(ev: &Event, attr_keys: &[String]) -> Value {
    let mut row = serde_json::to_value(ev).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut row {
        m.insert("Status".into(), json!(ev.status));
        m.insert("ID".into(), json!(ev.id));
        m.insert("From".into(), json!(ev.from));
        m.insert("Scope".into(), json!(ev.scope));
        m.insert("Time".into(), json!(ev.time));
        m.insert("TimeNano".into(), json!(ev.time_nano));
        if let Some(Value::Object(attrs)) = m.get_mut("Actor").and_then(|a| a.get_mut("Attributes"))
        {
            for k in attr_keys {
                attrs.entry(k.clone()).or_insert(Value::Null);
            }
        }
    }
    row
}

/// The `.Actor.Attributes.<key>` keys a template reads.
fn attribute_keys(format: &str) -> Vec<String> {
    format
        .split("Attributes.")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|k| !k.is_empty())
        .collect()
}

enum EventFormat {
    Text,
    Json,
    Template(Template, Vec<String>),
}

impl EventFormat {
    /// Docker's `--format` for events: '' (its text line), 'json', or a
    /// template, checked on an empty event before any is read.
    fn parse(format: Option<&str>) -> Result<EventFormat, String> {
        let f = match format {
            None | Some("") => return Ok(EventFormat::Text),
            Some(f) if f == "json" || f.replace(' ', "") == "{{json.}}" => {
                return Ok(EventFormat::Json)
            }
            Some(f) => f,
        };
        let t = Template::parse(f).map_err(|e| e.to_string())?;
        let fmt = EventFormat::Template(t, attribute_keys(f));
        let empty = Event {
            status: String::new(),
            id: String::new(),
            from: String::new(),
            kind: String::new(),
            action: String::new(),
            actor: engine_events::Actor::default(),
            scope: String::new(),
            time: 0,
            time_nano: 0,
        };
        fmt.render(&empty).map_err(|e| e.to_string())?;
        Ok(fmt)
    }

    fn render(&self, ev: &Event) -> Result<String> {
        Ok(match self {
            EventFormat::Text => event_text(ev),
            EventFormat::Json => serde_json::to_string(ev)?,
            EventFormat::Template(t, keys) => t.render(&event_row(ev, keys))?,
        })
    }
}

/// A container's labels, remembered so that events after its removal
/// still match `label=` filters.
struct LabelCache<'a> {
    engine: &'a Engine,
    known: HashMap<String, BTreeMap<String, String>>,
}

impl LabelCache<'_> {
    fn get(&mut self, id: &str) -> BTreeMap<String, String> {
        if let Some(l) = self.known.get(id) {
            return l.clone();
        }
        let labels = self
            .engine
            .record(id)
            .map(|r| r.config.labels)
            .unwrap_or_default();
        if !labels.is_empty() {
            self.known.insert(id.to_string(), labels.clone());
        }
        labels
    }
}

pub fn events(root: &Path, a: &EventsArgs) -> Result<i32> {
    let now = now_nanos();
    let since = a
        .since
        .as_deref()
        .map(|s| parse_timestamp(s, now))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|s| parse_timestamp(s, now))
        .transpose()?;
    let filters = Filters::parse(&a.filter, EVENT_FILTERS)?;
    let format = match EventFormat::parse(a.format.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error parsing format: {e}");
            return Ok(64);
        }
    };
    let engine = Engine::open(root)?;
    let mut labels = LabelCache {
        engine: &engine,
        known: HashMap::new(),
    };
    let log = engine_events::log_path(root);
    // Without --since or --until only new events (Docker's semantics).
    let mut offset = if since.is_some() || until.is_some() {
        0
    } else {
        std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0)
    };
    let mut last_shown = i64::MIN;
    loop {
        let done = until.is_some_and(|u| now_nanos() > u);
        // The log is cut to its newer half when it grows large: start over
        // and skip what was shown already.
        let cut = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < offset;
        let (evs, next) = engine_events::read_from(root, offset);
        offset = next;
        let mut out = std::io::stdout().lock();
        for ev in evs {
            if (cut && ev.time_nano <= last_shown)
                || since.is_some_and(|s| ev.time_nano < s)
                || until.is_some_and(|u| ev.time_nano > u)
            {
                continue;
            }
            let l = if filters.has("label") {
                labels.get(&ev.actor.id)
            } else {
                BTreeMap::new()
            };
            if !event_matches(&filters, &ev, &l) {
                continue;
            }
            let line = format.render(&ev)?;
            if !quiet_on_broken_pipe(writeln!(out, "{line}").and_then(|_| out.flush()))? {
                return Ok(0);
            }
            last_shown = last_shown.max(ev.time_nano);
        }
        drop(out);
        if done {
            return Ok(0);
        }
        let mut nap = Duration::from_millis(150);
        if let Some(u) = until {
            let left = u.saturating_sub(now_nanos()).max(0) as u64;
            nap = nap.min(Duration::from_nanos(left + 1_000_000));
        }
        std::thread::sleep(nap);
    }
}

// ------------------------------------------------------------------ prune

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>[=<value>]", "label!=<key>[=<value>]")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Docker's prune filters on a stopped container.
fn prune_matches(f: &Filters, c: &Container, until: Option<i64>) -> bool {
    if let Some(u) = until {
        let created = barge_engine::time::parse_rfc3339(&c.record.created)
            .map(|(s, n)| s * 1_000_000_000 + i64::from(n));
        match created {
            Some(t) if t <= u => {}
            _ => return false,
        }
    }
    let labels = &c.record.config.labels;
    f.kv_list("label", labels) && !(f.has("label!") && f.kv_list("label!", labels))
}

pub fn prune(root: &Path, a: &PruneArgs) -> Result<i32> {
    let filters = Filters::parse(&a.filter, &["until", "label", "label!"])?;
    let until = match filters.values("until") {
        [] => None,
        [one] => Some(parse_timestamp(one, now_nanos())?),
        _ => bail!("more than one until filter specified"),
    };
    let engine = Engine::open(root)?;
    if !a.force
        && !crate::images::confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for c in engine.list()? {
        if is_running(&c) || !prune_matches(&filters, &c, until) {
            continue;
        }
        let id = &c.record.id;
        let size = crate::images::dir_size(&engine.dir(id).join("upper"));
        // One that started or went away meanwhile is skipped, as the
        // daemon skips it.
        if lifecycle::remove(&engine, id, false, false).is_ok() {
            reclaimed += size;
            deleted.push(id.clone());
        }
    }
    let mut out = std::io::stdout().lock();
    if !deleted.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &deleted {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(reclaimed))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units_prints_them() {
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(64.0 * 1024.0 * 1024.0), "64MiB");
        assert_eq!(bytes_size(270_336.0), "264KiB");
        assert_eq!(bytes_size(1_572_864.0), "1.5MiB");
        assert_eq!(bytes_size(1_294_336.0), "1.234MiB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(4_263_000), "4.263MB");
        assert_eq!(human_size(12_300), "12.3kB");
        assert_eq!(human_size(999), "999B");
    }

    #[test]
    fn timestamps_durations_and_dates() {
        let now = 1_800_000_000 * 1_000_000_000;
        assert_eq!(parse_timestamp("10m", now).unwrap(), now - 600_000_000_000);
        assert_eq!(
            parse_timestamp("1h30m", now).unwrap(),
            now - 5_400_000_000_000
        );
        assert_eq!(
            parse_timestamp("1764342990.5", now).unwrap(),
            1_764_342_990_500_000_000
        );
        assert_eq!(parse_timestamp("0", now).unwrap(), 0);
        assert_eq!(
            parse_timestamp("2026-11-28T15:16:30.123456789Z", now).unwrap(),
            1_795_878_990_123_456_789
        );
        assert_eq!(
            parse_timestamp("2026-11-28T16:16:30+01:00", now).unwrap(),
            1_795_878_990_000_000_000
        );
        assert_eq!(
            parse_timestamp("2026-11-28", now).unwrap(),
            1_795_824_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("2026-11-28T15:16", now).unwrap(),
            1_795_878_960_000_000_000
        );
        assert!(parse_timestamp("yesterday", now).is_err());
        assert!(parse_timestamp("2026-13-01", now).is_err());
        assert_eq!(
            rfc3339_nanos(1_795_878_990_123_456_789),
            "2026-11-28T15:16:30.123456789Z"
        );
    }

    fn ev(action: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            status: action.into(),
            id: "abc123".into(),
            from: "busybox".into(),
            kind: "container".into(),
            action: action.into(),
            actor: barge_engine::events::Actor {
                id: "abc123".into(),
                attributes: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            scope: "local".into(),
            time: 1_795_878_990,
            time_nano: 1_795_878_990_123_456_789,
        }
    }

    #[test]
    fn event_filters_follow_docker() {
        let e = ev("die", &[("image", "busybox:latest"), ("name", "web")]);
        let none = BTreeMap::new();
        let f = |items: &[&str]| {
            Filters::parse(
                &items.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                EVENT_FILTERS,
            )
            .unwrap()
        };
        assert!(event_matches(&f(&[]), &e, &none));
        assert!(event_matches(&f(&["event=die", "event=start"]), &e, &none));
        assert!(!event_matches(&f(&["event=start"]), &e, &none));
        assert!(event_matches(&f(&["container=web"]), &e, &none));
        assert!(event_matches(&f(&["container=abc"]), &e, &none));
        assert!(!event_matches(&f(&["container=db"]), &e, &none));
        assert!(event_matches(&f(&["image=busybox"]), &e, &none));
        assert!(!event_matches(&f(&["image=alpine"]), &e, &none));
        assert!(event_matches(&f(&["type=container"]), &e, &none));
        assert!(!event_matches(&f(&["type=image"]), &e, &none));
        assert!(!event_matches(&f(&["event=die", "type=image"]), &e, &none));
        let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
        assert!(event_matches(&f(&["label=tier=web"]), &e, &labels));
        assert!(event_matches(&f(&["label=tier"]), &e, &labels));
        assert!(!event_matches(&f(&["label=tier=db"]), &e, &labels));
        let h = ev("health_status: healthy", &[]);
        assert!(event_matches(&f(&["event=health_status"]), &h, &none));
        assert!(Filters::parse(&["nope=1".into()], EVENT_FILTERS).is_err());
        assert!(Filters::parse(&["event".into()], EVENT_FILTERS).is_err());
    }

    #[test]
    fn event_text_is_dockers_line() {
        let e = ev(
            "die",
            &[("name", "web"), ("exitCode", "3"), ("image", "busybox")],
        );
        assert_eq!(
            event_text(&e),
            "2026-11-28T15:16:30.123456789Z container die abc123 (exitCode=3, image=busybox, name=web)"
        );
        let f = EventFormat::parse(Some(
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.signal}} {{.ID}}",
        ))
        .unwrap();
        assert_eq!(f.render(&e).unwrap(), "container die web <no value> abc123");
        assert!(EventFormat::parse(Some("{{.Nope}}")).is_err());
        assert!(EventFormat::parse(Some("{{.Action")).is_err());
    }

    #[test]
    fn stats_numbers_follow_docker_cli() {
        let v = json!({"type": "stats", "data": {
            "cpu": {"usage": {"total": 2_000_000_000u64, "percpu": [1, 1]}},
            "memory": {"usage": {"usage": 10_000_000u64, "limit": 67_108_864u64},
                       "raw": {"total_inactive_file": 1_000_000u64}},
            "pids": {"current": 3},
            "blkio": {"ioServiceBytesRecursive": [
                {"major": 8, "op": "Read", "value": 4096},
                {"major": 8, "op": "Write", "value": 8192},
                {"major": 8, "op": "Total", "value": 12288}]}
        }});
        let s = parse_sample(&v, (10_000_000_000, 2), 1 << 34);
        assert_eq!(s.mem_used, 9_000_000);
        assert_eq!(s.mem_limit, 67_108_864);
        assert_eq!((s.blk_read, s.blk_write), (4096, 8192));
        assert_eq!(s.pids, 3);
        // No limit: the machine's memory.
        let unlimited = json!({"data": {"memory": {"usage": {"usage": 5u64, "limit": 9_223_372_036_854_771_712u64}}}});
        assert_eq!(parse_sample(&unlimited, (0, 1), 1 << 34).mem_limit, 1 << 34);
        // Half a CPU's worth of two CPUs over one second: 50%.
        let prev = Sample {
            cpu_total: 1_000_000_000,
            system: 8_000_000_000,
            online_cpus: 2,
            ..Sample::default()
        };
        let cur = Sample {
            cpu_total: 1_500_000_000,
            system: 10_000_000_000,
            online_cpus: 2,
            ..Sample::default()
        };
        assert!((cpu_percent(&prev, &cur) - 50.0).abs() < 1e-9);
        assert_eq!(
            parse_proc_stat("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\nintr 5\n"),
            Some((10_000_000_000, 2))
        );
    }
}
