//! File-system helpers of the context module: fd-relative resolution inside
//! a root (`openat2(RESOLVE_IN_ROOT)`), directory listing, the private
//! temporary directory a context tar is extracted into, bounded reads.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Dir, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Open `rel` (relative to `root`; `""` is the root) with every symlink and
/// `..` kept inside `root`, as if `root` were `/`.
pub(super) fn open_in_root(
    root: BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let rel = rel.strip_prefix(b"/").unwrap_or(rel);
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Open a directory `name` in `parent` without following a symlink.
pub(super) fn open_dir_at(parent: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory, without `.` and `..`, sorted bytewise (the
/// order Go's `ReadDir` gives, which Docker walks in).
pub(super) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    }
    out.sort();
    Ok(out)
}

/// The host path an fd was opened at (its `/proc/self/fd` link).
pub(super) fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A path inside `root` with every symlink followed inside it (moby's
/// `FollowSymlinkInScope`, the engine's as `docker cp` uses it).
pub(super) fn canonical(root: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<Vec<u8>>, Errno> {
    barge_engine::fsops::follow_in_root(root, path)
}

/// Read at most `limit` bytes; `None` when there is more.
pub(super) fn read_limited(r: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf)?;
    Ok(if buf.len() as u64 > limit {
        None
    } else {
        Some(buf)
    })
}

/// Read what is left of `r` into `buf` until it is full or the stream ends;
/// how many bytes were read.
pub(super) fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A private (0700) directory removed with everything in it on drop.
#[derive(Debug)]
pub(super) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(super) fn new(parent: &Path, prefix: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{prefix}{}-{nanos:x}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no unique name")))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.path).is_err() {
            // Directories extracted without write permission (0555) stop an
            // unprivileged removal: open them up and try again.
            make_writable(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Give the owner rwx on every directory under `path` (symlinks not followed).
fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            make_writable(&e.path());
        }
    }
}

/// The bytes of a path.
pub(super) fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}
