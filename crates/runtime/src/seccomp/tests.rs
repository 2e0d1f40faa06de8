//! Tests of the seccomp module.
//!
//! Unit tests check validation, conversion and compilation. Behaviour tests
//! load real filters in a child: the test binary re-executes itself running
//! only [`child_entry`], with `BARGE_SECCOMP_SCENARIO` naming what to do;
//! the child loads a filter, tries syscalls and exits 0 if they behaved.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use oci_spec::runtime::{LinuxSeccomp, LinuxSyscall};
use serde_json::json;

use super::cache::{Origin, ProgramCache, CACHE_DIR, MAX_ENTRIES};
use super::docker::{from_docker_profile_on_kernel, EMBEDDED_DOCKER_DEFAULT};
use super::program::kernel_flags;
use super::syscall_names::SYSCALL_NAMES;
use super::*;

/// Parses with oci-spec's own deserializer (what the runtime gets from
/// config.json).
fn oci(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn rules(p: &LinuxSeccomp) -> &[LinuxSyscall] {
    p.syscalls().as_deref().unwrap_or_default()
}

fn rules_for<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
    rules(p)
        .iter()
        .filter(|r| r.names().iter().any(|n| n == name))
        .collect()
}

fn allows(p: &LinuxSeccomp, name: &str) -> bool {
    rules_for(p, name)
        .iter()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow)
}

/// Size of the filter's BPF program in bytes.
fn bpf_len(f: &Filter) -> u64 {
    let file = tempfile::tempfile().unwrap();
    f.export_bpf(&file).unwrap();
    file.metadata().unwrap().len()
}

fn caps_plus(extra: &[&'static str]) -> Vec<&'static str> {
    let mut caps = DOCKER_DEFAULT_CAPABILITIES.to_vec();
    caps.extend_from_slice(extra);
    caps
}

// ---------------------------------------------------------------------------
// Syscall table

#[test]
fn seccomp_syscall_table_is_sorted_and_complete() {
    assert!(
        SYSCALL_NAMES.windows(2).all(|w| w[0] < w[1]),
        "SYSCALL_NAMES must be sorted and free of duplicates"
    );
    for name in [
        "read",
        "mkdir",
        "clone3",
        "socketcall",
        "arm_fadvise64_64",
        "s390_pci_mmio_read",
        "cachestat",
        "fchmodat2",
        "map_shadow_stack",
        "futex_wake",
        "futex_wait",
        "futex_requeue",
        "statmount",
        "listmount",
        "lsm_get_self_attr",
        "lsm_set_self_attr",
        "lsm_list_modules",
        "mseal",
        "setxattrat",
        "getxattrat",
        "listxattrat",
        "removexattrat",
        "open_tree_attr",
        "file_getattr",
        "file_setattr",
        "uretprobe",
    ] {
        assert!(is_known_syscall(name), "{name} missing from the table");
    }
    assert!(!is_known_syscall("foo"));
    assert!(!is_known_syscall(""));
    // Every name of the Docker profile is in the table.
    let v: serde_json::Value = serde_json::from_str(EMBEDDED_DOCKER_DEFAULT).unwrap();
    for rule in v["syscalls"].as_array().unwrap() {
        for n in rule["names"].as_array().unwrap() {
            assert!(is_known_syscall(n.as_str().unwrap()), "{n}");
        }
    }
}

// ---------------------------------------------------------------------------
// Validation

#[test]
fn seccomp_validate_unknown_syscall() {
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["open"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["close", "foo"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    let err = validate(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown syscall "foo" in linux.seccomp.syscalls[3]"#
    );
    // compile refuses it too, whether or not the rule would be skipped.
    assert!(matches!(
        compile(&p).unwrap_err(),
        SeccompError::UnknownSyscall { .. }
    ));
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["bar"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert!(matches!(
        compile(&p).unwrap_err(),
        SeccompError::UnknownSyscall { .. }
    ));
}

#[test]
fn seccomp_validate_accepts_names_libseccomp_does_not_know() {
    // open_tree_attr (Linux 6.15) is unknown to libseccomp 2.5.4 but real.
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["open_tree_attr", "arm_fadvise64_64", "read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    validate(&p).unwrap();
    compile(&p).unwrap();
}

#[test]
fn seccomp_validate_errno_and_args() {
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]
    }));
    let err = validate(&p).unwrap_err();
    assert!(matches!(err, SeccompError::ErrnoRetNotSupported { .. }));
    assert_eq!(
        err.to_string(),
        "linux.seccomp.syscalls[0].errnoRet is set but SCMP_ACT_KILL takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
    );

    let p = oci(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}));
    assert!(validate(&p)
        .unwrap_err()
        .to_string()
        .starts_with("linux.seccomp.defaultErrnoRet is set but SCMP_ACT_ALLOW"));

    let p = oci(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
    assert!(matches!(
        validate(&p).unwrap_err(),
        SeccompError::ErrnoRetOutOfRange { value: 70000, .. }
    ));
    let p = oci(json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7}));
    validate(&p).unwrap();

    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                               {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    }));
    let err = validate(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.seccomp.syscalls[0].args[1].index = 6 is out of range: a syscall has only 6 arguments (0 to 5)"
    );
    assert!(matches!(
        compile(&p).unwrap_err(),
        SeccompError::ArgIndexOutOfRange { index: 6, .. }
    ));

    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert!(matches!(
        validate(&p).unwrap_err(),
        SeccompError::NoSyscallNames { .. }
    ));
}

#[test]
fn seccomp_validate_listener_fields() {
    let p = oci(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}));
    assert!(matches!(
        validate(&p).unwrap_err(),
        SeccompError::MetadataWithoutListener
    ));
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(matches!(
        validate(&p).unwrap_err(),
        SeccompError::NotifyWithoutListener
    ));
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "x",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    validate(&p).unwrap();
}

#[test]
fn seccomp_flags() {
    for flag in [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ] {
        let p = oci(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]}));
        validate(&p).unwrap();
        compile(&p).unwrap();
    }
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    }));
    let new_enough =
        libseccomp::check_api(7, libseccomp::ScmpVersion::from((2, 6, 0))).unwrap_or(false);
    if new_enough {
        validate(&p).unwrap();
        compile(&p).unwrap();
    } else {
        let err = validate(&p).unwrap_err();
        assert!(matches!(err, SeccompError::Unsupported { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported here"));
        assert!(compile(&p).is_err());
    }
}

#[test]
fn seccomp_architectures() {
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_NATIVE", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE"],
        "syscalls": [{"names": ["mkdir", "socketcall"], "action": "SCMP_ACT_ERRNO"}]
    }));
    validate(&p).unwrap();
    let bpf = bpf_len(&compile(&p).unwrap());
    let native_only = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "socketcall"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let small = bpf_len(&compile(&native_only).unwrap());
    assert!(bpf > small, "extra arches must add code");
    // libseccomp cannot mix endiannesses in one filter.
    let other_endian = if cfg!(target_endian = "little") {
        "SCMP_ARCH_S390X"
    } else {
        "SCMP_ARCH_X86_64"
    };
    let p = oci(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [other_endian]}));
    let err = compile(&p).unwrap_err();
    assert!(matches!(err, SeccompError::Unsupported { .. }), "{err}");
}

#[test]
fn seccomp_from_json_names_unknown_values() {
    let err = from_json(r#"{"defaultAction": "SCMP_ACT_FOO"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown action "SCMP_ACT_FOO" in linux.seccomp.defaultAction"#
    );
    let err = from_json(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_VAX"]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown architecture "SCMP_ARCH_VAX" in linux.seccomp.architectures[1]"#
    );
    let err = from_json(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown operator "SCMP_CMP_XX" in linux.seccomp.syscalls[0].args[0].op"#
    );
    let err =
        from_json(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}"#)
            .unwrap_err();
    assert!(matches!(
        err,
        SeccompError::UnknownValue { what: "flag", .. }
    ));
    assert!(matches!(from_json("{").unwrap_err(), SeccompError::Json(_)));

    // A valid object parses to exactly what oci-spec's serde gives.
    let v = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "listenerPath": "/run/a.sock",
        "listenerMetadata": "meta",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_TRACE", "errnoRet": 3,
             "args": [{"index": 0, "value": 8, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    });
    assert_eq!(from_json(&v.to_string()).unwrap(), oci(v));
}

// ---------------------------------------------------------------------------
// Compilation

#[test]
fn seccomp_same_argument_conditions_are_split() {
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["ftruncate"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_LT"},
                               {"index": 1, "value": 1000, "op": "SCMP_CMP_GT"}]}]
    }));
    let args = rules(&p)[0].args().clone().unwrap();
    let mut conds = Vec::new();
    assert!(
        conditions(&args, 0, &mut conds).unwrap(),
        "same index => split"
    );
    assert_eq!(conds.len(), 2);
    assert!(!conditions(&args[..1], 0, &mut conds).unwrap());

    // libseccomp itself refuses both conditions in one rule...
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).unwrap();
    let sys = ScmpSyscall::from_name("ftruncate").unwrap();
    conditions(&args, 0, &mut conds).unwrap();
    assert!(ctx
        .add_rule_conditional(ScmpAction::Errno(1), sys, &conds)
        .is_err());
    // ...so compile makes one rule per condition.
    compile(&p).unwrap();

    // Different indexes stay in one rule (ANDed).
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["ftruncate"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_NE"},
                               {"index": 1, "value": 1000, "op": "SCMP_CMP_GT"}]}]
    }));
    let args = rules(&p)[0].args().clone().unwrap();
    assert!(!conditions(&args, 0, &mut conds).unwrap());
}

#[test]
fn seccomp_rule_with_default_action_is_skipped() {
    // libseccomp rejects a rule whose action is the default one.
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(1)).unwrap();
    assert!(ctx
        .add_rule(
            ScmpAction::Errno(1),
            ScmpSyscall::from_name("mkdir").unwrap()
        )
        .is_err());
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    compile(&p).unwrap();
    // SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD are the same action.
    let p = oci(json!({
        "defaultAction": "SCMP_ACT_KILL",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL_THREAD"}]
    }));
    compile(&p).unwrap();
}

#[test]
fn seccomp_every_action_and_operator_compiles() {
    let actions = [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    ];
    let ops = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    let syscalls = [
        "read", "write", "close", "mkdir", "rmdir", "dup", "dup2", "dup3", "pipe",
    ];
    for default in actions {
        let mut rs = Vec::new();
        for (i, action) in actions.iter().enumerate() {
            let mut r = json!({"names": [syscalls[i]], "action": action});
            if i < ops.len() {
                r["args"] = json!([{"index": i % 6, "value": 7, "valueTwo": 3, "op": ops[i]}]);
            }
            rs.push(r);
        }
        let p = oci(json!({
            "defaultAction": default,
            "listenerPath": "/run/agent.sock",
            "syscalls": rs
        }));
        validate(&p).unwrap();
        let f = compile(&p).unwrap();
        assert!(f.uses_notify());
        assert!(bpf_len(&f) > 0);
    }
    let p = oci(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert!(!compile(&p).unwrap().uses_notify());
}

// ---------------------------------------------------------------------------
// Docker profile conversion

#[test]
fn seccomp_docker_default_caps_amd64() {
    let p = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "amd64",
        (6, 1),
    )
    .unwrap();
    assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(p.default_errno_ret(), Some(1));
    assert_eq!(
        p.architectures().clone().unwrap(),
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    );
    // clone: allowed only without namespace flags (MASKED_EQ on arg 0).
    let clone = rules_for(&p, "clone");
    assert_eq!(clone.len(), 1);
    let args = clone[0].args().clone().unwrap();
    assert_eq!(args.len(), 1);
    assert_eq!(
        (args[0].index(), args[0].value(), args[0].op()),
        (0, 2114060288, LinuxSeccompOperator::ScmpCmpMaskedEq)
    );
    // clone3 gets ENOSYS so libc falls back to clone.
    let clone3 = rules_for(&p, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(clone3[0].errno_ret(), Some(38));
    // personality: only the listed personas.
    let pers: Vec<u64> = rules_for(&p, "personality")
        .iter()
        .map(|r| {
            let a = r.args().clone().unwrap();
            assert_eq!(
                (a[0].index(), a[0].op()),
                (0, LinuxSeccompOperator::ScmpCmpEq)
            );
            a[0].value()
        })
        .collect();
    assert_eq!(pers, vec![0, 8, 131072, 131080, 4294967295]);
    // socket: all families but AF_ALG... (38) and AF_VSOCK (40).
    assert_eq!(rules_for(&p, "socket").len(), 3);
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "keyctl",
        "bpf",
        "reboot",
        "init_module",
    ] {
        assert!(
            !allows(&p, name),
            "{name} must not be allowed with default caps"
        );
    }
    for name in [
        "read",
        "chroot",
        "arch_prctl",
        "modify_ldt",
        "ptrace",
        "process_vm_readv",
    ] {
        assert!(allows(&p, name), "{name} must be allowed");
    }
    for name in [
        "arm_fadvise64_64",
        "s390_pci_mmio_read",
        "riscv_flush_icache",
        "open_by_handle_at",
    ] {
        assert!(rules_for(&p, name).is_empty(), "{name} must be left out");
    }
    validate(&p).unwrap();
}

#[test]
fn seccomp_docker_with_sys_admin() {
    let caps = caps_plus(&["CAP_SYS_ADMIN"]);
    let p = from_docker_profile_on_kernel(EMBEDDED_DOCKER_DEFAULT, &caps, "amd64", (6, 1)).unwrap();
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "clone",
        "clone3",
        "fsopen",
        "move_mount",
    ] {
        assert!(
            allows(&p, name),
            "{name} must be allowed with CAP_SYS_ADMIN"
        );
    }
    // The ENOSYS clone3 rule and the masked clone rule are excluded.
    assert!(rules_for(&p, "clone3")
        .iter()
        .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
    assert!(rules_for(&p, "clone").iter().all(|r| r.args().is_none()));
    // Capabilities may be given without the CAP_ prefix, in lower case.
    let q = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        &["chown", "sys_admin"],
        "x86_64",
        (6, 1),
    )
    .unwrap();
    assert!(allows(&q, "mount"));
    assert!(!allows(&q, "chroot"), "no CAP_SYS_CHROOT given");
    compile(&p).unwrap();
}

#[test]
fn seccomp_docker_arch_filter() {
    let p = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "arm64",
        (6, 1),
    )
    .unwrap();
    assert_eq!(
        p.architectures().clone().unwrap(),
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    );
    assert!(allows(&p, "arm_fadvise64_64"));
    assert!(allows(&p, "set_tls"));
    assert!(!allows(&p, "arch_prctl"));
    assert!(!allows(&p, "modify_ldt"));
    // "aarch64" is an alias.
    let q = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "aarch64",
        (6, 1),
    )
    .unwrap();
    assert_eq!(p, q);

    // s390x: clone's flags are its second argument.
    let p = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "s390x",
        (6, 1),
    )
    .unwrap();
    assert_eq!(
        p.architectures().clone().unwrap(),
        vec![Arch::ScmpArchS390x, Arch::ScmpArchS390]
    );
    let clone = rules_for(&p, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].args().clone().unwrap()[0].index(), 1);
    assert!(allows(&p, "s390_pci_mmio_read"));

    // riscv64 has no sub-architectures.
    let p = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "riscv64",
        (6, 1),
    )
    .unwrap();
    assert_eq!(
        p.architectures().clone().unwrap(),
        vec![Arch::ScmpArchRiscv64]
    );

    let err = from_docker_profile(EMBEDDED_DOCKER_DEFAULT, DOCKER_DEFAULT_CAPABILITIES, "vax")
        .unwrap_err();
    assert!(matches!(
        err,
        SeccompError::UnknownValue {
            what: "architecture",
            ..
        }
    ));
}

#[test]
fn seccomp_docker_min_kernel() {
    let old = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "amd64",
        (4, 4),
    )
    .unwrap();
    assert!(
        !allows(&old, "ptrace"),
        "ptrace needs 4.8 without CAP_SYS_PTRACE"
    );
    let new = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "amd64",
        (4, 8),
    )
    .unwrap();
    assert!(allows(&new, "ptrace"));

    let profile = |cond: serde_json::Value| {
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "includes": cond.clone()},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "excludes": cond}
            ]
        })
        .to_string()
    };
    let p =
        from_docker_profile_on_kernel(&profile(json!({"minKernel": "6.2"})), &[], "amd64", (6, 10))
            .unwrap();
    assert!(!rules_for(&p, "mkdir").is_empty());
    assert!(rules_for(&p, "rmdir").is_empty());
    let p =
        from_docker_profile_on_kernel(&profile(json!({"minKernel": "6.2"})), &[], "amd64", (5, 15))
            .unwrap();
    assert!(rules_for(&p, "mkdir").is_empty());
    assert!(!rules_for(&p, "rmdir").is_empty());
    let err =
        from_docker_profile_on_kernel(&profile(json!({"minKernel": "new"})), &[], "amd64", (6, 1))
            .unwrap_err();
    assert!(err.to_string().contains("minKernel \"new\""), "{err}");
    // The real kernel version is readable here.
    from_docker_profile(EMBEDDED_DOCKER_DEFAULT, &[], "amd64").unwrap();
}

#[test]
fn seccomp_docker_profile_errors() {
    let err = from_docker_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}"#,
        &[],
        "amd64",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown action "SCMP_ACT_NOPE" in syscalls[0].action"#
    );
    let err = from_docker_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_Z80", "subArchitectures": null}]}"#,
        &[],
        "amd64",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown architecture "SCMP_ARCH_Z80" in archMap[0].architecture"#
    );
    let err = from_docker_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
        &[],
        "amd64",
    )
    .unwrap_err();
    assert!(matches!(err, SeccompError::Profile(_)));
    let err = from_docker_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ERRNO"}]}"#,
        &[],
        "amd64",
    )
    .unwrap_err();
    assert!(matches!(err, SeccompError::Profile(_)));
    // The old single "name" form still works.
    let p = from_docker_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "read", "action": "SCMP_ACT_ERRNO", "args": null}]}"#,
        &[],
        "amd64",
    )
    .unwrap();
    assert_eq!(rules(&p)[0].names(), &vec!["read".to_owned()]);
    // An unknown syscall name passes conversion but fails validation.
    let p = from_docker_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]}"#,
        &[],
        "amd64",
    )
    .unwrap();
    assert!(matches!(
        validate(&p).unwrap_err(),
        SeccompError::UnknownSyscall { .. }
    ));
    // Docker-only fields are refused in OCI form.
    assert!(matches!(
        from_json(EMBEDDED_DOCKER_DEFAULT).unwrap_err(),
        SeccompError::Profile(_)
    ));
}

#[test]
fn seccomp_embedded_default_profile_compiles() {
    let p = docker_default_profile();
    validate(&p).unwrap();
    let f = compile(&p).unwrap();
    assert!(!f.uses_notify());
    assert!(bpf_len(&f) > 0);
    // For other architectures too, as long as libseccomp knows them.
    // (Little-endian ones: libseccomp cannot mix endiannesses.)
    for arch in [
        "amd64", "arm64", "ppc64le", "riscv64", "mipsel64", "x86", "arm",
    ] {
        let caps = caps_plus(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        for caps in [DOCKER_DEFAULT_CAPABILITIES, &caps[..]] {
            let p =
                from_docker_profile_on_kernel(EMBEDDED_DOCKER_DEFAULT, caps, arch, (6, 1)).unwrap();
            validate(&p).unwrap();
            compile(&p).unwrap_or_else(|e| panic!("{arch}: {e}"));
        }
    }
    // loong64 converts; compiling needs a libseccomp that knows the arch.
    let p = from_docker_profile_on_kernel(
        EMBEDDED_DOCKER_DEFAULT,
        DOCKER_DEFAULT_CAPABILITIES,
        "loong64",
        (6, 1),
    )
    .unwrap();
    assert_eq!(
        p.architectures().clone().unwrap(),
        vec![Arch::ScmpArchLoongarch64]
    );
    if let Err(e) = compile(&p) {
        assert!(matches!(e, SeccompError::Unsupported { .. }), "{e}");
    }
}

// ---------------------------------------------------------------------------
// BPF programs and the program cache

/// libseccomp's own export of the compiled filter.
fn exported_bpf(p: &LinuxSeccomp) -> Vec<u8> {
    let mut file = tempfile::tempfile().unwrap();
    compile(p).unwrap().export_bpf(&file).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

fn errno38_profile() -> LinuxSeccomp {
    oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    }))
}

fn cache_files(state_root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(state_root.join(CACHE_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn seccomp_program_rejects_bytes_the_kernel_would_refuse() {
    let bpf = exported_bpf(&docker_default_profile());
    let p = Program::from_bpf(&bpf, 0).unwrap();
    assert_eq!(p.len() * 8, bpf.len());
    assert_eq!(p.to_bpf(), bpf, "reading and writing keep the bytes");

    for (bytes, err) in [
        (vec![], InvalidProgram::Empty),
        (
            bpf[..3].to_vec(),
            InvalidProgram::PartialInstruction { len: 3 },
        ),
        (
            bpf[..bpf.len() - 1].to_vec(),
            InvalidProgram::PartialInstruction { len: bpf.len() - 1 },
        ),
        (vec![0; 64], InvalidProgram::NoFinalReturn),
        // The first instruction alone: it loads the architecture.
        (bpf[..8].to_vec(), InvalidProgram::NoFinalReturn),
        (vec![0; 4097 * 8], InvalidProgram::TooLong { count: 4097 }),
    ] {
        assert_eq!(Program::from_bpf(&bytes, 0).unwrap_err(), err);
    }
    assert_eq!(
        InvalidProgram::PartialInstruction { len: 3 }.to_string(),
        "3 bytes is not a whole number of BPF instructions (8 bytes each)"
    );
}

#[test]
fn seccomp_program_flags_are_the_kernel_flags_libseccomp_uses() {
    assert_eq!(kernel_flags(&errno38_profile()), 1 | 2 | 4);
    assert_eq!(
        kernel_flags(&oci(json!({"defaultAction": "SCMP_ACT_ALLOW"}))),
        0
    );
    // Only meaningful (and only accepted) with a listener.
    assert_eq!(
        kernel_flags(&oci(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_LOG"]
        }))),
        2
    );
}

#[test]
fn seccomp_cache_key_depends_on_the_whole_config() {
    let a = cache::key(&errno38_profile()).unwrap();
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(a, cache::key(&errno38_profile()).unwrap(), "stable");
    let mut v = serde_json::to_value(errno38_profile()).unwrap();
    v["syscalls"][0]["errnoRet"] = json!(39);
    assert_ne!(a, cache::key(&oci(v.clone())).unwrap(), "errno");
    v["syscalls"][0]["errnoRet"] = json!(38);
    v["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC"]);
    assert_ne!(a, cache::key(&oci(v)).unwrap(), "flags");
}

#[test]
fn seccomp_cache_compiles_once_then_reads_libseccomps_program() {
    let root = tempfile::tempdir().unwrap();
    let cache = ProgramCache::open(root.path()).unwrap();
    let profile = docker_default_profile();

    let (first, origin) = cache.program(&profile).unwrap();
    assert_eq!(origin, Origin::Compiled);
    let (second, origin) = cache.program(&profile).unwrap();
    assert_eq!(origin, Origin::Cache);

    let bpf = exported_bpf(&profile);
    assert_eq!(first.to_bpf(), bpf);
    assert_eq!(second.to_bpf(), bpf);
    let path = cache.path(&cache::key(&profile).unwrap());
    assert_eq!(
        cache_files(root.path()),
        std::slice::from_ref(&path),
        "no temporary left"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bpf);
    let dir_meta = std::fs::metadata(root.path().join(CACHE_DIR)).unwrap();
    assert_eq!(dir_meta.permissions().mode() & 0o777, 0o700);

    // Another profile is another file, with its flags.
    let (p, origin) = cache.program(&errno38_profile()).unwrap();
    assert_eq!(origin, Origin::Compiled);
    assert_eq!(p.flags(), 1 | 2 | 4);
    assert_eq!(cache_files(root.path()).len(), 2);
}

#[test]
fn seccomp_cache_replaces_a_corrupt_file() {
    let root = tempfile::tempdir().unwrap();
    let cache = ProgramCache::open(root.path()).unwrap();
    let profile = errno38_profile();
    let path = cache.path(&cache::key(&profile).unwrap());
    let good = exported_bpf(&profile);

    for bad in [&b"abc"[..], &[0u8; 64][..], &[][..]] {
        std::fs::write(&path, bad).unwrap();
        let (p, origin) = cache.program(&profile).unwrap();
        assert_eq!(origin, Origin::Compiled, "{bad:?}");
        assert_eq!(p.to_bpf(), good);
        assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten");
    }

    // A symlink is not followed but replaced.
    let elsewhere = root.path().join("elsewhere.bpf");
    std::fs::write(&elsewhere, &good).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let (_, origin) = cache.program(&profile).unwrap();
    assert_eq!(origin, Origin::Compiled);
    assert!(!std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());

    // A file others may write is not trusted either.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, origin) = cache.program(&profile).unwrap();
    assert_eq!(origin, Origin::Compiled);
    let (_, origin) = cache.program(&profile).unwrap();
    assert_eq!(origin, Origin::Cache);
}

#[test]
fn seccomp_cache_refuses_a_directory_others_may_write() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(CACHE_DIR);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = ProgramCache::open(root.path()).unwrap_err();
    assert!(matches!(err, cache::CacheError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("lets others write it"), "{err}");
    // prepare then leaves the compilation to the process.
    let profile = errno38_profile();
    assert!(matches!(
        prepare(&profile, root.path()),
        Prepared::Compile(_)
    ));

    std::fs::remove_dir(&dir).unwrap();
    std::os::unix::fs::symlink(root.path(), &dir).unwrap();
    let err = ProgramCache::open(root.path()).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn seccomp_prepare_leaves_notify_and_invalid_filters_to_the_process() {
    let root = tempfile::tempdir().unwrap();
    let notify = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/unused",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(matches!(
        prepare(&notify, root.path()),
        Prepared::Compile(_)
    ));
    let invalid = oci(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let prepared = prepare(&invalid, root.path());
    assert!(matches!(prepared, Prepared::Compile(_)));
    // The process reports the same error compile always did.
    assert!(matches!(
        prepared.filter().unwrap_err(),
        SeccompError::UnknownSyscall { .. }
    ));
    assert!(
        cache_files(root.path()).is_empty(),
        "nothing stored for either"
    );

    let profile = errno38_profile();
    let Prepared::Program(p) = prepare(&profile, root.path()) else {
        panic!("a program expected");
    };
    assert_eq!(p.to_bpf(), exported_bpf(&profile));
}

#[test]
fn seccomp_cache_stays_bounded() {
    let root = tempfile::tempdir().unwrap();
    let cache = ProgramCache::open(root.path()).unwrap();
    for errno in 1..=MAX_ENTRIES as u32 + 1 {
        let p = oci(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]
        }));
        cache.program(&p).unwrap();
        assert!(cache_files(root.path()).len() <= MAX_ENTRIES);
    }
    let left = cache_files(root.path()).len();
    assert!((MAX_ENTRIES / 2..MAX_ENTRIES).contains(&left), "{left}");
}

// ---------------------------------------------------------------------------
// Seccomp agent

#[test]
fn seccomp_send_notify_fd_to_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut payload = Vec::new();
        let mut fds = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let (n, got) = socket::recv_fds(conn.as_fd(), &mut buf, 4).unwrap();
            fds.extend(got);
            if n == 0 {
                break;
            }
            payload.extend_from_slice(&buf[..n]);
        }
        (payload, fds)
    });

    let mut file = tempfile::tempfile().unwrap();
    let state =
        json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"});
    let cps = ContainerProcessState {
        oci_version: "1.2.0",
        fds: &[SECCOMP_FD_NAME],
        pid: 42,
        metadata: Some("meta"),
        state: &state,
    };
    let body = serde_json::to_vec(&cps).unwrap();
    send_notify_fd(&path, file.as_fd(), &body).unwrap();

    let (payload, fds) = agent.join().unwrap();
    let got: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        got,
        json!({"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 42, "metadata": "meta", "state": state})
    );
    assert_eq!(fds.len(), 1);
    // The received fd is the same open file.
    File::from(fds.into_iter().next().unwrap())
        .write_all(b"via agent")
        .unwrap();
    let mut s = String::new();
    std::io::Seek::rewind(&mut file).unwrap();
    file.read_to_string(&mut s).unwrap();
    assert_eq!(s, "via agent");

    let missing = dir.path().join("nobody.sock");
    let err = send_notify_fd(&missing, file.as_fd(), b"{}").unwrap_err();
    assert!(matches!(err, SeccompError::Listener { .. }));
    assert!(err.to_string().contains("nobody.sock"), "{err}");
}

// ---------------------------------------------------------------------------
// Behaviour: filters loaded in a child process

const SCENARIO_ENV: &str = "BARGE_SECCOMP_SCENARIO";

fn run_child(scenario: &str) -> Output {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([
            "seccomp::tests::child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO_ENV, scenario)
        .output()
        .unwrap()
}

fn assert_child_ok(scenario: &str) {
    let out = run_child(scenario);
    assert!(
        out.status.success(),
        "scenario {scenario}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the scenario named by the environment in this (child) process and
/// exits; does nothing in a normal test run.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var(SCENARIO_ENV) else {
        return;
    };
    let code = match run_scenario(&scenario) {
        Ok(()) => 0,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "scenario {scenario} failed: {msg}");
            1
        }
    };
    std::process::exit(code);
}

/// Scenarios whose name starts with this install their filters as the
/// runtime does with a program cache: compiled and stored, read back from
/// the cache, installed from those bytes (not by libseccomp).
const VIA_CACHE: &str = "cached:";

static LOAD_VIA_CACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn load(v: serde_json::Value) -> Result<Option<std::os::fd::OwnedFd>, String> {
    load_profile(&oci(v))
}

/// Loads `p` with libseccomp, or from the program cache in a
/// [`VIA_CACHE`] scenario.
fn load_profile(p: &LinuxSeccomp) -> Result<Option<std::os::fd::OwnedFd>, String> {
    if !LOAD_VIA_CACHE.load(std::sync::atomic::Ordering::Relaxed) {
        return compile(p)
            .map_err(|e| e.to_string())?
            .load()
            .map_err(|e| e.to_string());
    }
    let program = {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cache = ProgramCache::open(root.path()).map_err(|e| e.to_string())?;
        let (_, first) = cache.program(p).map_err(|e| e.to_string())?;
        let (program, second) = cache.program(p).map_err(|e| e.to_string())?;
        if (first, second) != (Origin::Compiled, Origin::Cache) {
            return Err(format!("cache lookups gave {first:?}, {second:?}"));
        }
        if program.flags() != kernel_flags(p) {
            return Err(format!("flags {:#x}", program.flags()));
        }
        program
        // The directory goes before the filter could forbid removing it.
    };
    let filter = Prepared::Program(program)
        .filter()
        .map_err(|e| e.to_string())?;
    filter.load().map_err(|e| e.to_string())
}

fn expect_errno(what: &str, r: std::io::Result<()>, errno: i32) -> Result<(), String> {
    match r {
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        other => Err(format!("{what}: expected errno {errno}, got {other:?}")),
    }
}

fn expect_ok(what: &str, r: std::io::Result<()>) -> Result<(), String> {
    r.map_err(|e| format!("{what}: expected success, got {e}"))
}

fn run_scenario(name: &str) -> Result<(), String> {
    let name = match name.strip_prefix(VIA_CACHE) {
        Some(rest) => {
            LOAD_VIA_CACHE.store(true, std::sync::atomic::Ordering::Relaxed);
            rest
        }
        None => name,
    };
    // Only the Docker scenario lets mkdir through (and removes the dir).
    let new_dir = std::env::temp_dir().join(format!("barge-seccomp-test-{}", std::process::id()));
    match name {
        "errno38" => {
            let mut p = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                          "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
            });
            if cfg!(target_arch = "x86_64") {
                p["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
            }
            if load(p)?.is_some() {
                return Err("no notify fd expected".into());
            }
            expect_errno("mkdir", std::fs::create_dir(&new_dir), libc::ENOSYS)?;
            expect_ok("stat", std::fs::metadata("/").map(drop))?;
            // One filter, in filter mode.
            let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
            for want in ["Seccomp:\t2", "Seccomp_filters:\t1"] {
                if !status.lines().any(|l| l == want) {
                    return Err(format!("{want:?} not in /proc/self/status"));
                }
            }
            Ok(())
        }
        "allowlist" => {
            let pid = std::process::id();
            load(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["exit_group", "exit", "getpid", "write", "futex", "brk",
                                        "mmap", "munmap", "madvise", "rt_sigprocmask",
                                        "sigaltstack", "close"],
                              "action": "SCMP_ACT_ALLOW"}]
            }))?;
            if std::process::id() != pid {
                return Err("getpid must still work".into());
            }
            expect_errno("mkdir", std::fs::create_dir(&new_dir), libc::EPERM)?;
            expect_errno("open", File::open("/").map(drop), libc::EPERM)
        }
        "default_errno_ret" => {
            load(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 95,
                "syscalls": [{"names": ["exit_group", "exit", "getpid", "write", "futex", "brk",
                                        "mmap", "munmap", "madvise", "rt_sigprocmask",
                                        "sigaltstack", "close"],
                              "action": "SCMP_ACT_ALLOW"}]
            }))?;
            expect_errno("mkdir", std::fs::create_dir(&new_dir), libc::EOPNOTSUPP)
        }
        "args" => {
            let f = tempfile::tempfile().map_err(|e| e.to_string())?;
            let cond = |args: serde_json::Value| json!({"names": ["ftruncate"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": args});
            let tests: &[(serde_json::Value, &[(u64, bool)])] = &[
                // Single condition: deny lengths above 4096.
                (
                    json!([{"index": 1, "value": 4096, "op": "SCMP_CMP_GT"}]),
                    &[(100, true), (4096, true), (8192, false)],
                ),
                // Same argument twice: split into two rules, i.e. OR.
                (
                    json!([{"index": 1, "value": 10, "op": "SCMP_CMP_LT"},
                           {"index": 1, "value": 1000, "op": "SCMP_CMP_GT"}]),
                    &[(5, false), (100, true), (5000, false)],
                ),
                // Two arguments: ANDed in one rule.
                (
                    json!([{"index": 0, "value": 99999, "op": "SCMP_CMP_NE"},
                           {"index": 1, "value": 77, "op": "SCMP_CMP_EQ"}]),
                    &[(77, false), (78, true)],
                ),
                // Masked equality: (len & 0xf0) == 0x30.
                (
                    json!([{"index": 1, "value": 240, "valueTwo": 48, "op": "SCMP_CMP_MASKED_EQ"}]),
                    &[(0x35, false), (0x45, true), (0x130, false)],
                ),
                (
                    json!([{"index": 1, "value": 50, "op": "SCMP_CMP_LE"}]),
                    &[(50, false), (51, true)],
                ),
                (
                    json!([{"index": 1, "value": 50, "op": "SCMP_CMP_GE"}]),
                    &[(49, true), (50, false)],
                ),
            ];
            // Each filter stacks on the previous ones, so test each in a
            // thread of its own: a filter applies to its thread only.
            for (args, cases) in tests {
                std::thread::scope(|scope| {
                    scope
                        .spawn(|| -> Result<(), String> {
                            load(json!({
                                "defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [cond(args.clone())]
                            }))?;
                            for &(len, allowed) in cases.iter() {
                                let what = format!("ftruncate({len}) with {args}");
                                if allowed {
                                    expect_ok(&what, f.set_len(len))?;
                                } else {
                                    expect_errno(&what, f.set_len(len), libc::EACCES)?;
                                }
                            }
                            Ok(())
                        })
                        .join()
                        .map_err(|_| "thread panicked".to_string())?
                })?;
            }
            // Personality-style rule from the Docker profile: only listed
            // values allowed; exercised through the Docker scenario below.
            Ok(())
        }
        "kill_process" => {
            load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
            }))?;
            let _ = std::fs::create_dir(&new_dir);
            Err("still alive after mkdir".into())
        }
        "notify" => {
            let fd = load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "/unused",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
            }))?
            .ok_or("load must return the notify fd")?;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|e| e.to_string())?;
            if !link.to_string_lossy().contains("seccomp notify") {
                return Err(format!("fd is {link:?}, not a seccomp notify fd"));
            }
            // A thread created now inherits the filter; its mkdir waits for
            // us, the agent, to answer.
            let target = new_dir.clone();
            let worker = std::thread::spawn(move || std::fs::create_dir(&target));
            let req = ScmpNotifReq::receive(fd.as_raw_fd()).map_err(|e| e.to_string())?;
            let name = req.data.syscall.get_name().map_err(|e| e.to_string())?;
            if name != "mkdir" && name != "mkdirat" {
                return Err(format!("notified for {name}"));
            }
            ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
                .respond(fd.as_raw_fd())
                .map_err(|e| e.to_string())?;
            let r = worker.join().map_err(|_| "worker panicked".to_string())?;
            expect_errno("notified mkdir", r, libc::EXDEV)
        }
        "docker_default" => {
            // Control: as root, a user namespace can be made before.
            let before = Command::new("unshare").args(["--user", "true"]).output();
            let userns_works = matches!(&before, Ok(o) if o.status.success());
            let pid = std::process::id();
            let fd = load_profile(&docker_default_profile())?;
            if fd.is_some() {
                return Err("no notify fd expected".into());
            }
            if std::process::id() != pid {
                return Err("getpid must work".into());
            }
            // chroot is allowed with Docker's default caps.
            expect_ok("chroot", std::os::unix::fs::chroot("/"))?;
            // Spawning works (clone3 -> ENOSYS -> clone without ns flags),
            // but unshare(CLONE_NEWUSER) in the child is denied with EPERM.
            let out = Command::new("unshare")
                .args(["--user", "true"])
                .output()
                .map_err(|e| format!("spawning under the Docker profile: {e}"))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !stderr.contains("Operation not permitted") {
                return Err(format!(
                    "unshare --user must fail with EPERM (worked before: {userns_works}): {:?} {stderr}",
                    out.status
                ));
            }
            // setarch calls personality(): PER_LINUX32 (8) is on the
            // profile's list, ADDR_NO_RANDOMIZE (0x0040000, `-R`) is not.
            let ok = Command::new("setarch")
                .args(["linux32", "true"])
                .output()
                .map_err(|e| e.to_string())?;
            if !ok.status.success() {
                return Err(format!(
                    "setarch linux32 must work: {}",
                    String::from_utf8_lossy(&ok.stderr)
                ));
            }
            let denied = Command::new("setarch")
                .args([std::env::consts::ARCH, "-R", "true"])
                .output()
                .map_err(|e| e.to_string())?;
            let stderr = String::from_utf8_lossy(&denied.stderr);
            if denied.status.success() || !stderr.contains("Operation not permitted") {
                return Err(format!("setarch -R must fail with EPERM: {stderr}"));
            }
            Ok(())
        }
        "docker_no_chroot_cap" => {
            let caps: Vec<&str> = DOCKER_DEFAULT_CAPABILITIES
                .iter()
                .copied()
                .filter(|c| *c != "CAP_SYS_CHROOT")
                .collect();
            expect_ok("chroot before", std::os::unix::fs::chroot("/"))?;
            let p = from_docker_profile(EMBEDDED_DOCKER_DEFAULT, &caps, host_arch())
                .map_err(|e| e.to_string())?;
            load_profile(&p)?;
            expect_errno("chroot", std::os::unix::fs::chroot("/"), libc::EPERM)?;
            expect_ok("mkdir", std::fs::create_dir(&new_dir))?;
            expect_ok("rmdir", std::fs::remove_dir(&new_dir))
        }
        other => Err(format!("unknown scenario {other}")),
    }
}

#[test]
fn seccomp_child_errno_ret_38_on_mkdir() {
    assert_child_ok("errno38");
}

#[test]
fn seccomp_child_default_errno_with_allow_list() {
    assert_child_ok("allowlist");
    assert_child_ok("default_errno_ret");
}

#[test]
fn seccomp_child_argument_conditions() {
    assert_child_ok("args");
}

#[test]
fn seccomp_child_kill_process_is_sigsys() {
    let out = run_child("kill_process");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn seccomp_child_notify_returns_usable_fd() {
    assert_child_ok("notify");
}

#[test]
fn seccomp_child_docker_default_profile() {
    assert_child_ok("docker_default");
}

#[test]
fn seccomp_child_docker_profile_without_chroot_cap() {
    assert_child_ok("docker_no_chroot_cap");
}

// The same scenarios with the filter installed from the program cache's
// bytes: it must behave exactly as libseccomp's own load.

#[test]
fn seccomp_child_cached_program_errno_ret_38_with_flags() {
    assert_child_ok("cached:errno38");
}

#[test]
fn seccomp_child_cached_program_default_errno_with_allow_list() {
    assert_child_ok("cached:allowlist");
    assert_child_ok("cached:default_errno_ret");
}

#[test]
fn seccomp_child_cached_program_argument_conditions() {
    assert_child_ok("cached:args");
}

#[test]
fn seccomp_child_cached_program_kill_process_is_sigsys() {
    let out = run_child("cached:kill_process");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn seccomp_child_cached_program_docker_default_profile() {
    assert_child_ok("cached:docker_default");
    assert_child_ok("cached:docker_no_chroot_cap");
}
