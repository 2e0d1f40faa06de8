//! Layer compression for `push`: local layers are usually stored
//! uncompressed (builds, commits, imports), and Docker and podman send them
//! to registries gzip-compressed. The compressed blob is written into the
//! store (so the next push of the same layer reuses it) and remembered in
//! `distribution/compressed.json` (`<uncompressed digest>+<format>` →
//! compressed digest); the manifest pushed is a copy of the local one with
//! the compressed layers. The config, and so the image id, is unchanged.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer::{self, Compression};
use crate::store::{Digest, Store, MAX_MANIFEST_BYTES};

use super::{short_id, sources, ClientOptions, DistError, ProgressEvent};

/// How `push` sends layers stored uncompressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PushCompression {
    /// gzip, as Docker and podman push (the default).
    #[default]
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`; needs a recent
    /// client to pull).
    Zstd,
    /// Layers as stored: no compression.
    None,
}

impl std::str::FromStr for PushCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gzip" => Ok(PushCompression::Gzip),
            "zstd" => Ok(PushCompression::Zstd),
            "none" | "uncompressed" => Ok(PushCompression::None),
            other => Err(format!(
                "unknown compression {other:?}: use gzip, zstd or none"
            )),
        }
    }
}

impl PushCompression {
    fn name(self) -> &'static str {
        match self {
            PushCompression::Gzip => "gzip",
            PushCompression::Zstd => "zstd",
            PushCompression::None => "none",
        }
    }
}

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A compressed layer: (its index in the manifest, the blob, whether it was
/// made now rather than found in the cache).
type Done = (usize, Entry, bool);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    digest: Digest,
    size: u64,
}

fn read_map(store: &Store) -> BTreeMap<String, Entry> {
    sources::read_map(store, "compressed.json")
}

fn record(store: &Store, new: &[(String, Entry)]) -> Result<(), DistError> {
    if new.is_empty() {
        return Ok(());
    }
    sources::update_map(
        store,
        "compressed.json",
        |all: &mut BTreeMap<String, Entry>| {
            // Forget entries whose compressed blob was collected since.
            all.retain(|_, e| store.has_blob(&e.digest));
            for (k, e) in new {
                all.insert(k.clone(), e.clone());
            }
        },
    )
}

/// Compresses `src` (an uncompressed layer blob) into a new blob.
fn compress_blob(store: &Store, src: &Digest, format: PushCompression) -> Result<Entry, DistError> {
    let mut input = io::BufReader::with_capacity(1 << 20, store.open_blob(src)?);
    let mut out = store.begin_blob()?;
    let copy_err = |e: io::Error| DistError::Io {
        what: format!("compress layer {src}"),
        path: store.blob_path(src),
        source: e,
    };
    match format {
        PushCompression::Gzip => {
            // Level 3: most of level 6's ratio at twice its speed.
            let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(3));
            io::copy(&mut input, &mut enc).map_err(copy_err)?;
            enc.finish().map_err(copy_err)?;
        }
        PushCompression::Zstd => {
            let mut enc = zstd::Encoder::new(&mut out, 3).map_err(copy_err)?;
            io::copy(&mut input, &mut enc).map_err(copy_err)?;
            enc.finish().map_err(copy_err)?;
        }
        PushCompression::None => {
            return Err(DistError::Other("compress_blob called with none".into()));
        }
    }
    out.flush().map_err(copy_err)?;
    let (digest, size) = (out.digest(), out.size());
    out.commit(&digest, size)?;
    Ok(Entry { digest, size })
}

/// True when the blob really is an uncompressed tar (media types lie).
fn is_plain_tar(store: &Store, d: &Digest) -> Result<bool, DistError> {
    let mut head = [0u8; 8];
    let mut f = store.open_blob(d)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(DistError::Io {
                    what: "read".into(),
                    path: store.blob_path(d),
                    source: e,
                })
            }
        }
    }
    Ok(layer::detect_bytes(&head[..n]) == Compression::None)
}

/// The manifest to push for the image manifest `digest`: the same one when
/// no layer needs compressing (or `format` is none), else a copy with the
/// uncompressed layers replaced by compressed blobs, written to the store.
/// Returns the manifest's digest.
pub(super) fn manifest_for_push(
    store: &Store,
    digest: &Digest,
    format: PushCompression,
    opts: &ClientOptions,
) -> Result<Digest, DistError> {
    if format == PushCompression::None {
        return Ok(digest.clone());
    }
    let data = store.read_blob_limited(digest, MAX_MANIFEST_BYTES, "manifest")?;
    let mut m: Value = serde_json::from_slice(&data)
        .map_err(|e| DistError::Other(format!("manifest {digest} is not valid JSON: {e}")))?;
    let docker = m.get("mediaType").and_then(Value::as_str) == Some(DOCKER_MANIFEST);
    if docker && format == PushCompression::Zstd {
        return Err(DistError::Other(format!(
            "image manifest {digest} is a Docker schema2 manifest, which has no zstd layer type: push with --compression-format gzip or none"
        )));
    }
    let Some(layers) = m.get_mut("layers").and_then(Value::as_array_mut) else {
        return Ok(digest.clone());
    };
    // The layers to compress: (index, digest).
    let mut todo: Vec<(usize, Digest)> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let mt = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
        if mt != OCI_TAR && mt != DOCKER_TAR {
            continue;
        }
        let Some(d) = l.get("digest").and_then(Value::as_str) else {
            continue;
        };
        let d = Digest::parse(d)?;
        if is_plain_tar(store, &d)? {
            todo.push((i, d));
        }
    }
    if todo.is_empty() {
        return Ok(digest.clone());
    }
    let known = read_map(store);
    let key = |d: &Digest| format!("{d}+{}", format.name());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, todo.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<Done>, DistError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((i, d)) = todo.get(k) else {
                            return Ok(done);
                        };
                        if let Some(e) = known.get(&key(d)).filter(|e| store.has_blob(&e.digest)) {
                            done.push((*i, e.clone(), false));
                            continue;
                        }
                        opts.emit(ProgressEvent::Waiting {
                            id: short_id(d),
                            size: store.blob_size(d).unwrap_or(0),
                        });
                        done.push((*i, compress_blob(store, d, format)?, true));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(DistError::Other("a compression thread panicked".into()))
                })
            })
            .collect()
    });
    let mut new_entries = Vec::new();
    for r in results {
        for (i, e, fresh) in r? {
            let (_, src) = todo.iter().find(|(j, _)| *j == i).ok_or_else(|| {
                DistError::Other("compressed a layer that was not asked for".into())
            })?;
            if fresh {
                new_entries.push((key(src), e.clone()));
            }
            let mt = match (format, docker) {
                (PushCompression::Zstd, _) => "application/vnd.oci.image.layer.v1.tar+zstd",
                (_, true) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                (_, false) => "application/vnd.oci.image.layer.v1.tar+gzip",
            };
            if let Some(l) = layers.get_mut(i).and_then(Value::as_object_mut) {
                l.insert("mediaType".into(), Value::String(mt.into()));
                l.insert("digest".into(), Value::String(e.digest.to_string()));
                l.insert("size".into(), Value::from(e.size));
            }
        }
    }
    record(store, &new_entries)?;
    let out = serde_json::to_vec(&m).map_err(|e| DistError::Other(e.to_string()))?;
    Ok(store.write_blob_bytes(&out)?.digest)
}
