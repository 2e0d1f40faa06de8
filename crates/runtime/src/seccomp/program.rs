//! A seccomp filter in the form the kernel takes: a classic BPF program and
//! the `SECCOMP_FILTER_FLAG_*` flags to install it with.
//!
//! A [`Program`] is made from the BPF that libseccomp exports for a compiled
//! filter (the same program its own load would install), checked the way
//! the kernel will check it as far as size and termination go, and
//! installed with [`sys::seccomp::set_mode_filter`]. It never carries
//! `SCMP_ACT_NOTIFY`: a notify filter's listener fd comes from libseccomp's
//! own load, so those filters are always compiled in the process.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};

use super::SeccompError;
use crate::sys::seccomp::{self as sys_seccomp, SockFilter, BPF_MAXINSNS, SOCK_FILTER_SIZE};

/// `BPF_RET`, the class of the instruction every program must end with.
const BPF_RET: u16 = 0x06;
/// Mask of the instruction class bits of `code`.
const BPF_CLASS_MASK: u16 = 0x07;

/// Why bytes are not a program the kernel would accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidProgram {
    #[error(
        "{len} bytes is not a whole number of BPF instructions ({SOCK_FILTER_SIZE} bytes each)"
    )]
    PartialInstruction { len: usize },
    #[error("the program is empty")]
    Empty,
    #[error("{count} instructions is more than the kernel accepts ({BPF_MAXINSNS})")]
    TooLong { count: usize },
    #[error("the last instruction is not a return")]
    NoFinalReturn,
}

/// A classic BPF seccomp program with its filter flags, ready to install.
#[derive(Clone)]
pub struct Program {
    insns: Vec<SockFilter>,
    flags: u32,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("instructions", &self.insns.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Program {
    /// Reads a program from `struct sock_filter` bytes in native byte order
    /// (what `seccomp_export_bpf` writes), to be installed with `flags`.
    pub fn from_bpf(bytes: &[u8], flags: u32) -> Result<Self, InvalidProgram> {
        let chunks = bytes.chunks_exact(SOCK_FILTER_SIZE);
        if !chunks.remainder().is_empty() {
            return Err(InvalidProgram::PartialInstruction { len: bytes.len() });
        }
        let count = chunks.len();
        if count == 0 {
            return Err(InvalidProgram::Empty);
        }
        if count > BPF_MAXINSNS {
            return Err(InvalidProgram::TooLong { count });
        }
        let insns: Vec<SockFilter> = chunks
            .map(|b| SockFilter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect();
        // The kernel refuses a program that can run off its end; so does a
        // file of zeros left by a crash.
        if insns.last().map(|i| i.code & BPF_CLASS_MASK) != Some(BPF_RET) {
            return Err(InvalidProgram::NoFinalReturn);
        }
        Ok(Program { insns, flags })
    }

    /// The program as `struct sock_filter` bytes in native byte order.
    pub fn to_bpf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.insns.len() * SOCK_FILTER_SIZE);
        for i in &self.insns {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Always false: an empty program is never made.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The `SECCOMP_FILTER_FLAG_*` flags it is installed with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Installs the program for the calling thread (every thread with
    /// TSYNC); it is inherited across fork and exec. Like
    /// [`Filter::load`](super::Filter::load) it needs `no_new_privs` or
    /// `CAP_SYS_ADMIN`.
    pub fn load(&self) -> Result<(), SeccompError> {
        sys_seccomp::set_mode_filter(self.flags, &self.insns).map_err(SeccompError::Install)
    }
}

/// The kernel flags of `linux.seccomp.flags`, as libseccomp sets them when
/// it loads the compiled filter. `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`
/// applies only to a filter with a listener (the kernel refuses it
/// otherwise, and libseccomp adds it only then), so a program never has it.
pub fn kernel_flags(seccomp: &LinuxSeccomp) -> u32 {
    seccomp.flags().iter().flatten().fold(0, |acc, flag| {
        acc | match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => sys_seccomp::FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => sys_seccomp::FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => sys_seccomp::FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        }
    })
}
