//! Support for the peer-interop tests (`tests/podman.rs`, `tests/containerd.rs`):
//! each test starts a *private* podman or containerd (own config, storage, state,
//! sockets and cgroup parent, all under a tempdir) that drives the runtime under
//! test, and removes everything it made when dropped.
//!
//! The runtime under test is `$BARGE_RUNC_BIN` if set (e.g. `/usr/sbin/runc` to
//! check the tests themselves), else the `barge-runc` binary cargo just built.
//!
//! Included by each test crate with `#[path = "support/peers.rs"] mod peers;`;
//! not every crate uses every helper.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Upper bound for any single peer command; a hung runtime must fail the test,
/// not hang CI.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// How long cleanup waits for stragglers (monitors, zombies) to go away.
pub const CLEANUP_WAIT: Duration = Duration::from_secs(30);

/// Name of the image every private podman imports from the busybox bundle rootfs.
pub const PODMAN_IMAGE: &str = "localhost/barge-test-busybox:latest";

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, usable as cgroup/namespace/dir name.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        INSTANCE.fetch_add(1, Ordering::SeqCst)
    )
}

/// Absolute path of the OCI runtime under test.
pub fn runtime_bin() -> PathBuf {
    let p = match std::env::var_os("BARGE_RUNC_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_barge-runc")),
    };
    let p = fs::canonicalize(&p)
        .unwrap_or_else(|e| panic!("runtime under test {} is not usable: {e}", p.display()));
    assert!(
        p.is_file(),
        "runtime under test {} is not a file",
        p.display()
    );
    p
}

/// The workspace root (two levels above this package's manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fail clearly unless we are root: podman and containerd are driven as root.
pub fn require_root() {
    let uid = fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    assert!(
        uid == 0,
        "the podman/containerd interop tests drive real container managers and must \
         run as root (CI runs .ci/run as root); euid is {uid}"
    );
}

/// Path of `tool` in PATH (or the sbin dirs); panics naming the Debian package
/// that provides it when it is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for d in dirs {
        let candidate = d.join(tool);
        if let Ok(m) = fs::metadata(&candidate) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return candidate;
            }
        }
    }
    panic!(
        "`{tool}` is not installed (not found in PATH): install the Debian package \
         `{package}` (apt-get install -y {package}); .ci/run installs it in CI"
    );
}

/// The outcome of a finished command, with everything needed to explain a failure.
pub struct Ran {
    pub cmd: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the command, its exit status and both outputs unless it exited 0.
    #[track_caller]
    pub fn expect_success(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics unless the command exited with `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "unexpected exit status: {self}");
        self
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n  exit: {:?}\n  --- stdout ---\n{}\n  --- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` (stdin from /dev/null) to completion, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Ran {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > timeout => {
                // Only the child we started; whatever it spawned is cleaned up
                // by the owner's Drop (containers by id, daemons by PID).
                let _ = child.kill();
                let _ = child.wait();
                let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into();
                let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into();
                let ran = Ran {
                    cmd: desc,
                    code: None,
                    stdout,
                    stderr,
                };
                panic!("timed out after {timeout:?}: {ran}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
    };
    Ran {
        cmd: desc,
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into(),
    }
}

pub fn run(cmd: &mut Command) -> Ran {
    run_with_timeout(cmd, CMD_TIMEOUT)
}

/// Makes an OCI bundle at `dir` with scripts/make-test-bundle.sh (busybox rootfs,
/// `runc spec`-like config.json running `args`). Returns the rootfs path.
pub fn make_bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let script = workspace_root().join("scripts/make-test-bundle.sh");
    assert!(
        script.is_file(),
        "{} is missing (it makes the busybox test bundle)",
        script.display()
    );
    run(Command::new("bash").arg(&script).arg(dir).args(args)).expect_success();
    let rootfs = dir.join("rootfs");
    assert!(
        rootfs.join("bin/busybox").is_file(),
        "make-test-bundle.sh made no {}/bin/busybox (is busybox-static installed?)",
        rootfs.display()
    );
    rootfs
}

/// Single-quotes `s` for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Hard limit of a resource from /proc/self/limits (`None` = unlimited).
fn hard_limit(name: &str) -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let hard = line[name.len()..].split_whitespace().nth(1)?;
    hard.parse().ok()
}

/// Unescapes the octal escapes (`\040`) of a /proc/self/mountinfo path.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(&dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    found
}

/// Lazily unmounts everything mounted at or below `dir` (overlay layers, shm
/// tmpfs, ...) so the directory can be deleted.
pub fn unmount_under(dir: &Path) {
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes())
                .expect("mount path without NUL");
            // SAFETY: `c` is a valid NUL-terminated path that outlives the call;
            // umount2 does not retain the pointer.
            let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "cleanup: umount {}: {}",
                    m.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// The cgroup hierarchies mounted on this host: `/sys/fs/cgroup` itself on a
/// pure v2 host, else every v1 controller dir plus the v2 `unified` tree.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    let mut roots: Vec<PathBuf> = fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .filter_map(|p| fs::canonicalize(p).ok())
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    roots.dedup();
    roots
}

/// Removes an (empty) cgroup, retrying while it is busy: exited members stay
/// until reaped, and orphans are reaped by PID 1 on its own schedule.
fn rmdir_cgroup(p: &Path) {
    let start = Instant::now();
    loop {
        match fs::remove_dir(p) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < CLEANUP_WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!("cleanup: rmdir {}: {e}", p.display());
                return;
            }
        }
    }
}

fn rmdir_cgroup_tree(p: &Path) {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.filter_map(Result::ok) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_cgroup_tree(&e.path());
            }
        }
    }
    rmdir_cgroup(p);
}

fn collect_procs(p: &Path, out: &mut Vec<u32>) {
    if let Ok(s) = fs::read_to_string(p.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.filter_map(Result::ok) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_procs(&e.path(), out);
            }
        }
    }
}

/// PIDs still in the cgroup `rel` or below it, in any hierarchy.
pub fn cgroup_procs(rel: &str) -> Vec<u32> {
    let rel = rel.trim_start_matches('/');
    let mut pids = Vec::new();
    for root in cgroup_roots() {
        collect_procs(&root.join(rel), &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Waits (bounded) until no process is left in the cgroup `rel`: after a
/// container is gone its monitor (conmon) and the `podman container cleanup`
/// it spawns may still be unmounting storage.
pub fn wait_cgroup_empty(rel: &str) {
    let start = Instant::now();
    loop {
        let pids = cgroup_procs(rel);
        if pids.is_empty() {
            return;
        }
        if start.elapsed() > CLEANUP_WAIT {
            eprintln!("cleanup: processes still in cgroup {rel} after {CLEANUP_WAIT:?}: {pids:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the cgroup `rel` (a path relative to each hierarchy root, made by
/// one of our private peers) and its children, in every hierarchy.
pub fn remove_cgroup(rel: &str) {
    let rel = rel.trim_start_matches('/');
    assert!(!rel.is_empty(), "refusing to remove a cgroup root");
    for root in cgroup_roots() {
        let p = root.join(rel);
        if p.is_dir() {
            rmdir_cgroup_tree(&p);
        }
    }
}

/// Removes a tempdir after unmounting whatever is still mounted below it.
fn remove_private_dir(dir: tempfile::TempDir) {
    unmount_under(dir.path());
    let path = dir.path().to_path_buf();
    if let Err(e) = dir.close() {
        eprintln!("cleanup: removing {}: {e}", path.display());
    }
}

fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is a process we
    // spawned and have not yet reaped, so it cannot have been recycled.
    unsafe { libc::kill(pid, sig) == 0 }
}

// ---------------------------------------------------------------------------
// podman

/// A podman with private config, storage (graphroot/runroot), tmpdir, lock
/// files and cgroup parent, using the runtime under test, and a busybox image.
pub struct Podman {
    dir: Option<tempfile::TempDir>,
    runtime: PathBuf,
    cgroup_parent: String,
    cid_files: RefCell<Vec<PathBuf>>,
    counter: Cell<u32>,
}

impl Podman {
    pub fn new() -> Self {
        require_root();
        require_tool("podman", "podman");
        require_tool("conmon", "conmon");
        require_tool("tar", "tar");
        let runtime = runtime_bin();
        let dir = tempfile::Builder::new()
            .prefix("barge-podman-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();

        // This VM's root lacks CAP_SYS_RESOURCE: podman's default ulimits
        // (nofile=1048576, nproc=4194304) would make every start fail, so cap
        // them at our hard limits (nproc also at kernel.pid_max).
        let nofile = hard_limit("Max open files").unwrap_or(1_048_576);
        let pid_max: u64 = fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32768);
        let nproc = hard_limit("Max processes").unwrap_or(pid_max).min(pid_max);
        // No systemd as PID 1: cgroupfs + file events; no network; file locks so
        // nothing is shared with other podman users through /dev/shm.
        let conf = format!(
            "[containers]\n\
             default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             netns = \"none\"\n\
             log_driver = \"k8s-file\"\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             lock_type = \"file\"\n\
             tmp_dir = \"{d}/tmp\"\n",
            d = d.display()
        );
        fs::write(d.join("containers.conf"), conf).expect("write containers.conf");
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/run\"\n",
            d = d.display()
        );
        fs::write(d.join("storage.conf"), storage).expect("write storage.conf");

        let p = Podman {
            dir: Some(dir),
            runtime,
            cgroup_parent: format!("/{}", unique_name("barge-test-podman")),
            cid_files: RefCell::new(Vec::new()),
            counter: Cell::new(0),
        };

        let rootfs = make_bundle(&p.dir().join("bundle"), &["sh"]);
        let tar = p.dir().join("rootfs.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."))
        .expect_success();
        run(p.cmd().arg("import").arg("-q").arg(&tar).arg(PODMAN_IMAGE)).expect_success();
        p
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("live tempdir").path()
    }

    pub fn image(&self) -> &'static str {
        PODMAN_IMAGE
    }

    pub fn runtime(&self) -> &Path {
        &self.runtime
    }

    /// `podman` with the private config/storage/tmpdir and the runtime under test.
    pub fn cmd(&self) -> Command {
        let d = self.dir();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--cgroup-manager")
            .arg("cgroupfs")
            .arg("--events-backend")
            .arg("file")
            .arg("--runtime")
            .arg(&self.runtime);
        c
    }

    /// `podman run --cgroup-parent <ours> --cidfile <tracked> ARGS...`; every
    /// container it makes is force-removed by id on drop (even after `--rm`
    /// failed).
    fn run_cmd(&self, args: &[&str]) -> Command {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let cid = self.dir().join(format!("cid-{n}"));
        self.cid_files.borrow_mut().push(cid.clone());
        let mut c = self.cmd();
        c.arg("run")
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--cidfile")
            .arg(cid)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        run(&mut self.run_cmd(args))
    }

    /// `podman run ARGS...` under a pseudo-terminal (via script(1)), for `-it`.
    pub fn run_in_pty(&self, args: &[&str]) -> Ran {
        require_tool("script", "bsdutils");
        let c = self.run_cmd(args);
        let mut line = shell_quote(&c.get_program().to_string_lossy());
        for a in c.get_args() {
            line.push(' ');
            line.push_str(&shell_quote(&a.to_string_lossy()));
        }
        let mut s = Command::new("script");
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        s.arg("-qec").arg(line).arg("/dev/null");
        run(&mut s)
    }

    pub fn exec(&self, ctr: &str, args: &[&str]) -> Ran {
        run(self.cmd().arg("exec").arg(ctr).args(args))
    }

    pub fn rm_force(&self, ctr: &str) -> Ran {
        run(self
            .cmd()
            .args(["rm", "--force", "--time", "0", "--ignore"])
            .arg(ctr))
    }
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .cid_files
            .borrow()
            .iter()
            .filter_map(|f| fs::read_to_string(f).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for id in ids {
            let r = run(self
                .cmd()
                .args(["rm", "--force", "--time", "0", "--ignore"])
                .arg(&id));
            if !r.success() {
                eprintln!("cleanup: {r}");
            }
        }
        wait_cgroup_empty(&self.cgroup_parent);
        if let Some(dir) = self.dir.take() {
            remove_private_dir(dir);
        }
        remove_cgroup(&self.cgroup_parent);
    }
}

// ---------------------------------------------------------------------------
// containerd

/// A private containerd (own root, state, sockets, config without CRI or any
/// networked plugin) in a tempdir, stopped by its PID on drop. Containers run
/// in a namespace of their own, whose cgroup parent is removed on drop.
pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    runtime: PathBuf,
    namespace: String,
    ids: RefCell<Vec<String>>,
}

impl Containerd {
    pub fn start() -> Self {
        require_root();
        require_tool("containerd", "containerd");
        require_tool("ctr", "containerd");
        require_tool("containerd-shim-runc-v2", "containerd");
        let runtime = runtime_bin();
        let dir = tempfile::Builder::new()
            .prefix("barge-containerd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path().to_path_buf();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            d = d.display()
        );
        fs::write(d.join("config.toml"), config).expect("write config.toml");
        let log = fs::File::create(d.join("containerd.log")).expect("containerd.log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--address")
            .arg(d.join("containerd.sock"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut c = Containerd {
            dir: Some(dir),
            child: Some(child),
            runtime,
            namespace: unique_name("barge-test-ctrd"),
            ids: RefCell::new(Vec::new()),
        };
        c.wait_ready();
        c
    }

    fn wait_ready(&mut self) {
        let sock = self.socket();
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("containerd exited ({st}) at start:\n{}", self.log());
            }
            if sock.exists() && run(self.ctr().arg("version")).success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "containerd did not come up within 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("live tempdir").path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The daemon's log so far, for failure messages: its last 40 lines that
    /// are not plain `level=info` (plugin loading and the like).
    pub fn log(&self) -> String {
        let all = fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = all.lines().filter(|l| !l.contains("level=info")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `ctr` talking to our containerd, in our namespace.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.namespace);
        c
    }

    /// `ctr run --rm --rootfs ROOTFS ID ARGS...` with the runtime under test as
    /// the shim's runc binary (its state under our tempdir).
    pub fn run_rootfs(&self, id: &str, rootfs: &Path, args: &[&str]) -> Ran {
        self.ids.borrow_mut().push(id.to_string());
        let d = self.dir();
        run(self
            .ctr()
            .args(["run", "--rm", "--rootfs"])
            .arg("--runc-binary")
            .arg(&self.runtime)
            .arg("--runc-root")
            .arg(d.join("runc"))
            .arg("--fifo-dir")
            .arg(d.join("fifo"))
            .arg(rootfs)
            .arg(id)
            .args(args))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Anything a failed test left behind: by id, in our namespace only.
            let ids = self.ids.borrow().clone();
            for id in &ids {
                let _ = run_with_timeout(
                    self.ctr()
                        .args(["task", "kill", "--signal", "SIGKILL"])
                        .arg(id),
                    Duration::from_secs(20),
                );
                let _ = run_with_timeout(
                    self.ctr().args(["task", "delete", "--force"]).arg(id),
                    Duration::from_secs(20),
                );
                let _ = run_with_timeout(
                    self.ctr().args(["container", "delete"]).arg(id),
                    Duration::from_secs(20),
                );
            }
            signal(child.id(), libc::SIGTERM);
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        wait_cgroup_empty(&self.namespace);
        if let Some(dir) = self.dir.take() {
            remove_private_dir(dir);
        }
        remove_cgroup(&self.namespace);
    }
}
