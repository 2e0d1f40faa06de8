//! The container lifecycle as the CLI drives it: create (record from image
//! and flags), start (rootfs, bundle, monitor), stop, kill, pause, remove,
//! wait. Every step that fails undoes what it did: no mount, runtime
//! container or half-created record is left behind.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barge_image::snapshot;
use barge_image::store::{Digest, ImageRef, Platform, Store, MAX_CONFIG_BYTES};
use serde_json::Value;

use crate::error::{errno, io, EngineError, Result};
use crate::record::{Config, ContainerRecord, HealthConfig, HostConfig};
use crate::runtime::{find_binary, Runtime};
use crate::store::Engine;

/// Pin name of a container's image in the image store.
pub fn pin_name(id: &str) -> String {
    format!("container-{id}")
}

/// What the user asked for, before the image's defaults are merged in.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub image: String,
    pub name: Option<String>,
    pub config: Config,
    /// `Cmd` was given on the command line (else the image's is used).
    pub cmd_given: bool,
    /// `--entrypoint` was given (`Some(empty)` clears the image's).
    pub entrypoint: Option<Vec<String>>,
    pub host_config: HostConfig,
    /// `--runtime` (name or path); empty = barge-runc.
    pub runtime: String,
    /// Disable the image's health check (`--no-healthcheck`).
    pub no_healthcheck: bool,
    /// `--ip` and `--network-alias` for the network of `--network`.
    pub networking: crate::network::ConnectOptions,
}

/// Drops the image pins of containers that do not exist (a `create`
/// killed between pinning and storing its record), so prune can reclaim
/// their images. A create in progress is left alone.
pub fn drop_stale_pins(engine: &Engine, store: &Store) -> Result<usize> {
    let ids: std::collections::HashSet<String> = engine.ids()?.into_iter().collect();
    let mut dropped = 0;
    for name in store.pins()?.into_keys() {
        let Some(id) = name.strip_prefix("container-") else {
            continue;
        };
        let building = engine.containers_dir().join(format!(".tmp-{id}")).exists();
        if !ids.contains(id) && !building && store.unpin(&name)? {
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Resolves an image for a container, with Docker's wording if missing.
pub fn resolve_image(store: &Store, image: &str) -> Result<ImageRef> {
    store.resolve(image).map_err(|e| match e {
        barge_image::store::StoreError::ImageNotFound { .. } => {
            let shown = if image.contains(':') || image.contains('@') || image.starts_with("sha256")
            {
                image.to_string()
            } else {
                format!("{image}:latest")
            };
            EngineError::NoSuchImage(format!(
                "{shown} (Unable to find image '{shown}' locally; load or import it first)"
            ))
        }
        other => EngineError::Store(other),
    })
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        _ => Vec::new(),
    }
}

/// Creates the container record (`barge create`): the image's config with
/// the user's flags on top.
pub fn create(engine: &Engine, store: &Store, req: CreateRequest) -> Result<ContainerRecord> {
    let img = resolve_image(store, &req.image)?;
    let image_cfg: Value = store.read_json(&img.config_digest, MAX_CONFIG_BYTES)?;
    let ic = image_cfg.get("config").cloned().unwrap_or(Value::Null);

    let mut config = req.config.clone();
    config.image = req.image.clone();
    // Env: the image's, then ours (ours win).
    let mut env: Vec<String> = str_list(ic.get("Env"));
    for e in &req.config.env {
        let k = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(k));
        env.push(e.clone());
    }
    config.env = env;
    config.entrypoint = match &req.entrypoint {
        Some(ep) => ep.clone(),
        None => str_list(ic.get("Entrypoint")),
    };
    if !req.cmd_given {
        // Docker: an --entrypoint clears the image's CMD.
        config.cmd = if req.entrypoint.is_some() {
            Vec::new()
        } else {
            str_list(ic.get("Cmd"))
        };
    }
    if config.entrypoint.is_empty() && config.cmd.is_empty() {
        return Err(EngineError::InvalidArgument("No command specified".into()));
    }
    if config.working_dir.is_empty() {
        config.working_dir = ic
            .get("WorkingDir")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
    }
    if config.user.is_empty() {
        config.user = ic
            .get("User")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
    }
    if let Some(Value::Object(l)) = ic.get("Labels") {
        for (k, v) in l {
            config
                .labels
                .entry(k.clone())
                .or_insert_with(|| v.as_str().unwrap_or_default().to_string());
        }
    }
    if config.stop_signal.is_none() {
        config.stop_signal = ic
            .get("StopSignal")
            .and_then(|v| v.as_str())
            .map(String::from);
    }
    if req.no_healthcheck {
        config.healthcheck = Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    } else if let Some(h) = ic.get("Healthcheck") {
        if let Ok(image_hc) = serde_json::from_value::<HealthConfig>(h.clone()) {
            let mut hc = config.healthcheck.take().unwrap_or_default();
            if hc.test.is_empty() {
                hc.test = image_hc.test;
            }
            if hc.interval == 0 {
                hc.interval = image_hc.interval;
            }
            if hc.timeout == 0 {
                hc.timeout = image_hc.timeout;
            }
            if hc.start_period == 0 {
                hc.start_period = image_hc.start_period;
            }
            if hc.retries == 0 {
                hc.retries = image_hc.retries;
            }
            if !hc.test.is_empty() {
                config.healthcheck = Some(hc);
            }
        }
    }
    if let Some(Value::Object(p)) = ic.get("ExposedPorts") {
        for (k, v) in p {
            config.exposed_ports.entry(k.clone()).or_insert(v.clone());
        }
    }
    if let Some(Value::Object(v)) = ic.get("Volumes") {
        config.volumes = v.clone().into_iter().collect();
    }

    let mut host_config = req.host_config.clone();
    add_volumes_from(engine, &mut host_config)?;
    normalize_network(engine, &mut host_config, &config, &req.networking)?;
    if host_config.shm_size == 0 {
        host_config.shm_size = 64 << 20;
    }
    // Refuse handing the engine itself to the container.
    if !host_config.allow_engine_socket {
        for m in &host_config.mounts {
            if m.kind == "bind" && crate::spec::is_engine_path(Path::new(&m.source), engine.root())
            {
                return Err(EngineError::InvalidArgument(format!(
                    "refusing to mount {} into the container: it is the container engine's own state or API socket, and whoever can use it is root on this host. Pass --allow-engine-socket if that is really intended",
                    m.source
                )));
            }
        }
    }
    let runtime_path = find_binary(if req.runtime.is_empty() {
        "barge-runc"
    } else {
        &req.runtime
    })
    .map_err(|_| {
        EngineError::InvalidArgument(format!(
            "unknown or invalid runtime name: {}",
            if req.runtime.is_empty() {
                "barge-runc"
            } else {
                &req.runtime
            }
        ))
    })?;
    host_config.runtime = if req.runtime.is_empty() {
        "barge-runc".into()
    } else {
        req.runtime.clone()
    };

    if let Some(n) = &req.name {
        crate::ids::validate_name(n)?;
    }
    let id = crate::ids::new_id()?;
    if config.hostname.is_empty() {
        config.hostname = crate::ids::short(&id).to_string();
    }
    let given = req.name.is_some();
    let mut attempt = 0;
    loop {
        let name = match &req.name {
            Some(n) => crate::ids::validate_name(n)?,
            None => crate::ids::random_name(attempt)?,
        };
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            created: crate::time::now_rfc3339(),
            image_name: req.image.clone(),
            image_id: img.config_digest.to_string(),
            manifest_digest: img.manifest_digest.to_string(),
            config: config.clone(),
            host_config: host_config.clone(),
            runtime_path: runtime_path.to_string_lossy().into_owned(),
        };
        // Pinned and connected while the container is being built (its
        // locked `.tmp-<id>` dir exists), so `drop_stale_pins` and the
        // network's sweep of stale endpoints never take what is being made.
        let pin = |_: &Path| -> Result<()> {
            store.pin(&pin_name(&id), std::slice::from_ref(&img.manifest_digest))?;
            let mode = &host_config.network_mode;
            if !is_special_network_mode(mode)
                && crate::network::endpoints_of(engine.root(), &id).is_empty()
            {
                crate::network::connect(
                    engine.root(),
                    mode,
                    &id,
                    req.name.as_deref().unwrap_or(crate::ids::short(&id)),
                    &req.networking,
                    None,
                )?;
            }
            Ok(())
        };
        match engine.create(&rec, &pin) {
            Ok(()) => {
                crate::events::emit_container(engine.root(), "create", &rec, &[]);
                return Ok(rec);
            }
            Err(EngineError::NameInUse { .. }) if !given && attempt < 5 => attempt += 1,
            Err(e) => {
                let _ = store.unpin(&pin_name(&id));
                crate::network::release_all(engine.root(), &id);
                return Err(e);
            }
        }
    }
}

/// `none`, `host` and `container:<id>` are not networks to connect to.
pub fn is_special_network_mode(mode: &str) -> bool {
    matches!(mode, "none" | "host") || mode.starts_with("container:")
}

/// Checks the network mode and what goes with it, Docker's way: an empty
/// mode is the default network, a network is named by its name (not an
/// id prefix), `container:NAME` by the other container's id, and options
/// that make no sense with the mode are refused.
fn normalize_network(
    engine: &Engine,
    hc: &mut HostConfig,
    config: &Config,
    net: &crate::network::ConnectOptions,
) -> Result<()> {
    if hc.network_mode.is_empty() || hc.network_mode == "default" {
        hc.network_mode = crate::network::BRIDGE.into();
    }
    let publishes = !hc.port_bindings.is_empty() || hc.publish_all_ports;
    if let Some(other) = hc.network_mode.strip_prefix("container:") {
        if other.is_empty() {
            return Err(EngineError::InvalidArgument(
                "invalid network mode: container: needs a container name or id".into(),
            ));
        }
        let other = engine.resolve(other)?;
        if publishes {
            return Err(EngineError::InvalidArgument(
                "conflicting options: port publishing and the container type network mode".into(),
            ));
        }
        if !hc.dns.is_empty() || !hc.extra_hosts.is_empty() {
            return Err(EngineError::InvalidArgument(
                "conflicting options: dns and the network mode".into(),
            ));
        }
        if !config.hostname.is_empty() {
            return Err(EngineError::InvalidArgument(
                "conflicting options: hostname and the network mode".into(),
            ));
        }
        hc.network_mode = format!("container:{other}");
    } else if !matches!(
        hc.network_mode.as_str(),
        "none" | "host" | crate::network::BRIDGE
    ) {
        // (`bridge` is made, if need be, when the container is connected.)
        let n = crate::network::find(engine.root(), &hc.network_mode)?;
        hc.network_mode = n.name;
    }
    if is_special_network_mode(&hc.network_mode) {
        if net.ip.is_some() {
            return Err(EngineError::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !net.aliases.is_empty() {
            return Err(EngineError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
    }
    for key in hc.port_bindings.keys() {
        crate::network::parse_port_key(key)?;
    }
    Ok(())
}

/// `--volumes-from CONTAINER[:ro|:rw]`: the other container's volume and
/// bind mounts at the same targets (`ro` makes them read-only; by default
/// each keeps its mode). A target the new container mounts itself wins.
fn add_volumes_from(engine: &Engine, hc: &mut HostConfig) -> Result<()> {
    for spec in hc.volumes_from.clone() {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m)) if matches!(m, "ro" | "rw") => (n, Some(m)),
            Some((_, m)) => {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid mode for volumes-from: {m}"
                )))
            }
            None => (spec.as_str(), None),
        };
        let id = engine.resolve(name)?;
        let other = engine.record(&id)?;
        for m in &other.host_config.mounts {
            if !matches!(m.kind.as_str(), "volume" | "bind")
                || hc.mounts.iter().any(|x| x.target == m.target)
            {
                continue;
            }
            let mut m = m.clone();
            match mode {
                Some("ro") => m.read_only = true,
                Some(_) => m.read_only = false,
                None => {}
            }
            hc.mounts.push(m);
        }
    }
    Ok(())
}

/// The container's rootfs mount point.
pub fn rootfs_dir(dir: &Path) -> PathBuf {
    dir.join("merged")
}

/// The container's image: by its manifest digest in the store's index or,
/// once the image was deleted (`rmi -f` with a stopped container using it),
/// from the blobs the container's pin keeps.
pub fn image_of(store: &Store, rec: &ContainerRecord) -> Result<ImageRef> {
    if let Ok(img) = store.resolve(&rec.manifest_digest) {
        return Ok(img);
    }
    let digest = Digest::parse(&rec.manifest_digest)?;
    let (manifest_digest, manifest) = store.resolve_manifest(&digest, &Platform::host())?;
    let config_digest = Digest::try_from(manifest.config().digest())?;
    let target = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        store.blob_size(&manifest_digest)?,
        manifest_digest.to_oci(),
    );
    Ok(ImageRef {
        names: Vec::new(),
        target,
        manifest_digest,
        manifest,
        config_digest,
    })
}

/// Mounts the container's rootfs (image layers + its upper dir) unless it
/// is mounted already; returns the lower dirs.
pub fn mount_rootfs(store: &Store, rec: &ContainerRecord, dir: &Path) -> Result<Vec<PathBuf>> {
    let _lock = store.lock_shared()?;
    let img = image_of(store, rec)?;
    let lowers = snapshot::unpack(store, &img)?;
    let target = rootfs_dir(dir);
    if !snapshot::is_mounted(&target) {
        let mut with_init = lowers.clone();
        with_init.push(init_layer(rec, dir)?);
        snapshot::mount_rw(&with_init, &dir.join("upper"), &dir.join("work"), &target)?;
    }
    Ok(lowers)
}

/// Docker's init layer (`containers/<id>/init`, between the image and the
/// container's upper dir): the mount points the runtime needs (/proc,
/// /sys, /dev..., /etc/hostname, /etc/hosts, /etc/resolv.conf, the targets
/// of the container's mounts), so the runtime never creates them in the
/// upper dir and they stay out of `diff`, `commit` and `cp`.
fn init_layer(rec: &ContainerRecord, dir: &Path) -> Result<PathBuf> {
    let init = dir.join("init");
    let mut dirs: Vec<String> = [
        "proc",
        "sys",
        "sys/fs/cgroup",
        "dev",
        "dev/pts",
        "dev/shm",
        "dev/mqueue",
        "etc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut files: Vec<String> = ["etc/hostname", "etc/hosts", "etc/resolv.conf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if rec.host_config.init == Some(true) {
        files.push("sbin/docker-init".into());
    }
    for m in &rec.host_config.mounts {
        let rel = m.target.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            continue;
        }
        let is_file = m.kind == "bind" && Path::new(&m.source).is_file();
        if is_file {
            files.push(rel.to_string());
        } else {
            dirs.push(rel.to_string());
        }
    }
    for d in &dirs {
        let p = init.join(d);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
    }
    for f in &files {
        let p = init.join(f);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        if !p.exists() {
            std::fs::File::create(&p).map_err(io("create", &p))?;
        }
    }
    Ok(init)
}

/// The image's lower dirs (unpacking them if needed).
pub fn lowers(store: &Store, rec: &ContainerRecord) -> Result<Vec<PathBuf>> {
    let _lock = store.lock_shared()?;
    let img = image_of(store, rec)?;
    Ok(snapshot::unpack(store, &img)?)
}

/// Unmounts the container's rootfs if mounted.
pub fn unmount_rootfs(dir: &Path) -> Result<()> {
    let target = rootfs_dir(dir);
    if snapshot::is_mounted(&target) {
        snapshot::unmount(&target)?;
    }
    Ok(())
}

/// Removes a stopped container's files, its name and its image pin.
pub fn remove_files(engine: &Engine, id: &str) -> Result<()> {
    let dir = engine.dir(id);
    unmount_rootfs(&dir)?;
    // What a killed monitor could not undo (rules only exist for
    // containers that publish ports), and the addresses.
    let publishes = engine
        .record(id)
        .map(|r| !r.host_config.port_bindings.is_empty() || r.host_config.publish_all_ports)
        .unwrap_or(true);
    if publishes {
        crate::network::unpublish(engine.root(), id);
    }
    crate::network::release_all(engine.root(), id);
    engine.remove(id)?;
    if let Ok(store) = Store::open(engine.root()) {
        let _ = store.unpin(&pin_name(id));
    }
    Ok(())
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf
/// for its network mode; for `container:<id>`, the other container's hosts
/// and resolv.conf, and the path of its network namespace to join (it must
/// be running).
fn write_network_files(
    engine: &Engine,
    rec: &ContainerRecord,
    dir: &Path,
) -> Result<Option<String>> {
    let hc = &rec.host_config;
    if let Some(other) = hc.network_mode.strip_prefix("container:") {
        let c = engine.container(other).map_err(|_| {
            EngineError::Conflict(format!(
                "cannot join network of a non running container: {other}"
            ))
        })?;
        if !c.state.running || c.state.pid <= 0 {
            return Err(EngineError::Conflict(format!(
                "cannot join network of a non running container: {other}"
            )));
        }
        crate::spec::write_etc_files(dir, &rec.config.hostname, &rec.config.domainname)?;
        let from = engine.dir(other);
        for f in ["hosts", "resolv.conf"] {
            let (src, dst) = (from.join(f), dir.join(f));
            std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
        }
        return Ok(Some(format!("/proc/{}/ns/net", c.state.pid)));
    }
    let eps = crate::network::endpoints_of(engine.root(), &rec.id);
    let gateway = eps.first().map(|e| e.gateway.clone()).or_else(|| {
        crate::network::read(engine.root(), crate::network::BRIDGE)
            .ok()
            .map(|n| n.gateway.to_string())
    });
    let mut extra_hosts = Vec::new();
    for h in &hc.extra_hosts {
        let (name, ip) = crate::opts::parse_extra_host(h)?;
        let ip = if ip == "host-gateway" {
            gateway.clone().ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "--add-host {h}: host-gateway needs a network with a gateway"
                ))
            })?
        } else {
            ip
        };
        extra_hosts.push((name, ip));
    }
    crate::spec::write_etc_files_net(
        dir,
        &crate::spec::EtcFiles {
            hostname: &rec.config.hostname,
            domainname: &rec.config.domainname,
            ip: eps.first().map(|e| e.ip_address.as_str()),
            extra_hosts: &extra_hosts,
            dns: &hc.dns,
            dns_search: &hc.dns_search,
            dns_options: &hc.dns_options,
            embedded_dns: crate::network::uses_embedded_dns(&eps),
        },
    )?;
    Ok(None)
}

/// Is the host on the unified cgroup hierarchy only?
fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A started container: its init pid, and the attach stream if asked for.
pub struct Started {
    pub pid: i32,
    pub attach: Option<UnixStream>,
}

/// Starts a created or exited container: mounts its rootfs, writes its
/// bundle, spawns its monitor and waits until the container runs (or
/// failed, which is undone). With `attach`, connects to the monitor before
/// the container's process starts, so no output is missed.
pub fn start(engine: &Engine, store: &Store, id: &str, attach: bool) -> Result<Started> {
    let _l = engine.lock(id)?;
    let c = engine.container(id)?;
    match c.state.status.as_str() {
        "running" | "restarting" => {
            return Err(EngineError::Conflict(format!(
                "container {id} is already running"
            )))
        }
        "paused" => {
            return Err(EngineError::Conflict(
                "cannot start a paused container, try unpause instead".into(),
            ))
        }
        _ => {}
    }
    let rec = c.record;
    let dir = engine.dir(id);
    let undo = |e: EngineError| -> EngineError {
        let _ = unmount_rootfs(&dir);
        e
    };
    mount_rootfs(store, &rec, &dir)?;
    let rootfs = rootfs_dir(&dir);
    let netns_path = write_network_files(engine, &rec, &dir).map_err(undo)?;
    let init = if rec.host_config.init == Some(true) {
        Some(find_init().map_err(undo)?)
    } else {
        None
    };
    let volumes = engine.volumes_dir();
    copy_up_volumes(&rec, &rootfs, &volumes).map_err(undo)?;
    let spec = crate::spec::build(&crate::spec::SpecInput {
        record: &rec,
        rootfs: &rootfs,
        dir: &dir,
        volumes_dir: &volumes,
        init_binary: init.as_deref(),
        cgroup_v2: cgroup_v2(),
        netns_path: netns_path.as_deref(),
    })
    .map_err(undo)?;
    crate::store::write_json_atomic(&dir.join("config.json"), &spec).map_err(undo)?;
    engine
        .update_state(id, |s| {
            s.manual_stop = false;
            s.restart_count = 0;
            s.error.clear();
        })
        .map_err(undo)?;

    let monitor = find_binary("barge-monitor").map_err(undo)?;
    let log = dir.join("monitor.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io("open", &log))
        .map_err(undo)?;
    let mut cmd = Command::new(&monitor);
    cmd.arg(engine.root()).arg(id);
    if attach {
        cmd.arg("--attach");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(io("run", &monitor))
        .map_err(undo)?;
    let Some(out) = child.stdout.take() else {
        return Err(undo(EngineError::Runtime(
            "the monitor has no stdout".into(),
        )));
    };
    let mut lines = BufReader::new(out).lines();
    let mut stream = None;
    let result = loop {
        match lines.next() {
            Some(Ok(l)) if l == "listening" => {
                if attach {
                    match crate::attach::connect(&dir) {
                        Ok(s) => stream = Some(s),
                        Err(e) => break Err(e),
                    }
                }
            }
            Some(Ok(l)) if l.starts_with("running ") => {
                let pid = l["running ".len()..].trim().parse().unwrap_or(0);
                break Ok(pid);
            }
            Some(Ok(l)) if l.starts_with("error ") => {
                let rest = &l["error ".len()..];
                let (code, msg) = rest.split_once(' ').unwrap_or(("125", rest));
                let msg = msg.to_string();
                break Err(match code {
                    "126" => EngineError::CannotExecute(msg),
                    "127" => EngineError::CommandNotFound(msg),
                    _ => EngineError::Runtime(msg),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Err(EngineError::Runtime(format!("the monitor: {e}"))),
            None => {
                break Err(EngineError::Runtime(format!(
                    "the monitor exited before the container started; see {}",
                    log.display()
                )))
            }
        }
    };
    match result {
        Ok(pid) => {
            // The monitor lives on; it is reaped by whoever inherits it.
            drop(child);
            Ok(Started {
                pid,
                attach: stream,
            })
        }
        Err(e) => {
            let _ = child.wait();
            let rt = runtime_of(engine, &rec);
            let _ = rt.delete(id);
            crate::network::unplug_dead(engine.root(), id);
            let msg = e.to_string();
            let code = e.exit_code();
            let _ = engine.update_state(id, |s| {
                s.status = if s.started_at == crate::record::ZERO_TIME {
                    "created".into()
                } else {
                    "exited".into()
                };
                s.running = false;
                s.pid = 0;
                s.error = msg.clone();
                s.exit_code = code;
            });
            Err(undo(e))
        }
    }
}

/// Docker fills an empty volume with what the image has at its mount
/// point (unless `nocopy`). The volume's directory is locked meanwhile, so
/// concurrent starts copy once; tmpfs- and bind-typed volumes are not
/// filled.
fn copy_up_volumes(rec: &ContainerRecord, rootfs: &Path, volumes: &Path) -> Result<()> {
    for m in &rec.host_config.mounts {
        if m.kind != "volume" || m.options.iter().any(|o| o == "nocopy") {
            continue;
        }
        let meta =
            crate::volumes::ensure(volumes, &m.source, crate::volumes::implicit_meta(&m.source))?;
        if !meta.options.is_empty() {
            continue;
        }
        let data = crate::spec::volume_dir(volumes, &m.source);
        let vdir = volumes.join(&m.source);
        let lock = File::open(&vdir).map_err(io("open", &vdir))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(errno("lock", &vdir))?;
        let empty = std::fs::read_dir(&data)
            .map_err(io("read", &data))?
            .next()
            .is_none();
        if !empty {
            continue;
        }
        let mut tar = Vec::new();
        let src = format!("{}/.", m.target.trim_end_matches('/'));
        let stat = match crate::fsops::copy_from_container(rootfs, &src, &mut tar) {
            Ok(stat) if stat.is_dir() => stat,
            // Nothing (or not a directory) there in the image.
            _ => continue,
        };
        // Filled aside, then renamed over the empty `_data` (rename(2)
        // replaces an empty directory), so a crash mid-copy leaves the volume
        // empty, to be filled at the next start, never half filled. If
        // `_data` is in use as a mount point (EBUSY), fill it in place.
        let tmp = vdir.join(format!("_data.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        if let Err(e) = crate::fsops::extract_to_host(&tar[..], &stat, &tmp, true) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if std::fs::rename(&tmp, &data).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            crate::fsops::extract_to_host(&tar[..], &stat, &data, true)?;
        }
    }
    Ok(())
}

/// `--init`: a static init to bind-mount at /sbin/docker-init.
fn find_init() -> Result<PathBuf> {
    for name in ["barge-init", "docker-init", "tini-static", "tini"] {
        if let Ok(p) = find_binary(name) {
            return Ok(p);
        }
    }
    Err(EngineError::InvalidArgument(
        "--init needs a static init binary (tini-static: apt-get install tini)".into(),
    ))
}

/// The runtime of a container.
pub fn runtime_of(engine: &Engine, rec: &ContainerRecord) -> Runtime {
    Runtime::new(
        PathBuf::from(&rec.runtime_path),
        engine.runtime_root(&rec.runtime_path),
    )
}

/// Waits until the container is no longer running (or the timeout).
pub fn wait_stopped(engine: &Engine, id: &str, timeout: Option<Duration>) -> Result<bool> {
    let until = timeout.map(|t| Instant::now() + t);
    loop {
        let c = engine.container(id)?;
        if !matches!(c.state.status.as_str(), "running" | "paused") {
            return Ok(true);
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `barge stop`: the stop signal, then SIGKILL after `timeout` seconds.
pub fn stop(engine: &Engine, id: &str, timeout: Option<i64>) -> Result<()> {
    let c = engine.container(id)?;
    engine.update_state(id, |s| s.manual_stop = true)?;
    if !matches!(c.state.status.as_str(), "running" | "paused" | "restarting") {
        return Ok(());
    }
    let rt = runtime_of(engine, &c.record);
    let signal = c
        .record
        .config
        .stop_signal
        .clone()
        .unwrap_or_else(|| "SIGTERM".into());
    let timeout = timeout
        .or(c.record.config.stop_timeout)
        .unwrap_or(10)
        .max(0);
    if c.state.status == "paused" {
        let _ = rt.resume(id);
    }
    if c.state.status != "restarting" {
        let _ = rt.kill(id, &signal, false);
        if !wait_stopped(engine, id, Some(Duration::from_secs(timeout as u64)))? {
            let _ = rt.kill(id, "SIGKILL", true);
            wait_stopped(engine, id, Some(Duration::from_secs(30)))?;
        }
    } else {
        wait_stopped(engine, id, Some(Duration::from_secs(5)))?;
    }
    let c = engine.container(id)?;
    crate::events::emit_container(engine.root(), "stop", &c.record, &[]);
    Ok(())
}

/// `barge kill`.
pub fn kill(engine: &Engine, id: &str, signal: &str) -> Result<()> {
    let c = engine.container(id)?;
    if !matches!(c.state.status.as_str(), "running" | "paused") {
        return Err(EngineError::Conflict(format!(
            "Cannot kill container: {id}: Container {id} is not running"
        )));
    }
    let sig = signal.trim_start_matches("SIG");
    if matches!(sig, "KILL" | "9" | "TERM" | "15" | "INT" | "2") {
        engine.update_state(id, |s| s.manual_stop = true)?;
    }
    let rt = runtime_of(engine, &c.record);
    rt.kill(id, signal, false)?;
    crate::events::emit_container(
        engine.root(),
        "kill",
        &c.record,
        &[("signal", signal.to_string())],
    );
    Ok(())
}

/// `barge pause` / `unpause`.
pub fn pause(engine: &Engine, id: &str, pause: bool) -> Result<()> {
    let _l = engine.lock(id)?;
    let c = engine.container(id)?;
    let rt = runtime_of(engine, &c.record);
    if pause {
        if c.state.status == "paused" {
            return Err(EngineError::Conflict(format!(
                "Container {id} is already paused"
            )));
        }
        if c.state.status != "running" {
            return Err(EngineError::Conflict(format!(
                "Container {id} is not running"
            )));
        }
        rt.pause(id)?;
    } else {
        if c.state.status != "paused" {
            return Err(EngineError::Conflict(format!(
                "Container {id} is not paused"
            )));
        }
        rt.resume(id)?;
    }
    engine.update_state(id, |s| {
        if s.running {
            s.paused = pause;
            s.status = if pause { "paused" } else { "running" }.into();
        }
    })?;
    crate::events::emit_container(
        engine.root(),
        if pause { "pause" } else { "unpause" },
        &c.record,
        &[],
    );
    Ok(())
}

/// `barge rm`: refuses a running container unless `force` (then kills it).
pub fn remove(engine: &Engine, id: &str, force: bool, volumes: bool) -> Result<()> {
    let c = engine.container(id)?;
    if matches!(c.state.status.as_str(), "running" | "paused" | "restarting") {
        if !force {
            let what = if c.state.status == "paused" {
                "paused"
            } else {
                "running"
            };
            return Err(EngineError::Conflict(format!(
                "You cannot remove a {what} container {id}. Stop the container before attempting removal or force remove"
            )));
        }
        engine.update_state(id, |s| s.manual_stop = true)?;
        let rt = runtime_of(engine, &c.record);
        let _ = rt.kill(id, "SIGKILL", true);
        if !wait_stopped(engine, id, Some(Duration::from_secs(10)))? {
            // The monitor is gone or stuck: clean up ourselves.
            let _ = rt.delete(id);
        }
        // Let the monitor finish its bookkeeping (it unmounts the rootfs).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let s = engine.raw_state(id)?;
            if !crate::store::process_alive(s.monitor_pid, s.monitor_start) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _l = engine.lock(id)?;
    let rt = runtime_of(engine, &c.record);
    let _ = rt.delete(id);
    remove_files(engine, id)?;
    if volumes {
        // Its anonymous volumes, unless another container uses them
        // (`--volumes-from`), as Docker does.
        for m in &c.record.host_config.mounts {
            if m.kind == "volume" && crate::volumes::is_anonymous(engine, &m.source) {
                let _ = crate::volumes::remove(engine, &m.source, true);
            }
        }
    }
    crate::events::emit_container(engine.root(), "destroy", &c.record, &[]);
    Ok(())
}

/// The config digest of a container's image as `Digest`.
pub fn image_digest(rec: &ContainerRecord) -> Option<Digest> {
    rec.image_id.parse().ok()
}
