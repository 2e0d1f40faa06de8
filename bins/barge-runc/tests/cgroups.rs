//! Control groups (config-linux.md "Control groups"): limits are enforced and
//! written where the host can see them; delete removes the cgroups.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A cgroup file for cgroupsPath `/<id>`: the v1 controller's if mounted,
/// else the unified one.
fn cg(id: &str, v1: (&str, &str), v2: &str) -> PathBuf {
    let p = cgroup_file(v1.0, id, v1.1);
    if Path::new("/sys/fs/cgroup").join(v1.0).is_dir() {
        p
    } else {
        Path::new("/sys/fs/cgroup").join(id).join(v2)
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

const MIB: u64 = 1024 * 1024;

#[test]
fn memory_limit_oom_kills_a_hog() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = rt.id("oom");
    b.cgroups_path(&id).config(|c| {
        // swap = limit: no swapping around the limit
        c["linux"]["resources"]["memory"] = json!({ "limit": 32 * MIB, "swap": 32 * MIB })
    });
    // tail must hold the whole newline-free input in memory
    b.sh("head -c 100000000 /dev/zero | tail; echo status=$?");

    let out = rt.run(&id, &b);

    // The OOM killer picks the biggest task, the hog (then the shell says
    // so); under pressure from elsewhere it may take the container's shell
    // as well, and then the container itself ends with 137. Either way the
    // hog was killed by the limit, not allowed to finish.
    let hog_killed = out.stdout == "status=137\n";
    let shell_killed = out.status.code() == Some(137) && !out.stdout.contains("status=0");
    assert!(hog_killed || shell_killed, "hog killed by SIGKILL: {out}");
}

#[test]
fn memory_limit_is_written_to_the_cgroup() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("memlimit");
    b.cgroups_path(&id)
        .config(|c| c["linux"]["resources"]["memory"] = json!({ "limit": 48 * MIB }));

    rt.start_container(&id, &b);

    let p = cg(&id, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(read(&p), (48 * MIB).to_string());
    let procs = read(&p.with_file_name("cgroup.procs"));
    assert!(
        procs.lines().any(|l| l == rt.pid(&id).to_string()),
        "init in its cgroup: {procs}"
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = rt.id("pids");
    b.cgroups_path(&id)
        .config(|c| c["linux"]["resources"]["pids"] = json!({ "limit": 20 }));
    b.sh("i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done 2>&1; echo started $i");

    let out = rt.run(&id, &b);

    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("can't fork") || all.contains("Resource temporarily unavailable"),
        "fork fails at the pids limit: {out}"
    );
    assert!(!all.contains("started 50"), "{out}");
}

#[test]
fn pids_limit_is_written_to_the_cgroup() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("pidslimit");
    b.cgroups_path(&id)
        .config(|c| c["linux"]["resources"]["pids"] = json!({ "limit": 20 }));

    rt.start_container(&id, &b);

    assert_eq!(read(&cg(&id, ("pids", "pids.max"), "pids.max")), "20");
}

#[test]
fn cpu_quota_and_shares_are_written_to_the_cgroup() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("cpu");
    b.cgroups_path(&id).config(|c| {
        c["linux"]["resources"]["cpu"] = json!({ "shares": 512, "quota": 50000, "period": 100000 })
    });

    rt.start_container(&id, &b);

    if Path::new("/sys/fs/cgroup/cpu").is_dir() {
        assert_eq!(read(&cgroup_file("cpu", &id, "cpu.shares")), "512");
        assert_eq!(read(&cgroup_file("cpu", &id, "cpu.cfs_quota_us")), "50000");
        assert_eq!(
            read(&cgroup_file("cpu", &id, "cpu.cfs_period_us")),
            "100000"
        );
    } else {
        let base = Path::new("/sys/fs/cgroup").join(&id);
        assert_eq!(read(&base.join("cpu.max")), "50000 100000");
        assert_eq!(read(&base.join("cpu.weight")), "20"); // 1 + (512-2)*9999/262142
    }
}

#[test]
fn container_sees_its_own_limits_in_its_cgroup_mount() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = rt.id("cginside");
    b.cgroups_path(&id).config(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 40 * MIB });
        c["linux"]["resources"]["pids"] = json!({ "limit": 33 });
    });
    b.sh(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    );

    let out = rt.run(&id, &b).ok();

    assert_eq!(out.lines(), [(40 * MIB).to_string(), "33".to_string()]);
}

#[test]
fn delete_removes_the_cgroup_dirs() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("cgdel");
    b.cgroups_path(&id)
        .config(|c| c["linux"]["resources"]["pids"] = json!({ "limit": 20 }));
    rt.start_container(&id, &b);
    assert!(!cgroup_dirs(&id).is_empty(), "cgroups made for {id}");

    rt.kill(&id, "KILL").ok();
    rt.wait_for_status(&id, "stopped");
    rt.delete(&id).ok();

    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
}
