//! `check`: verify every blob and every reference (for `barge system check`).

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::manifest::{is_config_media_type, is_index_media_type, is_manifest_media_type};
use super::{io_err, AnyManifest, Digest, Result, Store, StoreError};

/// The kinds of problem `check` finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A blob's content does not hash to its name.
    CorruptBlob,
    /// A referenced blob is not stored.
    MissingBlob,
    /// A blob's size differs from the descriptor that references it.
    SizeMismatch,
    /// A manifest, index or config does not parse.
    InvalidContent,
    /// `index.json`, `oci-layout` or `pins.json` is damaged.
    BadLayout,
    /// Something in `blobs/sha256/` that is not a blob named by its digest.
    StrayFile,
    /// A `layers/<chain>` directory without `diff/`.
    IncompleteLayer,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::CorruptBlob => "corrupt blob",
            ProblemKind::MissingBlob => "missing blob",
            ProblemKind::SizeMismatch => "size mismatch",
            ProblemKind::InvalidContent => "invalid content",
            ProblemKind::BadLayout => "bad layout",
            ProblemKind::StrayFile => "stray file",
            ProblemKind::IncompleteLayer => "incomplete layer",
        })
    }
}

/// One problem found by [`Store::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The digest, reference or path concerned.
    pub subject: String,
    /// Details (what references it, what was expected).
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.kind, self.subject, self.detail)
    }
}

/// The result of [`Store::check`].
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Blobs whose digest was verified.
    pub blobs_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Manifests (and indexes) parsed.
    pub manifests_checked: usize,
    /// Everything wrong; empty means the store is sound.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Verifies every blob's digest, that every blob referenced from
    /// `index.json` and the pins exists with the right size, and that every
    /// referenced manifest, index and config parses. Takes the store lock
    /// shared (waits for a running GC). Missing manifests of an index are
    /// not problems (only some platforms of an image are usually pulled).
    pub fn check(&self) -> Result<CheckReport> {
        let _l = self.lock_shared()?;
        let mut rep = CheckReport::default();
        let problem = |rep: &mut CheckReport, kind, subject: String, detail: String| {
            rep.problems.push(Problem {
                kind,
                subject,
                detail,
            })
        };

        // 1. Every blob hashes to its name.
        let blobs = self.blobs_dir();
        let mut corrupt: HashSet<Digest> = HashSet::new();
        let mut entries: Vec<_> = fs::read_dir(&blobs)
            .map_err(io_err(format!("read {}", blobs.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(io_err(format!("read {}", blobs.display())))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = Digest::from_hex(&name) else {
                problem(
                    &mut rep,
                    ProblemKind::StrayFile,
                    e.path().display().to_string(),
                    "not named by a sha256 digest; remove it".into(),
                );
                continue;
            };
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            if !is_file {
                problem(
                    &mut rep,
                    ProblemKind::StrayFile,
                    e.path().display().to_string(),
                    "not a regular file; remove it".into(),
                );
                continue;
            }
            let mut f = self.open_blob(&d)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io_err(format!("read blob {d}")))?;
                if n == 0 {
                    break;
                }
                rep.bytes_checked += n as u64;
                h.update(&buf[..n]);
            }
            rep.blobs_checked += 1;
            let actual = hex::encode(h.finalize());
            if actual != d.hex() {
                corrupt.insert(d.clone());
                problem(
                    &mut rep,
                    ProblemKind::CorruptBlob,
                    d.to_string(),
                    format!("content hashes to sha256:{actual}; remove the blob and pull or load its image again"),
                );
            }
        }

        // 2. References: index.json and pins.
        let mut stack: Vec<(Digest, String, u64, String)> = Vec::new(); // digest, media type, size (u64::MAX = unknown), referrer
        match self.read_index() {
            Ok(idx) => {
                for d in idx.manifests {
                    let who = match super::entry_ref(&d) {
                        Some(r) => format!("index.json entry {r}"),
                        None => "index.json (untagged entry)".to_string(),
                    };
                    match Digest::try_from(d.digest()) {
                        Ok(dg) => stack.push((dg, d.media_type().to_string(), d.size(), who)),
                        Err(e) => problem(
                            &mut rep,
                            ProblemKind::BadLayout,
                            "index.json".into(),
                            format!("{who}: {e}"),
                        ),
                    }
                }
            }
            Err(e) => problem(
                &mut rep,
                ProblemKind::BadLayout,
                "index.json".into(),
                e.to_string(),
            ),
        }
        match self.read_pins() {
            Ok(p) => {
                for (name, ds) in p.pins {
                    for d in ds {
                        stack.push((d, String::new(), u64::MAX, format!("pin {name}")));
                    }
                }
            }
            Err(e) => problem(
                &mut rep,
                ProblemKind::BadLayout,
                "pins.json".into(),
                e.to_string(),
            ),
        }
        let mut seen: HashSet<(Digest, String)> = HashSet::new();
        while let Some((d, mt, size, who)) = stack.pop() {
            if !seen.insert((d.clone(), mt.clone())) {
                continue;
            }
            let child_of_index = who.starts_with("index ");
            let actual = match self.blob_size(&d) {
                Ok(s) => s,
                Err(StoreError::BlobNotFound { .. }) => {
                    if !child_of_index {
                        problem(
                            &mut rep,
                            ProblemKind::MissingBlob,
                            d.to_string(),
                            format!("referenced by {who}"),
                        );
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if size != u64::MAX && size != actual {
                problem(
                    &mut rep,
                    ProblemKind::SizeMismatch,
                    d.to_string(),
                    format!("{who} says {size} bytes, the blob has {actual}"),
                );
            }
            if corrupt.contains(&d) {
                continue; // already reported; its content cannot be trusted
            }
            let json = is_manifest_media_type(&mt) || is_index_media_type(&mt) || mt.is_empty();
            if is_config_media_type(&mt) {
                if let Err(e) = self
                    .read_config_info(&d)
                    .and_then(|c| c.chain_ids().map(|_| c))
                {
                    problem(
                        &mut rep,
                        ProblemKind::InvalidContent,
                        d.to_string(),
                        format!("image config referenced by {who}: {e}"),
                    );
                }
                continue;
            }
            if !json {
                continue;
            }
            match self.read_any_manifest(&d) {
                Ok(AnyManifest::Image(m)) => {
                    rep.manifests_checked += 1;
                    let me = format!("manifest {d}");
                    let c = m.config();
                    match Digest::try_from(c.digest()) {
                        Ok(cd) => {
                            if is_config_media_type(c.media_type().as_ref()) {
                                if let Ok(cfg) = self.read_config_info(&cd) {
                                    if cfg.rootfs.diff_ids.len() != m.layers().len() {
                                        problem(
                                            &mut rep,
                                            ProblemKind::InvalidContent,
                                            d.to_string(),
                                            format!(
                                                "manifest lists {} layers but its config {cd} has {} diff_ids",
                                                m.layers().len(),
                                                cfg.rootfs.diff_ids.len()
                                            ),
                                        );
                                    }
                                }
                            }
                            stack.push((cd, c.media_type().to_string(), c.size(), me.clone()));
                        }
                        Err(e) => problem(
                            &mut rep,
                            ProblemKind::InvalidContent,
                            d.to_string(),
                            e.to_string(),
                        ),
                    }
                    for l in m.layers() {
                        match Digest::try_from(l.digest()) {
                            Ok(ld) => {
                                stack.push((ld, l.media_type().to_string(), l.size(), me.clone()))
                            }
                            Err(e) => problem(
                                &mut rep,
                                ProblemKind::InvalidContent,
                                d.to_string(),
                                e.to_string(),
                            ),
                        }
                    }
                }
                Ok(AnyManifest::Index(i)) => {
                    rep.manifests_checked += 1;
                    for c in i.manifests() {
                        match Digest::try_from(c.digest()) {
                            Ok(cd) => stack.push((
                                cd,
                                c.media_type().to_string(),
                                c.size(),
                                format!("index {d}"),
                            )),
                            Err(e) => problem(
                                &mut rep,
                                ProblemKind::InvalidContent,
                                d.to_string(),
                                e.to_string(),
                            ),
                        }
                    }
                }
                Err(StoreError::UnsupportedManifest { .. })
                | Err(StoreError::InvalidJson { .. })
                | Err(StoreError::TooLarge { .. })
                    if mt.is_empty() => {} // a pinned plain blob
                Err(e) => problem(
                    &mut rep,
                    ProblemKind::InvalidContent,
                    d.to_string(),
                    format!("referenced by {who}: {e}"),
                ),
            }
        }

        // 3. Unpacked layers.
        let layers = self.layers_dir();
        for e in fs::read_dir(&layers).map_err(io_err(format!("read {}", layers.display())))? {
            let e = e.map_err(io_err(format!("read {}", layers.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if super::is_sha256_hex(&name) && !e.path().join("diff").is_dir() {
                problem(
                    &mut rep,
                    ProblemKind::IncompleteLayer,
                    format!("sha256:{name}"),
                    "layer directory has no diff/; gc removes it".into(),
                );
            }
        }
        Ok(rep)
    }
}
