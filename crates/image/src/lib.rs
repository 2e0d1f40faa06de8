//! barge-image: Barge's image store.
//!
//! A sha256 content store that is itself a valid OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/`), layers applied into
//! directories shared by overlayfs, and the archive formats images travel in
//! (docker-archive, oci-archive). No `unsafe` here: file-system calls that
//! std lacks (mknod, xattrs, lchown, utimensat) go through rustix.

#![forbid(unsafe_code)]

pub mod archive;
pub mod distribution;
pub mod import;
pub mod layer;
pub mod snapshot;
pub mod store;
