//! Harness for the barge-runc integration tests.
//!
//! The suite is written against the OCI runtime spec and runc's behaviour, so
//! it runs unchanged against any runc-compatible runtime: the binary comes from
//! `BARGE_RUNC_BIN` if set (e.g. `/usr/sbin/runc`), else barge-runc itself.
//!
//! A test reads like a story:
//!
//! ```ignore
//! require_root!();
//! let rt = Runtime::new();
//! let b = Bundle::new();
//! b.sh("echo $$; exit 42");
//! let out = rt.run(&rt.id("pid1"), &b);
//! assert_eq!(out.code(), Some(42), "{out}");
//! assert_eq!(out.stdout.trim(), "1");
//! ```
//!
//! Everything a test makes is cleaned up when the [`Runtime`] and [`Bundle`]
//! are dropped, also when an assertion panics: containers are force-deleted
//! (their init killed by pid if the runtime could not), leftover cgroup dirs
//! named after the container are removed, and tempdirs are deleted after
//! the containers that use them are gone.

#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};
use tempfile::TempDir;

/// How long any single runtime command may take before the harness kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time to wait for a container to reach a status, or a file to appear.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Skips the test (with a clear line on stderr) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            eprintln!(
                "SKIPPED {} ({}:{}): barge-runc integration tests need root (uid 0)",
                module_path!(),
                file!(),
                line!()
            );
            return;
        }
    };
}

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("BARGE_RUNC_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_barge-runc")),
    }
}

/// True when the test process runs as (effective) uid 0.
pub fn is_root() -> bool {
    // /proc/self is owned by the effective uid of the reading process.
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The bundle script, `scripts/make-test-bundle.sh` at the workspace root.
pub fn bundle_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-test-bundle.sh")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A unique name: `prefix-<pid>-<counter>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), next())
}

// ---------------------------------------------------------------------------
// Command output

/// Result of one runtime (or helper) command.
#[derive(Debug)]
pub struct Out {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Out {
    /// Exit code; a process killed by signal N reports `128 + N`, like a shell.
    pub fn code(&self) -> Option<i32> {
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| 128 + s))
    }

    pub fn success(&self) -> bool {
        !self.timed_out && self.status.success()
    }

    /// Panics (showing the whole command output) unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            !self.timed_out && !self.status.success(),
            "command unexpectedly succeeded (or hung): {self}"
        );
        self
    }

    /// stdout parsed as JSON; panics with the output if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// stdout split in trimmed non-empty lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n$ {}\n[{}{}]\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.cmdline,
            self.status,
            if self.timed_out { ", TIMED OUT" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr to the given files
/// (never pipes: a detached container inherits them and would keep a pipe
/// open forever). Kills the command after `timeout`.
pub fn run_to_files(cmd: &mut Command, out: &Path, err: &Path, timeout: Duration) -> Out {
    let cmdline = format!("{cmd:?}");
    let stdout = fs::File::create(out).expect("create stdout file");
    let stderr = fs::File::create(err).expect("create stderr file");
    cmd.stdout(stdout).stderr(stderr);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmdline}: {e}"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Out {
        cmdline,
        status,
        stdout: read_lossy(out),
        stderr: read_lossy(err),
        timed_out,
    }
}

/// File contents as a (lossy) string, "" if missing.
pub fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs a host command (e.g. `unshare`), returning its output.
pub fn host(program: &str, args: &[&str]) -> Out {
    let dir = TempDir::new().expect("tempdir");
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    run_to_files(
        &mut cmd,
        &dir.path().join("out"),
        &dir.path().join("err"),
        COMMAND_TIMEOUT,
    )
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `path` to exist and have non-empty content; returns the content.
#[track_caller]
pub fn wait_for_file(path: &Path) -> String {
    let mut content = String::new();
    let found = wait_until(WAIT_TIMEOUT, || {
        content = read_lossy(path);
        !content.is_empty()
    });
    assert!(found, "timed out waiting for {}", path.display());
    content
}

// ---------------------------------------------------------------------------
// Processes

/// Whether `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// Sends `sig` to `pid` (only ever a pid this test started).
pub fn signal_pid(pid: i32, sig: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Reaps `pid` if it is a (zombie) child of this process; never blocks.
pub fn reap(pid: i32) {
    if pid <= 1 {
        return;
    }
    let mut status = 0;
    // SAFETY: waitpid with a valid pointer to a local int, WNOHANG.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// Become a child subreaper, so container inits orphaned by `create` are
/// re-parented to the test process (the VM's pid 1 does not reap zombies);
/// the harness reaps exactly the pids of its containers.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integer arguments.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

/// A host process started by a test (e.g. `unshare ... sleep`), killed and
/// reaped on drop.
pub struct HostProcess {
    pub child: std::process::Child,
}

impl HostProcess {
    pub fn spawn(program: &str, args: &[&str]) -> HostProcess {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        HostProcess { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Bundle

/// A fresh OCI bundle (busybox rootfs + runc-spec-like config.json) in a
/// tempdir, made by `scripts/make-test-bundle.sh`.
pub struct Bundle {
    dir: Rc<TempDir>,
}

impl Bundle {
    /// A bundle whose process is `sh` (no args).
    pub fn new() -> Bundle {
        Bundle::with_args(&["sh"])
    }

    /// A bundle whose process is `args`.
    pub fn with_args(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("barge-bundle-")
            .tempdir()
            .expect("bundle tempdir");
        // Traversable by a user-namespaced container root.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new("bash")
            .arg(bundle_script())
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run make-test-bundle.sh");
        assert!(
            out.status.success(),
            "make-test-bundle.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bundle { dir: Rc::new(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    /// The current config.json.
    pub fn read_config(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.config_path()).unwrap()).unwrap()
    }

    /// Edits config.json: `b.config(|c| c["hostname"] = json!("box"))`.
    pub fn config(&self, edit: impl FnOnce(&mut Value)) -> &Self {
        let mut c = self.read_config();
        edit(&mut c);
        fs::write(
            self.config_path(),
            serde_json::to_string_pretty(&c).unwrap(),
        )
        .unwrap();
        self
    }

    /// Replaces config.json with raw text (for malformed-input tests).
    pub fn write_raw_config(&self, text: &str) -> &Self {
        fs::write(self.config_path(), text).unwrap();
        self
    }

    /// Sets `process.args`.
    pub fn args(&self, args: &[&str]) -> &Self {
        self.config(|c| c["process"]["args"] = json!(args))
    }

    /// Sets `process.args` to `sh -c script`.
    pub fn sh(&self, script: &str) -> &Self {
        self.args(&["sh", "-c", script])
    }

    /// Makes the root filesystem writable (`root.readonly = false`).
    pub fn writable(&self) -> &Self {
        self.config(|c| c["root"]["readonly"] = json!(false))
    }

    /// Sets `linux.cgroupsPath` to `/<id>`, so the test knows where the
    /// runtime puts the container's cgroups (see [`cgroup_dirs`]).
    pub fn cgroups_path(&self, id: &str) -> &Self {
        let p = format!("/{id}");
        self.config(|c| c["linux"]["cgroupsPath"] = json!(p))
    }

    /// Appends a mount entry.
    pub fn mount(&self, m: Value) -> &Self {
        self.config(|c| c["mounts"].as_array_mut().unwrap().push(m))
    }

    /// Bind-mounts host `src` at `dest` with extra `options` ("ro", ...).
    pub fn bind(&self, src: &Path, dest: &str, options: &[&str]) -> &Self {
        let mut opts = vec!["rbind"];
        opts.extend_from_slice(options);
        self.mount(json!({
            "destination": dest,
            "type": "bind",
            "source": src,
            "options": opts,
        }))
    }

    /// A new empty world-writable host dir inside the bundle dir (outside
    /// the rootfs), removed with the bundle.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        p
    }

    /// A host dir bind-mounted read-write at `dest` in the container; returns
    /// its host path. Handy for a container to leave evidence for the test.
    pub fn shared_dir(&self, dest: &str) -> PathBuf {
        let name = format!("shared{}", dest.replace('/', "_"));
        let p = self.host_dir(&name);
        self.bind(&p, dest, &["rw"]);
        p
    }

    /// Gives the rootfs to `uid:gid` (as for a user-namespaced container whose
    /// root maps there), so the runtime can create mountpoints in it.
    pub fn chown_rootfs(&self, uid: u32, gid: u32) -> &Self {
        host(
            "chown",
            &[
                "-hR",
                &format!("{uid}:{gid}"),
                self.rootfs().to_str().unwrap(),
            ],
        )
        .ok();
        self
    }

    /// Adds a user namespace mapping container ids 0..size to host ids
    /// `host_id..`, and chowns the rootfs accordingly.
    pub fn user_namespace(&self, host_id: u32, size: u32) -> &Self {
        let mapping = json!([{ "containerID": 0, "hostID": host_id, "size": size }]);
        self.namespace("user", None).config(|c| {
            c["linux"]["uidMappings"] = mapping.clone();
            c["linux"]["gidMappings"] = mapping;
        });
        self.chown_rootfs(host_id, host_id)
    }

    /// Adds (or replaces) a namespace entry, e.g. `("time", None)` or
    /// `("network", Some("/proc/123/ns/net"))`.
    pub fn namespace(&self, ty: &str, path: Option<&str>) -> &Self {
        self.config(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != ty);
            let mut entry = json!({ "type": ty });
            if let Some(p) = path {
                entry["path"] = json!(p);
            }
            ns.push(entry);
        })
    }

    /// Removes a namespace entry (the container then shares the host's).
    pub fn without_namespace(&self, ty: &str) -> &Self {
        self.config(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != ty)
        })
    }
}

/// Where the v1 controllers and the unified tree would hold cgroupsPath
/// `/<id>`, that exist right now.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let p = e.path().join(id);
            if p.is_dir() {
                found.push(p);
            }
        }
    }
    if Path::new("/sys/fs/cgroup").join(id).is_dir() {
        found.push(Path::new("/sys/fs/cgroup").join(id));
    }
    found
}

/// Host path of a v1 controller's file for cgroupsPath `/<id>`.
pub fn cgroup_file(controller: &str, id: &str, file: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(id)
        .join(file)
}

/// Capability names to the `/proc/<pid>/status` hex mask.
pub fn cap_mask(names: &[&str]) -> String {
    const CAPS: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let mut mask = 0u64;
    for n in names {
        let short = n.trim_start_matches("CAP_");
        let bit = CAPS
            .iter()
            .position(|c| *c == short)
            .unwrap_or_else(|| panic!("unknown capability {n}"));
        mask |= 1 << bit;
    }
    format!("{mask:016x}")
}

// ---------------------------------------------------------------------------
// Runtime

struct Tracked {
    id: String,
    pid: Option<i32>,
}

/// The runtime under test, with a private `--root` state dir. Every
/// container id handed out by [`Runtime::id`] or used with it is
/// force-deleted on drop.
pub struct Runtime {
    bin: PathBuf,
    root: TempDir,
    scratch: TempDir,
    global: Vec<String>,
    containers: RefCell<Vec<Tracked>>,
    keep: RefCell<Vec<Rc<TempDir>>>,
    adopted: RefCell<Vec<i32>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        become_subreaper();
        let root = tempfile::Builder::new()
            .prefix("barge-root-")
            .tempdir()
            .expect("root tempdir");
        let scratch = tempfile::Builder::new()
            .prefix("barge-scratch-")
            .tempdir()
            .expect("scratch tempdir");
        Runtime {
            bin: runtime_bin(),
            root,
            scratch,
            global: Vec::new(),
            containers: RefCell::new(Vec::new()),
            keep: RefCell::new(Vec::new()),
            adopted: RefCell::new(Vec::new()),
        }
    }

    /// Adds global flags (e.g. `--log FILE`) before every command.
    pub fn with_global_args(mut self, args: &[&str]) -> Runtime {
        self.global.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The `--root` directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A scratch dir for test files (removed on drop).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// The runtime's state dir for `id` (runc: `<root>/<id>`).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root().join(id)
    }

    /// A fresh unique container id, cleaned up on drop.
    pub fn id(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.track(&id);
        id
    }

    /// Registers `id` for cleanup (idempotent).
    pub fn track(&self, id: &str) {
        let mut c = self.containers.borrow_mut();
        if !c.iter().any(|t| t.id == id) {
            c.push(Tracked {
                id: id.to_string(),
                pid: None,
            });
        }
    }

    /// Registers a pid the test caused (e.g. from `exec -d --pid-file`) to be
    /// killed and reaped on drop.
    pub fn adopt_pid(&self, pid: i32) {
        self.adopted.borrow_mut().push(pid);
    }

    fn keep_bundle(&self, b: &Bundle) {
        let mut keep = self.keep.borrow_mut();
        if !keep.iter().any(|d| Rc::ptr_eq(d, &b.dir)) {
            keep.push(b.dir.clone());
        }
    }

    fn remember_pid(&self, id: &str) {
        if let Some(pid) = self.try_pid(id) {
            for t in self.containers.borrow_mut().iter_mut() {
                if t.id == id {
                    t.pid = Some(pid);
                }
            }
        }
    }

    /// A `Command` for the runtime with `--root` and global flags set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(self.root()).args(&self.global);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd` with its output to files (see [`run_to_files`]).
    pub fn output(&self, cmd: &mut Command) -> Out {
        let n = next();
        run_to_files(
            cmd,
            &self.scratch().join(format!("cmd-{n}.out")),
            &self.scratch().join(format!("cmd-{n}.err")),
            COMMAND_TIMEOUT,
        )
    }

    /// Runs `<bin> --root <root> args...`.
    pub fn cmd(&self, args: &[&str]) -> Out {
        self.output(self.command().args(args))
    }

    /// Files where a detached container's stdout/stderr go.
    pub fn stdio_files(&self, id: &str) -> (PathBuf, PathBuf) {
        (
            self.scratch().join(format!("{id}.stdout")),
            self.scratch().join(format!("{id}.stderr")),
        )
    }

    /// What a container made by `create` / `run -d` wrote to stdout so far
    /// (its stdio is the create command's).
    pub fn container_stdout(&self, id: &str) -> String {
        read_lossy(&self.stdio_files(id).0)
    }

    pub fn container_stderr(&self, id: &str) -> String {
        read_lossy(&self.stdio_files(id).1)
    }

    /// `run [extra...] --bundle B id` in the foreground; returns when the
    /// container exits, its stdout/stderr are in the result.
    pub fn run_with(&self, extra: &[&str], id: &str, b: &Bundle) -> Out {
        self.track(id);
        self.keep_bundle(b);
        let out = self.output(
            self.command()
                .arg("run")
                .args(extra)
                .arg("--bundle")
                .arg(b.path())
                .arg(id),
        );
        if extra.iter().any(|a| *a == "-d" || *a == "--detach") {
            self.remember_pid(id);
        }
        out
    }

    pub fn run(&self, id: &str, b: &Bundle) -> Out {
        self.run_with(&[], id, b)
    }

    /// `create [extra...] --bundle B id`. The container's stdio goes to
    /// files (see [`Runtime::container_stdout`]); the result holds what the
    /// create command itself printed.
    pub fn create_with(&self, extra: &[&str], id: &str, b: &Bundle) -> Out {
        self.track(id);
        self.keep_bundle(b);
        let (o, e) = self.stdio_files(id);
        let mut cmd = self.command();
        cmd.arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(b.path())
            .arg(id);
        let out = run_to_files(&mut cmd, &o, &e, COMMAND_TIMEOUT);
        self.remember_pid(id);
        out
    }

    pub fn create(&self, id: &str, b: &Bundle) -> Out {
        self.create_with(&[], id, b)
    }

    /// `create` run by `sh -c '<prelude>; exec runtime ...'`: the runtime
    /// inherits what the prelude sets (`trap '' HUP`: signals ignored).
    pub fn create_after(&self, prelude: &str, id: &str, b: &Bundle) -> Out {
        self.track(id);
        self.keep_bundle(b);
        let (o, e) = self.stdio_files(id);
        let inner = self.command();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude}; exec \"$@\""))
            .arg("sh")
            .arg(inner.get_program())
            .args(inner.get_args())
            .arg("create")
            .arg("--bundle")
            .arg(b.path())
            .arg(id)
            .stdin(Stdio::null());
        let out = run_to_files(&mut cmd, &o, &e, COMMAND_TIMEOUT);
        self.remember_pid(id);
        out
    }

    /// `run -d`: like create + start, stdio to files.
    pub fn run_detached(&self, id: &str, b: &Bundle) -> Out {
        self.track(id);
        self.keep_bundle(b);
        let (o, e) = self.stdio_files(id);
        let mut cmd = self.command();
        cmd.arg("run")
            .arg("-d")
            .arg("--bundle")
            .arg(b.path())
            .arg(id);
        let out = run_to_files(&mut cmd, &o, &e, COMMAND_TIMEOUT);
        self.remember_pid(id);
        out
    }

    pub fn start(&self, id: &str) -> Out {
        self.cmd(&["start", id])
    }

    pub fn state(&self, id: &str) -> Out {
        self.cmd(&["state", id])
    }

    /// `state` parsed; panics if the command fails.
    #[track_caller]
    pub fn state_json(&self, id: &str) -> Value {
        self.state(id).ok().json()
    }

    /// The container's status, or None if `state` fails.
    pub fn status(&self, id: &str) -> Option<String> {
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

    /// The container's init pid on the host (from `state`).
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        let state = self.state_json(id);
        state["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid in state: {state}")) as i32
    }

    /// `kill id SIGNAL`.
    pub fn kill(&self, id: &str, signal: &str) -> Out {
        self.cmd(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Out {
        self.cmd(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Out {
        self.cmd(&["delete", "--force", id])
    }

    pub fn pause(&self, id: &str) -> Out {
        self.cmd(&["pause", id])
    }

    pub fn resume(&self, id: &str) -> Out {
        self.cmd(&["resume", id])
    }

    /// `exec id args...` in the foreground.
    pub fn exec(&self, id: &str, args: &[&str]) -> Out {
        let mut v = vec!["exec", id];
        v.extend_from_slice(args);
        self.cmd(&v)
    }

    /// `exec [flags...] id args...` in the foreground.
    pub fn exec_with(&self, flags: &[&str], id: &str, args: &[&str]) -> Out {
        let mut v = vec!["exec"];
        v.extend_from_slice(flags);
        v.push(id);
        v.extend_from_slice(args);
        self.cmd(&v)
    }

    /// Waits until the container's status is `want`; panics on timeout.
    #[track_caller]
    pub fn wait_for_status(&self, id: &str, want: &str) {
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

    /// create + start, asserting both succeed; for tests about a running
    /// container.
    #[track_caller]
    pub fn start_container(&self, id: &str, b: &Bundle) {
        self.create(id, b).ok();
        self.start(id).ok();
        self.wait_for_status(id, "running");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Adopted processes first: a killed pid namespace's init only
        // finishes exiting once every process of the namespace is reaped,
        // and as subreaper the test process is the one that reaps these.
        for pid in self.adopted.borrow().iter().copied() {
            if pid_alive(pid) {
                signal_pid(pid, libc::SIGKILL);
                wait_until(Duration::from_secs(5), || !pid_alive(pid));
            }
            reap(pid);
        }
        let tracked: Vec<(String, Option<i32>)> = self
            .containers
            .borrow()
            .iter()
            .map(|t| (t.id.clone(), t.pid))
            .collect();
        for (id, pid) in tracked {
            let pid = self.try_pid(&id).or(pid);
            let _ = self.delete_force(&id);
            if let Some(pid) = pid {
                // The runtime may be broken: make sure the init is gone
                // (the pid cannot be reused before it is reaped, and as
                // subreaper the test process is the one reaping it).
                if pid_alive(pid) {
                    signal_pid(pid, libc::SIGKILL);
                    wait_until(Duration::from_secs(5), || !pid_alive(pid));
                    let _ = self.delete_force(&id);
                }
                wait_until(Duration::from_secs(5), || !pid_alive(pid));
                reap(pid);
            }
            for dir in cgroup_dirs(&id) {
                let _ = fs::remove_dir(&dir);
            }
        }
        // Bundles kept alive by `keep` are removed after this, when the
        // fields drop.
    }
}
