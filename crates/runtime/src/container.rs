//! The container lifecycle as the runtime spec defines it: create, start,
//! run, kill, delete, pause, resume, and the read-only queries.
//!
//! `create` is the only place that forks a container init (see
//! [`crate::process::channel`] for the numbered handshake). On any error
//! after the state directory exists, [`Cleanup`] kills the init, removes
//! the cgroup and the state directory, so a failed create leaves nothing.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceType, LinuxResources, Spec,
};

use crate::cgroups::{self, Cgroup};
use crate::config;
use crate::error::{io_err, Context, Result, RuntimeError};
use crate::hooks;
use crate::process::channel::{self, Channel};
use crate::process::init::{self, ConsoleTarget, InitArgs, StartSignal};
use crate::state::{self, Container, Record, Status};
use crate::sys::{self, Forked};
use crate::utils;

/// How `create` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `create`: leave the container waiting for `start`.
    Create,
    /// `run --detach`: start it and return.
    RunDetached,
    /// `run`: start it, wait for it, delete it, return its exit code.
    Run,
}

pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `run --keep`: leave the stopped container for `delete`.
    pub keep: bool,
    /// `--pidfd-socket`: send a pidfd of the init to this unix socket.
    pub pidfd_socket: Option<PathBuf>,
}

/// Undo a half-made container when `create` fails.
struct Cleanup {
    dir: PathBuf,
    cgroup: Option<Box<dyn Cgroup>>,
    pid: Option<i32>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, false);
        }
        if let Some(cg) = &self.cgroup {
            kill_cgroup(cg.as_ref());
            let _ = cg.destroy();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILL whatever is left in a cgroup and wait (bounded) for it to empty.
fn kill_cgroup(cg: &dyn Cgroup) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let frozen = cg.is_frozen().unwrap_or(false);
    loop {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        for p in &pids {
            let _ = sys::kill(*p, libc::SIGKILL);
        }
        if frozen {
            let _ = cg.thaw();
        }
        // Reap any that are our own children.
        while let Ok((p, _)) = sys::waitpid(-1, true) {
            if p <= 0 {
                break;
            }
        }
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    if sys::geteuid() != 0 {
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), fmt(linux.uid_mappings()))
        .ctx(|| "write uid_map (check linux.uidMappings)".into())?;
    std::fs::write(format!("/proc/{pid}/gid_map"), fmt(linux.gid_mappings()))
        .ctx(|| "write gid_map (check linux.gidMappings)".into())?;
    Ok(())
}

/// LISTEN_FDS passed to the runtime by socket activation are passed on.
fn listen_fds() -> (u32, Vec<String>) {
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) if n > 0 => (
            n,
            vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
        ),
        _ => (0, Vec::new()),
    }
}

/// Create (and with `Mode::Run*`, start) a container. Returns the exit
/// code for a foreground `run`, 0 otherwise.
pub fn create(opts: &CreateOptions, mode: Mode) -> Result<i32> {
    utils::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| RuntimeError::Config(format!("bundle {}: {e}", opts.bundle.display())))?;
    crate::debug!("config loaded");
    let loaded = config::load(&bundle)?;
    let spec = &loaded.spec;
    config::validate(spec, true)?;
    if let Some(c) = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
    {
        crate::capabilities::validate(c)?;
    }
    let rootfs = config::rootfs_path(&bundle, spec)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    match (terminal, &opts.console_socket, mode) {
        (true, None, Mode::Create | Mode::RunDetached) => {
            return Err(RuntimeError::Config(
                "process.terminal is true: give --console-socket, or set terminal to false in config.json".into(),
            ))
        }
        (false, Some(_), _) => {
            return Err(RuntimeError::Config(
                "--console-socket was given but process.terminal is false in config.json".into(),
            ))
        }
        _ => {}
    }

    std::fs::create_dir_all(&opts.root)
        .ctx(|| format!("create state root {}", opts.root.display()))?;
    let _ = std::fs::set_permissions(&opts.root, std::fs::Permissions::from_mode(0o700));
    let dir = Container::dir_for(&opts.root, &opts.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::Exists(opts.id.clone()))
        }
        Err(e) => return Err(io_err(format!("create {}", dir.display()), e)),
    }
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        cgroup: None,
        pid: None,
        armed: true,
    };

    let start = if mode == Mode::Create {
        let fifo = dir.join(state::EXEC_FIFO);
        sys::mkfifo(&fifo, 0o622).ctx(|| format!("mkfifo {}", fifo.display()))?;
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622))
            .ctx(|| format!("chmod {}", fifo.display()))?;
        let fd = sys::openat2(
            std::fs::File::open(&dir)
                .ctx(|| dir.display().to_string())?
                .as_fd(),
            Path::new(state::EXEC_FIFO),
            libc::O_PATH,
            0,
            0,
        )
        .ctx(|| "open exec fifo".into())?;
        StartSignal::Fifo(fd)
    } else {
        StartSignal::Channel
    };

    // Cgroup: made and limited before the init runs a single instruction
    // of its own.
    let linux = spec.linux().as_ref();
    let cgroups_path = linux.and_then(|l| l.cgroups_path().clone());
    crate::debug!("cgroup open");
    let cg = cgroups::open(cgroups_path.as_deref(), &opts.id)?;
    cg.create()?;
    cleanup.cgroup = Some(cg);
    let cg = cleanup
        .cgroup
        .as_deref()
        .ok_or_else(|| RuntimeError::Other("cgroup".into()))?;
    if let Some(res) = linux.and_then(|l| l.resources().as_ref()) {
        cg.apply(&with_default_devices(res)?)?;
    }

    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => {
            let s = UnixStream::connect(p)
                .ctx(|| format!("connect to console socket {}", p.display()))?;
            ConsoleTarget::Socket(OwnedFd::from(s))
        }
        (None, true) => ConsoleTarget::Parent,
        _ => ConsoleTarget::None,
    };

    let mut join = Vec::new();
    let mut new_ns = Vec::new();
    let mut clone_flags = 0;
    for (t, path) in config::namespaces(spec) {
        match path {
            Some(p) => {
                let f = std::fs::File::open(&p).map_err(|e| {
                    RuntimeError::Config(format!("{t} namespace path {}: {e}", p.display()))
                })?;
                join.push((t, OwnedFd::from(f)));
            }
            None => {
                new_ns.push(t);
                if !matches!(t, LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time) {
                    clone_flags |= init::namespace_flag(t);
                }
            }
        }
    }
    // A pid namespace is entered before clone, for the child only.
    let own_pidns = match join.iter().find(|(t, _)| *t == LinuxNamespaceType::Pid) {
        Some((_, fd)) => {
            let own =
                std::fs::File::open("/proc/self/ns/pid").ctx(|| "open own pid namespace".into())?;
            sys::setns(fd.as_fd(), libc::CLONE_NEWPID).ctx(|| "join pid namespace".into())?;
            Some(own)
        }
        None => None,
    };

    // The seccomp program, from the cache when it has it: the init then
    // installs it instead of compiling the filter.
    let seccomp = linux
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| crate::seccomp::prepare(s, &opts.root));
    crate::debug!("before clone");
    let (listen, extra_env) = listen_fds();
    let (parent_ch, child_ch) = Channel::pair()?;
    let cgroup_mounts = cg.mounts();
    // A new user namespace that must also join namespaces owned by the host
    // (a pod's network namespace, say): the joins happen first, with the
    // host's privileges, then the user namespace and the rest are unshared
    // by a first child that forks the init (see init::two_stage).
    let two_stage = new_ns.contains(&LinuxNamespaceType::User)
        && join
            .iter()
            .any(|(t, _)| !matches!(t, LinuxNamespaceType::User | LinuxNamespaceType::Pid));
    if two_stage {
        clone_flags = 0;
    }
    let forked = sys::clone_fork(clone_flags);
    if let Some(own) = &own_pidns {
        let _ = sys::setns(own.as_fd(), libc::CLONE_NEWPID);
    }
    let pid = match forked.map_err(|e| io_err("clone the container init", e))? {
        Forked::Child => {
            drop(parent_ch);
            // The child must never run the parent's cleanup.
            std::mem::forget(cleanup);
            let args = InitArgs {
                id: &opts.id,
                spec,
                bundle: &bundle,
                rootfs: &rootfs,
                channel: child_ch,
                start,
                console,
                join,
                new_ns,
                cgroup_mounts,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds + listen,
                extra_env,
                seccomp,
            };
            if two_stage {
                init::two_stage(args)
            } else {
                init::run(args)
            }
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_ch);
    drop(console);
    drop(start);
    cleanup.pid = Some(pid);

    let pid = if two_stage {
        // Stage 1 asks for its user namespace's maps, then reports the init.
        let first = pid;
        loop {
            let m = parent_ch.recv()?.ok_or_else(|| {
                RuntimeError::Init("container setup exited before forking the init".into())
            })?;
            match m.tag {
                channel::USERNS => {
                    write_id_maps(first, spec)?;
                    parent_ch.send(channel::USERNS_DONE, b"")?;
                }
                channel::INIT_PID => {
                    let _ = sys::waitpid(first, false);
                    let init: i32 = String::from_utf8_lossy(&m.payload).parse().map_err(|_| {
                        RuntimeError::Other("sync: bad init pid from stage 1".into())
                    })?;
                    cleanup.pid = Some(init);
                    break init;
                }
                _ => return Err(m.into_error()),
            }
        }
    } else {
        if new_ns_has(spec, LinuxNamespaceType::User) {
            write_id_maps(pid, spec)?;
        }
        pid
    };
    crate::debug!("child cloned");
    parent_ch.send(channel::GO, pid.to_string().as_bytes())?;
    cg.add_task(pid)?;
    if let Err(e) = parent_ch.send(channel::CGROUP, b"") {
        // The init failed meanwhile: its own message says why.
        return Err(match parent_ch.recv() {
            Ok(Some(m)) if m.tag == channel::ERROR => {
                RuntimeError::Init(String::from_utf8_lossy(&m.payload).into_owned())
            }
            _ => e,
        });
    }
    crate::debug!("cgroup joined");

    let annotations = spec.annotations().clone();
    let mut pty_master = None;
    let notify_fd = loop {
        let msg = match parent_ch.recv()? {
            Some(m) => m,
            None => {
                let status = sys::waitpid(pid, false)
                    .map(|(_, s)| s.code())
                    .unwrap_or(-1);
                cleanup.pid = None;
                return Err(RuntimeError::Init(format!(
                    "container init exited during setup (exit code {status})"
                )));
            }
        };
        match msg.tag {
            channel::HOOKS => {
                let st = state::spec_state(
                    &opts.id,
                    Status::Creating,
                    pid,
                    &bundle,
                    annotations.as_ref(),
                );
                let h = spec.hooks().as_ref();
                #[allow(deprecated)]
                hooks::run_all("prestart", h.and_then(|h| h.prestart().as_ref()), &st)?;
                hooks::run_all(
                    "createRuntime",
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &st,
                )?;
                parent_ch.send(channel::HOOKS_DONE, b"")?;
            }
            channel::PTY => pty_master = msg.fds.into_iter().next(),
            channel::READY => break msg.fds.into_iter().next(),
            _ => return Err(msg.into_error()),
        }
    };

    crate::debug!("child ready");
    let pid_start = utils::proc_start_time(pid).map(|(s, _)| s).unwrap_or(0);
    let config_raw = serde_json::value::RawValue::from_string(
        String::from_utf8(loaded.raw.clone())
            .map_err(|_| RuntimeError::Config("config.json is not UTF-8".into()))?,
    )
    .map_err(|e| RuntimeError::Config(e.to_string()))?;
    let container = Container {
        dir: dir.clone(),
        record: Record {
            id: opts.id.clone(),
            pid,
            pid_start,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: utils::now_rfc3339(),
            owner: String::new(),
            annotations: annotations.clone(),
            cgroups_path,
            own_cgroup: true,
            config: config_raw,
        },
    };
    container.save()?;
    if let Some(pf) = &opts.pid_file {
        utils::write_pid_file(pf, pid)?;
    }
    if let Some(sock) = &opts.pidfd_socket {
        send_pidfd(sock, pid)?;
    }
    if let Some(fd) = notify_fd {
        let listener = linux
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|s| s.listener_path().clone())
            .ok_or_else(|| {
                RuntimeError::Config(
                    "seccomp uses SCMP_ACT_NOTIFY but linux.seccomp.listenerPath is not set".into(),
                )
            })?;
        let meta = linux
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|s| s.listener_metadata().clone());
        let st = serde_json::json!({
            "ociVersion": state::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": pid,
            "metadata": meta.unwrap_or_default(),
            "state": container.spec_state(Status::Created),
        });
        crate::seccomp::send_notify_fd(
            &listener,
            fd.as_fd(),
            &serde_json::to_vec(&st).unwrap_or_default(),
        )?;
    }

    crate::debug!("state saved");
    if mode == Mode::Create {
        cleanup.armed = false;
        return Ok(0);
    }
    // run: start at once.
    let sigfd = if mode == Mode::Run {
        Some(crate::tty::block_signals()?)
    } else {
        None
    };
    parent_ch.send(channel::START, b"")?;
    // The init's end closes when the process is executed; an Error means a
    // startContainer hook or the exec failed.
    if let Some(m) = parent_ch.recv()? {
        if m.tag == channel::ERROR {
            return Err(RuntimeError::Init(
                String::from_utf8_lossy(&m.payload).into_owned(),
            ));
        }
    }
    cleanup.armed = false;
    crate::debug!("started");
    run_poststart(&container, spec);
    let Some(sigfd) = sigfd else { return Ok(0) };
    let code = crate::tty::wait_forwarding(pid, sigfd, pty_master)?;
    crate::debug!("exited");
    if !opts.keep {
        destroy(&container, Some(spec));
    }
    Ok(code)
}

/// Device rules end with the devices every container needs (as runc
/// appends them): mknod of any node, and the default devices and ptys.
fn with_default_devices(res: &LinuxResources) -> Result<LinuxResources> {
    let Some(rules) = res.devices() else {
        return Ok(res.clone());
    };
    let mut rules = rules.clone();
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access)
            .build()
            .map(|mut r| {
                r.set_major(major);
                r.set_minor(minor);
                r
            })
            .map_err(|e| RuntimeError::Other(e.to_string()))
    };
    use LinuxDeviceType::{B, C};
    rules.push(rule(C, None, None, "m")?);
    rules.push(rule(B, None, None, "m")?);
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
    ] {
        rules.push(rule(C, Some(major), minor, "rwm")?);
    }
    let mut res = res.clone();
    res.set_devices(Some(rules));
    Ok(res)
}

/// Send a pidfd of `pid` to the unix socket at `path` (runc's --pidfd-socket).
pub fn send_pidfd(path: &Path, pid: i32) -> Result<()> {
    let fd = sys::pidfd_open(pid).map_err(|e| io_err(format!("pidfd_open {pid}"), e))?;
    let sock =
        UnixStream::connect(path).ctx(|| format!("connect to pidfd socket {}", path.display()))?;
    sys::socket::send_fds(sock.as_fd(), &[fd.as_fd()], b"pidfd")
        .ctx(|| format!("send pidfd to {}", path.display()))
}

fn new_ns_has(spec: &Spec, t: LinuxNamespaceType) -> bool {
    config::namespaces(spec)
        .iter()
        .any(|(ty, p)| *ty == t && p.is_none())
}

fn run_poststart(c: &Container, spec: &Spec) {
    let st = c.spec_state(Status::Running);
    if let Err(e) = hooks::run_all(
        "poststart",
        spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()),
        &st,
    ) {
        // The spec: a failing poststart hook is a warning; the container runs on.
        eprintln!("warning: {e}");
    }
}

/// `start`: let a created container run its process.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => {
            return Err(RuntimeError::State(
                "cannot start a container that has stopped".into(),
            ))
        }
        s => {
            return Err(RuntimeError::State(format!(
                "cannot start an already {s} container"
            )))
        }
    }
    let fifo = c.dir.join(state::EXEC_FIFO);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&fifo)
        .ctx(|| format!("open {}", fifo.display()))?;
    // "0" once startContainer hooks ran, then EOF when the process is
    // executed (the init's end is close-on-exec): poststart runs after that.
    let mut buf = [0u8; 16];
    let mut got_go = false;
    loop {
        let r = sys::poll(&[(f.as_fd(), libc::POLLIN)], 100)
            .map_err(|e| io_err("poll exec fifo", e))?;
        if r[0] & (libc::POLLIN | libc::POLLHUP) != 0 {
            let n = sys::read(f.as_fd(), &mut buf).map_err(|e| io_err("read exec fifo", e))?;
            if n > 0 {
                got_go = true;
                continue;
            }
            if got_go {
                break;
            }
        }
        if !c.init_alive() {
            if got_go {
                break;
            }
            return Err(RuntimeError::State(format!(
                "container \"{id}\" init exited before it was started (did a startContainer hook fail?)"
            )));
        }
    }
    let _ = std::fs::remove_file(&fifo);
    let spec = c.spec()?;
    run_poststart(&c, &spec);
    Ok(())
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// `kill`: send a signal to the init (or, with `all`, to every process of
/// the container).
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if status == Status::Stopped && !all {
        return Err(RuntimeError::State("container not running".into()));
    }
    if all {
        let cg = c.cgroup()?;
        for p in cg.pids()? {
            let _ = sys::kill(p, sig);
        }
        if sig == libc::SIGKILL && status == Status::Paused {
            let _ = cg.thaw();
        }
        return Ok(());
    }
    // Through a pidfd, so a reused pid can never be hit.
    let fd = sys::pidfd_open(c.record.pid)
        .map_err(|_| RuntimeError::State("container not running".into()))?;
    if !c.init_alive() {
        return Err(RuntimeError::State("container not running".into()));
    }
    sys::pidfd_send_signal(fd.as_fd(), sig)
        .map_err(|e| io_err(format!("signal {sig} to container \"{id}\""), e))
}

/// Wait (bounded) until the init of `c` is gone.
fn wait_gone(c: &Container, timeout: Duration) -> bool {
    let Ok(fd) = sys::pidfd_open(c.record.pid) else {
        return true;
    };
    if !c.init_alive() {
        return true;
    }
    matches!(sys::poll(&[(fd.as_fd(), libc::POLLIN)], timeout.as_millis() as i32), Ok(r) if r[0] != 0)
}

/// Remove a stopped container: leftover processes, cgroup, poststop hooks,
/// state directory.
fn destroy(c: &Container, spec: Option<&Spec>) {
    crate::debug!("destroy: begin");
    if let Ok(cg) = c.cgroup() {
        kill_cgroup(cg.as_ref());
        crate::debug!("destroy: cgroup empty");
        if let Err(e) = cg.destroy() {
            eprintln!("warning: {e}");
        }
    }
    if let Some(spec) = spec {
        let st = c.spec_state(Status::Stopped);
        if let Err(e) = hooks::run_all(
            "poststop",
            spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()),
            &st,
        ) {
            eprintln!("warning: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&c.dir);
    crate::debug!("destroy: done");
}

/// `delete [--force]`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(RuntimeError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let spec = c.spec().ok();
    match c.status() {
        Status::Stopped => {}
        Status::Created => {
            let _ = sys::kill(c.record.pid, libc::SIGKILL);
            wait_gone(&c, Duration::from_secs(10));
        }
        s if force => {
            let _ = sys::kill(c.record.pid, libc::SIGKILL);
            if s == Status::Paused {
                if let Ok(cg) = c.cgroup() {
                    let _ = cg.thaw();
                }
            }
            if !wait_gone(&c, Duration::from_secs(10)) {
                return Err(RuntimeError::State(format!(
                    "container \"{id}\" did not die after SIGKILL"
                )));
            }
        }
        s => {
            return Err(RuntimeError::State(format!(
                "cannot delete container {id} that is not stopped: {s} (use --force)"
            )))
        }
    }
    destroy(&c, spec.as_ref());
    Ok(())
}

/// `pause`.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Running | Status::Created => Ok(c.cgroup()?.freeze()?),
        Status::Paused => Err(RuntimeError::State("container already paused".into())),
        _ => Err(RuntimeError::State("container not running".into())),
    }
}

/// `resume`.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Paused => Ok(c.cgroup()?.thaw()?),
        _ => Err(RuntimeError::State("container not paused".into())),
    }
}

/// The pids of every process of the container.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        return Ok(Vec::new());
    }
    Ok(c.cgroup()?.pids()?)
}

/// `update`: apply new resources to a running container.
pub fn update(root: &Path, id: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        return Err(RuntimeError::State("container not running".into()));
    }
    Ok(c.cgroup()?.apply(res)?)
}

/// `events --stats` data for one container.
pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        return Err(RuntimeError::State("container not running".into()));
    }
    let s = c.cgroup()?.stats()?;
    Ok(serde_json::json!({"type": "stats", "id": id, "data": s}))
}

/// OOM kill counter, for `events`.
pub fn oom_count(root: &Path, id: &str) -> Result<u64> {
    let c = Container::load(root, id)?;
    Ok(c.cgroup()?.oom_kill_count()?)
}
