//! Local volumes: `<root>/volumes/<name>/_data` (what containers mount) and
//! `<root>/volumes/<name>/meta.json` (name, creation time, labels, the
//! local driver's options, whether it is anonymous), as Docker's `local`
//! driver keeps them.
//!
//! A volume is created by `volume create` or on first use by a container
//! (`run -v name:/x`); both go through [`ensure`], which is race-safe:
//! directories are made with `create_dir_all` and `meta.json` is linked
//! into place, so the first writer wins and concurrent creators agree.
//! Removal renames the directory out of sight (`.rm-<name>-<pid>`) before
//! deleting it. This module does not mount anything; `spec` turns a volume
//! into an OCI mount with [`mount_source`].

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{io, EngineError, Result};
use crate::store::Engine;

/// `meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeMeta {
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    /// The local driver's options (`type`, `o`, `device`).
    pub options: BTreeMap<String, String>,
    pub anonymous: bool,
}

/// A volume as `volume ls`/`inspect` see it.
#[derive(Debug, Clone)]
pub struct Volume {
    pub meta: VolumeMeta,
    /// `volumes/<name>/_data`.
    pub mountpoint: PathBuf,
}

impl Volume {
    /// Docker's `volume inspect` object.
    pub fn inspect_json(&self) -> Value {
        let m = &self.meta;
        json!({
            "CreatedAt": m.created_at,
            "Driver": "local",
            "Labels": if m.labels.is_empty() { Value::Null } else { json!(m.labels) },
            "Mountpoint": self.mountpoint,
            "Name": m.name,
            "Options": if m.options.is_empty() { Value::Null } else { json!(m.options) },
            "Scope": "local",
        })
    }
}

/// How a volume is mounted into a container.
#[derive(Debug, Clone, PartialEq)]
pub enum MountSource {
    /// A bind of this directory (`_data`, or `device` of a bind-typed volume).
    Dir(PathBuf),
    /// A fresh tmpfs with these options (`type=tmpfs`).
    Tmpfs(Vec<String>),
}

/// Anonymous volumes made by `-v /path` are named `anon-<24 hex>`.
pub fn anonymous_name() -> Result<String> {
    Ok(format!("anon-{}", &crate::ids::new_id()?[..24]))
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// Checks the `local` driver's options (`-o`): a tmpfs or a bind of a host
/// directory, as Docker's local driver takes them.
pub fn check_options(opts: &BTreeMap<String, String>) -> Result<()> {
    const SUPPORTED: &str = "the local driver supports type=tmpfs [o=size=...,mode=...] and type=none o=bind device=/absolute/host/dir";
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "o" | "device") {
            return Err(invalid(format!("invalid option key: {k:?}: {SUPPORTED}")));
        }
    }
    if opts.is_empty() {
        return Ok(());
    }
    let o = opts.get("o").map(String::as_str).unwrap_or_default();
    match opts.get("type").map(String::as_str) {
        Some("tmpfs") => {
            if opts.contains_key("device") && opts["device"] != "tmpfs" {
                return Err(invalid(format!(
                    "a tmpfs volume takes no device: {SUPPORTED}"
                )));
            }
            for part in o.split(',').filter(|p| !p.is_empty()) {
                let key = part.split('=').next().unwrap_or_default();
                if !matches!(
                    key,
                    "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks"
                ) && !matches!(part, "ro" | "rw" | "noexec" | "nosuid" | "nodev")
                {
                    return Err(invalid(format!(
                        "unsupported tmpfs option {part:?}: {SUPPORTED}"
                    )));
                }
            }
            if let Some(size) = o.split(',').find_map(|p| p.strip_prefix("size=")) {
                crate::opts::parse_bytes("size", size)?;
            }
            Ok(())
        }
        Some("none") => {
            if !o.split(',').any(|p| p == "bind" || p == "rbind") {
                return Err(invalid(format!("type=none needs o=bind: {SUPPORTED}")));
            }
            let device = opts.get("device").map(String::as_str).unwrap_or_default();
            if !device.starts_with('/') {
                return Err(invalid(format!(
                    "type=none o=bind needs device=/absolute/path: {SUPPORTED}"
                )));
            }
            if !Path::new(device).is_dir() {
                return Err(invalid(format!(
                    "failed to mount local volume: mount {device}: no such file or directory"
                )));
            }
            Ok(())
        }
        _ => Err(invalid(format!(
            "unsupported volume options {}: {SUPPORTED}",
            opts.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        ))),
    }
}

fn meta_path(volumes_dir: &Path, name: &str) -> PathBuf {
    volumes_dir.join(name).join("meta.json")
}

/// Makes sure `name` exists (its `_data` and `meta.json`), creating it with
/// `meta` if it does not; returns the stored metadata (the first creator's
/// when several race).
pub fn ensure(volumes_dir: &Path, name: &str, meta: VolumeMeta) -> Result<VolumeMeta> {
    let data = crate::spec::volume_dir(volumes_dir, name);
    std::fs::create_dir_all(&data).map_err(io("create volume", &data))?;
    let path = meta_path(volumes_dir, name);
    if let Ok(m) = read_meta(&path) {
        return Ok(m);
    }
    let body = serde_json::to_vec_pretty(&meta).map_err(|source| EngineError::Json {
        what: format!("serialize {}", path.display()),
        source,
    })?;
    let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), unique()));
    {
        use std::io::Write;
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&body)
            .and_then(|_| f.sync_data())
            .map_err(io("write", &tmp))?;
    }
    // link() never replaces: the first meta.json stays.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(meta),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_meta(&path),
        Err(e) => Err(io("create", &path)(e)),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn read_meta(path: &Path) -> Result<VolumeMeta> {
    let data = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&data).map_err(|source| EngineError::Json {
        what: format!("parse {}", path.display()),
        source,
    })
}

/// Metadata for a volume a container creates on first use.
pub fn implicit_meta(name: &str) -> VolumeMeta {
    VolumeMeta {
        name: name.to_string(),
        created_at: crate::time::now_rfc3339(),
        anonymous: name.starts_with("anon-"),
        ..Default::default()
    }
}

/// Where a container's mount of volume `name` comes from (creating the
/// volume on first use).
pub fn mount_source(volumes_dir: &Path, name: &str) -> Result<MountSource> {
    let meta = ensure(volumes_dir, name, implicit_meta(name))?;
    let o = meta.options.get("o").cloned().unwrap_or_default();
    match meta.options.get("type").map(String::as_str) {
        Some("tmpfs") => Ok(MountSource::Tmpfs(
            o.split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
        )),
        Some("none") => {
            let device = meta.options.get("device").cloned().unwrap_or_default();
            if !Path::new(&device).is_dir() {
                return Err(invalid(format!(
                    "error while mounting volume '{name}': failed to mount local volume: mount {device}: no such file or directory"
                )));
            }
            Ok(MountSource::Dir(PathBuf::from(device)))
        }
        _ => Ok(MountSource::Dir(crate::spec::volume_dir(volumes_dir, name))),
    }
}

/// `volume create`. No name: a random 64-hex one (Docker's). An existing
/// volume is returned as it is, unless asked for with other options.
pub fn create(
    engine: &Engine,
    name: Option<&str>,
    labels: BTreeMap<String, String>,
    opts: BTreeMap<String, String>,
) -> Result<Volume> {
    let name = match name {
        Some(n) if !n.is_empty() => {
            crate::opts::check_volume_name(n)?;
            n.to_string()
        }
        _ => crate::ids::new_id()?,
    };
    check_options(&opts)?;
    let dir = engine.volumes_dir();
    let wanted = VolumeMeta {
        name: name.clone(),
        created_at: crate::time::now_rfc3339(),
        labels,
        options: opts.clone(),
        anonymous: false,
    };
    let existed = dir.join(&name).is_dir();
    let got = if existed {
        get(engine, &name)?.meta
    } else {
        ensure(&dir, &name, wanted)?
    };
    if got.options != opts {
        return Err(EngineError::Conflict(format!(
            "create {name}: volume already exists with different options ({}); remove it first or create it without options",
            fmt_opts(&got.options)
        )));
    }
    Ok(Volume {
        meta: got,
        mountpoint: crate::spec::volume_dir(&dir, &name),
    })
}

fn fmt_opts(o: &BTreeMap<String, String>) -> String {
    if o.is_empty() {
        return "none".into();
    }
    o.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn valid_stored_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/')
}

/// One volume; `get NAME: no such volume` if there is none.
pub fn get(engine: &Engine, name: &str) -> Result<Volume> {
    let vdir = engine.volumes_dir();
    let dir = vdir.join(name);
    if !valid_stored_name(name) || !dir.is_dir() {
        return Err(EngineError::NoSuchVolume(name.to_string()));
    }
    let meta = match read_meta(&meta_path(&vdir, name)) {
        Ok(m) => m,
        // An older store: no meta.json.
        Err(_) => {
            let created_at = std::fs::metadata(&dir)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| crate::time::rfc3339(d.as_secs() as i64, d.subsec_nanos()))
                .unwrap_or_default();
            VolumeMeta {
                name: name.to_string(),
                created_at,
                anonymous: name.starts_with("anon-"),
                ..Default::default()
            }
        }
    };
    Ok(Volume {
        meta,
        mountpoint: crate::spec::volume_dir(&vdir, name),
    })
}

/// Every volume, by name.
pub fn list(engine: &Engine) -> Result<Vec<Volume>> {
    let dir = engine.volumes_dir();
    let mut names = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if valid_stored_name(&name) && e.path().is_dir() {
                    names.push(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", &dir)(e)),
    }
    names.sort();
    // One removed meanwhile is skipped.
    Ok(names.iter().filter_map(|n| get(engine, n).ok()).collect())
}

/// Ids of the containers (in any state) whose record mounts `name`.
pub fn users(engine: &Engine, name: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for id in engine.ids()? {
        let Ok(rec) = engine.record(&id) else {
            continue;
        };
        if rec
            .host_config
            .mounts
            .iter()
            .any(|m| m.kind == "volume" && m.source == name)
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// `volume rm`: refused while a container uses the volume (`force` only
/// ignores a missing volume, as in Docker).
pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<()> {
    if let Err(e) = get(engine, name) {
        return if force { Ok(()) } else { Err(e) };
    }
    let used = users(engine, name)?;
    if !used.is_empty() {
        return Err(EngineError::VolumeInUse {
            name: name.to_string(),
            ids: used.join(", "),
        });
    }
    let vdir = engine.volumes_dir();
    let dir = vdir.join(name);
    let gone = vdir.join(format!(".rm-{name}-{}-{}", std::process::id(), unique()));
    match std::fs::rename(&dir, &gone) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if force {
                Ok(())
            } else {
                Err(EngineError::NoSuchVolume(name.to_string()))
            };
        }
        Err(e) => return Err(io("remove", &dir)(e)),
    }
    std::fs::remove_dir_all(&gone).map_err(io("remove", &gone))
}

/// Bytes of the files under `p` (not following symlinks).
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Does `labels` satisfy every `label=K` / `label=K=V` filter?
pub fn labels_match(labels: &BTreeMap<String, String>, filters: &[String]) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f.as_str()),
    })
}

/// `volume prune`: unused anonymous volumes (every unused one with `all`)
/// matching the label filters. Returns the names removed and the bytes
/// their data took (a bind-typed volume's host directory is not counted).
pub fn prune(engine: &Engine, all: bool, label_filters: &[String]) -> Result<(Vec<String>, u64)> {
    let mut removed = Vec::new();
    let mut bytes = 0;
    for v in list(engine)? {
        if !(all || v.meta.anonymous) || !labels_match(&v.meta.labels, label_filters) {
            continue;
        }
        let size = if v.meta.options.get("type").map(String::as_str) == Some("none") {
            0
        } else {
            dir_size(&v.mountpoint)
        };
        // In use (or gone) meanwhile: skipped, as the daemon does.
        if remove(engine, &v.meta.name, false).is_ok() {
            removed.push(v.meta.name.clone());
            bytes += size;
        }
    }
    Ok((removed, bytes))
}

/// Is `name` an anonymous volume (made by `-v /path`)?
pub fn is_anonymous(engine: &Engine, name: &str) -> bool {
    get(engine, name).is_ok_and(|v| v.meta.anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_is_idempotent_and_refuses_other_options() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        let a = create(&e, Some("data"), opts(&[("k", "v")]), BTreeMap::new()).unwrap();
        assert!(a.mountpoint.is_dir());
        let b = create(&e, Some("data"), BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(a.meta, b.meta);
        let err = create(
            &e,
            Some("data"),
            BTreeMap::new(),
            opts(&[("type", "tmpfs")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("data"), "{err}");
        let anon = create(&e, None, BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(anon.meta.name.len(), 64);
        assert_eq!(list(&e).unwrap().len(), 2);
    }

    #[test]
    fn rejects_bad_names_and_options() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        let err = create(&e, Some("a/b"), BTreeMap::new(), BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("includes invalid characters"));
        for bad in [
            opts(&[("type", "nfs")]),
            opts(&[("foo", "bar")]),
            opts(&[("type", "none"), ("o", "bind"), ("device", "relative")]),
            opts(&[
                ("type", "none"),
                ("o", "bind"),
                ("device", "/nonexistent/x"),
            ]),
            opts(&[("type", "tmpfs"), ("o", "size=lots")]),
        ] {
            assert!(
                create(&e, Some("vv"), BTreeMap::new(), bad.clone()).is_err(),
                "{bad:?}"
            );
        }
        assert!(list(&e).unwrap().is_empty());
    }

    #[test]
    fn volume_without_meta_is_listed_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        std::fs::create_dir_all(e.volumes_dir().join("old").join("_data")).unwrap();
        let v = list(&e).unwrap();
        assert_eq!(v.len(), 1);
        assert!(!v[0].meta.created_at.is_empty());
        remove(&e, "old", false).unwrap();
        assert!(matches!(
            remove(&e, "old", false),
            Err(EngineError::NoSuchVolume(_))
        ));
        remove(&e, "old", true).unwrap();
        assert_eq!(
            get(&e, "old").unwrap_err().to_string(),
            "get old: no such volume"
        );
    }

    #[test]
    fn concurrent_ensure_agrees() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let metas: Vec<VolumeMeta> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| ensure(&dir, "shared", implicit_meta("shared")).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(metas.iter().all(|m| m == &metas[0]));
    }

    #[test]
    fn prune_takes_anonymous_unless_all() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        create(&e, Some("named"), BTreeMap::new(), BTreeMap::new()).unwrap();
        ensure(&e.volumes_dir(), "anon-1234", implicit_meta("anon-1234")).unwrap();
        let (gone, _) = prune(&e, false, &[]).unwrap();
        assert_eq!(gone, vec!["anon-1234".to_string()]);
        let (gone, _) = prune(&e, true, &[]).unwrap();
        assert_eq!(gone, vec!["named".to_string()]);
    }

    #[test]
    fn tmpfs_and_bind_volumes_mount_as_such() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        create(
            &e,
            Some("tm"),
            BTreeMap::new(),
            opts(&[("type", "tmpfs"), ("o", "size=1m")]),
        )
        .unwrap();
        assert_eq!(
            mount_source(&e.volumes_dir(), "tm").unwrap(),
            MountSource::Tmpfs(vec!["size=1m".into()])
        );
        let host = t.path().join("host");
        std::fs::create_dir(&host).unwrap();
        create(
            &e,
            Some("bd"),
            BTreeMap::new(),
            opts(&[
                ("type", "none"),
                ("o", "bind"),
                ("device", host.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(
            mount_source(&e.volumes_dir(), "bd").unwrap(),
            MountSource::Dir(host)
        );
    }
}
