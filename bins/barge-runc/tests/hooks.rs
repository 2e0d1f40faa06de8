//! POSIX-platform hooks (config.md "POSIX-platform Hooks", runtime.md
//! "Lifecycle"): all six kinds run in order with the state on stdin, and a
//! hook timeout fails the operation.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// A hook that saves its stdin to `<dir>/<name>.json` and appends `name` to
/// `<dir>/log`; `dir` is as seen by the hook (host, or container for
/// startContainer).
fn logging_hook(name: &str, dir: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {dir}/{name}.json; echo {name} >> {dir}/log")],
    })
}

#[test]
fn all_six_hooks_run_in_order_with_state_on_stdin() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let shared = b.shared_dir("/hooks");
    let host = shared.to_str().unwrap();
    b.config(|c| {
        c["hooks"] = json!({
            "prestart": [logging_hook("prestart", host)],
            "createRuntime": [logging_hook("createRuntime", host)],
            "createContainer": [logging_hook("createContainer", host)],
            "startContainer": [logging_hook("startContainer", "/hooks")],
            "poststart": [logging_hook("poststart", host)],
            "poststop": [logging_hook("poststop", host)],
        })
    });
    let id = rt.id("hooks");
    let log = || fs::read_to_string(shared.join("log")).unwrap_or_default();

    rt.create(&id, &b).ok();
    assert_eq!(log(), "prestart\ncreateRuntime\ncreateContainer\n");
    rt.start(&id).ok();
    assert!(wait_until(WAIT_TIMEOUT, || log().ends_with("poststart\n")));
    rt.kill(&id, "KILL").ok();
    rt.wait_for_status(&id, "stopped");
    rt.delete(&id).ok();

    assert_eq!(
        log(),
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\npoststop\n"
    );
    for name in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let text = fs::read_to_string(shared.join(format!("{name}.json"))).unwrap();
        let state: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} got no state JSON ({e}): {text:?}"));
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
        assert!(state["ociVersion"].is_string(), "{name}: {state}");
        assert!(state["bundle"].is_string(), "{name}: {state}");
        assert!(state["status"].is_string(), "{name}: {state}");
        if name != "poststop" {
            // pid is REQUIRED while created/running
            assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{name}: {state}");
        }
    }
}

#[test]
fn hooks_get_args_and_env() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let out_dir = b.host_dir("hookout");
    let out = out_dir.join("env");
    b.config(|c| {
        c["hooks"] = json!({
            "createRuntime": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("echo \"$0 $1 $HOOK_VAR\" > {}", out.display()), "arg0", "arg1"],
                "env": ["HOOK_VAR=from-env", "PATH=/usr/bin:/bin"]
            }]
        })
    });
    b.sh("true");

    rt.run(&rt.id("hookenv"), &b).ok();

    assert_eq!(fs::read_to_string(&out).unwrap(), "arg0 arg1 from-env\n");
}

fn assert_nothing_left(rt: &Runtime, id: &str) {
    assert!(!rt.state_dir(id).exists(), "state dir left for {id}");
    assert_eq!(
        cgroup_dirs(id),
        Vec::<std::path::PathBuf>::new(),
        "cgroups left"
    );
    assert_eq!(rt.status(id), None, "state still answers for {id}");
}

#[test]
fn hook_timeout_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("hooktimeout");
    b.cgroups_path(&id).config(|c| {
        c["hooks"] = json!({
            "createRuntime": [{ "path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1 }]
        })
    });
    let t0 = Instant::now();

    let out = rt.create(&id, &b);

    assert!(!out.success(), "{out}");
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "timeout honoured: {out}"
    );
    assert!(!out.stderr.trim().is_empty(), "{out}");
    assert_nothing_left(&rt, &id);
}

#[test]
fn failing_hook_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("hookfail");
    b.cgroups_path(&id).config(|c| {
        c["hooks"] = json!({
            "prestart": [{ "path": "/bin/sh", "args": ["sh", "-c", "exit 3"] }]
        })
    });

    let out = rt.create(&id, &b);

    assert_eq!(out.code(), Some(1), "{out}");
    assert_nothing_left(&rt, &id);
}

#[test]
fn poststop_runs_on_delete_of_a_run_container() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let dir = b.host_dir("poststop");
    b.config(|c| {
        c["hooks"] = json!({ "poststop": [logging_hook("poststop", dir.to_str().unwrap())] })
    });
    b.sh("exit 0");

    rt.run(&rt.id("poststop"), &b).ok();

    assert!(Path::new(&dir.join("log")).exists());
    assert_eq!(fs::read_to_string(dir.join("log")).unwrap(), "poststop\n");
}
