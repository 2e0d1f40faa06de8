//! Process attributes beyond user and capabilities (config.md "Process",
//! config-linux.md "Personality"): ioPriority, scheduler, personality, and
//! the MS_MOVE root when pivot_root is not used.

mod common;

use common::*;

#[test]
fn io_priority_is_applied() {
    require_root!();
    let rt = Runtime::new();
    // Read the class from the host, as ionice does.
    let b = Bundle::new();
    b.config(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 7}));
    b.args(&["sleep", "30"]);
    let id = rt.id("ioprio-be");
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);
    let out = std::process::Command::new("ionice")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "best-effort: prio 7"
    );
}

#[test]
fn scheduler_policy_and_nice_are_applied() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5}));
    b.args(&["sleep", "30"]);
    let id = rt.id("sched");
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);
    let out = std::process::Command::new("chrt")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SCHED_BATCH"), "{text}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let nice: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(nice, 5);
}

#[test]
fn personality_linux32_changes_uname_machine() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    b.sh("uname -m");
    let out = rt.run(&rt.id("pers"), &b).ok();
    assert_eq!(out.stdout.trim(), "i686");
}

#[test]
fn scheduler_iso_is_rejected_with_a_clear_error() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_ISO"}));
    let id = rt.id("iso");
    let out = rt.create(&id, &b);
    assert!(!out.success());
    assert!(out.stderr.contains("SCHED_ISO"), "{out}");
    assert_eq!(rt.status(&id), None);
}

#[test]
fn no_pivot_moves_the_rootfs_and_still_isolates() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("ls /; test -e /proc/1/root && echo proc");
    let id = rt.id("nopivot");
    let out = rt
        .cmd(&[
            "run",
            "--no-pivot",
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ])
        .ok();
    assert!(out.stdout.contains("bin\n"), "{out}");
    assert!(!out.stdout.contains("boot\n"), "host root visible: {out}");
    assert!(out.stdout.contains("proc\n"), "{out}");
}
