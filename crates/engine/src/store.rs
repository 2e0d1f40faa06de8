//! The container store: `<root>/containers/<id>/` per container (record,
//! state, bundle, upper/work/merged, log, monitor socket) and
//! `<root>/containers/.names/<name>` → id symlinks that make a name unique
//! (symlink creation is atomic, so two commands cannot take one name).
//!
//! Crash safety: a container is built in `containers/.tmp-<id>` under a
//! lock and renamed into place; a name link to a missing container whose
//! builder is gone is stale and reclaimed. `state.json` is rewritten (temp
//! file, fsync, rename) under the container's `lock`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{errno, io, EngineError, Result};
use crate::record::{ContainerRecord, State};

/// The engine's state directory.
#[derive(Debug, Clone)]
pub struct Engine {
    root: PathBuf,
}

/// A held `flock`; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// A container as `ps` and `inspect` see it.
#[derive(Debug, Clone)]
pub struct Container {
    pub record: ContainerRecord,
    pub state: State,
}

impl Engine {
    /// Opens (creating if needed) the engine state under `root`.
    pub fn open(root: &Path) -> Result<Engine> {
        let e = Engine {
            root: root.to_path_buf(),
        };
        for d in [e.containers_dir(), e.names_dir()] {
            std::fs::create_dir_all(&d).map_err(io("create", &d))?;
        }
        Ok(e)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    fn names_dir(&self) -> PathBuf {
        self.containers_dir().join(".names")
    }

    /// `containers/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Where OCI runtime state lives for a runtime binary (`--root`).
    pub fn runtime_root(&self, runtime_path: &str) -> PathBuf {
        let name = Path::new(runtime_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "runtime".into());
        self.root.join("runtime").join(name)
    }

    /// `volumes/`.
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    // ------------------------------------------------------------ creation

    /// Stores a new container: builds its directory aside, takes its name,
    /// then makes it visible. `prepare` may add files to the directory.
    pub fn create(
        &self,
        record: &ContainerRecord,
        prepare: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        let tmp = self.containers_dir().join(format!(".tmp-{}", record.id));
        std::fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let built = (|| {
            let lock = lock_file(&tmp.join("lock"), true)?;
            write_json_atomic(&tmp.join("container.json"), record)?;
            write_json_atomic(&tmp.join("state.json"), &State::created())?;
            prepare(&tmp)?;
            self.reserve_name(&record.name, &record.id)?;
            let dir = self.dir(&record.id);
            if let Err(e) = std::fs::rename(&tmp, &dir) {
                let _ = std::fs::remove_file(self.names_dir().join(&record.name));
                return Err(io("rename into place", &dir)(e));
            }
            sync_dir(&self.containers_dir());
            drop(lock);
            Ok(())
        })();
        if built.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        built
    }

    /// Takes `name` for `id`, reclaiming a stale link.
    fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        let link = self.names_dir().join(name);
        for _ in 0..3 {
            match std::os::unix::fs::symlink(id, &link) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_link(&link)
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if self.dir(&holder).is_dir() || self.building(&holder) {
                        return Err(EngineError::NameInUse {
                            name: name.to_string(),
                            id: holder,
                        });
                    }
                    // A crash left the link; nobody builds that container.
                    let _ = std::fs::remove_file(&link);
                }
                Err(e) => return Err(io("reserve name", &link)(e)),
            }
        }
        Err(EngineError::NameInUse {
            name: name.to_string(),
            id: String::new(),
        })
    }

    /// Is a `create` of `id` in progress (its temp dir locked)?
    pub fn building(&self, id: &str) -> bool {
        if id.is_empty() {
            return false;
        }
        let lock = self
            .containers_dir()
            .join(format!(".tmp-{id}"))
            .join("lock");
        match File::open(&lock) {
            Ok(f) => rustix::fs::flock(&f, FlockOperation::NonBlockingLockShared).is_err(),
            Err(_) => false,
        }
    }

    /// Removes temp dirs of creates that died.
    fn sweep_tmp(&self) {
        let Ok(rd) = std::fs::read_dir(self.containers_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(".tmp-") {
                if !self.building(id) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Renames a container (`barge rename`).
    pub fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        let _l = self.lock(id)?;
        let mut rec = self.record(id)?;
        if rec.name == new_name {
            return Err(EngineError::Conflict(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        self.reserve_name(new_name, id)?;
        let old = rec.name.clone();
        rec.name = new_name.to_string();
        if let Err(e) = write_json_atomic(&self.dir(id).join("container.json"), &rec) {
            let _ = std::fs::remove_file(self.names_dir().join(new_name));
            return Err(e);
        }
        let _ = std::fs::remove_file(self.names_dir().join(old));
        Ok(())
    }

    /// Deletes a container's files and name (the caller has stopped it and
    /// unmounted its rootfs).
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        let rec = self.record(id)?;
        // Out of sight first (atomic), then the slow delete.
        let gone = self.containers_dir().join(format!(".tmp-{id}"));
        std::fs::rename(&dir, &gone).map_err(io("remove", &dir))?;
        let link = self.names_dir().join(&rec.name);
        if std::fs::read_link(&link).is_ok_and(|t| t.as_os_str() == id) {
            let _ = std::fs::remove_file(&link);
        }
        std::fs::remove_dir_all(&gone).map_err(io("remove", &gone))
    }

    // ------------------------------------------------------------- lookup

    pub fn record(&self, id: &str) -> Result<ContainerRecord> {
        read_json(&self.dir(id).join("container.json"))
    }

    /// The stored state (see [`Engine::container`] for the checked one).
    pub fn raw_state(&self, id: &str) -> Result<State> {
        read_json(&self.dir(id).join("state.json"))
    }

    /// Ids of all containers.
    pub fn ids(&self) -> Result<Vec<String>> {
        self.sweep_tmp();
        let dir = self.containers_dir();
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io("read", &dir))? {
            let e = e.map_err(io("read", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().join("container.json").is_file() {
                ids.push(name);
            }
        }
        Ok(ids)
    }

    /// Finds a container by full id, name, or unique id prefix (Docker's
    /// order).
    pub fn resolve(&self, s: &str) -> Result<String> {
        let s = s.strip_prefix('/').unwrap_or(s);
        if s.is_empty() {
            return Err(EngineError::NoSuchContainer(s.to_string()));
        }
        if s.len() == 64 && self.dir(s).join("container.json").is_file() {
            return Ok(s.to_string());
        }
        if !s.contains('/') && !s.starts_with('.') {
            if let Ok(t) = std::fs::read_link(self.names_dir().join(s)) {
                let id = t.to_string_lossy().into_owned();
                if self.dir(&id).join("container.json").is_file() {
                    return Ok(id);
                }
            }
        }
        if s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<String> = self
                .ids()?
                .into_iter()
                .filter(|id| id.starts_with(s))
                .collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next().unwrap_or_default()),
                0 => {}
                _ => {
                    return Err(EngineError::InvalidArgument(format!(
                        "Multiple IDs found with provided prefix: {s}"
                    )))
                }
            }
        }
        Err(EngineError::NoSuchContainer(s.to_string()))
    }

    /// A container with its state checked against the processes: a record
    /// that says running whose monitor and process are gone is corrected.
    pub fn container(&self, id: &str) -> Result<Container> {
        let record = self.record(id)?;
        let mut state = self.raw_state(id)?;
        if matches!(state.status.as_str(), "running" | "paused" | "restarting")
            && !process_alive(state.monitor_pid, state.monitor_start)
        {
            // The monitor was killed. The container may still run (nobody
            // reaps it now); if its process is gone too, it has exited.
            let init_alive = state.pid > 0 && Path::new(&format!("/proc/{}", state.pid)).exists();
            if !init_alive {
                let mut changed = false;
                state = self.update_state(id, |s| {
                    if matches!(s.status.as_str(), "running" | "paused" | "restarting") {
                        changed = true;
                        s.status = "exited".into();
                        s.running = false;
                        s.paused = false;
                        s.restarting = false;
                        s.pid = 0;
                        if s.exit_code == 0 {
                            s.exit_code = 137;
                        }
                        s.finished_at = crate::time::now_rfc3339();
                        s.error = "the container's monitor was killed".into();
                    }
                })?;
                if changed {
                    // What the monitor would have cleaned up: the runtime's
                    // container (and its cgroup) and the rootfs mount.
                    let rt = crate::runtime::Runtime::new(
                        PathBuf::from(&record.runtime_path),
                        self.runtime_root(&record.runtime_path),
                    );
                    let _ = rt.delete(id);
                    let _ = crate::lifecycle::unmount_rootfs(&self.dir(id));
                }
            }
        }
        Ok(Container { record, state })
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut v = Vec::new();
        for id in self.ids()? {
            // A container removed meanwhile is skipped.
            if let Ok(c) = self.container(&id) {
                v.push(c);
            }
        }
        v.sort_by(|a, b| b.record.created.cmp(&a.record.created));
        Ok(v)
    }

    // ------------------------------------------------------------ locking

    /// The container's exclusive lock (held by commands that change it).
    pub fn lock(&self, id: &str) -> Result<Lock> {
        let p = self.dir(id).join("lock");
        Ok(Lock {
            _file: lock_file(&p, true)?,
        })
    }

    /// Read-modify-write of `state.json` under the state lock.
    pub fn update_state(&self, id: &str, f: impl FnOnce(&mut State)) -> Result<State> {
        let dir = self.dir(id);
        let _l = lock_file(&dir.join("state.lock"), true)?;
        let p = dir.join("state.json");
        let mut s: State = read_json(&p)?;
        f(&mut s);
        write_json_atomic(&p, &s)?;
        Ok(s)
    }
}

/// Is `pid` alive and the same process (start time `start`, as in
/// /proc/<pid>/stat field 22)?
pub fn process_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_start_time(pid) {
        Some((t, zombie)) => !zombie && (start == 0 || t == start),
        None => false,
    }
}

/// Start time (clock ticks after boot) of `pid`, and whether it is a zombie.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
    Some((fields.get(19)?.parse().ok()?, zombie))
}

pub(crate) fn lock_file(path: &Path, exclusive: bool) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open lock", path))?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    rustix::fs::flock(&f, op).map_err(errno("lock", path))?;
    Ok(f)
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::NoSuchContainer(
                path.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        } else {
            io("read", path)(e)
        }
    })?;
    serde_json::from_slice(&data).map_err(|source| EngineError::Json {
        what: format!("parse {}", path.display()),
        source,
    })
}

/// Writes JSON atomically: temp file, fsync, rename.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|source| EngineError::Json {
        what: format!("serialize {}", path.display()),
        source,
    })?;
    write_atomic(path, &data)
}

/// Writes a file atomically: temp file, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(data)
        .and_then(|_| f.sync_data())
        .map_err(io("write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("rename", path)(e)
    })
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::*;

    fn rec(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            name: name.into(),
            created: crate::time::now_rfc3339(),
            image_name: "busybox".into(),
            image_id: String::new(),
            manifest_digest: String::new(),
            config: Config::default(),
            host_config: HostConfig::default(),
            runtime_path: "barge-runc".into(),
        }
    }

    #[test]
    fn create_resolve_rename_remove() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        let a = "a".repeat(64);
        let b = format!("ab{}", "c".repeat(62));
        e.create(&rec(&a, "web"), &|_| Ok(())).unwrap();
        e.create(&rec(&b, "db"), &|_| Ok(())).unwrap();
        assert!(matches!(
            e.create(&rec(&"d".repeat(64), "web"), &|_| Ok(())),
            Err(EngineError::NameInUse { .. })
        ));
        // Nothing left of the failed create.
        assert_eq!(e.ids().unwrap().len(), 2);
        assert_eq!(e.resolve("web").unwrap(), a);
        assert_eq!(e.resolve("/db").unwrap(), b);
        assert_eq!(e.resolve("abc").unwrap(), b);
        assert!(matches!(
            e.resolve("a"),
            Err(EngineError::InvalidArgument(_))
        ));
        assert!(matches!(
            e.resolve("zzz"),
            Err(EngineError::NoSuchContainer(_))
        ));
        e.rename(&a, "front").unwrap();
        assert_eq!(e.resolve("front").unwrap(), a);
        assert!(e.resolve("web").is_err());
        e.create(&rec(&"e".repeat(64), "web"), &|_| Ok(())).unwrap();
        e.remove(&a).unwrap();
        assert!(e.resolve("front").is_err());
        assert_eq!(e.ids().unwrap().len(), 2);
    }

    #[test]
    fn stale_name_link_is_reclaimed() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        std::os::unix::fs::symlink("f".repeat(64), e.names_dir().join("ghost")).unwrap();
        e.create(&rec(&"1".repeat(64), "ghost"), &|_| Ok(()))
            .unwrap();
        assert_eq!(e.resolve("ghost").unwrap(), "1".repeat(64));
    }

    #[test]
    fn failed_prepare_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        let r = e.create(&rec(&"2".repeat(64), "x1"), &|_| {
            Err(EngineError::InvalidArgument("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(e.containers_dir()).unwrap().count(), 1);
        assert!(e.resolve("x1").is_err());
    }

    #[test]
    fn state_updates() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(t.path()).unwrap();
        let id = "3".repeat(64);
        e.create(&rec(&id, "st"), &|_| Ok(())).unwrap();
        assert_eq!(e.raw_state(&id).unwrap().status, "created");
        e.update_state(&id, |s| {
            s.status = "running".into();
            s.monitor_pid = 999_999_999;
        })
        .unwrap();
        // A dead monitor and process: exited.
        let c = e.container(&id).unwrap();
        assert_eq!(c.state.status, "exited");
    }
}
