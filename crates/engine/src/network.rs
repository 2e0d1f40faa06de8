//! Bridge networking (`--network bridge`): the default network `bridge`,
//! made on first use under `<root>/networks/bridge/` (`network.json` and
//! the address pool in `ipam/`), backed by a Linux bridge with the
//! network's gateway address and, when nft is usable, masquerade and
//! isolation rules in Barge's own nftables table. A container gets its
//! address at create (kept in its record), its veth pair at start (by the
//! monitor, between the runtime's `create` and `start`, so the process
//! starts with its network up) and gives both back at stop and remove.
//!
//! The engine root `/var/lib/barge` uses bridge `barge0` and table
//! `barge`; any other root (tests, a second engine) uses `bg` + 8 hex of a
//! hash of the root path for both, so engines never share a bridge.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use barge_net::ipam::{self, Pool, Subnet};
use barge_net::link::{self, Links, Netlink};
use barge_net::nft::Firewall;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{errno, io, EngineError, Result};

/// The engine root whose network uses the well-known names.
pub const DEFAULT_ROOT: &str = "/var/lib/barge";
/// The name of the default bridge network.
pub const BRIDGE: &str = "bridge";

/// A network as stored in `networks/<name>/network.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// The Linux bridge.
    pub bridge: String,
    /// Barge's nftables table (family ip).
    pub table: String,
}

/// A container's place on a network, as Docker's inspect shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Endpoint {
    pub network: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    pub gateway: String,
    pub mac_address: String,
}

impl Endpoint {
    fn ip(&self) -> Result<Ipv4Addr> {
        self.ip_address.parse().map_err(|_| {
            EngineError::Runtime(format!("bad address in the record: {}", self.ip_address))
        })
    }
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

fn network_dir(root: &Path, name: &str) -> PathBuf {
    root.join("networks").join(name)
}

fn pool_dir(root: &Path, name: &str) -> PathBuf {
    network_dir(root, name).join("ipam")
}

fn lock(path: &Path) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("open", path))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(errno("lock", path))?;
    Ok(f)
}

/// Whether `name` is a network the engine knows (only `bridge` so far).
pub fn exists(name: &str) -> bool {
    name == BRIDGE
}

/// Reads a network's settings.
pub fn read(root: &Path, name: &str) -> Result<Network> {
    let p = network_dir(root, name).join("network.json");
    let data = std::fs::read(&p).map_err(io("read", &p))?;
    serde_json::from_slice(&data).map_err(|source| EngineError::Json {
        what: format!("parse {}", p.display()),
        source,
    })
}

/// The default network, made on first use (once, under a lock), with its
/// bridge and firewall rules set up if the bridge is missing.
pub fn ensure_default(root: &Path) -> Result<Network> {
    let nets = root.join("networks");
    std::fs::create_dir_all(&nets).map_err(io("create", &nets))?;
    let _root_lock = lock(&nets.join(".lock"))?;
    // Subnets are picked from the host's routes: engines on one host pick
    // one at a time, each seeing the bridge routes of the others.
    let _host_lock = lock(Path::new("/run/barge-networks.lock")).ok();
    let dir = network_dir(root, BRIDGE);
    let json = dir.join("network.json");
    let net = if json.is_file() {
        read(root, BRIDGE)?
    } else {
        let pool = match Pool::open(&pool_dir(root, BRIDGE)) {
            Ok(p) => p,
            Err(_) => {
                let routes = ipam::host_routes()?;
                let subnet = ipam::pick_subnet(&ipam::default_candidates(), &[], &routes)
                    .ok_or_else(|| {
                        EngineError::Runtime(
                            "no free subnet for the bridge network: every default pool overlaps a route of the host".into(),
                        )
                    })?;
                let _ = std::fs::remove_dir_all(pool_dir(root, BRIDGE));
                Pool::create(&pool_dir(root, BRIDGE), subnet, None, None)?
            }
        };
        let info = pool.info()?;
        let net = Network {
            name: BRIDGE.into(),
            subnet: info.subnet,
            gateway: info.gateway,
            bridge: bridge_name(root),
            table: table_name(root),
        };
        crate::store::write_json_atomic(&json, &net)?;
        net
    };
    if !Netlink.link_exists(&net.bridge)? {
        setup(root, &net)?;
    }
    Ok(net)
}

/// The bridge with the gateway address, and masquerade for the subnet.
fn setup(root: &Path, net: &Network) -> Result<()> {
    Netlink.ensure_bridge(&net.bridge, Some((net.gateway, net.subnet.prefix)), None)?;
    if Firewall::available() {
        let fw = Firewall::new(&net.table);
        fw.ensure()?;
        fw.add_network(&net.bridge, net.subnet, false)?;
        // Masquerade is for traffic routed out of the host.
        let fwd = Path::new("/proc/sys/net/ipv4/ip_forward");
        if std::fs::read_to_string(fwd)
            .map(|s| s.trim() != "1")
            .unwrap_or(true)
        {
            std::fs::write(fwd, "1").map_err(io("write", fwd))?;
        }
    } else {
        let marker = root.join("networks").join(".nft-missing");
        if !marker.exists() {
            eprintln!(
                "WARNING: nft is not usable: containers on network {} reach the host and each other but not the outside (install nftables)",
                net.name
            );
            let _ = std::fs::write(&marker, "");
        }
    }
    Ok(())
}

/// Allocates the address of container `id` on network `name`.
pub fn allocate(root: &Path, name: &str, id: &str) -> Result<Endpoint> {
    if !exists(name) {
        return Err(EngineError::InvalidArgument(format!(
            "network {name} not found"
        )));
    }
    let net = ensure_default(root)?;
    let ip = Pool::open(&pool_dir(root, name))?.allocate(id)?;
    Ok(Endpoint {
        network: name.into(),
        ip_address: ip.to_string(),
        ip_prefix_len: net.subnet.prefix,
        gateway: net.gateway.to_string(),
        mac_address: link::mac_for(ip)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    })
}

/// Gives back the addresses of container `id` (nothing to give is fine).
pub fn release(root: &Path, id: &str) {
    let dir = pool_dir(root, BRIDGE);
    if let Ok(pool) = Pool::open(&dir) {
        let _ = pool.release_owner(id);
    }
}

/// Connects the container (init `pid`, its network namespace made by the
/// runtime) to its network: a veth pair with `eth0` inside. On failure no
/// veth is left.
pub fn attach(root: &Path, id: &str, ep: &Endpoint, pid: i32) -> Result<()> {
    let net = ensure_default(root)?;
    let ip = ep.ip()?;
    let host = link::host_veth_name(id);
    // A leftover of a crashed run would make the pair's creation fail.
    let _ = Netlink.delete_link(&host);
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let r = Netlink.attach(
        &net.bridge,
        &host,
        &netns,
        "eth0",
        (ip, net.subnet.prefix),
        Some(net.gateway),
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

/// Deletes the container's host veth (absent is fine).
/// Deletes the host end of a container's veth, if it has a network (never
/// a link of a container without one).
pub fn detach(id: &str, has_network: bool) {
    if has_network {
        let _ = Netlink.delete_link(&link::host_veth_name(id));
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
    fn endpoint_serializes_like_docker() {
        let ep = Endpoint {
            network: "bridge".into(),
            ip_address: "172.17.0.2".into(),
            ip_prefix_len: 16,
            gateway: "172.17.0.1".into(),
            mac_address: "02:42:ac:11:00:02".into(),
        };
        let v = serde_json::to_value(&ep).unwrap();
        assert_eq!(v["IPAddress"], "172.17.0.2");
        assert_eq!(v["IPPrefixLen"], 16);
        assert_eq!(v["MacAddress"], "02:42:ac:11:00:02");
    }
}
