//! Docker's copy semantics for one COPY/ADD (BuildKit's `fsutil/copy` as
//! the Dockerfile frontend drives it): where each selected root lands
//! under the destination, what owns it, which modes and times it keeps,
//! and ADD's extraction of local archives.
//!
//! The destination is resolved inside the container root as BuildKit
//! does (`FollowSymlinkInScope`: every symlink followed, clamped to the
//! root, a dangling one naming what it points to); missing directories
//! are created there with mode 0755, owned by the `--chown` user or root
//! (BuildKit's `MkdirAll` chowns the directories it creates). Below the
//! destination, names are created with `*at` calls that never follow a
//! symlink: a symlink found where a directory is copied is an error
//! (`cannot copy to non-directory`), as in BuildKit, never a way out.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use barge_image::layer::{self, ApplyOptions};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid};
use rustix::io::Errno;

use super::fsx::{self, open_dir_at, open_in_root};
use super::paths::{self, show};
use super::select::{Entry, Kind};
use super::{errno_err, io_err, unsupported_compression, Context, ContextError, Selected};

/// How one COPY/ADD copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `--chown`, resolved to numbers: the owner of everything copied and
    /// of the directories created for it. `None` is root (0:0).
    pub chown: Option<(u32, u32)>,
    /// `--chmod`: the mode of every file and directory copied (not of
    /// symlinks, nor of directories created above the copy, nor of what an
    /// ADD archive holds). `None` keeps the source's modes.
    pub chmod: Option<u32>,
    /// The destination is a directory (more than one source, or it ends
    /// with `/`), whether or not it exists.
    pub dest_is_dir_hint: bool,
    /// ADD: a selected file that is a tar (plain, gzip or zstd, told by
    /// its magic bytes and a valid first tar header) is extracted into the
    /// destination directory instead of being copied.
    pub extract_archives: bool,
    /// `COPY --from`: without `--chown`, what is copied keeps its owners
    /// (Docker's rule for copies from a stage or an image).
    pub keep_owners: bool,
}

/// Copy the selected roots into `dest` (an absolute path in the container
/// whose root filesystem is the host directory `rootfs`), Docker's way:
///
/// * a directory's *contents* go into `dest`, created if missing;
/// * a file goes to `dest` itself, unless `dest` is a directory (it ends
///   with `/`, `dest_is_dir_hint`, more than one root, or it exists as
///   one), where it goes to `dest/<its name>`;
/// * more than one root needs `dest` to end with `/` (Docker's error);
/// * everything copied belongs to root, or to `--chown`; modes are kept
///   (or set by `--chmod`), modification times kept, symlinks copied as
///   symlinks, hardlinks become copies, ignored files left out;
/// * an existing file is replaced; an existing directory is merged into
///   (its mode, owner and times set from the source, as BuildKit does for
///   every directory below the destination);
/// * with `extract_archives`, a tar is extracted into `dest` keeping the
///   archive's owners (or `--chown`'s) and modes.
///
/// Nothing is written outside `rootfs`, whatever its symlinks say.
pub fn copy_into(
    ctx: &Context,
    selected: &[Selected],
    rootfs: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let cmd = if opts.extract_archives { "ADD" } else { "COPY" };
    let dir_syntax = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    if selected.len() > 1 && !dir_syntax {
        return Err(ContextError::MultipleSources { cmd });
    }
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_err(
        "open the root filesystem",
        rootfs.display().to_string(),
    ))?;
    let privileged = rustix::process::geteuid().is_root();
    let w = Writer {
        root,
        // Unprivileged (tests, rootless), files stay the caller's unless
        // an owner was asked for.
        owner: match opts.chown {
            Some(o) => Some(o),
            None if privileged => Some((0, 0)),
            None => None,
        },
        chmod: opts.chmod,
        privileged,
        keep_owners: opts.keep_owners && opts.chown.is_none() && privileged,
    };
    let dest_comps = fsx::canonical(w.root.as_fd(), dest.as_bytes())
        .map_err(errno_err("resolve the destination", dest.to_string()))?;
    let as_dir = dir_syntax || opts.dest_is_dir_hint || selected.len() > 1;
    for sel in selected {
        if sel.is_dir {
            let fd = w.mkdir_all(&dest_comps)?;
            w.copy_tree(ctx, sel, fd, &container_path(&dest_comps))?;
            continue;
        }
        if opts.extract_archives && is_archive(ctx, sel)? {
            let fd = w.mkdir_all(&dest_comps)?;
            w.extract(ctx, sel, &fd, opts.chown)?;
            continue;
        }
        let entries = ctx.walk(sel)?;
        let Some(entry) = entries.first() else {
            // A socket or device: nothing Docker would copy.
            continue;
        };
        let into_dir = as_dir || dest_comps.is_empty() || w.is_dir(&dest_comps);
        let (dir_fd, name, shown) = if into_dir {
            let name = paths::base(&sel.rel).as_bytes().to_vec();
            let mut comps = dest_comps.clone();
            comps.push(name.clone());
            (w.mkdir_all(&dest_comps)?, name, container_path(&comps))
        } else {
            let (name, parent) = dest_comps
                .split_last()
                .map(|(n, p)| (n.clone(), p.to_vec()))
                .unwrap_or_default();
            (w.mkdir_all(&parent)?, name, container_path(&dest_comps))
        };
        if let Some(fd) = w.write(ctx, entry, dir_fd.as_fd(), &name, &shown)? {
            w.finish_dir(&fd, entry, &shown)?;
        }
    }
    Ok(())
}

/// `/a/b` for messages.
fn container_path(comps: &[Vec<u8>]) -> String {
    format!("/{}", show(&comps.join(&b'/')))
}

/// Writes into the container root.
struct Writer {
    root: OwnedFd,
    /// Owner of what is written; `None` leaves the caller's.
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    privileged: bool,
    /// Copied entries keep their own owners (see [`CopyOptions::keep_owners`]).
    keep_owners: bool,
}

/// A directory written whose mode and times are set once its contents are.
struct OpenDir {
    sub: Vec<u8>,
    fd: OwnedFd,
    entry: Option<Entry>,
    shown: String,
}

impl Writer {
    fn is_dir(&self, comps: &[Vec<u8>]) -> bool {
        open_in_root(
            self.root.as_fd(),
            &comps.join(&b'/'),
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .is_ok()
    }

    /// Open the directory `comps` (already canonical) in the root,
    /// creating what is missing (0755, owned by the copy's owner).
    fn mkdir_all(&self, comps: &[Vec<u8>]) -> Result<OwnedFd, ContextError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let mut cur =
            open_in_root(self.root.as_fd(), b"", flags).map_err(errno_err("open", "/"))?;
        for i in 0..comps.len() {
            let prefix = comps[..=i].join(&b'/');
            let shown = container_path(&comps[..=i]);
            let not_dir = || ContextError::NotADirectory {
                path: shown.clone(),
            };
            cur = match open_in_root(self.root.as_fd(), &prefix, flags) {
                Ok(fd) => fd,
                Err(Errno::NOTDIR) => return Err(not_dir()),
                Err(Errno::NOENT) => {
                    let name = comps[i].as_slice();
                    match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {
                            self.chown_at(cur.as_fd(), name, &shown)?;
                            rustix::fs::chmodat(
                                &cur,
                                name,
                                Mode::from_raw_mode(0o755),
                                AtFlags::empty(),
                            )
                            .map_err(errno_err("chmod", shown.clone()))?;
                        }
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(errno_err("mkdir", shown.clone())(e)),
                    }
                    match open_in_root(self.root.as_fd(), &prefix, flags) {
                        Ok(fd) => fd,
                        Err(Errno::NOTDIR) | Err(Errno::NOENT) => return Err(not_dir()),
                        Err(e) => return Err(errno_err("open", shown)(e)),
                    }
                }
                Err(e) => return Err(errno_err("open", shown)(e)),
            };
        }
        Ok(cur)
    }

    /// Copy the contents of a selected directory into `dest`.
    fn copy_tree(
        &self,
        ctx: &Context,
        sel: &Selected,
        dest: OwnedFd,
        dest_shown: &str,
    ) -> Result<(), ContextError> {
        let entries = ctx.walk(sel)?;
        let mut stack = vec![OpenDir {
            sub: Vec::new(),
            fd: dest,
            entry: None,
            shown: dest_shown.to_string(),
        }];
        for e in entries.iter().skip(1) {
            let parent = paths::parent_bytes(&e.sub);
            while stack.len() > 1 && stack.last().is_some_and(|d| d.sub != parent) {
                if let Some(done) = stack.pop() {
                    self.finish_open(done)?;
                }
            }
            let Some(top) = stack.last() else {
                break;
            };
            let name = paths::base_bytes(&e.sub);
            let shown = format!("{}/{}", top.shown.trim_end_matches('/'), show(name));
            if let Some(fd) = self.write(ctx, e, top.fd.as_fd(), name, &shown)? {
                stack.push(OpenDir {
                    sub: e.sub.clone(),
                    fd,
                    entry: Some(e.clone()),
                    shown,
                });
            }
        }
        while let Some(done) = stack.pop() {
            self.finish_open(done)?;
        }
        Ok(())
    }

    fn finish_open(&self, d: OpenDir) -> Result<(), ContextError> {
        match &d.entry {
            Some(e) => self.finish_dir(&d.fd, e, &d.shown),
            // The destination itself: left as it was (or created).
            None => Ok(()),
        }
    }

    /// Mode and times of a directory, once its contents are written.
    fn finish_dir(&self, fd: &OwnedFd, e: &Entry, shown: &str) -> Result<(), ContextError> {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.chmod.unwrap_or(e.mode)))
            .map_err(errno_err("chmod", shown.to_string()))?;
        rustix::fs::futimens(fd, &times(e)).map_err(errno_err("set times of", shown.to_string()))
    }

    fn chown_at(&self, dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<(), ContextError> {
        self.chown_at_as(dir, name, self.owner, shown)
    }

    fn chown_at_as(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        owner: Option<(u32, u32)>,
        shown: &str,
    ) -> Result<(), ContextError> {
        let Some((u, g)) = owner else {
            return Ok(());
        };
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(u)),
            Some(Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno_err("chown", shown.to_string()))
    }

    /// Make room for a non-directory at `name`: an existing one is
    /// removed, a directory is an error.
    fn clear(&self, dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<(), ContextError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno_err("lstat", shown.to_string())(e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(ContextError::ReplaceDirectory {
                    path: shown.to_string(),
                })
            }
            Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
                .map_err(errno_err("remove", shown.to_string())),
        }
    }

    /// Write one entry at `dir/name`; a directory is returned open, its
    /// mode and times still to be set by [`Self::finish_dir`].
    fn write(
        &self,
        ctx: &Context,
        e: &Entry,
        dir: BorrowedFd<'_>,
        name: &[u8],
        shown: &str,
    ) -> Result<Option<OwnedFd>, ContextError> {
        let mode = Mode::from_raw_mode(self.chmod.unwrap_or(e.mode));
        let owner = if self.keep_owners {
            Some((e.uid, e.gid))
        } else {
            self.owner
        };
        match &e.kind {
            Kind::Dir => {
                match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(errno_err("lstat", shown.to_string()))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            return Err(ContextError::NotADirectory {
                                path: shown.to_string(),
                            });
                        }
                    }
                    Err(err) => return Err(errno_err("mkdir", shown.to_string())(err)),
                }
                let fd = open_dir_at(dir, name).map_err(|err| match err {
                    Errno::NOTDIR | Errno::LOOP => ContextError::NotADirectory {
                        path: shown.to_string(),
                    },
                    other => errno_err("open", shown.to_string())(other),
                })?;
                self.chown_fd_as(&fd, owner, shown)?;
                Ok(Some(fd))
            }
            Kind::File => {
                self.clear(dir, name, shown)?;
                let out = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno_err("create", shown.to_string()))?;
                let mut src = ctx.open_file(&e.ctx_rel)?;
                let mut out = std::fs::File::from(out);
                io::copy(&mut src, &mut out).map_err(io_err("copy to", shown.to_string()))?;
                self.chown_fd_as(&out, owner, shown)?;
                rustix::fs::fchmod(&out, mode).map_err(errno_err("chmod", shown.to_string()))?;
                rustix::fs::futimens(&out, &times(e))
                    .map_err(errno_err("set times of", shown.to_string()))?;
                Ok(None)
            }
            Kind::Symlink(target) => {
                self.clear(dir, name, shown)?;
                rustix::fs::symlinkat(target.as_slice(), dir, name)
                    .map_err(errno_err("symlink", shown.to_string()))?;
                self.chown_at_as(dir, name, owner, shown)?;
                rustix::fs::utimensat(dir, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno_err("set times of", shown.to_string()))?;
                Ok(None)
            }
            Kind::Fifo => {
                self.clear(dir, name, shown)?;
                rustix::fs::mknodat(dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(errno_err("mkfifo", shown.to_string()))?;
                self.chown_at_as(dir, name, owner, shown)?;
                // A fifo just made (not a symlink): chmodat may follow.
                rustix::fs::chmodat(dir, name, mode, AtFlags::empty())
                    .map_err(errno_err("chmod", shown.to_string()))?;
                rustix::fs::utimensat(dir, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno_err("set times of", shown.to_string()))?;
                Ok(None)
            }
        }
    }

    fn chown_fd_as(
        &self,
        fd: impl AsFd,
        owner: Option<(u32, u32)>,
        shown: &str,
    ) -> Result<(), ContextError> {
        let Some((u, g)) = owner else {
            return Ok(());
        };
        rustix::fs::fchown(fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
            .map_err(errno_err("chown", shown.to_string()))
    }

    /// ADD: extract the archive `sel` into the directory `dest`, confined
    /// to it; then give what it held to `--chown`'s owner.
    fn extract(
        &self,
        ctx: &Context,
        sel: &Selected,
        dest: &OwnedFd,
        chown: Option<(u32, u32)>,
    ) -> Result<(), ContextError> {
        let rel = ctx.rel_of(sel)?;
        let archive_err = |source| ContextError::Archive {
            path: sel.rel.clone(),
            source,
        };
        // The directory already resolved inside the root, by its fd.
        let target = PathBuf::from(format!("/proc/self/fd/{}", dest.as_raw_fd()));
        let opts = ApplyOptions {
            unprivileged: !self.privileged,
            skip_devices: true,
            best_effort_xattrs: true,
            ..ApplyOptions::default()
        };
        layer::apply(ctx.open_file(&rel)?, &target, &opts).map_err(archive_err)?;
        let Some((u, g)) = chown else {
            return Ok(());
        };
        let input = layer::decompressed(ctx.open_file(&rel)?).map_err(archive_err)?;
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(io_err("read the archive", sel.rel.clone()))?;
        for entry in entries {
            let entry = entry.map_err(io_err("read the archive", sel.rel.clone()))?;
            let raw = entry.path_bytes();
            let comps: Vec<&[u8]> = raw
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
                .collect();
            if comps.iter().any(|c| *c == b"..") {
                // Refused by the extraction already.
                continue;
            }
            let shown = format!("{}: {}", sel.rel, show(&raw));
            let Some((name, parent)) = comps.split_last() else {
                continue;
            };
            if name.starts_with(b".wh.") {
                continue;
            }
            let parent = match open_in_root(
                dest.as_fd(),
                &parent.join(&b'/'),
                OFlags::PATH | OFlags::DIRECTORY,
            ) {
                Ok(p) => p,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
                Err(e) => return Err(errno_err("open", shown)(e)),
            };
            match rustix::fs::chownat(
                &parent,
                *name,
                Some(Uid::from_raw(u)),
                Some(Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(errno_err("chown", shown)(e)),
            }
        }
        Ok(())
    }
}

fn times(e: &Entry) -> Timestamps {
    Timestamps {
        last_access: e.atime,
        last_modification: e.mtime,
    }
}

/// Docker's `isArchivePath`: after decompression (gzip, zstd, none), does
/// the file start with a valid tar header? bzip2 and xz are not read
/// here: a file named like such a tar is refused rather than copied as
/// it is, anything else in those formats is a plain file.
fn is_archive(ctx: &Context, sel: &Selected) -> Result<bool, ContextError> {
    let rel = ctx.rel_of(sel)?;
    let mut head = [0u8; 6];
    let n = fsx::read_head(&mut ctx.open_file(&rel)?, &mut head)
        .map_err(io_err("read", sel.rel.clone()))?;
    if let Some(what) = unsupported_compression(&head[..n]) {
        let lower = sel.rel.to_ascii_lowercase();
        let tar_like = [".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz"]
            .iter()
            .any(|ext| lower.ends_with(ext));
        if tar_like {
            return Err(ContextError::UnsupportedArchive {
                path: sel.rel.clone(),
                what,
            });
        }
        return Ok(false);
    }
    let Ok(input) = layer::decompressed(ctx.open_file(&rel)?) else {
        return Ok(false);
    };
    let mut archive = tar::Archive::new(input);
    let first = match archive.entries() {
        Ok(mut entries) => entries.next(),
        Err(_) => return Ok(false),
    };
    Ok(matches!(first, Some(Ok(_))))
}
