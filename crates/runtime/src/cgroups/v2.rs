//! cgroup v2 (unified hierarchy): one directory per container.
//!
//! Also used for the unified part of a hybrid host (see [`super::v1`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::{
    devices, keyed, max_str, read_flat_keyed, read_string, stats, write_file, Cgroup, CgroupError,
    CgroupMount, CgroupVersion, Result, Stats,
};

const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// A container's cgroup in a cgroup2 tree.
#[derive(Clone, Debug)]
pub struct V2Cgroup {
    root: PathBuf,
    path: PathBuf,
}

impl V2Cgroup {
    /// `rel` is relative to the cgroup2 mount point `root`.
    pub fn new(root: PathBuf, rel: &Path) -> Self {
        let path = root.join(rel);
        V2Cgroup { root, path }
    }

    /// The container's cgroup directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Controllers usable in the container's cgroup (its `cgroup.controllers`).
    pub fn controllers(&self) -> Result<Vec<String>> {
        let s = read_string(&self.file("cgroup.controllers"))?;
        Ok(s.split_whitespace().map(str::to_string).collect())
    }

    fn require(&self, controller: &str, what: &str, available: &[String]) -> Result<()> {
        if available.iter().any(|c| c == controller) {
            Ok(())
        } else {
            Err(CgroupError::ControllerMissing {
                controller: controller.to_string(),
                what: what.to_string(),
                path: self.file("cgroup.controllers"),
            })
        }
    }

    /// Writes `hugetlb.<size>.max` for each limit (used directly by hybrid).
    pub(crate) fn apply_hugetlb(&self, res: &LinuxResources) -> Result<()> {
        let Some(limits) = res.hugepage_limits() else {
            return Ok(());
        };
        if limits.is_empty() {
            return Ok(());
        }
        let avail = self.controllers()?;
        self.require("hugetlb", "hugepageLimits", &avail)?;
        for l in limits {
            let size = super::hugepage_size(l.page_size())?;
            write_file(
                &self.file(&format!("hugetlb.{size}.max")),
                &max_str(l.limit()),
            )?;
        }
        Ok(())
    }

    /// Writes `linux.resources.unified` key/values.
    pub(crate) fn apply_unified(&self, res: &LinuxResources) -> Result<()> {
        let Some(unified) = res.unified() else {
            return Ok(());
        };
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        let mut avail: Option<Vec<String>> = None;
        for k in keys {
            let v = &unified[k];
            if k.is_empty() || k.contains('/') || k.contains("..") || k.starts_with('.') {
                return Err(CgroupError::Invalid {
                    what: "linux.resources.unified key".into(),
                    msg: format!("{k:?} is not a cgroup file name"),
                });
            }
            let path = self.file(k);
            if !path.exists() {
                let controller = k.split('.').next().unwrap_or(k);
                if controller != "cgroup" {
                    if avail.is_none() {
                        avail = Some(self.controllers()?);
                    }
                    self.require(
                        controller,
                        &format!("unified {k}"),
                        avail.as_deref().unwrap_or(&[]),
                    )?;
                }
            }
            write_file(&path, v)?;
        }
        Ok(())
    }

    /// Installs the eBPF device filter.
    pub(crate) fn apply_devices(&self, res: &LinuxResources) -> Result<()> {
        let Some(rules) = res.devices() else {
            return Ok(());
        };
        let set = devices::ruleset(rules)?;
        devices::apply_v2(&self.path, &set)
    }

    fn apply_memory(&self, res: &LinuxResources, avail: &[String]) -> Result<()> {
        let Some(mem) = res.memory() else {
            return Ok(());
        };
        let limit = mem.limit();
        let swap = mem.swap();
        let reservation = mem.reservation();
        if limit.is_none() && swap.is_none() && reservation.is_none() {
            return Ok(());
        }
        self.require("memory", "memory limits", avail)?;
        if let Some(sw) = swap {
            if let Some(v) = super::swap_to_v2(sw, limit.unwrap_or(0))? {
                write_file(&self.file("memory.swap.max"), &max_str(v))?;
            }
        } else if limit == Some(-1) {
            // Unlimited memory and unset swap: swap unlimited too (runc).
            let p = self.file("memory.swap.max");
            if p.exists() {
                write_file(&p, "max")?;
            }
        }
        if let Some(l) = limit {
            write_file(&self.file("memory.max"), &max_str(l))?;
        }
        if let Some(r) = reservation {
            write_file(&self.file("memory.low"), &max_str(r))?;
        }
        Ok(())
    }

    fn apply_cpu(&self, res: &LinuxResources, avail: &[String]) -> Result<()> {
        let Some(cpu) = res.cpu() else {
            return Ok(());
        };
        if cpu.realtime_runtime().is_some_and(|v| v != 0)
            || cpu.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(CgroupError::Unsupported {
                what: "cpu.realtimeRuntime/realtimePeriod".into(),
                version: CgroupVersion::V2,
            });
        }
        let shares = cpu.shares().unwrap_or(0);
        let quota = cpu.quota().unwrap_or(0);
        let period = cpu.period().unwrap_or(0);
        if shares != 0 || quota != 0 || period != 0 || cpu.burst().is_some() || cpu.idle().is_some()
        {
            self.require("cpu", "cpu shares/quota/period/burst/idle", avail)?;
        }
        if shares != 0 {
            write_file(
                &self.file("cpu.weight"),
                &super::shares_to_weight(shares).to_string(),
            )?;
        }
        if quota != 0 || period != 0 {
            let mut v = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            if period != 0 {
                v.push(' ');
                v.push_str(&period.to_string());
            }
            write_file(&self.file("cpu.max"), &v)?;
        }
        if let Some(b) = cpu.burst() {
            write_file(&self.file("cpu.max.burst"), &b.to_string())?;
        }
        if let Some(i) = cpu.idle() {
            write_file(&self.file("cpu.idle"), &i.to_string())?;
        }
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            self.require("cpuset", "cpu.cpus/cpu.mems", avail)?;
        }
        if let Some(c) = cpus {
            write_file(&self.file("cpuset.cpus"), c)?;
        }
        if let Some(m) = mems {
            write_file(&self.file("cpuset.mems"), m)?;
        }
        Ok(())
    }

    fn apply_pids(&self, res: &LinuxResources, avail: &[String]) -> Result<()> {
        let Some(pids) = res.pids() else {
            return Ok(());
        };
        self.require("pids", "pids.limit", avail)?;
        let v = if pids.limit() <= 0 {
            "max".to_string()
        } else {
            pids.limit().to_string()
        };
        write_file(&self.file("pids.max"), &v)
    }

    fn apply_io(&self, res: &LinuxResources, avail: &[String]) -> Result<()> {
        let Some(bio) = res.block_io() else {
            return Ok(());
        };
        let bfq = self.file("io.bfq.weight");
        let has_bfq = bfq.exists();
        let weight = bio.weight().unwrap_or(0);
        let wdev = bio.weight_device().as_deref().unwrap_or(&[]);
        let throttles = [
            ("rbps", bio.throttle_read_bps_device()),
            ("wbps", bio.throttle_write_bps_device()),
            ("riops", bio.throttle_read_iops_device()),
            ("wiops", bio.throttle_write_iops_device()),
        ];
        let any_throttle = throttles
            .iter()
            .any(|(_, t)| t.as_ref().is_some_and(|v| !v.is_empty()));
        if weight == 0 && wdev.iter().all(|d| d.weight().is_none()) && !any_throttle {
            return Ok(());
        }
        self.require("io", "blockIO", avail)?;
        if weight != 0 {
            // BFQ takes blkio-style weights (1..1000) directly; io.weight is 1..10000.
            if has_bfq {
                write_file(&bfq, &weight.to_string())?;
            } else {
                let w = super::blkio_weight_to_io_weight(u64::from(weight));
                write_file(&self.file("io.weight"), &w.to_string())?;
            }
        }
        for d in wdev {
            if let Some(w) = d.weight() {
                if has_bfq {
                    write_file(&bfq, &format!("{}:{} {}", d.major(), d.minor(), w))?;
                } else {
                    let w = super::blkio_weight_to_io_weight(u64::from(w));
                    write_file(
                        &self.file("io.weight"),
                        &format!("{}:{} {}", d.major(), d.minor(), w),
                    )?;
                }
            }
        }
        for line in io_max_lines(bio) {
            write_file(&self.file("io.max"), &line)?;
        }
        Ok(())
    }

    fn events_key(&self, file: &str, key: &str) -> Result<u64> {
        Ok(keyed(&read_flat_keyed(&self.file(file))?, key))
    }
}

impl Cgroup for V2Cgroup {
    fn create(&self) -> Result<()> {
        super::mkdir_all(&self.path)?;
        enable_controllers(&self.root, &self.path)
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        write_file(&self.file("cgroup.procs"), &pid.to_string())
    }

    fn apply(&self, res: &LinuxResources) -> Result<()> {
        let needs_controllers = res.memory().is_some()
            || res.cpu().is_some()
            || res.pids().is_some()
            || res.block_io().is_some();
        let avail = if needs_controllers {
            self.controllers()?
        } else {
            Vec::new()
        };
        if let Some(net) = res.network() {
            if net.class_id().is_some() || net.priorities().as_ref().is_some_and(|p| !p.is_empty())
            {
                return Err(CgroupError::Unsupported {
                    what: "network (net_cls/net_prio) resources".into(),
                    version: CgroupVersion::V2,
                });
            }
        }
        self.apply_memory(res, &avail)?;
        self.apply_cpu(res, &avail)?;
        self.apply_pids(res, &avail)?;
        self.apply_io(res, &avail)?;
        self.apply_hugetlb(res)?;
        self.apply_unified(res)?;
        self.apply_devices(res)?;
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        write_file(&self.file("cgroup.freeze"), "1")?;
        let events = self.file("cgroup.events");
        super::wait_for(&events, "frozen 1", FREEZE_TIMEOUT, || self.is_frozen())
    }

    fn thaw(&self) -> Result<()> {
        write_file(&self.file("cgroup.freeze"), "0")?;
        let events = self.file("cgroup.events");
        super::wait_for(&events, "frozen 0", FREEZE_TIMEOUT, || {
            Ok(!self.is_frozen()?)
        })
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(self.events_key("cgroup.events", "frozen")? == 1)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        super::procs_recursive(&self.path)
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        stats::v2_cpu(&self.path, &mut s.cpu)?;
        stats::v2_memory(&self.path, &mut s.memory)?;
        stats::pids_from(&self.path, &mut s.pids)?;
        stats::v2_io(&self.path, &mut s.blkio)?;
        stats::v2_hugetlb(&self.path, &mut s.hugetlb)?;
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let p = self.file("memory.events");
        if !p.exists() {
            return Err(CgroupError::ControllerMissing {
                controller: "memory".into(),
                what: "oom kill count".into(),
                path: p,
            });
        }
        self.events_key("memory.events", "oom_kill")
    }

    fn destroy(&self) -> Result<()> {
        super::remove_cgroup_dir(&self.path)
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        vec![CgroupMount {
            name: String::new(),
            host_path: self.path.clone(),
            root: self.root.clone(),
            options: String::new(),
        }]
    }

    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }
}

/// The `io.max` lines (one write each) for the throttle settings.
pub fn io_max_lines(bio: &oci_spec::runtime::LinuxBlockIo) -> Vec<String> {
    let throttles = [
        ("rbps", bio.throttle_read_bps_device()),
        ("wbps", bio.throttle_write_bps_device()),
        ("riops", bio.throttle_read_iops_device()),
        ("wiops", bio.throttle_write_iops_device()),
    ];
    let mut out = Vec::new();
    for (key, list) in throttles {
        for d in list.as_deref().unwrap_or(&[]) {
            out.push(format!("{}:{} {}={}", d.major(), d.minor(), key, d.rate()));
        }
    }
    out
}

/// Enables every controller available at each level from `root` down to the
/// parent of `path`, so they are usable in `path`. Controllers the kernel
/// refuses to enable at some level (e.g. busy with processes) are skipped;
/// writes that need them later fail with a clear "controller missing".
pub(crate) fn enable_controllers(root: &Path, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut dir = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps
        .iter()
        .take(comps.len().saturating_sub(1))
        .map(Some)
        .chain([None])
    {
        let ctrl_file = dir.join("cgroup.controllers");
        let avail = read_string(&ctrl_file)?;
        let sub = dir.join("cgroup.subtree_control");
        let enabled = read_string(&sub).unwrap_or_default();
        for ctl in avail.split_whitespace() {
            if enabled.split_whitespace().any(|e| e == ctl) {
                continue;
            }
            // Best effort: see the doc comment.
            let _ = write_file(&sub, &format!("+{ctl}"));
        }
        match c {
            Some(c) => dir.push(c),
            None => break,
        }
    }
    Ok(())
}
