//! Protection of the runtime binary against being overwritten from inside a
//! container (CVE-2019-5736).
//!
//! A process in the container can reach the runtime's executable through
//! `/proc/<pid>/exe` of the init or of an exec'd process while they still
//! run the runtime's code. So before any command that enters a container,
//! the runtime re-executes itself from a sealed memfd copy: what the
//! container can reach is then an anonymous, write-sealed file, never the
//! binary on the host.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use crate::error::{io_err, Result, RuntimeError};
use crate::sys;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Is this process already running from a sealed memfd?
pub fn running_sealed() -> bool {
    File::open("/proc/self/exe")
        .ok()
        .and_then(|f| sys::fcntl_int(f.as_fd(), libc::F_GET_SEALS, 0).ok())
        .is_some_and(|s| s & SEALS == SEALS)
}

/// Re-exec from a sealed copy unless already running from one. Returns
/// only when nothing needs to be done; on success it never returns.
pub fn ensure_sealed_self() -> Result<()> {
    let exe = File::open("/proc/self/exe").map_err(|e| io_err("open /proc/self/exe", e))?;
    if sys::fcntl_int(exe.as_fd(), libc::F_GET_SEALS, 0).is_ok_and(|s| s & SEALS == SEALS) {
        return Ok(());
    }
    let len = exe
        .metadata()
        .map_err(|e| io_err("stat /proc/self/exe", e))?
        .len() as usize;
    let memfd = sys::memfd_create(c"barge-runc", libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        .map_err(|e| io_err("memfd_create", e))?;
    let mut copied = 0;
    while copied < len {
        let n = sys::sendfile(memfd.as_fd(), exe.as_fd(), len - copied)
            .map_err(|e| io_err("copy runtime binary", e))?;
        if n == 0 {
            return Err(RuntimeError::Other(
                "runtime binary shrank while being copied".into(),
            ));
        }
        copied += n;
    }
    sys::fcntl_int(memfd.as_fd(), libc::F_ADD_SEALS, SEALS)
        .map_err(|e| io_err("seal runtime copy", e))?;
    drop(exe);
    let to_c = |b: &[u8]| CString::new(b).unwrap_or_default();
    let argv: Vec<CString> = std::env::args_os().map(|a| to_c(a.as_bytes())).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            to_c(&kv)
        })
        .collect();
    let e = sys::fexecve(memfd.as_fd(), &argv, &envp);
    Err(io_err("re-exec from sealed copy", e))
}
