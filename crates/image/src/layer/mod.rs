//! Layers: the tar changesets images are made of (OCI image-spec `layer.md`).
//!
//! This module owns everything between a layer blob and a directory:
//!
//! * [`detect`] / [`decompressed`]: gzip, zstd or plain tar, told apart by
//!   magic bytes only (never by a file name or media type);
//! * [`apply`]: unpack an untrusted layer into a directory as root, with
//!   every path resolved inside the target (`openat2(RESOLVE_IN_ROOT)`),
//!   whiteouts either applied (flattening) or turned into overlayfs
//!   whiteouts (a layer directory used as an overlay lower), limits against
//!   bombs, and the layer's `diff_id` hashed while streaming;
//! * [`diff_upper`]: an overlayfs upper directory back into a layer with OCI
//!   whiteouts; [`tar_dir`]: a whole directory as one layer.
//!
//! All file-system calls are fd-relative (`*at` through rustix); nothing
//! here follows a symlink that came from a layer outside the target.

mod apply;
mod fsx;
mod write;

#[cfg(test)]
mod tests;

use std::io::{self, BufRead, Read};
use std::path::PathBuf;

pub use apply::apply;
pub use write::{diff_upper, tar_dir};

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (magic `1f 8b`), possibly multi-member.
    Gzip,
    /// zstd (magic `28 b5 2f fd`), possibly multi-frame.
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Compression told by the first bytes of a stream.
pub fn detect_bytes(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Detect the compression of a buffered stream by its magic bytes, without
/// consuming anything.
pub fn detect(mut reader: impl BufRead) -> io::Result<Compression> {
    Ok(detect_bytes(reader.fill_buf()?))
}

/// A reader that decompresses whatever it is given (gzip, zstd or plain,
/// detected by magic bytes), streaming.
pub fn decompressed(reader: impl Read + 'static) -> Result<Box<dyn Read>, LayerError> {
    decompress_any(reader).map(|(_, r)| r)
}

/// Peek at the first bytes of `reader` and wrap it in the matching decoder.
pub(crate) fn decompress_any<'a, R: Read + 'a>(
    mut reader: R,
) -> Result<(Compression, Box<dyn Read + 'a>), LayerError> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match reader.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(LayerError::Read {
                    context: "at the start of the layer".into(),
                    source,
                });
            }
        }
    }
    let kind = detect_bytes(&magic[..n]);
    let chained = io::Cursor::new(magic).take(n as u64).chain(reader);
    let out: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(chained),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        Compression::Zstd => {
            Box::new(
                zstd::Decoder::new(chained).map_err(|source| LayerError::Read {
                    context: "starting the zstd decoder".into(),
                    source,
                })?,
            )
        }
    };
    Ok((kind, out))
}

/// What to do with whiteouts (`.wh.NAME`, `.wh..wh..opq`) while applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Delete the lower files in the target (flattening layers into one dir).
    Apply,
    /// Leave overlayfs whiteouts (a 0:0 char device for `.wh.NAME`, the
    /// `trusted.overlay.opaque=y` xattr, `user.overlay.opaque` when
    /// unprivileged, for an opaque dir) so the directory can be a lower layer.
    OverlayFs,
}

/// How [`apply`] treats a layer.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Running without privileges: no chown, no device nodes (rejected, or
    /// skipped with `skip_devices`), xattrs that need privileges are
    /// skipped, directories stay writable by the owner until the end.
    pub unprivileged: bool,
    /// With `unprivileged`: skip char/block device entries instead of failing.
    pub skip_devices: bool,
    /// Refuse a layer with more entries than this.
    pub max_entries: u64,
    /// Refuse a layer whose entries' contents add up to more than this.
    pub max_total_bytes: u64,
    /// Apply whiteouts, or turn them into overlayfs whiteouts.
    pub whiteouts: WhiteoutMode,
    /// Ignore xattrs the target file system refuses (EPERM, ENOTSUP).
    pub best_effort_xattrs: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            unprivileged: false,
            skip_devices: false,
            max_entries: 4_000_000,
            max_total_bytes: 64 << 30,
            whiteouts: WhiteoutMode::Apply,
            best_effort_xattrs: false,
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries read (whiteouts included).
    pub entries: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// Compression the blob had.
    pub compression: Compression,
}

/// What [`diff_upper`] and [`tar_dir`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// `sha256:<hex>` of the tar stream written.
    pub diff_id: String,
    /// Bytes written.
    pub size: u64,
}

/// Why a layer could not be applied or written. Entry paths are shown as
/// they appear in the tar.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The stream could not be read: corrupt, truncated, not a tar.
    #[error("reading the layer stream {context}: {source}")]
    Read {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A tar header field could not be parsed.
    #[error("entry '{path}': bad tar header: {source}")]
    Header {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A path that would leave the target or is otherwise refused.
    #[error("entry '{path}': unsafe path: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// A hardlink whose target is refused or missing.
    #[error("entry '{path}': hardlink to '{target}': {reason}")]
    Hardlink {
        path: String,
        target: String,
        reason: String,
    },
    /// A malformed whiteout.
    #[error("entry '{path}': invalid whiteout: {reason}")]
    Whiteout { path: String, reason: &'static str },
    /// A device node in an unprivileged apply.
    #[error(
        "entry '{path}': device nodes are not allowed in an unprivileged apply (set skip_devices to skip them)"
    )]
    DeviceNotAllowed { path: String },
    /// A tar entry type this module does not unpack.
    #[error("entry '{path}': unsupported tar entry type {kind:?}")]
    Unsupported { path: String, kind: char },
    /// More entries than `max_entries`.
    #[error("layer exceeds {limit} entries")]
    TooManyEntries { limit: u64 },
    /// An entry larger than what is left of `max_total_bytes`.
    #[error(
        "entry '{path}' declares {size} bytes, beyond the remaining budget of {remaining} bytes (layer limit {limit} bytes)"
    )]
    TooLarge {
        path: String,
        size: u64,
        remaining: u64,
        limit: u64,
    },
    /// A parent of an entry exists and is not a directory.
    #[error(
        "entry '{path}': parent '{parent}' is not a directory (nor a symlink to one inside the target)"
    )]
    NotADirectory { path: String, parent: String },
    /// The target directory could not be opened.
    #[error("opening the target directory {path}: {source}")]
    Target {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file-system operation on an entry failed.
    #[error("{op} '{path}': {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being archived.
    #[error("file '{path}' changed while being archived (expected {expected} bytes)")]
    Changed { path: String, expected: u64 },
    /// Writing the tar stream failed.
    #[error("writing the layer tar: {0}")]
    Write(#[source] io::Error),
}

/// A tar path for messages.
pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}
