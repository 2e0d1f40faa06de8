//! Tests for the cgroups module: fake hierarchies in temp dirs (no root
//! needed) and, when run as root on a host with the hierarchies, real ones.

use super::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// Creates `files` (relative path, content) under `dir`.
fn touch(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
        .trim()
        .to_string()
}

/// Writes a fake mountinfo and /proc/self/cgroup and parses them.
fn fake_layout(tmp: &Path, mountinfo: &str) -> Layout {
    let mi = tmp.join("mountinfo");
    let pc = tmp.join("cgroup");
    fs::write(&mi, mountinfo.replace("@", &tmp.display().to_string())).unwrap();
    fs::write(&pc, "0::/\n").unwrap();
    Layout::detect(&mi, &pc).unwrap()
}

const V2_MI: &str = "30 23 0:26 / @/cg2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

const V1_MI: &str = "\
25 24 0:22 / @/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / @/memory rw - cgroup cgroup rw,memory
27 24 0:24 / @/pids rw - cgroup cgroup rw,pids
28 24 0:25 / @/freezer rw - cgroup cgroup rw,freezer
29 24 0:26 / @/cpuset rw - cgroup cgroup rw,cpuset
30 24 0:27 / @/blkio rw - cgroup cgroup rw,blkio
31 24 0:28 / @/devices rw - cgroup cgroup rw,devices
32 24 0:29 / @/systemd rw - cgroup cgroup rw,xattr,name=systemd
";

const HYBRID_MI: &str = "\
32 31 0:29 / @/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / @/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / @/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / @/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / @/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn relative_paths() {
    assert_eq!(relative_path(None, "abc").unwrap(), PathBuf::from("abc"));
    assert_eq!(
        relative_path(Some(Path::new("/a/b")), "x").unwrap(),
        PathBuf::from("a/b")
    );
    assert_eq!(
        relative_path(Some(Path::new("a/./b")), "x").unwrap(),
        PathBuf::from("a/b")
    );
    assert!(relative_path(Some(Path::new("/a/../../etc")), "x").is_err());
    assert!(relative_path(Some(Path::new("/")), "x").is_err());
}

#[test]
fn conversions() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    assert_eq!(swap_to_v2(2048, 1024).unwrap(), Some(1024));
    assert_eq!(swap_to_v2(-1, 1024).unwrap(), Some(-1));
    assert_eq!(swap_to_v2(0, -1).unwrap(), Some(-1));
    assert_eq!(swap_to_v2(0, 1024).unwrap(), None);
    assert!(swap_to_v2(512, 1024).is_err());
    assert!(swap_to_v2(512, 0).is_err());
}

#[test]
fn v2_layout_and_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = fake_layout(tmp.path(), V2_MI);
    assert_eq!(layout.version, CgroupVersion::V2);
    let cg = open_with(&layout, Some(Path::new("/machine/ctr1")), "ignored").unwrap();
    assert_eq!(cg.version(), CgroupVersion::V2);
    let root = tmp.path().join("cg2");
    let dir = root.join("machine/ctr1");
    let m = cg.mounts();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].name, "");
    assert_eq!(m[0].host_path, dir);
    assert_eq!(m[0].root, root);

    // A fake tree: create() enables the controllers in the ancestors.
    touch(
        &root,
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids"),
            ("cgroup.subtree_control", ""),
            ("machine/cgroup.controllers", "cpu memory"),
            ("machine/cgroup.subtree_control", ""),
        ],
    );
    cg.create().unwrap();
    assert!(dir.is_dir());
    // A regular file keeps only the last "+ctl" write.
    assert_eq!(read(root.join("cgroup.subtree_control")), "+pids");
    assert_eq!(read(root.join("machine/cgroup.subtree_control")), "+memory");

    let files = [
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "cpu.weight",
        "cpu.max",
        "cpu.max.burst",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
        "io.max",
        "hugetlb.2MB.max",
        "memory.oom.group",
        "cgroup.procs",
    ];
    let mut t: Vec<(&str, &str)> = files.iter().map(|f| (*f, "")).collect();
    t.push(("cgroup.controllers", "cpuset cpu io memory hugetlb pids"));
    touch(&dir, &t);

    cg.apply(&res(r#"{
        "memory": {"limit": 1048576, "reservation": 524288, "swap": 3145728},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 0},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "unified": {"memory.oom.group": "1"}
    }"#))
    .unwrap();
    assert_eq!(read(dir.join("memory.max")), "1048576");
    assert_eq!(read(dir.join("memory.low")), "524288");
    assert_eq!(read(dir.join("memory.swap.max")), "2097152");
    assert_eq!(read(dir.join("cpu.weight")), "39");
    assert_eq!(read(dir.join("cpu.max")), "50000 100000");
    assert_eq!(read(dir.join("cpu.max.burst")), "1000");
    assert_eq!(read(dir.join("cpuset.cpus")), "0-1");
    assert_eq!(read(dir.join("cpuset.mems")), "0");
    assert_eq!(read(dir.join("pids.max")), "max");
    assert_eq!(
        read(dir.join("io.weight")),
        (1 + 490 * 9999 / 990).to_string()
    );
    assert_eq!(read(dir.join("io.max")), "8:0 rbps=1048576");
    assert_eq!(read(dir.join("hugetlb.2MB.max")), "4194304");
    assert_eq!(read(dir.join("memory.oom.group")), "1");

    // Only what is set is touched; unlimited values.
    cg.apply(&res(
        r#"{"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 200000}}"#,
    ))
    .unwrap();
    assert_eq!(read(dir.join("memory.max")), "max");
    assert_eq!(read(dir.join("memory.swap.max")), "max");
    assert_eq!(read(dir.join("cpu.max")), "max 200000");
    assert_eq!(read(dir.join("memory.low")), "524288");
    assert_eq!(read(dir.join("pids.max")), "max");

    // Bad unified keys, realtime and net_cls are refused on v2.
    for bad in [
        r#"{"unified": {"../x": "1"}}"#,
        r#"{"unified": {"a/b": "1"}}"#,
    ] {
        let e = cg.apply(&res(bad)).unwrap_err();
        assert!(matches!(e, CgroupError::Invalid { .. }), "{e}");
    }
    assert!(cg
        .apply(&res(r#"{"cpu": {"realtimeRuntime": 1000}}"#))
        .is_err());
    assert!(cg.apply(&res(r#"{"network": {"classID": 1}}"#)).is_err());

    // A controller not enabled for this cgroup is named in the error.
    fs::write(dir.join("cgroup.controllers"), "cpu").unwrap();
    let e = cg.apply(&res(r#"{"pids": {"limit": 10}}"#)).unwrap_err();
    assert!(
        matches!(&e, CgroupError::ControllerMissing { controller, .. } if controller == "pids")
    );
    assert!(e.to_string().contains("\"pids\""), "{e}");
    let e = cg
        .apply(&res(r#"{"unified": {"memory.high": "1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("\"memory\""), "{e}");
}

#[test]
fn io_max_lines_for_all_throttles() {
    let r = res(r#"{"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}, {"major": 8, "minor": 16, "rate": 200}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 300}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}]}}"#);
    let lines = v2::io_max_lines(r.block_io().as_ref().unwrap());
    assert_eq!(
        lines,
        vec![
            "8:0 rbps=100",
            "8:16 rbps=200",
            "8:0 wbps=300",
            "8:0 riops=10",
            "8:0 wiops=20"
        ]
    );
}

#[test]
fn v2_stats_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = V2Cgroup::new(tmp.path().to_path_buf(), Path::new("c"));
    touch(
        cg.path(),
        &[
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 7\n",
            ),
            ("memory.current", "4096\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "8192\n"),
            ("memory.stat", "anon 100\nfile 200\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.events", "max 4\n"),
            ("cgroup.procs", "12\n13\n"),
            ("sub/cgroup.procs", "14\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.user, 1_000_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 2);
    assert_eq!(s.cpu.throttling.throttled_time, 7000);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.usage.failcnt, 3);
    assert_eq!(s.memory.cache, 200);
    assert_eq!(s.memory.raw.get("anon"), Some(&100));
    assert_eq!(s.pids.current, 2);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_service_bytes_recursive[1].op, "Write");
    assert_eq!(s.blkio.io_service_bytes_recursive[1].value, 20);
    assert_eq!(s.hugetlb["2MB"].failcnt, 4);
    assert_eq!(cg.oom_kill_count().unwrap(), 1);
    let mut pids = cg.pids().unwrap();
    pids.sort();
    assert_eq!(pids, vec![12, 13, 14]);

    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["cpu"]["usage"]["total"], 1_500_000);
    assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 2);
    assert_eq!(j["memory"]["usage"]["usage"], 4096);
    assert_eq!(j["memory"]["raw"]["file"], 200);
    assert_eq!(j["pids"]["current"], 2);
    assert!(j["pids"].get("limit").is_none());
    assert_eq!(j["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
    assert_eq!(j["hugetlb"]["2MB"]["failcnt"], 4);
}

#[test]
fn v1_layout_apply_freeze_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layout = fake_layout(t, V1_MI);
    assert_eq!(layout.version, CgroupVersion::V1);
    let cg = open_with(&layout, None, "ctr").unwrap();
    assert_eq!(cg.version(), CgroupVersion::V1);
    let mounts = cg.mounts();
    let names: Vec<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "cpu,cpuacct",
            "memory",
            "pids",
            "freezer",
            "cpuset",
            "blkio",
            "devices",
            "systemd"
        ]
    );
    let sd = mounts.iter().find(|m| m.name == "systemd").unwrap();
    assert_eq!(sd.options, "none,name=systemd");
    assert_eq!(sd.host_path, t.join("systemd/ctr"));
    assert_eq!(mounts[0].options, "cpu,cpuacct");

    // cpuset: empty values are copied down from the parent on create.
    touch(
        t,
        &[
            ("cpuset/cpuset.cpus", "0-3\n"),
            ("cpuset/cpuset.mems", "0\n"),
            ("cpuset/ctr/cpuset.cpus", ""),
            ("cpuset/ctr/cpuset.mems", ""),
        ],
    );
    cg.create().unwrap();
    for m in &mounts {
        assert!(m.host_path.is_dir(), "{}", m.host_path.display());
    }
    assert_eq!(read(t.join("cpuset/ctr/cpuset.cpus")), "0-3");
    assert_eq!(read(t.join("cpuset/ctr/cpuset.mems")), "0");

    touch(
        t,
        &[
            ("memory/ctr/memory.limit_in_bytes", "9223372036854771712\n"),
            (
                "memory/ctr/memory.memsw.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("memory/ctr/memory.soft_limit_in_bytes", ""),
            ("memory/ctr/memory.swappiness", ""),
            (
                "memory/ctr/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("cpu,cpuacct/ctr/cpu.shares", ""),
            ("cpu,cpuacct/ctr/cpu.cfs_quota_us", ""),
            ("cpu,cpuacct/ctr/cpu.cfs_period_us", ""),
            ("cpu,cpuacct/ctr/cpu.rt_runtime_us", ""),
            ("cpu,cpuacct/ctr/cpu.rt_period_us", ""),
            ("pids/ctr/pids.max", ""),
            ("blkio/ctr/blkio.bfq.weight", ""),
            ("blkio/ctr/blkio.throttle.write_iops_device", ""),
            ("devices/ctr/devices.allow", ""),
            ("devices/ctr/devices.deny", ""),
            ("freezer/ctr/freezer.state", "THAWED\n"),
        ],
    );
    assert_eq!(cg.oom_kill_count().unwrap(), 2);
    cg.apply(&res(r#"{
        "memory": {"limit": 1048576, "swap": 2097152, "reservation": 4096, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimeRuntime": 950, "realtimePeriod": 1000},
        "pids": {"limit": 64},
        "blockIO": {"weight": 300, "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]},
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    }"#))
    .unwrap();
    let m = t.join("memory/ctr");
    assert_eq!(read(m.join("memory.limit_in_bytes")), "1048576");
    assert_eq!(read(m.join("memory.memsw.limit_in_bytes")), "2097152");
    assert_eq!(read(m.join("memory.soft_limit_in_bytes")), "4096");
    assert_eq!(read(m.join("memory.swappiness")), "10");
    let c = t.join("cpu,cpuacct/ctr");
    assert_eq!(read(c.join("cpu.shares")), "512");
    assert_eq!(read(c.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(c.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(c.join("cpu.rt_runtime_us")), "950");
    assert_eq!(read(c.join("cpu.rt_period_us")), "1000");
    assert_eq!(read(t.join("pids/ctr/pids.max")), "64");
    assert_eq!(read(t.join("blkio/ctr/blkio.bfq.weight")), "300");
    assert_eq!(
        read(t.join("blkio/ctr/blkio.throttle.write_iops_device")),
        "8:0 50"
    );
    assert_eq!(read(t.join("devices/ctr/devices.deny")), "a");
    assert_eq!(read(t.join("devices/ctr/devices.allow")), "c 1:3 rwm");

    cg.apply(&res(r#"{"pids": {"limit": -1}, "memory": {"limit": -1}}"#))
        .unwrap();
    assert_eq!(read(t.join("pids/ctr/pids.max")), "max");
    assert_eq!(read(m.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(m.join("memory.memsw.limit_in_bytes")), "-1");

    // v1 refuses unified and says which controller is missing.
    let e = cg
        .apply(&res(r#"{"unified": {"memory.max": "1"}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}");
    let e = cg
        .apply(&res(r#"{"network": {"classID": 17}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("net_cls"), "{e}");
    let e = cg
        .apply(&res(
            r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("hugetlb"), "{e}");

    // Freezing a fake freezer: the file reads back what was written.
    assert!(!cg.is_frozen().unwrap());
    cg.freeze().unwrap();
    assert_eq!(read(t.join("freezer/ctr/freezer.state")), "FROZEN");
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(read(t.join("freezer/ctr/freezer.state")), "THAWED");

    // Stats from fake v1 files.
    touch(
        t,
        &[
            ("cpu,cpuacct/ctr/cpuacct.usage", "3000\n"),
            ("cpu,cpuacct/ctr/cpuacct.usage_percpu", "1000 2000 \n"),
            ("cpu,cpuacct/ctr/cpuacct.stat", "user 3\nsystem 4\n"),
            (
                "cpu,cpuacct/ctr/cpu.stat",
                "nr_periods 5\nnr_throttled 1\nthrottled_time 99\n",
            ),
            ("memory/ctr/memory.usage_in_bytes", "4096\n"),
            ("memory/ctr/memory.max_usage_in_bytes", "8192\n"),
            ("memory/ctr/memory.failcnt", "0\n"),
            (
                "memory/ctr/memory.stat",
                "cache 10\nrss 20\ntotal_cache 30\n",
            ),
            ("pids/ctr/pids.current", "3\n"),
            ("pids/ctr/pids.max", "64\n"),
            (
                "blkio/ctr/blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 512\n8:0 Write 1024\nTotal 1536\n",
            ),
            ("freezer/ctr/cgroup.procs", "100\n"),
            ("freezer/ctr/child/cgroup.procs", "101\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 3000);
    assert_eq!(s.cpu.usage.percpu, vec![1000, 2000]);
    assert_eq!(s.cpu.usage.user, 30_000_000);
    assert_eq!(s.cpu.usage.kernel, 40_000_000);
    assert_eq!(s.cpu.throttling.periods, 5);
    assert_eq!(s.cpu.throttling.throttled_time, 99);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.cache, 30);
    assert_eq!(s.memory.raw["rss"], 20);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.pids.limit, 64);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_service_bytes_recursive[1].value, 1024);
    let mut pids = cg.pids().unwrap();
    pids.sort();
    assert_eq!(pids, vec![100, 101]);

    // destroy removes child cgroups too (regular files here block rmdir, so
    // check a hierarchy we left empty).
    assert!(t.join("systemd/ctr").is_dir());
    fs::create_dir_all(t.join("systemd/ctr/a/b")).unwrap();
    super::remove_cgroup_dir(&t.join("systemd/ctr")).unwrap();
    assert!(!t.join("systemd/ctr").exists());
    super::remove_cgroup_dir(&t.join("systemd/ctr")).unwrap(); // missing is fine
}

#[test]
fn hybrid_layout_routes_hugetlb_and_unified_to_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layout = fake_layout(t, HYBRID_MI);
    assert_eq!(layout.version, CgroupVersion::Hybrid);
    let cg = open_with(&layout, Some(Path::new("/x")), "ignored").unwrap();
    assert_eq!(cg.version(), CgroupVersion::Hybrid);
    let mounts = cg.mounts();
    let names: Vec<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["cpu", "cpuacct", "memory", "systemd", "unified"]
    );
    assert_eq!(mounts[4].host_path, t.join("unified/x"));
    assert_eq!(mounts[4].options, "");

    touch(
        t,
        &[
            ("unified/cgroup.controllers", "hugetlb"),
            ("unified/cgroup.subtree_control", ""),
            ("unified/x/cgroup.controllers", "hugetlb"),
            ("unified/x/hugetlb.1GB.max", ""),
            ("unified/x/cgroup.procs", ""),
            ("cpu/x/cgroup.procs", ""),
            ("cpuacct/x/cgroup.procs", ""),
            ("memory/x/cgroup.procs", ""),
            ("systemd/x/cgroup.procs", ""),
        ],
    );
    cg.create().unwrap();
    // Joining the unified tree enables nothing until a limit needs it.
    assert_eq!(read(t.join("unified/cgroup.subtree_control")), "");
    cg.apply(&res(
        r#"{"hugepageLimits": [{"pageSize": "1GB", "limit": 1073741824}]}"#,
    ))
    .unwrap();
    assert_eq!(read(t.join("unified/cgroup.subtree_control")), "+hugetlb");
    assert_eq!(read(t.join("unified/x/hugetlb.1GB.max")), "1073741824");
    cg.add_task(4242).unwrap();
    for d in ["unified", "cpu", "cpuacct", "memory", "systemd"] {
        assert_eq!(read(t.join(d).join("x/cgroup.procs")), "4242", "{d}");
    }
    let e = cg.apply(&res(r#"{"pids": {"limit": 5}}"#)).unwrap_err();
    assert!(e.to_string().contains("\"pids\""), "{e}");
}

// ---------------------------------------------------------------------------
// Root tests on the real hierarchies.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Root tests share the hierarchies' roots (subtree_control); run them one at a time.
static ROOT_LOCK: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Kills our children and removes the cgroup even when the test fails, and
/// undoes controller enables at the v2 root that the test caused.
struct Guard {
    cg: Box<dyn Cgroup>,
    children: Vec<Child>,
    v2_root: Option<(PathBuf, String)>,
}

impl Guard {
    fn new(cg: Box<dyn Cgroup>, v2_root: Option<&Path>) -> Guard {
        let v2_root = v2_root.map(|r| {
            let before = fs::read_to_string(r.join("cgroup.subtree_control")).unwrap_or_default();
            (r.to_path_buf(), before)
        });
        Guard {
            cg,
            children: Vec::new(),
            v2_root,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cg.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleanup: {e}");
        }
        if let Some((root, before)) = &self.v2_root {
            let sub = root.join("cgroup.subtree_control");
            let now = fs::read_to_string(&sub).unwrap_or_default();
            for c in now.split_whitespace() {
                if !before.split_whitespace().any(|b| b == c) {
                    let _ = fs::write(&sub, format!("-{c}"));
                }
            }
        }
    }
}

fn proc_state(pid: u32) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn root_v1_lifecycle() {
    if !is_root() {
        eprintln!("skipping root_v1_lifecycle: not root");
        return;
    }
    let Ok(layout) = Layout::detect(
        Path::new("/proc/self/mountinfo"),
        Path::new("/proc/self/cgroup"),
    ) else {
        eprintln!("skipping root_v1_lifecycle: no cgroups");
        return;
    };
    if layout.version == CgroupVersion::V2
        || ["memory", "pids", "freezer"]
            .iter()
            .any(|c| layout.v1_hierarchy(c).is_none())
    {
        eprintln!("skipping root_v1_lifecycle: needs v1 memory, pids and freezer");
        return;
    }
    let _lock = ROOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("/barge-test-v1-{}", std::process::id());
    let cg = open_with(&layout, Some(Path::new(&name)), "unused").unwrap();
    let mounts = cg.mounts();
    for m in &mounts {
        assert!(
            !m.host_path.exists(),
            "{} exists before the test",
            m.host_path.display()
        );
    }
    let mut g = Guard::new(cg, layout.unified.as_deref());
    g.cg.create().unwrap();
    for m in &mounts {
        assert!(m.host_path.is_dir(), "{}", m.host_path.display());
    }
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    g.children.push(child);
    g.cg.add_task(pid as i32).unwrap();
    assert!(g.cg.pids().unwrap().contains(&(pid as i32)));

    g.cg.apply(&res(
        r#"{"memory": {"limit": 67108864}, "pids": {"limit": 32}, "cpu": {"shares": 512}}"#,
    ))
    .unwrap();
    let mem = layout
        .v1_hierarchy("memory")
        .unwrap()
        .mount_point
        .join(&name[1..]);
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
    let pids_dir = layout
        .v1_hierarchy("pids")
        .unwrap()
        .mount_point
        .join(&name[1..]);
    assert_eq!(read(pids_dir.join("pids.max")), "32");
    // An impossible value is reported with the file path.
    let e =
        g.cg.apply(&res(r#"{"memory": {"swappiness": 500}}"#))
            .unwrap_err();
    assert!(e.to_string().contains("swappiness"), "{e}");

    let freezer = layout
        .v1_hierarchy("freezer")
        .unwrap()
        .mount_point
        .join(&name[1..]);
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen().unwrap());
    assert_eq!(read(freezer.join("freezer.state")), "FROZEN");
    let st = proc_state(pid);
    assert!(st.starts_with('D'), "frozen task state {st:?}");
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen().unwrap());
    // Thawed: sleeping again, or running for the moment it takes to get
    // back to its sleep (seen under load) — not stuck frozen.
    let st = proc_state(pid);
    assert!(st.starts_with('S') || st.starts_with('R'), "{st}");

    // Burn a little CPU inside the cgroup so usage is non-zero.
    let busy = spawn_waiting("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo DONE");
    g.cg.add_task(busy.id() as i32).unwrap();
    let (ok, out, err) = release_and_collect(busy);
    assert!(ok && out.contains("DONE"), "{out:?} {err:?}");

    let s = g.cg.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 32);
    assert_eq!(s.memory.usage.limit, 67108864);
    // usage may be 0: v1 does not move existing charges with the task.
    assert!(s.cpu.usage.total > 0);
    assert_eq!(g.cg.oom_kill_count().unwrap(), 0);
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["pids"]["limit"], 32);

    for c in &mut g.children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    g.children.clear();
    g.cg.destroy().unwrap();
    for m in &mounts {
        assert!(
            !m.host_path.exists(),
            "{} still exists",
            m.host_path.display()
        );
    }
}

/// The unified tree usable for a v2 test: /sys/fs/cgroup/unified on hybrid
/// hosts, /sys/fs/cgroup on pure v2.
fn v2_root() -> Option<PathBuf> {
    let layout = Layout::detect(
        Path::new("/proc/self/mountinfo"),
        Path::new("/proc/self/cgroup"),
    )
    .ok()?;
    layout.unified
}

/// Spawns `sh -c script` that waits for a line on stdin before running, so
/// it can be moved into a cgroup first.
fn spawn_waiting(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn release_and_collect(mut child: Child) -> (bool, String, String) {
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn root_v2_freeze_and_device_filter() {
    if !is_root() {
        eprintln!("skipping root_v2_freeze_and_device_filter: not root");
        return;
    }
    let Some(root) = v2_root() else {
        eprintln!("skipping root_v2_freeze_and_device_filter: no cgroup2 mount");
        return;
    };
    let _lock = ROOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("barge-test-v2-{}", std::process::id());
    let cg = open_with(&Layout::v2(&root), Some(Path::new(&name)), "unused").unwrap();
    assert_eq!(cg.version(), CgroupVersion::V2);
    let dir = root.join(&name);
    assert!(!dir.exists());
    let mut g = Guard::new(cg, Some(&root));
    g.cg.create().unwrap();
    assert!(dir.is_dir());

    // freeze / thaw
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    g.children.push(child);
    g.cg.add_task(pid as i32).unwrap();
    assert_eq!(g.cg.pids().unwrap(), vec![pid as i32]);
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen().unwrap());
    assert!(read(dir.join("cgroup.events")).contains("frozen 1"));
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen().unwrap());
    assert!(read(dir.join("cgroup.events")).contains("frozen 0"));
    let _ = g.cg.stats().unwrap();

    // Device filter: only /dev/null.
    let only_null = r#"{"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#;
    g.cg.apply(&res(only_null)).unwrap();
    assert_eq!(devices::attached_programs(&dir).unwrap().len(), 1);
    let script = "cat /dev/null && echo NULL_OK; head -c1 /dev/zero >/dev/null && echo ZERO_OK";
    let c = spawn_waiting(script);
    g.cg.add_task(c.id() as i32).unwrap();
    let (_, out, err) = release_and_collect(c);
    assert!(out.contains("NULL_OK"), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("ZERO_OK"), "stdout {out:?}");
    assert!(err.contains("Operation not permitted"), "stderr {err:?}");

    // Outside the cgroup /dev/zero still works (we did not touch anything else).
    let (_, out, _) = release_and_collect(spawn_waiting(script));
    assert!(out.contains("ZERO_OK"), "{out:?}");

    // Update: allow /dev/zero read too; exactly one program of ours remains.
    let with_zero = r#"{"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}]}"#;
    g.cg.apply(&res(with_zero)).unwrap();
    assert_eq!(devices::attached_programs(&dir).unwrap().len(), 1);
    let c = spawn_waiting(
        "head -c1 /dev/zero >/dev/null && echo ZERO_OK; echo x > /dev/zero || echo WRITE_DENIED",
    );
    g.cg.add_task(c.id() as i32).unwrap();
    let (_, out, err) = release_and_collect(c);
    assert!(out.contains("ZERO_OK"), "stdout {out:?} stderr {err:?}");
    assert!(
        out.contains("WRITE_DENIED"),
        "stdout {out:?} stderr {err:?}"
    );

    for c in &mut g.children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    g.children.clear();
    g.cg.destroy().unwrap();
    assert!(!dir.exists());
}
