//! The build context of `barge build`: a directory, or a tar read from
//! stdin and extracted into a private temporary directory.
//!
//! This module owns Docker's rules for everything that reads the context:
//!
//! * `.dockerignore` ([`Context::is_ignored`]): moby `patternmatcher`, with
//!   `<Dockerfile>.dockerignore` next to the Dockerfile taking precedence
//!   over the one at the root, as BuildKit does;
//! * finding the Dockerfile ([`Context::read_dockerfile`]);
//! * the sources of a COPY/ADD ([`Context::select`]): paths inside the
//!   context, wildcards as Go's `filepath.Match`, ignored files invisible;
//! * the content hash the layer cache keys a COPY/ADD on ([`Context::hash`]);
//! * Docker's copy semantics into a container root ([`copy_into`]),
//!   including ADD's extraction of local archives.
//!
//! What it must not do: read or write outside its roots. The context is
//! read with fd-relative calls resolved inside its root
//! (`openat2(RESOLVE_IN_ROOT)`), so a symlink in an extracted tar pointing
//! at `/etc/shadow` names `<context>/etc/shadow`; the container root is
//! written the same way, so a symlink `/etc -> /host/etc` in an image is
//! followed to `<rootfs>/host/etc`, never out of it. Ownership in the
//! context never matters: copies belong to root, or to `--chown`.

mod copy;
mod fsx;
mod glob;
mod ignore;
mod paths;
mod select;

#[cfg(test)]
mod tests;

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use barge_image::layer::{self, ApplyOptions, LayerError, WhiteoutMode};
use rustix::fs::{Mode, OFlags};

pub use copy::{copy_into, CopyOptions};

use fsx::TempDir;
use ignore::{IgnoreMatcher, PatternError};

/// A Dockerfile larger than this is refused.
pub const MAX_DOCKERFILE_BYTES: u64 = 10 << 20;
/// A `.dockerignore` larger than this is refused.
pub const MAX_IGNORE_FILE_BYTES: u64 = 10 << 20;
/// A context tar whose entries hold more than this is refused.
pub const MAX_TAR_BYTES: u64 = 1 << 30;
/// A context tar with more entries than this is refused.
pub const MAX_TAR_ENTRIES: u64 = 1_000_000;
/// Directories nested deeper than this are refused while walking.
pub const MAX_DEPTH: usize = 1024;

/// Why the context could not be read or copied from. Messages use
/// Docker's wording where it has one.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory does not exist.
    #[error("unable to prepare context: path {path:?} not found")]
    ContextNotFound { path: PathBuf },
    /// The context path is not a directory.
    #[error("unable to prepare context: context must be a directory: {path:?}")]
    ContextNotDir { path: PathBuf },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// `.dockerignore` is malformed or unreadable.
    #[error("failed to parse {path}: {reason}")]
    IgnoreFile { path: String, reason: String },
    /// No Dockerfile where it was looked for.
    #[error("failed to read dockerfile: open {path}: no such file or directory")]
    DockerfileNotFound { path: String },
    /// The Dockerfile is over [`MAX_DOCKERFILE_BYTES`].
    #[error("failed to read dockerfile: {path} is larger than {limit} bytes")]
    DockerfileTooLarge { path: String, limit: u64 },
    /// The Dockerfile is not text.
    #[error("failed to read dockerfile: {path} is not valid UTF-8")]
    DockerfileNotUtf8 { path: String },
    /// A source that leaves the context (`../x`).
    #[error("COPY failed: forbidden path outside the build context: {path}")]
    OutsideContext { path: String },
    /// A source that names nothing (or only ignored files).
    #[error("failed to compute cache key: \"{path}\": not found")]
    NotFound { path: String },
    /// A source wildcard `filepath.Match` refuses.
    #[error("failed to compute cache key: {pattern:?}: syntax error in pattern")]
    BadSourcePattern { pattern: String },
    /// A [`Selected`] that is not from this context.
    #[error("{path} is not inside the build context {root}")]
    NotInContext { path: PathBuf, root: PathBuf },
    /// A context tar compressed with something this build cannot read.
    #[error(
        "unable to prepare context: the context tar is {what}-compressed, which is not supported: send a plain, gzip or zstd tar"
    )]
    UnsupportedCompression { what: &'static str },
    /// A context tar with more than [`MAX_TAR_ENTRIES`] entries.
    #[error("unable to prepare context: the context tar has more than {limit} entries")]
    TarTooManyEntries { limit: u64 },
    /// A context tar over [`MAX_TAR_BYTES`].
    #[error(
        "unable to prepare context: the context tar holds more than {limit} bytes (at entry '{path}')"
    )]
    TarTooLarge { path: String, limit: u64 },
    /// A device node in a context tar.
    #[error("unable to prepare context: entry '{path}' of the context tar is a device node, which a build context may not hold")]
    TarDevice { path: String },
    /// A context tar that could not be extracted (corrupt, unsafe paths).
    #[error("unable to prepare context: extracting the context tar: {0}")]
    Tar(#[source] LayerError),
    /// Several sources (or a wildcard matching several) to a non-directory.
    #[error(
        "When using {cmd} with more than one source file, the destination must be a directory and end with a /"
    )]
    MultipleSources { cmd: &'static str },
    /// A directory would be copied onto something that is not one.
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory { path: String },
    /// A file would replace a directory.
    #[error("cannot replace directory {path} with a file")]
    ReplaceDirectory { path: String },
    /// ADD of an archive compressed with something this build cannot read.
    #[error(
        "ADD {path}: {what}-compressed archives are not supported; recompress it with gzip or zstd"
    )]
    UnsupportedArchive { path: String, what: &'static str },
    /// ADD of an archive that could not be extracted.
    #[error("ADD {path}: extracting the archive: {source}")]
    Archive {
        path: String,
        #[source]
        source: LayerError,
    },
    /// Directories nested deeper than [`MAX_DEPTH`].
    #[error("{path}: directories nested deeper than {limit} levels")]
    TooDeep { path: String, limit: usize },
}

/// `map_err` helper for I/O errors on a path.
fn io_err(op: &'static str, path: impl Into<String>) -> impl FnOnce(io::Error) -> ContextError {
    let path = path.into();
    move |source| ContextError::Io { op, path, source }
}

/// `map_err` helper for errno errors on a path.
fn errno_err(
    op: &'static str,
    path: impl Into<String>,
) -> impl FnOnce(rustix::io::Errno) -> ContextError {
    let path = path.into();
    move |e| ContextError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// One root a COPY/ADD source list selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The path as selected, relative to the context root, cleaned, without
    /// a leading `/` (`.` for the root itself). Its last component names a
    /// file copied into a directory.
    pub rel: String,
    /// Where it is on the host: inside the context root, symlinks followed
    /// (inside the root).
    pub path: PathBuf,
    /// A directory (whose contents are what is copied).
    pub is_dir: bool,
}

/// A build context: its root directory and its `.dockerignore`.
#[derive(Debug)]
pub struct Context {
    /// Canonical path of the root.
    root: PathBuf,
    /// The root, opened once; everything is resolved from it.
    root_fd: OwnedFd,
    ignore: IgnoreMatcher,
    /// A tar context (or a root filesystem): `-f` names a file inside it,
    /// read with symlinks resolved inside it.
    dockerfile_inside: bool,
    /// The temporary directory of a tar context, removed on drop (after
    /// `root_fd` is closed: fields drop in order).
    _temp: Option<TempDir>,
}

impl Context {
    /// `barge build DIR`: the directory `dir`. The ignore file is
    /// `<Dockerfile>.dockerignore` next to the Dockerfile when it exists,
    /// else `DIR/.dockerignore`. `dockerfile` is the `-f` path (relative to
    /// the current directory, as docker-cli reads it); `None` is
    /// `DIR/Dockerfile`.
    pub fn from_dir(dir: &Path, dockerfile: Option<&Path>) -> Result<Context, ContextError> {
        let root = match std::fs::canonicalize(dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ContextError::ContextNotFound {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io_err("resolve the context", dir.display().to_string())(e)),
        };
        let root_fd = open_root(&root)?;
        let dockerfile = match dockerfile {
            Some(p) => p.to_path_buf(),
            None => default_dockerfile(&root),
        };
        let mut ignore_path = dockerfile.clone().into_os_string();
        ignore_path.push(".dockerignore");
        let specific = PathBuf::from(ignore_path);
        let ignore_file = if specific.is_file() {
            specific
        } else {
            root.join(".dockerignore")
        };
        let ignore = match std::fs::File::open(&ignore_file) {
            Ok(f) => parse_ignore(f, &ignore_file.display().to_string())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => IgnoreMatcher::default(),
            Err(e) => {
                return Err(io_err("open", ignore_file.display().to_string())(e));
            }
        };
        Ok(Context {
            root,
            root_fd,
            ignore,
            dockerfile_inside: false,
            _temp: None,
        })
    }

    /// A container's (or an image's) root filesystem as the source of
    /// `COPY --from`: no `.dockerignore`, every path resolved inside it.
    pub fn from_rootfs(dir: &Path) -> Result<Context, ContextError> {
        let root = std::fs::canonicalize(dir).map_err(io_err(
            "resolve the root filesystem",
            dir.display().to_string(),
        ))?;
        let root_fd = open_root(&root)?;
        Ok(Context {
            root,
            root_fd,
            ignore: IgnoreMatcher::default(),
            dockerfile_inside: true,
            _temp: None,
        })
    }

    /// `barge build -`: a tar (plain, gzip or zstd, told by its magic
    /// bytes) extracted into a private directory under `tmp_parent`,
    /// removed when the context is dropped. Entries are confined to that
    /// directory (`..` refused, leading `/` and symlinks resolved inside
    /// it), device nodes are refused, and the tar may hold at most
    /// [`MAX_TAR_ENTRIES`] entries and [`MAX_TAR_BYTES`] bytes. Its
    /// `.dockerignore` applies.
    pub fn from_tar(mut r: impl Read, tmp_parent: &Path) -> Result<Context, ContextError> {
        let parent = std::fs::canonicalize(tmp_parent)
            .map_err(io_err("open", tmp_parent.display().to_string()))?;
        let temp = TempDir::new(&parent, "context-").map_err(io_err(
            "create a directory in",
            parent.display().to_string(),
        ))?;
        let mut head = [0u8; 6];
        let n = fsx::read_head(&mut r, &mut head).map_err(io_err("read", "the context tar"))?;
        if let Some(what) = unsupported_compression(&head[..n]) {
            return Err(ContextError::UnsupportedCompression { what });
        }
        let opts = ApplyOptions {
            unprivileged: true,
            skip_devices: false,
            max_entries: MAX_TAR_ENTRIES,
            max_total_bytes: MAX_TAR_BYTES,
            whiteouts: WhiteoutMode::Apply,
            best_effort_xattrs: true,
        };
        let input = io::Cursor::new(head).take(n as u64).chain(r);
        layer::apply(input, temp.path(), &opts).map_err(|e| match e {
            LayerError::TooManyEntries { limit } => ContextError::TarTooManyEntries { limit },
            LayerError::TooLarge { path, limit, .. } => ContextError::TarTooLarge { path, limit },
            LayerError::DeviceNotAllowed { path } => ContextError::TarDevice { path },
            other => ContextError::Tar(other),
        })?;
        let root = temp.path().to_path_buf();
        let root_fd = open_root(&root)?;
        let ignore = match read_in_root(&root_fd, b".dockerignore", MAX_IGNORE_FILE_BYTES) {
            Ok(Some(bytes)) => parse_ignore(&bytes[..], ".dockerignore")?,
            Ok(None) => {
                return Err(ContextError::IgnoreFile {
                    path: ".dockerignore".into(),
                    reason: format!("larger than {MAX_IGNORE_FILE_BYTES} bytes"),
                })
            }
            Err(rustix::io::Errno::NOENT) => IgnoreMatcher::default(),
            Err(e) => return Err(errno_err("open", ".dockerignore")(e)),
        };
        Ok(Context {
            root,
            root_fd,
            ignore,
            dockerfile_inside: true,
            _temp: Some(temp),
        })
    }

    /// The root directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Is this context-relative path (leading `/` allowed) excluded by
    /// `.dockerignore`? A path under an excluded directory is excluded
    /// unless a later `!` pattern re-includes it; the root never is.
    pub fn is_ignored(&self, rel: &str) -> bool {
        let cleaned = paths::clean(rel.trim_start_matches('/'));
        if cleaned == "." {
            return false;
        }
        self.ignore.matches(&cleaned)
    }

    /// The Dockerfile's text. `path` is the `-f` value: for a directory
    /// context, relative to the current directory (docker-cli's rule); for
    /// a tar context, a path inside the context. `None` is `Dockerfile` at
    /// the root (or `dockerfile`, which docker-cli also accepts). The
    /// Dockerfile is read even when `.dockerignore` excludes it.
    pub fn read_dockerfile(&self, path: Option<&Path>) -> Result<String, ContextError> {
        let (bytes, shown) = if self.dockerfile_inside {
            let rel: Vec<u8> = match path {
                Some(p) => fsx::path_bytes(p).to_vec(),
                None => {
                    let root = self.root_fd.as_fd();
                    match fsx::open_in_root(root, b"Dockerfile", OFlags::PATH) {
                        Err(rustix::io::Errno::NOENT) => b"dockerfile".to_vec(),
                        _ => b"Dockerfile".to_vec(),
                    }
                }
            };
            let shown = paths::show(&rel);
            match read_in_root(&self.root_fd, &rel, MAX_DOCKERFILE_BYTES) {
                Ok(b) => (b, shown),
                Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
                    return Err(ContextError::DockerfileNotFound { path: shown })
                }
                Err(e) => return Err(errno_err("read the Dockerfile", shown)(e)),
            }
        } else {
            let p = match path {
                Some(p) => p.to_path_buf(),
                None => default_dockerfile(&self.root),
            };
            let shown = p.display().to_string();
            let f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ContextError::DockerfileNotFound { path: shown })
                }
                Err(e) => return Err(io_err("open the Dockerfile", shown)(e)),
            };
            let b = fsx::read_limited(f, MAX_DOCKERFILE_BYTES)
                .map_err(io_err("read the Dockerfile", shown.clone()))?;
            (b, shown)
        };
        let bytes = bytes.ok_or_else(|| ContextError::DockerfileTooLarge {
            path: shown.clone(),
            limit: MAX_DOCKERFILE_BYTES,
        })?;
        String::from_utf8(bytes).map_err(|_| ContextError::DockerfileNotUtf8 { path: shown })
    }

    /// The context-relative bytes of a selected path (`""` for the root).
    fn rel_of(&self, sel: &Selected) -> Result<Vec<u8>, ContextError> {
        let rel = sel
            .path
            .strip_prefix(&self.root)
            .map_err(|_| ContextError::NotInContext {
                path: sel.path.clone(),
                root: self.root.clone(),
            })?;
        Ok(rel.as_os_str().as_bytes().to_vec())
    }

    /// Is a context-relative byte path ignored?
    fn ignored_bytes(&self, rel: &[u8]) -> bool {
        !rel.is_empty() && self.ignore.matches(&String::from_utf8_lossy(rel))
    }
}

/// `DIR/Dockerfile`, or `DIR/dockerfile` when only that one exists.
fn default_dockerfile(root: &Path) -> PathBuf {
    let upper = root.join("Dockerfile");
    let lower = root.join("dockerfile");
    if std::fs::symlink_metadata(&upper).is_err() && std::fs::symlink_metadata(&lower).is_ok() {
        lower
    } else {
        upper
    }
}

fn open_root(root: &Path) -> Result<OwnedFd, ContextError> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::NOTDIR {
            ContextError::ContextNotDir {
                path: root.to_path_buf(),
            }
        } else {
            errno_err("open the context", root.display().to_string())(e)
        }
    })
}

/// Read a regular file inside `root` (symlinks resolved inside it), at
/// most `limit` bytes (`None` beyond).
fn read_in_root(
    root: &OwnedFd,
    rel: &[u8],
    limit: u64,
) -> Result<Option<Vec<u8>>, rustix::io::Errno> {
    let fd = fsx::open_in_root(root.as_fd(), rel, OFlags::RDONLY)?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(rustix::io::Errno::NOENT);
    }
    fsx::read_limited(std::fs::File::from(fd), limit)
        .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
}

fn parse_ignore(r: impl Read, shown: &str) -> Result<IgnoreMatcher, ContextError> {
    let bytes = fsx::read_limited(r, MAX_IGNORE_FILE_BYTES)
        .map_err(io_err("read", shown.to_string()))?
        .ok_or_else(|| ContextError::IgnoreFile {
            path: shown.to_string(),
            reason: format!("larger than {MAX_IGNORE_FILE_BYTES} bytes"),
        })?;
    let text = String::from_utf8_lossy(&bytes);
    IgnoreMatcher::new(&ignore::read_patterns(&text)).map_err(|e| ContextError::IgnoreFile {
        path: shown.to_string(),
        reason: match e {
            PatternError::BareExclusion => "illegal exclusion pattern: \"!\"".into(),
            PatternError::Syntax(p) => format!("syntax error in pattern {p:?}"),
        },
    })
}

/// bzip2 and xz streams are recognised to be refused clearly.
fn unsupported_compression(head: &[u8]) -> Option<&'static str> {
    if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
        Some("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some("xz")
    } else {
        None
    }
}
