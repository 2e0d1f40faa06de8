//! cgroup v1: one directory per mounted hierarchy. On a hybrid host it also
//! drives the container's directory in the cgroup2 tree (for controllers,
//! such as `hugetlb`, that only exist there, and for `unified` keys).

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::{
    devices, limit_str, read_string, read_u64, stats, write_file, Cgroup, CgroupError, CgroupMount,
    CgroupVersion, Layout, Result, Stats, V1Hierarchy, V2Cgroup,
};

const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Hier {
    info: V1Hierarchy,
    /// The container's directory in this hierarchy.
    path: PathBuf,
}

/// A container's cgroup on a v1 or hybrid host.
#[derive(Clone, Debug)]
pub struct V1Cgroup {
    hiers: Vec<Hier>,
    unified: Option<V2Cgroup>,
}

impl V1Cgroup {
    /// `rel` is relative to each hierarchy's mount point.
    pub fn new(layout: &Layout, rel: &Path) -> Self {
        let hiers = layout
            .v1
            .iter()
            .map(|h| Hier {
                info: h.clone(),
                path: h.mount_point.join(rel),
            })
            .collect();
        let unified = match layout.version {
            CgroupVersion::Hybrid => layout.unified.clone().map(|root| V2Cgroup::new(root, rel)),
            _ => None,
        };
        V1Cgroup { hiers, unified }
    }

    /// The container's directory in the hierarchy carrying `controller`.
    pub fn path(&self, controller: &str) -> Option<&Path> {
        self.hiers
            .iter()
            .find(|h| h.info.has(controller))
            .map(|h| h.path.as_path())
    }

    /// The unified-tree part on a hybrid host.
    pub fn unified(&self) -> Option<&V2Cgroup> {
        self.unified.as_ref()
    }

    fn need(&self, controller: &str, what: &str) -> Result<&Path> {
        self.path(controller)
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller: controller.to_string(),
                what: what.to_string(),
                path: PathBuf::from("/proc/self/mountinfo"),
            })
    }

    fn apply_memory(&self, res: &LinuxResources) -> Result<()> {
        let Some(mem) = res.memory() else {
            return Ok(());
        };
        let limit = mem.limit().unwrap_or(0);
        let mut swap = mem.swap().unwrap_or(0);
        let nothing = limit == 0
            && swap == 0
            && mem.reservation().is_none()
            && mem.swappiness().is_none()
            && mem.kernel_tcp().is_none()
            && mem.disable_oom_killer() != Some(true);
        if nothing {
            return Ok(());
        }
        let dir = self.need("memory", "memory limits")?;
        let limit_file = dir.join("memory.limit_in_bytes");
        let swap_file = dir.join("memory.memsw.limit_in_bytes");
        // Unlimited memory with swap unset means unlimited swap too (runc).
        if limit == -1 && swap == 0 && swap_file.exists() {
            swap = -1;
        }
        if limit != 0 && swap != 0 {
            // memsw must stay >= the memory limit after each write.
            let cur = read_u64(&limit_file)?;
            if swap == -1 || cur < swap as u64 {
                write_file(&swap_file, &limit_str(swap))?;
                write_file(&limit_file, &limit_str(limit))?;
            } else {
                write_file(&limit_file, &limit_str(limit))?;
                write_file(&swap_file, &limit_str(swap))?;
            }
        } else {
            if limit != 0 {
                write_file(&limit_file, &limit_str(limit))?;
            }
            if swap != 0 {
                write_file(&swap_file, &limit_str(swap))?;
            }
        }
        if let Some(r) = mem.reservation() {
            write_file(&dir.join("memory.soft_limit_in_bytes"), &limit_str(r))?;
        }
        if let Some(t) = mem.kernel_tcp() {
            write_file(&dir.join("memory.kmem.tcp.limit_in_bytes"), &limit_str(t))?;
        }
        if let Some(s) = mem.swappiness() {
            if s > 100 {
                return Err(CgroupError::Invalid {
                    what: "memory.swappiness".into(),
                    msg: format!("{s} is not in 0..=100"),
                });
            }
            write_file(&dir.join("memory.swappiness"), &s.to_string())?;
        }
        if mem.disable_oom_killer() == Some(true) {
            write_file(&dir.join("memory.oom_control"), "1")?;
        }
        Ok(())
    }

    fn apply_cpu(&self, res: &LinuxResources) -> Result<()> {
        let Some(cpu) = res.cpu() else {
            return Ok(());
        };
        let shares = cpu.shares().unwrap_or(0);
        let period = cpu.period().unwrap_or(0);
        let quota = cpu.quota().unwrap_or(0);
        let rt_period = cpu.realtime_period().unwrap_or(0);
        let rt_runtime = cpu.realtime_runtime().unwrap_or(0);
        let uses_cpu = shares != 0
            || period != 0
            || quota != 0
            || rt_period != 0
            || rt_runtime != 0
            || cpu.burst().is_some()
            || cpu.idle().is_some();
        if uses_cpu {
            let dir = self.need("cpu", "cpu shares/quota/period/realtime")?;
            if shares != 0 {
                write_file(&dir.join("cpu.shares"), &shares.to_string())?;
            }
            if period != 0 {
                write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
            }
            if quota != 0 {
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            if let Some(b) = cpu.burst() {
                write_file(&dir.join("cpu.cfs_burst_us"), &b.to_string())?;
            }
            if rt_period != 0 {
                write_file(&dir.join("cpu.rt_period_us"), &rt_period.to_string())?;
            }
            if rt_runtime != 0 {
                write_file(&dir.join("cpu.rt_runtime_us"), &rt_runtime.to_string())?;
            }
            if let Some(i) = cpu.idle() {
                write_file(&dir.join("cpu.idle"), &i.to_string())?;
            }
        }
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let dir = self.need("cpuset", "cpu.cpus/cpu.mems")?;
            if let Some(c) = cpus {
                write_file(&dir.join("cpuset.cpus"), c)?;
            }
            if let Some(m) = mems {
                write_file(&dir.join("cpuset.mems"), m)?;
            }
        }
        Ok(())
    }

    fn apply_pids(&self, res: &LinuxResources) -> Result<()> {
        let Some(pids) = res.pids() else {
            return Ok(());
        };
        let dir = self.need("pids", "pids.limit")?;
        let v = if pids.limit() <= 0 {
            "max".to_string()
        } else {
            pids.limit().to_string()
        };
        write_file(&dir.join("pids.max"), &v)
    }

    fn apply_blkio(&self, res: &LinuxResources) -> Result<()> {
        let Some(bio) = res.block_io() else {
            return Ok(());
        };
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                bio.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                bio.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                bio.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                bio.throttle_write_iops_device(),
            ),
        ];
        let wdev = bio.weight_device().as_deref().unwrap_or(&[]);
        let any = bio.weight().is_some_and(|w| w != 0)
            || bio.leaf_weight().is_some_and(|w| w != 0)
            || !wdev.is_empty()
            || throttles
                .iter()
                .any(|(_, t)| t.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let dir = self.need("blkio", "blockIO")?;
        // CFQ exposes blkio.weight; BFQ exposes blkio.bfq.weight.
        let (weight_file, weight_dev_file) = if dir.join("blkio.weight").exists() {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
        if let Some(w) = bio.weight().filter(|w| *w != 0) {
            write_file(&dir.join(weight_file), &w.to_string())?;
        }
        if let Some(w) = bio.leaf_weight().filter(|w| *w != 0) {
            write_file(&dir.join("blkio.leaf_weight"), &w.to_string())?;
        }
        for d in wdev {
            if let Some(w) = d.weight() {
                write_file(
                    &dir.join(weight_dev_file),
                    &format!("{}:{} {}", d.major(), d.minor(), w),
                )?;
            }
            if let Some(w) = d.leaf_weight() {
                write_file(
                    &dir.join("blkio.leaf_weight_device"),
                    &format!("{}:{} {}", d.major(), d.minor(), w),
                )?;
            }
        }
        for (file, list) in throttles {
            for d in list.as_deref().unwrap_or(&[]) {
                write_file(
                    &dir.join(file),
                    &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn apply_hugetlb(&self, res: &LinuxResources) -> Result<()> {
        let Some(limits) = res.hugepage_limits().as_ref().filter(|l| !l.is_empty()) else {
            return Ok(());
        };
        if let Some(dir) = self.path("hugetlb") {
            for l in limits {
                let size = super::hugepage_size(l.page_size())?;
                write_file(
                    &dir.join(format!("hugetlb.{size}.limit_in_bytes")),
                    &limit_str(l.limit()),
                )?;
            }
            return Ok(());
        }
        match &self.unified {
            Some(u) => {
                super::v2::enable_controllers(u.root(), u.path())?;
                u.apply_hugetlb(res)
            }
            None => Err(CgroupError::ControllerMissing {
                controller: "hugetlb".into(),
                what: "hugepageLimits".into(),
                path: PathBuf::from("/proc/self/mountinfo"),
            }),
        }
    }

    fn apply_network(&self, res: &LinuxResources) -> Result<()> {
        let Some(net) = res.network() else {
            return Ok(());
        };
        if let Some(id) = net.class_id() {
            let dir = self.need("net_cls", "network.classID")?;
            write_file(&dir.join("net_cls.classid"), &id.to_string())?;
        }
        if let Some(prios) = net.priorities().as_ref().filter(|p| !p.is_empty()) {
            let dir = self.need("net_prio", "network.priorities")?;
            for p in prios {
                write_file(
                    &dir.join("net_prio.ifpriomap"),
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        Ok(())
    }

    fn freezer(&self) -> Result<PathBuf> {
        Ok(self.need("freezer", "freeze/thaw")?.join("freezer.state"))
    }

    fn set_freezer(&self, want: &str) -> Result<()> {
        let state = self.freezer()?;
        write_file(&state, want)?;
        super::wait_for(&state, want, FREEZE_TIMEOUT, || {
            let cur = read_string(&state)?;
            if cur.trim() == want {
                return Ok(true);
            }
            // Still FREEZING: ask again (tasks may have been forking).
            write_file(&state, want)?;
            Ok(false)
        })
    }
}

/// Creates a cpuset cgroup directory level by level, copying `cpuset.cpus`
/// and `cpuset.mems` down from the parent where they are empty: a v1
/// cpuset cgroup with empty values cannot take tasks.
fn create_cpuset(mount: &Path, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(mount) else {
        return super::mkdir_all(path);
    };
    let mut parent = mount.to_path_buf();
    for c in rel.components() {
        let dir = parent.join(c);
        if !dir.exists() {
            std::fs::create_dir(&dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|source| CgroupError::Mkdir {
                    path: dir.clone(),
                    source,
                })?;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = dir.join(f);
            let cur = read_string(&mine)?;
            if cur.trim().is_empty() {
                let from_parent = read_string(&parent.join(f))?;
                let v = from_parent.trim();
                if !v.is_empty() {
                    write_file(&mine, v)?;
                }
            }
        }
        parent = dir;
    }
    Ok(())
}

impl Cgroup for V1Cgroup {
    fn create(&self) -> Result<()> {
        for h in &self.hiers {
            if h.info.has("cpuset") {
                create_cpuset(&h.info.mount_point, &h.path)?;
            } else {
                super::mkdir_all(&h.path)?;
            }
        }
        // The unified tree of a hybrid host is only joined (as runc does);
        // its controllers are enabled when a limit needs them, so an idle
        // host keeps hugetlb free to be moved to v1.
        if let Some(u) = &self.unified {
            super::mkdir_all(u.path())?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for h in &self.hiers {
            write_file(&h.path.join("cgroup.procs"), &pid)?;
        }
        if let Some(u) = &self.unified {
            write_file(&u.path().join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    fn apply(&self, res: &LinuxResources) -> Result<()> {
        self.apply_memory(res)?;
        self.apply_cpu(res)?;
        self.apply_pids(res)?;
        self.apply_blkio(res)?;
        self.apply_hugetlb(res)?;
        self.apply_network(res)?;
        if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            match &self.unified {
                Some(u) => {
                    super::v2::enable_controllers(u.root(), u.path())?;
                    u.apply_unified(res)?
                }
                None => {
                    return Err(CgroupError::Unsupported {
                        what: "linux.resources.unified".into(),
                        version: CgroupVersion::V1,
                    })
                }
            }
        }
        if let Some(rules) = res.devices() {
            let dir = self.need("devices", "linux.resources.devices")?;
            devices::apply_v1(dir, &devices::ruleset(rules)?)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        self.set_freezer("FROZEN")
    }

    fn thaw(&self) -> Result<()> {
        self.set_freezer("THAWED")
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(read_string(&self.freezer()?)?.trim() == "FROZEN")
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let dir = ["freezer", "pids", "memory", "cpu"]
            .iter()
            .find_map(|c| self.path(c))
            .or_else(|| self.hiers.first().map(|h| h.path.as_path()));
        match dir {
            Some(d) => super::procs_recursive(d),
            None => match &self.unified {
                Some(u) => u.pids(),
                None => Ok(Vec::new()),
            },
        }
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        stats::v1_cpu(self.path("cpu"), self.path("cpuacct"), &mut s.cpu)?;
        if let Some(d) = self.path("memory") {
            stats::v1_memory(d, &mut s.memory)?;
        }
        if let Some(d) = self.path("pids") {
            stats::pids_from(d, &mut s.pids)?;
        }
        if let Some(d) = self.path("blkio") {
            stats::v1_blkio(d, &mut s.blkio)?;
        }
        if let Some(d) = self.path("hugetlb") {
            stats::v1_hugetlb(d, &mut s.hugetlb)?;
        } else if let Some(u) = &self.unified {
            stats::v2_hugetlb(u.path(), &mut s.hugetlb)?;
        }
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let dir = self.need("memory", "oom kill count")?;
        let kv = super::read_flat_keyed(&dir.join("memory.oom_control"))?;
        Ok(super::keyed(&kv, "oom_kill"))
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        let paths = self
            .hiers
            .iter()
            .map(|h| h.path.as_path())
            .chain(self.unified.as_ref().map(|u| u.path()));
        for p in paths {
            if let Err(e) = super::remove_cgroup_dir(p) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        let mut out: Vec<CgroupMount> = self
            .hiers
            .iter()
            .map(|h| CgroupMount {
                name: h.info.dir_name(),
                host_path: h.path.clone(),
                root: h.info.mount_point.clone(),
                options: h.info.options(),
            })
            .collect();
        if let Some(u) = &self.unified {
            out.push(CgroupMount {
                name: u
                    .root()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "unified".into()),
                host_path: u.path().to_path_buf(),
                root: u.root().to_path_buf(),
                options: String::new(),
            });
        }
        out
    }

    fn version(&self) -> CgroupVersion {
        if self.unified.is_some() {
            CgroupVersion::Hybrid
        } else {
            CgroupVersion::V1
        }
    }
}
