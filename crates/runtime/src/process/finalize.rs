//! The last steps before `execve`, shared by the container's init and by
//! exec'd processes: rlimits, oom score, the environment, finding the
//! program, and the switch of identity (seccomp, bounding set, groups, uid,
//! capabilities, no_new_privs) in the order runc uses.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    PosixRlimitType, Process, Scheduler,
};

use crate::error::{io_err, Context, Result, RuntimeError};
use crate::seccomp::Prepared;
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `execve` will be called with.
pub struct Exec {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// Apply process.rlimits and process.oomScoreAdj.
pub fn apply_limits(process: &Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        sys::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard()).map_err(|e| {
            RuntimeError::Other(format!(
                "setrlimit {:?} (soft {}, hard {}): {e}{}",
                r.typ(),
                r.soft(),
                r.hard(),
                if e.raw_os_error() == Some(libc::EPERM) {
                    "; a hard limit above the caller's own needs CAP_SYS_RESOURCE"
                } else {
                    ""
                }
            ))
        })?;
    }
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        sys::ioprio_set_self(class, io.priority())
            .ctx(|| format!("set io priority {:?} {}", io.class(), io.priority()))?;
    }
    if let Some(sch) = process.scheduler() {
        apply_scheduler(sch)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("set oom_score_adj to {adj}"))?;
    }
    Ok(())
}

fn apply_scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(RuntimeError::Config(
                "process.scheduler.policy SCHED_ISO is not implemented by Linux".into(),
            ))
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let mut attr = sys::SchedAttr {
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    };
    sys::sched_setattr_self(&mut attr).ctx(|| format!("set scheduler {:?}", s.policy()))
}

/// Apply linux.personality (before exec; it is inherited across it).
pub fn apply_personality(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else {
        return Ok(());
    };
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    if let Some(f) = p.flags().as_ref().filter(|f| !f.is_empty()) {
        return Err(RuntimeError::Config(format!(
            "linux.personality.flags {f:?}: no flags are defined by the spec"
        )));
    }
    sys::personality(persona).ctx(|| format!("set personality {:?}", p.domain()))
}

/// The environment: the config's, plus HOME from /etc/passwd when missing.
fn environment(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = process.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| {
                p.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
                        .then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

fn is_executable(p: &Path) -> std::io::Result<bool> {
    let m = std::fs::metadata(p)?;
    Ok(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Find the program as Go's exec.LookPath does (runc's messages, which
/// podman maps to exit codes 126/127).
fn look_path(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = if arg0.starts_with('/') {
            PathBuf::from(arg0)
        } else {
            cwd.join(arg0)
        };
        return match is_executable(&p) {
            Ok(true) => Ok(p),
            Ok(false) => Err(RuntimeError::Init(format!(
                "exec: \"{arg0}\": permission denied"
            ))),
            Err(e) => Err(RuntimeError::Init(format!(
                "exec: \"{arg0}\": stat {arg0}: {}",
                errno_text(&e)
            ))),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(arg0);
        match is_executable(&p) {
            Ok(true) => return Ok(p),
            Ok(false) => denied |= p.is_file(),
            Err(_) => {}
        }
    }
    if denied {
        return Err(RuntimeError::Init(format!(
            "exec: \"{arg0}\": permission denied"
        )));
    }
    Err(RuntimeError::Init(format!(
        "exec: \"{arg0}\": executable file not found in $PATH"
    )))
}

fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Resolve the program and build argv/envp. `extra_env` is appended (LISTEN_FDS).
pub fn prepare_exec(process: &Process, extra_env: &[String]) -> Result<Exec> {
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| RuntimeError::Config("process.args is empty".into()))?;
    let mut env = environment(process);
    env.extend(extra_env.iter().cloned());
    let path = look_path(arg0, &env, process.cwd())?;
    let c = |s: &str| {
        CString::new(s).map_err(|_| RuntimeError::Config(format!("\"{s}\" contains a NUL byte")))
    };
    Ok(Exec {
        path: sys::cstr(&path).ctx(|| path.display().to_string())?,
        argv: args.iter().map(|a| c(a)).collect::<Result<_>>()?,
        envp: env.iter().map(|e| c(e)).collect::<Result<_>>()?,
    })
}

/// Switch to the container's identity. Returns the seccomp notify fd, if
/// the filter has one. `seccomp`: the filter as the runtime prepared it
/// (compiled here unless it is a program already). `userns`: running in a
/// new user namespace.
pub fn switch_identity(
    process: &Process,
    seccomp: Option<&Prepared>,
    userns: bool,
) -> Result<Option<OwnedFd>> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    let filter = seccomp.map(Prepared::filter).transpose()?;
    let mut notify = None;
    let mut filter = filter;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it first.
    if !nnp {
        if let Some(f) = filter.take() {
            notify = f.load()?;
        }
    }
    if let Some(c) = process.capabilities() {
        crate::capabilities::drop_bounding(c)?;
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    let user = process.user();
    let groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    let setgroups_allowed = !userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    if setgroups_allowed {
        sys::setgroups(&groups).ctx(|| format!("setgroups {groups:?}"))?;
    } else if !groups.is_empty() {
        return Err(RuntimeError::Other(
            "cannot set additionalGids: setgroups is denied in this user namespace".into(),
        ));
    }
    sys::setresgid(user.gid()).ctx(|| format!("setgid {}", user.gid()))?;
    sys::setresuid(user.uid()).ctx(|| format!("setuid {}", user.uid()))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    // No capabilities object: leave them as the uid switch left them (runc).
    if let Some(c) = process.capabilities() {
        crate::capabilities::apply(c)?;
    }
    sys::umask(user.umask().unwrap_or(0o022));
    let cwd = process.cwd();
    std::env::set_current_dir(cwd).map_err(|e| {
        RuntimeError::Init(format!(
            "chdir to cwd (\"{}\") set in config.json failed: {}",
            cwd.display(),
            errno_text(&e)
        ))
    })?;
    // A cwd reached through an inherited fd (/proc/self/fd/N) could be a
    // host directory (CVE-2024-21626): getcwd fails for a cwd outside root.
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => {}
        _ => {
            return Err(RuntimeError::Init(format!(
                "process cwd \"{}\" is outside the container's root filesystem",
                cwd.display()
            )))
        }
    }
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    }
    if let Some(f) = filter {
        notify = f.load()?;
    }
    Ok(notify)
}

/// Let exactly fds 0..3+preserve survive the execve.
pub fn close_extra_fds(preserve: u32) -> Result<()> {
    for fd in 3..3 + preserve as i32 {
        sys::set_cloexec(fd, false);
    }
    sys::cloexec_from(3 + preserve).map_err(|e| io_err("mark fds close-on-exec", e))
}
