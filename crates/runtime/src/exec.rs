//! `exec`: start another process in a running container. The new process
//! joins every namespace of the container's init (through /proc/<pid>/ns),
//! its cgroup, and then goes through the same final steps as the init
//! (rlimits, identity, seccomp), without the rootfs work.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::config;
use crate::error::{io_err, Context, Result, RuntimeError};
use crate::process::channel::{self, Channel};
use crate::process::finalize;
use crate::process::init;
use crate::seccomp::Prepared;
use crate::state::{Container, Status};
use crate::sys::{self, Forked};
use crate::utils;

pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    pub pidfd_socket: Option<PathBuf>,
}

fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The container's config process, for exec flags to modify.
pub fn base_process(root: &Path, id: &str) -> Result<Process> {
    let c = Container::load(root, id)?;
    let spec = c.spec()?;
    spec.process()
        .clone()
        .ok_or_else(|| RuntimeError::Config("container config has no process".into()))
}

/// Run a process in the container; returns its exit code (0 if detached).
pub fn exec(opts: ExecOptions) -> Result<i32> {
    let c = Container::load(&opts.root, &opts.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => {
            return Err(RuntimeError::State(
                "cannot exec in a paused container (use --ignore-paused)".into(),
            ))
        }
        _ => {
            return Err(RuntimeError::State(
                "cannot exec in a stopped container".into(),
            ))
        }
    }
    let spec = c.spec()?;
    let process = &opts.process;
    match process.args() {
        Some(a) if !a.is_empty() => {}
        _ => {
            return Err(RuntimeError::Config(
                "exec needs a command: give args or --process".into(),
            ))
        }
    }
    if let Some(cp) = process.capabilities() {
        crate::capabilities::validate(cp)?;
    }
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() && opts.detach {
        return Err(RuntimeError::Config(
            "cannot allocate a tty for a detached exec without --console-socket".into(),
        ));
    }
    let pid = c.record.pid;
    let mut join = Vec::new();
    let mut userns = false;
    for (t, _) in config::namespaces(&spec) {
        let p = format!("/proc/{pid}/ns/{}", ns_file(t));
        let f = std::fs::File::open(&p).ctx(|| format!("open {p}"))?;
        userns |= t == LinuxNamespaceType::User;
        join.push((t, OwnedFd::from(f)));
    }
    if !c.init_alive() {
        return Err(RuntimeError::State(
            "cannot exec in a stopped container".into(),
        ));
    }
    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => {
            Some(OwnedFd::from(UnixStream::connect(p).ctx(|| {
                format!("connect to console socket {}", p.display())
            })?))
        }
        _ => None,
    };
    let cg = c.cgroup()?;
    let own_pidns = match join.iter().find(|(t, _)| *t == LinuxNamespaceType::Pid) {
        Some((_, fd)) => {
            let own =
                std::fs::File::open("/proc/self/ns/pid").ctx(|| "open own pid namespace".into())?;
            sys::setns(fd.as_fd(), libc::CLONE_NEWPID).ctx(|| "join pid namespace".into())?;
            Some(own)
        }
        None => None,
    };
    // As for the init: the program from the cache, read before the fork.
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| crate::seccomp::prepare(s, &opts.root));
    let (parent_ch, child_ch) = Channel::pair()?;
    let forked = sys::clone_fork(0);
    if let Some(own) = &own_pidns {
        let _ = sys::setns(own.as_fd(), libc::CLONE_NEWPID);
    }
    let child = match forked.map_err(|e| io_err("fork the exec process", e))? {
        Forked::Child => {
            drop(parent_ch);
            sys::unblock_all_signals();
            sys::default_all_signals();
            let args = ChildArgs {
                join: &join,
                process,
                spec: &spec,
                seccomp,
                userns,
                console,
                preserve_fds: opts.preserve_fds,
            };
            let err = match exec_child(&child_ch, args) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child_ch.send(channel::ERROR, err.to_string().as_bytes());
            sys::exit_now(1)
        }
        Forked::Parent(p) => p,
    };
    drop(child_ch);
    let fail = |e: RuntimeError| {
        let _ = sys::kill(child, libc::SIGKILL);
        let _ = sys::waitpid(child, false);
        e
    };
    if let Err(e) = cg.add_task(child) {
        return Err(fail(e.into()));
    }
    parent_ch.send(channel::GO, b"").map_err(fail)?;
    let mut master = None;
    loop {
        match parent_ch.recv().map_err(fail)? {
            Some(m) if m.tag == channel::PTY => master = m.fds.into_iter().next(),
            Some(m) if m.tag == channel::READY => break,
            Some(m) if m.tag == channel::ERROR => {
                let _ = sys::waitpid(child, false);
                return Err(RuntimeError::Init(
                    String::from_utf8_lossy(&m.payload).into_owned(),
                ));
            }
            _ => {
                let code = sys::waitpid(child, false)
                    .map(|(_, s)| s.code())
                    .unwrap_or(-1);
                return Err(RuntimeError::Init(format!(
                    "exec process exited during setup (exit code {code})"
                )));
            }
        }
    }
    if let Some(pf) = &opts.pid_file {
        utils::write_pid_file(pf, child)?;
    }
    if let Some(sock) = &opts.pidfd_socket {
        crate::container::send_pidfd(sock, child)?;
    }
    let sigfd = if opts.detach {
        None
    } else {
        Some(crate::tty::block_signals()?)
    };
    parent_ch.send(channel::START, b"")?;
    match sigfd {
        None => Ok(0),
        Some(fd) => crate::tty::wait_forwarding(child, fd, master),
    }
}

/// Everything the exec'd process needs; computed by the parent before the
/// fork.
struct ChildArgs<'a> {
    /// The init's namespaces: (type, open fd of the namespace file).
    join: &'a [(LinuxNamespaceType, OwnedFd)],
    process: &'a Process,
    spec: &'a oci_spec::runtime::Spec,
    /// `linux.seccomp`, prepared by the parent (the process cannot read the
    /// host's seccomp cache once it is in the container's mount namespace).
    seccomp: Option<Prepared<'a>>,
    userns: bool,
    console: Option<OwnedFd>,
    preserve_fds: u32,
}

fn exec_child(ch: &Channel, a: ChildArgs) -> Result<std::convert::Infallible> {
    let process = a.process;
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .ctx(|| "set pdeathsig".into())?;
    ch.expect(channel::GO)?;
    init::join_namespaces(a.join)?;
    let pty_for_parent = if process.terminal().unwrap_or(false) {
        sys::setsid().ctx(|| "setsid".into())?;
        let target = match a.console {
            Some(sock) => init::ConsoleTarget::Socket(sock),
            None => init::ConsoleTarget::Parent,
        };
        init::setup_console(&target, process, false)?
    } else {
        None
    };
    finalize::apply_limits(process)?;
    finalize::apply_personality(a.spec)?;
    let exec = finalize::prepare_exec(process, &[])?;
    let _notify = finalize::switch_identity(process, a.seccomp.as_ref(), a.userns)?;
    sys::prctl(libc::PR_SET_PDEATHSIG, 0).ctx(|| "clear pdeathsig".into())?;
    if let Some(m) = pty_for_parent {
        ch.send_fds(channel::PTY, b"", &[m.as_fd()])?;
    }
    ch.send(channel::READY, b"")?;
    ch.expect(channel::START)?;
    finalize::close_extra_fds(a.preserve_fds)?;
    let e = sys::execve(&exec.path, &exec.argv, &exec.envp);
    Err(RuntimeError::Init(format!("exec: {e}")))
}
