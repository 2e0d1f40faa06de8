//! `distribution/sources.json` under the store root: for each layer blob,
//! the `registry/repository` names it was pulled from or pushed to. Push
//! uses it for cross-repository mounts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use crate::store::{Digest, Store};

use super::DistError;

fn dir(store: &Store) -> PathBuf {
    store.root().join("distribution")
}

fn read(store: &Store) -> BTreeMap<String, BTreeSet<String>> {
    std::fs::read(dir(store).join("sources.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// The `registry/repo` names known to hold `digest`.
pub(crate) fn lookup(store: &Store, digest: &Digest) -> Vec<String> {
    read(store)
        .remove(&digest.to_string())
        .map(|s| s.into_iter().collect())
        .unwrap_or_default()
}

/// Records that `digests` are in `repo` (`registry/path`).
pub(crate) fn record(store: &Store, digests: &[Digest], repo: &str) -> Result<(), DistError> {
    if digests.is_empty() {
        return Ok(());
    }
    let d = dir(store);
    let io = |what: &str, p: PathBuf| {
        let what = what.to_string();
        move |source| DistError::Io {
            what,
            path: p,
            source,
        }
    };
    std::fs::create_dir_all(&d).map_err(io("create", d.clone()))?;
    let lock_path = d.join("sources.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", lock_path.clone()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io("lock", lock_path.clone())(e.into()))?;
    let mut all = read(store);
    for dg in digests {
        all.entry(dg.to_string())
            .or_default()
            .insert(repo.to_string());
    }
    let data = serde_json::to_vec(&all).map_err(|e| DistError::Other(e.to_string()))?;
    let tmp = d.join(format!("sources.json.{}.tmp", std::process::id()));
    let dest = d.join("sources.json");
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io("write", dest))
}
