//! A container's record as stored in `containers/<id>/container.json` (what
//! it was created with; written once, then only renamed) and
//! `containers/<id>/state.json` (what it is doing; rewritten under the
//! container's lock). Field names follow Docker's inspect JSON so that
//! `inspect` can print them as they are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `barge create`/`run` recorded: Docker's `Config` and `HostConfig`
/// plus where the container's image and runtime are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The image as the user named it (`busybox`, `sha256:...`).
    pub image_name: String,
    /// The image id: `sha256:<config digest hex>`.
    pub image_id: String,
    /// The manifest digest the container was created from (pinned in the
    /// image store for as long as the container exists).
    pub manifest_digest: String,
    pub config: Config,
    pub host_config: HostConfig,
    /// Path of the OCI runtime binary that runs this container.
    pub runtime_path: String,
}

/// Docker's container `Config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Vec<String>,
    /// The command (Docker's `Cmd`); after the entrypoint if there is one.
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub image: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
}

/// Docker's `Healthcheck` (durations in nanoseconds).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD", arg...]`, `["CMD-SHELL", command]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

/// Docker's `HostConfig`, the part Barge implements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-v` as given.
    pub binds: Vec<String>,
    /// Every mount from `-v`, `--mount` and `--tmpfs`, parsed.
    pub mounts: Vec<MountSpec>,
    pub tmpfs: BTreeMap<String, String>,
    /// `--volumes-from` as given (`CONTAINER[:ro|:rw]`); the mounts it
    /// brings are in `mounts`.
    pub volumes_from: Vec<String>,
    pub readonly_rootfs: bool,
    /// Bytes; 0 = unlimited.
    pub memory: i64,
    /// Bytes of memory+swap; 0 = unset, -1 = unlimited swap.
    pub memory_swap: i64,
    /// CPUs × 10⁹ (`--cpus`).
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpuset_cpus: String,
    /// 0 = unlimited (Docker prints null for unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub security_opt: Vec<String>,
    pub devices: Vec<DeviceMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    pub restart_policy: RestartPolicy,
    pub log_config: LogConfig,
    pub runtime: String,
    pub group_add: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    /// Bytes of /dev/shm (Docker's default: 64 MiB).
    pub shm_size: i64,
    pub oom_score_adj: i64,
    pub auto_remove: bool,
    /// `bridge` (the default network), a user-defined network's name,
    /// `none` (a network namespace with loopback only), `host`, or
    /// `container:<id>`.
    pub network_mode: String,
    /// `-p`: `80/tcp` → where on the host.
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`: every exposed port on a random host port.
    pub publish_all_ports: bool,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host name:ip` as given (`host-gateway` is the gateway of the
    /// container's first network).
    pub extra_hosts: Vec<String>,
    /// Mounting the engine's state or an API socket was explicitly allowed.
    #[serde(rename = "AllowEngineSocket")]
    pub allow_engine_socket: bool,
}

/// Docker's `PortBinding`: an empty `HostIp` is every address, an empty
/// `HostPort` a random port, `8000-8010` the first free one of a range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// One mount of a container, from `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Host path (bind), volume name (volume; empty for an anonymous one),
    /// empty for tmpfs.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
    /// Extra mount options (`nosuid`, `rprivate`, `size=65536k`, `mode=1777`,
    /// `z`...), as given.
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// Without the `RLIMIT_` prefix, lower case: `nofile`, `nproc`...
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some of `rwm`.
    pub cgroup_permissions: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no` (also empty), `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// `json-file` or `none`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `max-size`, `max-file`.
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            kind: "json-file".into(),
            config: BTreeMap::new(),
        }
    }
}

/// What a container is doing (`containers/<id>/state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct State {
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// The container's init as the host sees it; 0 when not running.
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Times the monitor restarted the container under its policy.
    #[serde(rename = "RestartCount")]
    pub restart_count: i64,
    /// `stop`/`kill` by a user: no restart under any policy (and none for
    /// `unless-stopped` later either).
    #[serde(rename = "ManualStop")]
    pub manual_stop: bool,
    /// The monitor process and its start time (to tell a reused pid).
    #[serde(rename = "MonitorPid")]
    pub monitor_pid: i32,
    #[serde(rename = "MonitorStart")]
    pub monitor_start: u64,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy`, `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthProbe>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthProbe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

impl State {
    pub fn created() -> State {
        State {
            status: "created".into(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            ..State::default()
        }
    }
}

/// Docker's "never" timestamp.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
