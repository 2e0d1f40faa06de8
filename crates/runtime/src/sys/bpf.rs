//! eBPF syscalls for the cgroup v2 device controller.
//!
//! Owns the raw `bpf(2)` calls the cgroups module needs to install a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program: load, attach, detach, query the
//! programs attached to a cgroup, open a program by id and read its name.
//! Building the program (the instructions) is the job of
//! `cgroups::devices`; this file only moves bytes across the syscall boundary.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_PROG_TYPE_CGROUP_DEVICE` from `<linux/bpf.h>`.
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` attach type.
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI` attach flag.
pub const BPF_F_ALLOW_MULTI: u32 = 2;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;

/// Maximum length of a program name including the trailing NUL.
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// One eBPF instruction (`struct bpf_insn`): opcode, registers (dst in the
/// low nibble, src in the high nibble), 16-bit offset and 32-bit immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        BpfInsn {
            code,
            regs: (dst & 0x0f) | ((src & 0x0f) << 4),
            off,
            imm,
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Calls `bpf(cmd, attr, size_of::<T>())`.
fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised `#[repr(C)]` struct (all
    // fields, including explicit padding, are set) whose layout is a prefix
    // of `union bpf_attr` for `cmd`; the size passed matches it. Any pointers
    // stored inside point to buffers the caller keeps alive for this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_from_ret(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned `fd` as a new file descriptor that
    // nothing else owns; we take ownership exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program. On failure the verifier
/// log (if any) is returned inside the error message.
pub fn prog_load_cgroup_device(
    insns: &[BpfInsn],
    license: &CStr,
    name: &str,
) -> io::Result<OwnedFd> {
    let insn_cnt =
        u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut prog_name = [0u8; BPF_OBJ_NAME_LEN];
    for (dst, src) in prog_name
        .iter_mut()
        .zip(name.bytes().take(BPF_OBJ_NAME_LEN - 1))
    {
        *dst = src;
    }
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(ret) => fd_from_ret(ret),
        Err(first) => {
            // Retry with the verifier log on, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            match sys_bpf(BPF_PROG_LOAD, &mut attr) {
                Ok(ret) => fd_from_ret(ret),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    let text = text.trim();
                    if text.is_empty() {
                        Err(first)
                    } else {
                        Err(io::Error::new(
                            first.kind(),
                            format!("{first}; verifier log: {text}"),
                        ))
                    }
                }
            }
        }
    }
}

/// `BPF_PROG_ATTACH` of `prog` to the cgroup directory `target`.
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

/// `BPF_PROG_DETACH` of `prog` from the cgroup directory `target`.
pub fn prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(|_| ())
}

/// `BPF_PROG_QUERY`: ids of the programs attached directly to `target`.
pub fn prog_query(target: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut cap = 64usize;
    loop {
        let mut ids = vec![0u32; cap];
        let mut attr = QueryAttr {
            target_fd: target.as_raw_fd() as u32,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: cap as u32,
            ..Default::default()
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate((attr.prog_cnt as usize).min(cap));
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && cap < 1 << 16 => {
                cap = (attr.prog_cnt as usize).max(cap * 2);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    fd_from_ret(sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// The name a program was loaded with (`bpf_prog_info.name`).
pub fn prog_name(prog: BorrowedFd<'_>) -> io::Result<String> {
    // struct bpf_prog_info: `name` is at offset 64, 16 bytes long. The
    // kernel copies at most `info_len` bytes, so a larger buffer is fine.
    const NAME_OFFSET: usize = 64;
    let mut info = [0u8; 256];
    let mut attr = InfoByFdAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let name = &info[NAME_OFFSET..NAME_OFFSET + BPF_OBJ_NAME_LEN];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insn_layout() {
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        let i = BpfInsn::new(0x61, 2, 1, 4, -1);
        assert_eq!(i.regs, 0x12);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
    }
}
