//! `docker diff`: the changes an overlay upper directory makes to its
//! lower layers, as moby's `pkg/archive` `OverlayChanges` reports them:
//!
//! * a whiteout (0:0 char device) is `D`;
//! * anything else in the upper dir is `C` if the lower layers have that
//!   path, `A` if not; a directory present in both with the same mode,
//!   owner and mtime is not reported (overlay copies a directory up when
//!   something below it changes);
//! * the parent of an `A` or `D` is reported `C` when it was not reported.
//!
//! Beyond moby: an opaque directory (`trusted.overlay.opaque=y`, or
//! `user.overlay.opaque`) is `C` when the lower layers had it, and what
//! they had below it that the upper dir lacks is `D` (moby reports the
//! directory itself as deleted); lower lookups honour the lower layers'
//! own whiteouts and opaque directories. Directory sizes are not
//! compared (moby does; they depend on the file system's history, not on
//! what changed). Symlinks are compared as links, never followed.
//!
//! Output is sorted by path component by component, which is the order
//! of moby's walk.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::{EngineError, Result};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// `C`: modified (or a directory whose content changed).
    Changed,
    /// `A`: added.
    Added,
    /// `D`: deleted.
    Deleted,
}

impl ChangeKind {
    /// Docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }

    /// Docker's API number (`Kind` in `GET /containers/{id}/changes`).
    pub fn api_kind(self) -> u8 {
        match self {
            ChangeKind::Changed => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute path in the container (`/etc/passwd`).
    pub path: String,
}

impl fmt::Display for Change {
    /// `C /etc`, as `docker diff` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

/// The changes `upper` (an overlay upper dir) makes to `lowers` (the
/// layer dirs, bottom first, as `snapshot::unpack` returns them).
pub fn diff(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| EngineError::Io {
            what: "open",
            path: p.to_path_buf(),
            source: e.into(),
        })
    };
    let up = open(upper)?;
    // Top layer first; an opaque layer root hides nothing (it has no lower
    // of its own), so all are kept.
    let mut lower_fds = Vec::with_capacity(lowers.len());
    for l in lowers.iter().rev() {
        lower_fds.push(open(l)?);
    }
    let mut w = Walk {
        upper,
        out: Vec::new(),
        changed_dirs: std::collections::HashSet::new(),
    };
    let mut path = Vec::new();
    w.dir(up.as_fd(), &lower_fds, false, &mut path)?;
    let mut out = w.out;
    out.sort_by(|a, b| components(&a.1).cmp(components(&b.1)));
    out.dedup_by(|a, b| a.1 == b.1);
    Ok(out
        .into_iter()
        .map(|(kind, p)| Change {
            kind,
            path: String::from_utf8_lossy(&p).into_owned(),
        })
        .collect())
}

fn components(p: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    p.split(|b| *b == b'/').filter(|c| !c.is_empty())
}

struct Walk<'a> {
    upper: &'a Path,
    out: Vec<(ChangeKind, Vec<u8>)>,
    /// Directories reported (or walked as changed), as moby's `changedDirs`.
    changed_dirs: std::collections::HashSet<Vec<u8>>,
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Whether a directory is opaque (hides what the layers below have).
fn is_opaque(dir: BorrowedFd<'_>) -> Result<bool, Errno> {
    let mut v = [0u8; 4];
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        match rustix::fs::fgetxattr(dir, name, &mut v) {
            Ok(n) if &v[..n] == b"y" => return Ok(true),
            Ok(_) | Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) | Err(Errno::RANGE) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn open_dir(parent: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn list(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut names = Vec::new();
    for e in Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// `name` as the lower layers (directories at one path, top first) show
/// it: its stat in the topmost layer that has it, unless whited out.
fn lower_stat(lowers: &[OwnedFd], name: &[u8]) -> Result<Option<Stat>, Errno> {
    for l in lowers {
        match rustix::fs::statat(l, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if is_whiteout(&st) => return Ok(None),
            Ok(st) => return Ok(Some(st)),
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The lower directories at `name` below `lowers`, top first, as overlay
/// merges them: down to the first layer where `name` is not a directory
/// or is whited out, or where it is opaque.
fn lower_dirs(lowers: &[OwnedFd], name: &[u8]) -> Result<Vec<OwnedFd>, Errno> {
    let mut out = Vec::new();
    for l in lowers {
        let st = match rustix::fs::statat(l, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e),
        };
        if !is_dir(&st) {
            break;
        }
        let fd = open_dir(l.as_fd(), name)?;
        let opaque = is_opaque(fd.as_fd())?;
        out.push(fd);
        if opaque {
            break;
        }
    }
    Ok(out)
}

/// The names the merged lower directories show.
fn lower_names(lowers: &[OwnedFd]) -> Result<Vec<Vec<u8>>, Errno> {
    let mut seen = std::collections::BTreeMap::new();
    for l in lowers {
        for n in list(l.as_fd())? {
            if seen.contains_key(&n) {
                continue;
            }
            let st = match rustix::fs::statat(l, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            };
            seen.insert(n, !is_whiteout(&st));
        }
    }
    Ok(seen
        .into_iter()
        .filter(|(_, v)| *v)
        .map(|(k, _)| k)
        .collect())
}

fn same_dir_meta(a: &Stat, b: &Stat) -> bool {
    a.st_mode == b.st_mode
        && a.st_uid == b.st_uid
        && a.st_gid == b.st_gid
        && a.st_mtime == b.st_mtime
        && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

impl Walk<'_> {
    fn err(&self, what: &'static str, path: &[u8], e: Errno) -> EngineError {
        let mut p = self.upper.as_os_str().to_os_string();
        p.push(std::ffi::OsStr::new(&*String::from_utf8_lossy(path)));
        EngineError::Io {
            what,
            path: PathBuf::from(p),
            source: e.into(),
        }
    }

    fn record(&mut self, kind: ChangeKind, path: &[u8]) {
        if matches!(kind, ChangeKind::Added | ChangeKind::Deleted) {
            let parent = match path.iter().rposition(|b| *b == b'/') {
                Some(i) => &path[..i],
                None => &path[..0],
            };
            if !parent.is_empty() && !self.changed_dirs.contains(parent) {
                self.out.push((ChangeKind::Changed, parent.to_vec()));
                self.changed_dirs.insert(parent.to_vec());
            }
        }
        self.out.push((kind, path.to_vec()));
    }

    /// Walk the upper directory `dir` (at `path`, empty for the root)
    /// against the lower directories at the same path (top first).
    /// `replacing`: an opaque directory at or above this one hides the
    /// lower content.
    fn dir(
        &mut self,
        dir: BorrowedFd<'_>,
        lowers: &[OwnedFd],
        replacing: bool,
        path: &mut Vec<u8>,
    ) -> Result<()> {
        let names = list(dir).map_err(|e| self.err("list", path, e))?;
        if replacing {
            for n in
                lower_names(lowers).map_err(|e| self.err("list the lower layers at", path, e))?
            {
                if names.binary_search(&n).is_err() {
                    let mut p = path.clone();
                    p.push(b'/');
                    p.extend_from_slice(&n);
                    self.record(ChangeKind::Deleted, &p);
                }
            }
        }
        let base = path.len();
        for name in names {
            path.truncate(base);
            path.push(b'/');
            path.extend_from_slice(&name);
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.err("lstat", path, e)),
            };
            if is_whiteout(&st) {
                let p = path.clone();
                self.record(ChangeKind::Deleted, &p);
                continue;
            }
            let below = lower_stat(lowers, &name)
                .map_err(|e| self.err("lstat the lower layers at", path, e))?;
            if !is_dir(&st) {
                let kind = if below.is_some() {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Added
                };
                let p = path.clone();
                self.record(kind, &p);
                continue;
            }
            let child = match open_dir(dir, &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue, // removed meanwhile
                Err(e) => return Err(self.err("open", path, e)),
            };
            let opaque =
                is_opaque(child.as_fd()).map_err(|e| self.err("read the xattrs of", path, e))?;
            let child_lowers = match &below {
                Some(b) if is_dir(b) => lower_dirs(lowers, &name)
                    .map_err(|e| self.err("open the lower layers at", path, e))?,
                _ => Vec::new(),
            };
            let kind = match &below {
                None => Some(ChangeKind::Added),
                Some(b) if is_dir(b) && !opaque && !replacing && same_dir_meta(&st, b) => None,
                Some(_) => Some(ChangeKind::Changed),
            };
            if let Some(k) = kind {
                let p = path.clone();
                self.record(k, &p);
                self.changed_dirs.insert(p);
            }
            self.dir(child.as_fd(), &child_lowers, replacing || opaque, path)?;
        }
        path.truncate(base);
        Ok(())
    }
}
