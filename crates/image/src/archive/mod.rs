//! Image archives: `barge save` and `barge load`.
//!
//! This module owns the two tarball formats images travel in outside a
//! registry, in both directions between an archive and the [`Store`]:
//!
//! * **docker-archive** (what `docker save` / `podman save` write and
//!   `docker load` / `podman load` read): `manifest.json`
//!   (`[{"Config": "<hex>.json", "RepoTags": [...], "Layers": [...]}]`),
//!   `repositories`, the config JSON and one *uncompressed* layer tar per
//!   layer whose sha256 is the config's `rootfs.diff_ids` entry. Legacy
//!   `<id>/json` and `<id>/VERSION` files are ignored on load and not written.
//!   Docker 25+ archives (an OCI layout plus `manifest.json`) load through
//!   `manifest.json`.
//! * **oci-archive**: a tar of an OCI image layout (`oci-layout`,
//!   `index.json` whose entries carry `org.opencontainers.image.ref.name`,
//!   `blobs/sha256/<hex>`).
//!
//! Loading streams: every file of the archive goes straight through
//! [`Store::write_blob`] (verified against its name when the name is a
//! digest, keyed by its own sha256 otherwise), because tar entries come in
//! any order and `manifest.json` may be the last one. Only `manifest.json`,
//! `index.json`, `oci-layout` and `repositories` (each at most 4 MiB) are
//! held in memory. Once the stream is read, every image is checked (all
//! blobs present, digests and diff ids right, media types known) and only
//! then is anything tagged; a failed load tags nothing. The whole archive
//! may be gzip- or zstd-compressed (told by magic bytes).
//!
//! Saving copies blob files straight into the tar with a header of their
//! size; only compressed layers going into a docker-archive are
//! decompressed (twice: once to learn the size and check the diff id, once
//! into the tar), so nothing is staged on disk or held in memory.

mod load;
mod save;
#[cfg(test)]
mod tests;

use std::io;

use crate::store::{Digest, StoreError};

pub use load::{load, load_file};
pub use save::save;

/// The archive formats `save` writes and `load` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` format: `manifest.json`, config JSON, uncompressed layer tars.
    DockerArchive,
    /// A tar of an OCI image layout.
    OciArchive,
}

/// What [`load`] added to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// One entry per image: its normalised references (empty for an
    /// untagged image, which is listed as `<none>`)
    /// and its image id (config digest).
    pub images: Vec<(Vec<String>, Digest)>,
}

/// Largest `manifest.json`, `index.json`, `oci-layout`, `repositories`,
/// image manifest or config read from an archive.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;

/// Why an archive could not be saved or loaded. Each message names the
/// archive (or "the input"), the entry or digest concerned, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The input does not start with a tar header.
    #[error("{name} is not a tar archive ({detail})")]
    NotTar {
        /// The archive.
        name: String,
        /// What was found instead.
        detail: String,
    },
    /// The (compressed) stream ends before the archive does.
    #[error("{name}: truncated {stream} stream ({detail})")]
    Truncated {
        /// The archive.
        name: String,
        /// `gzip`, `zstd` or `tar`.
        stream: &'static str,
        /// Where it was noticed.
        detail: String,
    },
    /// The compressed stream is damaged.
    #[error("{name}: corrupt {stream} stream: {source}")]
    Corrupt {
        /// The archive.
        name: String,
        /// `gzip`, `zstd` or `tar`.
        stream: &'static str,
        /// The decoder's or tar reader's error.
        #[source]
        source: io::Error,
    },
    /// Reading the input failed.
    #[error("reading {name}: {source}")]
    Read {
        /// The archive.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing the archive failed.
    #[error("writing the archive ({context}): {source}")]
    Write {
        /// What was being written.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An entry name or link target that is absolute or leaves the archive root.
    #[error("{name}: refusing entry {path:?}: {reason}")]
    UnsafePath {
        /// The archive.
        name: String,
        /// The entry name (or the name found in a JSON file).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Neither `manifest.json` nor `index.json` was found.
    #[error(
        "{name} is neither a docker-archive (no manifest.json) nor an oci-archive (no index.json)"
    )]
    UnknownFormat {
        /// The archive.
        name: String,
    },
    /// A metadata file or blob is larger than the limit.
    #[error("{what} is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge {
        /// The file or blob.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A JSON file does not parse.
    #[error("{what} is not valid: {source}")]
    InvalidJson {
        /// The file or blob.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A file named by `manifest.json` is missing.
    #[error("manifest.json lists {kind} {path} which is not in the archive")]
    MissingEntry {
        /// `layer` or `config`.
        kind: &'static str,
        /// The path as listed.
        path: String,
    },
    /// A blob referenced by `index.json` or a manifest is missing.
    #[error("{referrer} references {kind} {digest} which is not in the archive")]
    MissingBlob {
        /// Who references it (`index.json`, `manifest sha256:...`).
        referrer: String,
        /// `manifest`, `config`, `layer`.
        kind: &'static str,
        /// The missing blob.
        digest: Digest,
    },
    /// Content whose sha256 is not the digest it is named or listed by.
    #[error("digest mismatch for {what}: expected {expected}, the content hashes to {actual}")]
    DigestMismatch {
        /// `blob sha256:...`, `layer abc/layer.tar`.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A media type this module does not load.
    #[error("unknown media type {media_type:?} for the {kind} {digest} in {referrer}")]
    UnknownMediaType {
        /// The media type.
        media_type: String,
        /// `manifest`, `config`, `layer`.
        kind: &'static str,
        /// The descriptor's digest.
        digest: String,
        /// Where the descriptor is.
        referrer: String,
    },
    /// An image that is inconsistent in itself.
    #[error("invalid image {image}: {reason}")]
    InvalidImage {
        /// The image (config path, manifest digest or reference).
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A tag in the archive is not a valid reference.
    #[error("invalid tag {tag:?} in {file}: {source}")]
    BadTag {
        /// The tag.
        tag: String,
        /// `manifest.json` or `index.json`.
        file: &'static str,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Normalises an archive path: `./a//b` → `a/b`. Rejects absolute paths,
/// `..`, NUL and non-UTF-8. Returns `""` for the root.
pub(crate) fn clean_path(raw: &[u8]) -> Result<String, &'static str> {
    let s = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8")?;
    if s.starts_with('/') {
        return Err("absolute path");
    }
    if s.contains('\0') {
        return Err("NUL in the name");
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("'..' in the path"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a symlink target `target` found at `link` (both archive paths)
/// to an archive path; `..` is allowed while it stays inside the archive.
pub(crate) fn resolve_link(link: &str, target: &[u8]) -> Result<String, &'static str> {
    let t = std::str::from_utf8(target).map_err(|_| "the link target is not UTF-8")?;
    if t.starts_with('/') {
        return Err("absolute link target");
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in t.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("link target leaves the archive");
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Layer media types a loaded image may use.
pub(crate) const LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// The media type of an uncompressed OCI layer.
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// True for layer media types whose blob is a plain tar (digest = diff id).
pub(crate) fn is_uncompressed_layer(mt: &str) -> bool {
    mt.ends_with(".tar")
}
