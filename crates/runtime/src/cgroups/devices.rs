//! The device controller: v1 `devices.allow`/`devices.deny` lines and the v2
//! eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program built from `linux.resources.devices`.
//!
//! Semantics (same on v1 and v2): the list starts as "deny everything"; a
//! rule of type `a` without major/minor resets the default to its `allow`
//! and drops earlier rules; after that, the *last* matching rule wins, as in
//! runc's `devicefilter`. The program therefore checks the rules in reverse
//! order and returns on the first match. An allow rule matches a request
//! when every requested access is in the rule; a deny rule matches when any
//! requested access is in the rule (so denying `w` also denies `rw` opens).

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{CgroupError, Result};
use crate::sys::bpf::{self, BpfInsn};

/// Name our programs are loaded with; used to find them again for detaching.
pub const PROG_NAME: &str = "barge_devices";

// struct bpf_cgroup_dev_ctx access/type bits
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// A validated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// `None` is type `a` with a specific major/minor (both char and block).
    pub kind: Option<char>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// BPF access bits.
    pub access: i32,
}

/// The rules after the last "all devices" wildcard, and the default verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub default_allow: bool,
    pub rules: Vec<Rule>,
}

fn invalid(rule: &LinuxDeviceCgroup, msg: &str) -> CgroupError {
    CgroupError::Invalid {
        what: format!("device rule {rule}"),
        msg: msg.to_string(),
    }
}

fn num(rule: &LinuxDeviceCgroup, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None), // -1 is "*" in some configs
        Some(n) if n > i32::MAX as i64 => Err(invalid(rule, "major/minor out of range")),
        Some(n) => Ok(Some(n as u32)),
    }
}

fn access_bits(rule: &LinuxDeviceCgroup) -> Result<i32> {
    let acc = rule.access().as_deref().unwrap_or("");
    if acc.is_empty() {
        return Ok(ACC_ALL);
    }
    let mut bits = 0;
    for c in acc.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(invalid(rule, "access must be made of r, w, m")),
        };
    }
    Ok(bits)
}

/// Validates and reduces the config's device rules.
pub fn ruleset(rules: &[LinuxDeviceCgroup]) -> Result<RuleSet> {
    let mut set = RuleSet {
        default_allow: false,
        rules: Vec::new(),
    };
    for r in rules {
        let typ = r.typ().unwrap_or(LinuxDeviceType::A);
        let major = num(r, r.major())?;
        let minor = num(r, r.minor())?;
        let access = access_bits(r)?;
        let kind = match typ {
            LinuxDeviceType::A => None,
            LinuxDeviceType::C | LinuxDeviceType::U => Some('c'),
            LinuxDeviceType::B => Some('b'),
            LinuxDeviceType::P => {
                return Err(invalid(
                    r,
                    "type p (fifo) cannot be used in device cgroup rules",
                ))
            }
        };
        if kind.is_none() && major.is_none() && minor.is_none() {
            // "a *:* ..." resets the list. A partial access wildcard cannot
            // be expressed as a default; keep it as a rule instead.
            if access == ACC_ALL {
                set.default_allow = r.allow();
                set.rules.clear();
                continue;
            }
        }
        set.rules.push(Rule {
            allow: r.allow(),
            kind,
            major,
            minor,
            access,
        });
    }
    Ok(set)
}

/// The v1 line for a rule, e.g. `c 1:3 rwm` or `a *:* rwm`.
pub fn v1_line(rule: &Rule) -> String {
    let n = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
    let mut acc = String::new();
    if rule.access & ACC_READ != 0 {
        acc.push('r');
    }
    if rule.access & ACC_WRITE != 0 {
        acc.push('w');
    }
    if rule.access & ACC_MKNOD != 0 {
        acc.push('m');
    }
    format!(
        "{} {}:{} {}",
        rule.kind.unwrap_or('a'),
        n(rule.major),
        n(rule.minor),
        acc
    )
}

/// Writes v1 rules into `dir` (the devices hierarchy's container cgroup):
/// first a reset, then each rule in order, like runc.
pub fn apply_v1(dir: &Path, set: &RuleSet) -> Result<()> {
    if set.default_allow {
        super::write_file(&dir.join("devices.allow"), "a")?;
    } else {
        super::write_file(&dir.join("devices.deny"), "a")?;
    }
    for r in &set.rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        super::write_file(&dir.join(file), &v1_line(r))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- eBPF

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JSET_K: u8 = 0x45;
const JMP_EXIT: u8 = 0x95;

/// Marker offset for "jump to the next block", patched when a block ends.
const NEXT: i16 = i16::MIN;

/// Builds the device filter program for `set`.
pub fn program(set: &RuleSet) -> Result<Vec<BpfInsn>> {
    let mut p = vec![
        // R2 = type (low 16 bits of access_type)
        BpfInsn::new(LDX_MEM_W, R2, R1, 0, 0),
        BpfInsn::new(ALU32_AND_K, R2, 0, 0, 0xffff),
        // R3 = access (high 16 bits of access_type)
        BpfInsn::new(LDX_MEM_W, R3, R1, 0, 0),
        BpfInsn::new(ALU32_RSH_K, R3, 0, 0, 16),
        // R4 = major, R5 = minor
        BpfInsn::new(LDX_MEM_W, R4, R1, 4, 0),
        BpfInsn::new(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in set.rules.iter().rev() {
        let mut block = Vec::new();
        if let Some(k) = rule.kind {
            let t = if k == 'b' { DEV_BLOCK } else { DEV_CHAR };
            block.push(BpfInsn::new(JMP_JNE_K, R2, 0, NEXT, t));
        }
        if rule.access != ACC_ALL {
            if rule.allow {
                // requested access must be a subset: skip if R3 & ~access
                block.push(BpfInsn::new(
                    JMP_JSET_K,
                    R3,
                    0,
                    NEXT,
                    !rule.access & ACC_ALL,
                ));
            } else {
                // any requested access in the rule: skip if (R3 & access) == 0
                block.push(BpfInsn::new(ALU32_MOV_X, R1, R3, 0, 0));
                block.push(BpfInsn::new(ALU32_AND_K, R1, 0, 0, rule.access));
                block.push(BpfInsn::new(JMP_JEQ_K, R1, 0, NEXT, 0));
            }
        }
        if let Some(m) = rule.major {
            block.push(BpfInsn::new(JMP_JNE_K, R4, 0, NEXT, m as i32));
        }
        if let Some(m) = rule.minor {
            block.push(BpfInsn::new(JMP_JNE_K, R5, 0, NEXT, m as i32));
        }
        block.push(BpfInsn::new(ALU32_MOV_K, R0, 0, 0, i32::from(rule.allow)));
        block.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.off == NEXT {
                insn.off = i16::try_from(len - i - 1).map_err(|_| CgroupError::Invalid {
                    what: "device rules".into(),
                    msg: "program too large".into(),
                })?;
            }
        }
        p.extend(block);
    }
    p.push(BpfInsn::new(
        ALU32_MOV_K,
        R0,
        0,
        0,
        i32::from(set.default_allow),
    ));
    p.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
    if p.len() > 4096 {
        return Err(CgroupError::Invalid {
            what: "device rules".into(),
            msg: format!("{} rules make a program too large", set.rules.len()),
        });
    }
    Ok(p)
}

/// Loads the program for `set`, attaches it to the cgroup `dir`, then
/// detaches the programs we attached earlier, so exactly one of ours remains.
/// Programs attached by others (not named [`PROG_NAME`]) are left alone.
pub fn apply_v2(dir: &Path, set: &RuleSet) -> Result<()> {
    use std::os::fd::AsFd;
    let insns = program(set)?;
    let bpf_err = |op: &'static str| {
        move |source: std::io::Error| CgroupError::Bpf {
            op,
            path: dir.to_path_buf(),
            source,
        }
    };
    let cg = std::fs::File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let old =
        bpf::prog_query(cg.as_fd(), bpf::BPF_CGROUP_DEVICE).map_err(bpf_err("BPF_PROG_QUERY"))?;
    let prog = bpf::prog_load_cgroup_device(&insns, c"Apache", PROG_NAME)
        .map_err(bpf_err("BPF_PROG_LOAD"))?;
    bpf::prog_attach(
        cg.as_fd(),
        prog.as_fd(),
        bpf::BPF_CGROUP_DEVICE,
        bpf::BPF_F_ALLOW_MULTI,
    )
    .map_err(bpf_err("BPF_PROG_ATTACH"))?;
    for id in old {
        let fd = match bpf::prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            // Gone meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID")(e)),
        };
        let name = bpf::prog_name(fd.as_fd()).map_err(bpf_err("BPF_OBJ_GET_INFO_BY_FD"))?;
        if name != PROG_NAME {
            continue;
        }
        match bpf::prog_detach(cg.as_fd(), fd.as_fd(), bpf::BPF_CGROUP_DEVICE) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_DETACH")(e)),
        }
    }
    Ok(())
}

/// Ids of our device programs attached to `dir` (for tests and diagnostics).
pub fn attached_programs(dir: &Path) -> Result<Vec<u32>> {
    use std::os::fd::AsFd;
    let cg = std::fs::File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let ids =
        bpf::prog_query(cg.as_fd(), bpf::BPF_CGROUP_DEVICE).map_err(|source| CgroupError::Bpf {
            op: "BPF_PROG_QUERY",
            path: dir.to_path_buf(),
            source,
        })?;
    let mut ours = Vec::new();
    for id in ids {
        if let Ok(fd) = bpf::prog_get_fd_by_id(id) {
            if bpf::prog_name(fd.as_fd())
                .map(|n| n == PROG_NAME)
                .unwrap_or(false)
            {
                ours.push(id);
            }
        }
    }
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    /// A tiny interpreter for the subset of eBPF we emit, to test the
    /// program's verdicts without the kernel.
    fn run(p: &[BpfInsn], typ: i32, access: i32, major: u32, minor: u32) -> i32 {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let dst = (i.regs & 0xf) as usize;
            let src = (i.regs >> 4) as usize;
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[(i.off / 4) as usize] as u64,
                ALU32_AND_K => r[dst] = ((r[dst] as u32) & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JSET_K if r[dst] & (i.imm as i64 as u64) != 0 => pc += i.off as usize,
                JMP_JNE_K | JMP_JEQ_K | JMP_JSET_K => {}
                JMP_EXIT => return r[0] as i32,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn ruleset_and_v1_lines() {
        let set = ruleset(&rules(
            r#"[{"allow":true,"type":"c","major":9,"minor":9,"access":"r"},
                {"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"b","major":8,"access":"r"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
        ))
        .unwrap();
        assert!(!set.default_allow);
        assert_eq!(set.rules.len(), 3);
        let lines: Vec<String> = set.rules.iter().map(v1_line).collect();
        assert_eq!(lines, vec!["c 1:3 rwm", "b 8:* r", "c 1:3 w"]);
        assert!(ruleset(&rules(r#"[{"allow":true,"type":"c","access":"x"}]"#)).is_err());
        assert!(ruleset(&rules(r#"[{"allow":true,"type":"p"}]"#)).is_err());
    }

    #[test]
    fn program_verdicts_last_match_wins() {
        let set = ruleset(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"},
                {"allow":true,"type":"b","major":8,"access":"r"}]"#,
        ))
        .unwrap();
        let p = program(&set).unwrap();
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1); // /dev/null
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 1); // /dev/zero read
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 0); // write denied by the later rule
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 5), 0); // rw includes w
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 7), 0); // default deny
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 1), 1);
        assert_eq!(run(&p, DEV_BLOCK, rw, 8, 1), 0); // w not allowed
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 8, 1), 0); // wrong type

        let allow_all = ruleset(&rules(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5}]"#,
        ))
        .unwrap();
        let p = program(&allow_all).unwrap();
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 0);
    }
}
