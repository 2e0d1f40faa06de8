//! The runtime on a pure cgroup v2 host.
//!
//! Every runtime command runs in a private mount namespace where
//! `/sys/fs/cgroup` is a plain cgroup2 mount (see [`V2`]), so barge-runc
//! sees the layout most hosts have, whatever the test host has. That cgroup2
//! mount is the host's own unified tree (on a hybrid host the one at
//! `/sys/fs/cgroup/unified`): the test checks the container's cgroup there,
//! under [`host_cgroup2_root`].

mod common;

use common::*;
use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

/// Runs `"$@"` with a pure-v2 view of the cgroup filesystem: everything at
/// /sys/fs/cgroup (tmpfs + v1 hierarchies, or cgroup2) is detached and one
/// cgroup2 mount takes its place. Only this mount namespace changes.
const PURE_V2: &str = "umount -l /sys/fs/cgroup 2>/dev/null; \
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || exit 97; \
    exec \"$@\"";

/// Where the host has the cgroup2 tree mounted (root of the hierarchy), if
/// it has one.
fn host_cgroup2_root() -> Option<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = Vec::new();
    for line in mi.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        if post.split(' ').next() == Some("cgroup2") && pre.len() > 4 && pre[3] == "/" {
            found.push(PathBuf::from(pre[4]));
        }
    }
    found
        .iter()
        .find(|p| p.as_path() == Path::new("/sys/fs/cgroup/unified"))
        .or_else(|| {
            found
                .iter()
                .find(|p| p.as_path() == Path::new("/sys/fs/cgroup"))
        })
        .or_else(|| found.first())
        .cloned()
}

/// Skips the test unless root on a host with a cgroup2 tree; returns the
/// tree's host mount point.
macro_rules! require_v2 {
    () => {{
        require_root!();
        match host_cgroup2_root() {
            Some(r) => r,
            None => {
                eprintln!(
                    "SKIPPED {} ({}:{}): needs a cgroup2 mount",
                    module_path!(),
                    file!(),
                    line!()
                );
                return;
            }
        }
    }};
}

/// The runtime under test as seen from a pure-v2 mount namespace. Every
/// command (create, state, pause, delete...) goes through the same wrapper,
/// so all of them see the same layout. On drop, every container it made is
/// force-deleted through the wrapper, its init killed by pid if still alive,
/// and the cgroup2 directory named after it removed (deepest first).
struct V2 {
    rt: Runtime,
    root: PathBuf,
    ids: RefCell<Vec<(String, Option<i32>)>>,
    /// Bundles outlive the containers using them (dropped after `drop`).
    bundles: RefCell<Vec<Rc<Bundle>>>,
}

impl V2 {
    fn new(root: PathBuf) -> V2 {
        V2 {
            rt: Runtime::new(),
            root,
            ids: RefCell::new(Vec::new()),
            bundles: RefCell::new(Vec::new()),
        }
    }

    /// A fresh unique container id, cleaned up on drop.
    fn id(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.ids.borrow_mut().push((id.clone(), None));
        id
    }

    /// A bundle running `args`, with `cgroupsPath` `/<id>`, kept until drop.
    fn bundle(&self, id: &str, args: &[&str]) -> Rc<Bundle> {
        let b = Rc::new(Bundle::with_args(args));
        b.cgroups_path(id);
        self.bundles.borrow_mut().push(b.clone());
        b
    }

    /// The container's cgroup as the host sees it.
    fn cgroup(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// A file of the container's cgroup, trimmed ("" if unreadable).
    fn cgroup_read(&self, id: &str, file: &str) -> String {
        read_lossy(&self.cgroup(id).join(file)).trim().to_string()
    }

    /// `unshare ... sh -c PURE_V2 sh <runtime> --root <root> args...`.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            PURE_V2,
            "sh",
        ])
        .arg(self.rt.bin())
        .arg("--root")
        .arg(self.rt.root())
        .args(args);
        cmd
    }

    fn cmd(&self, args: &[&str]) -> Out {
        self.rt.output(&mut self.command(args))
    }

    /// `run --bundle B id` in the foreground.
    fn run(&self, id: &str, b: &Bundle) -> Out {
        self.cmd(&["run", "--bundle", b.path().to_str().unwrap(), id])
    }

    /// `create` (or `run -d`): the container's stdio goes to files.
    fn detached(&self, verb: &[&str], id: &str, b: &Bundle) -> Out {
        let (o, e) = self.rt.stdio_files(id);
        let mut args = verb.to_vec();
        args.extend(["--bundle", b.path().to_str().unwrap(), id]);
        let out = run_to_files(&mut self.command(&args), &o, &e, COMMAND_TIMEOUT);
        if let Some(pid) = self.try_pid(id) {
            for t in self.ids.borrow_mut().iter_mut() {
                if t.0 == id {
                    t.1 = Some(pid);
                }
            }
        }
        out
    }

    fn create(&self, id: &str, b: &Bundle) -> Out {
        self.detached(&["create"], id, b)
    }

    /// `run -d`, asserting the container runs.
    #[track_caller]
    fn run_detached(&self, id: &str, b: &Bundle) {
        self.detached(&["run", "-d"], id, b).ok();
        self.wait_for_status(id, "running");
    }

    fn state(&self, id: &str) -> Out {
        self.cmd(&["state", id])
    }

    fn status(&self, id: &str) -> Option<String> {
        let out = self.state(id);
        if !out.success() {
            return None;
        }
        serde_json::from_str::<Value>(out.stdout.trim())
            .ok()
            .and_then(|v| v["status"].as_str().map(String::from))
    }

    fn try_pid(&self, id: &str) -> Option<i32> {
        let out = self.state(id);
        if !out.success() {
            return None;
        }
        serde_json::from_str::<Value>(out.stdout.trim())
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .map(|p| p as i32)
            .filter(|p| *p > 0)
    }

    #[track_caller]
    fn pid(&self, id: &str) -> i32 {
        let out = self.state(id).ok();
        out.json()["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid in state: {out}")) as i32
    }

    #[track_caller]
    fn wait_for_status(&self, id: &str, want: &str) {
        let mut last = None;
        let ok = wait_until(WAIT_TIMEOUT, || {
            last = self.status(id);
            last.as_deref() == Some(want)
        });
        assert!(
            ok,
            "container {id} did not reach status {want:?} (last: {last:?})"
        );
    }

    /// Removes the host cgroup dir of `id` and its children, deepest first.
    fn remove_cgroup(&self, id: &str) {
        fn rm(dir: &Path) {
            if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        rm(&e.path());
                    }
                }
            }
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if !id.is_empty() && !id.contains('/') {
            rm(&self.cgroup(id));
        }
    }
}

impl Drop for V2 {
    fn drop(&mut self) {
        let ids: Vec<(String, Option<i32>)> = self.ids.borrow().clone();
        for (id, pid) in ids {
            let pid = self.try_pid(&id).or(pid);
            // Thawed first, so a kill is not held up by a frozen cgroup.
            let freeze = self.cgroup(&id).join("cgroup.freeze");
            if freeze.exists() {
                let _ = fs::write(&freeze, "0");
            }
            let _ = self.cmd(&["delete", "--force", &id]);
            if let Some(pid) = pid {
                if pid_alive(pid) {
                    signal_pid(pid, libc::SIGKILL);
                    wait_until(Duration::from_secs(5), || !pid_alive(pid));
                    let _ = self.cmd(&["delete", "--force", &id]);
                }
                wait_until(Duration::from_secs(5), || !pid_alive(pid));
                reap(pid);
            }
            // Anything left in the cgroup (a broken runtime) is ours.
            if let Ok(procs) = fs::read_to_string(self.cgroup(&id).join("cgroup.procs")) {
                for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    signal_pid(p, libc::SIGKILL);
                }
            }
            self.remove_cgroup(&id);
        }
    }
}

/// The pids in a cgroup.procs text.
fn pids_of(procs: &str) -> Vec<i32> {
    let mut v: Vec<i32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort();
    v
}

/// Pids of live host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let me = std::process::id() as i32;
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && pid_alive(pid) {
            found.push(pid);
        }
    }
    found
}

// ---------------------------------------------------------------------------
// The container's cgroup

#[test]
fn running_container_gets_a_cgroup2_dir_that_delete_removes() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2dir");
    let b = v2.bundle(&id, &["sleep", "1000"]);

    v2.run_detached(&id, &b);

    let dir = v2.cgroup(&id);
    assert!(dir.is_dir(), "{} exists while it runs", dir.display());
    let pid = v2.pid(&id);
    assert_eq!(
        pids_of(&v2.cgroup_read(&id, "cgroup.procs")),
        vec![pid],
        "the init and nothing else in {}",
        dir.display()
    );
    // The runtime saw only cgroup2: no v1 hierarchy got a dir for it.
    let others: Vec<PathBuf> = cgroup_dirs(&id).into_iter().filter(|d| *d != dir).collect();
    assert_eq!(others, Vec::<PathBuf>::new(), "no v1 cgroups for {id}");

    v2.cmd(&["kill", &id, "KILL"]).ok();
    v2.wait_for_status(&id, "stopped");
    v2.cmd(&["delete", &id]).ok();

    assert!(!dir.exists(), "{} removed by delete", dir.display());
    assert!(!v2.rt.state_dir(&id).exists(), "state dir removed");
}

#[test]
fn cgroup_namespace_shows_root_and_a_cgroup2_mount() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2ns");
    let b = v2.bundle(&id, &["sh"]);
    b.namespace("cgroup", None);
    b.sh("grep '^0::' /proc/self/cgroup; \
         grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1; \
         ls /sys/fs/cgroup; \
         cat /sys/fs/cgroup/cgroup.procs");

    let out = v2.run(&id, &b).ok();

    let lines = out.lines();
    assert_eq!(lines.first().map(String::as_str), Some("0::/"), "{out}");
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("cgroup2"),
        "/sys/fs/cgroup is one cgroup2 mount: {out}"
    );
    assert!(
        lines.iter().any(|l| l == "cgroup.procs"),
        "cgroup.procs listed: {out}"
    );
    assert!(
        !lines.iter().any(|l| l == "memory" || l == "unified"),
        "no v1 or hybrid layout inside: {out}"
    );
    // The container's own cgroup: the shell (pid 1) and its children.
    assert!(
        lines.iter().any(|l| l == "1"),
        "pid 1 in cgroup.procs: {out}"
    );
}

#[test]
fn without_cgroup_namespace_the_mount_is_the_containers_own_cgroup() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2nons");
    let b = v2.bundle(&id, &["sh"]);
    b.sh("grep '^0::' /proc/self/cgroup; \
         grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1; \
         cat /sys/fs/cgroup/cgroup.procs");

    let out = v2.run(&id, &b).ok();

    let lines = out.lines();
    assert_eq!(
        lines.first().cloned(),
        Some(format!("0::/{id}")),
        "host cgroup path visible: {out}"
    );
    assert_eq!(lines.get(1).map(String::as_str), Some("cgroup2"), "{out}");
    assert!(
        lines.iter().any(|l| l == "1"),
        "pid 1 in cgroup.procs: {out}"
    );
}

// ---------------------------------------------------------------------------
// pause / resume, kill --all, ps, events

#[test]
fn pause_freezes_through_cgroup_freeze_and_resume_thaws() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2pause");
    let b = v2.bundle(&id, &["sh"]);
    let shared = b.shared_dir("/shared");
    b.sh("while true; do echo x >> /shared/ticks; done");
    let ticks = shared.join("ticks");
    let size = || fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0);

    v2.run_detached(&id, &b);
    assert!(
        wait_until(WAIT_TIMEOUT, || size() > 0),
        "the loop counts before pause"
    );

    v2.cmd(&["pause", &id]).ok();

    assert_eq!(v2.status(&id).as_deref(), Some("paused"));
    assert_eq!(v2.cgroup_read(&id, "cgroup.freeze"), "1");
    assert!(
        v2.cgroup_read(&id, "cgroup.events")
            .lines()
            .any(|l| l == "frozen 1"),
        "kernel reports frozen: {}",
        v2.cgroup_read(&id, "cgroup.events")
    );
    let frozen_at = size();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(size(), frozen_at, "the loop stops while paused");

    v2.cmd(&["resume", &id]).ok();

    assert_eq!(v2.status(&id).as_deref(), Some("running"));
    assert_eq!(v2.cgroup_read(&id, "cgroup.freeze"), "0");
    assert!(
        wait_until(WAIT_TIMEOUT, || size() > frozen_at),
        "the loop counts again after resume"
    );
}

#[test]
fn exec_joins_the_containers_cgroup() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2exec");
    let b = v2.bundle(&id, &["sleep", "1000"]);
    v2.run_detached(&id, &b);

    let out = v2.cmd(&["exec", &id, "cat", "/proc/self/cgroup"]).ok();

    assert!(
        out.lines().iter().any(|l| *l == format!("0::/{id}")),
        "exec'd process in /{id}: {out}"
    );
}

#[test]
fn delete_force_of_a_paused_container_removes_its_cgroup() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2pausedel");
    let b = v2.bundle(&id, &["sleep", "1000"]);
    v2.run_detached(&id, &b);
    let pid = v2.pid(&id);
    v2.cmd(&["pause", &id]).ok();
    assert_eq!(v2.status(&id).as_deref(), Some("paused"));

    v2.cmd(&["delete", "--force", &id]).ok();

    assert!(
        wait_until(WAIT_TIMEOUT, || !pid_alive(pid)),
        "init {pid} killed"
    );
    assert!(!v2.cgroup(&id).exists(), "cgroup removed");
    assert!(!v2.rt.state_dir(&id).exists(), "state dir removed");
}

/// A container whose init (pid 1 in its pid namespace, without signal
/// handlers, so deaf to SIGTERM from the host) has two other processes in
/// its cgroup; returns (init, the two others) once all three are in.
fn three_sleepers(v2: &V2, id: &str) -> (i32, Vec<i32>) {
    let b = v2.bundle(id, &["sh"]);
    b.sh("sleep 1001 & sleep 1002 & exec sleep 1003");
    v2.run_detached(id, &b);
    let init = v2.pid(id);
    let mut procs = Vec::new();
    assert!(
        wait_until(WAIT_TIMEOUT, || {
            procs = pids_of(&v2.cgroup_read(id, "cgroup.procs"));
            procs.len() == 3 && procs.contains(&init)
        }),
        "three processes in the cgroup, init {init}: {procs:?}"
    );
    let others = procs.into_iter().filter(|p| *p != init).collect();
    (init, others)
}

#[test]
fn ps_lists_every_process_of_the_cgroup() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2ps");
    let (init, others) = three_sleepers(&v2, &id);

    let json = v2.cmd(&["ps", "--format", "json", &id]).ok();
    let mut listed: Vec<i32> = json
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("a JSON array of pids: {json}"))
        .iter()
        .filter_map(|p| p.as_i64())
        .map(|p| p as i32)
        .collect();
    listed.sort();
    let mut want = others.clone();
    want.push(init);
    want.sort();
    assert_eq!(listed, want, "{json}");

    let table = v2.cmd(&["ps", &id]).ok();
    for (pid, cmd) in [
        (init, "sleep 1003"),
        (others[0], "sleep 100"),
        (others[1], "sleep 100"),
    ] {
        assert!(
            table
                .lines()
                .iter()
                .any(|l| l.contains(cmd) && l.split_whitespace().any(|f| f == pid.to_string())),
            "pid {pid} ({cmd}) in the table: {table}"
        );
    }
}

#[test]
fn kill_all_signals_every_process_of_the_cgroup() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2killall");
    let (init, others) = three_sleepers(&v2, &id);

    // SIGTERM: only the non-init processes can die of it, so they die only
    // if --all reached them.
    v2.cmd(&["kill", "--all", &id, "TERM"]).ok();

    for p in &others {
        assert!(
            wait_until(WAIT_TIMEOUT, || !pid_alive(*p)),
            "pid {p} of the cgroup killed by kill --all"
        );
    }
    assert!(pid_alive(init), "the init ignores SIGTERM from the host");
    assert_eq!(v2.status(&id).as_deref(), Some("running"));

    v2.cmd(&["kill", "--all", &id, "KILL"]).ok();

    v2.wait_for_status(&id, "stopped");
    assert!(
        wait_until(WAIT_TIMEOUT, || v2
            .cgroup_read(&id, "cgroup.procs")
            .is_empty()),
        "cgroup empty: {:?}",
        v2.cgroup_read(&id, "cgroup.procs")
    );
}

#[test]
fn events_stats_prints_json_with_cpu_usage() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2stats");
    let b = v2.bundle(&id, &["sh"]);
    // Burn a little CPU, then idle.
    b.sh("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000");
    v2.run_detached(&id, &b);

    let mut out = v2.cmd(&["events", "--stats", &id]).ok();
    assert!(
        wait_until(WAIT_TIMEOUT, || {
            out = v2.cmd(&["events", "--stats", &id]).ok();
            out.json()["data"]["cpu"]["usage"]["total"]
                .as_u64()
                .is_some_and(|t| t > 0)
        }),
        "cpu usage counted: {out}"
    );

    let ev = out.json();
    assert_eq!(ev["type"], "stats", "{out}");
    assert_eq!(ev["id"], json!(id), "{out}");
    assert!(ev["data"]["memory"].is_object(), "{out}");
    assert!(ev["data"]["pids"].is_object(), "{out}");
}

// ---------------------------------------------------------------------------
// Devices: an eBPF program on the cgroup

/// A char device node the container gets through `linux.devices`, that no
/// default rule allows: the fuse device (10:229), which opens for anyone the
/// device cgroup lets through.
fn add_extra_device(b: &Bundle) {
    b.config(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/extra-fuse", "type": "c", "major": 10, "minor": 229,
            "fileMode": 0o666, "uid": 0, "gid": 0
        }])
    });
}

#[test]
fn default_device_rules_allow_dev_null_and_deny_other_nodes() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2dev");
    let b = v2.bundle(&id, &["sh"]);
    add_extra_device(&b);
    b.sh("echo x > /dev/null && echo null-writable; \
         head -c 3 /dev/zero | wc -c; \
         ls /dev/extra-fuse && (: <> /dev/extra-fuse) 2>&1 && echo fuse-opened; true");

    let out = v2.run(&id, &b).ok();

    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(out.lines().iter().any(|l| l == "null-writable"), "{out}");
    assert!(
        out.lines().iter().any(|l| l == "3"),
        "/dev/zero readable: {out}"
    );
    assert!(
        out.lines().iter().any(|l| l == "/dev/extra-fuse"),
        "node made: {out}"
    );
    assert!(
        all.contains("Operation not permitted"),
        "opening the extra node is denied (EPERM): {out}"
    );
    assert!(!all.contains("fuse-opened"), "{out}");
}

#[test]
fn config_device_rules_are_enforced_per_access() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2devrule");
    let b = v2.bundle(&id, &["sh"]);
    add_extra_device(&b);
    b.config(|c| {
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "w"}));
    });
    b.sh("(: < /dev/extra-fuse) 2>&1 && echo read-opened; \
         (: <> /dev/extra-fuse) 2>&1 && echo rw-opened; true");

    let out = v2.run(&id, &b).ok();

    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        out.lines().iter().any(|l| l == "read-opened"),
        "read allowed: {out}"
    );
    assert!(!all.contains("rw-opened"), "write denied: {out}");
    assert!(all.contains("Operation not permitted"), "EPERM: {out}");
}

// ---------------------------------------------------------------------------
// Controllers that this cgroup2 tree does not have

/// The controllers usable in children of the cgroup2 root.
fn root_controllers(root: &Path) -> Vec<String> {
    read_lossy(&root.join("cgroup.controllers"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Creates a container with `resources` needing `controller`; asserts it
/// fails naming the controller and leaves no state, cgroup or process.
fn create_fails_for_missing(root: PathBuf, controller: &str, resources: (&str, Value)) {
    if root_controllers(&root).iter().any(|c| c == controller) {
        eprintln!("SKIPPED: the {controller} controller is available in cgroup2 here");
        return;
    }
    let v2 = V2::new(root);
    let id = v2.id(&format!("v2no{controller}"));
    // A unique number to find a leftover init by its command line.
    let counter = id.rsplit('-').next().unwrap_or("0");
    let marker = format!("9{}{counter}", std::process::id());
    let b = v2.bundle(&id, &["sleep", &marker]);
    b.config(|c| c["linux"]["resources"][resources.0] = resources.1);

    let out = v2.create(&id, &b).failed();

    assert!(
        out.stderr.contains(&format!("\"{controller}\"")) && out.stderr.contains("not available"),
        "error names the missing {controller} controller: {out}"
    );
    assert!(!v2.rt.state_dir(&id).exists(), "no state dir: {out}");
    assert!(!v2.cgroup(&id).exists(), "no cgroup dir: {out}");
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new(), "no cgroup at all");
    v2.state(&id).failed();
    let list = v2.cmd(&["list", "-q"]).ok();
    assert!(!list.lines().contains(&id), "not listed: {list}");
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<i32>::new(),
        "no container process left"
    );
}

#[test]
fn pids_limit_without_the_pids_controller_fails_cleanly() {
    let root = require_v2!();
    create_fails_for_missing(root, "pids", ("pids", json!({ "limit": 20 })));
}

#[test]
fn memory_limit_without_the_memory_controller_fails_cleanly() {
    let root = require_v2!();
    create_fails_for_missing(root, "memory", ("memory", json!({ "limit": 64 << 20 })));
}

// ---------------------------------------------------------------------------
// linux.resources.unified

#[test]
fn unified_values_are_written_and_enforced() {
    let root = require_v2!();
    let v2 = V2::new(root);
    let id = v2.id("v2unified");
    let b = v2.bundle(&id, &["sleep", "1000"]);
    b.config(|c| {
        c["linux"]["resources"]["unified"] =
            json!({ "cgroup.max.descendants": "5", "cgroup.max.depth": "2" })
    });

    v2.run_detached(&id, &b);

    assert_eq!(v2.cgroup_read(&id, "cgroup.max.descendants"), "5");
    assert_eq!(v2.cgroup_read(&id, "cgroup.max.depth"), "2");
    // The kernel holds to it: a sixth descendant cannot be made.
    let dir = v2.cgroup(&id);
    for i in 0..5 {
        fs::create_dir(dir.join(format!("c{i}")))
            .unwrap_or_else(|e| panic!("descendant {i} of 5: {e}"));
    }
    assert!(
        fs::create_dir(dir.join("c5")).is_err(),
        "a sixth descendant is refused"
    );

    // delete removes the container's cgroup with its children.
    v2.cmd(&["kill", &id, "KILL"]).ok();
    v2.wait_for_status(&id, "stopped");
    v2.cmd(&["delete", &id]).ok();
    assert!(!dir.exists(), "{} removed with its children", dir.display());
}

#[test]
fn unified_keys_with_dotdot_or_slash_are_rejected() {
    let root = require_v2!();
    for key in ["../cgroup.max.descendants", "leaf/cgroup.max.descendants"] {
        let v2 = V2::new(root.clone());
        let id = v2.id("v2badkey");
        let b = v2.bundle(&id, &["sleep", "1000"]);
        // Nested, so ".." would still land in a cgroup this test owns.
        let nested = format!("/{id}/leaf");
        b.config(|c| {
            c["linux"]["cgroupsPath"] = json!(nested);
            c["linux"]["resources"]["unified"] = json!({ key: "3" });
        });

        let out = v2.create(&id, &b).failed();

        assert!(
            out.stderr.contains("linux.resources.unified") && out.stderr.contains(key),
            "error names the bad key {key:?}: {out}"
        );
        assert!(!v2.rt.state_dir(&id).exists(), "no state dir: {out}");
        assert!(
            !v2.cgroup(&id).join("leaf").exists(),
            "no container cgroup: {out}"
        );
        let parent = v2.cgroup_read(&id, "cgroup.max.descendants");
        assert!(
            parent.is_empty() || parent == "max",
            "nothing written above the container's cgroup: {parent}"
        );
    }
}
