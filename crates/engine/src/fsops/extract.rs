//! Extracting a copy archive into a directory, as moby's `Untar` with
//! `NoOverwriteDirNonDir`: an existing directory is never replaced by a
//! non-directory nor the other way round, other existing files are
//! replaced, existing directories take the archive's mode, owner and
//! times, the entry naming the extraction directory itself (`.`) is
//! skipped, missing parents are created (0755).
//!
//! Confinement: every parent is resolved from the root with
//! `openat2(RESOLVE_IN_ROOT)`, names are created and replaced with `*at`
//! calls that never follow them, and attributes are set through fds or
//! with `AT_SYMLINK_NOFOLLOW`, so neither the archive nor a container
//! changing its files meanwhile can make a write land outside the root.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::paths::open_in_root;
use crate::error::{EngineError, Result};

/// Who owns what is extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// Whoever creates the files (no chown).
    Caller,
    /// The ids in the archive.
    FromArchive,
    /// These ids (uid, gid).
    Fixed(u32, u32),
}

/// Where to extract.
pub(super) struct Target {
    /// Nothing is written outside this directory.
    pub root: OwnedFd,
    /// The extraction directory, relative to `root` (empty: `root`).
    pub base: Vec<u8>,
    /// How messages show `base` (a container or host path).
    pub shown: String,
    /// Owner of the parent directories created on the way (`None`: the
    /// caller).
    pub parents_owner: Option<(u32, u32)>,
}

/// Extract `input` into `target`, renaming a top entry named `rebase.0`
/// to `rebase.1` (entries and hard link targets), with `owner`.
pub(super) fn extract(
    input: impl Read,
    target: &Target,
    rebase: Option<(&[u8], &[u8])>,
    owner: Owner,
) -> Result<()> {
    let mut x = Extractor {
        t: target,
        owner,
        rebase,
        cache: None,
        dirs: Vec::new(),
        buf: vec![0u8; 256 << 10],
    };
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| x.err("read the archive for", b"", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| x.err("read the archive for", b"", e))?;
        x.entry(entry)?;
    }
    x.finish()
}

struct Extractor<'t, 'r> {
    t: &'t Target,
    owner: Owner,
    rebase: Option<(&'r [u8], &'r [u8])>,
    /// The last parent resolved: (path relative to the root, `O_PATH` fd).
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directories extracted (path relative to the root) and their times,
    /// set once their content is in.
    dirs: Vec<(Vec<u8>, Timestamps)>,
    buf: Vec<u8>,
}

/// An entry's metadata.
struct Meta {
    mode: u32,
    owner: Option<(u32, u32)>,
    times: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    if !v.is_empty() && !b.is_empty() && !v.ends_with(b"/") {
        v.push(b'/');
    }
    v.extend_from_slice(b);
    v
}

/// Split into parent and name at the last `/` (the parent may be empty).
fn parent_name(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&rel[..0], rel),
    }
}

/// PAX time `SECONDS[.FRACTION]` (whole seconds kept).
fn pax_seconds(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let whole = s.split('.').next()?;
    whole.parse().ok()
}

impl<'t, 'r> Extractor<'t, 'r> {
    /// `shown/<entry>` for messages.
    fn show(&self, entry: &[u8]) -> String {
        let mut s = self.t.shown.clone();
        if !entry.is_empty() {
            if !s.ends_with('/') {
                s.push('/');
            }
            s.push_str(&String::from_utf8_lossy(entry));
        }
        s
    }

    fn err(&self, what: &'static str, entry: &[u8], source: io::Error) -> EngineError {
        EngineError::Io {
            what,
            path: PathBuf::from(self.show(entry)),
            source,
        }
    }

    fn errno(&self, what: &'static str, entry: &[u8], e: Errno) -> EngineError {
        self.err(what, entry, e.into())
    }

    fn rebased(&self, name: &[u8]) -> Vec<u8> {
        if let Some((old, new)) = self.rebase {
            let (first, rest) = match name.iter().position(|b| *b == b'/') {
                Some(i) => (&name[..i], &name[i..]),
                None => (name, &name[name.len()..]),
            };
            if first == old {
                let mut v = new.to_vec();
                v.extend_from_slice(rest);
                return v;
            }
        }
        name.to_vec()
    }

    /// An entry name cleaned (leading `/`, `.` and empty components
    /// dropped, `..` applied) relative to the extraction directory; one
    /// that leaves it is refused, as Docker does.
    fn clean(&self, name: &[u8]) -> Result<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in name.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(EngineError::InvalidArgument(format!(
                            "\"{}\" is outside of \"{}\"",
                            String::from_utf8_lossy(name),
                            self.t.shown
                        )));
                    }
                }
                _ => parts.push(c),
            }
        }
        Ok(parts.join(&b'/'))
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, shown: &[u8]) -> Result<Meta> {
        let bad = |e: io::Error| self.err("read the tar header of", shown, e);
        let h = entry.header();
        let mode = h.mode().map_err(bad)? & 0o7777;
        let uid = h.uid().map_err(bad)?;
        let gid = h.gid().map_err(bad)?;
        let mut mtime = i64::try_from(h.mtime().map_err(bad)?).unwrap_or(i64::MAX);
        let owner = match self.owner {
            Owner::Caller => None,
            Owner::Fixed(u, g) => Some((u, g)),
            Owner::FromArchive => {
                let id = |v: u64| {
                    u32::try_from(v).map_err(|_| {
                        bad(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "id out of range",
                        ))
                    })
                };
                Some((id(uid)?, id(gid)?))
            }
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    if let Some(t) = pax_seconds(ext.value_bytes()) {
                        mtime = t;
                    }
                }
            }
        }
        let t = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        Ok(Meta {
            mode,
            owner,
            times: Timestamps {
                last_access: t,
                last_modification: t,
            },
            xattrs,
        })
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let rel = self.clean(&self.rebased(&raw))?;
        // Old tars mark directories by a trailing '/' on a regular entry.
        let is_dir = kind.is_dir() || (kind.is_file() && raw.ends_with(b"/"));
        if rel.is_empty() {
            // The extraction directory itself: it exists and is a directory.
            if is_dir {
                return Ok(());
            }
            return Err(EngineError::Conflict(format!(
                "cannot overwrite directory \"{}\" with non-directory \"{}\"",
                self.t.shown, self.t.shown
            )));
        }
        let meta = self.meta(&mut entry, &rel)?;
        let full = join(&self.t.base, &rel);
        let (parent_rel, name) = parent_name(&full);
        let name = name.to_vec();
        let parent = self.parent(parent_rel, &rel)?;
        let pfd = parent.as_fd();

        match rustix::fs::statat(pfd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let exists_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if exists_dir && !is_dir {
                    return Err(EngineError::Conflict(format!(
                        "cannot overwrite directory \"{}\" with non-directory \"{}\"",
                        self.show(&rel),
                        self.t.shown
                    )));
                }
                if !exists_dir && is_dir {
                    return Err(EngineError::Conflict(format!(
                        "cannot overwrite non-directory \"{}\" with directory \"{}\"",
                        self.show(&rel),
                        self.t.shown
                    )));
                }
                if !exists_dir {
                    rustix::fs::unlinkat(pfd, name.as_slice(), AtFlags::empty())
                        .or_else(|e| if e == Errno::NOENT { Ok(()) } else { Err(e) })
                        .map_err(|e| self.errno("remove", &rel, e))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.errno("lstat", &rel, e)),
        }

        if is_dir {
            self.dir(pfd, &name, &full, &meta, &rel)?;
        } else if kind.is_file() || kind.is_contiguous() {
            self.file(pfd, &name, &mut entry, &meta, &rel)?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            rustix::fs::symlinkat(OsStr::from_bytes(&target), pfd, name.as_slice())
                .map_err(|e| self.errno("create symlink", &rel, e))?;
            self.chown_at(pfd, &name, &meta, &rel)?;
            rustix::fs::utimensat(pfd, name.as_slice(), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.errno("set the times of", &rel, e))?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            self.hardlink(pfd, &name, &target, &rel)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let ft = if kind.is_fifo() {
                FileType::Fifo
            } else if kind.is_character_special() {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            let h = entry.header();
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            let dev = rustix::fs::makedev(major, minor);
            rustix::fs::mknodat(pfd, name.as_slice(), ft, Mode::from_raw_mode(0o600), dev)
                .map_err(|e| self.errno("create", &rel, e))?;
            self.chown_at(pfd, &name, &meta, &rel)?;
            self.chmod_special(pfd, &name, ft, meta.mode, &rel)?;
            rustix::fs::utimensat(pfd, name.as_slice(), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.errno("set the times of", &rel, e))?;
        } else {
            return Err(EngineError::InvalidArgument(format!(
                "{}: unhandled tar header type {}",
                self.show(&rel),
                kind.as_byte()
            )));
        }
        self.cache = Some((parent_rel.to_vec(), parent));
        Ok(())
    }

    /// The parent directory (relative to the root) as an `O_PATH` fd,
    /// created with its missing ancestors when needed.
    fn parent(&mut self, parent_rel: &[u8], shown: &[u8]) -> Result<OwnedFd> {
        if let Some((p, fd)) = self.cache.take() {
            if p == parent_rel {
                return Ok(fd);
            }
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match open_in_root(self.t.root.as_fd(), parent_rel, flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => {
                return Err(EngineError::InvalidArgument(format!(
                    "{}: a parent is not a directory",
                    self.show(shown)
                )))
            }
            Err(e) => return Err(self.errno("resolve the parent of", shown, e)),
        }
        let mut cur = open_in_root(self.t.root.as_fd(), b"", flags)
            .map_err(|e| self.errno("open", b"", e))?;
        let mut prefix: Vec<u8> = Vec::new();
        for comp in parent_rel.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            prefix = join(&prefix, comp);
            cur = match open_in_root(self.t.root.as_fd(), &prefix, flags) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.errno("create the parent of", shown, e)),
                    }
                    let fd = rustix::fs::openat(
                        &cur,
                        comp,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| match e {
                        Errno::NOTDIR | Errno::LOOP => EngineError::InvalidArgument(format!(
                            "{}: a parent is not a directory",
                            self.show(shown)
                        )),
                        e => self.errno("open the parent of", shown, e),
                    })?;
                    if let Some((u, g)) = self.t.parents_owner {
                        rustix::fs::fchown(&fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                            .map_err(|e| self.errno("chown the parent of", shown, e))?;
                    }
                    fd
                }
                Err(Errno::NOTDIR) => {
                    return Err(EngineError::InvalidArgument(format!(
                        "{}: a parent is not a directory",
                        self.show(shown)
                    )))
                }
                Err(e) => return Err(self.errno("resolve the parent of", shown, e)),
            };
        }
        Ok(cur)
    }

    fn dir(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        full: &[u8],
        meta: &Meta,
        rel: &[u8],
    ) -> Result<()> {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(self.errno("create directory", rel, e)),
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.errno("open directory", rel, e))?;
        self.chown_fd(fd.as_fd(), meta, rel)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.errno("chmod", rel, e))?;
        self.xattrs(fd.as_fd(), meta, rel)?;
        self.dirs.push((full.to_vec(), clone_times(&meta.times)));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
        rel: &[u8],
    ) -> Result<()> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.errno("create", rel, e))?;
        let mut file = std::fs::File::from(fd);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err("read the archive for", rel, e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| self.err("write", rel, e))?;
        }
        let fd = file.as_fd();
        self.chown_fd(fd, meta, rel)?;
        // After chown, which clears setuid and setgid.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.errno("chmod", rel, e))?;
        self.xattrs(fd, meta, rel)?;
        rustix::fs::futimens(fd, &meta.times).map_err(|e| self.errno("set the times of", rel, e))
    }

    fn hardlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
        rel: &[u8],
    ) -> Result<()> {
        let trel = self.clean(&self.rebased(target))?;
        if trel.is_empty() {
            return Err(EngineError::InvalidArgument(format!(
                "{}: invalid hard link to \"{}\"",
                self.show(rel),
                String::from_utf8_lossy(target)
            )));
        }
        let tfull = join(&self.t.base, &trel);
        let (tparent_rel, tname) = parent_name(&tfull);
        let tparent = open_in_root(
            self.t.root.as_fd(),
            tparent_rel,
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(|e| self.errno("resolve the hard link target of", rel, e))?;
        rustix::fs::linkat(&tparent, tname, parent, name, AtFlags::empty())
            .map_err(|e| self.errno("create hard link", rel, e))
    }

    fn chown_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, rel: &[u8]) -> Result<()> {
        if let Some((u, g)) = meta.owner {
            rustix::fs::fchown(fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                .map_err(|e| self.errno("chown", rel, e))?;
        }
        Ok(())
    }

    fn chown_at(&self, parent: BorrowedFd<'_>, name: &[u8], meta: &Meta, rel: &[u8]) -> Result<()> {
        if let Some((u, g)) = meta.owner {
            rustix::fs::chownat(
                parent,
                name,
                Some(Uid::from_raw(u)),
                Some(Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.errno("chown", rel, e))?;
        }
        Ok(())
    }

    /// chmod a device node or fifo just created: through an `O_PATH` fd
    /// checked to be that node (so a name swapped for a symlink is not
    /// followed), by its `/proc/self/fd` path.
    fn chmod_special(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        ft: FileType,
        mode: u32,
        rel: &[u8],
    ) -> Result<()> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.errno("open", rel, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.errno("stat", rel, e))?;
        if FileType::from_raw_mode(st.st_mode) != ft {
            return Err(EngineError::Conflict(format!(
                "{} changed while it was being created",
                self.show(rel)
            )));
        }
        let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
        rustix::fs::chmod(p.as_str(), Mode::from_raw_mode(mode))
            .map_err(|e| self.errno("chmod", rel, e))
    }

    /// Xattrs from the archive, best effort as Docker (a file system or a
    /// user that cannot take one is not an error).
    fn xattrs(&self, fd: BorrowedFd<'_>, meta: &Meta, rel: &[u8]) -> Result<()> {
        for (name, value) in &meta.xattrs {
            match rustix::fs::fsetxattr(fd, name.as_slice(), value, rustix::fs::XattrFlags::empty())
            {
                Ok(()) | Err(Errno::PERM) | Err(Errno::OPNOTSUPP) | Err(Errno::ACCESS) => {}
                Err(e) => return Err(self.errno("set an xattr of", rel, e)),
            }
        }
        Ok(())
    }

    /// Directory times, deepest first, once their content is in.
    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        let dirs = std::mem::take(&mut self.dirs);
        for (full, times) in dirs.iter().rev() {
            let (parent_rel, name) = parent_name(full);
            let parent = match open_in_root(
                self.t.root.as_fd(),
                parent_rel,
                OFlags::PATH | OFlags::DIRECTORY,
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.errno("resolve", full, e)),
            };
            match rustix::fs::utimensat(&parent, name, times, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(self.errno("set the times of", full, e)),
            }
        }
        Ok(())
    }
}

fn clone_times(t: &Timestamps) -> Timestamps {
    Timestamps {
        last_access: t.last_access,
        last_modification: t.last_modification,
    }
}
