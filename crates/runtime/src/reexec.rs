//! Protection of the runtime binary against being overwritten from inside a
//! container (CVE-2019-5736).
//!
//! A process in the container can reach the runtime's executable through
//! `/proc/<pid>/exe` of the init or of an exec'd process while they still
//! run the runtime's code (or by making the container's entrypoint
//! `/proc/self/exe`). So before any command that enters a container, the
//! runtime makes sure the file it runs from cannot be written:
//!
//! 1. already protected: the executable sits on a read-only mount, or is a
//!    sealed memfd — nothing to do;
//! 2. fast path (root): enter a private mount namespace, bind-mount the
//!    binary read-only onto itself there, and re-exec through that mount.
//!    Any reopen for writing through `/proc/<pid>/exe` fails with EROFS, and
//!    the container cannot reach that mount to remount it. No copy is made;
//! 3. fallback (no CAP_SYS_ADMIN): re-exec from a sealed memfd copy.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use crate::error::{io_err, Result, RuntimeError};
use crate::sys;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Is the executable of this process impossible to write to?
pub fn running_protected() -> bool {
    File::open("/proc/self/exe").is_ok_and(|f| is_protected(&f))
}

fn is_protected(exe: &File) -> bool {
    sys::fcntl_int(exe.as_fd(), libc::F_GET_SEALS, 0).is_ok_and(|s| s & SEALS == SEALS)
        || sys::statvfs_flags(std::path::Path::new("/proc/self/exe"))
            .is_ok_and(|f| f & libc::ST_RDONLY != 0)
}

fn args_and_env() -> (Vec<CString>, Vec<CString>) {
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
    (argv, envp)
}

/// Re-exec through a read-only bind mount in a private mount namespace.
/// Returns (with the reason) only if that is not possible here.
fn reexec_read_only_bind() -> std::io::Error {
    let path = match std::fs::read_link("/proc/self/exe") {
        Ok(p) if p.is_absolute() && p.exists() => p,
        Ok(_) => return std::io::Error::other("executable was deleted"),
        Err(e) => return e,
    };
    if let Err(e) = sys::unshare(libc::CLONE_NEWNS) {
        return e;
    }
    let root = std::path::Path::new("/");
    let steps = || -> std::io::Result<File> {
        // Nothing of ours may propagate to the host.
        sys::mount(None, root, None, libc::MS_SLAVE | libc::MS_REC, None)?;
        sys::mount(Some(&path), &path, Some("bind"), libc::MS_BIND, None)?;
        sys::mount(
            None,
            &path,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
        File::open(&path)
    };
    let exe = match steps() {
        Ok(f) => f,
        Err(e) => return e,
    };
    let (argv, envp) = args_and_env();
    sys::fexecve(exe.as_fd(), &argv, &envp)
}

/// Make sure this process runs from an executable that cannot be written
/// (re-executing if needed). Returns when that holds; on a re-exec it never
/// returns.
pub fn ensure_sealed_self() -> Result<()> {
    let exe = File::open("/proc/self/exe").map_err(|e| io_err("open /proc/self/exe", e))?;
    if is_protected(&exe) {
        return Ok(());
    }
    let why = reexec_read_only_bind();
    crate::debug!("read-only re-exec not possible ({why}); using a sealed memfd copy");
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
    let (argv, envp) = args_and_env();
    let e = sys::fexecve(memfd.as_fd(), &argv, &envp);
    Err(io_err("re-exec from sealed copy", e))
}
