//! Container commands: run, create, start, stop, kill, restart, pause,
//! unpause, rm, ps, logs, exec, attach, wait, inspect, rename, top.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use barge_engine::attach::{AttachEnd, AttachOptions};
use barge_engine::error::EngineError;
use barge_engine::lifecycle::{self, CreateRequest};
use barge_engine::opts;
use barge_engine::record::{Config, HealthConfig, HostConfig, LogConfig};
use barge_engine::store::{Container, Engine};
use barge_image::store::Store;
use clap::Args;
use serde_json::{json, Value};

use crate::format::{print_rows, Template};
use crate::human;

/// An error with the exit code Docker gives it.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

fn exit_err(e: EngineError) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code: e.exit_code(),
        message: e.to_string(),
    })
}

fn with_code(code: i32, e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<Exit>().is_some() {
        return e;
    }
    anyhow::Error::new(Exit {
        code,
        message: format!("{e:#}"),
    })
}

pub fn open(root: &Path) -> Result<(Engine, Store)> {
    let engine = Engine::open(root)?;
    let store = crate::images::open_store(root)?;
    Ok((engine, store))
}

// ------------------------------------------------------------------ flags

#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true)]
pub struct CreateFlags {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Set meta data on a container
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<PathBuf>,
    /// Bind mount a volume
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory limit
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Logging driver for the container (json-file or none)
    #[arg(long = "log-driver", default_value = "json-file")]
    pub log_driver: String,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Runtime to use for this container (barge-runc, runc, crun, or a path)
    #[arg(long)]
    pub runtime: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Connect a container to a network (bridge, a network's name, none, host, container:NAME)
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short, long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Allow mounting the engine's state or an API socket (hands the container root on the host)
    #[arg(long = "allow-engine-socket")]
    pub allow_engine_socket: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short, long)]
    pub attach: Vec<String>,
    /// Platform (only this host's)
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("missing", "always", "never")
    #[arg(long)]
    pub pull: Option<String>,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub flags: CreateFlags,
}

fn split_words(s: &str) -> Vec<String> {
    // Docker's --entrypoint is one word; JSON arrays accepted too.
    if let Ok(v) = serde_json::from_str::<Vec<String>>(s) {
        return v;
    }
    vec![s.to_string()]
}

fn build_request(f: &CreateFlags, detach: bool) -> Result<CreateRequest> {
    fn e<T>(r: std::result::Result<T, EngineError>) -> Result<T> {
        r.map_err(exit_err)
    }
    let mut env: Vec<String> = Vec::new();
    for p in &f.env_file {
        env.extend(e(opts::parse_env_file(p, |k| std::env::var(k).ok()))?);
    }
    env.extend(e(opts::parse_env(&f.env, |k| std::env::var(k).ok()))?);
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for p in &f.label_file {
        labels.extend(e(opts::parse_label_file(p))?);
    }
    labels.extend(e(opts::parse_label(&f.label))?);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));

    let mut hc = HostConfig::default();
    for v in &f.volume {
        let mut m = e(opts::parse_volume(v, &cwd))?;
        if m.kind == "volume" && m.source.is_empty() {
            m.source = barge_engine::volumes::anonymous_name().map_err(exit_err)?;
        }
        hc.binds.push(v.clone());
        hc.mounts.push(m);
    }
    for v in &f.mount {
        let mut m = e(opts::parse_mount(v, &cwd))?;
        if m.kind == "bind" {
            // --mount refuses a missing source (-v creates it).
            m.options.push("no-create".into());
        }
        if m.kind == "volume" && m.source.is_empty() {
            m.source = barge_engine::volumes::anonymous_name().map_err(exit_err)?;
        }
        hc.mounts.push(m);
    }
    for v in &f.tmpfs {
        let m = e(opts::parse_tmpfs(v))?;
        hc.tmpfs.insert(m.target.clone(), m.options.join(","));
        hc.mounts.push(m);
    }
    hc.volumes_from = f.volumes_from.clone();
    hc.readonly_rootfs = f.read_only;
    if let Some(m) = &f.memory {
        hc.memory = e(opts::parse_bytes("-m, --memory", m))?;
    }
    if let Some(m) = &f.memory_swap {
        hc.memory_swap = e(opts::parse_memory_swap(m))?;
    }
    e(opts::check_memory(hc.memory, hc.memory_swap))?;
    if let Some(c) = &f.cpus {
        hc.nano_cpus = e(opts::parse_cpus(c))?;
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        e(opts::check_nano_cpus(hc.nano_cpus, ncpu))?;
    }
    hc.cpu_shares = f.cpu_shares.unwrap_or(0);
    hc.cpuset_cpus = f.cpuset_cpus.clone().unwrap_or_default();
    hc.pids_limit = f.pids_limit.map(|p| if p < 0 { 0 } else { p });
    for u in &f.ulimit {
        hc.ulimits.push(e(opts::parse_ulimit(u))?);
    }
    for c in &f.cap_add {
        hc.cap_add.push(e(opts::normalize_capability(c))?);
    }
    for c in &f.cap_drop {
        hc.cap_drop.push(e(opts::normalize_capability(c))?);
    }
    hc.privileged = f.privileged;
    for s in &f.security_opt {
        e(opts::parse_security_opt(s))?;
        hc.security_opt.push(s.clone());
    }
    for d in &f.device {
        hc.devices.push(e(opts::parse_device(d))?);
    }
    if f.init {
        hc.init = Some(true);
    }
    hc.restart_policy = e(opts::parse_restart(&f.restart))?;
    if f.rm && !matches!(hc.restart_policy.name.as_str(), "" | "no") {
        return Err(exit_err(EngineError::InvalidArgument(
            "Conflicting options: --restart and --rm".into(),
        )));
    }
    hc.auto_remove = f.rm;
    let mut log_config = LogConfig {
        kind: f.log_driver.clone(),
        config: BTreeMap::new(),
    };
    if !matches!(f.log_driver.as_str(), "json-file" | "none") {
        return Err(exit_err(EngineError::InvalidArgument(format!(
            "logger: no log driver named '{}' is registered (Barge has json-file and none)",
            f.log_driver
        ))));
    }
    for o in &f.log_opt {
        let (k, v) = o.split_once('=').ok_or_else(|| {
            exit_err(EngineError::InvalidArgument(format!(
                "invalid argument \"{o}\" for \"--log-opt\" flag: invalid key value pair format in log opts"
            )))
        })?;
        log_config.config.insert(k.to_string(), v.to_string());
    }
    if log_config.kind == "json-file" {
        e(barge_engine::logfile::parse_log_opts(&log_config.config))?;
    } else if !log_config.config.is_empty() {
        return Err(exit_err(EngineError::InvalidArgument(
            "logger: the none log driver takes no options".into(),
        )));
    }
    hc.log_config = log_config;
    hc.group_add = f.group_add.clone();
    for s in &f.sysctl {
        let (k, v) = e(opts::parse_sysctl(s))?;
        hc.sysctls.insert(k, v);
    }
    if let Some(s) = &f.shm_size {
        hc.shm_size = e(opts::parse_bytes("--shm-size", s))?;
    }
    if let Some(o) = f.oom_score_adj {
        if !(-1000..=1000).contains(&o) {
            return Err(exit_err(EngineError::InvalidArgument(format!(
                "Invalid value {o}, range for oom score adj is [-1000, 1000]"
            ))));
        }
        hc.oom_score_adj = o;
    }
    hc.network_mode = match f.network.as_deref() {
        None | Some("default") | Some("") => "bridge".into(),
        Some(n) => n.to_string(),
    };
    let mut exposed: BTreeMap<String, Value> = BTreeMap::new();
    for p in &f.publish {
        for m in e(opts::parse_publish(p))? {
            exposed.insert(m.port_key(), json!({}));
            hc.port_bindings.entry(m.port_key()).or_default().push(
                barge_engine::record::PortBinding {
                    host_ip: m.host_ip,
                    host_port: m.host_port,
                },
            );
        }
    }
    for x in &f.expose {
        for key in e(opts::parse_expose(x))? {
            exposed.insert(key, json!({}));
        }
    }
    hc.publish_all_ports = f.publish_all;
    if matches!(hc.network_mode.as_str(), "host" | "none")
        && (!hc.port_bindings.is_empty() || hc.publish_all_ports)
    {
        eprintln!(
            "WARNING: Published ports are discarded when using {} network mode",
            hc.network_mode
        );
        hc.port_bindings.clear();
        hc.publish_all_ports = false;
    }
    for d in &f.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(exit_err(EngineError::InvalidArgument(format!(
                "invalid argument \"{d}\" for \"--dns\" flag: {d} is not an ip address"
            ))));
        }
    }
    hc.dns = f.dns.clone();
    hc.dns_search = f.dns_search.clone();
    hc.dns_options = f.dns_option.clone();
    for h in &f.add_host {
        e(opts::parse_extra_host(h))?;
    }
    hc.extra_hosts = f.add_host.clone();
    let networking = barge_engine::network::ConnectOptions {
        ip: match &f.ip {
            Some(ip) => Some(ip.parse().map_err(|_| {
                exit_err(EngineError::InvalidArgument(format!(
                    "invalid IPv4 address: {ip}"
                )))
            })?),
            None => None,
        },
        aliases: f.network_alias.clone(),
    };
    hc.allow_engine_socket = f.allow_engine_socket;

    let mut cfg = Config {
        hostname: f.hostname.clone().unwrap_or_default(),
        domainname: f.domainname.clone().unwrap_or_default(),
        user: f.user.clone().unwrap_or_default(),
        tty: f.tty,
        open_stdin: f.interactive,
        env,
        cmd: f.command.clone(),
        working_dir: f.workdir.clone().unwrap_or_default(),
        labels,
        ..Config::default()
    };
    if let Some(u) = &f.user {
        e(opts::parse_user(u))?;
    }
    if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
        return Err(exit_err(EngineError::InvalidArgument(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            cfg.working_dir
        ))));
    }
    if let Some(s) = &f.stop_signal {
        cfg.stop_signal = Some(e(opts::parse_signal_name(s))?);
    }
    cfg.stop_timeout = f.stop_timeout;
    cfg.exposed_ports = exposed;
    let attach_all = !detach && f.attach.is_empty();
    let attached = |s: &str| attach_all || f.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    cfg.attach_stdin = f.interactive && !detach && (attach_all || attached("stdin"));
    cfg.attach_stdout = attached("stdout");
    cfg.attach_stderr = attached("stderr");
    cfg.stdin_once = f.interactive && !detach;
    if f.health_cmd.is_some()
        || f.health_interval.is_some()
        || f.health_timeout.is_some()
        || f.health_retries.is_some()
        || f.health_start_period.is_some()
    {
        if f.no_healthcheck {
            return Err(exit_err(EngineError::InvalidArgument(
                "--no-healthcheck conflicts with --health-* options".into(),
            )));
        }
        let mut h = HealthConfig::default();
        if let Some(c) = &f.health_cmd {
            h.test = vec!["CMD-SHELL".into(), c.clone()];
        }
        let d = |flag: &str, v: &Option<String>| -> Result<i64> {
            match v {
                Some(s) => {
                    let n = opts::parse_duration(flag, s).map_err(exit_err)?;
                    if n < 0 {
                        bail!("{flag} cannot be negative");
                    }
                    Ok(n)
                }
                None => Ok(0),
            }
        };
        h.interval = d("--health-interval", &f.health_interval)?;
        h.timeout = d("--health-timeout", &f.health_timeout)?;
        h.start_period = d("--health-start-period", &f.health_start_period)?;
        h.retries = f.health_retries.unwrap_or(0);
        e(opts::validate_healthcheck(&h))?;
        cfg.healthcheck = Some(h);
    }
    Ok(CreateRequest {
        image: f.image.clone(),
        name: f.name.clone(),
        cmd_given: !f.command.is_empty(),
        entrypoint: f.entrypoint.as_deref().map(|s| {
            if s.is_empty() {
                Vec::new()
            } else {
                split_words(s)
            }
        }),
        config: cfg,
        host_config: hc,
        runtime: f.runtime.clone().unwrap_or_default(),
        no_healthcheck: f.no_healthcheck,
        networking,
    })
}

// ----------------------------------------------------------------- create

/// Docker's `--pull` policy: pull when the image is missing (default),
/// always, or never.
fn ensure_image(store: &barge_image::store::Store, f: &CreateFlags) -> Result<()> {
    let policy = f.pull.as_deref().unwrap_or("missing");
    let missing = || {
        matches!(
            store.resolve(&f.image),
            Err(barge_image::store::StoreError::ImageNotFound { .. })
        )
    };
    let pull = match policy {
        "always" => true,
        "missing" => missing(),
        "never" => false,
        other => bail!(
            "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
        ),
    };
    if !pull {
        return Ok(());
    }
    if policy == "missing" && !f.quiet {
        eprintln!("Unable to find image '{}' locally", f.image);
    }
    {
        crate::registry::pull_for_run(
            store,
            &f.image,
            &crate::registry::ClientFlags::default(),
            f.platform.as_deref(),
            f.quiet,
        )?;
    }
    Ok(())
}

pub fn create(root: &Path, f: &CreateFlags) -> Result<i32> {
    let (engine, store) = open(root).map_err(|e| with_code(125, e))?;
    let req = build_request(f, true).map_err(|e| with_code(125, e))?;
    ensure_image(&store, f).map_err(|e| with_code(125, e))?;
    let rec = lifecycle::create(&engine, &store, req).map_err(exit_err)?;
    println!("{}", rec.id);
    Ok(0)
}

pub fn run(root: &Path, a: &RunArgs) -> Result<i32> {
    let (engine, store) = open(root).map_err(|e| with_code(125, e))?;
    let f = &a.flags;
    let req = build_request(f, a.detach).map_err(|e| with_code(125, e))?;
    ensure_image(&store, f).map_err(|e| with_code(125, e))?;
    let detach_keys = match &a.detach_keys {
        Some(k) => barge_engine::attach::parse_detach_keys(k).map_err(exit_err)?,
        None => vec![16, 17],
    };
    let tty = req.config.tty;
    let stdin = req.config.attach_stdin;
    let rec = lifecycle::create(&engine, &store, req).map_err(exit_err)?;
    let id = rec.id.clone();
    let attach = !a.detach;
    let started = match lifecycle::start(&engine, &store, &id, attach) {
        Ok(s) => s,
        Err(e) => {
            if rec.host_config.auto_remove {
                let _ = lifecycle::remove(&engine, &id, true, true);
            }
            return Err(exit_err(e));
        }
    };
    if a.detach {
        println!("{id}");
        return Ok(0);
    }
    let Some(stream) = started.attach else {
        return Ok(0);
    };
    proxy_signals(&engine, &rec);
    let end = barge_engine::attach::session(
        stream,
        &AttachOptions {
            stdin,
            tty,
            detach_keys,
            close_stdin: true,
        },
    )
    .map_err(exit_err)?;
    match end {
        AttachEnd::Exited(code) => Ok(code),
        AttachEnd::Detached => Ok(0),
        AttachEnd::Closed => {
            // The monitor went away without an exit code: read the record.
            let c = engine.container(&id);
            Ok(c.map(|c| c.state.exit_code).unwrap_or(125))
        }
    }
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn start(root: &Path, a: &StartArgs) -> Result<i32> {
    let (engine, store) = open(root)?;
    let mut failed = None;
    for name in &a.containers {
        let id = match engine.resolve(name) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("Error: {e}");
                failed = Some(anyhow!("Error: failed to start containers: {name}"));
                continue;
            }
        };
        let attach = a.attach || a.interactive;
        let c = engine.container(&id).map_err(exit_err)?;
        if attach && c.state.status == "running" {
            // Docker attaches to a running container on `start -a`.
            let stream = barge_engine::attach::connect(&engine.dir(&id)).map_err(exit_err)?;
            return finish_attach(
                &engine,
                &id,
                stream,
                a.interactive,
                c.record.config.tty,
                a.detach_keys.as_deref(),
                true,
            );
        }
        if !attach && matches!(c.state.status.as_str(), "running" | "restarting") {
            // Docker: starting a running container is not an error.
            println!("{name}");
            continue;
        }
        match lifecycle::start(&engine, &store, &id, attach) {
            Ok(s) => {
                if let Some(stream) = s.attach {
                    return finish_attach(
                        &engine,
                        &id,
                        stream,
                        a.interactive,
                        c.record.config.tty,
                        a.detach_keys.as_deref(),
                        true,
                    );
                }
                println!("{name}");
            }
            Err(e) => {
                if a.containers.len() == 1 {
                    return Err(exit_err(e));
                }
                eprintln!("Error: {e}");
                failed = Some(anyhow!("failed to start containers: {name}"));
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

/// Docker's `--sig-proxy`: signals this command receives while attached
/// (ctrl-c without a terminal, a `kill` of the command) go to the
/// container's process instead of ending the command.
fn proxy_signals(engine: &Engine, rec: &barge_engine::record::ContainerRecord) {
    use signal_hook::consts::signal::*;
    let Ok(mut signals) =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
    else {
        return;
    };
    let rt = lifecycle::runtime_of(engine, rec);
    let id = rec.id.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let name = signal_hook::low_level::signal_name(sig)
                .map(String::from)
                .unwrap_or_else(|| sig.to_string());
            let _ = rt.kill(&id, &name, false);
        }
    });
}

fn finish_attach(
    engine: &Engine,
    id: &str,
    stream: std::os::unix::net::UnixStream,
    stdin: bool,
    tty: bool,
    keys: Option<&str>,
    proxy: bool,
) -> Result<i32> {
    if proxy {
        if let Ok(rec) = engine.record(id) {
            proxy_signals(engine, &rec);
        }
    }
    let detach_keys = match keys {
        Some(k) => barge_engine::attach::parse_detach_keys(k).map_err(exit_err)?,
        None => vec![16, 17],
    };
    let end = barge_engine::attach::session(
        stream,
        &AttachOptions {
            stdin,
            tty,
            detach_keys,
            close_stdin: stdin,
        },
    )
    .map_err(exit_err)?;
    Ok(match end {
        AttachEnd::Exited(c) => c,
        AttachEnd::Detached => 0,
        AttachEnd::Closed => engine.container(id).map(|c| c.state.exit_code).unwrap_or(0),
    })
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    pub container: String,
}

pub fn attach(root: &Path, a: &AttachArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(exit_err)?;
    let c = engine.container(&id).map_err(exit_err)?;
    if c.state.status == "paused" {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if c.state.status != "running" {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let stream = barge_engine::attach::connect(&engine.dir(&id)).map_err(exit_err)?;
    let stdin = !a.no_stdin && c.record.config.open_stdin;
    finish_attach(
        &engine,
        &id,
        stream,
        stdin,
        c.record.config.tty,
        a.detach_keys.as_deref(),
        a.sig_proxy,
    )
}

// ------------------------------------------------------------ stop & co

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short, long, allow_hyphen_values = true)]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn for_each(
    engine: &Engine,
    names: &[String],
    verb: &str,
    f: &dyn Fn(&str) -> std::result::Result<(), EngineError>,
) -> Result<i32> {
    let mut code = 0;
    for name in names {
        match engine.resolve(name).and_then(|id| f(&id)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    if code != 0 && names.len() > 1 {
        eprintln!("Error: failed to {verb} one or more containers");
    }
    Ok(code)
}

pub fn stop(root: &Path, a: &StopArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    if let Some(s) = &a.signal {
        opts::parse_signal_name(s).map_err(exit_err)?;
    }
    for_each(&engine, &a.containers, "stop", &|id| {
        if let Some(s) = &a.signal {
            let c = engine.container(id)?;
            if matches!(c.state.status.as_str(), "running" | "paused") {
                engine.update_state(id, |st| st.manual_stop = true)?;
                let _ = lifecycle::runtime_of(&engine, &c.record).kill(id, s, false);
            }
        }
        lifecycle::stop(&engine, id, a.time)
    })
}

pub fn restart(root: &Path, a: &StopArgs) -> Result<i32> {
    let (engine, store) = open(root)?;
    for_each(&engine, &a.containers, "restart", &|id| {
        lifecycle::stop(&engine, id, a.time)?;
        // The monitor finishes its bookkeeping before a new one starts.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let s = engine.raw_state(id)?;
            if !barge_engine::store::process_alive(s.monitor_pid, s.monitor_start) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        lifecycle::start(&engine, &store, id, false).map(|_| ())
    })
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn kill(root: &Path, a: &KillArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let sig = opts::parse_signal_name(&a.signal).map_err(exit_err)?;
    for_each(&engine, &a.containers, "kill", &|id| {
        lifecycle::kill(&engine, id, &sig)
    })
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn pause(root: &Path, a: &NamesArgs, p: bool) -> Result<i32> {
    let engine = Engine::open(root)?;
    for_each(
        &engine,
        &a.containers,
        if p { "pause" } else { "unpause" },
        &|id| lifecycle::pause(&engine, id, p),
    )
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn rm(root: &Path, a: &RmArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let mut code = 0;
    for name in &a.containers {
        match engine
            .resolve(name)
            .and_then(|id| lifecycle::remove(&engine, &id, a.force, a.volumes))
        {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn wait(root: &Path, a: &WaitArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let mut code = 0;
    for name in &a.containers {
        let id = match engine.resolve(name) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
                continue;
            }
        };
        loop {
            match engine.container(&id) {
                Ok(c) if matches!(c.state.status.as_str(), "running" | "paused" | "restarting") => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(c) if c.state.status == "created" => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(c) => {
                    println!("{}", c.state.exit_code);
                    break;
                }
                // Removed meanwhile (--rm): the exit code its monitor
                // recorded in its last `die` event.
                Err(_) => {
                    let (events, _) = barge_engine::events::read_from(engine.root(), 0);
                    let code = events
                        .iter()
                        .rev()
                        .find(|e| e.id == id && e.action == "die")
                        .and_then(|e| e.actor.attributes.get("exitCode"))
                        .cloned()
                        .unwrap_or_else(|| "0".into());
                    println!("{code}");
                    break;
                }
            }
        }
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

pub fn rename(root: &Path, a: &RenameArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(exit_err)?;
    let new = barge_engine::ids::validate_name(&a.new_name).map_err(exit_err)?;
    let old = engine.record(&id).map_err(exit_err)?;
    engine.rename(&id, &new).map_err(exit_err)?;
    barge_engine::events::emit(
        engine.root(),
        "rename",
        &id,
        &old.config.image,
        &new,
        &[("oldName", format!("/{}", old.name))],
    );
    Ok(0)
}

// -------------------------------------------------------------------- ps

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
}

/// `Up 3 seconds`, `Exited (0) 2 minutes ago`... as Docker words them.
pub fn status_text(c: &Container) -> String {
    let s = &c.state;
    let health = match s.health.as_ref().map(|h| h.status.as_str()) {
        Some("starting") => " (health: starting)",
        Some("healthy") => " (healthy)",
        Some("unhealthy") if s.running => " (unhealthy)",
        _ => "",
    };
    match s.status.as_str() {
        "running" => format!(
            "Up {}{health}",
            human::duration(barge_engine::time::seconds_since(&s.started_at).unwrap_or(0))
        ),
        "paused" => format!(
            "Up {} (Paused)",
            human::duration(barge_engine::time::seconds_since(&s.started_at).unwrap_or(0))
        ),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human::duration(barge_engine::time::seconds_since(&s.finished_at).unwrap_or(0))
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human::duration(barge_engine::time::seconds_since(&s.finished_at).unwrap_or(0))
        ),
        "created" => "Created".into(),
        other => other.to_string(),
    }
}

fn command_text(c: &Container, trunc: bool) -> String {
    let words: Vec<&str> = c
        .record
        .config
        .entrypoint
        .iter()
        .chain(c.record.config.cmd.iter())
        .map(String::as_str)
        .collect();
    let cmd = words.join(" ");
    if trunc && cmd.chars().count() > 20 {
        let t: String = cmd.chars().take(19).collect();
        format!("\"{t}…\"")
    } else {
        format!("\"{cmd}\"")
    }
}

fn du(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else {
            total += md.len();
        }
    }
    total
}

fn ps_row(engine: &Engine, store: Option<&Store>, c: &Container, trunc: bool, size: bool) -> Value {
    let id = if trunc {
        barge_engine::ids::short(&c.record.id).to_string()
    } else {
        c.record.id.clone()
    };
    let labels: Vec<String> = c
        .record
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut row = json!({
        "ID": id,
        "Image": c.record.config.image,
        "Command": command_text(c, trunc),
        "CreatedAt": c.record.created,
        "RunningFor": format!("{} ago", human::duration(barge_engine::time::seconds_since(&c.record.created).unwrap_or(0))),
        "Status": status_text(c),
        "State": c.state.status,
        "Ports": crate::networks::ports_text(engine.root(), c),
        "Names": c.record.name,
        "Labels": labels.join(","),
        "Mounts": c.record.host_config.mounts.iter().map(|m| if m.source.is_empty() { m.target.clone() } else { m.source.clone() }).collect::<Vec<_>>().join(","),
        "Networks": crate::networks::names_text(engine.root(), c),
        "Size": "",
    });
    if size {
        let rw = du(&engine.dir(&c.record.id).join("upper"));
        let virt = store
            .and_then(|s| s.resolve(&c.record.manifest_digest).ok())
            .map(|img| img.manifest.layers().iter().map(|l| l.size()).sum::<u64>())
            .unwrap_or(0);
        row["Size"] = json!(format!(
            "{} (virtual {})",
            human::size(rw),
            human::size(rw + virt)
        ));
    }
    row
}

fn ps_title(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_uppercase(),
    }
}

fn matches_filter(
    root: &Path,
    c: &Container,
    key: &str,
    value: &str,
    all: &[Container],
) -> Result<bool> {
    Ok(match key {
        "id" => c.record.id.starts_with(value),
        "name" => c.record.name.contains(value.trim_start_matches('/')),
        "label" => match value.split_once('=') {
            Some((k, v)) => c.record.config.labels.get(k).is_some_and(|x| x == v),
            None => c.record.config.labels.contains_key(value),
        },
        "status" => {
            if !matches!(
                value,
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            ) {
                bail!("invalid filter 'status={value}'");
            }
            c.state.status == value
        }
        "exited" => {
            c.state.status == "exited" && value.parse::<i32>().ok() == Some(c.state.exit_code)
        }
        "ancestor" => {
            c.record.config.image == value
                || c.record.image_id == value
                || c.record
                    .image_id
                    .trim_start_matches("sha256:")
                    .starts_with(value)
        }
        "health" => {
            let h = c
                .state
                .health
                .as_ref()
                .map(|h| h.status.as_str())
                .unwrap_or("none");
            h == value
        }
        "before" | "since" => {
            let other = all
                .iter()
                .find(|o| o.record.name == value || o.record.id.starts_with(value));
            match other {
                Some(o) if key == "before" => c.record.created < o.record.created,
                Some(o) => c.record.created > o.record.created,
                None => bail!("No such container: {value}"),
            }
        }
        "volume" => c
            .record
            .host_config
            .mounts
            .iter()
            .any(|m| m.source == value || m.target == value),
        // By name or id: the networks it is connected to, or its mode.
        "network" => {
            let eps = barge_engine::network::endpoints_of(root, &c.record.id);
            c.record.host_config.network_mode == value
                || eps.iter().any(|e| {
                    e.network == value || (value.len() >= 3 && e.network_id.starts_with(value))
                })
        }
        other => bail!("invalid filter '{other}'"),
    })
}

pub fn ps(root: &Path, a: &PsArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let all = engine.list()?;
    let mut filters: Vec<(String, String)> = Vec::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        filters.push((k.to_string(), v.to_string()));
    }
    let show_all = a.all
        || a.last >= 0
        || a.latest
        || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    let mut rows: Vec<&Container> = Vec::new();
    for c in &all {
        if !show_all && !matches!(c.state.status.as_str(), "running" | "paused" | "restarting") {
            continue;
        }
        // Same key: any value matches (OR); different keys: all (AND).
        let mut by_key: BTreeMap<&str, bool> = BTreeMap::new();
        for (k, v) in &filters {
            let m = matches_filter(root, c, k, v, &all)?;
            let e = by_key.entry(k.as_str()).or_insert(false);
            *e = *e || m;
        }
        if by_key.values().all(|m| *m) {
            rows.push(c);
        }
    }
    if a.latest {
        rows.truncate(1);
    } else if a.last >= 0 {
        rows.truncate(a.last as usize);
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in rows {
            let id = if a.no_trunc {
                c.record.id.as_str()
            } else {
                barge_engine::ids::short(&c.record.id)
            };
            writeln!(out, "{id}")?;
        }
        return Ok(0);
    }
    let store = if a.size { Store::open(root).ok() } else { None };
    let json_rows: Vec<Value> = rows
        .iter()
        .map(|c| ps_row(&engine, store.as_ref(), c, !a.no_trunc, a.size))
        .collect();
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let fmt = match a.format.as_deref() {
        Some("json") => "{{json .}}",
        Some("table") | None => default,
        Some(f) => f,
    };
    let t = Template::parse(fmt)?;
    write!(out, "{}", print_rows(&t, &json_rows, &ps_title)?)?;
    Ok(0)
}

// ----------------------------------------------------------------- inspect

/// Docker's container inspect JSON.
pub fn inspect_json(engine: &Engine, c: &Container) -> Value {
    let rec = &c.record;
    let dir = engine.dir(&rec.id);
    let mut state = serde_json::to_value(&c.state).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut state {
        for k in ["RestartCount", "ManualStop", "MonitorPid", "MonitorStart"] {
            m.remove(k);
        }
    }
    let mounts: Vec<Value> = rec
        .host_config
        .mounts
        .iter()
        .map(|m| {
            let source = match m.kind.as_str() {
                "volume" => match barge_engine::volumes::get(engine, &m.source) {
                    // A bind-typed local volume mounts its device.
                    Ok(v) if v.meta.options.get("type").is_some_and(|t| t == "none") => {
                        v.meta.options.get("device").cloned().unwrap_or_default()
                    }
                    _ => barge_engine::spec::volume_dir(&engine.volumes_dir(), &m.source)
                        .to_string_lossy()
                        .into_owned(),
                },
                _ => m.source.clone(),
            };
            let mut v = json!({
                "Type": m.kind,
                "Source": source,
                "Destination": m.target,
                "Mode": m.options.iter().filter(|o| matches!(o.as_str(), "z" | "Z" | "ro" | "rw")).cloned().collect::<Vec<_>>().join(","),
                "RW": !m.read_only,
                "Propagation": m.options.iter().find(|o| o.ends_with("shared") || o.ends_with("slave") || o.ends_with("private")).cloned().unwrap_or_else(|| if m.kind == "bind" { "rprivate".into() } else { String::new() }),
            });
            if m.kind == "volume" {
                v["Name"] = json!(m.source);
                v["Driver"] = json!("local");
            }
            v
        })
        .collect();
    let path = rec
        .config
        .entrypoint
        .first()
        .or(rec.config.cmd.first())
        .cloned()
        .unwrap_or_default();
    let args: Vec<String> = rec
        .config
        .entrypoint
        .iter()
        .chain(rec.config.cmd.iter())
        .skip(1)
        .cloned()
        .collect();
    let mut config = serde_json::to_value(&rec.config).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut config {
        if rec.config.entrypoint.is_empty() {
            m.insert("Entrypoint".into(), Value::Null);
        }
    }
    let mut host_config = serde_json::to_value(&rec.host_config).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut host_config {
        m.remove("AllowEngineSocket");
        let mounts: Vec<Value> = rec
            .host_config
            .mounts
            .iter()
            .filter(|mm| !rec.host_config.binds.iter().any(|b| b.contains(&mm.target)) && mm.kind != "tmpfs")
            .map(|mm| json!({"Type": mm.kind, "Source": mm.source, "Target": mm.target, "ReadOnly": mm.read_only}))
            .collect();
        m.insert("Mounts".into(), Value::Array(mounts));
    }
    json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": path,
        "Args": args,
        "State": state,
        "Image": rec.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": if rec.host_config.log_config.kind == "json-file" { dir.join(format!("{}-json.log", rec.id)).to_string_lossy().into_owned() } else { String::new() },
        "Name": format!("/{}", rec.name),
        "RestartCount": c.state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("merged"),
            }
        },
        "Mounts": mounts,
        "Config": config,
        "NetworkSettings": crate::networks::settings_json(engine.root(), c),
    })
}

/// `inspect` of containers (`None` if `name` is not a container).
pub fn inspect_container(engine: &Engine, name: &str) -> Option<Value> {
    let id = engine.resolve(name).ok()?;
    let c = engine.container(&id).ok()?;
    Some(inspect_json(engine, &c))
}

// -------------------------------------------------------------------- logs

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative
    #[arg(long)]
    pub until: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

pub fn logs(root: &Path, a: &LogsArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(exit_err)?;
    let c = engine.container(&id).map_err(exit_err)?;
    if c.record.host_config.log_config.kind == "none" {
        bail!("configured logging driver does not support reading");
    }
    let now = std::time::SystemTime::now();
    let since = a
        .since
        .as_deref()
        .map(|s| barge_engine::logfile::parse_time_arg(s, now))
        .transpose()
        .map_err(exit_err)?;
    let until = a
        .until
        .as_deref()
        .map(|s| barge_engine::logfile::parse_time_arg(s, now))
        .transpose()
        .map_err(exit_err)?;
    let tail = match a.tail.as_str() {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => bail!("invalid value for \"tail\": {n:?} is not a number or \"all\""),
        },
    };
    let opts = barge_engine::logfile::ReadOptions {
        since,
        until,
        tail,
        timestamps: a.timestamps,
        follow: a.follow,
    };
    let path = engine.dir(&id).join(format!("{id}-json.log"));
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut running = || {
        engine
            .container(&id)
            .map(|c| matches!(c.state.status.as_str(), "running" | "paused" | "restarting"))
            .unwrap_or(false)
    };
    barge_engine::logfile::read_logs(&path, &opts, &mut out, &mut err, &mut running)
        .map_err(exit_err)?;
    Ok(0)
}

// -------------------------------------------------------------------- exec

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn exec(root: &Path, a: &ExecArgs) -> Result<i32> {
    let engine = Engine::open(root).map_err(exit_err)?;
    let id = engine.resolve(&a.container).map_err(exit_err)?;
    let c = engine.container(&id).map_err(exit_err)?;
    match c.state.status.as_str() {
        "running" => {}
        "paused" => {
            return Err(exit_err(EngineError::Conflict(format!(
                "Container {id} is paused, unpause the container before exec"
            ))))
        }
        _ => {
            return Err(exit_err(EngineError::Conflict(format!(
                "Container {id} is not running"
            ))))
        }
    }
    let rt = lifecycle::runtime_of(&engine, &c.record);
    let mut cmd = rt.command();
    cmd.arg("exec");
    let tty = a.tty && rustix::termios::isatty(std::io::stdin());
    if a.tty {
        cmd.arg("--tty");
    }
    if a.detach {
        cmd.arg("--detach");
    }
    let rootfs = lifecycle::rootfs_dir(&engine.dir(&id));
    let user = a
        .user
        .clone()
        .unwrap_or_else(|| c.record.config.user.clone());
    let ident = barge_engine::spec::resolve_user(&rootfs, &user, &c.record.host_config.group_add)
        .map_err(|e| with_code(126, exit_err(e)))?;
    cmd.arg("--user")
        .arg(format!("{}:{}", ident.uid, ident.gid));
    for g in &ident.additional_gids {
        cmd.arg("--additional-gids").arg(g.to_string());
    }
    let mut env = Vec::new();
    for p in &a.env_file {
        env.extend(opts::parse_env_file(p, |k| std::env::var(k).ok()).map_err(exit_err)?);
    }
    env.extend(opts::parse_env(&a.env, |k| std::env::var(k).ok()).map_err(exit_err)?);
    if a.user.is_some() {
        env.insert(0, format!("HOME={}", ident.home));
    }
    for e in &env {
        cmd.arg("--env").arg(e);
    }
    if let Some(w) = &a.workdir {
        cmd.arg("--cwd").arg(w);
    }
    if a.privileged {
        for cap in barge_engine::spec::all_caps() {
            cmd.arg("--cap").arg(cap);
        }
    }
    let log = engine
        .dir(&id)
        .join(format!("exec-{}.log", std::process::id()));
    cmd.arg("--log").arg(&log).arg("--log-format").arg("json");
    cmd.arg(&id).args(&a.command);
    if !a.interactive {
        cmd.stdin(std::process::Stdio::null());
    }
    let _raw = if tty && a.interactive {
        barge_engine::attach::RawMode::enter(std::io::stdin())
    } else {
        None
    };
    let status = cmd.status().map_err(|e| anyhow!("run the runtime: {e}"))?;
    drop(_raw);
    let runtime_error = barge_engine::runtime::last_log_error(&log);
    let _ = std::fs::remove_file(&log);
    if let Some(msg) = runtime_error {
        // The runtime failed (not the command): Docker's 126/127.
        let e = barge_engine::runtime::classify(&msg);
        let code = match e {
            EngineError::Runtime(_) => 126,
            _ => e.exit_code(),
        };
        return Err(with_code(code, anyhow!("{e}")));
    }
    let _ = tty;
    Ok(status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        status.signal().map(|s| 128 + s).unwrap_or(1)
    }))
}

// --------------------------------------------------------------------- top

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn top(root: &Path, a: &TopArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(exit_err)?;
    let c = engine.container(&id).map_err(exit_err)?;
    if !matches!(c.state.status.as_str(), "running" | "paused") {
        bail!("Container {id} is not running");
    }
    let pids = lifecycle::runtime_of(&engine, &c.record)
        .pids(&id)
        .map_err(exit_err)?;
    let ps_args: Vec<String> = if a.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| anyhow!("run ps: {e}"))?;
    if !out.status.success() {
        bail!("ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("Couldn't find PID field in ps output"))?;
    let mut rows = vec![header.to_string()];
    for l in lines {
        let pid: i32 = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse().ok())
            .unwrap_or(-1);
        if pids.contains(&pid) {
            rows.push(l.to_string());
        }
    }
    let mut o = std::io::stdout().lock();
    for r in rows {
        writeln!(o, "{r}")?;
    }
    Ok(0)
}

/// `inspect` (containers first, then images, as Docker without `--type`)
/// and `container inspect` (containers only).
pub fn inspect(root: &Path, a: &crate::images::InspectArgs, containers_only: bool) -> Result<i32> {
    let engine = Engine::open(root)?;
    let store = if containers_only {
        None
    } else {
        Some(crate::images::open_store(root)?)
    };
    let mut values = Vec::new();
    let mut code = 0;
    for name in &a.images {
        if let Some(v) = inspect_container(&engine, name) {
            values.push(v);
            continue;
        }
        match &store {
            Some(s) => match crate::images::inspect_value(s, name) {
                Ok(v) => values.push(v),
                Err(_) => match crate::networks::inspect_value(root, name) {
                    Some(v) => values.push(v),
                    None => {
                        eprintln!("Error: No such object: {name}");
                        code = 1;
                    }
                },
            },
            None => {
                eprintln!("Error: No such container: {name}");
                code = 1;
            }
        }
    }
    crate::format::print_inspect(&values, a.format.as_deref())?;
    Ok(code)
}
