//! Registry metadata beside the content store. Blocking file operations;
//! handlers call them from `spawn_blocking`.
//!
//! Layout under the root (the root is also a Barge/OCI image layout):
//!
//! ```text
//! blobs/sha256/<hex>                                content (owned by the Store)
//! repositories/<name>/_layers/<hex>                 empty file: blob linked into the repo
//! repositories/<name>/_manifests/revisions/<hex>    manifest in the repo; holds its media type
//! repositories/<name>/_manifests/tags/<tag>         holds "sha256:<hex>"
//! repositories/<name>/_referrers/<subject hex>/<hex> descriptor (JSON) of a referrer
//! uploads/<uuid>/data                               upload in progress (same file system)
//! uploads/<uuid>/info                               "<repo name>\n<unix seconds started>\n"
//! ```
//!
//! Every path component comes from a validated name, tag, upload id or
//! digest (see `route`). Files that are replaced are written to a temp file
//! in the same directory (names starting with `.`) and renamed. A finished
//! upload is verified and renamed into `blobs/` under the store's shared lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use barge_image::store::{Digest, Store};
use sha2::{Digest as _, Sha256};

use crate::error::{io_fault, ApiError, Code, RegistryError};
use crate::route::{valid_name, valid_tag};

/// Buffer size for hashing and copying files.
pub const IO_BUF: usize = 1 << 20;

/// The registry's storage: the content store plus repository metadata.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
    root: PathBuf,
}

/// A random UUID (version 4) string.
pub fn new_uuid() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::internal(format!("random: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `data` to `path` through a temp file in the same directory.
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}",
        new_uuid().map_err(|e| io::Error::other(e.message))?
    ));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_opt(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hashes a whole file.
pub fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; IO_BUF];
    let mut n_total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    let d = Digest::from_hex(&hex::encode(h.finalize())).map_err(io::Error::other)?;
    Ok((d, n_total))
}

impl Registry {
    /// Opens (creating if needed) the storage at `root`.
    pub fn open(root: &Path) -> Result<Registry, RegistryError> {
        let store = Store::open(root).map_err(|source| RegistryError::Storage {
            root: root.to_path_buf(),
            source,
        })?;
        for d in ["repositories", "uploads"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|source| RegistryError::Io {
                what: format!("create {}", p.display()),
                source,
            })?;
        }
        Ok(Registry {
            store,
            root: root.to_path_buf(),
        })
    }

    /// The content store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    fn layer_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_layers").join(d.hex())
    }

    fn revision_path(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_manifests/revisions")
            .join(d.hex())
    }

    fn tags_dir(&self, name: &str) -> PathBuf {
        self.repo_dir(name).join("_manifests/tags")
    }

    fn referrers_dir(&self, name: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(name).join("_referrers").join(subject.hex())
    }

    /// True if the repository has any content.
    pub fn repo_exists(&self, name: &str) -> bool {
        let d = self.repo_dir(name);
        d.join("_manifests").is_dir() || d.join("_layers").is_dir()
    }

    /// Links a stored blob into a repository.
    pub fn link_blob(&self, name: &str, d: &Digest) -> Result<(), ApiError> {
        let p = self.layer_link(name, d);
        if p.is_file() {
            return Ok(());
        }
        let dir = self.repo_dir(name).join("_layers");
        fs::create_dir_all(&dir).map_err(io_fault(format!("create {}", dir.display())))?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_fault(format!("link blob {d} into {name}")))?;
        Ok(())
    }

    /// The size of a blob if it is stored and linked into `name`.
    pub fn linked_blob_size(&self, name: &str, d: &Digest) -> Option<u64> {
        if !self.layer_link(name, d).is_file() {
            return None;
        }
        fs::metadata(self.store.blob_path(d))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Removes a blob link; false if it was not linked.
    pub fn unlink_blob(&self, name: &str, d: &Digest) -> Result<bool, ApiError> {
        remove_opt(&self.layer_link(name, d)).map_err(io_fault(format!("unlink blob {d}")))
    }

    /// Records a manifest revision (the manifest bytes must be stored).
    pub fn put_revision(&self, name: &str, d: &Digest, media_type: &str) -> Result<(), ApiError> {
        let p = self.revision_path(name, d);
        if let Ok(Some(old)) = read_opt(&p) {
            if old == media_type.as_bytes() {
                return Ok(());
            }
        }
        write_atomic(&p, media_type.as_bytes()).map_err(io_fault(format!("record manifest {d}")))
    }

    /// The media type of a manifest revision in `name`, if it exists and
    /// its bytes are stored.
    pub fn revision(&self, name: &str, d: &Digest) -> Result<Option<String>, ApiError> {
        let data = read_opt(&self.revision_path(name, d))
            .map_err(io_fault(format!("read manifest link {d}")))?;
        Ok(match data {
            Some(mt) if self.store.has_blob(d) => Some(String::from_utf8_lossy(&mt).into_owned()),
            _ => None,
        })
    }

    /// Removes a manifest revision; false if absent.
    pub fn delete_revision(&self, name: &str, d: &Digest) -> Result<bool, ApiError> {
        remove_opt(&self.revision_path(name, d)).map_err(io_fault(format!("remove manifest {d}")))
    }

    /// Points a tag at a manifest.
    pub fn set_tag(&self, name: &str, tag: &str, d: &Digest) -> Result<(), ApiError> {
        write_atomic(&self.tags_dir(name).join(tag), d.to_string().as_bytes())
            .map_err(io_fault(format!("write tag {tag}")))
    }

    /// The manifest a tag points at.
    pub fn tag(&self, name: &str, tag: &str) -> Result<Option<Digest>, ApiError> {
        let data = read_opt(&self.tags_dir(name).join(tag))
            .map_err(io_fault(format!("read tag {tag}")))?;
        Ok(data.and_then(|d| Digest::parse(String::from_utf8_lossy(&d).trim()).ok()))
    }

    /// Removes a tag; false if absent.
    pub fn delete_tag(&self, name: &str, tag: &str) -> Result<bool, ApiError> {
        remove_opt(&self.tags_dir(name).join(tag)).map_err(io_fault(format!("remove tag {tag}")))
    }

    /// The sorted tags of a repository; `None` if the repository is unknown.
    pub fn tags(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let dir = self.tags_dir(name);
        let mut tags = Vec::new();
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(io_fault(format!("list {}", dir.display())))?;
                    if let Some(t) = e.file_name().to_str() {
                        if valid_tag(t) {
                            tags.push(t.to_string());
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_fault(format!("list {}", dir.display()))(e)),
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// Removes every tag of `name` pointing at `d`.
    pub fn delete_tags_of(&self, name: &str, d: &Digest) -> Result<(), ApiError> {
        for t in self.tags(name)?.unwrap_or_default() {
            if self.tag(name, &t)?.as_ref() == Some(d) {
                self.delete_tag(name, &t)?;
            }
        }
        Ok(())
    }

    /// All repositories, sorted.
    pub fn catalog(&self) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        let base = self.root.join("repositories");
        let mut stack = vec![(base.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_fault(format!("list {}", dir.display()))(e)),
            };
            for e in rd {
                let e = e.map_err(io_fault(format!("list {}", dir.display())))?;
                let Some(n) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if n.starts_with('_') || n.starts_with('.') || !e.path().is_dir() {
                    continue;
                }
                let name = if prefix.is_empty() {
                    n
                } else {
                    format!("{prefix}/{n}")
                };
                if !valid_name(&name) {
                    continue;
                }
                if self.repo_exists(&name) {
                    out.push(name.clone());
                }
                stack.push((e.path(), name));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Records `d` (described by `desc`) as a referrer of `subject`.
    pub fn add_referrer(
        &self,
        name: &str,
        subject: &Digest,
        d: &Digest,
        desc: &serde_json::Value,
    ) -> Result<(), ApiError> {
        let p = self.referrers_dir(name, subject).join(d.hex());
        write_atomic(&p, desc.to_string().as_bytes())
            .map_err(io_fault(format!("record referrer {d}")))
    }

    /// Forgets `d` as a referrer of `subject`.
    pub fn remove_referrer(
        &self,
        name: &str,
        subject: &Digest,
        d: &Digest,
    ) -> Result<(), ApiError> {
        let dir = self.referrers_dir(name, subject);
        remove_opt(&dir.join(d.hex())).map_err(io_fault(format!("remove referrer {d}")))?;
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    /// The descriptors of the manifests in `name` whose subject is `subject`
    /// (only those whose revision still exists), sorted by digest.
    pub fn referrers(
        &self,
        name: &str,
        subject: &Digest,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        let dir = self.referrers_dir(name, subject);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_fault(format!("list {}", dir.display()))(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(io_fault(format!("list {}", dir.display())))?;
            let Some(Ok(d)) = e.file_name().to_str().map(Digest::from_hex) else {
                continue;
            };
            if self.revision(name, &d)?.is_none() {
                continue;
            }
            let data = match read_opt(&e.path()) {
                Ok(Some(data)) => data,
                _ => continue,
            };
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) {
                out.push((d, v));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    // ------------------------------------------------------------ uploads

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// The data file of an upload.
    pub fn upload_data(&self, id: &str) -> PathBuf {
        self.upload_dir(id).join("data")
    }

    /// Starts an upload session for `name`; returns its id.
    pub fn create_upload(&self, name: &str) -> Result<String, ApiError> {
        let id = new_uuid()?;
        let dir = self.upload_dir(&id);
        fs::create_dir_all(&dir).map_err(io_fault(format!("create {}", dir.display())))?;
        File::create(dir.join("data")).map_err(io_fault("create upload file"))?;
        fs::write(dir.join("info"), format!("{name}\n{}\n", unix_now()))
            .map_err(io_fault("write upload info"))?;
        Ok(id)
    }

    /// The current size of upload `id` if it exists and belongs to `name`.
    pub fn upload_size(&self, name: &str, id: &str) -> Result<Option<u64>, ApiError> {
        let info =
            read_opt(&self.upload_dir(id).join("info")).map_err(io_fault("read upload info"))?;
        let Some(info) = info else {
            return Ok(None);
        };
        let info = String::from_utf8_lossy(&info);
        if info.lines().next() != Some(name) {
            return Ok(None);
        }
        match fs::metadata(self.upload_data(id)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_fault("stat upload")(e)),
        }
    }

    /// Removes an upload session.
    pub fn delete_upload(&self, id: &str) -> Result<(), ApiError> {
        match fs::remove_dir_all(self.upload_dir(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_fault("remove upload")(e)),
        }
    }

    /// Completes upload `id`: checks its content against `expected` (using
    /// `known` when the digest was computed while writing, else hashing the
    /// file), then renames it into the store and links it into `name`. On a
    /// mismatch the upload is removed and nothing is stored.
    pub fn finish_upload(
        &self,
        name: &str,
        id: &str,
        expected: &Digest,
        known: Option<Digest>,
    ) -> Result<u64, ApiError> {
        let data = self.upload_data(id);
        let (digest, size) = match known {
            Some(d) => {
                let size = fs::metadata(&data).map_err(io_fault("stat upload"))?.len();
                (d, size)
            }
            None => hash_file(&data).map_err(io_fault("hash upload"))?,
        };
        if digest != *expected {
            self.delete_upload(id)?;
            return Err(ApiError::new(
                Code::DigestInvalid,
                format!("the uploaded content has digest {digest}, not {expected}"),
            )
            .with_detail(
                serde_json::json!({"expected": expected.to_string(), "actual": digest.to_string()}),
            ));
        }
        {
            let _lock = self.store.lock_shared()?;
            let dest = self.store.blob_path(expected);
            if !dest.is_file() {
                File::open(&data)
                    .and_then(|f| f.sync_all())
                    .map_err(io_fault("fsync upload"))?;
                fs::rename(&data, &dest)
                    .map_err(io_fault(format!("move upload into {}", dest.display())))?;
                if let Some(dir) = dest.parent() {
                    let _ = File::open(dir).and_then(|f| f.sync_all());
                }
            }
        }
        self.delete_upload(id)?;
        self.link_blob(name, expected)?;
        Ok(size)
    }

    /// Removes upload sessions not written to for `max_age_secs`.
    pub fn purge_uploads(&self, max_age_secs: u64) {
        let Ok(rd) = fs::read_dir(self.root.join("uploads")) else {
            return;
        };
        let now = unix_now();
        for e in rd.flatten() {
            // The last write to the data, else the start of the session.
            let touched = fs::metadata(e.path().join("data"))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .or_else(|| {
                    fs::read_to_string(e.path().join("info"))
                        .ok()
                        .and_then(|s| s.lines().nth(1).and_then(|l| l.parse::<u64>().ok()))
                });
            if touched.is_some_and(|t| now.saturating_sub(t) > max_age_secs) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The pin (in the store's `pins.json`) that keeps the registry's blobs
/// alive through a store GC.
pub const REGISTRY_PIN: &str = "barge-registry";

/// Garbage-collects a registry root: pins every blob linked into a
/// repository or recorded as a manifest revision (so the store's own GC,
/// which marks from `index.json` and pins, keeps them), then runs the
/// store's GC, which removes every other blob, and drops upload sessions
/// older than a day. Run it while no server writes to `root` (as with
/// distribution's `garbage-collect`): a blob uploaded during the run may be
/// removed.
pub fn gc(root: &Path) -> Result<barge_image::store::GcReport, RegistryError> {
    let reg = Registry::open(root)?;
    let store_err = |source| RegistryError::Storage {
        root: root.to_path_buf(),
        source,
    };
    let mut digests = Vec::new();
    let mut stack = vec![root.join("repositories")];
    while let Some(dir) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(RegistryError::Io {
                    what: format!("list {}", dir.display()),
                    source,
                })
            }
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !p.is_dir() {
                continue;
            }
            if name == "_layers" || name == "revisions" {
                for f in fs::read_dir(&p).into_iter().flatten().flatten() {
                    if let Some(Ok(d)) = f.file_name().to_str().map(Digest::from_hex) {
                        digests.push(d);
                    }
                }
            } else if name != "_referrers" && name != "tags" {
                stack.push(p);
            }
        }
    }
    digests.sort();
    digests.dedup();
    reg.store().pin(REGISTRY_PIN, &digests).map_err(store_err)?;
    reg.purge_uploads(24 * 3600);
    reg.store().gc(&|_| true).map_err(store_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_revisions_and_links_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        assert!(!r.repo_exists("a/b"));
        assert_eq!(r.tags("a/b").unwrap(), None);
        let info = r.store().write_blob_bytes(b"hello").unwrap();
        r.link_blob("a/b", &info.digest).unwrap();
        assert!(r.repo_exists("a/b"));
        assert_eq!(r.linked_blob_size("a/b", &info.digest), Some(5));
        assert_eq!(r.linked_blob_size("a", &info.digest), None);
        r.put_revision("a/b", &info.digest, "x/y").unwrap();
        assert_eq!(
            r.revision("a/b", &info.digest).unwrap().as_deref(),
            Some("x/y")
        );
        r.set_tag("a/b", "v1", &info.digest).unwrap();
        r.set_tag("a/b", "v0", &info.digest).unwrap();
        assert_eq!(r.tags("a/b").unwrap().unwrap(), vec!["v0", "v1"]);
        assert_eq!(r.catalog().unwrap(), vec!["a/b"]);
        r.delete_tags_of("a/b", &info.digest).unwrap();
        assert!(r.tags("a/b").unwrap().unwrap().is_empty());
    }

    #[test]
    fn gc_keeps_linked_blobs_and_removes_unlinked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let kept = r.store().write_blob_bytes(b"kept").unwrap().digest;
        let manifest = r.store().write_blob_bytes(b"{}").unwrap().digest;
        let gone = r.store().write_blob_bytes(b"gone").unwrap().digest;
        r.link_blob("x/y", &kept).unwrap();
        r.link_blob("x/y", &gone).unwrap();
        r.put_revision("x", &manifest, "application/x").unwrap();
        r.unlink_blob("x/y", &gone).unwrap();
        let report = gc(dir.path()).unwrap();
        assert_eq!(report.blobs_removed, vec![gone.clone()]);
        assert!(r.store().has_blob(&kept));
        assert!(r.store().has_blob(&manifest));
        assert!(!r.store().has_blob(&gone));
    }

    #[test]
    fn finish_upload_rejects_a_wrong_digest_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let id = r.create_upload("x").unwrap();
        fs::write(r.upload_data(&id), b"abc").unwrap();
        let wrong = Digest::of_bytes(b"abd");
        let e = r.finish_upload("x", &id, &wrong, None).unwrap_err();
        assert_eq!(e.code, Code::DigestInvalid);
        assert!(!r.store().has_blob(&wrong));
        assert_eq!(r.upload_size("x", &id).unwrap(), None);
        let id = r.create_upload("x").unwrap();
        assert_eq!(r.upload_size("y", &id).unwrap(), None);
        fs::write(r.upload_data(&id), b"abc").unwrap();
        let good = Digest::of_bytes(b"abc");
        assert_eq!(r.finish_upload("x", &id, &good, None).unwrap(), 3);
        assert!(r.store().has_blob(&good));
        assert_eq!(r.linked_blob_size("x", &good), Some(3));
    }
}
