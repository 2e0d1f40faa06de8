//! Bridge networks: the default network `bridge` and user-defined ones
//! (`barge network create`), each a Linux bridge with the network's
//! gateway address, an address pool, and rules in Barge's own nftables
//! table (masquerade, isolation between networks, no way out for
//! `--internal` ones, DNAT for published ports).
//!
//! On disk, under `<root>/networks/`:
//! - `<name>/network.json`: the network ([`Network`]);
//! - `<name>/ipam/`: its address pool (`barge_net::ipam`);
//! - `<name>/endpoints/<container id>.json`: one per connected container
//!   ([`Endpoint`]: address, MAC, aliases, interface name). These files are
//!   the truth about which container is on which network: create,
//!   `network connect`/`disconnect` and remove write and delete them.
//!
//! A network is made in `.tmp-<name>` and renamed into place once its
//! bridge and rules exist; a leftover `.tmp-*` (a killed `network
//! create`) is torn down by the next network command. Everything that
//! changes networks or endpoints holds `networks/.lock`.
//!
//! A container gets its addresses when it is created or connected, and its
//! veth pairs when it starts: the monitor calls [`plug`] between the
//! runtime's `create` and `start`, so the process starts with its network
//! up. [`plug`] also starts, in the monitor, the embedded DNS server
//! (127.0.0.11 in the container's namespace, for containers on
//! user-defined networks) and the userspace proxy and DNAT rules of its
//! published ports; [`unplug`] undoes all of it when the process exits.
//!
//! The engine root `/var/lib/barge` uses bridge `barge0` and table
//! `barge`; any other root (tests, a second engine) uses `bg` + 8 hex of a
//! hash of the root path for both, so engines never share a bridge.
//! User-defined networks get a bridge `bgn` + 12 hex of their id.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use barge_net::dns;
use barge_net::ipam::{self, Pool, Subnet};
use barge_net::link::{self, Links, Netlink};
use barge_net::nft::{self, Firewall, Proto};
use barge_net::proxy::{Proxy, ProxyPort};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io, EngineError, Result};
use crate::record::ContainerRecord;

/// The engine root whose network uses the well-known names.
pub const DEFAULT_ROOT: &str = "/var/lib/barge";
/// The name of the default bridge network.
pub const BRIDGE: &str = "bridge";
/// The networks every engine has: they cannot be created or removed.
pub const PREDEFINED: [&str; 3] = [BRIDGE, "host", "none"];

/// A network as stored in `networks/<name>/network.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// 64 hex; empty for a default network made before ids existed.
    #[serde(default)]
    pub id: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// The Linux bridge.
    pub bridge: String,
    /// Barge's nftables table (family ip), shared by an engine's networks.
    pub table: String,
    /// No route out of the network, no masquerade, no published ports from
    /// outside.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(default)]
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Subnet>,
}

/// A container's place on a network, as Docker's inspect shows it under
/// `NetworkSettings.Networks`, plus the interface it has inside.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    pub gateway: String,
    pub mac_address: String,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `eth0`, `eth1`... inside the container.
    pub if_name: String,
    /// The address was chosen by the user (`--ip`).
    #[serde(rename = "IPAMConfigured")]
    pub ipam_configured: bool,
}

impl Endpoint {
    pub fn ip(&self) -> Result<Ipv4Addr> {
        self.ip_address.parse().map_err(|_| {
            EngineError::Runtime(format!("bad address in an endpoint: {}", self.ip_address))
        })
    }

    fn if_index(&self) -> usize {
        self.if_name
            .strip_prefix("eth")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    }
}

/// What `network create` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Subnet>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// What `network connect` (or `run --network`) was asked for.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--network-alias` / `--alias`.
    pub aliases: Vec<String>,
}

fn root_hash(root: &Path) -> Option<String> {
    let canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if canon == Path::new(DEFAULT_ROOT) {
        return None;
    }
    let h = Sha256::digest(canon.as_os_str().as_encoded_bytes());
    Some(hex::encode(&h[..4]))
}

/// The bridge of the default network of the engine at `root`.
pub fn bridge_name(root: &Path) -> String {
    match root_hash(root) {
        None => "barge0".into(),
        Some(h) => format!("bg{h}"),
    }
}

/// The nftables table of the engine at `root`.
pub fn table_name(root: &Path) -> String {
    match root_hash(root) {
        None => "barge".into(),
        Some(h) => format!("bg{h}"),
    }
}

fn networks_dir(root: &Path) -> PathBuf {
    root.join("networks")
}

fn network_dir(root: &Path, name: &str) -> PathBuf {
    networks_dir(root).join(name)
}

fn pool_dir(root: &Path, name: &str) -> PathBuf {
    network_dir(root, name).join("ipam")
}

fn endpoints_dir(root: &Path, name: &str) -> PathBuf {
    network_dir(root, name).join("endpoints")
}

fn endpoint_path(root: &Path, name: &str, container_id: &str) -> PathBuf {
    endpoints_dir(root, name).join(format!("{container_id}.json"))
}

/// The lock every change of networks and endpoints of an engine holds.
fn lock(root: &Path) -> Result<File> {
    let nets = networks_dir(root);
    std::fs::create_dir_all(&nets).map_err(io("create", &nets))?;
    let f = crate::store::lock_file(&nets.join(".lock"), true)?;
    sweep_partial(root);
    Ok(f)
}

/// The host-side veth of a container's interface: `brg` + 12 hex of the
/// id for eth0, `brg` + 9 hex + `e` + N for ethN (15 bytes at most).
pub fn host_veth(container_id: &str, if_name: &str) -> String {
    let base = link::host_veth_name(container_id);
    match if_name.strip_prefix("eth") {
        Some("0") | None => base,
        Some(n) => format!("{}e{n}", &base[..base.len().min(12)]),
    }
}

/// Docker's network names: a letter or digit, then letters, digits, `_`,
/// `.` and `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid network name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let data = std::fs::read(p).map_err(io("read", p))?;
    serde_json::from_slice(&data).map_err(|source| EngineError::Json {
        what: format!("parse {}", p.display()),
        source,
    })
}

/// Reads a network's settings by its exact name.
pub fn read(root: &Path, name: &str) -> Result<Network> {
    read_json(&network_dir(root, name).join("network.json"))
}

fn not_found(name: &str) -> EngineError {
    EngineError::InvalidArgument(format!("network {name} not found"))
}

/// Every network of the engine that exists on disk (the default one once
/// it was first used), sorted by name.
pub fn list(root: &Path) -> Result<Vec<Network>> {
    let dir = networks_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    let mut v = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Ok(n) = read(root, &name) {
            v.push(n);
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// A network by name, full id or unique id prefix (`bridge` is made if it
/// was never used).
pub fn find(root: &Path, key: &str) -> Result<Network> {
    if key == BRIDGE {
        return ensure_default(root);
    }
    find_existing(root, key)
}

/// [`find`] with the lock held.
fn find_locked(root: &Path, key: &str) -> Result<Network> {
    if key == BRIDGE {
        return ensure_default_locked(root);
    }
    find_existing(root, key)
}

fn find_existing(root: &Path, key: &str) -> Result<Network> {
    if validate_name(key).is_ok() {
        if let Ok(n) = read(root, key) {
            return Ok(n);
        }
    }
    let all = list(root)?;
    let matches: Vec<&Network> = all
        .iter()
        .filter(|n| !key.is_empty() && !n.id.is_empty() && n.id.starts_with(key))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(not_found(key)),
        _ => Err(EngineError::InvalidArgument(format!(
            "network {key} is ambiguous ({} matches found based on ID prefix)",
            matches.len()
        ))),
    }
}

/// The default network, made on first use (once, under the lock), with
/// its bridge and firewall rules set up if the bridge is missing.
pub fn ensure_default(root: &Path) -> Result<Network> {
    let _l = lock(root)?;
    ensure_default_locked(root)
}

fn ensure_default_locked(root: &Path) -> Result<Network> {
    let json = network_dir(root, BRIDGE).join("network.json");
    let net = if json.is_file() {
        let mut n = read(root, BRIDGE)?;
        if n.id.is_empty() {
            n.id = crate::ids::new_id()?;
            crate::store::write_json_atomic(&json, &n)?;
        }
        n
    } else {
        // Subnets are picked from the host's routes: engines on one host
        // pick one at a time, each seeing the bridge routes of the others.
        let _host_lock = crate::store::lock_file(Path::new("/run/barge-networks.lock"), true).ok();
        let pool = match Pool::open(&pool_dir(root, BRIDGE)) {
            Ok(p) => p,
            Err(_) => {
                let subnet = pick_free_subnet(root)?;
                let _ = std::fs::remove_dir_all(pool_dir(root, BRIDGE));
                Pool::create(&pool_dir(root, BRIDGE), subnet, None, None)?
            }
        };
        let info = pool.info()?;
        let net = Network {
            name: BRIDGE.into(),
            id: crate::ids::new_id()?,
            subnet: info.subnet,
            gateway: info.gateway,
            bridge: bridge_name(root),
            table: table_name(root),
            internal: false,
            labels: BTreeMap::new(),
            created: crate::time::now_rfc3339(),
            ip_range: None,
        };
        crate::store::write_json_atomic(&json, &net)?;
        net
    };
    if !Netlink.link_exists(&net.bridge)? {
        setup(root, &net)?;
    }
    Ok(net)
}

/// A subnet from Docker's default pools clear of the host's routes and of
/// this engine's networks.
fn pick_free_subnet(root: &Path) -> Result<Subnet> {
    let routes = ipam::host_routes()?;
    let taken: Vec<Subnet> = list(root)?.iter().map(|n| n.subnet).collect();
    ipam::pick_subnet(&ipam::default_candidates(), &taken, &routes).ok_or_else(|| {
        EngineError::Runtime(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network; give one with --subnet".into(),
        )
    })
}

/// The bridge with the gateway address, and the network's rules.
fn setup(root: &Path, net: &Network) -> Result<()> {
    Netlink.ensure_bridge(&net.bridge, Some((net.gateway, net.subnet.prefix)), None)?;
    if Firewall::available() {
        let fw = Firewall::new(&net.table);
        fw.ensure()?;
        fw.remove_network(&net.bridge)?;
        fw.add_network(&net.bridge, net.subnet, net.internal)?;
        // Masquerade is for traffic routed out of the host.
        let fwd = Path::new("/proc/sys/net/ipv4/ip_forward");
        if std::fs::read_to_string(fwd)
            .map(|s| s.trim() != "1")
            .unwrap_or(true)
        {
            std::fs::write(fwd, "1").map_err(io("write", fwd))?;
        }
    } else {
        let marker = networks_dir(root).join(".nft-missing");
        if !marker.exists() {
            eprintln!(
                "WARNING: nft is not usable: containers on network {} reach the host and each other but not the outside, and published ports go through the userspace proxy only (install nftables)",
                net.name
            );
            let _ = std::fs::write(&marker, "");
        }
    }
    Ok(())
}

/// Removes a network's bridge and rules (absent ones are fine).
fn teardown(net: &Network) {
    if Firewall::available() {
        let _ = Firewall::new(&net.table).remove_network(&net.bridge);
    }
    let _ = Netlink.delete_link(&net.bridge);
}

/// Tears down what a killed `network create` left in `.tmp-*`.
fn sweep_partial(root: &Path) {
    let Ok(entries) = std::fs::read_dir(networks_dir(root)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(".tmp-") && !name.starts_with(".rm-") {
            continue;
        }
        if let Ok(net) = read_json::<Network>(&e.path().join("network.json")) {
            teardown(&net);
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// `network create`: a bridge network with its own subnet (given, or the
/// first free default pool), bridge and rules.
pub fn create(root: &Path, opts: &CreateOptions) -> Result<Network> {
    validate_name(&opts.name)?;
    if PREDEFINED.contains(&opts.name.as_str()) {
        return Err(EngineError::Conflict(format!(
            "network with name {} already exists",
            opts.name
        )));
    }
    if opts.subnet.is_none() && (opts.gateway.is_some() || opts.ip_range.is_some()) {
        return Err(EngineError::InvalidArgument(
            "--gateway and --ip-range need --subnet: they must lie inside it".into(),
        ));
    }
    let _l = lock(root)?;
    if network_dir(root, &opts.name).exists() {
        return Err(EngineError::Conflict(format!(
            "network with name {} already exists",
            opts.name
        )));
    }
    // The default network's subnet is taken even before its first use
    // (made before the host lock is taken: making it takes that lock).
    ensure_default_locked(root)?;
    let _host_lock = crate::store::lock_file(Path::new("/run/barge-networks.lock"), true).ok();
    let existing = list(root)?;
    let subnet = match opts.subnet {
        Some(s) => {
            if let Some(other) = existing.iter().find(|n| n.subnet.overlaps(&s)) {
                return Err(EngineError::Conflict(format!(
                    "Pool overlaps with other one on this address space: {s} overlaps {} of network {}",
                    other.subnet, other.name
                )));
            }
            s
        }
        None => pick_free_subnet(root)?,
    };
    let id = crate::ids::new_id()?;
    let tmp = networks_dir(root).join(format!(".tmp-{}", opts.name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("endpoints")).map_err(io("create", &tmp))?;
    let made = (|| -> Result<Network> {
        let pool = Pool::create(&tmp.join("ipam"), subnet, opts.gateway, opts.ip_range)?;
        let info = pool.info()?;
        let net = Network {
            name: opts.name.clone(),
            id: id.clone(),
            subnet: info.subnet,
            gateway: info.gateway,
            bridge: format!("bgn{}", &id[..12]),
            table: table_name(root),
            internal: opts.internal,
            labels: opts.labels.clone(),
            created: crate::time::now_rfc3339(),
            ip_range: info.ip_range,
        };
        crate::store::write_json_atomic(&tmp.join("network.json"), &net)?;
        setup(root, &net)?;
        let dir = network_dir(root, &opts.name);
        std::fs::rename(&tmp, &dir).map_err(io("rename", &tmp))?;
        Ok(net)
    })();
    if made.is_err() {
        if let Ok(net) = read_json::<Network>(&tmp.join("network.json")) {
            teardown(&net);
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
    made
}

/// The endpoints of a network, by container id.
pub fn network_endpoints(root: &Path, name: &str) -> Vec<Endpoint> {
    let dir = endpoints_dir(root, name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<Endpoint> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| read_json(&e.path()).ok())
        .collect();
    v.sort_by(|a: &Endpoint, b| a.container_id.cmp(&b.container_id));
    v
}

/// The endpoints of a container on every network, eth0 first.
pub fn endpoints_of(root: &Path, container_id: &str) -> Vec<Endpoint> {
    let mut v = Vec::new();
    let Ok(entries) = std::fs::read_dir(networks_dir(root)) else {
        return v;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let p = endpoint_path(root, &name, container_id);
        if let Ok(ep) = read_json::<Endpoint>(&p) {
            v.push(ep);
        }
    }
    v.sort_by_key(Endpoint::if_index);
    v
}

/// Gives back the endpoints and addresses of containers that do not exist
/// and are not being created (a `create` or `rm` killed half-way).
/// Called with the lock held.
fn sweep_stale_locked(root: &Path) {
    let Ok(engine) = crate::store::Engine::open(root) else {
        return;
    };
    let gone = |id: &str| !engine.dir(id).is_dir() && !engine.building(id);
    let Ok(entries) = std::fs::read_dir(networks_dir(root)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        for ep in network_endpoints(root, &name) {
            if gone(&ep.container_id) {
                let _ = Netlink.delete_link(&host_veth(&ep.container_id, &ep.if_name));
                let _ = std::fs::remove_file(endpoint_path(root, &name, &ep.container_id));
            }
        }
        if let Ok(pool) = Pool::open(&pool_dir(root, &name)) {
            let owners: Vec<String> = pool
                .allocations()
                .map(|m| m.into_values().collect())
                .unwrap_or_default();
            for owner in owners {
                if gone(&owner) && !endpoint_path(root, &name, &owner).exists() {
                    let _ = pool.release_owner(&owner);
                }
            }
        }
    }
}

/// `network rm`: refused while containers are connected.
pub fn remove(root: &Path, key: &str) -> Result<String> {
    if PREDEFINED.contains(&key) {
        return Err(EngineError::Conflict(format!(
            "{key} is a pre-defined network and cannot be removed"
        )));
    }
    let _l = lock(root)?;
    sweep_stale_locked(root);
    let net = find_locked(root, key)?;
    if net.name == BRIDGE {
        return Err(EngineError::Conflict(format!(
            "{BRIDGE} is a pre-defined network and cannot be removed"
        )));
    }
    let eps = network_endpoints(root, &net.name);
    if !eps.is_empty() {
        return Err(EngineError::Conflict(format!(
            "error while removing network: network {} id {} has active endpoints (containers {}); remove them or disconnect them first",
            net.name,
            net.id,
            eps.iter()
                .map(|e| crate::ids::short(&e.container_id).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Renamed first: a kill from here on leaves a `.rm-` dir the next
    // network command tears down.
    let dir = network_dir(root, &net.name);
    let gone = networks_dir(root).join(format!(".rm-{}", net.name));
    std::fs::rename(&dir, &gone).map_err(io("rename", &dir))?;
    teardown(&net);
    std::fs::remove_dir_all(&gone).map_err(io("remove", &gone))?;
    collect_idle_locked(root);
    Ok(net.name)
}

/// `network prune`: the user-defined networks no container uses (and
/// whose labels match `keep`), removed; their names.
pub fn prune(root: &Path, keep: &dyn Fn(&Network) -> bool) -> Result<Vec<String>> {
    {
        let _l = lock(root)?;
        sweep_stale_locked(root);
    }
    let mut gone = Vec::new();
    for n in list(root)? {
        if n.name == BRIDGE || !keep(&n) || !network_endpoints(root, &n.name).is_empty() {
            continue;
        }
        match remove(root, &n.name) {
            Ok(name) => gone.push(name),
            // Connected to meanwhile: kept.
            Err(EngineError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

/// Connects container `id` (named `name`) to network `key`: an address
/// and an endpoint file. The veth is made when the container starts (or
/// now, when it runs: `pid`).
pub fn connect(
    root: &Path,
    key: &str,
    id: &str,
    name: &str,
    opts: &ConnectOptions,
    pid: Option<i32>,
) -> Result<Endpoint> {
    let _l = lock(root)?;
    let net = find_locked(root, key)?;
    if net.name == BRIDGE {
        if opts.ip.is_some() {
            return Err(EngineError::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !opts.aliases.is_empty() {
            return Err(EngineError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
    }
    let path = endpoint_path(root, &net.name, id);
    if path.exists() {
        return Err(EngineError::Conflict(format!(
            "endpoint with name {name} already exists in network {}",
            net.name
        )));
    }
    let used: Vec<usize> = endpoints_of(root, id)
        .iter()
        .map(Endpoint::if_index)
        .collect();
    let index = (0..).find(|i| !used.contains(i)).unwrap_or(0);
    let pool = Pool::open(&pool_dir(root, &net.name))?;
    let ip = match opts.ip {
        Some(ip) => {
            pool.allocate_specific(ip, id)?;
            ip
        }
        None => pool.allocate(id)?,
    };
    let ep = Endpoint {
        network: net.name.clone(),
        network_id: net.id.clone(),
        endpoint_id: crate::ids::new_id()?,
        container_id: id.to_string(),
        ip_address: ip.to_string(),
        ip_prefix_len: net.subnet.prefix,
        gateway: net.gateway.to_string(),
        mac_address: mac_text(ip),
        aliases: opts.aliases.clone(),
        if_name: format!("eth{index}"),
        ipam_configured: opts.ip.is_some(),
    };
    let written = std::fs::create_dir_all(endpoints_dir(root, &net.name))
        .map_err(io("create", &endpoints_dir(root, &net.name)))
        .and_then(|()| crate::store::write_json_atomic(&path, &ep));
    if let Err(e) = written {
        let _ = pool.release(ip, id);
        return Err(e);
    }
    if let Some(pid) = pid {
        if let Err(e) = attach_one(root, &net, &ep, pid, false, true) {
            let _ = std::fs::remove_file(&path);
            let _ = pool.release(ip, id);
            return Err(e);
        }
    }
    Ok(ep)
}

/// Disconnects container `id` from network `key`: its veth (if running),
/// address and endpoint file.
pub fn disconnect(root: &Path, key: &str, id: &str, name: &str) -> Result<()> {
    let _l = lock(root)?;
    let net = find_locked(root, key)?;
    let path = endpoint_path(root, &net.name, id);
    let ep: Endpoint = read_json(&path).map_err(|_| {
        EngineError::Conflict(format!(
            "container {name} is not connected to network {}",
            net.name
        ))
    })?;
    let _ = Netlink.delete_link(&host_veth(id, &ep.if_name));
    if let Ok(pool) = Pool::open(&pool_dir(root, &net.name)) {
        let _ = pool.release_owner(id);
    }
    std::fs::remove_file(&path).map_err(io("remove", &path))
}

/// Deletes the engine's nftables table once none of its networks has a
/// bridge (called with the lock held, after a network went away).
fn collect_idle_locked(root: &Path) {
    let Ok(all) = list(root) else {
        return;
    };
    if all
        .iter()
        .any(|n| Netlink.link_exists(&n.bridge).unwrap_or(true))
    {
        return;
    }
    if Firewall::available() {
        let fw = Firewall::new(&table_name(root));
        if fw.exists().unwrap_or(false) {
            let _ = fw.delete_table();
        }
    }
}

/// Takes down every network of the engine, the default one included (its
/// bridge, its rules, the engine's nftables table) and forgets them: for
/// `system reset`, once no container is left. Refused while containers
/// are connected.
pub fn reset(root: &Path) -> Result<Vec<String>> {
    let _l = lock(root)?;
    sweep_stale_locked(root);
    let all = list(root)?;
    if let Some(n) = all
        .iter()
        .find(|n| !network_endpoints(root, &n.name).is_empty())
    {
        return Err(EngineError::Conflict(format!(
            "network {} has active endpoints: remove its containers first",
            n.name
        )));
    }
    let mut gone = Vec::new();
    for n in &all {
        teardown(n);
        let dir = network_dir(root, &n.name);
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
        gone.push(n.name.clone());
    }
    if Firewall::available() {
        let fw = Firewall::new(&table_name(root));
        if fw.exists().unwrap_or(false) {
            fw.delete_table()?;
        }
    }
    Ok(gone)
}

/// Gives back everything container `id` holds on any network: veths,
/// addresses, endpoint files. Nothing to give is fine.
pub fn release_all(root: &Path, id: &str) {
    let Ok(_l) = lock(root) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(networks_dir(root)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = endpoint_path(root, &name, id);
        if let Ok(ep) = read_json::<Endpoint>(&path) {
            let _ = Netlink.delete_link(&host_veth(id, &ep.if_name));
        }
        if let Ok(pool) = Pool::open(&pool_dir(root, &name)) {
            let _ = pool.release_owner(id);
        }
        let _ = std::fs::remove_file(&path);
    }
}

fn mac_text(ip: Ipv4Addr) -> String {
    link::mac_for(ip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One veth pair for `ep` into the namespace of `pid`. On failure no veth
/// is left.
/// `locked`: the caller holds the networks lock already.
fn attach_one(
    root: &Path,
    net: &Network,
    ep: &Endpoint,
    pid: i32,
    route: bool,
    locked: bool,
) -> Result<()> {
    if !Netlink.link_exists(&net.bridge)? {
        // After a reboot, or after a bridge was deleted by hand. `connect`
        // holds the lock already.
        let _l = if locked { None } else { Some(lock(root)?) };
        if !Netlink.link_exists(&net.bridge)? {
            setup(root, net)?;
        }
    }
    let ip = ep.ip()?;
    let host = host_veth(&ep.container_id, &ep.if_name);
    // A leftover of a crashed run would make the pair's creation fail.
    let _ = Netlink.delete_link(&host);
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let r = Netlink.attach(
        &net.bridge,
        &host,
        &netns,
        &ep.if_name,
        (ip, net.subnet.prefix),
        (route && !net.internal).then_some(net.gateway),
        Some(link::mac_for(ip)),
    );
    if let Err(e) = r {
        let _ = Netlink.delete_link(&host);
        return Err(EngineError::Runtime(format!(
            "connect to network {}: {e}",
            ep.network
        )));
    }
    Ok(())
}

/// Deletes the host ends of a container's veths (only of interfaces it
/// has endpoints for: never another tool's link).
pub fn detach_all(root: &Path, id: &str) {
    for ep in endpoints_of(root, id) {
        let _ = Netlink.delete_link(&host_veth(id, &ep.if_name));
    }
}

// ---------------------------------------------------------------------------
// Published ports
// ---------------------------------------------------------------------------

/// A published port as bound (`containers/<id>/ports.json` while the
/// container runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BoundPort {
    /// Docker's key: `80/tcp`.
    pub port: String,
    pub host_ip: String,
    pub host_port: String,
}

fn ports_file(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id).join("ports.json")
}

/// The ports a running container has published.
pub fn bound_ports(root: &Path, id: &str) -> Vec<BoundPort> {
    read_json(&ports_file(root, id)).unwrap_or_default()
}

/// `80/tcp` → (80, tcp).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(EngineError::InvalidArgument(format!(
                "publishing {other} ports is not supported: only tcp and udp ({key})"
            )))
        }
    };
    let port = port
        .parse()
        .map_err(|_| EngineError::InvalidArgument(format!("invalid port {key}")))?;
    Ok((port, proto))
}

/// What the container asks to publish: `-p` bindings, and with `-P`
/// every exposed port not bound already, each on a random port.
pub fn wanted_ports(rec: &ContainerRecord, backend: Ipv4Addr) -> Result<Vec<(String, ProxyPort)>> {
    let hc = &rec.host_config;
    let mut v = Vec::new();
    for (key, bindings) in &hc.port_bindings {
        let (port, proto) = parse_port_key(key)?;
        for b in bindings {
            let host_ip: IpAddr = if b.host_ip.is_empty() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                b.host_ip.parse().map_err(|_| {
                    EngineError::InvalidArgument(format!("invalid IP address: {}", b.host_ip))
                })?
            };
            let (start, end) = match b.host_port.split_once('-') {
                Some((a, z)) => (a.parse().ok(), z.parse().ok().map(Some)),
                None if b.host_port.is_empty() => (Some(0), Some(None)),
                None => (b.host_port.parse().ok(), Some(None)),
            };
            let (Some(start), Some(end)) = (start, end) else {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid hostPort: {}",
                    b.host_port
                )));
            };
            v.push((
                key.clone(),
                ProxyPort {
                    proto,
                    host_ip,
                    host_port: start,
                    host_port_end: end,
                    backend: SocketAddr::V4(SocketAddrV4::new(backend, port)),
                },
            ));
        }
    }
    if hc.publish_all_ports {
        for key in rec.config.exposed_ports.keys() {
            if hc.port_bindings.contains_key(key) {
                continue;
            }
            let (port, proto) = parse_port_key(key)?;
            v.push((
                key.clone(),
                ProxyPort {
                    proto,
                    host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    host_port: 0,
                    host_port_end: None,
                    backend: SocketAddr::V4(SocketAddrV4::new(backend, port)),
                },
            ));
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Embedded DNS
// ---------------------------------------------------------------------------

/// Names of the containers on the user-defined networks of a container,
/// read from the endpoint files at each query (so containers and networks
/// connected later, and renames, are seen); only running containers
/// answer.
struct NetResolver {
    root: PathBuf,
    engine: crate::store::Engine,
    container_id: String,
}

impl NetResolver {
    fn networks(&self) -> Vec<String> {
        endpoints_of(&self.root, &self.container_id)
            .into_iter()
            .filter(|e| e.network != BRIDGE)
            .map(|e| e.network)
            .collect()
    }

    /// The container's name (lower-case) and whether it runs.
    fn container(&self, id: &str) -> Option<(String, bool)> {
        let rec = self.engine.record(id).ok()?;
        let state = self.engine.raw_state(id).ok()?;
        Some((rec.name.to_ascii_lowercase(), state.running))
    }
}

impl dns::Resolver for NetResolver {
    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let mut found = Vec::new();
        for net in &self.networks() {
            let bare = name
                .strip_suffix(&format!(".{}", net.to_ascii_lowercase()))
                .unwrap_or(name);
            for ep in network_endpoints(&self.root, net) {
                let Some((cname, running)) = self.container(&ep.container_id) else {
                    continue;
                };
                let hit = cname == bare
                    || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(bare))
                    || (bare.len() == 12 && ep.container_id.starts_with(bare));
                if hit && running {
                    if let Ok(ip) = ep.ip() {
                        if !found.contains(&ip) {
                            found.push(ip);
                        }
                    }
                }
            }
        }
        (!found.is_empty()).then_some(found)
    }

    fn reverse(&self, ip: Ipv4Addr) -> Option<String> {
        for net in &self.networks() {
            for ep in network_endpoints(&self.root, net) {
                if ep.ip().ok() == Some(ip) {
                    let (cname, running) = self.container(&ep.container_id)?;
                    if running {
                        return Some(format!("{cname}.{net}"));
                    }
                }
            }
        }
        None
    }
}

/// The resolvers the embedded DNS forwards to: `--dns`, else the host's.
fn upstreams(rec: &ContainerRecord) -> Vec<SocketAddr> {
    if !rec.host_config.dns.is_empty() {
        return rec
            .host_config
            .dns
            .iter()
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    dns::upstreams_from_resolv_conf(&host)
}

/// The embedded DNS of a container: sockets at 127.0.0.11:53 in its
/// network namespace `netns`, served from here.
fn start_dns(root: &Path, rec: &ContainerRecord, netns: &Path) -> Result<dns::Server> {
    let (udp, tcp) = dns::bind_in_netns(netns, SocketAddrV4::new(dns::EMBEDDED_ADDR, 53))?;
    let resolver = Arc::new(NetResolver {
        root: root.to_path_buf(),
        engine: crate::store::Engine::open(root)?,
        container_id: rec.id.clone(),
    });
    Ok(dns::Server::start(udp, tcp, resolver, upstreams(rec))?)
}

/// Whether the container uses the embedded DNS (it is on a user-defined
/// network).
pub fn uses_embedded_dns(eps: &[Endpoint]) -> bool {
    eps.iter().any(|e| e.network != BRIDGE)
}

// ---------------------------------------------------------------------------
// Plugging a starting container in
// ---------------------------------------------------------------------------

/// What a running container's monitor holds for its network.
#[derive(Default)]
pub struct Plumbing {
    dns: Option<dns::Server>,
    proxy: Option<Proxy>,
    published: bool,
}

/// Connects a created container (init `pid`, not started yet) to its
/// networks: veths, then the embedded DNS, then its published ports
/// (proxy listeners, DNAT rules, `ports.json`). On failure nothing stays.
pub fn plug(root: &Path, rec: &ContainerRecord, pid: i32) -> Result<Plumbing> {
    let id = &rec.id;
    let eps = endpoints_of(root, id);
    let mut p = Plumbing::default();
    let r = (|| -> Result<()> {
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let mode = rec.host_config.network_mode.as_str();
        if eps.is_empty() && mode != "host" && !mode.starts_with("container:") {
            // `none`: its own namespace with loopback only (`attach` brings
            // lo up for the others).
            Netlink.lo_up(&netns)?;
        }
        for (i, ep) in eps.iter().enumerate() {
            let net = read(root, &ep.network)?;
            attach_one(root, &net, ep, pid, i == 0, false)?;
        }
        if uses_embedded_dns(&eps) {
            p.dns = Some(start_dns(root, rec, &netns)?);
        }
        let Some(primary) = eps.first() else {
            return Ok(());
        };
        let wanted = wanted_ports(rec, primary.ip()?)?;
        if wanted.is_empty() {
            return Ok(());
        }
        let ports: Vec<ProxyPort> = wanted.iter().map(|(_, p)| p.clone()).collect();
        let proxy = Proxy::start(&ports).map_err(|e| {
            EngineError::Conflict(format!(
                "driver failed programming external connectivity on endpoint {} ({}): {e}",
                rec.name, primary.endpoint_id
            ))
        })?;
        let bound = proxy.ports();
        p.proxy = Some(proxy);
        let net = read(root, &primary.network)?;
        if Firewall::available() {
            let fw = Firewall::new(&net.table);
            fw.ensure()?;
            let _ = fw.unpublish(id);
            p.published = true;
            for b in &bound {
                let IpAddr::V4(host_ip) = b.host_ip else {
                    continue;
                };
                let SocketAddr::V4(backend) = b.backend else {
                    continue;
                };
                fw.publish(&nft::PortMapping {
                    container_id: id.clone(),
                    proto: b.proto,
                    host_ip: (!host_ip.is_unspecified()).then_some(host_ip),
                    host_port: b.host_port,
                    container_ip: *backend.ip(),
                    container_port: backend.port(),
                })?;
            }
        }
        let list: Vec<BoundPort> = wanted
            .iter()
            .zip(&bound)
            .map(|((key, _), b)| BoundPort {
                port: key.clone(),
                host_ip: b.host_ip.to_string(),
                host_port: b.host_port.to_string(),
            })
            .collect();
        crate::store::write_json_atomic(&ports_file(root, id), &list)?;
        Ok(())
    })();
    match r {
        Ok(()) => Ok(p),
        Err(e) => {
            unplug(root, id, p);
            Err(e)
        }
    }
}

/// After the running container (init `pid`) was connected to or
/// disconnected from a network: starts the embedded DNS if it is now on a
/// user-defined network, and rewrites its resolv.conf in place (the file
/// is bind-mounted: same inode) to match, as Docker does on a join.
pub fn refresh(root: &Path, rec: &ContainerRecord, pid: i32, p: &mut Plumbing) -> Result<()> {
    let eps = endpoints_of(root, &rec.id);
    let embedded = uses_embedded_dns(&eps);
    if embedded && p.dns.is_none() {
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        p.dns = Some(start_dns(root, rec, &netns)?);
    }
    let hc = &rec.host_config;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let text = crate::spec::resolv_conf(
        &host,
        &crate::spec::EtcFiles {
            dns: &hc.dns,
            dns_search: &hc.dns_search,
            dns_options: &hc.dns_options,
            embedded_dns: embedded,
            ..crate::spec::EtcFiles::default()
        },
    );
    let path = root.join("containers").join(&rec.id).join("resolv.conf");
    std::fs::write(&path, text).map_err(io("write", &path))
}

/// Undoes [`plug`]: proxy, DNAT rules, `ports.json`, DNS server, veths.
pub fn unplug(root: &Path, id: &str, p: Plumbing) {
    if let Some(proxy) = p.proxy {
        proxy.stop();
    }
    if p.published {
        unpublish(root, id);
    }
    let _ = std::fs::remove_file(ports_file(root, id));
    if let Some(d) = p.dns {
        d.stop();
    }
    detach_all(root, id);
}

/// [`unplug`] for a monitor that is gone (killed, or failed before it
/// could report): rules, `ports.json` and veths by the container's id.
pub fn unplug_dead(root: &Path, id: &str) {
    unpublish(root, id);
    let _ = std::fs::remove_file(ports_file(root, id));
    detach_all(root, id);
}

/// Deletes the DNAT rules of container `id` (from a monitor that was
/// killed before it could), if the engine's table exists.
pub fn unpublish(root: &Path, id: &str) {
    if !Firewall::available() {
        return;
    }
    let fw = Firewall::new(&table_name(root));
    if fw.exists().unwrap_or(false) {
        let _ = fw.unpublish(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_depend_on_the_root() {
        assert_eq!(bridge_name(Path::new(DEFAULT_ROOT)), "barge0");
        assert_eq!(table_name(Path::new(DEFAULT_ROOT)), "barge");
        let a = bridge_name(Path::new("/nonexistent/a"));
        let b = bridge_name(Path::new("/nonexistent/b"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 10);
        assert!(a.starts_with("bg"));
    }

    #[test]
    fn host_veths_differ_per_interface_and_fit() {
        let id = "0123456789abcdef".repeat(4);
        let e0 = host_veth(&id, "eth0");
        let e1 = host_veth(&id, "eth1");
        let e12 = host_veth(&id, "eth12");
        assert_eq!(e0, "brg0123456789ab");
        assert_ne!(e0, e1);
        assert!(e0.len() <= 15 && e1.len() <= 15 && e12.len() <= 15);
        assert!(e1.starts_with("brg"));
    }

    #[test]
    fn network_names_are_checked() {
        assert!(validate_name("front-end_1.x").is_ok());
        for bad in ["", "-x", "a/b", "a b", ".."] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_serializes_like_docker() {
        let ep = Endpoint {
            network: "bridge".into(),
            ip_address: "172.17.0.2".into(),
            ip_prefix_len: 16,
            gateway: "172.17.0.1".into(),
            mac_address: "02:42:ac:11:00:02".into(),
            if_name: "eth0".into(),
            ..Endpoint::default()
        };
        let v = serde_json::to_value(&ep).unwrap();
        assert_eq!(v["IPAddress"], "172.17.0.2");
        assert_eq!(v["IPPrefixLen"], 16);
        assert_eq!(v["MacAddress"], "02:42:ac:11:00:02");
        assert_eq!(v["NetworkID"], "");
        assert_eq!(ep.if_index(), 0);
    }

    #[test]
    fn stale_endpoints_and_leases_are_swept_but_not_those_being_created() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let engine = crate::store::Engine::open(root).unwrap();
        let pool = Pool::create(
            &pool_dir(root, "n1"),
            "10.77.0.0/24".parse().unwrap(),
            None,
            None,
        )
        .unwrap();
        std::fs::create_dir_all(endpoints_dir(root, "n1")).unwrap();
        // A container whose create was killed after its address was taken
        // (with and without an endpoint file), one that exists, and one
        // being created (its `.tmp-<id>` locked).
        let (dead1, dead2, live, building) = (
            "d".repeat(64),
            "e".repeat(64),
            "a".repeat(64),
            "b".repeat(64),
        );
        for id in [&dead1, &dead2, &live, &building] {
            pool.allocate(id).unwrap();
        }
        for id in [&dead1, &live, &building] {
            let ep = Endpoint {
                network: "n1".into(),
                container_id: id.to_string(),
                if_name: "eth0".into(),
                ..Endpoint::default()
            };
            crate::store::write_json_atomic(&endpoint_path(root, "n1", id), &ep).unwrap();
        }
        std::fs::create_dir_all(engine.dir(&live)).unwrap();
        let tmp = engine.containers_dir().join(format!(".tmp-{building}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let lock = File::create(tmp.join("lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();

        sweep_stale_locked(root);
        let owners: Vec<String> = pool.allocations().unwrap().into_values().collect();
        assert_eq!(owners.len(), 2, "{owners:?}");
        assert!(owners.contains(&live) && owners.contains(&building));
        assert!(!endpoint_path(root, "n1", &dead1).exists());
        assert!(endpoint_path(root, "n1", &live).exists());
        assert!(endpoint_path(root, "n1", &building).exists());
    }

    #[test]
    fn port_keys_parse() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, Proto::Tcp));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, Proto::Udp));
        assert_eq!(parse_port_key("8080").unwrap(), (8080, Proto::Tcp));
        assert!(parse_port_key("80/sctp").is_err());
        assert!(parse_port_key("x/tcp").is_err());
    }

    #[test]
    fn wanted_ports_cover_bindings_and_publish_all() {
        use crate::record::{Config, HostConfig, PortBinding};
        let mut hc = HostConfig::default();
        hc.port_bindings.insert(
            "80/tcp".into(),
            vec![
                PortBinding {
                    host_ip: "127.0.0.1".into(),
                    host_port: "8080".into(),
                },
                PortBinding {
                    host_ip: String::new(),
                    host_port: "9000-9005".into(),
                },
            ],
        );
        hc.publish_all_ports = true;
        let mut cfg = Config::default();
        cfg.exposed_ports
            .insert("80/tcp".into(), serde_json::json!({}));
        cfg.exposed_ports
            .insert("53/udp".into(), serde_json::json!({}));
        let rec = ContainerRecord {
            id: "a".repeat(64),
            name: "x".into(),
            created: String::new(),
            image_name: String::new(),
            image_id: String::new(),
            manifest_digest: String::new(),
            config: cfg,
            host_config: hc,
            runtime_path: String::new(),
        };
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let w = wanted_ports(&rec, ip).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].1.host_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(w[0].1.host_port, 8080);
        assert_eq!(w[0].1.backend, "10.0.0.2:80".parse::<SocketAddr>().unwrap());
        assert_eq!((w[1].1.host_port, w[1].1.host_port_end), (9000, Some(9005)));
        assert_eq!(w[2].0, "53/udp");
        assert_eq!(w[2].1.host_port, 0);
        assert_eq!(w[2].1.proto, Proto::Udp);
    }
}
