//! `barge save`: images from the store into a docker-archive or oci-archive.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufReader, BufWriter, Read, Write};

use oci_spec::image::ImageManifest;
use serde_json::json;

use super::{ArchiveError, ArchiveFormat};
use crate::layer::{self, Compression};
use crate::store::{parse_reference, Digest, Reference, Store, OCI_MANIFEST};

const BUF: usize = 1 << 20;

/// Writes `images` (references or ids, as [`Store::resolve`] takes them) as
/// one archive to `out`. An image named by reference is saved with that
/// tag; one named by id with every tag it has. Blobs shared by several
/// images are written once.
pub fn save(
    store: &Store,
    images: &[&str],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<(), ArchiveError> {
    // No GC may remove a blob while it is being copied.
    let _lock = store.lock_shared()?;
    let items = resolve_all(store, images)?;
    let mut tar = TarOut {
        w: BufWriter::with_capacity(BUF, out),
        buf: vec![0u8; BUF],
        written: HashSet::new(),
    };
    match format {
        ArchiveFormat::DockerArchive => save_docker(store, &items, &mut tar)?,
        ArchiveFormat::OciArchive => save_oci(store, &items, &mut tar)?,
    }
    tar.finish()
}

struct Item {
    manifest_digest: Digest,
    manifest: ImageManifest,
    config: Digest,
    tags: Vec<Reference>,
}

fn resolve_all(store: &Store, images: &[&str]) -> Result<Vec<Item>, ArchiveError> {
    let mut items: Vec<Item> = Vec::new();
    for s in images {
        let r = store.resolve(s)?;
        let by_ref = parse_reference(s)
            .ok()
            .filter(|p| p.tag.is_some() && r.names.contains(&p.to_string()));
        let tags: Vec<Reference> = match by_ref {
            Some(p) => vec![p],
            None => r
                .names
                .iter()
                .filter_map(|n| parse_reference(n).ok())
                .filter(|p| p.tag.is_some() && p.digest.is_none())
                .collect(),
        };
        match items
            .iter_mut()
            .find(|i| i.manifest_digest == r.manifest_digest)
        {
            Some(i) => {
                for t in tags {
                    if !i.tags.contains(&t) {
                        i.tags.push(t);
                    }
                }
            }
            None => items.push(Item {
                manifest_digest: r.manifest_digest,
                manifest: r.manifest,
                config: r.config_digest,
                tags,
            }),
        }
    }
    Ok(items)
}

fn werr(context: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Write { context, source }
}

/// A tar stream written by hand: 512-byte ustar headers, data copied in
/// large chunks, padding, two zero blocks at the end.
struct TarOut<W: Write> {
    w: BufWriter<W>,
    buf: Vec<u8>,
    written: HashSet<String>,
}

impl<W: Write> TarOut<W> {
    fn header(&mut self, path: &str, size: u64, dir: bool) -> Result<(), ArchiveError> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)
            .map_err(werr(format!("header for {path}")))?;
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        self.w
            .write_all(h.as_bytes())
            .map_err(werr(format!("header for {path}")))
    }

    fn pad(&mut self, size: u64, path: &str) -> Result<(), ArchiveError> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.w
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(werr(format!("padding of {path}")))?;
        }
        Ok(())
    }

    fn dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        if self.written.insert(path.to_string()) {
            self.header(path, 0, true)?;
        }
        Ok(())
    }

    fn bytes(&mut self, path: &str, data: &[u8]) -> Result<(), ArchiveError> {
        self.header(path, data.len() as u64, false)?;
        self.w
            .write_all(data)
            .map_err(werr(format!("data of {path}")))?;
        self.pad(data.len() as u64, path)
    }

    /// An entry of `size` bytes read from `r`, which must have exactly that many.
    fn copy(&mut self, path: &str, size: u64, mut r: impl Read) -> Result<(), ArchiveError> {
        self.header(path, size, false)?;
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match r.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(ArchiveError::Write {
                        context: format!("data of {path}"),
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the source ended {left} bytes early (changed while saving?)"),
                        ),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(werr(format!("reading the data of {path}"))(e)),
            };
            self.w
                .write_all(&self.buf[..n])
                .map_err(werr(format!("data of {path}")))?;
            left -= n as u64;
        }
        self.pad(size, path)
    }

    /// A stored blob, copied as is, once.
    fn blob(&mut self, store: &Store, path: &str, d: &Digest) -> Result<u64, ArchiveError> {
        let f = store.open_blob(d)?;
        let size = f.metadata().map_err(werr(format!("stat blob {d}")))?.len();
        if self.written.insert(path.to_string()) {
            self.copy(path, size, f)?;
        }
        Ok(size)
    }

    fn finish(mut self) -> Result<(), ArchiveError> {
        self.w
            .write_all(&[0u8; 1024])
            .map_err(werr("end of archive"))?;
        self.w.flush().map_err(werr("flush"))
    }
}

fn save_docker<W: Write>(
    store: &Store,
    items: &[Item],
    tar: &mut TarOut<W>,
) -> Result<(), ArchiveError> {
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for it in items {
        let info = store.read_config_info(&it.config)?;
        if info.rootfs.diff_ids.len() != it.manifest.layers().len() {
            return Err(ArchiveError::InvalidImage {
                image: it.manifest_digest.to_string(),
                reason: format!(
                    "{} layers but the config has {} diff_ids",
                    it.manifest.layers().len(),
                    info.rootfs.diff_ids.len()
                ),
            });
        }
        let config_path = format!("{}.json", it.config.hex());
        tar.blob(store, &config_path, &it.config)?;
        let mut layers = Vec::new();
        for (l, diff_id) in it.manifest.layers().iter().zip(&info.rootfs.diff_ids) {
            let diff_id = Digest::parse(diff_id)?;
            let ld = Digest::try_from(l.digest())?;
            let dir = diff_id.hex().to_string();
            let path = format!("{dir}/layer.tar");
            if !tar.written.contains(&path) {
                tar.dir(&format!("{dir}/"))?;
                if ld == diff_id {
                    tar.blob(store, &path, &ld)?;
                } else {
                    layer_decompressed(store, tar, &path, &ld, &diff_id)?;
                }
            }
            layers.push(path);
        }
        let tags: Vec<String> = it.tags.iter().map(Reference::familiar).collect();
        for t in &it.tags {
            if let (Some(tag), Some(top)) = (&t.tag, layers.last()) {
                let mut repo = t.clone();
                repo.tag = None;
                repositories
                    .entry(repo.familiar())
                    .or_default()
                    .insert(tag.clone(), top.trim_end_matches("/layer.tar").to_string());
            }
        }
        manifest.push(json!({"Config": config_path, "RepoTags": tags, "Layers": layers}));
    }
    let data = serde_json::to_vec(&manifest).map_err(|source| ArchiveError::InvalidJson {
        what: "manifest.json being written".into(),
        source,
    })?;
    tar.bytes("manifest.json", &data)?;
    if !repositories.is_empty() {
        let data =
            serde_json::to_vec(&repositories).map_err(|source| ArchiveError::InvalidJson {
                what: "repositories being written".into(),
                source,
            })?;
        tar.bytes("repositories", &data)?;
    }
    Ok(())
}

/// A compressed layer into a docker-archive: decompressed once to learn the
/// size and check the diff id, then again into the tar.
fn layer_decompressed<W: Write>(
    store: &Store,
    tar: &mut TarOut<W>,
    path: &str,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<(), ArchiveError> {
    use sha2::{Digest as _, Sha256};
    let open = || -> Result<(Compression, Box<dyn Read>), ArchiveError> {
        let mut f = BufReader::with_capacity(BUF, store.open_blob(blob)?);
        let kind = layer::detect(&mut f).map_err(werr(format!("read blob {blob}")))?;
        let r = layer::decompressed(f).map_err(|e| ArchiveError::InvalidImage {
            image: format!("layer {blob}"),
            reason: e.to_string(),
        })?;
        Ok((kind, r))
    };
    let (kind, mut r) = open()?;
    if kind == Compression::None {
        return Err(ArchiveError::DigestMismatch {
            what: format!("stored layer {blob} (an uncompressed layer must equal its diff_id)"),
            expected: diff_id.clone(),
            actual: blob.clone(),
        });
    }
    let mut h = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut tar.buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(werr(format!("decompressing layer {blob}"))(e)),
        };
        h.update(&tar.buf[..n]);
        size += n as u64;
    }
    let actual = Digest::from_hex(&hex::encode(h.finalize()))?;
    if actual != *diff_id {
        return Err(ArchiveError::DigestMismatch {
            what: format!("layer {blob} decompressed (its config's diff_id)"),
            expected: diff_id.clone(),
            actual,
        });
    }
    let (_, r) = open()?;
    tar.written.insert(path.to_string());
    tar.copy(path, size, r)
}

fn save_oci<W: Write>(
    store: &Store,
    items: &[Item],
    tar: &mut TarOut<W>,
) -> Result<(), ArchiveError> {
    tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    let mut index = Vec::new();
    for it in items {
        for l in it.manifest.layers() {
            let d = Digest::try_from(l.digest())?;
            let size = tar.blob(store, &format!("blobs/sha256/{}", d.hex()), &d)?;
            if size != l.size() {
                return Err(ArchiveError::InvalidImage {
                    image: it.manifest_digest.to_string(),
                    reason: format!(
                        "layer {d} is {size} bytes in the store but {} in the manifest",
                        l.size()
                    ),
                });
            }
        }
        let c = &it.config;
        tar.blob(store, &format!("blobs/sha256/{}", c.hex()), c)?;
        let md = &it.manifest_digest;
        let size = tar.blob(store, &format!("blobs/sha256/{}", md.hex()), md)?;
        let mt = it
            .manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        let desc = |ann: Option<serde_json::Value>| {
            let mut d = json!({"mediaType": mt, "digest": md, "size": size});
            if let (Some(a), Some(o)) = (ann, d.as_object_mut()) {
                o.insert("annotations".into(), a);
            }
            d
        };
        if it.tags.is_empty() {
            index.push(desc(None));
        }
        for t in &it.tags {
            let full = t.to_string();
            index.push(desc(Some(json!({
                "org.opencontainers.image.ref.name": full,
                "io.containerd.image.name": full,
            }))));
        }
    }
    let idx = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index,
    });
    let data = serde_json::to_vec(&idx).map_err(|source| ArchiveError::InvalidJson {
        what: "index.json being written".into(),
        source,
    })?;
    tar.bytes("index.json", &data)
}
