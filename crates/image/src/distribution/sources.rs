//! `distribution/sources.json` under the store root: for each layer blob,
//! the `registry/repository` names it was pulled from or pushed to. Push
//! uses it for cross-repository mounts. Also the read-modify-write of such
//! small JSON maps under `distribution/`, shared with `compress`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{Digest, Store};

use super::DistError;

fn dir(store: &Store) -> PathBuf {
    store.root().join("distribution")
}

/// Reads `distribution/<file>` (a JSON map); missing or unreadable: empty.
pub(crate) fn read_map<T: DeserializeOwned + Default>(store: &Store, file: &str) -> T {
    std::fs::read(dir(store).join(file))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// Read-modify-writes `distribution/<file>` under an flock of
/// `distribution/<file>.lock`: temp file, fsync, rename.
pub(crate) fn update_map<T: DeserializeOwned + Serialize + Default>(
    store: &Store,
    file: &str,
    change: impl FnOnce(&mut T),
) -> Result<(), DistError> {
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
    let lock_path = d.join(format!("{file}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", lock_path.clone()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io("lock", lock_path.clone())(e.into()))?;
    let mut all: T = read_map(store, file);
    change(&mut all);
    let data = serde_json::to_vec(&all).map_err(|e| DistError::Other(e.to_string()))?;
    let tmp = d.join(format!("{file}.{}.tmp", std::process::id()));
    let dest = d.join(file);
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

/// The `registry/repo` names known to hold `digest`.
pub(crate) fn lookup(store: &Store, digest: &Digest) -> Vec<String> {
    read_map::<BTreeMap<String, BTreeSet<String>>>(store, "sources.json")
        .remove(&digest.to_string())
        .map(|s| s.into_iter().collect())
        .unwrap_or_default()
}

/// Records that `digests` are in `repo` (`registry/path`).
pub(crate) fn record(store: &Store, digests: &[Digest], repo: &str) -> Result<(), DistError> {
    if digests.is_empty() {
        return Ok(());
    }
    update_map(
        store,
        "sources.json",
        |all: &mut BTreeMap<String, BTreeSet<String>>| {
            for dg in digests {
                all.entry(dg.to_string())
                    .or_default()
                    .insert(repo.to_string());
            }
        },
    )
}
