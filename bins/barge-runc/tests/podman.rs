//! podman driving the runtime under test (`podman --runtime <barge-runc>`), with a
//! private config, storage, tmpdir and cgroup parent per test (see
//! support/peers.rs). Needs root and the Debian packages podman + conmon.
//!
//! Check the tests themselves against runc:
//! `BARGE_RUNC_BIN=/usr/sbin/runc cargo test -p barge-runc --test podman`

#[path = "support/peers.rs"]
mod peers;

use peers::Podman;

/// CAP_NET_RAW's bit in the capability sets of /proc/<pid>/status.
const CAP_NET_RAW_BIT: u64 = 1 << 13;
/// CAP_CHOWN's bit.
const CAP_CHOWN_BIT: u64 = 1 << 0;

/// Parses `field` (e.g. "CapEff") from /proc/self/status text.
fn cap_set(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} line in:\n{status}"));
    let hex = line[field.len() + 1..].trim();
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bad {field} {hex:?}: {e}"))
}

/// Reads a cgroup v1 file, falling back to its v2 name (the container sees its
/// own cgroup at /sys/fs/cgroup in both layouts).
fn read_cgroup_limit(p: &Podman, flags: &[&str], v1: &str, v2: &str) -> String {
    let script = format!("cat {v1} 2>/dev/null || cat {v2}");
    let mut args: Vec<&str> = vec!["--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[p.image(), "sh", "-c", &script]);
    p.run(&args).expect_success().stdout.trim().to_string()
}

#[test]
fn podman_run_prints_the_container_output() {
    let p = Podman::new();
    let r = p
        .run(&["--rm", p.image(), "echo", "hello"])
        .expect_success();
    assert_eq!(r.stdout.trim(), "hello", "{r}");
}

#[test]
fn podman_run_propagates_the_container_exit_code() {
    let p = Podman::new();
    p.run(&["--rm", p.image(), "sh", "-c", "exit 3"])
        .expect_code(3);
}

#[test]
fn podman_run_interactive_gives_the_container_a_pty() {
    let p = Podman::new();
    let r = p
        // The pause lets conmon relay the output before the container is
        // gone: an -it container that exits at once lost its output once
        // in CI under load.
        .run_in_pty(&["-it", "--rm", p.image(), "sh", "-c", "tty; sleep 0.3"])
        .expect_success();
    assert!(
        r.stdout.contains("/dev/pts/"),
        "no pty in the container: {r}"
    );
}

#[test]
fn podman_run_memory_limit_reaches_the_container_cgroup() {
    let p = Podman::new();
    let limit = read_cgroup_limit(
        &p,
        &["--memory", "64m"],
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory.max",
    );
    assert_eq!(limit, "67108864");
}

#[test]
fn podman_run_pids_limit_reaches_the_container_cgroup() {
    let p = Podman::new();
    let limit = read_cgroup_limit(
        &p,
        &["--pids-limit", "32"],
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/pids.max",
    );
    assert_eq!(limit, "32");
}

#[test]
fn podman_run_cap_drop_all_leaves_no_capabilities() {
    let p = Podman::new();
    let r = p
        .run(&[
            "--rm",
            "--cap-drop",
            "ALL",
            p.image(),
            "cat",
            "/proc/self/status",
        ])
        .expect_success();
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(cap_set(&r.stdout, set), 0, "{set} not empty: {r}");
    }
}

#[test]
fn podman_run_cap_drop_net_raw_removes_only_net_raw() {
    let p = Podman::new();
    let default = p
        .run(&["--rm", p.image(), "cat", "/proc/self/status"])
        .expect_success();
    let default_eff = cap_set(&default.stdout, "CapEff");
    assert_ne!(
        default_eff & CAP_NET_RAW_BIT,
        0,
        "podman's default set lacks NET_RAW: {default}"
    );
    assert_ne!(
        default_eff & CAP_CHOWN_BIT,
        0,
        "podman's default set lacks CHOWN: {default}"
    );

    let dropped = p
        .run(&[
            "--rm",
            "--cap-drop",
            "NET_RAW",
            p.image(),
            "cat",
            "/proc/self/status",
        ])
        .expect_success();
    let eff = cap_set(&dropped.stdout, "CapEff");
    assert_eq!(
        eff,
        default_eff & !CAP_NET_RAW_BIT,
        "CapEff {eff:016x}: {dropped}"
    );
    assert_eq!(
        cap_set(&dropped.stdout, "CapBnd") & CAP_NET_RAW_BIT,
        0,
        "{dropped}"
    );
}

#[test]
fn podman_run_read_only_rootfs_rejects_writes() {
    let p = Podman::new();
    let r = p.run(&["--rm", "--read-only", p.image(), "touch", "/probe"]);
    assert!(!r.success(), "touch / succeeded on a read-only rootfs: {r}");
    assert!(r.stderr.contains("Read-only file system"), "{r}");
    // podman still gives a read-only container a writable tmpfs /tmp.
    p.run(&["--rm", "--read-only", p.image(), "touch", "/tmp/probe"])
        .expect_success();
}

#[test]
fn podman_run_as_user_sets_uid_and_gid() {
    let p = Podman::new();
    let r = p
        .run(&[
            "--rm",
            "-u",
            "1000:1000",
            p.image(),
            "sh",
            "-c",
            "id -u; id -g",
        ])
        .expect_success();
    let ids: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(ids, ["1000", "1000"], "{r}");
}

#[test]
fn podman_exec_runs_in_a_running_container_and_propagates_exit_code() {
    let p = Podman::new();
    let r = p.run(&["-d", p.image(), "sleep", "1000"]).expect_success();
    let id = r.stdout.trim().to_string();
    assert!(!id.is_empty(), "no container id: {r}");

    // The container really runs on the runtime under test, not podman's default.
    let rt = peers::run(
        p.cmd()
            .args(["inspect", "--format", "{{.OCIRuntime}}"])
            .arg(&id),
    )
    .expect_success();
    let name = p
        .runtime()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        rt.stdout.contains(&name),
        "container runs on {:?}, not {name}",
        rt.stdout
    );

    let hi = p.exec(&id, &["echo", "hi"]).expect_success();
    assert_eq!(hi.stdout.trim(), "hi", "{hi}");
    p.exec(&id, &["sh", "-c", "exit 5"]).expect_code(5);

    p.rm_force(&id).expect_success();
    let exists = peers::run(p.cmd().args(["container", "exists"]).arg(&id));
    assert_eq!(
        exists.code,
        Some(1),
        "container still there after rm -f: {exists}"
    );
}
