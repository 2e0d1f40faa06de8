//! `cp`: Docker's copy semantics in both directions.
//!
//! Source: the last component is not followed unless the path ends in `/`
//! or `/.`; the archive's top entry is named after the path's base name,
//! or `.` (`dir/.`, the root) for a directory's content only.
//!
//! Destination (moby `CopyInfoDestinationPath` + `PrepareArchiveCopy`):
//! an existing directory receives the archive as it is; an existing file
//! is replaced by a file (a directory onto it is refused: "cannot copy
//! directory"); a missing path is created under that name in its parent,
//! which must exist ("no such directory" for a file onto `missing/`). A
//! symlink as the destination is followed (inside the container for
//! container paths).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::archive;
use super::extract::{extract, Owner, Target};
use super::paths::{
    self, canonical, container_abs, lookup, lookup_host, open_host_dir, open_in_root,
    split_dir_entry, top_name, Node,
};
use super::pipe::through_pipe;
use super::{not_found, CopyStat};
use crate::error::{EngineError, Result};

/// Follow at most this many symlinks naming a host destination (as
/// docker-cli).
const MAX_DEST_SYMLINKS: usize = 10;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn errno_err<'a>(what: &'static str, path: &'a [u8]) -> impl FnOnce(Errno) -> EngineError + 'a {
    move |e| EngineError::Io {
        what,
        path: PathBuf::from(std::ffi::OsStr::from_bytes(path)),
        source: e.into(),
    }
}

fn open_root(rootfs: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| EngineError::Io {
        what: "open the root filesystem",
        path: rootfs.to_path_buf(),
        source: e.into(),
    })
}

/// A container path that cannot be looked up: missing is [`NOT_FOUND`].
///
/// [`NOT_FOUND`]: super::NOT_FOUND
fn lookup_err(asked: &str) -> impl FnOnce(Errno) -> EngineError + '_ {
    move |e| match e {
        Errno::NOENT => not_found(asked),
        e => errno_err("lstat", asked.as_bytes())(e),
    }
}

fn make_stat(
    root: BorrowedFd<'_>,
    asked: &str,
    abs: &[u8],
    name: &[u8],
    node: &Node,
) -> Result<CopyStat> {
    let st = node.stat();
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        lossy(&canonical(root, abs).map_err(lookup_err(asked))?)
    } else {
        String::new()
    };
    Ok(CopyStat {
        path: asked.to_string(),
        name: lossy(name),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode,
        mtime: st.st_mtime,
        link_target,
    })
}

/// Docker's `stat` of a container path (`HEAD /containers/{id}/archive`):
/// the last component is followed only when `path` ends in `/` or `/.`.
pub fn stat_path(rootfs: &Path, path: &str) -> Result<CopyStat> {
    let root = open_root(rootfs)?;
    let abs = container_abs(path);
    let node = lookup(root.as_fd(), &abs).map_err(lookup_err(path))?;
    make_stat(root.as_fd(), path, &abs, &top_name(&abs), &node)
}

/// `docker cp CTR:SRC -`: write the archive of `src` (a path in the
/// container, resolved inside `rootfs`) to `out`: the top entry is named
/// after the base name of `src` (a directory's entries below it), or `.`
/// when `src` ends in `/.`. A symlink as the last component is archived as
/// a link unless `src` ends in `/` or `/.`. Returns the stat of `src` for
/// [`extract_to_host`]. A missing `src` is a [`NOT_FOUND`] error.
///
/// [`NOT_FOUND`]: super::NOT_FOUND
pub fn copy_from_container(rootfs: &Path, src: &str, out: impl Write) -> Result<CopyStat> {
    archive_path(rootfs, src, false, out)
}

/// [`copy_from_container`] with `cp -L`: a symlink named by `src` is
/// followed (inside the container) and its target archived under the
/// name of the link.
pub fn copy_from_container_follow_link(
    rootfs: &Path,
    src: &str,
    out: impl Write,
) -> Result<CopyStat> {
    archive_path(rootfs, src, true, out)
}

fn archive_path(rootfs: &Path, src: &str, follow_link: bool, out: impl Write) -> Result<CopyStat> {
    let root = open_root(rootfs)?;
    let abs = container_abs(src);
    let top = top_name(&abs);
    let mut node = lookup(root.as_fd(), &abs).map_err(lookup_err(src))?;
    let mut stat = make_stat(root.as_fd(), src, &abs, &top, &node)?;
    if follow_link && FileType::from_raw_mode(node.stat().st_mode) == FileType::Symlink {
        let target = canonical(root.as_fd(), &abs).map_err(lookup_err(src))?;
        let shown = lossy(&target);
        node = lookup(root.as_fd(), &target).map_err(lookup_err(&shown))?;
        stat = make_stat(root.as_fd(), src, &target, &top, &node)?;
    }
    archive::write(&node, &top, out)?;
    Ok(stat)
}

/// A copy destination as docker-cli's `CopyInfo`.
struct DestInfo {
    /// The path (a symlink naming it followed).
    path: Vec<u8>,
    exists: bool,
    is_dir: bool,
}

/// Where the archive goes (moby's `PrepareArchiveCopy`).
enum Placement {
    /// Extract into the destination, entries as they are.
    Into,
    /// Extract into the destination's parent, the top entry renamed to the
    /// destination's base name.
    Renamed,
}

fn prepare(src_is_dir: bool, dst: &DestInfo) -> Result<Placement> {
    let asserts_dir = dst.path.ends_with(b"/") || paths::specifies_current_dir(&dst.path);
    if dst.exists && dst.is_dir {
        Ok(Placement::Into)
    } else if dst.exists && src_is_dir {
        Err(EngineError::InvalidArgument("cannot copy directory".into()))
    } else if dst.exists || src_is_dir {
        Ok(Placement::Renamed)
    } else if asserts_dir {
        Err(EngineError::InvalidArgument("no such directory".into()))
    } else {
        Ok(Placement::Renamed)
    }
}

/// A host path made absolute (lexically, as Go's `filepath.Abs`), with a
/// trailing `/` or `/.` kept.
fn host_abs(p: &Path) -> Result<Vec<u8>> {
    let raw = p.as_os_str().as_bytes();
    let joined = if raw.starts_with(b"/") {
        raw.to_vec()
    } else {
        let cwd = std::env::current_dir().map_err(|e| EngineError::Io {
            what: "get",
            path: "the current directory".into(),
            source: e,
        })?;
        let mut j = cwd.as_os_str().as_bytes().to_vec();
        j.push(b'/');
        j.extend_from_slice(raw);
        j
    };
    Ok(paths::preserve_trailing(paths::clean(&joined), raw))
}

/// docker-cli's `CopyInfoDestinationPath`: symlinks naming the
/// destination are followed; a missing destination needs its parent.
fn host_dest_info(abs: &[u8]) -> Result<DestInfo> {
    let mut path = abs.to_vec();
    let mut hops = 0;
    loop {
        match rustix::fs::lstat(path.as_slice()) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Symlink => {
                return Ok(DestInfo {
                    is_dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    path,
                    exists: true,
                });
            }
            Ok(_) => {
                hops += 1;
                if hops > MAX_DEST_SYMLINKS {
                    return Err(EngineError::InvalidArgument(format!(
                        "too many symlinks in {}",
                        lossy(abs)
                    )));
                }
                let target = rustix::fs::readlink(path.as_slice(), Vec::new())
                    .map_err(errno_err("readlink", &path))?
                    .into_bytes();
                path = if target.starts_with(b"/") {
                    paths::clean(&target)
                } else {
                    let (parent, _) = split_dir_entry(&path);
                    let mut j = parent;
                    j.push(b'/');
                    j.extend_from_slice(&target);
                    paths::clean(&j)
                };
            }
            Err(Errno::NOENT) => break,
            Err(e) => return Err(errno_err("lstat", &path)(e)),
        }
    }
    let (parent, _) = split_dir_entry(&path);
    let st = rustix::fs::stat(parent.as_slice()).map_err(errno_err("stat", &parent))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(errno_err("stat", &parent)(Errno::NOTDIR));
    }
    Ok(DestInfo {
        path,
        exists: false,
        is_dir: false,
    })
}

/// `docker cp CTR:SRC DEST`, the client side: extract `tar` (from
/// [`copy_from_container`], whose stat is `src_stat`) at `dest` on the
/// host with Docker's destination semantics. Modes and times are kept;
/// owners too with `archive_mode`, otherwise files belong to the caller.
/// Nothing is written outside the directory the archive is extracted
/// into. (`dest` `-` is the caller's: it writes the archive itself.)
pub fn extract_to_host(
    tar: impl Read,
    src_stat: &CopyStat,
    dest: &Path,
    archive_mode: bool,
) -> Result<()> {
    let abs = host_abs(dest)?;
    let info = host_dest_info(&abs)?;
    let (dir, new_name) = match prepare(src_stat.is_dir(), &info)? {
        Placement::Into => (info.path, None),
        Placement::Renamed => {
            let (d, b) = split_dir_entry(&info.path);
            (d, Some(b))
        }
    };
    let root = open_host_dir(&dir).map_err(errno_err("open", &dir))?;
    let target = Target {
        root,
        base: Vec::new(),
        shown: lossy(&dir),
        parents_owner: None,
    };
    let rebase = new_name.as_deref().map(|n| (src_stat.name.as_bytes(), n));
    let owner = if archive_mode {
        Owner::FromArchive
    } else {
        Owner::Caller
    };
    extract(tar, &target, rebase, owner)
}

/// Docker's container destination: stat it (following it when it ends in
/// `/`), and when it is a symlink follow it inside the container.
fn container_dest_info(root: BorrowedFd<'_>, dest: &str) -> Result<DestInfo> {
    let abs = container_abs(dest);
    let mut info = DestInfo {
        path: abs.clone(),
        exists: false,
        is_dir: false,
    };
    let mut node = lookup(root, &abs).ok();
    if let Some(n) = &node {
        if FileType::from_raw_mode(n.stat().st_mode) == FileType::Symlink {
            info.path = canonical(root, &abs).map_err(lookup_err(dest))?;
            node = lookup(root, &info.path).ok();
        }
    }
    if let Some(n) = node {
        let ft = FileType::from_raw_mode(n.stat().st_mode);
        if matches!(ft, FileType::CharacterDevice | FileType::BlockDevice) {
            return Err(EngineError::InvalidArgument(format!(
                "destination \"{dest}\" must be a directory or a regular file: got a device"
            )));
        }
        info.exists = true;
        info.is_dir = n.is_dir();
    }
    Ok(info)
}

/// The extraction directory in the container: it must exist (a missing
/// one is [`NOT_FOUND`]) and be a directory, symlinks followed inside.
///
/// [`NOT_FOUND`]: super::NOT_FOUND
fn container_target(root: OwnedFd, dir_abs: &[u8]) -> Result<Target> {
    let shown = lossy(dir_abs);
    match open_in_root(root.as_fd(), dir_abs, OFlags::PATH | OFlags::DIRECTORY) {
        Ok(_) => {}
        Err(Errno::NOENT) => return Err(not_found(&shown)),
        Err(Errno::NOTDIR) => {
            return Err(EngineError::InvalidArgument(
                "extraction point is not a directory".into(),
            ))
        }
        Err(e) => return Err(errno_err("lstat", dir_abs)(e)),
    }
    let base = match paths::rel(dir_abs) {
        b"." => Vec::new(),
        r => r.to_vec(),
    };
    Ok(Target {
        root,
        base,
        shown,
        parents_owner: Some((0, 0)),
    })
}

/// `docker cp SRC CTR:DEST`: copy the host path `host_src` to `dest` in
/// the container with Docker's semantics, every write resolved inside
/// `rootfs`. Files belong to root (0:0), or keep the source's ids with
/// `archive_mode`; modes and times are kept. Returns the size of the
/// archive transferred (what docker-cli reports as copied).
pub fn copy_to_container(
    rootfs: &Path,
    host_src: &Path,
    dest: &str,
    archive_mode: bool,
) -> Result<u64> {
    let root = open_root(rootfs)?;
    let src_abs = host_abs(host_src)?;
    let src = lookup_host(&src_abs).map_err(errno_err("lstat", &src_abs))?;
    let info = container_dest_info(root.as_fd(), dest)?;
    let (dir, top) = match prepare(src.is_dir(), &info)? {
        Placement::Into => (info.path, top_name(&src_abs)),
        Placement::Renamed => split_dir_entry(&info.path),
    };
    let target = container_target(root, &dir)?;
    let owner = if archive_mode {
        Owner::FromArchive
    } else {
        Owner::Fixed(0, 0)
    };
    let written = AtomicU64::new(0);
    let counter = &written;
    through_pipe(
        move |w: &mut File| {
            let out = archive::write(&src, &top, Counted { inner: w, n: 0 })?;
            counter.store(out.n, Ordering::Relaxed);
            Ok(())
        },
        |r| extract(r, &target, None, owner),
    )?;
    Ok(written.into_inner())
}

/// A writer counting the bytes written through it.
struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `docker cp - CTR:DEST`: extract a tar (plain, gzip or zstd) read from
/// `tar` into `dest`, which must be a directory in the container (a
/// symlink to one is followed inside it). Owners are the archive's.
pub fn copy_tar_to_container(rootfs: &Path, tar: impl Read + 'static, dest: &str) -> Result<()> {
    let root = open_root(rootfs)?;
    let info = container_dest_info(root.as_fd(), dest)?;
    if !(info.exists && info.is_dir) {
        return Err(EngineError::InvalidArgument(format!(
            "destination \"{dest}\" must be a directory"
        )));
    }
    let target = container_target(root, &info.path)?;
    let input = barge_image::layer::decompressed(tar)?;
    extract(input, &target, None, Owner::FromArchive)
}
