//! Garbage collection: mark from `index.json` and the pins, sweep the rest.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use super::manifest::{is_config_media_type, is_index_media_type, is_manifest_media_type};
use super::{io_err, AnyManifest, Digest, Result, Store, StoreError};

/// Knobs of [`Store::gc_with`].
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Leftovers in `ingest/` younger than this are kept (a writer that does
    /// not take the store lock may still be using them).
    pub ingest_grace: Duration,
    /// Report what would be removed without removing it.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            ingest_grace: Duration::from_secs(5 * 60),
            dry_run: false,
        }
    }
}

/// What [`Store::gc`] removed.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Blobs removed.
    pub blobs_removed: Vec<Digest>,
    /// Their total size.
    pub bytes_freed: u64,
    /// Unpacked layers removed (chain ids, `sha256:<hex>`).
    pub layers_removed: Vec<String>,
    /// Leftover temp files / dirs removed from `ingest/`.
    pub ingest_removed: usize,
}

/// Blobs and chain ids reachable from the roots.
pub(crate) struct Marks {
    pub blobs: HashSet<Digest>,
    pub chains: HashSet<String>,
}

impl Store {
    /// [`Store::gc_with`] with default options.
    pub fn gc(&self, keep_layers: &dyn Fn(&str) -> bool) -> Result<GcReport> {
        self.gc_with(keep_layers, &GcOptions::default())
    }

    /// Removes blobs not reachable from `index.json` or a pin (manifests →
    /// config and layers, indexes → manifests), `ingest/` leftovers older
    /// than the grace period, and unpacked layers that no stored image uses
    /// and `keep_layers(chain_id)` does not keep (chain ids are passed as
    /// `sha256:<hex>`). Takes the store lock exclusively. If a referenced
    /// manifest or config cannot be read, nothing is removed.
    pub fn gc_with(
        &self,
        keep_layers: &dyn Fn(&str) -> bool,
        opts: &GcOptions,
    ) -> Result<GcReport> {
        let _x = self.lock_exclusive()?;
        let marks = self.mark()?;
        let mut report = GcReport::default();

        let blobs = self.blobs_dir();
        let mut names = Vec::new();
        for e in fs::read_dir(&blobs).map_err(io_err(format!("read {}", blobs.display())))? {
            let e = e.map_err(io_err(format!("read {}", blobs.display())))?;
            if let Some(n) = e.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        for n in names {
            // Files that are not named by a digest are not ours to judge.
            let Ok(d) = Digest::from_hex(&n) else {
                continue;
            };
            if marks.blobs.contains(&d) {
                continue;
            }
            let p = self.blob_path(&d);
            let size = p.symlink_metadata().map(|m| m.len()).unwrap_or(0);
            if !opts.dry_run {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(format!("remove blob {d}"))(e)),
                }
            }
            report.bytes_freed += size;
            report.blobs_removed.push(d);
        }

        let layers = self.layers_dir();
        let mut lnames = Vec::new();
        for e in fs::read_dir(&layers).map_err(io_err(format!("read {}", layers.display())))? {
            let e = e.map_err(io_err(format!("read {}", layers.display())))?;
            if let Some(n) = e.file_name().to_str() {
                lnames.push(n.to_string());
            }
        }
        for n in lnames {
            if !super::is_sha256_hex(&n) {
                continue;
            }
            let chain = format!("sha256:{n}");
            if marks.chains.contains(&chain) || keep_layers(&chain) {
                continue;
            }
            if !opts.dry_run {
                self.remove_tree(&layers.join(&n))?;
            }
            report.layers_removed.push(chain);
        }

        for p in self.ingest_entries_older_than(opts.ingest_grace)? {
            if !opts.dry_run {
                let r = if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                match r {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(format!("remove {}", p.display()))(e)),
                }
            }
            report.ingest_removed += 1;
        }
        if !opts.dry_run {
            super::fsync_dir(&blobs)?;
            super::fsync_dir(&layers)?;
        }
        Ok(report)
    }

    /// Everything reachable from `index.json` and the pins.
    pub(crate) fn mark(&self) -> Result<Marks> {
        let mut marks = Marks {
            blobs: HashSet::new(),
            chains: HashSet::new(),
        };
        // (digest, media type hint, is a root)
        let mut stack: Vec<(Digest, String, bool)> = Vec::new();
        for d in self.read_index()?.manifests {
            let dg = Digest::try_from(d.digest()).map_err(|e| StoreError::GcBlocked {
                reason: format!("index.json lists a bad digest: {e}"),
            })?;
            stack.push((dg, d.media_type().to_string(), true));
        }
        for (_, ds) in self.read_pins()?.pins {
            for d in ds {
                stack.push((d, String::new(), true));
            }
        }
        let blocked = |d: &Digest, e: StoreError| StoreError::GcBlocked {
            reason: format!("cannot read {d}: {e}"),
        };
        while let Some((d, mt, root)) = stack.pop() {
            if !marks.blobs.insert(d.clone()) {
                continue;
            }
            if !self.has_blob(&d) {
                // Nothing to follow (e.g. a platform of an index never pulled).
                continue;
            }
            let parse =
                is_manifest_media_type(&mt) || is_index_media_type(&mt) || (root && mt.is_empty());
            let parse = parse || (root && !mt.contains("layer"));
            if !parse {
                if is_config_media_type(&mt) {
                    let cfg = self.read_config_info(&d).map_err(|e| blocked(&d, e))?;
                    let chains = cfg.chain_ids().map_err(|e| blocked(&d, e))?;
                    marks.chains.extend(chains);
                }
                continue;
            }
            match self.read_any_manifest(&d) {
                Ok(AnyManifest::Image(m)) => {
                    let c = m.config();
                    let cd = Digest::try_from(c.digest()).map_err(|e| blocked(&d, e))?;
                    stack.push((cd, c.media_type().to_string(), false));
                    for l in m.layers() {
                        let ld = Digest::try_from(l.digest()).map_err(|e| blocked(&d, e))?;
                        marks.blobs.insert(ld);
                    }
                    if let Some(s) = m.subject() {
                        if let Ok(sd) = Digest::try_from(s.digest()) {
                            stack.push((sd, s.media_type().to_string(), false));
                        }
                    }
                }
                Ok(AnyManifest::Index(i)) => {
                    for c in i.manifests() {
                        let cd = Digest::try_from(c.digest()).map_err(|e| blocked(&d, e))?;
                        stack.push((cd, c.media_type().to_string(), false));
                    }
                }
                // A pinned or tagged blob that is not a manifest: keep just it.
                Err(StoreError::UnsupportedManifest { .. })
                | Err(StoreError::InvalidJson { .. })
                | Err(StoreError::TooLarge { .. })
                    if root && !is_manifest_media_type(&mt) && !is_index_media_type(&mt) => {}
                Err(e) => return Err(blocked(&d, e)),
            }
        }
        Ok(marks)
    }
}
