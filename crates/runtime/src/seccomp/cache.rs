//! The seccomp program cache: `<state root>/@seccomp-cache/<key>.bpf`.
//!
//! Compiling a large profile with libseccomp (Docker's default: ~20 ms) is
//! most of a container start. The runtime process therefore looks the
//! compiled BPF program up here before it forks the container's process
//! (which later cannot see host paths); on a miss it compiles with
//! [`compile`], exports the program with libseccomp and
//! stores it. The process then installs the program as is.
//!
//! - The key is the SHA-256 of everything the program depends on: a format
//!   string ([`FORMAT`]), this crate's version, the libseccomp version, the
//!   target architecture, the kernel (uname machine, release and version)
//!   and the JSON of `linux.seccomp`.
//! - The directory's name is not a valid container id, so it never meets a
//!   container's state directory. It is made 0700; it and its files are
//!   used only when they belong to the caller and nobody else may write
//!   them, and no symlink is followed.
//! - A file is written under a temporary name and renamed into place; two
//!   runtimes racing write the same bytes. A file whose size is not a whole
//!   program, or that does not end with a return, is removed and rebuilt.
//! - At [`MAX_ENTRIES`] files the least recently read half is removed.
//!
//! It must never make a weaker filter: every failure here is reported to
//! the caller, which then leaves the compilation to the process.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use libseccomp::ScmpVersion;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::program::{kernel_flags, InvalidProgram, Program};
use super::{compile, SeccompError};
use crate::sys;
use crate::sys::seccomp::{BPF_MAXINSNS, SOCK_FILTER_SIZE};

/// The cache directory under the runtime's state root.
pub const CACHE_DIR: &str = "@seccomp-cache";

/// Part of every key. Change it when [`compile`] starts to
/// build different programs for the same configuration.
pub const FORMAT: &str = "barge-runtime seccomp program 1";

/// Files kept before the least recently read half is removed.
pub const MAX_ENTRIES: usize = 64;

const MAX_PROGRAM_BYTES: usize = BPF_MAXINSNS * SOCK_FILTER_SIZE;

/// Why the cache could not give a program.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{what} {}: {err}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    #[error("{} is not used: {why}", path.display())]
    Untrusted { path: PathBuf, why: String },
    #[error("{}: {err}", path.display())]
    Invalid { path: PathBuf, err: InvalidProgram },
    #[error("cannot compute the cache key: {0}")]
    Key(String),
    #[error("compiling the filter: {0}")]
    Compile(#[from] SeccompError),
    #[error("the filter uses SCMP_ACT_NOTIFY: it is loaded by libseccomp in the process")]
    Notify,
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |err| CacheError::Io {
        what,
        path: path.to_owned(),
        err,
    }
}

/// Where a program came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from the cache.
    Cache,
    /// Compiled now and stored.
    Compiled,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Cache => "read from the cache",
            Origin::Compiled => "compiled and cached",
        })
    }
}

/// The cache key of `seccomp` on this system: 64 hex digits.
pub fn key(seccomp: &LinuxSeccomp) -> Result<String, CacheError> {
    let lib = ScmpVersion::current().map_err(|e| CacheError::Key(e.to_string()))?;
    let uts = sys::uname().map_err(|e| CacheError::Key(format!("uname: {e}")))?;
    let json = serde_json::to_vec(seccomp).map_err(|e| CacheError::Key(e.to_string()))?;
    let mut h = Sha256::new();
    // Each field with its length, so that no two field lists hash alike.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(FORMAT.as_bytes());
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(format!("{}.{}.{}", lib.major, lib.minor, lib.micro).as_bytes());
    field(std::env::consts::ARCH.as_bytes());
    field(uts.machine.as_bytes());
    field(uts.release.as_bytes());
    field(uts.version.as_bytes());
    field(&json);
    Ok(format!("{:x}", h.finalize()))
}

/// The cache directory of one state root.
#[derive(Debug)]
pub struct ProgramCache {
    dir: PathBuf,
}

impl ProgramCache {
    /// Opens the cache under `state_root` (the runtime's `--root`, which
    /// must exist), creating its directory 0700 if needed.
    pub fn open(state_root: &Path) -> Result<Self, CacheError> {
        let dir = state_root.join(CACHE_DIR);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("create", &dir)(e)),
        }
        let meta = fs::symlink_metadata(&dir).map_err(io_error("stat", &dir))?;
        if !meta.is_dir() {
            return Err(CacheError::Untrusted {
                path: dir,
                why: "not a directory".to_owned(),
            });
        }
        check_owner(&dir, &meta)?;
        Ok(ProgramCache { dir })
    }

    /// Where the program of `key` is stored.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.bpf"))
    }

    /// The program of `seccomp`: from the cache, or compiled and stored.
    /// A stored file that is not a valid program is removed and rebuilt.
    /// Filters with `SCMP_ACT_NOTIFY` are refused ([`CacheError::Notify`]).
    pub fn program(&self, seccomp: &LinuxSeccomp) -> Result<(Program, Origin), CacheError> {
        let key = key(seccomp)?;
        let path = self.path(&key);
        let flags = kernel_flags(seccomp);
        match read_program(&path, flags) {
            Ok(Some(p)) => return Ok((p, Origin::Cache)),
            Ok(None) => {}
            Err(e @ (CacheError::Invalid { .. } | CacheError::Untrusted { .. })) => {
                crate::debug!("seccomp cache: {e}; removing it");
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
            }
            Err(e) => return Err(e),
        }
        let filter = compile(seccomp)?;
        if filter.uses_notify() {
            return Err(CacheError::Notify);
        }
        self.evict();
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        // A leftover of a runtime that died with our pid.
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(io_error("create", &tmp))?;
            filter.export_bpf(&file)?;
            file.rewind().map_err(io_error("rewind", &tmp))?;
            let bytes = read_capped(&mut file).map_err(io_error("read", &tmp))?;
            let program = Program::from_bpf(&bytes, flags).map_err(|err| CacheError::Invalid {
                path: tmp.clone(),
                err,
            })?;
            fs::rename(&tmp, &path).map_err(io_error("rename into place", &tmp))?;
            Ok(program)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|p| (p, Origin::Compiled))
    }

    /// Keeps the cache bounded: at [`MAX_ENTRIES`] files, removes the half
    /// read least recently (and any leftover temporary file among them).
    fn evict(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let atime = e.metadata().ok()?.accessed().ok()?;
                Some((atime, e.path()))
            })
            .collect();
        if entries.len() < MAX_ENTRIES {
            return;
        }
        entries.sort();
        for (_, path) in &entries[..entries.len() / 2] {
            let _ = fs::remove_file(path);
        }
    }
}

/// Refuses what the caller does not own or others may write.
fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<(), CacheError> {
    let euid = sys::geteuid();
    if meta.uid() != euid {
        return Err(CacheError::Untrusted {
            path: path.to_owned(),
            why: format!("owned by uid {}, not {euid}", meta.uid()),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(CacheError::Untrusted {
            path: path.to_owned(),
            why: format!("mode {:o} lets others write it", meta.mode() & 0o7777),
        });
    }
    Ok(())
}

/// Reads at most one byte more than the largest program.
fn read_capped(file: &mut File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_PROGRAM_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The stored program at `path`; `None` if there is none.
fn read_program(path: &Path, flags: u32) -> Result<Option<Program>, CacheError> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(CacheError::Untrusted {
                path: path.to_owned(),
                why: "a symlink".to_owned(),
            })
        }
        Err(e) => return Err(io_error("open", path)(e)),
    };
    let meta = file.metadata().map_err(io_error("stat", path))?;
    if !meta.is_file() {
        return Err(CacheError::Untrusted {
            path: path.to_owned(),
            why: "not a regular file".to_owned(),
        });
    }
    check_owner(path, &meta)?;
    let invalid = |err| CacheError::Invalid {
        path: path.to_owned(),
        err,
    };
    let len = meta.len() as usize;
    if len > MAX_PROGRAM_BYTES {
        return Err(invalid(InvalidProgram::TooLong {
            count: len / SOCK_FILTER_SIZE,
        }));
    }
    let bytes = read_capped(&mut file).map_err(io_error("read", path))?;
    Program::from_bpf(&bytes, flags).map(Some).map_err(invalid)
}
