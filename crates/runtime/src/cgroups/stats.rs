//! Resource usage statistics in the JSON shape of runc's `events --stats`
//! (`types.Stats`), and the parsers that fill it from v1 and v2 files.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{keyed, read_flat_keyed, read_string, read_u64_opt, CgroupError, Result};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Units: nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// USER_HZ is 100 on every Linux architecture we run on.
const NANOS_PER_TICK: u64 = 1_000_000_000 / 100;

fn numbers(path: &Path) -> Result<Vec<u64>> {
    let s = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    s.split_whitespace()
        .map(|t| super::parse_u64(path, t))
        .collect()
}

fn exists(p: &Path) -> bool {
    p.exists()
}

/// Hugepage sizes for which `dir` has a `hugetlb.<size>.<suffix>` file.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("hugetlb.") {
                if let Some(size) = rest.strip_suffix(suffix) {
                    if !size.contains('.') {
                        out.push(size.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------- v1

/// cpu (`cpu.stat`) and cpuacct files; either dir may be absent.
pub(crate) fn v1_cpu(cpu: Option<&Path>, cpuacct: Option<&Path>, out: &mut Cpu) -> Result<()> {
    if let Some(d) = cpuacct {
        out.usage.total = read_u64_opt(&d.join("cpuacct.usage"))?;
        out.usage.percpu = numbers(&d.join("cpuacct.usage_percpu"))?;
        out.usage.percpu_kernel = numbers(&d.join("cpuacct.usage_percpu_sys"))?;
        out.usage.percpu_user = numbers(&d.join("cpuacct.usage_percpu_user"))?;
        let stat = d.join("cpuacct.stat");
        if exists(&stat) {
            let kv = read_flat_keyed(&stat)?;
            out.usage.user = keyed(&kv, "user") * NANOS_PER_TICK;
            out.usage.kernel = keyed(&kv, "system") * NANOS_PER_TICK;
        }
    }
    if let Some(d) = cpu {
        let stat = d.join("cpu.stat");
        if exists(&stat) {
            let kv = read_flat_keyed(&stat)?;
            out.throttling.periods = keyed(&kv, "nr_periods");
            out.throttling.throttled_periods = keyed(&kv, "nr_throttled");
            out.throttling.throttled_time = keyed(&kv, "throttled_time");
        }
    }
    Ok(())
}

fn v1_mem_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let f = |s: &str| read_u64_opt(&dir.join(format!("{prefix}.{s}")));
    Ok(MemoryEntry {
        limit: f("limit_in_bytes")?,
        usage: f("usage_in_bytes")?,
        max: f("max_usage_in_bytes")?,
        failcnt: f("failcnt")?,
    })
}

pub(crate) fn v1_memory(dir: &Path, out: &mut Memory) -> Result<()> {
    let stat = dir.join("memory.stat");
    if exists(&stat) {
        let kv = read_flat_keyed(&stat)?;
        out.cache = match kv.iter().find(|(k, _)| k == "total_cache") {
            Some((_, v)) => *v,
            None => keyed(&kv, "cache"),
        };
        out.raw = kv.into_iter().collect();
    }
    out.usage = v1_mem_entry(dir, "memory")?;
    out.swap = v1_mem_entry(dir, "memory.memsw")?;
    out.kernel = v1_mem_entry(dir, "memory.kmem")?;
    out.kernel_tcp = v1_mem_entry(dir, "memory.kmem.tcp")?;
    Ok(())
}

pub(crate) fn pids_from(dir: &Path, out: &mut Pids) -> Result<()> {
    out.current = read_u64_opt(&dir.join("pids.current"))?;
    let max = read_u64_opt(&dir.join("pids.max"))?;
    out.limit = if max == u64::MAX { 0 } else { max };
    Ok(())
}

/// Parses v1 blkio lines `MAJ:MIN Op value` (a trailing `Total N` is skipped).
fn v1_blkio_file(path: &Path) -> Result<Vec<BlkioEntry>> {
    let s = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Some((maj, min)) = parse_devnum(f[0]) else {
            continue;
        };
        out.push(BlkioEntry {
            major: maj,
            minor: min,
            op: f[1].to_string(),
            value: super::parse_u64(path, f[2])?,
        });
    }
    Ok(out)
}

fn parse_devnum(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub(crate) fn v1_blkio(dir: &Path, out: &mut Blkio) -> Result<()> {
    // CFQ/BFQ files first (more complete), throttle files as the fallback.
    for (bytes, ios) in [
        (
            "blkio.io_service_bytes_recursive",
            "blkio.io_serviced_recursive",
        ),
        (
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.bfq.io_serviced_recursive",
        ),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        ),
    ] {
        let b = v1_blkio_file(&dir.join(bytes))?;
        let i = v1_blkio_file(&dir.join(ios))?;
        if !b.is_empty() || !i.is_empty() {
            out.io_service_bytes_recursive = b;
            out.io_serviced_recursive = i;
            break;
        }
    }
    Ok(())
}

pub(crate) fn v1_hugetlb(dir: &Path, out: &mut BTreeMap<String, Hugetlb>) -> Result<()> {
    for size in hugetlb_sizes(dir, ".limit_in_bytes") {
        let f = |s: &str| read_u64_opt(&dir.join(format!("hugetlb.{size}.{s}")));
        out.insert(
            size.clone(),
            Hugetlb {
                usage: f("usage_in_bytes")?,
                max: f("max_usage_in_bytes")?,
                failcnt: f("failcnt")?,
            },
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- v2

pub(crate) fn v2_cpu(dir: &Path, out: &mut Cpu) -> Result<()> {
    let stat = dir.join("cpu.stat");
    if !exists(&stat) {
        return Ok(());
    }
    let kv = read_flat_keyed(&stat)?;
    out.usage.total = keyed(&kv, "usage_usec") * 1000;
    out.usage.user = keyed(&kv, "user_usec") * 1000;
    out.usage.kernel = keyed(&kv, "system_usec") * 1000;
    out.throttling.periods = keyed(&kv, "nr_periods");
    out.throttling.throttled_periods = keyed(&kv, "nr_throttled");
    out.throttling.throttled_time = keyed(&kv, "throttled_usec") * 1000;
    Ok(())
}

pub(crate) fn v2_memory(dir: &Path, out: &mut Memory) -> Result<()> {
    let stat = dir.join("memory.stat");
    if exists(&stat) {
        let kv = read_flat_keyed(&stat)?;
        out.cache = keyed(&kv, "file");
        out.raw = kv.into_iter().collect();
    }
    let events = dir.join("memory.events");
    let failcnt = if exists(&events) {
        keyed(&read_flat_keyed(&events)?, "max")
    } else {
        0
    };
    out.usage = MemoryEntry {
        limit: read_u64_opt(&dir.join("memory.max"))?,
        usage: read_u64_opt(&dir.join("memory.current"))?,
        max: read_u64_opt(&dir.join("memory.peak"))?,
        failcnt,
    };
    out.swap = MemoryEntry {
        limit: read_u64_opt(&dir.join("memory.swap.max"))?,
        usage: read_u64_opt(&dir.join("memory.swap.current"))?,
        max: read_u64_opt(&dir.join("memory.swap.peak"))?,
        failcnt: 0,
    };
    Ok(())
}

/// Parses `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`.
pub(crate) fn v2_io(dir: &Path, out: &mut Blkio) -> Result<()> {
    let path = dir.join("io.stat");
    if !exists(&path) {
        return Ok(());
    }
    let s = read_string(&path)?;
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(parse_devnum) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = super::parse_u64(&path, v)?;
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(())
}

pub(crate) fn v2_hugetlb(dir: &Path, out: &mut BTreeMap<String, Hugetlb>) -> Result<()> {
    for size in hugetlb_sizes(dir, ".max") {
        let events = dir.join(format!("hugetlb.{size}.events"));
        let failcnt = if exists(&events) {
            keyed(&read_flat_keyed(&events)?, "max")
        } else {
            0
        };
        // v2 has no max-usage file for hugetlb (`.max` is the limit).
        out.insert(
            size.clone(),
            Hugetlb {
                usage: read_u64_opt(&dir.join(format!("hugetlb.{size}.current")))?,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}
