//! Docker's seccomp profile format and its conversion to OCI form.
//!
//! A Docker profile is the OCI `linux.seccomp` object plus `archMap` and,
//! per rule, `name`, `comment`, `includes` and `excludes` (by capability,
//! architecture and minimum kernel). The conversion follows moby's
//! `profiles/seccomp` (`setupSeccomp`): pick the architectures of the
//! `archMap` entry for the target architecture, then keep a rule only if
//! none of its `excludes` and all of its `includes` match.

use std::path::PathBuf;
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::{Deserialize, Deserializer};

use super::{parse_action, parse_arch, parse_flag, parse_operator, SeccompError};

/// Docker's default profile (JSON, Docker's format), embedded; converted by
/// [`docker_default_profile`].
pub const DOCKER_DEFAULT_JSON: &str = include_str!("docker-default.json");

/// The capabilities Docker grants a container by default (moby
/// `oci/caps.DefaultCapabilities`).
pub const DOCKER_DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Architecture names as Docker profiles spell them in `includes.arches` /
/// `excludes.arches` (libseccomp-golang's names), with accepted aliases
/// (Go's GOARCH, Rust's `target_arch`) and the seccomp architecture used to
/// pick the `archMap` entry.
const DOCKER_ARCHES: &[(&str, &[&str], Arch)] = &[
    ("amd64", &["x86_64"], Arch::ScmpArchX86_64),
    ("x86", &["386", "i386", "i686"], Arch::ScmpArchX86),
    ("x32", &[], Arch::ScmpArchX32),
    ("arm64", &["aarch64"], Arch::ScmpArchAarch64),
    ("arm", &[], Arch::ScmpArchArm),
    ("mips", &[], Arch::ScmpArchMips),
    ("mipsel", &["mipsle"], Arch::ScmpArchMipsel),
    ("mips64", &[], Arch::ScmpArchMips64),
    ("mips64n32", &["mips64p32"], Arch::ScmpArchMips64n32),
    ("mipsel64", &["mips64le"], Arch::ScmpArchMipsel64),
    ("mipsel64n32", &["mips64p32le"], Arch::ScmpArchMipsel64n32),
    ("ppc", &["powerpc"], Arch::ScmpArchPpc),
    ("ppc64", &["powerpc64"], Arch::ScmpArchPpc64),
    ("ppc64le", &["powerpc64le"], Arch::ScmpArchPpc64le),
    ("s390", &[], Arch::ScmpArchS390),
    ("s390x", &[], Arch::ScmpArchS390x),
    ("riscv64", &[], Arch::ScmpArchRiscv64),
    ("loong64", &["loongarch64"], Arch::ScmpArchLoongarch64),
];

/// This machine's architecture under Docker's name (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc" => "ppc",
        "powerpc64" if little => "ppc64le",
        "powerpc64" => "ppc64",
        "mips" if little => "mipsel",
        "mips64" if little => "mipsel64",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn docker_arch(name: &str) -> Result<(&'static str, Arch), SeccompError> {
    DOCKER_ARCHES
        .iter()
        .find(|(n, aliases, _)| *n == name || aliases.contains(&name))
        .map(|&(n, _, a)| (n, a))
        .ok_or_else(|| SeccompError::UnknownValue {
            what: "architecture",
            value: name.to_owned(),
            field: "the target architecture (expected e.g. amd64, arm64, x86_64, aarch64)"
                .to_owned(),
        })
}

// ---------------------------------------------------------------------------
// The JSON form

/// `null` and a missing field both give the default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default, deserialize_with = "nullable")]
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    flags: Vec<String>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    syscalls: Vec<Syscall>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    names: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    action: String,
    errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    includes: Selector,
    #[serde(default, deserialize_with = "nullable")]
    excludes: Selector,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    #[serde(default, deserialize_with = "nullable")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

impl Selector {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

fn parse_profile(json: &str) -> Result<Profile, SeccompError> {
    serde_json::from_str(json).map_err(SeccompError::Json)
}

// ---------------------------------------------------------------------------
// Kernel version (for minKernel)

/// `(major, minor)` of a release string such as `6.1.0-18-amd64` or `4.8`.
fn parse_kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

fn running_kernel() -> Result<(u32, u32), SeccompError> {
    static KERNEL: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let release =
                std::fs::read_to_string("/proc/sys/kernel/osrelease").map_err(|e| e.to_string())?;
            parse_kernel_version(&release)
                .ok_or_else(|| format!("unrecognised release {:?}", release.trim()))
        })
        .clone()
        .map_err(SeccompError::KernelVersion)
}

// ---------------------------------------------------------------------------
// Conversion

/// The target a Docker profile is resolved for.
struct Target<'a> {
    arch: &'a str,
    seccomp_arch: Arch,
    caps: &'a [String],
    kernel: &'a dyn Fn() -> Result<(u32, u32), SeccompError>,
}

fn has_cap(caps: &[String], cap: &str) -> bool {
    caps.iter().any(|c| c == cap)
}

fn min_kernel_ok(
    min: &str,
    field: &str,
    kernel: &dyn Fn() -> Result<(u32, u32), SeccompError>,
) -> Result<bool, SeccompError> {
    let want = parse_kernel_version(min).ok_or_else(|| {
        SeccompError::Profile(format!(
            "{field}.minKernel {min:?} is not a kernel version like \"4.8\""
        ))
    })?;
    Ok(kernel()? >= want)
}

/// Moby's rule filter: skip on any matching exclude, require every include.
fn selected(call: &Syscall, field: &str, t: &Target<'_>) -> Result<bool, SeccompError> {
    let ex = &call.excludes;
    if ex.arches.iter().any(|a| a == t.arch) || ex.caps.iter().any(|c| has_cap(t.caps, c)) {
        return Ok(false);
    }
    if let Some(min) = &ex.min_kernel {
        if min_kernel_ok(min, &format!("{field}.excludes"), t.kernel)? {
            return Ok(false);
        }
    }
    let inc = &call.includes;
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == t.arch) {
        return Ok(false);
    }
    if !inc.caps.iter().all(|c| has_cap(t.caps, c)) {
        return Ok(false);
    }
    if let Some(min) = &inc.min_kernel {
        if !min_kernel_ok(min, &format!("{field}.includes"), t.kernel)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn convert_rule(call: Syscall, field: &str) -> Result<LinuxSyscall, SeccompError> {
    let names = match (call.name.is_empty(), call.names.is_empty()) {
        (false, false) => {
            return Err(SeccompError::Profile(format!(
                "{field} has both \"name\" and \"names\": use one"
            )))
        }
        (false, true) => vec![call.name],
        (true, _) => call.names,
    };
    if names.is_empty() {
        return Err(SeccompError::NoSyscallNames {
            field: field.to_owned(),
        });
    }
    let action = parse_action(&call.action, || format!("{field}.action"))?;
    let mut args = Vec::with_capacity(call.args.len());
    for (j, a) in call.args.into_iter().enumerate() {
        let op = parse_operator(&a.op, || format!("{field}.args[{j}].op"))?;
        let mut arg = LinuxSeccompArgBuilder::default()
            .index(a.index)
            .value(a.value)
            .op(op);
        if let Some(v) = a.value_two {
            arg = arg.value_two(v);
        }
        args.push(
            arg.build()
                .map_err(|e| SeccompError::Profile(format!("{field}.args[{j}]: {e}")))?,
        );
    }
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(action);
    rule.set_errno_ret(call.errno_ret);
    rule.set_args((!args.is_empty()).then_some(args));
    Ok(rule)
}

/// Converts a parsed profile. `target` is `None` for a plain OCI object
/// (no Docker-only fields allowed).
fn convert(
    p: Profile,
    target: Option<&Target<'_>>,
    prefix: &str,
) -> Result<LinuxSeccomp, SeccompError> {
    if p.default_action.is_empty() {
        return Err(SeccompError::Profile(format!(
            "{prefix}defaultAction is missing"
        )));
    }
    let mut out = LinuxSeccomp::default();
    out.set_default_action(parse_action(&p.default_action, || {
        format!("{prefix}defaultAction")
    })?);
    out.set_default_errno_ret(p.default_errno_ret);

    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err(SeccompError::Profile(
            "both \"architectures\" and \"archMap\" are set: use one".to_owned(),
        ));
    }
    let mut arches = Vec::new();
    for (i, a) in p.architectures.iter().enumerate() {
        arches.push(parse_arch(a, || format!("{prefix}architectures[{i}]"))?);
    }
    if !p.arch_map.is_empty() {
        let Some(t) = target else {
            return Err(SeccompError::Profile(
                "\"archMap\" is Docker's profile format, not OCI's: convert it with from_docker_profile"
                    .to_owned(),
            ));
        };
        for (i, m) in p.arch_map.iter().enumerate() {
            let main = parse_arch(&m.architecture, || format!("archMap[{i}].architecture"))?;
            let mut subs = Vec::with_capacity(m.sub_architectures.len());
            for (j, s) in m.sub_architectures.iter().enumerate() {
                subs.push(parse_arch(s, || {
                    format!("archMap[{i}].subArchitectures[{j}]")
                })?);
            }
            if main == t.seccomp_arch && arches.is_empty() {
                arches.push(main);
                arches.extend(subs);
            }
        }
    }
    out.set_architectures((!arches.is_empty()).then_some(arches));

    let mut flags: Vec<LinuxSeccompFilterFlag> = Vec::with_capacity(p.flags.len());
    for (i, f) in p.flags.iter().enumerate() {
        flags.push(parse_flag(f, || format!("{prefix}flags[{i}]"))?);
    }
    out.set_flags((!flags.is_empty()).then_some(flags));
    out.set_listener_path(p.listener_path);
    out.set_listener_metadata(p.listener_metadata);

    let mut rules = Vec::with_capacity(p.syscalls.len());
    for (i, call) in p.syscalls.into_iter().enumerate() {
        let field = format!("{prefix}syscalls[{i}]");
        match target {
            Some(t) => {
                if !selected(&call, &field, t)? {
                    continue;
                }
            }
            None => {
                if !call.includes.is_empty() || !call.excludes.is_empty() {
                    return Err(SeccompError::Profile(format!(
                        "{field} has \"includes\"/\"excludes\", which are Docker's profile format, not OCI's: convert it with from_docker_profile"
                    )));
                }
            }
        }
        rules.push(convert_rule(call, &field)?);
    }
    out.set_syscalls((!rules.is_empty()).then_some(rules));
    Ok(out)
}

pub(super) fn parse_oci(json: &str) -> Result<LinuxSeccomp, SeccompError> {
    convert(parse_profile(json)?, None, "linux.seccomp.")
}

fn normalize_caps(caps: &[&str]) -> Vec<String> {
    caps.iter()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect()
}

fn docker_profile_with(
    json: &str,
    capabilities: &[&str],
    (arch, seccomp_arch): (&str, Arch),
    kernel: &dyn Fn() -> Result<(u32, u32), SeccompError>,
) -> Result<LinuxSeccomp, SeccompError> {
    let caps = normalize_caps(capabilities);
    let target = Target {
        arch,
        seccomp_arch,
        caps: &caps,
        kernel,
    };
    convert(parse_profile(json)?, Some(&target), "")
}

/// Converts a profile in Docker's format to OCI form, as moby does for a
/// container with the given (bounding) `capabilities` (`"CAP_SYS_ADMIN"` or
/// `"sys_admin"`) on architecture `arch` (Docker's names such as `amd64`,
/// `arm64`, `s390x`, or Rust's such as `x86_64`, `aarch64`; see
/// [`host_arch`]). `minKernel` is compared with the running kernel.
pub fn from_docker_profile(
    json: &str,
    capabilities: &[&str],
    arch: &str,
) -> Result<LinuxSeccomp, SeccompError> {
    docker_profile_with(json, capabilities, docker_arch(arch)?, &running_kernel)
}

#[cfg(test)]
pub(super) fn from_docker_profile_on_kernel(
    json: &str,
    capabilities: &[&str],
    arch: &str,
    kernel: (u32, u32),
) -> Result<LinuxSeccomp, SeccompError> {
    docker_profile_with(json, capabilities, docker_arch(arch)?, &move || Ok(kernel))
}

#[cfg(test)]
pub(super) const EMBEDDED_DOCKER_DEFAULT: &str = DOCKER_DEFAULT_JSON;

/// Docker's default seccomp profile (embedded), in OCI form for this host's
/// architecture and Docker's default capabilities
/// ([`DOCKER_DEFAULT_CAPABILITIES`]).
///
/// If the running kernel's version cannot be read, rules that need a
/// minimum kernel are left out (the stricter choice).
pub fn docker_default_profile() -> LinuxSeccomp {
    let kernel = || running_kernel().or(Ok((0, 0)));
    // An architecture Docker has no name for gets no archMap entry: the
    // filter then covers the native architecture only.
    let arch = docker_arch(host_arch()).unwrap_or((host_arch(), Arch::ScmpArchNative));
    match docker_profile_with(
        DOCKER_DEFAULT_JSON,
        DOCKER_DEFAULT_CAPABILITIES,
        arch,
        &kernel,
    ) {
        Ok(p) => p,
        // Unreachable unless the embedded file or the host architecture
        // table is broken; the unit tests convert it for every architecture.
        Err(e) => panic!("embedded Docker seccomp profile: {e}"),
    }
}
