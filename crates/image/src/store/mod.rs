//! The content store: a sha256 blob store that is itself a valid OCI image
//! layout, plus the bookkeeping of unpacked layers.
//!
//! This module owns, under the store root:
//!
//! ```text
//! oci-layout            {"imageLayoutVersion": "1.0.0"}
//! index.json            OCI index; a tagged image is a descriptor annotated with
//!                       org.opencontainers.image.ref.name = the full reference
//! pins.json             named sets of digests kept alive by GC (not part of OCI)
//! blobs/sha256/<hex>    content (layers, configs, manifests)
//! ingest/               temp files and dirs being written (same file system)
//! layers/<chain hex>/diff  unpacked layers (contents made by `layer`, life cycle here)
//! locks/                store.lock (shared: writers, exclusive: gc), index.lock
//! ```
//!
//! Crash safety: every file becomes visible by `rename` after `fsync` of the
//! file, followed by `fsync` of the directory; blobs are verified before the
//! rename; `index.json` and `pins.json` are read-modify-written under
//! `locks/index.lock`. A process killed at any moment leaves the old or the
//! new state, plus maybe a leftover in `ingest/` that GC sweeps.
//!
//! Concurrency: writers (blob writes, tag, untag, pin, layer commits) hold
//! `locks/store.lock` shared; GC holds it exclusively, so it never sees a
//! half-done import. A caller that writes blobs and then tags them should
//! hold [`Store::lock_shared`] across both steps so no GC runs in between.
//! Never call [`Store::gc`] while holding a lock of the same store.

mod check;
mod digest;
mod gc;
mod manifest;
mod reference;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use check::{CheckReport, Problem, ProblemKind};
pub use digest::{is_sha256_hex, Digest};
pub use gc::{GcOptions, GcReport};
pub use manifest::{
    chain_id, chain_ids, is_config_media_type, is_index_media_type, is_manifest_media_type,
    parse_any_manifest, select_manifest, AnyManifest, ConfigInfo, Platform, DOCKER_CONFIG,
    DOCKER_LAYER_GZIP, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
pub use reference::{parse_reference, Reference, DEFAULT_DOMAIN, DEFAULT_TAG};

/// The annotation holding an image's reference in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The image layout version written to `oci-layout`.
pub const LAYOUT_VERSION: &str = "1.0.0";
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// Errors of the content store. Messages name the digest or reference
/// concerned and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A digest string is malformed.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The input.
        digest: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A digest uses an algorithm other than sha256.
    #[error("unsupported digest algorithm {algorithm:?} in {digest:?}: the store only keeps sha256 content")]
    UnsupportedDigestAlgorithm {
        /// The input.
        digest: String,
        /// Its algorithm.
        algorithm: String,
    },
    /// An image reference does not follow docker's grammar.
    #[error("invalid reference format: {reason} (in {reference:?})")]
    InvalidReference {
        /// The input.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Written content did not hash to the expected digest.
    #[error("content digest mismatch: expected {expected}, got {actual}; the data is corrupt or not the blob asked for, nothing was stored")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of the data received.
        actual: Digest,
    },
    /// Written or stored content has the wrong size.
    #[error(
        "size mismatch for {what}: expected {expected} bytes, got {actual}; nothing was stored"
    )]
    SizeMismatch {
        /// The blob concerned.
        what: String,
        /// Size expected.
        expected: u64,
        /// Size seen.
        actual: u64,
    },
    /// A blob is not in the store.
    #[error("blob {digest} is not in the store; pull or load the image again (or run `barge system check`)")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
    },
    /// A blob is larger than a JSON document may be.
    #[error("blob {digest} is {size} bytes, more than the {limit} bytes allowed for a {what}; refusing to parse it")]
    TooLarge {
        /// The blob.
        digest: String,
        /// What it was read as.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A JSON blob or file does not parse.
    #[error(
        "{what} {digest} is not valid: {source}; the image is damaged, remove and pull it again"
    )]
    InvalidJson {
        /// What was being parsed (manifest, config, index.json).
        what: String,
        /// The blob or file.
        digest: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The root is not a usable image layout.
    #[error("{root}: not a usable OCI image layout: {reason}")]
    BadLayout {
        /// The store root.
        root: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A manifest has a media type the store does not read.
    #[error("manifest {digest} has unsupported media type {media_type}; only OCI and docker schema2 images are supported")]
    UnsupportedManifest {
        /// The manifest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// No image matches a reference or id.
    #[error("no such image: {reference}")]
    ImageNotFound {
        /// The reference or id asked for.
        reference: String,
    },
    /// A short id matches more than one image.
    #[error("image id prefix {prefix} is ambiguous: it matches {}; give more digits", candidates.join(", "))]
    AmbiguousId {
        /// The prefix asked for.
        prefix: String,
        /// The image ids it matches.
        candidates: Vec<String>,
    },
    /// An index has no manifest for the wanted platform.
    #[error("no manifest for platform {platform} in the image index (available: {available})")]
    NoPlatformMatch {
        /// The platform wanted.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// Tagging an image whose blobs are not all in the store.
    #[error("cannot tag {reference}: {missing} (needed by {digest}) is not in the store; write every blob of the image first")]
    IncompleteImage {
        /// The reference being tagged.
        reference: String,
        /// The manifest being tagged.
        digest: Digest,
        /// The missing blob.
        missing: Digest,
    },
    /// GC refuses to run because a referenced manifest cannot be read.
    #[error("gc stopped, nothing removed: {reason}; untag the damaged image or repair it (see `barge system check`)")]
    GcBlocked {
        /// What could not be read.
        reason: String,
    },
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// A written blob: its digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// The content digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

impl BlobInfo {
    /// A descriptor of this blob with the given media type.
    pub fn descriptor(&self, media_type: MediaType) -> Descriptor {
        Descriptor::new(media_type, self.size, self.digest.to_oci())
    }
}

/// A held store lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// An image found by [`Store::resolve`].
#[derive(Clone, Debug)]
pub struct ImageRef {
    /// Every reference in `index.json` naming the same top-level descriptor.
    pub names: Vec<String>,
    /// The `index.json` entry (a manifest, or an index for multi-platform images).
    pub target: Descriptor,
    /// The manifest for this platform (equals the target's digest for a plain manifest).
    pub manifest_digest: Digest,
    /// That manifest.
    pub manifest: ImageManifest,
    /// The config digest: the image id.
    pub config_digest: Digest,
}

/// One image in [`Store::images`].
#[derive(Clone, Debug)]
pub struct ImageRecord {
    /// References tagging it (empty for an untagged entry).
    pub refs: Vec<String>,
    /// The `index.json` entry's digest.
    pub target_digest: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The image id (config digest).
    pub config_digest: Digest,
    /// Creation time from the config.
    pub created: Option<String>,
    /// Bytes in the store: manifest + config + (compressed) layers.
    pub size: u64,
    /// Labels from the config.
    pub labels: BTreeMap<String, String>,
    /// `os/arch[/variant]` from the config.
    pub platform: String,
}

/// `index.json`, kept with any fields we do not know about.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct IndexFile {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

impl IndexFile {
    fn empty() -> IndexFile {
        IndexFile {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PinsFile {
    #[serde(default)]
    pins: BTreeMap<String, Vec<Digest>>,
}

/// A layer being unpacked in `ingest/`; see [`Store::begin_layer`].
/// Dropped without [`Store::commit_layer`], its directory is removed.
#[derive(Debug)]
pub struct LayerIngest {
    dir: PathBuf,
    hex: String,
    committed: bool,
}

impl LayerIngest {
    /// The directory to unpack the layer into.
    pub fn diff_path(&self) -> PathBuf {
        self.dir.join("diff")
    }
    /// The temporary layer directory (holds `diff/`; other files may be added next to it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LayerIngest {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes a temp file on drop unless disarmed.
struct TempGuard(Option<PathBuf>);
impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// A blob being written; see [`Store::begin_blob`].
pub struct BlobWriter {
    store: Store,
    file: Option<io::BufWriter<File>>,
    guard: TempGuard,
    tmp: PathBuf,
    hasher: ring::digest::Context,
    size: u64,
    synced: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp", &self.tmp)
            .field("size", &self.size)
            .finish()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already finished"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.synced = false;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// The temp file being written (in `ingest/`), e.g. for a reader that
    /// follows the writer; it moves on [`BlobWriter::commit`].
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hex(&hex::encode(self.hasher.clone().finish()))
            .unwrap_or_else(|_| Digest::of_bytes(b""))
    }

    /// Flushes and fsyncs the temp file now (so that [`BlobWriter::commit`]
    /// only renames): lets several blobs be synced in parallel.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.flush()
                .and_then(|_| f.get_ref().sync_all())
                .map_err(io_err(format!("fsync {}", self.tmp.display())))?;
            self.synced = true;
        }
        Ok(())
    }

    /// Checks the data written against `expected` and `expected_size`
    /// without storing it.
    pub fn verify(&self, expected: &Digest, expected_size: u64) -> Result<()> {
        if self.size != expected_size {
            return Err(StoreError::SizeMismatch {
                what: expected.to_string(),
                expected: expected_size,
                actual: self.size,
            });
        }
        let actual = self.digest();
        if actual != *expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Verifies (as [`BlobWriter::verify`]), syncs and renames the blob into
    /// `blobs/sha256/`. On a mismatch nothing is stored and the temp file is
    /// removed.
    pub fn commit(mut self, expected: &Digest, expected_size: u64) -> Result<BlobInfo> {
        self.verify(expected, expected_size)?;
        let _lock = self.store.lock_shared()?;
        let file = self
            .file
            .take()
            .ok_or_else(|| io_err("finish blob")(io::Error::other("already finished")))?;
        let file = file
            .into_inner()
            .map_err(|e| io_err(format!("write {}", self.tmp.display()))(e.into_error()))?;
        let info = BlobInfo {
            digest: expected.clone(),
            size: self.size,
        };
        let dest = self.store.blob_path(expected);
        if dest.is_file() {
            return Ok(info);
        }
        if !self.synced {
            file.sync_all()
                .map_err(io_err(format!("fsync {}", self.tmp.display())))?;
        }
        drop(file);
        fs::rename(&self.tmp, &dest).map_err(io_err(format!(
            "rename {} to {}",
            self.tmp.display(),
            dest.display()
        )))?;
        self.guard.0 = None;
        fsync_dir(&self.store.blobs_dir())?;
        Ok(info)
    }
}

/// The content store. Cheap to open; every method is safe to call from
/// several threads and processes at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unlikely to collide across processes and threads (files are also
/// created with `create_new`, so a collision is an error, never a clobber).
fn random_name(prefix: &str) -> String {
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let addr = &h as *const _ as usize;
    h.update(addr.to_le_bytes());
    format!("{prefix}-{}", &hex::encode(h.finalize())[..24])
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(format!("fsync directory {}", dir.display())))
}

fn retry_eintr<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r,
        }
    }
}

impl Store {
    /// Opens the store at `root`, creating the layout if it is missing and
    /// validating `oci-layout` if it exists.
    pub fn open(root: &Path) -> Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for d in ["blobs/sha256", "ingest", "layers", "locks"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("create {}", p.display())))?;
        }
        let layout = root.join("oci-layout");
        let index = root.join("index.json");
        match fs::read(&layout) {
            Ok(data) => {
                #[derive(Deserialize)]
                struct Layout {
                    #[serde(rename = "imageLayoutVersion")]
                    version: String,
                }
                let l: Layout =
                    serde_json::from_slice(&data).map_err(|e| StoreError::BadLayout {
                        root: root.to_path_buf(),
                        reason: format!("oci-layout does not parse ({e}); move the directory away"),
                    })?;
                if !l.version.starts_with("1.") {
                    return Err(StoreError::BadLayout {
                        root: root.to_path_buf(),
                        reason: format!(
                            "imageLayoutVersion {:?} is not supported (want 1.x)",
                            l.version
                        ),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if index.exists() {
                    return Err(StoreError::BadLayout {
                        root: root.to_path_buf(),
                        reason: "index.json exists but oci-layout is missing; \
                                 restore oci-layout or use another root"
                            .into(),
                    });
                }
                let body = format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}");
                store.create_if_missing(&layout, body.as_bytes())?;
            }
            Err(e) => return Err(io_err(format!("read {}", layout.display()))(e)),
        }
        if !index.exists() {
            let body =
                serde_json::to_vec(&IndexFile::empty()).map_err(|e| StoreError::InvalidJson {
                    what: "index.json".into(),
                    digest: "(new)".into(),
                    source: e,
                })?;
            store.create_if_missing(&index, &body)?;
        }
        Ok(store)
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// Creates a fresh file in `ingest/`.
    fn create_ingest_file(&self, prefix: &str) -> Result<(PathBuf, File)> {
        loop {
            let p = self.ingest_dir().join(random_name(prefix));
            match OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => return Ok((p, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(format!("create {}", p.display()))(e)),
            }
        }
    }

    /// Writes `data` to a temp file and syncs it; returns its path (guarded).
    fn write_temp(&self, prefix: &str, data: &[u8]) -> Result<TempGuard> {
        let (tmp, mut f) = self.create_ingest_file(prefix)?;
        let guard = TempGuard(Some(tmp.clone()));
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(io_err(format!("write {}", tmp.display())))?;
        Ok(guard)
    }

    /// Atomically replaces `dest` with `data` (temp, fsync, rename, dir fsync).
    fn replace_file(&self, dest: &Path, data: &[u8]) -> Result<()> {
        let mut guard = self.write_temp("file", data)?;
        let tmp = guard.0.take().unwrap_or_default();
        fs::rename(&tmp, dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(format!("rename {} to {}", tmp.display(), dest.display()))(e)
        })?;
        fsync_dir(dest.parent().unwrap_or(&self.root))
    }

    /// Creates `dest` with `data` unless it exists (never overwrites).
    fn create_if_missing(&self, dest: &Path, data: &[u8]) -> Result<()> {
        let guard = self.write_temp("file", data)?;
        let tmp = guard.0.clone().unwrap_or_default();
        match fs::hard_link(&tmp, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(io_err(format!("create {}", dest.display()))(e));
            }
        }
        drop(guard);
        fsync_dir(dest.parent().unwrap_or(&self.root))
    }

    fn lock(&self, name: &str, op: rustix::fs::FlockOperation) -> Result<StoreLock> {
        let p = self.root.join("locks").join(name);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(io_err(format!("open lock file {}", p.display())))?;
        retry_eintr(|| rustix::fs::flock(&f, op))
            .map_err(|e| io_err(format!("lock {}", p.display()))(e.into()))?;
        Ok(StoreLock { _file: f })
    }

    /// Takes the store lock shared: blocks GC until dropped. Hold it across a
    /// write-blobs-then-tag sequence.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock("store.lock", rustix::fs::FlockOperation::LockShared)
    }

    /// Takes the store lock exclusively: waits for every writer to finish
    /// and keeps new ones out. Store methods that write take the lock shared
    /// themselves, so do not call them while holding this one.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock("store.lock", rustix::fs::FlockOperation::LockExclusive)
    }

    fn lock_index(&self) -> Result<StoreLock> {
        self.lock("index.lock", rustix::fs::FlockOperation::LockExclusive)
    }

    // ---------------------------------------------------------------- blobs

    /// The path of a blob (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// True if the blob is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobNotFound {
                digest: digest.clone(),
            }),
            Err(e) => Err(io_err(format!("stat blob {digest}"))(e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        match File::open(self.blob_path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobNotFound {
                digest: digest.clone(),
            }),
            Err(e) => Err(io_err(format!("open blob {digest}"))(e)),
        }
    }

    /// Streams `reader` into the store. The data goes to a temp file in
    /// `ingest/`, hashed on the way, is synced and checked against
    /// `expected` / `expected_size` (on mismatch the temp file is removed and
    /// nothing is stored), then renamed into `blobs/sha256/`. A blob that is
    /// already stored is not rewritten (and with `expected` given, `reader`
    /// is not even read).
    pub fn write_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo> {
        let _lock = self.lock_shared()?;
        if let Some(d) = expected {
            if let Ok(m) = fs::metadata(self.blob_path(d)) {
                if m.is_file() && expected_size.is_none_or(|s| s == m.len()) {
                    return Ok(BlobInfo {
                        digest: d.clone(),
                        size: m.len(),
                    });
                }
            }
        }
        let what = || match expected {
            Some(d) => d.to_string(),
            None => "blob".to_string(),
        };
        let (tmp, mut f) = self.create_ingest_file("blob")?;
        let mut guard = TempGuard(Some(tmp.clone()));
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(format!("read data for {}", what()))(e)),
            };
            size += n as u64;
            if let Some(want) = expected_size {
                if size > want {
                    return Err(StoreError::SizeMismatch {
                        what: what(),
                        expected: want,
                        actual: size,
                    });
                }
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])
                .map_err(io_err(format!("write {}", tmp.display())))?;
        }
        if let Some(want) = expected_size {
            if size != want {
                return Err(StoreError::SizeMismatch {
                    what: what(),
                    expected: want,
                    actual: size,
                });
            }
        }
        let digest = Digest::from_hex(&hex::encode(hasher.finalize()))?;
        if let Some(want) = expected {
            if *want != digest {
                return Err(StoreError::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                });
            }
        }
        let dest = self.blob_path(&digest);
        if dest.is_file() {
            return Ok(BlobInfo { digest, size });
        }
        f.sync_all()
            .map_err(io_err(format!("fsync {}", tmp.display())))?;
        drop(f);
        fs::rename(&tmp, &dest).map_err(io_err(format!(
            "rename {} to {}",
            tmp.display(),
            dest.display()
        )))?;
        guard.0 = None;
        fsync_dir(&self.blobs_dir())?;
        Ok(BlobInfo { digest, size })
    }

    /// Starts writing a blob from data pushed to it (a download being teed
    /// into a layer unpack, say): the returned [`BlobWriter`] hashes what is
    /// written into a temp file in `ingest/`; [`BlobWriter::commit`] checks
    /// digest and size and renames it into `blobs/`; dropped uncommitted,
    /// the temp file is removed.
    pub fn begin_blob(&self) -> Result<BlobWriter> {
        let (tmp, file) = self.create_ingest_file("blob")?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            guard: TempGuard(Some(tmp.clone())),
            tmp,
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
            synced: false,
        })
    }

    /// Stores `data` as a blob.
    pub fn write_blob_bytes(&self, data: &[u8]) -> Result<BlobInfo> {
        self.write_blob(data, None, None)
    }

    /// Stores `value` as JSON and returns a descriptor with `media_type`.
    pub fn write_json<T: Serialize>(&self, value: &T, media_type: MediaType) -> Result<Descriptor> {
        let data = serde_json::to_vec(value).map_err(|e| StoreError::InvalidJson {
            what: media_type.to_string(),
            digest: "(being written)".into(),
            source: e,
        })?;
        Ok(self.write_blob_bytes(&data)?.descriptor(media_type))
    }

    /// Reads a whole blob of at most `max_bytes`, verifying its digest.
    pub fn read_blob_limited(
        &self,
        digest: &Digest,
        max_bytes: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        let f = self.open_blob(digest)?;
        let mut data = Vec::new();
        f.take(max_bytes + 1)
            .read_to_end(&mut data)
            .map_err(io_err(format!("read blob {digest}")))?;
        if data.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                digest: digest.to_string(),
                what: what.to_string(),
                size: self.blob_size(digest).unwrap_or(data.len() as u64),
                limit: max_bytes,
            });
        }
        let actual = Digest::of_bytes(&data);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Reads and parses a JSON blob of at most `max_bytes` (digest verified).
    pub fn read_json<T: DeserializeOwned>(&self, digest: &Digest, max_bytes: u64) -> Result<T> {
        let data = self.read_blob_limited(digest, max_bytes, "JSON document")?;
        serde_json::from_slice(&data).map_err(|e| StoreError::InvalidJson {
            what: "blob".into(),
            digest: digest.to_string(),
            source: e,
        })
    }

    /// Reads a manifest or index (OCI or docker schema2).
    pub fn read_any_manifest(&self, digest: &Digest) -> Result<AnyManifest> {
        let data = self.read_blob_limited(digest, MAX_MANIFEST_BYTES, "manifest")?;
        parse_any_manifest(digest, &data)
    }

    /// Reads the parts of an image config the store uses.
    pub fn read_config_info(&self, digest: &Digest) -> Result<ConfigInfo> {
        let data = self.read_blob_limited(digest, MAX_CONFIG_BYTES, "image config")?;
        serde_json::from_slice(&data).map_err(|e| StoreError::InvalidJson {
            what: "image config".into(),
            digest: digest.to_string(),
            source: e,
        })
    }

    /// Follows a manifest or index to the image manifest for `platform`.
    pub fn resolve_manifest(
        &self,
        digest: &Digest,
        platform: &Platform,
    ) -> Result<(Digest, ImageManifest)> {
        let mut d = digest.clone();
        for _ in 0..8 {
            match self.read_any_manifest(&d)? {
                AnyManifest::Image(m) => return Ok((d, *m)),
                AnyManifest::Index(i) => {
                    let child = select_manifest(&i, platform)?;
                    d = Digest::try_from(child.digest())?;
                }
            }
        }
        Err(StoreError::UnsupportedManifest {
            digest: digest.to_string(),
            media_type: "index nested more than 8 deep".into(),
        })
    }

    // ---------------------------------------------------------------- index

    fn read_index(&self) -> Result<IndexFile> {
        let p = self.root.join("index.json");
        let f = File::open(&p).map_err(io_err(format!("open {}", p.display())))?;
        let mut data = Vec::new();
        f.take(MAX_INDEX_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(io_err(format!("read {}", p.display())))?;
        if data.len() as u64 > MAX_INDEX_BYTES {
            return Err(StoreError::TooLarge {
                digest: p.display().to_string(),
                what: "index.json".into(),
                size: data.len() as u64,
                limit: MAX_INDEX_BYTES,
            });
        }
        serde_json::from_slice(&data).map_err(|e| StoreError::InvalidJson {
            what: "index.json".into(),
            digest: p.display().to_string(),
            source: e,
        })
    }

    /// Read-modify-writes `index.json` under the index lock.
    fn update_index<R>(&self, f: impl FnOnce(&mut IndexFile) -> Result<R>) -> Result<R> {
        let _l = self.lock_index()?;
        let mut idx = self.read_index()?;
        let r = f(&mut idx)?;
        let data = serde_json::to_vec_pretty(&idx).map_err(|e| StoreError::InvalidJson {
            what: "index.json".into(),
            digest: "(being written)".into(),
            source: e,
        })?;
        self.replace_file(&self.root.join("index.json"), &data)?;
        Ok(r)
    }

    /// The descriptors in `index.json`.
    pub fn index_entries(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index()?.manifests)
    }

    /// Checks that `digest` and (for a manifest) its config and layers are
    /// stored; for an index, at least one listed manifest must be.
    fn verify_complete(&self, reference: &str, digest: &Digest) -> Result<()> {
        let missing = |m: &Digest| StoreError::IncompleteImage {
            reference: reference.to_string(),
            digest: digest.clone(),
            missing: m.clone(),
        };
        if !self.has_blob(digest) {
            return Err(missing(digest));
        }
        match self.read_any_manifest(digest) {
            Ok(AnyManifest::Image(m)) => {
                for d in std::iter::once(m.config()).chain(m.layers().iter()) {
                    let d = Digest::try_from(d.digest())?;
                    if !self.has_blob(&d) {
                        return Err(missing(&d));
                    }
                }
                Ok(())
            }
            Ok(AnyManifest::Index(i)) => {
                let mut first = None;
                for d in i.manifests() {
                    let d = Digest::try_from(d.digest())?;
                    if self.has_blob(&d) {
                        return Ok(());
                    }
                    first.get_or_insert(d);
                }
                match first {
                    Some(d) => Err(missing(&d)),
                    None => Ok(()),
                }
            }
            // Not a manifest (an artifact or a plain blob): only the blob itself is required.
            Err(StoreError::UnsupportedManifest { .. }) | Err(StoreError::InvalidJson { .. }) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Points `reference` (normalised, e.g. `busybox` →
    /// `docker.io/library/busybox:latest`) at `desc`, replacing the entry
    /// that had it. The blobs must be stored already.
    pub fn tag(&self, reference: &str, mut desc: Descriptor) -> Result<()> {
        let name = parse_reference(reference)?.to_string();
        let digest = Digest::try_from(desc.digest())?;
        let _l = self.lock_shared()?;
        self.verify_complete(&name, &digest)?;
        let size = self.blob_size(&digest)?;
        if size != desc.size() {
            return Err(StoreError::SizeMismatch {
                what: format!("{digest} (descriptor for {name})"),
                expected: desc.size(),
                actual: size,
            });
        }
        let mut ann = desc.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME_ANNOTATION.to_string(), name.clone());
        desc.set_annotations(Some(ann));
        self.update_index(|idx| {
            let old: Vec<Descriptor> = idx
                .manifests
                .iter()
                .filter(|d| entry_ref(d).as_deref() == Some(name.as_str()))
                .cloned()
                .collect();
            idx.manifests
                .retain(|d| entry_ref(d).as_deref() != Some(name.as_str()));
            // As docker does, an image that loses its last name to another
            // image stays, untagged ("dangling"), until pruned.
            for mut o in old {
                let gone = o.digest() != desc.digest()
                    && !idx.manifests.iter().any(|d| d.digest() == o.digest());
                if gone {
                    let mut ann = o.annotations().clone().unwrap_or_default();
                    ann.remove(REF_NAME_ANNOTATION);
                    o.set_annotations(if ann.is_empty() { None } else { Some(ann) });
                    idx.manifests.push(o);
                }
            }
            idx.manifests
                .retain(|d| !(d.digest() == desc.digest() && entry_ref(d).is_none()));
            idx.manifests.push(desc);
            Ok(())
        })
    }

    /// Adds an untagged (`<none>`) entry for `desc` unless the image is in
    /// `index.json` already. The blobs must be stored already.
    pub fn add_untagged(&self, mut desc: Descriptor) -> Result<()> {
        let digest = Digest::try_from(desc.digest())?;
        let _l = self.lock_shared()?;
        self.verify_complete("<untagged>", &digest)?;
        let mut ann = desc.annotations().clone().unwrap_or_default();
        ann.remove(REF_NAME_ANNOTATION);
        desc.set_annotations(if ann.is_empty() { None } else { Some(ann) });
        self.update_index(|idx| {
            if !idx.manifests.iter().any(|d| d.digest() == desc.digest()) {
                idx.manifests.push(desc);
            }
            Ok(())
        })
    }

    /// Removes `reference` from `index.json`; returns the descriptor it named.
    /// The blobs stay until [`Store::gc`].
    pub fn untag(&self, reference: &str) -> Result<Option<Descriptor>> {
        let name = parse_reference(reference)?.to_string();
        let _l = self.lock_shared()?;
        self.update_index(|idx| {
            let pos = idx
                .manifests
                .iter()
                .position(|d| entry_ref(d).as_deref() == Some(name.as_str()));
            Ok(pos.map(|i| {
                let d = idx.manifests.remove(i);
                idx.manifests
                    .retain(|d| entry_ref(d).as_deref() != Some(name.as_str()));
                d
            }))
        })
    }

    /// Removes every `index.json` entry (tagged or not) whose target is `digest`.
    /// Returns how many were removed.
    pub fn remove_entries(&self, digest: &Digest) -> Result<usize> {
        let _l = self.lock_shared()?;
        self.update_index(|idx| {
            let before = idx.manifests.len();
            idx.manifests
                .retain(|d| Digest::try_from(d.digest()).ok().as_ref() != Some(digest));
            Ok(before - idx.manifests.len())
        })
    }

    // ---------------------------------------------------------------- pins

    fn read_pins(&self) -> Result<PinsFile> {
        let p = self.root.join("pins.json");
        match fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| StoreError::InvalidJson {
                what: "pins file".into(),
                digest: p.display().to_string(),
                source: e,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PinsFile::default()),
            Err(e) => Err(io_err(format!("read {}", p.display()))(e)),
        }
    }

    fn update_pins<R>(&self, f: impl FnOnce(&mut PinsFile) -> R) -> Result<R> {
        let _s = self.lock_shared()?;
        let _l = self.lock_index()?;
        let mut pins = self.read_pins()?;
        let r = f(&mut pins);
        let data = serde_json::to_vec_pretty(&pins).map_err(|e| StoreError::InvalidJson {
            what: "pins file".into(),
            digest: "(being written)".into(),
            source: e,
        })?;
        self.replace_file(&self.root.join("pins.json"), &data)?;
        Ok(r)
    }

    /// Keeps `digests` (and, for manifests and indexes, everything they
    /// reference) alive through GC under `name` (e.g. a container id whose
    /// image may be untagged), replacing an earlier pin of that name.
    pub fn pin(&self, name: &str, digests: &[Digest]) -> Result<()> {
        self.update_pins(|p| {
            p.pins.insert(name.to_string(), digests.to_vec());
        })
    }

    /// Drops the pin `name`; returns whether it existed.
    pub fn unpin(&self, name: &str) -> Result<bool> {
        self.update_pins(|p| p.pins.remove(name).is_some())
    }

    /// All pins.
    pub fn pins(&self) -> Result<BTreeMap<String, Vec<Digest>>> {
        Ok(self.read_pins()?.pins)
    }

    // ---------------------------------------------------------------- images

    fn image_ref(&self, idx: &IndexFile, target: &Descriptor) -> Result<ImageRef> {
        let td = Digest::try_from(target.digest())?;
        // An index pulled for another platform holds only that platform's
        // manifest: fall back to the first one stored.
        let (manifest_digest, manifest) = match self.resolve_manifest(&td, &Platform::host()) {
            Ok(r) => r,
            Err(e) => self.platform_manifest_or_any(&td).ok_or(e)?,
        };
        let config_digest = Digest::try_from(manifest.config().digest())?;
        let names = idx
            .manifests
            .iter()
            .filter(|d| Digest::try_from(d.digest()).ok().as_ref() == Some(&td))
            .filter_map(entry_ref)
            .collect();
        Ok(ImageRef {
            names,
            target: target.clone(),
            manifest_digest,
            manifest,
            config_digest,
        })
    }

    /// Finds an image by reference (`busybox`, `name:tag`, full reference,
    /// `name@sha256:...`), by image id (`sha256:<config hex>`, the bare hex,
    /// or a unique hex prefix of at least 4 digits, as docker accepts short
    /// ids), or by manifest digest.
    pub fn resolve(&self, s: &str) -> Result<ImageRef> {
        let idx = self.read_index()?;
        let not_found = || StoreError::ImageNotFound {
            reference: s.to_string(),
        };
        let by_digest = |d: &Digest| -> Result<ImageRef> {
            // Image id first (config digest), then manifest / target digest.
            let mut by_manifest = None;
            for t in &idx.manifests {
                if Digest::try_from(t.digest()).ok().as_ref() == Some(d) {
                    return self.image_ref(&idx, t);
                }
                if let Ok(r) = self.image_ref(&idx, t) {
                    if &r.config_digest == d {
                        return Ok(r);
                    }
                    if &r.manifest_digest == d && by_manifest.is_none() {
                        by_manifest = Some(r);
                    }
                }
            }
            by_manifest.ok_or_else(not_found)
        };
        if s.starts_with("sha256:") {
            return by_digest(&Digest::parse(s)?);
        }
        if is_sha256_hex(s) {
            return by_digest(&Digest::from_hex(s)?);
        }
        let parsed = parse_reference(s);
        if let Ok(r) = &parsed {
            let name = r.to_string();
            if let Some(t) = idx
                .manifests
                .iter()
                .find(|d| entry_ref(d).as_deref() == Some(name.as_str()))
            {
                return self.image_ref(&idx, t);
            }
            if let (Some(want), None) = (&r.digest, &r.tag) {
                // name@digest: any entry of that repository with that digest.
                let repo = r.name();
                for t in &idx.manifests {
                    let same_repo = entry_ref(t)
                        .and_then(|n| parse_reference(&n).ok())
                        .is_some_and(|p| p.name() == repo);
                    if !same_repo {
                        continue;
                    }
                    if let Ok(ir) = self.image_ref(&idx, t) {
                        if Digest::try_from(t.digest()).ok().as_ref() == Some(want)
                            || &ir.manifest_digest == want
                        {
                            return Ok(ir);
                        }
                    }
                }
            }
        }
        let is_short_id = s.len() >= 4
            && s.len() < 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_short_id {
            let mut found: Vec<ImageRef> = Vec::new();
            for t in &idx.manifests {
                if let Ok(r) = self.image_ref(&idx, t) {
                    if r.config_digest.hex().starts_with(s)
                        && !found.iter().any(|f| f.config_digest == r.config_digest)
                    {
                        found.push(r);
                    }
                }
            }
            match found.len() {
                0 => {}
                1 => return Ok(found.remove(0)),
                _ => {
                    return Err(StoreError::AmbiguousId {
                        prefix: s.to_string(),
                        candidates: found.iter().map(|f| f.config_digest.to_string()).collect(),
                    })
                }
            }
        }
        match parsed {
            Err(e) => Err(e),
            Ok(_) => Err(not_found()),
        }
    }

    /// One record per distinct `index.json` target, with every reference
    /// naming it. For an index, the host platform's manifest is described
    /// (or the first one stored if the host's is not). Entries whose
    /// manifest or config cannot be read are left out; `check` reports them.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let idx = self.read_index()?;
        let mut order: Vec<Digest> = Vec::new();
        let mut refs: HashMap<Digest, (Descriptor, Vec<String>)> = HashMap::new();
        for d in &idx.manifests {
            let Ok(td) = Digest::try_from(d.digest()) else {
                continue;
            };
            let e = refs.entry(td.clone()).or_insert_with(|| {
                order.push(td.clone());
                (d.clone(), Vec::new())
            });
            if let Some(n) = entry_ref(d) {
                e.1.push(n);
            }
        }
        let mut out = Vec::new();
        for td in order {
            let Some((_, names)) = refs.remove(&td) else {
                continue;
            };
            let Some((md, m)) = self.platform_manifest_or_any(&td) else {
                continue;
            };
            let Ok(cd) = Digest::try_from(m.config().digest()) else {
                continue;
            };
            let Ok(cfg) = self.read_config_info(&cd) else {
                continue;
            };
            let msize = self.blob_size(&md).unwrap_or(0);
            let size = msize + m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
            let mut platform = format!("{}/{}", cfg.os, cfg.architecture);
            if let Some(v) = &cfg.variant {
                platform.push('/');
                platform.push_str(v);
            }
            out.push(ImageRecord {
                refs: names,
                target_digest: td,
                manifest_digest: md,
                config_digest: cd,
                created: cfg.created.clone(),
                size,
                labels: cfg.labels(),
                platform,
            });
        }
        Ok(out)
    }

    fn platform_manifest_or_any(&self, td: &Digest) -> Option<(Digest, ImageManifest)> {
        if let Ok(r) = self.resolve_manifest(td, &Platform::host()) {
            return Some(r);
        }
        if let Ok(AnyManifest::Index(i)) = self.read_any_manifest(td) {
            for c in i.manifests() {
                let Ok(cd) = Digest::try_from(c.digest()) else {
                    continue;
                };
                if let Ok(AnyManifest::Image(m)) = self.read_any_manifest(&cd) {
                    return Some((cd, *m));
                }
            }
        }
        None
    }

    // ---------------------------------------------------------------- layers

    fn chain_hex(chain_id: &str) -> Result<String> {
        let d = if chain_id.contains(':') {
            Digest::parse(chain_id)?
        } else {
            Digest::from_hex(chain_id)?
        };
        Ok(d.hex().to_string())
    }

    /// `layers/<hex>` for a chain id (`sha256:<hex>` or bare hex).
    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.layers_dir().join(Self::chain_hex(chain_id)?))
    }

    /// `layers/<hex>/diff`: the unpacked layer, the directory overlay uses.
    pub fn layer_diff(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.layer_dir(chain_id)?.join("diff"))
    }

    /// True if the layer was unpacked and committed.
    pub fn has_layer(&self, chain_id: &str) -> bool {
        self.layer_diff(chain_id)
            .map(|p| p.is_dir())
            .unwrap_or(false)
    }

    /// Chain ids (`sha256:<hex>`) of every committed layer.
    pub fn layers(&self) -> Result<Vec<String>> {
        let dir = self.layers_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(format!("read {}", dir.display())))? {
            let e = e.map_err(io_err(format!("read {}", dir.display())))?;
            if let Some(n) = e.file_name().to_str() {
                if is_sha256_hex(n) && e.path().join("diff").is_dir() {
                    out.push(format!("sha256:{n}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Starts unpacking a layer: returns a fresh directory in `ingest/`
    /// whose `diff/` the caller fills, then passes to [`Store::commit_layer`].
    /// Hold [`Store::lock_shared`] while unpacking so GC waits.
    pub fn begin_layer(&self, chain_id: &str) -> Result<LayerIngest> {
        let hex = Self::chain_hex(chain_id)?;
        loop {
            let dir = self.ingest_dir().join(random_name("layer"));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    let ing = LayerIngest {
                        dir,
                        hex,
                        committed: false,
                    };
                    fs::create_dir(ing.diff_path())
                        .map_err(io_err(format!("create {}", ing.diff_path().display())))?;
                    return Ok(ing);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(format!("create {}", dir.display()))(e)),
            }
        }
    }

    /// [`Store::commit_layer`] under a chain id known only after unpacking
    /// (a single layer's chain id is its diff id, computed while applying).
    pub fn commit_layer_as(&self, mut ingest: LayerIngest, chain_id: &str) -> Result<PathBuf> {
        ingest.hex = Self::chain_hex(chain_id)?;
        self.commit_layer(ingest)
    }

    /// Makes an unpacked layer visible as `layers/<hex>`: syncs the file
    /// system, then renames the directory in one step. If another process
    /// committed the same layer first, this one's copy is dropped.
    pub fn commit_layer(&self, mut ingest: LayerIngest) -> Result<PathBuf> {
        let _l = self.lock_shared()?;
        let dest = self.layers_dir().join(&ingest.hex);
        // No syncfs of the unpacked files (Docker's and containerd's
        // snapshotters do not sync them either): a killed process leaves the
        // layer whole or absent (the rename below is atomic), and a layer can
        // always be unpacked again from its blob, which is fsynced.
        if dest.join("diff").is_dir() {
            return Ok(dest.join("diff"));
        }
        match fs::rename(&ingest.dir, &dest) {
            Ok(()) => {}
            Err(e)
                if dest.join("diff").is_dir()
                    && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
            {
                return Ok(dest.join("diff"));
            }
            Err(e) => {
                return Err(io_err(format!(
                    "rename {} to {}",
                    ingest.dir.display(),
                    dest.display()
                ))(e))
            }
        }
        ingest.committed = true;
        fsync_dir(&self.layers_dir())?;
        Ok(dest.join("diff"))
    }

    /// Moves `path` into `ingest/` (atomic disappearance) and deletes it.
    fn remove_tree(&self, path: &Path) -> Result<()> {
        let trash = self.ingest_dir().join(random_name("trash"));
        fs::rename(path, &trash).map_err(io_err(format!("move {} away", path.display())))?;
        fs::remove_dir_all(&trash).map_err(io_err(format!("remove {}", trash.display())))
    }

    fn ingest_entries_older_than(&self, age: Duration) -> Result<Vec<PathBuf>> {
        let dir = self.ingest_dir();
        let now = SystemTime::now();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(format!("read {}", dir.display())))? {
            let e = e.map_err(io_err(format!("read {}", dir.display())))?;
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            let mtime = m.modified().unwrap_or(now);
            if now.duration_since(mtime).unwrap_or_default() >= age {
                out.push(e.path());
            }
        }
        Ok(out)
    }
}

/// The normalised reference of an `index.json` entry, if it has one.
fn entry_ref(d: &Descriptor) -> Option<String> {
    let raw = d.annotations().as_ref()?.get(REF_NAME_ANNOTATION)?;
    Some(match parse_reference(raw) {
        Ok(r) => r.to_string(),
        Err(_) => raw.clone(),
    })
}
