//! The networking crate's errors. Messages are lower-case, name the input
//! that was wrong and, where there is one, say what to do instead.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::ipam::Subnet;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid subnet {input:?}: {reason}")]
    InvalidSubnet { input: String, reason: String },
    #[error(
        "subnet too small: {subnet} has no room for a gateway and a container; use a /30 or larger"
    )]
    SubnetTooSmall { subnet: Subnet },
    #[error("invalid gateway {gateway} for subnet {subnet}: {reason}")]
    InvalidGateway {
        gateway: Ipv4Addr,
        subnet: Subnet,
        reason: &'static str,
    },
    #[error("invalid ip range {range}: it must lie inside subnet {subnet}")]
    InvalidRange { range: Subnet, subnet: Subnet },
    #[error("no free addresses in {range}")]
    NoFreeAddresses { range: Subnet },
    #[error("address {ip} is not in subnet {subnet}; pick one inside it")]
    NotInSubnet { ip: Ipv4Addr, subnet: Subnet },
    #[error("address {ip} is not in ip range {range}; pick one inside it")]
    NotInRange { ip: Ipv4Addr, range: Subnet },
    #[error("address {ip} is the {what} of {subnet} and cannot be given to a container")]
    Reserved {
        ip: Ipv4Addr,
        what: &'static str,
        subnet: Subnet,
    },
    #[error("address {ip} is already in use by {owner}")]
    InUse { ip: Ipv4Addr, owner: String },
    #[error("address {ip} belongs to {holder}, not {owner}; it was not released")]
    NotOwner {
        ip: Ipv4Addr,
        owner: String,
        holder: String,
    },
    #[error("an address owner must not be empty")]
    EmptyOwner,
    #[error("an address pool already exists in {}", dir.display())]
    PoolExists { dir: PathBuf },
    #[error("no address pool in {}: create the network first", dir.display())]
    NoPool { dir: PathBuf },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt address pool state {}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("route table line {line}: {reason}")]
    BadRoute { line: usize, reason: String },
    #[error("cannot run nft to {what}: {source}; install it with apt-get install -y nftables")]
    NftSpawn {
        what: String,
        source: std::io::Error,
    },
    #[error("nft failed to {what}: {stderr}")]
    Nft { what: String, stderr: String },
    #[error("unexpected nft output while trying to {what}: {reason}")]
    NftOutput { what: String, reason: String },
    #[error("invalid {what} {input:?} for nftables: {reason}")]
    NftName {
        what: &'static str,
        input: String,
        reason: &'static str,
    },
    #[error("{op}: {source}{hint}")]
    Link {
        op: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("bridge {name} does not exist: create the network again (its bridge was removed)")]
    NoBridge { name: String },
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidLinkName { name: String, reason: &'static str },
    #[error("open network namespace {}: {source}; is the container still running?", path.display())]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bind the embedded dns server to {addr} in {}: {source}; is another dns server already listening there?", netns.display())]
    DnsBind {
        addr: std::net::SocketAddrV4,
        netns: PathBuf,
        source: std::io::Error,
    },
    #[error("embedded dns server: {op}: {source}")]
    Dns {
        op: &'static str,
        source: std::io::Error,
    },
    /// A published port could not be bound; worded as Docker words it
    /// (`Bind for 0.0.0.0:8080 failed: port is already allocated`).
    #[error("Bind for {addr} failed: {reason}")]
    ProxyBind { addr: String, reason: String },
    #[error("cannot start a port proxy thread: {source}; raise the process or thread limit")]
    ProxyThread { source: std::io::Error },
}

/// Maps an I/O error to [`NetError::Io`] naming the operation and path.
pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> NetError + 'a {
    move |source| NetError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
