//! Seccomp: checking, compiling and loading the container's syscall filter.
//!
//! This module owns everything about `linux.seccomp` of the OCI config:
//!
//! - [`validate`]: cheap checks run by `create` before anything is set up
//!   (unknown syscall names, errno on actions that take none, argument
//!   indexes, listener fields, features this libseccomp lacks);
//! - [`compile`] turns a [`LinuxSeccomp`] into a libseccomp filter
//!   ([`Filter`]) the way runc does, and [`Filter::load`] installs it in the
//!   calling thread, handing back the `SCMP_ACT_NOTIFY` listener fd if any;
//! - [`prepare`], run by the runtime before it forks a container process,
//!   takes the compiled BPF [`Program`] from the [`cache`] (or compiles and
//!   stores it), so that the process only installs it; filters with
//!   `SCMP_ACT_NOTIFY`, or when the cache fails, are compiled in the
//!   process as before;
//! - [`send_notify_fd`] gives that fd to the seccomp agent at `listenerPath`;
//! - Docker's profile format: [`from_docker_profile`] converts a Docker
//!   profile as moby does, [`docker_default_profile`] is Docker's default
//!   profile (embedded in the binary, parsed only when asked for).
//!
//! Syscall names are checked against [`syscall_names`], a committed table of
//! every Linux syscall name on every architecture: a name outside it is an
//! error, while a real name this libseccomp cannot resolve for the filter's
//! architecture (a newer or foreign syscall) is skipped, as runc does.
//!
//! `SCMP_ACT_KILL` is the same as `SCMP_ACT_KILL_THREAD`. Errno values
//! default to `EPERM` for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`.

pub mod cache;
mod docker;
mod program;
mod syscall_names;

#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde::Serialize;

use crate::sys::socket;

pub use program::{InvalidProgram, Program};

pub use docker::{
    docker_default_profile, from_docker_profile, host_arch, DOCKER_DEFAULT_CAPABILITIES,
    DOCKER_DEFAULT_JSON,
};

/// What can go wrong with a seccomp configuration or while installing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// A syscall name that is not a Linux syscall on any architecture.
    #[error("unknown syscall {name:?} in {field}")]
    UnknownSyscall { name: String, field: String },
    /// A rule without syscall names.
    #[error("{field}.names is empty: a rule must name at least one syscall")]
    NoSyscallNames { field: String },
    /// `errnoRet` given for an action that returns no errno.
    #[error(
        "{field} is set but {action} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
    )]
    ErrnoRetNotSupported { field: String, action: &'static str },
    /// `errnoRet` above the 16 bits seccomp can return.
    #[error("{field} = {value} is out of range: an errno must be at most 65535")]
    ErrnoRetOutOfRange { field: String, value: u32 },
    /// An argument index past the 6 syscall arguments.
    #[error("{field}.index = {index} is out of range: a syscall has only 6 arguments (0 to 5)")]
    ArgIndexOutOfRange { field: String, index: usize },
    /// An action, architecture, operator or flag string that does not exist.
    #[error("unknown {what} {value:?} in {field}")]
    UnknownValue {
        what: &'static str,
        value: String,
        field: String,
    },
    /// `listenerMetadata` without `listenerPath` (the spec forbids it).
    #[error("linux.seccomp.listenerMetadata is set but linux.seccomp.listenerPath is not")]
    MetadataWithoutListener,
    /// `SCMP_ACT_NOTIFY` used with nobody to receive the notify fd.
    #[error("linux.seccomp uses SCMP_ACT_NOTIFY but linux.seccomp.listenerPath is not set")]
    NotifyWithoutListener,
    /// Something the installed libseccomp or the kernel cannot do.
    #[error("{what} is not supported here: {reason}")]
    Unsupported { what: String, reason: String },
    /// A Docker profile that is well-formed JSON but not a usable profile.
    #[error("invalid seccomp profile: {0}")]
    Profile(String),
    /// A profile that is not valid JSON or has wrong field types.
    #[error("invalid seccomp profile json: {0}")]
    Json(serde_json::Error),
    /// The running kernel's version (for `minKernel`) could not be read.
    #[error("cannot read the kernel version from /proc/sys/kernel/osrelease: {0}")]
    KernelVersion(String),
    /// libseccomp refused an operation.
    #[error("libseccomp: {context}: {err}")]
    Libseccomp {
        context: String,
        err: libseccomp::error::SeccompError,
    },
    /// The kernel refused a compiled program.
    #[error("installing the seccomp filter: {0}")]
    Install(std::io::Error),
    /// Writing a program out failed.
    #[error("writing the seccomp BPF program: {0}")]
    Export(std::io::Error),
    /// Talking to the seccomp agent at `listenerPath` failed.
    #[error("seccomp agent at {}: {err}", path.display())]
    Listener { path: PathBuf, err: std::io::Error },
}

impl SeccompError {
    fn lib(context: impl Into<String>, err: libseccomp::error::SeccompError) -> Self {
        Self::Libseccomp {
            context: context.into(),
            err,
        }
    }
}

/// Number of syscall arguments seccomp can inspect.
const MAX_ARGS: usize = 6;

/// Whether `name` is a Linux syscall name on some architecture.
pub fn is_known_syscall(name: &str) -> bool {
    syscall_names::SYSCALL_NAMES.binary_search(&name).is_ok()
}

// ---------------------------------------------------------------------------
// String tables (shared with the Docker profile parser)

const ACTIONS: &[(&str, LinuxSeccompAction)] = &[
    ("SCMP_ACT_KILL", LinuxSeccompAction::ScmpActKill),
    (
        "SCMP_ACT_KILL_PROCESS",
        LinuxSeccompAction::ScmpActKillProcess,
    ),
    (
        "SCMP_ACT_KILL_THREAD",
        LinuxSeccompAction::ScmpActKillThread,
    ),
    ("SCMP_ACT_TRAP", LinuxSeccompAction::ScmpActTrap),
    ("SCMP_ACT_ERRNO", LinuxSeccompAction::ScmpActErrno),
    ("SCMP_ACT_TRACE", LinuxSeccompAction::ScmpActTrace),
    ("SCMP_ACT_ALLOW", LinuxSeccompAction::ScmpActAllow),
    ("SCMP_ACT_LOG", LinuxSeccompAction::ScmpActLog),
    ("SCMP_ACT_NOTIFY", LinuxSeccompAction::ScmpActNotify),
];

const ARCHES: &[(&str, Arch, ScmpArch)] = &[
    ("SCMP_ARCH_NATIVE", Arch::ScmpArchNative, ScmpArch::Native),
    ("SCMP_ARCH_X86", Arch::ScmpArchX86, ScmpArch::X86),
    ("SCMP_ARCH_X86_64", Arch::ScmpArchX86_64, ScmpArch::X8664),
    ("SCMP_ARCH_X32", Arch::ScmpArchX32, ScmpArch::X32),
    ("SCMP_ARCH_ARM", Arch::ScmpArchArm, ScmpArch::Arm),
    (
        "SCMP_ARCH_AARCH64",
        Arch::ScmpArchAarch64,
        ScmpArch::Aarch64,
    ),
    ("SCMP_ARCH_MIPS", Arch::ScmpArchMips, ScmpArch::Mips),
    ("SCMP_ARCH_MIPS64", Arch::ScmpArchMips64, ScmpArch::Mips64),
    (
        "SCMP_ARCH_MIPS64N32",
        Arch::ScmpArchMips64n32,
        ScmpArch::Mips64N32,
    ),
    ("SCMP_ARCH_MIPSEL", Arch::ScmpArchMipsel, ScmpArch::Mipsel),
    (
        "SCMP_ARCH_MIPSEL64",
        Arch::ScmpArchMipsel64,
        ScmpArch::Mipsel64,
    ),
    (
        "SCMP_ARCH_MIPSEL64N32",
        Arch::ScmpArchMipsel64n32,
        ScmpArch::Mipsel64N32,
    ),
    ("SCMP_ARCH_PPC", Arch::ScmpArchPpc, ScmpArch::Ppc),
    ("SCMP_ARCH_PPC64", Arch::ScmpArchPpc64, ScmpArch::Ppc64),
    (
        "SCMP_ARCH_PPC64LE",
        Arch::ScmpArchPpc64le,
        ScmpArch::Ppc64Le,
    ),
    ("SCMP_ARCH_S390", Arch::ScmpArchS390, ScmpArch::S390),
    ("SCMP_ARCH_S390X", Arch::ScmpArchS390x, ScmpArch::S390X),
    ("SCMP_ARCH_PARISC", Arch::ScmpArchParisc, ScmpArch::Parisc),
    (
        "SCMP_ARCH_PARISC64",
        Arch::ScmpArchParisc64,
        ScmpArch::Parisc64,
    ),
    (
        "SCMP_ARCH_RISCV64",
        Arch::ScmpArchRiscv64,
        ScmpArch::Riscv64,
    ),
    (
        "SCMP_ARCH_LOONGARCH64",
        Arch::ScmpArchLoongarch64,
        ScmpArch::Loongarch64,
    ),
    ("SCMP_ARCH_M68K", Arch::ScmpArchM68k, ScmpArch::M68k),
    ("SCMP_ARCH_SH", Arch::ScmpArchSh, ScmpArch::Sh),
    ("SCMP_ARCH_SHEB", Arch::ScmpArchSheb, ScmpArch::Sheb),
];

const OPERATORS: &[(&str, LinuxSeccompOperator)] = &[
    ("SCMP_CMP_NE", LinuxSeccompOperator::ScmpCmpNe),
    ("SCMP_CMP_LT", LinuxSeccompOperator::ScmpCmpLt),
    ("SCMP_CMP_LE", LinuxSeccompOperator::ScmpCmpLe),
    ("SCMP_CMP_EQ", LinuxSeccompOperator::ScmpCmpEq),
    ("SCMP_CMP_GE", LinuxSeccompOperator::ScmpCmpGe),
    ("SCMP_CMP_GT", LinuxSeccompOperator::ScmpCmpGt),
    ("SCMP_CMP_MASKED_EQ", LinuxSeccompOperator::ScmpCmpMaskedEq),
];

const FLAGS: &[(&str, LinuxSeccompFilterFlag)] = &[
    (
        "SECCOMP_FILTER_FLAG_TSYNC",
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    ),
    (
        "SECCOMP_FILTER_FLAG_LOG",
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    ),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    ),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
    ),
];

fn lookup<T: Copy>(table: &[(&str, T)], s: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == s).map(|&(_, v)| v)
}

fn name_of<T: Copy + PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table.iter().find(|(_, t)| *t == v).map_or("?", |&(n, _)| n)
}

fn parse_action(
    s: &str,
    field: impl FnOnce() -> String,
) -> Result<LinuxSeccompAction, SeccompError> {
    lookup(ACTIONS, s).ok_or_else(|| SeccompError::UnknownValue {
        what: "action",
        value: s.to_owned(),
        field: field(),
    })
}

fn parse_arch(s: &str, field: impl FnOnce() -> String) -> Result<Arch, SeccompError> {
    ARCHES
        .iter()
        .find(|(n, _, _)| *n == s)
        .map(|&(_, a, _)| a)
        .ok_or_else(|| SeccompError::UnknownValue {
            what: "architecture",
            value: s.to_owned(),
            field: field(),
        })
}

fn parse_operator(
    s: &str,
    field: impl FnOnce() -> String,
) -> Result<LinuxSeccompOperator, SeccompError> {
    lookup(OPERATORS, s).ok_or_else(|| SeccompError::UnknownValue {
        what: "operator",
        value: s.to_owned(),
        field: field(),
    })
}

fn parse_flag(
    s: &str,
    field: impl FnOnce() -> String,
) -> Result<LinuxSeccompFilterFlag, SeccompError> {
    lookup(FLAGS, s).ok_or_else(|| SeccompError::UnknownValue {
        what: "flag",
        value: s.to_owned(),
        field: field(),
    })
}

fn action_name(a: LinuxSeccompAction) -> &'static str {
    name_of(ACTIONS, a)
}

fn flag_name(f: LinuxSeccompFilterFlag) -> &'static str {
    name_of(FLAGS, f)
}

fn arch_info(a: Arch) -> (&'static str, ScmpArch) {
    ARCHES
        .iter()
        .find(|(_, oci, _)| *oci == a)
        .map_or(("?", ScmpArch::Native), |&(n, _, s)| (n, s))
}

/// Parses the `linux.seccomp` object of an OCI config (JSON) with precise
/// errors for unknown actions, architectures, operators and flags (serde's
/// own error for those names only the enum). The result is not validated:
/// call [`validate`].
pub fn from_json(json: &str) -> Result<LinuxSeccomp, SeccompError> {
    docker::parse_oci(json)
}

// ---------------------------------------------------------------------------
// Actions

/// Converts an action and its optional errno to libseccomp's form.
/// `field` names the errnoRet field for error messages.
fn scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: impl FnOnce() -> String,
) -> Result<ScmpAction, SeccompError> {
    let errno = match (action, errno_ret) {
        (LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace, Some(v)) => {
            if v > u32::from(u16::MAX) {
                return Err(SeccompError::ErrnoRetOutOfRange {
                    field: field(),
                    value: v,
                });
            }
            v as u16
        }
        (_, Some(_)) => {
            return Err(SeccompError::ErrnoRetNotSupported {
                field: field(),
                action: action_name(action),
            })
        }
        (_, None) => libc::EPERM as u16,
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(errno)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn rule_field(i: usize) -> String {
    format!("linux.seccomp.syscalls[{i}]")
}

fn default_action(seccomp: &LinuxSeccomp) -> Result<ScmpAction, SeccompError> {
    scmp_action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        || "linux.seccomp.defaultErrnoRet".to_owned(),
    )
}

// ---------------------------------------------------------------------------
// Argument conditions

/// Fills `out` with the libseccomp conditions of `args` and says whether they
/// must be split into one rule per condition: libseccomp cannot AND several
/// conditions on the same argument, so, as runc does, such a rule becomes
/// one rule per condition (which ORs them).
fn conditions(
    args: &[LinuxSeccompArg],
    rule: usize,
    out: &mut Vec<ScmpArgCompare>,
) -> Result<bool, SeccompError> {
    out.clear();
    let mut seen = [0u8; MAX_ARGS];
    let mut split = false;
    for (j, arg) in args.iter().enumerate() {
        let index = arg.index();
        if index >= MAX_ARGS {
            return Err(SeccompError::ArgIndexOutOfRange {
                field: format!("{}.args[{j}]", rule_field(rule)),
                index,
            });
        }
        seen[index] = seen[index].saturating_add(1);
        split |= seen[index] > 1;
        let (op, datum) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
            // As in runc/libseccomp-golang: `value` is the mask and
            // `valueTwo` the value the masked argument must equal.
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        out.push(ScmpArgCompare::new(index as u32, op, datum));
    }
    Ok(split)
}

// ---------------------------------------------------------------------------
// Validation

fn check_notify_support() -> Result<(), SeccompError> {
    match libseccomp::check_api(6, ScmpVersion::from((2, 5, 0))) {
        Ok(true) => Ok(()),
        Ok(false) => Err(SeccompError::Unsupported {
            what: "SCMP_ACT_NOTIFY".to_owned(),
            reason: "needs libseccomp >= 2.5.0 and a kernel with seccomp user notification (API level 6)".to_owned(),
        }),
        Err(e) => Err(SeccompError::Unsupported {
            what: "SCMP_ACT_NOTIFY".to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn check_flag_support(flag: LinuxSeccompFilterFlag) -> Result<(), SeccompError> {
    if flag != LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv {
        return Ok(());
    }
    match libseccomp::check_api(7, ScmpVersion::from((2, 6, 0))) {
        Ok(true) => Ok(()),
        Ok(false) => Err(SeccompError::Unsupported {
            what: flag_name(flag).to_owned(),
            reason: format!(
                "needs libseccomp >= 2.6.0 and linux >= 5.19 (libseccomp here is {})",
                libseccomp_version()
            ),
        }),
        Err(e) => Err(SeccompError::Unsupported {
            what: flag_name(flag).to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn libseccomp_version() -> String {
    ScmpVersion::current().map_or_else(
        |_| "unknown".to_owned(),
        |v| format!("{}.{}.{}", v.major, v.minor, v.micro),
    )
}

fn check_arch_support(arch: Arch) -> Result<ScmpArch, SeccompError> {
    let (name, scmp) = arch_info(arch);
    // Resolving a syscall every architecture has tells whether this
    // libseccomp knows the architecture at all.
    match ScmpSyscall::from_name_by_arch("close", scmp) {
        Ok(_) => Ok(scmp),
        Err(_) => Err(SeccompError::Unsupported {
            what: format!("architecture {name}"),
            reason: format!("libseccomp {} does not know it", libseccomp_version()),
        }),
    }
}

/// Checks a seccomp configuration without building a filter: syscall names
/// (against the table of all Linux syscalls), errno values, argument
/// indexes, the listener fields, and that this system's libseccomp supports
/// the architectures, flags and `SCMP_ACT_NOTIFY` used.
pub fn validate(seccomp: &LinuxSeccomp) -> Result<(), SeccompError> {
    let mut notify = default_action(seccomp)? == ScmpAction::Notify;
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(SeccompError::MetadataWithoutListener);
    }
    for &arch in seccomp.architectures().iter().flatten() {
        check_arch_support(arch)?;
    }
    for &flag in seccomp.flags().iter().flatten() {
        check_flag_support(flag)?;
    }
    let mut conds = Vec::new();
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        if rule.names().is_empty() {
            return Err(SeccompError::NoSyscallNames {
                field: rule_field(i),
            });
        }
        for name in rule.names() {
            if !is_known_syscall(name) {
                return Err(SeccompError::UnknownSyscall {
                    name: name.clone(),
                    field: rule_field(i),
                });
            }
        }
        let action = scmp_action(rule.action(), rule.errno_ret(), || {
            format!("{}.errnoRet", rule_field(i))
        })?;
        notify |= action == ScmpAction::Notify;
        conditions(rule.args().as_deref().unwrap_or_default(), i, &mut conds)?;
    }
    if notify {
        if seccomp.listener_path().is_none() {
            return Err(SeccompError::NotifyWithoutListener);
        }
        check_notify_support()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Compilation and loading

/// A compiled seccomp filter, ready to [`load`](Filter::load): a libseccomp
/// filter context ([`compile`]), or a BPF [`Program`] compiled earlier.
pub struct Filter {
    kind: FilterKind,
}

enum FilterKind {
    Libseccomp {
        ctx: ScmpFilterContext,
        notify: bool,
    },
    Program(Program),
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            FilterKind::Libseccomp { notify, .. } => f
                .debug_struct("Filter")
                .field("notify", notify)
                .finish_non_exhaustive(),
            FilterKind::Program(p) => f.debug_tuple("Filter").field(p).finish(),
        }
    }
}

/// Builds the libseccomp filter for `seccomp`.
///
/// Does the same checks as [`validate`] on the way (cheaply: the syscall
/// table is consulted only for names libseccomp cannot resolve), so an
/// invalid config never yields a filter. Like runc: rules whose action is
/// the default action are skipped; real syscalls libseccomp does not know
/// are skipped; several conditions on one argument become one rule each.
/// The filter does not set `no_new_privs` itself (the runtime does that
/// when `process.noNewPrivileges` asks), so loading it needs either
/// `no_new_privs` or `CAP_SYS_ADMIN`.
///
/// Programs it builds are cached ([`cache`]): when it would build a
/// different program for the same configuration, change [`cache::FORMAT`].
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let default = default_action(seccomp)?;
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(SeccompError::MetadataWithoutListener);
    }
    let mut notify = default == ScmpAction::Notify;
    if notify {
        check_notify_support()?;
    }

    let mut ctx =
        ScmpFilterContext::new(default).map_err(|e| SeccompError::lib("creating the filter", e))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| SeccompError::lib("clearing the no_new_privs attribute", e))?;

    for &arch in seccomp.architectures().iter().flatten() {
        let scmp = check_arch_support(arch)?;
        ctx.add_arch(scmp).map_err(|e| {
            let name = arch_info(arch).0;
            if e.errno() == Some(libseccomp::error::SeccompErrno::EDOM) {
                SeccompError::Unsupported {
                    what: format!("architecture {name}"),
                    reason: "libseccomp cannot put it in one filter with the native \
                             architecture (different endianness)"
                        .to_owned(),
                }
            } else {
                SeccompError::lib(format!("adding architecture {name}"), e)
            }
        })?;
    }

    for &flag in seccomp.flags().iter().flatten() {
        check_flag_support(flag)?;
        let res = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        };
        res.map_err(|e| SeccompError::Unsupported {
            what: flag_name(flag).to_owned(),
            reason: e.to_string(),
        })?;
    }

    let mut conds = Vec::with_capacity(MAX_ARGS);
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        if rule.names().is_empty() {
            return Err(SeccompError::NoSyscallNames {
                field: rule_field(i),
            });
        }
        let action = scmp_action(rule.action(), rule.errno_ret(), || {
            format!("{}.errnoRet", rule_field(i))
        })?;
        let split = conditions(rule.args().as_deref().unwrap_or_default(), i, &mut conds)?;
        if action == default {
            // libseccomp rejects a rule with the default action; it would be
            // a no-op anyway. Still refuse names that are not syscalls.
            if let Some(name) = rule.names().iter().find(|n| !is_known_syscall(n)) {
                return Err(SeccompError::UnknownSyscall {
                    name: name.clone(),
                    field: rule_field(i),
                });
            }
            continue;
        }
        if action == ScmpAction::Notify && !notify {
            check_notify_support()?;
            notify = true;
        }
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                if is_known_syscall(name) {
                    // A real syscall this libseccomp cannot resolve (newer
                    // than it, or of another architecture): skip, as runc.
                    continue;
                }
                return Err(SeccompError::UnknownSyscall {
                    name: name.clone(),
                    field: rule_field(i),
                });
            };
            let res = if conds.is_empty() {
                ctx.add_rule(action, sys).map(drop)
            } else if split {
                conds.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(action, sys, std::slice::from_ref(c))
                        .map(drop)
                })
            } else {
                ctx.add_rule_conditional(action, sys, &conds).map(drop)
            };
            res.map_err(|e| {
                SeccompError::lib(
                    format!("adding the rule for {name:?} ({})", rule_field(i)),
                    e,
                )
            })?;
        }
    }
    Ok(Filter {
        kind: FilterKind::Libseccomp { ctx, notify },
    })
}

impl Filter {
    /// Whether the filter uses `SCMP_ACT_NOTIFY` (so [`load`](Self::load)
    /// returns a listener fd).
    pub fn uses_notify(&self) -> bool {
        match &self.kind {
            FilterKind::Libseccomp { notify, .. } => *notify,
            FilterKind::Program(_) => false,
        }
    }

    /// Writes the filter's BPF program to `fd` as `struct sock_filter`s
    /// (libseccomp's `seccomp_export_bpf`: the program its load installs).
    pub fn export_bpf(&self, fd: impl AsFd) -> Result<(), SeccompError> {
        match &self.kind {
            FilterKind::Libseccomp { ctx, .. } => ctx
                .export_bpf(fd)
                .map_err(|e| SeccompError::lib("exporting the BPF program", e)),
            FilterKind::Program(p) => {
                crate::sys::write_all(fd.as_fd(), &p.to_bpf()).map_err(SeccompError::Export)
            }
        }
    }

    /// Installs the filter for the calling thread (for every thread with
    /// `SECCOMP_FILTER_FLAG_TSYNC`); it is inherited across fork and exec.
    ///
    /// Returns the seccomp user-notification fd (close-on-exec) when the
    /// filter uses `SCMP_ACT_NOTIFY`: hand it to the agent with
    /// [`send_notify_fd`]. Note that once loaded, the filter applies to the
    /// caller's own remaining syscalls too.
    pub fn load(self) -> Result<Option<OwnedFd>, SeccompError> {
        let (ctx, notify) = match self.kind {
            FilterKind::Libseccomp { ctx, notify } => (ctx, notify),
            FilterKind::Program(p) => return p.load().map(|()| None),
        };
        ctx.load()
            .map_err(|e| SeccompError::lib("loading the filter into the kernel", e))?;
        if !notify {
            return Ok(None);
        }
        let raw = ctx
            .get_notify_fd()
            .map_err(|e| SeccompError::lib("getting the notify fd", e))?;
        let fd = socket::dup_raw_fd(raw).map_err(|e| SeccompError::Unsupported {
            what: "taking the seccomp notify fd".to_owned(),
            reason: e.to_string(),
        })?;
        // libseccomp keeps its own copy of the fd in its global state (and
        // hands it out again to its notify API); it is close-on-exec, so it
        // goes away when the container process execs. Resetting libseccomp's
        // state to close it would also lose its API level detection.
        Ok(Some(fd))
    }
}

// ---------------------------------------------------------------------------
// Preparing the filter before a fork

/// The container's filter as the runtime hands it to a process it forks
/// (the container's init, an exec'd process): made by [`prepare`] in the
/// runtime, turned into a [`Filter`] in the process with
/// [`filter`](Self::filter).
#[derive(Debug)]
pub enum Prepared<'a> {
    /// Compile with libseccomp in the process: a filter with
    /// `SCMP_ACT_NOTIFY` (loading it gives the listener fd), or when the
    /// cache could not give a program.
    Compile(&'a LinuxSeccomp),
    /// A program compiled earlier, installed as is.
    Program(Program),
}

impl Prepared<'_> {
    /// The filter to load; compiles now for [`Prepared::Compile`].
    pub fn filter(&self) -> Result<Filter, SeccompError> {
        match self {
            Prepared::Compile(seccomp) => compile(seccomp),
            Prepared::Program(p) => Ok(Filter {
                kind: FilterKind::Program(p.clone()),
            }),
        }
    }
}

/// Whether any action of `seccomp` is `SCMP_ACT_NOTIFY`.
fn names_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == LinuxSeccompAction::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Prepares `seccomp` for a process the runtime is about to fork, using the
/// program cache under `state_root` (the runtime's `--root`): the process
/// then only installs a program instead of compiling the filter. Never
/// fails: when the cache cannot help (a notify filter, an unusable cache
/// directory, a config `compile` refuses), the process compiles the filter
/// itself, exactly as without a cache, and reports any error.
pub fn prepare<'a>(seccomp: &'a LinuxSeccomp, state_root: &Path) -> Prepared<'a> {
    if names_notify(seccomp) {
        return Prepared::Compile(seccomp);
    }
    let found = cache::ProgramCache::open(state_root).and_then(|c| c.program(seccomp));
    match found {
        Ok((program, origin)) => {
            crate::debug!("seccomp: program {origin} ({} instructions)", program.len());
            Prepared::Program(program)
        }
        Err(e) => {
            crate::debug!("seccomp cache: {e}; the process compiles its filter");
            Prepared::Compile(seccomp)
        }
    }
}

// ---------------------------------------------------------------------------
// Seccomp agent

/// Name of the notify fd in [`ContainerProcessState::fds`].
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// The "container process state" sent to the seccomp agent with the notify
/// fd (OCI runtime spec, config-linux.md). Serialize it with `serde_json`
/// and pass the bytes to [`send_notify_fd`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProcessState<'a, S: Serialize> {
    pub oci_version: &'a str,
    /// Names of the passed fds, in `SCM_RIGHTS` order: `[SECCOMP_FD_NAME]`.
    pub fds: &'a [&'a str],
    pub pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a str>,
    /// The container's state (`runtime.md#state`).
    pub state: &'a S,
}

/// Connects to the seccomp agent's Unix socket at `listener_path`, sends
/// `fd` with `SCM_RIGHTS` and `state_json` (the container process state) as
/// the payload, then closes the connection, as the spec requires.
pub fn send_notify_fd(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    state_json: &[u8],
) -> Result<(), SeccompError> {
    let err = |err| SeccompError::Listener {
        path: listener_path.to_owned(),
        err,
    };
    let stream = UnixStream::connect(listener_path).map_err(err)?;
    socket::send_fds(stream.as_fd(), &[fd], state_json).map_err(err)
    // `stream` is dropped here: one state per connection, then close.
}
