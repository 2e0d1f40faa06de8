//! fd-relative file-system helpers shared by apply and diff: xattrs,
//! directory listing, recursive removal that never follows symlinks.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

pub(crate) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// `/proc/self/fd/<dirfd>/<name>`: a path naming `name` in an already
/// resolved directory, for the calls that only take paths (l*xattr).
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// Where to read or write xattrs: an open fd, or a path not to follow.
pub(crate) enum XTarget<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a [u8]),
}

fn is_unsupported(e: Errno) -> bool {
    e == Errno::OPNOTSUPP || e == Errno::NOTSUP
}

/// Xattrs as (name, value), sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// All xattrs of a file, sorted by name. None supported means none.
pub(crate) fn list_xattrs(t: &XTarget<'_>) -> io::Result<Xattrs> {
    let mut stack = [0u8; 4096];
    let list = |buf: &mut [u8]| -> Result<usize, Errno> {
        match t {
            XTarget::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XTarget::Path(p) => rustix::fs::llistxattr(*p, buf),
        }
    };
    let mut heap;
    let names: &[u8] = match list(&mut stack) {
        Ok(0) => return Ok(Vec::new()),
        Ok(n) => &stack[..n],
        Err(e) if is_unsupported(e) => return Ok(Vec::new()),
        Err(Errno::RANGE) => {
            let size = list(&mut [])?;
            heap = vec![0u8; size + 256];
            let n = list(&mut heap)?;
            heap.truncate(n);
            &heap
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let get = |buf: &mut [u8]| -> Result<usize, Errno> {
            match t {
                XTarget::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
                XTarget::Path(p) => rustix::fs::lgetxattr(*p, name, buf),
            }
        };
        let mut vbuf = [0u8; 1024];
        let value = match get(&mut vbuf) {
            Ok(n) => vbuf[..n].to_vec(),
            Err(Errno::NODATA) => continue,
            Err(Errno::RANGE) => {
                let size = get(&mut [])?;
                let mut v = vec![0u8; size];
                let n = get(&mut v)?;
                v.truncate(n);
                v
            }
            Err(e) => return Err(e.into()),
        };
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

pub(crate) fn set_xattr(t: &XTarget<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let flags = rustix::fs::XattrFlags::empty();
    match t {
        XTarget::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags),
        XTarget::Path(p) => rustix::fs::lsetxattr(*p, name, value, flags),
    }
    .map_err(Into::into)
}

/// Names in a directory (without `.` and `..`) with their d_type.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((name.to_vec(), entry.file_type()));
    }
    Ok(out)
}

pub(crate) fn open_dir_nofollow(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Remove `name` in `parent`, recursively if it is a directory. Symlinks are
/// removed, never followed. A missing name is not an error.
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let dir = match open_dir_nofollow(parent, name) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_children(dir.as_fd(), |_, _| false)?;
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Remove the children of `dir` for which `keep(name, type)` is false.
pub(crate) fn remove_children(
    dir: BorrowedFd<'_>,
    mut keep: impl FnMut(&[u8], FileType) -> bool,
) -> io::Result<()> {
    for (name, ft) in list_dir(dir)? {
        if !keep(&name, ft) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}
