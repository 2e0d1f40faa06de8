//! The container's init: the child the runtime clones into the new
//! namespaces. It builds the container from inside, reports Ready, waits for
//! `start`, then becomes the container's process with `execve`.
//!
//! It runs in a forked copy of the runtime (single-threaded, no shared
//! memory) and never returns to the caller: it either execs or exits. Every
//! error is sent to the parent as one line over the sync channel.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::CgroupMount;
use crate::error::{io_err, Context, Result, RuntimeError};
use crate::process::channel::{self, Channel};
use crate::process::finalize;
use crate::rootfs::{self, Root, RootfsContext};
use crate::seccomp::Prepared;
use crate::sys;

/// How the init learns that `start` was called.
pub enum StartSignal {
    /// `create`: block opening the exec FIFO (an O_PATH fd to it) for writing.
    Fifo(OwnedFd),
    /// `run`: wait for a Start message on the channel.
    Channel,
}

/// Where the pty master goes when process.terminal is true.
pub enum ConsoleTarget {
    /// Send it to the `--console-socket` (an fd connected by the parent).
    Socket(OwnedFd),
    /// Send it to the runtime, which proxies it to its own stdio (`run`).
    Parent,
    /// No terminal.
    None,
}

/// Everything the init needs; computed by the parent before clone.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub channel: Channel,
    pub start: StartSignal,
    pub console: ConsoleTarget,
    /// Namespaces to join: (type, open fd of the namespace file).
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// Namespaces that are new (cgroup and time are unshared by the init).
    pub new_ns: Vec<LinuxNamespaceType>,
    pub cgroup_mounts: Vec<CgroupMount>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub extra_env: Vec<String>,
    /// `linux.seccomp`, prepared by the parent (the init cannot read the
    /// host's seccomp cache once it has pivoted).
    pub seccomp: Option<Prepared<'a>>,
}

/// Entry point in the child after clone. Never returns.
pub fn run(args: InitArgs) -> ! {
    sys::unblock_all_signals();
    sys::default_all_signals();
    let err = match init(&args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = args
        .channel
        .send(channel::ERROR, err.to_string().as_bytes());
    sys::exit_now(1)
}

/// Stage 1 of a two-stage start: join the namespaces given by path while
/// still privileged on the host, create the user namespace (the parent
/// writes its maps), unshare the other new namespaces inside it, and fork
/// the init as a sibling (CLONE_PARENT) so the runtime stays its parent.
/// Never returns.
pub fn two_stage(mut args: InitArgs) -> ! {
    sys::unblock_all_signals();
    sys::default_all_signals();
    let stage1 = || -> Result<()> {
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
            .ctx(|| "set pdeathsig".into())?;
        join_namespaces(&args.join)?;
        sys::unshare(libc::CLONE_NEWUSER).ctx(|| "unshare user namespace".into())?;
        args.channel.send(channel::USERNS, b"")?;
        args.channel.expect(channel::USERNS_DONE)?;
        sys::setresgid(0).ctx(|| "setgid 0 in the user namespace".into())?;
        sys::setresuid(0).ctx(|| "setuid 0 in the user namespace".into())?;
        let mut flags = 0;
        for t in &args.new_ns {
            if !matches!(
                t,
                LinuxNamespaceType::User | LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time
            ) {
                flags |= ns_flag(*t);
            }
        }
        sys::unshare(flags).ctx(|| "unshare namespaces".into())?;
        Ok(())
    };
    if let Err(e) = stage1() {
        let _ = args.channel.send(channel::ERROR, e.to_string().as_bytes());
        sys::exit_now(1);
    }
    match sys::clone_fork(libc::CLONE_PARENT) {
        Ok(sys::Forked::Child) => {
            // Already joined and already root in the user namespace.
            args.join.clear();
            run(args)
        }
        Ok(sys::Forked::Parent(pid)) => {
            let _ = args
                .channel
                .send(channel::INIT_PID, pid.to_string().as_bytes());
            sys::exit_now(0)
        }
        Err(e) => {
            let _ = args.channel.send(
                channel::ERROR,
                format!("fork the container init: {e}").as_bytes(),
            );
            sys::exit_now(1)
        }
    }
}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

pub fn namespace_flag(t: LinuxNamespaceType) -> libc::c_int {
    ns_flag(t)
}

/// Join namespaces by fd: the user namespace first, as it decides what the
/// process may do in the others.
pub fn join_namespaces(join: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
    let order = |t: &LinuxNamespaceType| if *t == LinuxNamespaceType::User { 0 } else { 1 };
    let mut v: Vec<&(LinuxNamespaceType, OwnedFd)> = join.iter().collect();
    v.sort_by_key(|(t, _)| order(t));
    for (t, fd) in v {
        if *t == LinuxNamespaceType::Pid {
            continue; // joined by the parent before clone
        }
        sys::setns(fd.as_fd(), ns_flag(*t)).ctx(|| format!("join {t} namespace"))?;
    }
    Ok(())
}

fn init(a: &InitArgs) -> Result<std::convert::Infallible> {
    // Inherited descriptors beyond the preserved ones must not reach hooks
    // or the container (ours are close-on-exec already).
    sys::cloexec_from(3 + a.preserve_fds).ctx(|| "mark fds close-on-exec".into())?;
    // Die with the runtime while setting up; cleared before Ready.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .ctx(|| "set pdeathsig".into())?;
    // 1. wait for the parent: uid/gid maps written.
    let go = a.channel.expect(channel::GO)?;
    let host_pid: i32 = String::from_utf8_lossy(&go.payload).parse().unwrap_or(0);
    let is_new = |t| a.new_ns.contains(&t);
    let userns = is_new(LinuxNamespaceType::User);
    if userns {
        sys::setresgid(0).ctx(|| "setgid 0 in the user namespace".into())?;
        sys::setresuid(0).ctx(|| "setuid 0 in the user namespace".into())?;
    }
    crate::debug!("init: go");
    join_namespaces(&a.join)?;
    if is_new(LinuxNamespaceType::Time) {
        sys::unshare(libc::CLONE_NEWTIME).ctx(|| "unshare time namespace".into())?;
        write_time_offsets(a.spec)?;
    }
    sys::setsid().ctx(|| "setsid".into())?;
    if !a.no_new_keyring {
        let name = std::ffi::CString::new(format!("_ses.{}", a.id)).unwrap_or_default();
        if let Err(e) = sys::join_session_keyring(&name) {
            // Keyrings are a hardening measure; kernels without them are fine.
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EACCES | libc::EPERM | libc::EDQUOT)
            ) {
                return Err(io_err("join session keyring", e));
            }
        }
    }
    if let Some(h) = a.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys::sethostname(h).ctx(|| format!("set hostname {h}"))?;
    }
    if let Some(d) = a.spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        sys::setdomainname(d).ctx(|| format!("set domainname {d}"))?;
    }
    sys::umask(0);
    let own_mount_ns = is_new(LinuxNamespaceType::Mount);
    let mut joined = false;
    if own_mount_ns {
        crate::debug!("init: namespaces done");
        rootfs::prepare(a.spec, a.rootfs)?;
        let root = Root::open(a.rootfs)?;
        let ctx = RootfsContext {
            spec: a.spec,
            bundle: a.bundle,
            root: &root,
            cgroup_mounts: &a.cgroup_mounts,
            cgroupns: is_new(LinuxNamespaceType::Cgroup),
            userns,
        };
        crate::debug!("init: rootfs bound");
        // A cgroup2 mount in a cgroup namespace shows the namespace's root:
        // only then must the mounts wait for the cgroup.
        let cgroup2_in_ns = ctx.cgroupns
            && a.cgroup_mounts.iter().all(|m| m.name.is_empty())
            && a.spec
                .mounts()
                .iter()
                .flatten()
                .any(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")));
        if cgroup2_in_ns {
            wait_cgroup(a)?;
            joined = true;
        }
        rootfs::mount_all(&ctx)?;
        crate::debug!("init: mounts done");
        rootfs::setup_dev(&ctx)?;
    }
    // Hooks may look at the process's cgroup: from here on it is in place.
    if !joined {
        wait_cgroup(a)?;
    }
    // 2. prestart and createRuntime hooks, run by the parent.
    let hooks = a.spec.hooks().as_ref();
    #[allow(deprecated)]
    let parent_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if parent_hooks {
        a.channel.send(channel::HOOKS, b"")?;
        a.channel.expect(channel::HOOKS_DONE)?;
    }
    let state = crate::state::spec_state(
        a.id,
        crate::state::Status::Created,
        host_pid,
        a.bundle,
        a.spec.annotations().as_ref(),
    );
    crate::hooks::run_all(
        "createContainer",
        hooks.and_then(|h| h.create_container().as_ref()),
        &state,
    )?;
    if own_mount_ns {
        crate::debug!("init: hooks done");
        rootfs::pivot(a.rootfs, a.no_pivot)?;
    }
    crate::debug!("init: pivoted");
    let process = a
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::Config("process is missing".into()))?;
    let pty_for_parent = if process.terminal().unwrap_or(false) {
        setup_console(&a.console, process, true)?
    } else {
        None
    };
    if own_mount_ns {
        rootfs::finalize(a.spec)?;
    } else if let Some(sysctl) = a.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            std::fs::write(PathBuf::from("/proc/sys").join(k.replace('.', "/")), v)
                .ctx(|| format!("set sysctl {k}"))?;
        }
    }
    crate::debug!("init: rootfs finalized");
    finalize::apply_limits(process)?;
    finalize::apply_personality(a.spec)?;
    let exec = finalize::prepare_exec(process, &a.extra_env)?;
    let notify = finalize::switch_identity(process, a.seccomp.as_ref(), userns)?;
    crate::debug!("init: identity switched");
    // 4. Ready: from here on the container outlives the runtime.
    sys::prctl(libc::PR_SET_PDEATHSIG, 0).ctx(|| "clear pdeathsig".into())?;
    if let Some(m) = pty_for_parent {
        a.channel.send_fds(channel::PTY, b"", &[m.as_fd()])?;
    }
    match &notify {
        Some(fd) => a.channel.send_fds(channel::READY, b"", &[fd.as_fd()])?,
        None => a.channel.send(channel::READY, b"")?,
    }
    drop(notify);
    // 5. wait for start. The FIFO (or the channel) stays open, close-on-exec,
    // so `start` sees it close exactly when the process has been executed:
    // poststart hooks then run after it, as the spec orders.
    let fifo = match &a.start {
        StartSignal::Fifo(fd) => Some(open_fifo(fd.as_fd())?),
        StartSignal::Channel => {
            a.channel.expect(channel::START)?;
            None
        }
    };
    crate::hooks::run_all(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        &state,
    )?;
    if let Some(f) = &fifo {
        sys::write_all(f.as_fd(), b"0").ctx(|| "write exec fifo".into())?;
    }
    crate::debug!("init: exec");
    finalize::close_extra_fds(a.preserve_fds)?;
    let e = sys::execve(&exec.path, &exec.argv, &exec.envp);
    Err(RuntimeError::Init(format!(
        "exec: \"{}\": {e}",
        process
            .args()
            .as_ref()
            .and_then(|a| a.first())
            .map(String::as_str)
            .unwrap_or("")
    )))
}

/// Wait until the parent has moved us into the container's cgroup, then
/// make that cgroup the root of a new cgroup namespace.
fn wait_cgroup(a: &InitArgs) -> Result<()> {
    a.channel.expect(channel::CGROUP)?;
    crate::debug!("init: in cgroup");
    if a.new_ns.contains(&LinuxNamespaceType::Cgroup) {
        sys::unshare(libc::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace".into())?;
    }
    Ok(())
}

/// Block until `start` opens the FIFO for reading.
fn open_fifo(fd: BorrowedFd) -> Result<std::fs::File> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .ctx(|| "open exec fifo (is /proc mounted in the container?)".into())
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut s = String::new();
    for (clock, off) in offsets {
        s.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", s).ctx(|| "write time namespace offsets".into())
}

/// Open a pty in the container's devpts, hand the master over, make the
/// slave the process's stdio and controlling terminal (the caller is a
/// session leader) and, for the init, /dev/console. Returns the master when
/// it goes to the runtime (`ConsoleTarget::Parent`).
pub(crate) fn setup_console(
    target: &ConsoleTarget,
    process: &oci_spec::runtime::Process,
    bind_dev_console: bool,
) -> Result<Option<OwnedFd>> {
    let (master, slave_path) =
        sys::open_pty(Path::new("/dev/ptmx")).ctx(|| "open /dev/ptmx".into())?;
    if let Some(b) = process.console_size() {
        let _ = sys::set_winsize(master.as_fd(), b.height() as u16, b.width() as u16);
    }
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags_noctty()
        .open(&slave_path)
        .ctx(|| format!("open {slave_path}"))?;
    let _ = sys::fchownat_empty(slave.as_fd(), process.user().uid(), u32::MAX);
    match target {
        ConsoleTarget::Socket(sock) => {
            sys::socket::send_fds(sock.as_fd(), &[master.as_fd()], slave_path.as_bytes())
                .ctx(|| "send the pty master to the console socket".into())?;
        }
        ConsoleTarget::Parent => {}
        ConsoleTarget::None => {
            return Err(RuntimeError::Config(
                "process.terminal is true but no --console-socket was given".into(),
            ))
        }
    }
    // /dev/console is the pty too (bind mount, as runc).
    let console_file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/dev/console")
    };
    if bind_dev_console && console_file().is_ok() {
        let _ = sys::mount(
            Some(Path::new(&slave_path)),
            Path::new("/dev/console"),
            Some("bind"),
            libc::MS_BIND,
            None,
        );
    }
    for fd in 0..3 {
        sys::dup2(slave.as_raw_fd(), fd).ctx(|| "dup pty to stdio".into())?;
    }
    sys::set_controlling_tty(slave.as_fd()).ctx(|| "set controlling terminal".into())?;
    Ok(match target {
        ConsoleTarget::Parent => Some(master),
        _ => None,
    })
}

trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY)
    }
}
