//! containerd driving the runtime under test through its runc shim
//! (`ctr run --runc-binary <barge-runc>`), with a private containerd per test
//! (see support/peers.rs). The shim calls the runtime with `--root`, `--log`,
//! `--log-format json`, then `create --bundle --pid-file`, `start`, `state`,
//! `kill` and `delete`. Needs root and the Debian package containerd.
//!
//! Check the tests themselves against runc:
//! `BARGE_RUNC_BIN=/usr/sbin/runc cargo test -p barge-runc --test containerd`

#[path = "support/peers.rs"]
mod peers;

use peers::Containerd;

#[test]
fn containerd_runs_a_container_from_an_unpacked_rootfs() {
    let ctrd = Containerd::start();
    let rootfs = peers::make_bundle(&ctrd.dir().join("bundle"), &["sh"]);
    let r = ctrd.run_rootfs("hello", &rootfs, &["/bin/sh", "-c", "echo hi; exit 0"]);
    assert!(r.success(), "{r}\ncontainerd log:\n{}", ctrd.log());
    assert_eq!(r.stdout.trim(), "hi", "{r}");
}

#[test]
fn containerd_propagates_the_container_exit_code() {
    let ctrd = Containerd::start();
    let rootfs = peers::make_bundle(&ctrd.dir().join("bundle"), &["sh"]);
    let r = ctrd.run_rootfs("exit7", &rootfs, &["/bin/sh", "-c", "echo bye; exit 7"]);
    assert_eq!(r.code, Some(7), "{r}\ncontainerd log:\n{}", ctrd.log());
    assert_eq!(r.stdout.trim(), "bye", "{r}");
}

#[test]
fn containerd_removes_the_container_after_run_rm() {
    let ctrd = Containerd::start();
    let rootfs = peers::make_bundle(&ctrd.dir().join("bundle"), &["sh"]);
    ctrd.run_rootfs("gone", &rootfs, &["/bin/true"])
        .expect_success();
    let tasks = peers::run(ctrd.ctr().args(["task", "list", "--quiet"])).expect_success();
    assert!(!tasks.stdout.contains("gone"), "task left behind: {tasks}");
    let ctrs = peers::run(ctrd.ctr().args(["container", "list", "--quiet"])).expect_success();
    assert!(
        !ctrs.stdout.contains("gone"),
        "container left behind: {ctrs}"
    );
    // The runtime's state dir (the shim's --root) holds nothing for it either.
    let state = ctrd.dir().join("runc").join(ctrd.namespace()).join("gone");
    assert!(!state.exists(), "runtime state left at {}", state.display());
}
