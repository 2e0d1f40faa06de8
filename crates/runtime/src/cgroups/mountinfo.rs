//! Detection of the cgroup layout (v1, v2 or hybrid) from `/proc/self/mountinfo`
//! and `/proc/self/cgroup`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CgroupError, CgroupVersion, Result};

/// Controllers the v1 code knows how to drive (plus any `name=` hierarchy).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// One mounted v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub mount_point: PathBuf,
    /// The mount's root inside the hierarchy (4th mountinfo field), usually `/`.
    pub root: String,
    /// Controllers bound to it; a named hierarchy appears as `name=systemd`.
    pub controllers: Vec<String>,
}

impl V1Hierarchy {
    /// Directory name used for it under `/sys/fs/cgroup` (base name of the mount point).
    pub fn dir_name(&self) -> String {
        self.mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Mount options to recreate it, e.g. `memory`, `cpu,cpuacct` or `none,name=systemd`.
    pub fn options(&self) -> String {
        let joined = self.controllers.join(",");
        if self.controllers.iter().all(|c| c.starts_with("name=")) {
            format!("none,{joined}")
        } else {
            joined
        }
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup hierarchies visible to this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub version: CgroupVersion,
    /// v1 hierarchies (empty on pure v2).
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount point (the whole tree on v2, `/sys/fs/cgroup/unified` on hybrid).
    pub unified: Option<PathBuf>,
    /// This process's own cgroup per hierarchy, from `/proc/self/cgroup`:
    /// key is the controller list (`""` for v2, `"cpu,cpuacct"`, `"name=systemd"`).
    pub own_cgroups: BTreeMap<String, String>,
}

impl Layout {
    /// Reads and parses the two proc files. A missing cgroup file is tolerated.
    pub fn detect(mountinfo: &Path, proc_cgroup: &Path) -> Result<Layout> {
        let mi = std::fs::read_to_string(mountinfo).map_err(|source| CgroupError::Read {
            path: mountinfo.to_path_buf(),
            source,
        })?;
        let pc = std::fs::read_to_string(proc_cgroup).unwrap_or_default();
        Layout::parse(&mi, &pc).map_err(|e| match e {
            CgroupError::Mountinfo { msg, .. } => CgroupError::Mountinfo {
                path: mountinfo.to_path_buf(),
                msg,
            },
            other => other,
        })
    }

    /// Parses mountinfo and `/proc/self/cgroup` text.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Layout> {
        let mut v1: Vec<V1Hierarchy> = Vec::new();
        let mut v2_mounts: Vec<PathBuf> = Vec::new();
        for (lineno, line) in mountinfo.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |msg: &str| CgroupError::Mountinfo {
                path: PathBuf::from("mountinfo"),
                msg: format!("line {}: {msg}: {line:?}", lineno + 1),
            };
            let (pre, post) = line
                .split_once(" - ")
                .ok_or_else(|| bad("no ' - ' separator"))?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 6 || post.is_empty() {
                return Err(bad("too few fields"));
            }
            let root = unescape(pre[3]);
            let mount_point = PathBuf::from(unescape(pre[4]));
            match post[0] {
                "cgroup2" if !v2_mounts.contains(&mount_point) => v2_mounts.push(mount_point),
                "cgroup" => {
                    let super_opts = post.get(2).copied().unwrap_or("");
                    let controllers: Vec<String> = super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    // A hierarchy can be bind-mounted several times; keep the first.
                    if v1.iter().any(|h| h.controllers == controllers) {
                        continue;
                    }
                    v1.push(V1Hierarchy {
                        mount_point,
                        root,
                        controllers,
                    });
                }
                _ => {}
            }
        }

        let mut own_cgroups = BTreeMap::new();
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            if let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            {
                own_cgroups.insert(ctrls.to_string(), path.to_string());
            }
        }

        // Prefer the conventional location when several cgroup2 mounts exist.
        let unified = v2_mounts
            .iter()
            .find(|p| {
                p.as_path() == Path::new("/sys/fs/cgroup")
                    || p.as_path() == Path::new("/sys/fs/cgroup/unified")
            })
            .or_else(|| v2_mounts.first())
            .cloned();

        let real_v1 = v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        let version = match (real_v1, unified.is_some()) {
            (true, true) => CgroupVersion::Hybrid,
            (true, false) => CgroupVersion::V1,
            (false, true) => CgroupVersion::V2,
            (false, false) => {
                return Err(CgroupError::Mountinfo {
                    path: PathBuf::from("mountinfo"),
                    msg: "no cgroup or cgroup2 mount found".into(),
                })
            }
        };
        if version == CgroupVersion::V2 {
            v1.clear();
        }
        Ok(Layout {
            version,
            v1,
            unified,
            own_cgroups,
        })
    }

    /// A pure v2 layout rooted at `root` (for tests and explicit setups).
    pub fn v2(root: impl Into<PathBuf>) -> Layout {
        Layout {
            version: CgroupVersion::V2,
            v1: Vec::new(),
            unified: Some(root.into()),
            own_cgroups: BTreeMap::new(),
        }
    }

    /// The v1 hierarchy carrying `controller`.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

/// Undoes mountinfo's octal escaping (`\040` for space etc.).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn hybrid() {
        let l = Layout::parse(HYBRID, "4:memory:/a\n1:cpu:/\n0::/x\n").unwrap();
        assert_eq!(l.version, CgroupVersion::Hybrid);
        assert_eq!(
            l.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(l.v1.len(), 4);
        let sd = l.v1_hierarchy("name=systemd").unwrap();
        assert_eq!(sd.options(), "none,name=systemd");
        assert_eq!(sd.dir_name(), "systemd");
        assert_eq!(l.own_cgroups.get("memory").map(String::as_str), Some("/a"));
        assert_eq!(l.own_cgroups.get("").map(String::as_str), Some("/x"));
    }

    #[test]
    fn pure_v2() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let l = Layout::parse(mi, "0::/user.slice\n").unwrap();
        assert_eq!(l.version, CgroupVersion::V2);
        assert!(l.v1.is_empty());
        assert_eq!(l.unified.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn v1_comounted() {
        let mi = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 24 0:23 / /mnt/again rw - cgroup cgroup rw,memory
28 24 0:24 /sub /sys/fs/cgroup/name\\040with\\040space rw - cgroup cgroup rw,name=foo
";
        let l = Layout::parse(mi, "").unwrap();
        assert_eq!(l.version, CgroupVersion::V1);
        assert_eq!(l.v1.len(), 3);
        let cpu = l.v1_hierarchy("cpuacct").unwrap();
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(cpu.dir_name(), "cpu,cpuacct");
        assert_eq!(cpu.options(), "cpu,cpuacct");
        let named = l.v1_hierarchy("name=foo").unwrap();
        assert_eq!(
            named.mount_point,
            PathBuf::from("/sys/fs/cgroup/name with space")
        );
        assert_eq!(named.root, "/sub");
        assert_eq!(
            l.v1_hierarchy("memory").unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn no_cgroups_is_error() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n";
        assert!(Layout::parse(mi, "").is_err());
        assert!(Layout::parse("garbage line\n", "").is_err());
    }
}
