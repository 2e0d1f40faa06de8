//! The on-disk record of a container (`<root>/<id>/state.json`) and the
//! status derived from it.
//!
//! The record is written once by `create` (atomically) and read by every
//! other command. The status is never stored: it is computed from the facts
//! (is the init process alive, with the same start time; does the exec FIFO
//! still exist; is the cgroup frozen), so a crash can never leave a stale one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Context, Result, RuntimeError};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `create` records about a container.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Its start time in clock ticks, to tell it from a reused pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<PathBuf>,
    /// True when the runtime made the container's cgroup (and so removes it).
    #[serde(default)]
    pub own_cgroup: bool,
    /// The config.json the container was created from, verbatim.
    pub config: Box<RawValue>,
}

/// A container found in the state root.
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

impl Container {
    pub fn dir_for(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    /// Load a container's record.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        crate::utils::validate_id(id)?;
        let dir = Self::dir_for(root, id);
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(crate::error::io_err(format!("read {}", path.display()), e)),
        };
        let record: Record = serde_json::from_slice(&data).map_err(|e| {
            RuntimeError::Other(format!(
                "state of container \"{id}\" is corrupt ({}): {e}",
                path.display()
            ))
        })?;
        Ok(Container { dir, record })
    }

    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec(&self.record)
            .map_err(|e| RuntimeError::Other(format!("serialize state: {e}")))?;
        crate::utils::write_atomic(&self.dir.join(STATE_FILE), &data, 0o600)
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The config the container was created from.
    pub fn spec(&self) -> Result<Spec> {
        crate::config::parse(self.record.config.get().as_bytes())
    }

    /// Is the init process still the one we started?
    pub fn init_alive(&self) -> bool {
        if self.record.pid <= 0 {
            return false;
        }
        match crate::utils::proc_start_time(self.record.pid) {
            Some((start, zombie)) => start == self.record.pid_start && !zombie,
            None => false,
        }
    }

    pub fn cgroup(&self) -> Result<Box<dyn crate::cgroups::Cgroup>> {
        Ok(crate::cgroups::open(
            self.record.cgroups_path.as_deref(),
            &self.record.id,
        )?)
    }

    /// The status, computed from the facts.
    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if let Ok(cg) = self.cgroup() {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    /// The spec's State object (given to hooks on stdin).
    pub fn spec_state(&self, status: Status) -> serde_json::Value {
        spec_state(
            &self.record.id,
            status,
            self.record.pid,
            &self.record.bundle,
            self.record.annotations.as_ref(),
        )
    }

    /// What `barge-runc state` prints (runc's shape: the spec's State plus
    /// rootfs, created and owner).
    pub fn runc_state(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.record.pid
        };
        let mut v = serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.record.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.record.bundle,
            "rootfs": self.record.rootfs,
            "created": self.record.created,
            "owner": self.record.owner,
        });
        if let Some(a) = &self.record.annotations {
            v["annotations"] = serde_json::json!(a);
        }
        v
    }
}

pub fn spec_state(
    id: &str,
    status: Status,
    pid: i32,
    bundle: &Path,
    annotations: Option<&HashMap<String, String>>,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": id,
        "status": status.as_str(),
        "bundle": bundle,
    });
    if pid > 0 && status != Status::Stopped {
        v["pid"] = pid.into();
    }
    if let Some(a) = annotations {
        v["annotations"] = serde_json::json!(a);
    }
    v
}

/// Every container id under a state root (unsorted; unreadable entries skipped).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("read {}", root.display())),
    };
    let mut ids = Vec::new();
    for e in rd.flatten() {
        if e.path().join(STATE_FILE).exists() {
            if let Some(n) = e.file_name().to_str() {
                ids.push(n.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}
