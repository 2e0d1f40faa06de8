//! Images as root filesystems: every layer of an image unpacked once (in
//! parallel, into `layers/<chain id>/diff`, with overlayfs whiteouts) and
//! stacked with overlayfs, read-only for `image mount` or with an upper dir
//! for a container.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::layer::{self, ApplyOptions, WhiteoutMode};
use crate::store::{chain_ids, Digest, ImageRef, Store, StoreError, MAX_CONFIG_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {index} ({digest}) of the image: {source}")]
    Layer {
        index: usize,
        digest: String,
        source: layer::LayerError,
    },
    #[error("layer {index} ({digest}) unpacks to {got}, but the image config says {want}: the layer blob is not what the image was built from")]
    DiffIdMismatch {
        index: usize,
        digest: String,
        got: String,
        want: String,
    },
    #[error("the image config lists {diff_ids} layers but its manifest has {layers}")]
    LayerCount { diff_ids: usize, layers: usize },
    #[error("a layer unpacking thread panicked")]
    WorkerPanicked,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `rootfs.diff_ids` of an image config.
fn diff_ids(store: &Store, config: &Digest) -> Result<Vec<String>, SnapshotError> {
    let v: serde_json::Value = store.read_json(config, MAX_CONFIG_BYTES)?;
    Ok(v.pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// Unpack every layer of `img` that is not unpacked yet, several at once,
/// and return the layer dirs bottom first. The caller holds the store's
/// shared lock across this and its use of the dirs.
pub fn unpack(store: &Store, img: &ImageRef) -> Result<Vec<PathBuf>, SnapshotError> {
    let ids = diff_ids(store, &img.config_digest)?;
    let layers = img.manifest.layers();
    if ids.len() != layers.len() {
        return Err(SnapshotError::LayerCount {
            diff_ids: ids.len(),
            layers: layers.len(),
        });
    }
    let chains = chain_ids(&ids);
    let missing: Vec<usize> = (0..chains.len())
        .filter(|i| !store.has_layer(&chains[*i]))
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<(), SnapshotError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.min(missing.len()))
            .map(|_| {
                s.spawn(|| -> Result<(), SnapshotError> {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&i) = missing.get(k) else {
                            return Ok(());
                        };
                        unpack_one(store, i, &layers[i], &ids[i], &chains[i])?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(SnapshotError::WorkerPanicked)))
            .collect()
    });
    for r in results {
        r?;
    }
    chains.iter().map(|c| Ok(store.layer_diff(c)?)).collect()
}

fn unpack_one(
    store: &Store,
    index: usize,
    desc: &oci_spec::image::Descriptor,
    diff_id: &str,
    chain: &str,
) -> Result<(), SnapshotError> {
    let digest = Digest::try_from(desc.digest())?;
    let ingest = store.begin_layer(chain)?;
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::OverlayFs,
        ..ApplyOptions::default()
    };
    let stats =
        layer::apply(store.open_blob(&digest)?, &ingest.diff_path(), &opts).map_err(|source| {
            SnapshotError::Layer {
                index,
                digest: digest.to_string(),
                source,
            }
        })?;
    if stats.diff_id != diff_id {
        return Err(SnapshotError::DiffIdMismatch {
            index,
            digest: digest.to_string(),
            got: stats.diff_id,
            want: diff_id.to_string(),
        });
    }
    store.commit_layer(ingest)?;
    Ok(())
}

/// overlayfs `lowerdir=` wants the top layer first.
fn lowerdir(lowers: &[PathBuf]) -> String {
    lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount the layers read-only at `target` (one layer: a read-only bind).
pub fn mount_readonly(lowers: &[PathBuf], target: &Path) -> Result<(), SnapshotError> {
    std::fs::create_dir_all(target).map_err(io("create mount point", target))?;
    match lowers {
        [] => Err(SnapshotError::LayerCount {
            diff_ids: 0,
            layers: 0,
        }),
        [only] => {
            rustix::mount::mount_bind(only, target)
                .map_err(|e| io("bind mount on", target)(e.into()))?;
            rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
                .map_err(|e| io("remount read-only", target)(e.into()))
        }
        _ => {
            let data = format!("lowerdir={}", lowerdir(lowers));
            mount_overlay(&data, target, MountFlags::RDONLY)
        }
    }
}

/// Mount the layers with a writable upper dir (a container's rootfs).
pub fn mount_rw(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), SnapshotError> {
    for d in [upper, work, target] {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir(lowers),
        upper.display(),
        work.display()
    );
    mount_overlay(&data, target, MountFlags::empty())
}

fn mount_overlay(data: &str, target: &Path, flags: MountFlags) -> Result<(), SnapshotError> {
    let data = std::ffi::CString::new(data).map_err(|_| SnapshotError::Io {
        what: "overlay options for",
        path: target.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL byte in a layer path"),
    })?;
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(|e| io("mount overlay on", target)(e.into()))
}

/// Unmount (lazily if busy) a mount made here.
pub fn unmount(target: &Path) -> Result<(), SnapshotError> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH)
            .map_err(|e| io("unmount", target)(e.into())),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io("unmount", target)(e.into())),
    }
}

/// Is `target` a mount point (listed in /proc/self/mountinfo)?
pub fn is_mounted(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let t = target.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(t.as_ref()))
}
