//! Bad input (runtime.md "Errors"): the runtime exits 1 with a one-line error
//! on stderr naming the problem, and leaves no state dir, no cgroup and no
//! process behind.

mod common;

use common::*;
use std::fs;

/// A bundle whose process carries `id` in its command line, so a leftover
/// process can be found by it.
fn marked_bundle(id: &str) -> Bundle {
    let b = Bundle::new();
    b.sh(&format!("sleep 1000; : {id}")).cgroups_path(id);
    b
}

/// Host processes (other than the test) whose command line mentions `id`.
fn processes_mentioning(id: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me && pid_alive(*pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(id))
                .unwrap_or(false)
        })
        .collect()
}

/// runc-style failure: exit 1, stderr has one error line mentioning one of
/// `words` (case-insensitive), and nothing is left for `id`.
#[track_caller]
fn assert_clean_failure(rt: &Runtime, id: &str, out: &Out, words: &[&str]) {
    assert_eq!(out.code(), Some(1), "exit code 1: {out}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.to_lowercase().contains("warn"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {out}");
    let line = errors[0].to_lowercase();
    assert!(
        words.iter().any(|w| line.contains(&w.to_lowercase())),
        "error names the problem (one of {words:?}): {out}"
    );
    assert!(!rt.state_dir(id).exists(), "no state dir: {out}");
    assert_eq!(rt.status(id), None, "state fails for {id}");
    assert_eq!(
        cgroup_dirs(id),
        Vec::<std::path::PathBuf>::new(),
        "no cgroups"
    );
    assert_eq!(processes_mentioning(id), Vec::<i32>::new(), "no processes");
}

#[test]
fn config_that_is_not_json_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("notjson");
    let b = marked_bundle(&id);
    b.write_raw_config("{ this is not json");

    let out = rt.create(&id, &b);

    assert_clean_failure(
        &rt,
        &id,
        &out,
        &["json", "config", "invalid character", "parse"],
    );
}

#[test]
fn config_violating_the_schema_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("schema");
    let b = marked_bundle(&id);
    b.config(|c| c["process"]["args"] = json!("notalist"));

    let out = rt.create(&id, &b);

    assert_clean_failure(
        &rt,
        &id,
        &out,
        &["args", "unmarshal", "invalid type", "[]string"],
    );
}

#[test]
fn missing_rootfs_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("norootfs");
    let b = marked_bundle(&id);
    fs::remove_dir_all(b.rootfs()).unwrap();

    let out = rt.create(&id, &b);

    assert_clean_failure(&rt, &id, &out, &["rootfs", "no such file"]);
}

#[test]
fn missing_config_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("noconfig");
    let b = marked_bundle(&id);
    fs::remove_file(b.config_path()).unwrap();

    let out = rt.create(&id, &b);

    assert_clean_failure(&rt, &id, &out, &["config.json"]);
}

#[test]
fn duplicate_id_is_rejected_and_the_first_container_survives() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("dup");
    let first = Bundle::with_args(&["sleep", "1000"]);
    rt.create(&id, &first).ok();
    let pid = rt.pid(&id);
    let second = Bundle::with_args(&["sleep", "1000"]);
    second.sh(&format!("sleep 1000; : second-{id}"));

    let out = rt.create(&id, &second);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("exist"), "names the problem: {out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    assert_eq!(rt.pid(&id), pid, "first container untouched");
    assert_eq!(
        processes_mentioning(&format!("second-{id}")),
        Vec::<i32>::new()
    );
}

/// A name that is no capability at all (not one this kernel merely lacks)
/// is a broken config: create fails naming it and leaves nothing behind.
#[test]
fn unknown_capability_name_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("bogus-cap");
    let b = marked_bundle(&id);
    b.config(|c| {
        c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_BOGUS"))
    });

    let out = rt.create(&id, &b);

    assert_clean_failure(&rt, &id, &out, &["CAP_BOGUS"]);
}

#[test]
fn unknown_seccomp_syscall_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("bogus-syscall");
    let b = marked_bundle(&id);
    b.config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": ["no_such_syscall_barge"], "action": "SCMP_ACT_ERRNO" }]
        })
    });

    let out = rt.create(&id, &b);

    assert_clean_failure(&rt, &id, &out, &["no_such_syscall_barge"]);
}

#[test]
fn unknown_namespace_type_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("bogus-ns");
    let b = marked_bundle(&id);
    b.namespace("bogus", None);

    let out = rt.create(&id, &b);

    assert_clean_failure(&rt, &id, &out, &["bogus", "namespace"]);
}

#[test]
fn start_of_a_running_container_fails() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("restart");
    rt.start_container(&id, &b);

    let out = rt.start(&id);

    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert!(
        out.stderr.contains("created") || out.stderr.contains("running"),
        "{out}"
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn start_of_a_stopped_container_fails() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("startstopped");
    rt.start_container(&id, &b);
    rt.kill(&id, "KILL").ok();
    rt.wait_for_status(&id, "stopped");

    let out = rt.start(&id);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("stopped"), "{out}");
}

#[test]
fn delete_of_a_running_container_without_force_fails() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("delrunning");
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);

    let out = rt.delete(&id);

    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert!(out.stderr.contains("running"), "{out}");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(pid_alive(pid));
}

#[test]
fn kill_of_an_unknown_id_fails() {
    require_root!();
    let rt = Runtime::new();
    let id = rt.id("ghost");

    let out = rt.kill(&id, "KILL");

    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert!(out.stderr.contains("not exist"), "{out}");
}

#[test]
fn state_of_an_unknown_id_fails() {
    require_root!();
    let rt = Runtime::new();

    let out = rt.state(&rt.id("ghost"));

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("not exist"), "{out}");
}

#[test]
fn invalid_container_id_is_rejected() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();

    let out = rt.create("../escape", &b);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(!rt.root().parent().unwrap().join("escape").exists());
}
