//! File-system operations on a container's root filesystem: `cp` in both
//! directions, `diff`, `export` and `commit`.
//!
//! This module owns the path semantics Docker gives these commands
//! (moby `pkg/archive/copy.go`, `daemon/archive.go`, docker-cli
//! `cli/command/container/cp.go`): which path is followed, what the top
//! entry of a copy archive is called, where an archive is extracted and
//! under which name. The callers own the container: they find its root
//! filesystem (the mounted `merged` dir, or mount it for a stopped
//! container), its upper and lower dirs, and word errors with its id (see
//! [`in_container`]).
//!
//! What it must not do: follow a path of the container outside its root.
//! Every container path is resolved with `openat2(RESOLVE_IN_ROOT)` from
//! the root filesystem, and every name is created, replaced or changed
//! with `*at` calls that do not follow it, so a symlink in the container
//! pointing to `/etc` resolves to `<rootfs>/etc`, never the host's, even
//! while the container runs and changes its files. Archives extracted on
//! the host are confined the same way to the destination directory.
//!
//! Ownership: files copied into a container belong to root (0:0) unless
//! `archive_mode` (`cp -a`) keeps the source's ids, as Docker documents it;
//! files copied out belong to the caller unless `archive_mode`.

mod archive;
mod commit;
mod copy;
mod diff;
mod extract;
mod paths;
mod pipe;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

pub use commit::{commit, store_layer, CommitOptions, EMPTY_LAYER_DIFF_ID};
pub use copy::{
    copy_from_container, copy_from_container_follow_link, copy_tar_to_container, copy_to_container,
    extract_to_host, stat_path,
};
pub use diff::{diff, Change, ChangeKind};
pub use paths::follow_in_root;

/// The `what` of the [`EngineError::Io`] returned when a path does not
/// exist in the container (its `path` is the path as asked for).
pub const NOT_FOUND: &str = "Could not find the file";

/// What `stat` of a path in the container found, as Docker's
/// `ContainerPathStat`, plus what is needed to extract the archive of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStat {
    /// The container path as asked for (`/etc`, `/etc/`, `/etc/.`).
    pub path: String,
    /// The name of the archive's top entry: the base name of `path`, or
    /// `.` when only the content of a directory is copied (`path` ending
    /// in `/.`, or the root).
    pub name: String,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// For a symlink, its target resolved inside the container (absolute,
    /// every symlink followed); empty otherwise.
    pub link_target: String,
}

impl CopyStat {
    /// The archive holds a directory (extracted as one, or its content).
    pub fn is_dir(&self) -> bool {
        self.mode & libc_s_ifmt() == 0o040000
    }

    /// The path names a symlink (the archive holds the link itself).
    pub fn is_symlink(&self) -> bool {
        self.mode & libc_s_ifmt() == 0o120000
    }

    /// The mode as Go's `os.FileMode` bits (the `mode` of Docker's
    /// `X-Docker-Container-Path-Stat` header).
    pub fn go_file_mode(&self) -> u32 {
        let mut m = self.mode & 0o777;
        m |= match self.mode & libc_s_ifmt() {
            0o040000 => 1 << 31,               // ModeDir
            0o120000 => 1 << 27,               // ModeSymlink
            0o060000 => 1 << 26,               // ModeDevice
            0o020000 => (1 << 26) | (1 << 21), // ModeDevice | ModeCharDevice
            0o010000 => 1 << 25,               // ModeNamedPipe
            0o140000 => 1 << 24,               // ModeSocket
            _ => 0,
        };
        if self.mode & 0o4000 != 0 {
            m |= 1 << 23;
        }
        if self.mode & 0o2000 != 0 {
            m |= 1 << 22;
        }
        if self.mode & 0o1000 != 0 {
            m |= 1 << 20;
        }
        m
    }
}

const fn libc_s_ifmt() -> u32 {
    0o170000
}

/// The container path of a [`NOT_FOUND`] error.
pub fn missing_path(e: &EngineError) -> Option<&Path> {
    match e {
        EngineError::Io { what, path, .. } if *what == NOT_FOUND => Some(path),
        _ => None,
    }
}

/// Word a [`NOT_FOUND`] error as Docker does (`Could not find the file /x
/// in container <id>`); other errors are returned as they are.
pub fn in_container(e: EngineError, container: &str) -> EngineError {
    match missing_path(&e) {
        Some(p) => EngineError::InvalidArgument(format!(
            "{NOT_FOUND} {} in container {container}",
            p.display()
        )),
        None => e,
    }
}

/// `docker export`: the whole root filesystem as a tar, entries named
/// without `./` (`bin/`, `bin/sh`), directories before their content,
/// hard links kept, device nodes and fifos archived, sockets left out.
pub fn export(rootfs: &Path, out: impl Write) -> Result<()> {
    barge_image::layer::tar_dir(rootfs, out)?;
    Ok(())
}

fn not_found(path: &str) -> EngineError {
    EngineError::Io {
        what: NOT_FOUND,
        path: PathBuf::from(path),
        source: std::io::ErrorKind::NotFound.into(),
    }
}
