//! Control groups for containers: cgroup v1, v2 and hybrid hosts behind one
//! [`Cgroup`] trait.
//!
//! This module owns everything that touches cgroupfs for a container:
//! detecting the host layout from mountinfo ([`mountinfo`]), creating and
//! removing the container's cgroup directories, moving processes in, writing
//! `linux.resources` ([`v1`], [`v2`]), freezing, listing pids, reading stats
//! in runc's `events --stats` shape ([`stats`]) and the device controller
//! (v1 allow/deny files, v2 eBPF programs built in [`devices`] and loaded
//! through [`crate::sys::bpf`]). It does not mount cgroupfs inside the
//! container; it only says what to mount via [`Cgroup::mounts`].
//!
//! Paths: a config's `cgroupsPath` (or `/<container-id>` when absent) is taken
//! relative to each hierarchy's mount point, whether it is written absolute
//! or relative, like runc's cgroupfs driver.

pub mod devices;
pub mod mountinfo;
pub mod stats;
pub mod v1;
pub mod v2;

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

pub use mountinfo::{Layout, V1Hierarchy};
pub use stats::Stats;
pub use v1::V1Cgroup;
pub use v2::V2Cgroup;

/// Everything that can go wrong in this module. Each variant names the path
/// or resource involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("write {path}: {source} (value {value:?})")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("mkdir {path}: {source}")]
    Mkdir { path: PathBuf, source: io::Error },
    #[error("rmdir {path}: {source}")]
    Rmdir { path: PathBuf, source: io::Error },
    #[error("parse {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("parse mountinfo {path}: {msg}")]
    Mountinfo { path: PathBuf, msg: String },
    #[error("cgroup controller {controller:?} is not available (needed for {what}) in {path}")]
    ControllerMissing {
        controller: String,
        what: String,
        path: PathBuf,
    },
    #[error("{what} is not supported with cgroup {version:?}")]
    Unsupported {
        what: String,
        version: CgroupVersion,
    },
    #[error("invalid {what}: {msg}")]
    Invalid { what: String, msg: String },
    #[error("timed out after {waited:?} waiting for {path} to read {want:?}")]
    Timeout {
        path: PathBuf,
        want: String,
        waited: Duration,
    },
    #[error("bpf {op} on {path}: {source}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// Which cgroup layout the host uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    /// Only v1 hierarchies.
    V1,
    /// Only the unified (cgroup2) hierarchy.
    V2,
    /// v1 controllers plus a cgroup2 tree (usually `/sys/fs/cgroup/unified`).
    Hybrid,
}

/// One hierarchy to expose inside the container at `/sys/fs/cgroup/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// Directory name under `/sys/fs/cgroup` (`"memory"`, `"cpu,cpuacct"`,
    /// `"systemd"`, `"unified"`), or `""` for a pure v2 host.
    pub name: String,
    /// The container's cgroup directory in that hierarchy.
    pub host_path: PathBuf,
    /// That hierarchy's mount point on the host.
    pub root: PathBuf,
    /// cgroupfs mount data: `"memory"`, `"none,name=systemd"`; `""` for cgroup2.
    pub options: String,
}

/// A container's cgroup, in whatever layout the host has.
pub trait Cgroup {
    /// `mkdir -p` in each hierarchy (v2: and enables the available
    /// controllers in the ancestors' `cgroup.subtree_control`).
    fn create(&self) -> Result<()>;
    /// Moves `pid` into the cgroup in every hierarchy.
    fn add_task(&self, pid: i32) -> Result<()>;
    /// Writes the resources that are set; leaves everything else alone.
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Freezes all tasks and waits until the kernel says they are frozen.
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn is_frozen(&self) -> Result<bool>;
    /// All pids in the cgroup and its descendants.
    fn pids(&self) -> Result<Vec<i32>>;
    fn stats(&self) -> Result<Stats>;
    /// Number of OOM kills recorded for the cgroup.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Removes the cgroup directories (children first). Missing is fine.
    fn destroy(&self) -> Result<()>;
    fn mounts(&self) -> Vec<CgroupMount>;
    fn version(&self) -> CgroupVersion;
}

/// Opens (does not create) the cgroup for a container on this host.
///
/// `cgroups_path` is `linux.cgroupsPath`; `None` means `/<container_id>`.
pub fn open(cgroups_path: Option<&Path>, container_id: &str) -> Result<Box<dyn Cgroup>> {
    let layout = Layout::detect(
        Path::new("/proc/self/mountinfo"),
        Path::new("/proc/self/cgroup"),
    )?;
    open_with(&layout, cgroups_path, container_id)
}

/// Like [`open`] with an explicit layout, e.g. one parsed from a fake mountinfo
/// with [`Layout::detect`] or built with [`Layout::v2`].
pub fn open_with(
    layout: &Layout,
    cgroups_path: Option<&Path>,
    container_id: &str,
) -> Result<Box<dyn Cgroup>> {
    let rel = relative_path(cgroups_path, container_id)?;
    match layout.version {
        CgroupVersion::V2 => {
            let root = layout.unified.clone().ok_or_else(|| CgroupError::Invalid {
                what: "cgroup layout".into(),
                msg: "v2 layout without a cgroup2 mount".into(),
            })?;
            Ok(Box::new(V2Cgroup::new(root, &rel)))
        }
        CgroupVersion::V1 | CgroupVersion::Hybrid => Ok(Box::new(V1Cgroup::new(layout, &rel))),
    }
}

/// Turns `cgroupsPath` into a path relative to a hierarchy root, refusing
/// anything that could escape it.
pub fn relative_path(cgroups_path: Option<&Path>, container_id: &str) -> Result<PathBuf> {
    let owned;
    let p = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => {
            owned = PathBuf::from(container_id);
            owned.as_path()
        }
    };
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::Invalid {
                    what: "cgroupsPath".into(),
                    msg: format!("{} must not contain '..'", p.display()),
                })
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(CgroupError::Invalid {
            what: "cgroupsPath".into(),
            msg: format!("{:?} names the root cgroup", p),
        });
    }
    Ok(rel)
}

// ---------------------------------------------------------------------------
// Small file helpers shared by v1 and v2.

/// Writes `value` to an existing cgroup file (no create, like runc).
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    let res = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub(crate) fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a single number; `max` reads as `u64::MAX`.
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let s = read_string(path)?;
    parse_u64(path, s.trim())
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    if s == "max" {
        return Ok(u64::MAX);
    }
    // Some v1 files report -1 for "unlimited".
    if s == "-1" {
        return Ok(u64::MAX);
    }
    s.parse::<u64>().map_err(|e| CgroupError::Parse {
        path: path.to_path_buf(),
        msg: format!("{s:?}: {e}"),
    })
}

/// Like [`read_u64`], but a missing file reads as 0.
pub(crate) fn read_u64_opt(path: &Path) -> Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(s) => parse_u64(path, s.trim()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses `key value` lines (memory.stat, cpu.stat, memory.events...).
pub(crate) fn read_flat_keyed(path: &Path) -> Result<Vec<(String, u64)>> {
    let s = read_string(path)?;
    let mut out = Vec::new();
    for line in s.lines() {
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k.to_string(), parse_u64(path, v)?));
        }
    }
    Ok(out)
}

pub(crate) fn keyed(entries: &[(String, u64)], key: &str) -> u64 {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

fn mkdir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| CgroupError::Mkdir {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `cgroup.procs` of `dir` and every descendant.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        let s = match std::fs::read_to_string(&procs) {
            Ok(s) => s,
            // A child cgroup removed while we walk.
            Err(e) if e.kind() == io::ErrorKind::NotFound && d != dir => continue,
            Err(source) => {
                return Err(CgroupError::Read {
                    path: procs,
                    source,
                })
            }
        };
        for l in s.lines() {
            let l = l.trim();
            if l.is_empty() {
                continue;
            }
            let pid = l.parse::<i32>().map_err(|e| CgroupError::Parse {
                path: procs.clone(),
                msg: format!("{l:?}: {e}"),
            })?;
            if !out.contains(&pid) {
                out.push(pid);
            }
        }
        for child in subdirs(&d)? {
            stack.push(child);
        }
    }
    Ok(out)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// Removes `dir` and its child cgroups, deepest first. cgroupfs refuses
/// `rmdir` with EBUSY while tasks are exiting, so retry for a little while.
pub(crate) fn remove_cgroup_dir(dir: &Path) -> Result<()> {
    for child in subdirs(dir)? {
        remove_cgroup_dir(&child)?;
    }
    let mut delay = Duration::from_millis(10);
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < 8 => {
                attempts += 1;
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Polls `check` until it returns true, up to `timeout`.
pub(crate) fn wait_for(
    path: &Path,
    want: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(CgroupError::Timeout {
                path: path.to_path_buf(),
                want: want.to_string(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Value conversions (runc's formulas).

/// cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000); 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000); 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = weight.clamp(10, 1000);
    1 + ((w - 10) * 9999) / 990
}

/// v1 `memory.memsw.limit_in_bytes` semantics to v2 `memory.swap.max`
/// (runc's `ConvertMemorySwapToCgroupV2Value`). Returns `None` for "leave
/// unset", `Some(-1)` for "max".
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<Option<i64>> {
    let bad = |msg: &str| CgroupError::Invalid {
        what: "memory.swap".into(),
        msg: msg.into(),
    };
    if memory == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if memory == 0 || memory == -1 {
        return Err(bad("unable to set swap limit without memory limit"));
    }
    if memory < 0 {
        return Err(bad(&format!("invalid memory value {memory}")));
    }
    if swap < memory {
        return Err(bad("memory+swap limit should be >= memory limit"));
    }
    Ok(Some(swap - memory))
}

/// Formats a v1 limit: -1 stays -1, other values as is.
fn limit_str(v: i64) -> String {
    v.to_string()
}

/// Formats a v2 limit: negative is "max".
fn max_str(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Normalises a hugepage size as written in configs ("2MB", "1GB", "64KB")
/// after checking it is sane for a file name.
fn hugepage_size(size: &str) -> Result<&str> {
    let ok = !size.is_empty()
        && size.len() <= 16
        && size.bytes().all(|b| b.is_ascii_alphanumeric())
        && size
            .bytes()
            .next()
            .map(|b| b.is_ascii_digit())
            .unwrap_or(false);
    if ok {
        Ok(size)
    } else {
        Err(CgroupError::Invalid {
            what: "hugepageLimits.pageSize".into(),
            msg: format!("{size:?}"),
        })
    }
}

#[cfg(test)]
mod tests;
