//! COPY/ADD sources: which paths a source list selects (BuildKit's rules:
//! paths inside the context, symlinks followed inside it, wildcards as
//! `filepath.Match` per path with a matched directory not descended into),
//! walking what was selected (ignored files left out, an ignored directory
//! kept only for what `!` patterns re-include under it), and the content
//! hash the layer cache keys a COPY/ADD on.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, OFlags, Stat, Timespec};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::fsx::{self, open_dir_at, open_in_root};
use super::paths::{self, join_bytes, show};
use super::{errno_err, glob, io_err, Context, ContextError, Selected, MAX_DEPTH};

/// What one walked entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
    Fifo,
}

/// One file or directory of a selected root, as it will be copied.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Path below the selected root (`""` for the root itself).
    pub(super) sub: Vec<u8>,
    /// Path from the context root.
    pub(super) ctx_rel: Vec<u8>,
    pub(super) kind: Kind,
    /// Permission bits (with setuid, setgid, sticky).
    pub(super) mode: u32,
    /// Owner (kept by `COPY --from`, as Docker does).
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) atime: Timespec,
    pub(super) mtime: Timespec,
}

fn timespec(sec: i64, nsec: u64) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec.try_into().unwrap_or(0),
    }
}

/// The entry for `st`; `None` for what is never copied (sockets, devices).
fn entry_of(
    st: &Stat,
    parent: BorrowedFd<'_>,
    name: &[u8],
    ctx_rel: Vec<u8>,
    sub: Vec<u8>,
) -> Result<Option<Entry>, ContextError> {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Fifo => Kind::Fifo,
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(parent, name, Vec::new())
                .map_err(errno_err("readlink", show(&ctx_rel)))?;
            Kind::Symlink(target.into_bytes())
        }
        _ => return Ok(None),
    };
    #[allow(clippy::unnecessary_cast)]
    Ok(Some(Entry {
        sub,
        ctx_rel,
        kind,
        mode: st.st_mode as u32 & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        atime: timespec(st.st_atime as i64, st.st_atime_nsec as u64),
        mtime: timespec(st.st_mtime as i64, st.st_mtime_nsec as u64),
    }))
}

impl Context {
    /// The roots a COPY/ADD source list selects, in order: each source is
    /// a path relative to the context root (a leading `/` is the root),
    /// cleaned, that may not leave the context (`../x` is an error) and
    /// may hold wildcards (`*`, `?`, `[...]`, `\` escapes, as Go's
    /// `filepath.Match`: `*` and `**` stop at `/`); matches come in
    /// lexical order. Symlinks are followed inside the context. A source
    /// that matches nothing, or only ignored files, is an error.
    pub fn select(&self, sources: &[String]) -> Result<Vec<Selected>, ContextError> {
        let mut out = Vec::new();
        for src in sources {
            self.select_one(src, &mut out)?;
        }
        Ok(out)
    }

    fn select_one(&self, src: &str, out: &mut Vec<Selected>) -> Result<(), ContextError> {
        let cleaned = paths::clean(src.trim_start_matches('/'));
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::OutsideContext { path: src.into() });
        }
        let comps: Vec<&str> = if cleaned == "." {
            Vec::new()
        } else {
            cleaned.split('/').collect()
        };
        let not_found = || ContextError::NotFound {
            path: format!("/{}", comps.join("/")),
        };
        let Some(first_wild) = comps.iter().position(|c| glob::has_wildcards(c)) else {
            let sel = self.resolve(&cleaned)?.ok_or_else(not_found)?;
            if !self.visible(&sel, cleaned.as_bytes())? {
                return Err(not_found());
            }
            out.push(sel);
            return Ok(());
        };
        let pattern = comps[first_wild..].join("/");
        glob::check(&pattern).map_err(|_| ContextError::BadSourcePattern {
            pattern: src.into(),
        })?;
        let base = comps[..first_wild].join("/");
        // The base is resolved (symlinks followed) and walked for matches.
        let Some(base_sel) = self.resolve(if base.is_empty() { "." } else { &base })? else {
            return Err(not_found());
        };
        if !base_sel.is_dir {
            return Err(not_found());
        }
        let base_rel = self.rel_of(&base_sel)?;
        let dir = open_in_root(
            self.root_fd.as_fd(),
            &base_rel,
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
        .map_err(errno_err("open", show(&base_rel)))?;
        let depth = pattern.split('/').count();
        let before = out.len();
        self.match_walk(dir.as_fd(), &base_rel, b"", &pattern, depth, out)?;
        if out.len() == before {
            return Err(not_found());
        }
        Ok(())
    }

    /// Walk `dir` (at `ctx_rel`, `sub` below the wildcard base) for paths
    /// matching `pattern`, not below `depth` components.
    fn match_walk(
        &self,
        dir: BorrowedFd<'_>,
        ctx_rel: &[u8],
        sub: &[u8],
        pattern: &str,
        depth: usize,
        out: &mut Vec<Selected>,
    ) -> Result<(), ContextError> {
        let names = fsx::list_dir(dir).map_err(io_err("read directory", show(ctx_rel)))?;
        let level = if sub.is_empty() {
            1
        } else {
            sub.split(|b| *b == b'/').count() + 1
        };
        for name in names {
            let child_rel = join_bytes(ctx_rel, &name);
            let child_sub = join_bytes(sub, &name);
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(errno_err("lstat", show(&child_rel))(e)),
            };
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let sub_str = String::from_utf8_lossy(&child_sub);
            let matched = glob::matches(pattern, &sub_str).unwrap_or(false);
            if matched {
                let rel = String::from_utf8_lossy(&child_rel).into_owned();
                let Some(sel) = self.resolve(&rel)? else {
                    return Err(ContextError::NotFound {
                        path: format!("/{rel}"),
                    });
                };
                if self.visible(&sel, &child_rel)? {
                    out.push(sel);
                }
                continue;
            }
            if is_dir && level < depth {
                if self.ignored_bytes(&child_rel) && !self.ignore.has_exclusions() {
                    continue;
                }
                let fd = open_dir_at(dir, &name).map_err(errno_err("open", show(&child_rel)))?;
                self.match_walk(fd.as_fd(), &child_rel, &child_sub, pattern, depth, out)?;
            }
        }
        Ok(())
    }

    /// Resolve a cleaned context-relative path, symlinks followed inside
    /// the root; `None` when nothing is there.
    fn resolve(&self, rel: &str) -> Result<Option<Selected>, ContextError> {
        let rel_bytes: &[u8] = if rel == "." { b"" } else { rel.as_bytes() };
        let fd = match open_in_root(self.root_fd.as_fd(), rel_bytes, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(errno_err("resolve", format!("/{rel}"))(e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(errno_err("stat", format!("/{rel}")))?;
        let path = fsx::fd_path(fd.as_fd()).map_err(io_err("resolve", format!("/{rel}")))?;
        if !path.starts_with(&self.root) {
            return Err(ContextError::NotInContext {
                path,
                root: self.root.clone(),
            });
        }
        Ok(Some(Selected {
            rel: rel.to_string(),
            path,
            is_dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
        }))
    }

    /// Is a selected path visible through `.dockerignore`, under the name
    /// it was asked for and where it resolved to? An ignored directory is
    /// when something under it is re-included.
    fn visible(&self, sel: &Selected, asked: &[u8]) -> Result<bool, ContextError> {
        let resolved = self.rel_of(sel)?;
        let asked: &[u8] = if asked == b"." { b"" } else { asked };
        if !self.ignored_bytes(asked) && !self.ignored_bytes(&resolved) {
            return Ok(true);
        }
        if !sel.is_dir || !self.ignore.has_exclusions() {
            return Ok(false);
        }
        let fd = open_in_root(
            self.root_fd.as_fd(),
            &resolved,
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
        .map_err(errno_err("open", show(&resolved)))?;
        let mut found = Vec::new();
        self.walk_dir(fd.as_fd(), &resolved, b"", 0, &mut found)?;
        Ok(!found.is_empty())
    }

    /// Everything a selected root copies, parents before children, names
    /// in bytewise order; the root itself first (with `sub` empty).
    pub(super) fn walk(&self, sel: &Selected) -> Result<Vec<Entry>, ContextError> {
        let rel = self.rel_of(sel)?;
        let name = paths::base_bytes(&rel);
        let mut out = Vec::new();
        if rel.is_empty() {
            let st = rustix::fs::fstat(&self.root_fd).map_err(errno_err("stat", "/"))?;
            let root = entry_of(&st, self.root_fd.as_fd(), b".", Vec::new(), Vec::new())?;
            out.extend(root);
            self.walk_dir(self.root_fd.as_fd(), b"", b"", 0, &mut out)?;
            return Ok(out);
        }
        let parent = self.open_parent(&rel)?;
        let st = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno_err("lstat", show(&rel)))?;
        let Some(root) = entry_of(&st, parent.as_fd(), name, rel.clone(), Vec::new())? else {
            return Ok(out);
        };
        let is_dir = root.kind == Kind::Dir;
        out.push(root);
        if is_dir {
            let fd = open_dir_at(parent.as_fd(), name).map_err(errno_err("open", show(&rel)))?;
            self.walk_dir(fd.as_fd(), &rel, b"", 0, &mut out)?;
        }
        Ok(out)
    }

    /// The directory holding a context-relative path (an `O_PATH` fd).
    pub(super) fn open_parent(&self, rel: &[u8]) -> Result<OwnedFd, ContextError> {
        let parent = paths::parent_bytes(rel);
        open_in_root(
            self.root_fd.as_fd(),
            parent,
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(errno_err("open", show(parent)))
    }

    fn walk_dir(
        &self,
        dir: BorrowedFd<'_>,
        ctx_rel: &[u8],
        sub: &[u8],
        depth: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), ContextError> {
        if depth >= MAX_DEPTH {
            return Err(ContextError::TooDeep {
                path: show(ctx_rel),
                limit: MAX_DEPTH,
            });
        }
        let names = fsx::list_dir(dir).map_err(io_err("read directory", show(ctx_rel)))?;
        for name in names {
            let child_rel = join_bytes(ctx_rel, &name);
            let child_sub = join_bytes(sub, &name);
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(errno_err("lstat", show(&child_rel))(e)),
            };
            let ignored = self.ignored_bytes(&child_rel);
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if ignored && !(is_dir && self.ignore.has_exclusions()) {
                continue;
            }
            let Some(entry) = entry_of(&st, dir, &name, child_rel.clone(), child_sub.clone())?
            else {
                continue;
            };
            let mark = out.len();
            out.push(entry);
            if is_dir {
                let fd = open_dir_at(dir, &name).map_err(errno_err("open", show(&child_rel)))?;
                self.walk_dir(fd.as_fd(), &child_rel, &child_sub, depth + 1, out)?;
                // An ignored directory only exists for what is re-included.
                if ignored && out.len() == mark + 1 {
                    out.pop();
                }
            }
        }
        Ok(())
    }

    /// The content hash (sha256, hex) of the selected roots, for the layer
    /// cache. It covers, per root, the name it was selected as and whether
    /// it is a directory; then for every entry walked (ignored ones left
    /// out, directories in bytewise name order) its path below the root,
    /// its type, its permission bits (not those of a directory root,
    /// whose contents alone are copied), a file's size and sha256, a
    /// symlink's target. Not covered: modification and access times
    /// (Docker's cache ignores them) and owners (COPY gives everything to
    /// root or to `--chown`, which the instruction's text keys).
    pub fn hash(&self, selected: &[Selected]) -> Result<String, ContextError> {
        let mut h = Sha256::new();
        field(&mut h, b"barge-build context hash v1");
        let mut buf = vec![0u8; 64 << 10];
        for sel in selected {
            field(&mut h, b"root");
            field(&mut h, sel.rel.as_bytes());
            field(&mut h, if sel.is_dir { b"d" } else { b"f" });
            for e in self.walk(sel)? {
                field(&mut h, &e.sub);
                let is_dir_root = e.sub.is_empty() && e.kind == Kind::Dir;
                if !is_dir_root {
                    field(&mut h, format!("{:o}", e.mode).as_bytes());
                }
                match &e.kind {
                    Kind::Dir => field(&mut h, b"dir"),
                    Kind::Fifo => field(&mut h, b"fifo"),
                    Kind::Symlink(target) => {
                        field(&mut h, b"symlink");
                        field(&mut h, target);
                    }
                    Kind::File => {
                        field(&mut h, b"file");
                        let (size, digest) = self.file_digest(&e.ctx_rel, &mut buf)?;
                        field(&mut h, &size.to_le_bytes());
                        field(&mut h, &digest);
                    }
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Open a regular file of the context for reading (the last component
    /// not followed).
    pub(super) fn open_file(&self, ctx_rel: &[u8]) -> Result<std::fs::File, ContextError> {
        let fd = open_in_root(
            self.root_fd.as_fd(),
            ctx_rel,
            OFlags::RDONLY | OFlags::NOFOLLOW,
        )
        .map_err(errno_err("open", show(ctx_rel)))?;
        Ok(std::fs::File::from(fd))
    }

    fn file_digest(&self, ctx_rel: &[u8], buf: &mut [u8]) -> Result<(u64, Vec<u8>), ContextError> {
        let mut f = self.open_file(ctx_rel)?;
        let mut h = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = match f.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", show(ctx_rel))(e)),
            };
            h.update(&buf[..n]);
            size += n as u64;
        }
        Ok((size, h.finalize().to_vec()))
    }
}

/// One length-prefixed field of the hash stream.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}
