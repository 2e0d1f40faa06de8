//! Installing a seccomp filter from a classic BPF program.
//!
//! Owns the raw `seccomp(SECCOMP_SET_MODE_FILTER)` call (and its
//! `prctl(PR_SET_SECCOMP)` fallback) for programs compiled earlier, e.g.
//! read from the runtime's seccomp cache. Building and checking programs is
//! the job of `crate::seccomp`; this file only hands them to the kernel.

use std::io;

/// One classic BPF instruction (`struct sock_filter`).
pub use libc::sock_filter as SockFilter;

/// Size of one instruction in bytes.
pub const SOCK_FILTER_SIZE: usize = std::mem::size_of::<SockFilter>();

/// The most instructions the kernel accepts in one program.
pub const BPF_MAXINSNS: usize = libc::BPF_MAXINSNS as usize;

/// `SECCOMP_FILTER_FLAG_TSYNC`: install on every thread of the process.
pub const FLAG_TSYNC: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC as u32;
/// `SECCOMP_FILTER_FLAG_LOG`: log every action but `SECCOMP_RET_ALLOW`.
pub const FLAG_LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: keep speculative store bypass enabled.
pub const FLAG_SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;

/// Installs `program` as a seccomp filter of the calling thread (of every
/// thread with [`FLAG_TSYNC`]). Like any seccomp filter it needs
/// `no_new_privs` or `CAP_SYS_ADMIN`, and it applies to the caller's own
/// syscalls from the moment it returns.
///
/// Uses `seccomp(2)`; on a kernel without it (ENOSYS) and with no flags,
/// `prctl(PR_SET_SECCOMP)` instead, as libseccomp does. A failed thread
/// synchronisation is reported as ESRCH.
pub fn set_mode_filter(flags: u32, program: &[SockFilter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .ok()
        .filter(|&n| n > 0 && usize::from(n) <= BPF_MAXINSNS)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` describes `len` initialised instructions of `program`,
    // which outlives the call; the kernel copies the program and never
    // writes through the pointer (the `*mut` is only the C declaration).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    };
    match ret {
        0 => return Ok(()),
        // With TSYNC the kernel returns the id of a thread it could not
        // synchronise.
        r if r > 0 => return Err(io::Error::from_raw_os_error(libc::ESRCH)),
        _ => {}
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) || flags != 0 {
        return Err(err);
    }
    // SAFETY: as above; PR_SET_SECCOMP with SECCOMP_MODE_FILTER only reads
    // the program through `prog`.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
