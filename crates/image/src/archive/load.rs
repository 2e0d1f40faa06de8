//! `barge load`: a docker-archive or oci-archive into the store.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use oci_spec::image::{Descriptor, MediaType};
use serde::Deserialize;
use serde_json::json;

use super::{
    clean_path, is_uncompressed_layer, resolve_link, ArchiveError, LoadReport, LAYER_MEDIA_TYPES,
    MAX_METADATA_BYTES, OCI_LAYER_TAR,
};
use crate::layer::{self, Compression};
use crate::store::LayerIngest;
use crate::store::{
    is_config_media_type, is_index_media_type, is_manifest_media_type, parse_any_manifest,
    parse_reference, AnyManifest, BlobInfo, ConfigInfo, Digest, Platform, Store, StoreError,
    OCI_CONFIG, OCI_MANIFEST,
};

const READ_BUF: usize = 128 << 10;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Reads an archive (docker-archive or oci-archive; plain, gzip or zstd)
/// from `input` and adds its images to the store, tagged as in the archive.
/// `progress` gets one line per blob copied and per image loaded.
pub fn load(
    store: &Store,
    input: impl Read,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, ArchiveError> {
    load_named(store, "the input", input, progress)
}

/// [`load`] from a file; error messages name the file.
pub fn load_file(
    store: &Store,
    path: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, ArchiveError> {
    let name = path.display().to_string();
    let f = File::open(path).map_err(|source| ArchiveError::Read {
        name: name.clone(),
        source,
    })?;
    load_named(store, &name, f, progress)
}

/// The decompressed input; remembers whether the input or decoder failed,
/// so a tar error can be told from a stream error.
struct Source<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// A tar entry's data, which must be exactly `remaining` bytes: an early
/// end is an `UnexpectedEof` error, remembered in `short`.
struct Exact<R> {
    inner: R,
    remaining: u64,
    short: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            self.short = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// What an archive path stands for.
#[derive(Clone, Debug)]
enum Staged {
    Blob(BlobInfo),
    Link(String),
}

struct Loader<'a> {
    store: &'a Store,
    name: String,
    stream: &'static str,
    source_failed: Rc<Cell<bool>>,
    /// Regular files and links by cleaned path.
    files: HashMap<String, Staged>,
    /// Digests of every blob written from this archive.
    staged: HashSet<Digest>,
    /// `manifest.json`, `index.json`, `oci-layout`, `repositories`.
    meta: HashMap<String, Vec<u8>>,
    /// Big blobs unpacked while they were being stored (they are probably
    /// layers): diff id → unpacked directory, committed under its chain id
    /// once the image configs are known.
    unpacked: HashMap<String, LayerIngest>,
}

/// Blobs at least this big are unpacked as they stream in, in case they are
/// layers (a layer directory does not depend on the layers below it when
/// whiteouts are kept as overlayfs whiteouts).
const UNPACK_WHILE_STORING: u64 = 1 << 20;

/// Passes what is read on to an unpacking thread.
struct Tee<'r, R> {
    inner: &'r mut R,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(tx) = &self.tx {
                if tx.send(buf[..n].to_vec()).is_err() {
                    self.tx = None; // the unpacker gave up
                }
            }
        }
        Ok(n)
    }
}

/// The unpacking thread's input.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpack a streamed blob as a layer; `None` if it is not one (or fails:
/// the layer is then unpacked the ordinary way later).
fn unpack_streamed(
    store: &Store,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
) -> Option<(String, LayerIngest)> {
    let mut input = ChunkReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    };
    // The placeholder name is replaced by the chain id at commit.
    let ingest = store
        .begin_layer(&format!("sha256:{}", "0".repeat(64)))
        .ok();
    let result = ingest.as_ref().map(|ing| {
        let opts = layer::ApplyOptions {
            whiteouts: layer::WhiteoutMode::OverlayFs,
            ..layer::ApplyOptions::default()
        };
        layer::apply(&mut input, &ing.diff_path(), &opts)
    });
    // Never leave the storing side blocked on a full channel.
    let mut sink = [0u8; 64 << 10];
    while matches!(input.read(&mut sink), Ok(n) if n > 0) {}
    match (ingest, result) {
        (Some(ing), Some(Ok(stats))) => Some((stats.diff_id, ing)),
        _ => None,
    }
}

/// One image ready to be tagged.
struct Ready {
    tags: Vec<String>,
    id: Digest,
    target: Descriptor,
}

fn stream_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn human(n: u64) -> String {
    const U: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn load_named(
    store: &Store,
    name: &str,
    input: impl Read,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, ArchiveError> {
    // Blobs are written, then tagged: no GC in between.
    let _lock = store.lock_shared()?;
    let mut raw = BufReader::with_capacity(READ_BUF, input);
    let head = raw.fill_buf().map_err(|source| ArchiveError::Read {
        name: name.to_string(),
        source,
    })?;
    if head.is_empty() {
        return Err(ArchiveError::NotTar {
            name: name.to_string(),
            detail: "it is empty".into(),
        });
    }
    let compression = layer::detect_bytes(head);
    let decoded: Box<dyn Read + '_> =
        match compression {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(zstd::Decoder::with_buffer(raw).map_err(|source| {
                ArchiveError::Corrupt {
                    name: name.to_string(),
                    stream: "zstd",
                    source,
                }
            })?),
        };
    let failed = Rc::new(Cell::new(false));
    let source = Source {
        inner: decoded,
        failed: failed.clone(),
    };
    let mut loader = Loader {
        store,
        name: name.to_string(),
        stream: stream_name(compression),
        source_failed: failed,
        files: HashMap::new(),
        staged: HashSet::new(),
        meta: HashMap::new(),
        unpacked: HashMap::new(),
    };
    let rest = loader.read_entries(BufReader::with_capacity(READ_BUF, source), progress)?;
    loader.drain(rest)?;
    let ready = if loader.meta.contains_key("manifest.json") {
        loader.docker_images()?
    } else if loader.meta.contains_key("index.json") {
        loader.oci_images()?
    } else {
        return Err(ArchiveError::UnknownFormat {
            name: name.to_string(),
        });
    };
    // Every image is complete: now tag.
    let mut report = LoadReport { images: Vec::new() };
    for r in ready {
        if r.tags.is_empty() {
            // Listed as <none>:<none>, as docker shows an untagged load.
            store.add_untagged(r.target.clone())?;
            progress(&format!("Loaded image ID: {}", r.id));
        }
        for t in &r.tags {
            store.tag(t, r.target.clone())?;
            progress(&format!("Loaded image: {t}"));
        }
        report.images.push((r.tags, r.id));
    }
    // Layers unpacked while streaming take their place under their chain
    // ids; any other layer is unpacked when the image is first used.
    for (_, id) in &report.images {
        let Ok(info) = store.read_config_info(id) else {
            continue;
        };
        let Ok(chains) = info.chain_ids() else {
            continue;
        };
        for (diff_id, chain) in info.rootfs.diff_ids.iter().zip(chains) {
            if store.has_layer(&chain) {
                continue;
            }
            if let Some(ingest) = loader.unpacked.remove(diff_id) {
                let _ = store.commit_layer_as(ingest, &chain);
            }
        }
    }
    Ok(report)
}

impl Loader<'_> {
    /// The error for a failed read of the archive stream.
    fn stream_error(&self, e: io::Error, short: bool, at: &str) -> ArchiveError {
        if self.source_failed.get() || short {
            if e.kind() == io::ErrorKind::UnexpectedEof || short {
                return ArchiveError::Truncated {
                    name: self.name.clone(),
                    stream: self.stream,
                    detail: format!("{at}: {e}"),
                };
            }
            if self.stream == "tar" {
                return ArchiveError::Read {
                    name: self.name.clone(),
                    source: e,
                };
            }
        }
        ArchiveError::Corrupt {
            name: self.name.clone(),
            stream: if self.source_failed.get() {
                self.stream
            } else {
                "tar"
            },
            source: e,
        }
    }

    fn unsafe_path(&self, path: &[u8], reason: &'static str) -> ArchiveError {
        ArchiveError::UnsafePath {
            name: self.name.clone(),
            path: String::from_utf8_lossy(path).into_owned(),
            reason,
        }
    }

    /// Streams every entry into the store; returns the reader positioned
    /// after the end-of-archive marker.
    fn read_entries<R: Read>(
        &mut self,
        reader: R,
        progress: &mut dyn FnMut(&str),
    ) -> Result<R, ArchiveError> {
        let mut archive = tar::Archive::new(reader);
        let mut first = true;
        {
            let entries = archive
                .entries()
                .map_err(|e| self.stream_error(e, false, "at the start"))?;
            for entry in entries {
                let mut entry = match entry {
                    Ok(e) => e,
                    Err(_) if first && !self.source_failed.get() => {
                        return Err(ArchiveError::NotTar {
                            name: self.name.clone(),
                            detail: "no valid tar header at the start".into(),
                        })
                    }
                    Err(e) => return Err(self.stream_error(e, false, "reading a tar header")),
                };
                first = false;
                let raw_path = entry.path_bytes().into_owned();
                let path = clean_path(&raw_path).map_err(|r| self.unsafe_path(&raw_path, r))?;
                let kind = entry.header().entry_type();
                if kind.is_symlink() || kind.is_hard_link() {
                    let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                        continue;
                    };
                    let to = if kind.is_symlink() {
                        resolve_link(&path, &target)
                    } else {
                        clean_path(&target)
                    }
                    .map_err(|r| self.unsafe_path(&raw_path, r))?;
                    self.files.insert(path, Staged::Link(to));
                    continue;
                }
                if !(kind.is_file() || kind.is_contiguous()) || path.is_empty() {
                    continue; // directories, pax globals, devices: nothing to load
                }
                let size = entry.size();
                if is_legacy(&path) {
                    continue; // `<id>/json`, `<id>/VERSION`: unread data is skipped by tar
                }
                let mut data = Exact {
                    inner: &mut entry,
                    remaining: size,
                    short: false,
                };
                if matches!(
                    path.as_str(),
                    "manifest.json" | "index.json" | "oci-layout" | "repositories"
                ) {
                    if size > MAX_METADATA_BYTES {
                        return Err(ArchiveError::TooLarge {
                            what: format!("{path} in {}", self.name),
                            size,
                            limit: MAX_METADATA_BYTES,
                        });
                    }
                    let mut buf = Vec::with_capacity(size as usize);
                    if let Err(e) = data.read_to_end(&mut buf) {
                        return Err(self.stream_error(e, data.short, &format!("in {path}")));
                    }
                    self.meta.insert(path, buf);
                    continue;
                }
                let expected = blob_digest_of_path(&path);
                let store = self.store;
                let (written, streamed) = if size >= UNPACK_WHILE_STORING
                    && !expected.as_ref().is_some_and(|d| store.has_blob(d))
                {
                    std::thread::scope(|scope| {
                        let (tx, rx) = std::sync::mpsc::sync_channel(64);
                        let unpacker = scope.spawn(move || unpack_streamed(store, rx));
                        let mut tee = Tee {
                            inner: &mut data,
                            tx: Some(tx),
                        };
                        let written = store.write_blob(&mut tee, expected.as_ref(), Some(size));
                        drop(tee);
                        (written, unpacker.join().ok().flatten())
                    })
                } else {
                    (
                        store.write_blob(&mut data, expected.as_ref(), Some(size)),
                        None,
                    )
                };
                if let Some((diff_id, ingest)) = streamed {
                    if written.is_ok() {
                        self.unpacked.entry(diff_id).or_insert(ingest);
                    }
                }
                let info = match written {
                    Ok(i) => i,
                    Err(e) => {
                        if data.short || self.source_failed.get() {
                            let io = match e {
                                StoreError::Io { source, .. } => source,
                                other => io::Error::other(other.to_string()),
                            };
                            return Err(self.stream_error(io, data.short, &format!("in {path}")));
                        }
                        return Err(match e {
                            StoreError::DigestMismatch { expected, actual } => {
                                ArchiveError::DigestMismatch {
                                    what: format!("blob {expected} ({path})"),
                                    expected,
                                    actual,
                                }
                            }
                            e => e.into(),
                        });
                    }
                };
                progress(&format!(
                    "Copied blob {} ({})",
                    &info.digest.to_string()[..19],
                    human(info.size)
                ));
                self.staged.insert(info.digest.clone());
                self.files.insert(path, Staged::Blob(info));
            }
        }
        Ok(archive.into_inner())
    }

    /// Reads the stream to its end so a compressed archive's trailer
    /// (checksum, length) is verified.
    fn drain(&self, mut rest: impl Read) -> Result<(), ArchiveError> {
        let mut buf = vec![0u8; READ_BUF];
        loop {
            match rest.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e, false, "after the last entry")),
            }
        }
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, file: &str) -> Result<T, ArchiveError> {
        let data = self.meta.get(file).map(Vec::as_slice).unwrap_or_default();
        serde_json::from_slice(data).map_err(|source| ArchiveError::InvalidJson {
            what: format!("{file} in {}", self.name),
            source,
        })
    }

    /// The blob an archive path names, following links.
    fn lookup(&self, path: &str) -> Option<&BlobInfo> {
        let mut p = path.to_string();
        for _ in 0..32 {
            match self.files.get(&p)? {
                Staged::Blob(b) => return Some(b),
                Staged::Link(t) => p = t.clone(),
            }
        }
        None
    }

    fn present(&self, d: &Digest) -> bool {
        self.staged.contains(d) || self.store.has_blob(d)
    }

    fn read_config(&self, info: &BlobInfo, what: &str) -> Result<ConfigInfo, ArchiveError> {
        if info.size > MAX_METADATA_BYTES {
            return Err(ArchiveError::TooLarge {
                what: format!("image config {what}"),
                size: info.size,
                limit: MAX_METADATA_BYTES,
            });
        }
        Ok(self.store.read_config_info(&info.digest)?)
    }

    // ------------------------------------------------------------ docker-archive

    fn docker_images(&self) -> Result<Vec<Ready>, ArchiveError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "RepoTags", default)]
            repo_tags: Option<Vec<String>>,
            #[serde(rename = "Layers", default)]
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = self.json("manifest.json")?;
        let mut out = Vec::new();
        for e in entries {
            let find = |kind: &'static str, raw: &str| -> Result<BlobInfo, ArchiveError> {
                let p =
                    clean_path(raw.as_bytes()).map_err(|r| self.unsafe_path(raw.as_bytes(), r))?;
                self.lookup(&p)
                    .cloned()
                    .ok_or_else(|| ArchiveError::MissingEntry {
                        kind,
                        path: raw.to_string(),
                    })
            };
            let cfg = find("config", &e.config)?;
            let info = self.read_config(&cfg, &e.config)?;
            if info.rootfs.diff_ids.len() != e.layers.len() {
                return Err(ArchiveError::InvalidImage {
                    image: e.config.clone(),
                    reason: format!(
                        "manifest.json lists {} layers but the config has {} diff_ids",
                        e.layers.len(),
                        info.rootfs.diff_ids.len()
                    ),
                });
            }
            let mut layers = Vec::new();
            for (path, diff_id) in e.layers.iter().zip(&info.rootfs.diff_ids) {
                let blob = find("layer", path)?;
                let diff_id = Digest::parse(diff_id)?;
                let blob = self.uncompressed_layer(path, blob, &diff_id)?;
                layers.push(json!({
                    "mediaType": OCI_LAYER_TAR,
                    "digest": blob.digest,
                    "size": blob.size,
                }));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cfg.digest, "size": cfg.size},
                "layers": layers,
            });
            let data =
                serde_json::to_vec(&manifest).map_err(|source| ArchiveError::InvalidJson {
                    what: "the manifest being written".into(),
                    source,
                })?;
            let m = self.store.write_blob_bytes(&data)?;
            let mut tags = Vec::new();
            for t in e.repo_tags.unwrap_or_default() {
                let r = parse_reference(&t).map_err(|source| ArchiveError::BadTag {
                    tag: t.clone(),
                    file: "manifest.json",
                    source,
                })?;
                let r = r.to_string();
                if !tags.contains(&r) {
                    tags.push(r);
                }
            }
            out.push(Ready {
                tags,
                id: cfg.digest,
                target: m.descriptor(MediaType::ImageManifest),
            });
        }
        Ok(out)
    }

    /// A docker-archive layer must hash to its diff id; a compressed one
    /// (older tools wrote those, `docker load` accepts them) is decompressed
    /// into a new blob that must.
    fn uncompressed_layer(
        &self,
        path: &str,
        blob: BlobInfo,
        diff_id: &Digest,
    ) -> Result<BlobInfo, ArchiveError> {
        if blob.digest == *diff_id {
            return Ok(blob);
        }
        let mut f = BufReader::with_capacity(READ_BUF, self.store.open_blob(&blob.digest)?);
        let kind = layer::detect(&mut f).map_err(|e| StoreError::Io {
            context: format!("read blob {}", blob.digest),
            source: e,
        })?;
        let mismatch = |actual: Digest| ArchiveError::DigestMismatch {
            what: format!("layer {path} (the config's rootfs.diff_ids entry)"),
            expected: diff_id.clone(),
            actual,
        };
        if kind == Compression::None {
            return Err(mismatch(blob.digest));
        }
        let r = layer::decompressed(f).map_err(|e| ArchiveError::InvalidImage {
            image: path.to_string(),
            reason: e.to_string(),
        })?;
        match self.store.write_blob(r, Some(diff_id), None) {
            Ok(b) => Ok(b),
            Err(StoreError::DigestMismatch { actual, .. }) => Err(mismatch(actual)),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------ oci-archive

    fn oci_images(&self) -> Result<Vec<Ready>, ArchiveError> {
        if self.meta.contains_key("oci-layout") {
            #[derive(Deserialize)]
            struct Layout {
                #[serde(rename = "imageLayoutVersion")]
                version: String,
            }
            let l: Layout = self.json("oci-layout")?;
            if !l.version.starts_with("1.") {
                return Err(ArchiveError::InvalidImage {
                    image: self.name.clone(),
                    reason: format!(
                        "oci-layout imageLayoutVersion {:?} is not supported (want 1.x)",
                        l.version
                    ),
                });
            }
        }
        #[derive(Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let index: Index = self.json("index.json")?;
        let mut out: Vec<Ready> = Vec::new();
        for d in index.manifests {
            let digest = Digest::try_from(d.digest())?;
            let mt = d.media_type().to_string();
            let id = if is_manifest_media_type(&mt) {
                self.check_manifest(&digest, "index.json")?
            } else if is_index_media_type(&mt) {
                self.check_index(&digest, "index.json", 0)?
            } else {
                return Err(ArchiveError::UnknownMediaType {
                    media_type: mt,
                    kind: "manifest",
                    digest: digest.to_string(),
                    referrer: "index.json".into(),
                });
            };
            let ann = d.annotations().clone().unwrap_or_default();
            let name = ann.get(CONTAINERD_NAME).or_else(|| ann.get(REF_NAME));
            let mut tags = Vec::new();
            if let Some(n) = name {
                let r = parse_reference(n).map_err(|source| ArchiveError::BadTag {
                    tag: n.clone(),
                    file: "index.json",
                    source,
                })?;
                tags.push(r.to_string());
            }
            let target = Descriptor::new(d.media_type().clone(), d.size(), digest.to_oci());
            match out
                .iter_mut()
                .find(|r| r.target.digest() == target.digest())
            {
                Some(r) => {
                    for t in tags {
                        if !r.tags.contains(&t) {
                            r.tags.push(t);
                        }
                    }
                }
                None => out.push(Ready { tags, id, target }),
            }
        }
        Ok(out)
    }

    fn read_manifest(&self, d: &Digest, referrer: &str) -> Result<AnyManifest, ArchiveError> {
        if !self.present(d) {
            return Err(ArchiveError::MissingBlob {
                referrer: referrer.to_string(),
                kind: "manifest",
                digest: d.clone(),
            });
        }
        let size = self.store.blob_size(d)?;
        if size > MAX_METADATA_BYTES {
            return Err(ArchiveError::TooLarge {
                what: format!("manifest {d}"),
                size,
                limit: MAX_METADATA_BYTES,
            });
        }
        let data = self
            .store
            .read_blob_limited(d, MAX_METADATA_BYTES, "manifest")?;
        match parse_any_manifest(d, &data) {
            Ok(m) => Ok(m),
            Err(StoreError::UnsupportedManifest { media_type, .. }) => {
                Err(ArchiveError::UnknownMediaType {
                    media_type,
                    kind: "manifest",
                    digest: d.to_string(),
                    referrer: referrer.to_string(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks an image manifest and everything it references; returns the image id.
    fn check_manifest(&self, d: &Digest, referrer: &str) -> Result<Digest, ArchiveError> {
        let m = match self.read_manifest(d, referrer)? {
            AnyManifest::Image(m) => m,
            AnyManifest::Index(_) => {
                return Err(ArchiveError::InvalidImage {
                    image: d.to_string(),
                    reason: format!("{referrer} lists it as an image manifest but it is an index"),
                })
            }
        };
        let me = format!("manifest {d}");
        let cmt = m.config().media_type().to_string();
        let cd = Digest::try_from(m.config().digest())?;
        if !is_config_media_type(&cmt) {
            return Err(ArchiveError::UnknownMediaType {
                media_type: cmt,
                kind: "config",
                digest: cd.to_string(),
                referrer: me,
            });
        }
        if !self.present(&cd) {
            return Err(ArchiveError::MissingBlob {
                referrer: me,
                kind: "config",
                digest: cd,
            });
        }
        let size = self.store.blob_size(&cd)?;
        let info = self.read_config(
            &BlobInfo {
                digest: cd.clone(),
                size,
            },
            &cd.to_string(),
        )?;
        if info.rootfs.diff_ids.len() != m.layers().len() {
            return Err(ArchiveError::InvalidImage {
                image: me,
                reason: format!(
                    "{} layers but the config has {} diff_ids",
                    m.layers().len(),
                    info.rootfs.diff_ids.len()
                ),
            });
        }
        for (l, diff_id) in m.layers().iter().zip(&info.rootfs.diff_ids) {
            let mt = l.media_type().to_string();
            let ld = Digest::try_from(l.digest())?;
            if !LAYER_MEDIA_TYPES.contains(&mt.as_str()) {
                return Err(ArchiveError::UnknownMediaType {
                    media_type: mt,
                    kind: "layer",
                    digest: ld.to_string(),
                    referrer: me,
                });
            }
            if !self.present(&ld) {
                return Err(ArchiveError::MissingBlob {
                    referrer: me,
                    kind: "layer",
                    digest: ld,
                });
            }
            let diff_id = Digest::parse(diff_id)?;
            if is_uncompressed_layer(&mt) && ld != diff_id {
                return Err(ArchiveError::DigestMismatch {
                    what: format!("uncompressed layer {ld} of {me} (its config's diff_id)"),
                    expected: diff_id,
                    actual: ld,
                });
            }
        }
        Ok(cd)
    }

    /// Checks an index: every listed manifest that is in the archive must
    /// be complete, and at least one must be. Returns the image id of the
    /// host platform's manifest (or the first one present).
    fn check_index(&self, d: &Digest, referrer: &str, depth: u32) -> Result<Digest, ArchiveError> {
        let i = match self.read_manifest(d, referrer)? {
            AnyManifest::Index(i) => i,
            AnyManifest::Image(_) => {
                return Err(ArchiveError::InvalidImage {
                    image: d.to_string(),
                    reason: format!("{referrer} lists it as an index but it is an image manifest"),
                })
            }
        };
        let me = format!("index {d}");
        let mut first: Option<Digest> = None;
        let mut missing = None;
        for c in i.manifests() {
            let cd = Digest::try_from(c.digest())?;
            let mt = c.media_type().to_string();
            if !self.present(&cd) {
                missing.get_or_insert(cd);
                continue;
            }
            let id = if is_manifest_media_type(&mt) {
                self.check_manifest(&cd, &me)?
            } else if is_index_media_type(&mt) && depth < 4 {
                self.check_index(&cd, &me, depth + 1)?
            } else {
                return Err(ArchiveError::UnknownMediaType {
                    media_type: mt,
                    kind: "manifest",
                    digest: cd.to_string(),
                    referrer: me,
                });
            };
            first.get_or_insert(id);
        }
        let Some(first) = first else {
            return Err(match missing {
                Some(m) => ArchiveError::MissingBlob {
                    referrer: me,
                    kind: "manifest",
                    digest: m,
                },
                None => ArchiveError::InvalidImage {
                    image: me,
                    reason: "the index lists no manifests".into(),
                },
            });
        };
        Ok(match self.store.resolve_manifest(d, &Platform::host()) {
            Ok((_, m)) => Digest::try_from(m.config().digest())?,
            Err(_) => first,
        })
    }
}

/// `blobs/sha256/<hex>` → its digest.
fn blob_digest_of_path(path: &str) -> Option<Digest> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    Digest::from_hex(hex).ok()
}

/// Legacy docker-archive files nobody reads any more: `<id>/json`, `<id>/VERSION`.
fn is_legacy(path: &str) -> bool {
    match path.split_once('/') {
        Some((dir, f)) => !dir.contains('/') && dir != "blobs" && (f == "json" || f == "VERSION"),
        None => false,
    }
}
