//! IP address management: IPv4 subnets, and one address pool per network
//! whose state lives in `DIR/ipam.json`.
//!
//! Every change takes an exclusive `flock` on `DIR/ipam.lock`, reads the
//! state, changes it, writes it back (temp file, fsync, rename) and drops
//! the lock, so processes sharing a pool never hand out one address twice
//! and a crash leaves either the old state or the new one. Reads take a
//! shared lock. This module owns addresses only: it creates no bridges,
//! routes or interfaces.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::error::{io, NetError};

type Result<T, E = NetError> = std::result::Result<T, E>;

// ------------------------------------------------------------------ Subnet

/// An IPv4 network in CIDR form, such as `172.18.0.0/16`. Host bits of
/// `net` are zero when it comes from [`Subnet::new`] or parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub net: Ipv4Addr,
    pub prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl Subnet {
    /// A subnet from its network address and prefix length; the host bits
    /// must be zero.
    pub fn new(net: Ipv4Addr, prefix: u8) -> Result<Subnet> {
        let input = || format!("{net}/{prefix}");
        if prefix > 32 {
            return Err(NetError::InvalidSubnet {
                input: input(),
                reason: "prefix length must be 0 to 32".into(),
            });
        }
        let s = Subnet { net, prefix };
        if u32::from(net) & !mask(prefix) != 0 {
            return Err(NetError::InvalidSubnet {
                input: input(),
                reason: format!(
                    "host bits are set; did you mean {}/{prefix}?",
                    Ipv4Addr::from(u32::from(net) & mask(prefix))
                ),
            });
        }
        Ok(s)
    }

    fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    fn first(&self) -> u32 {
        u32::from(self.net) & self.mask()
    }

    /// How many addresses the subnet spans, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix.min(32)))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    /// Do the two subnets share any address?
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        u32::from(self.net) & m == u32::from(other.net) & m
    }

    /// Is `other` entirely inside this subnet?
    pub fn covers(&self, other: &Subnet) -> bool {
        other.prefix >= self.prefix && self.contains(other.net)
    }

    /// The network's last address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() | !self.mask())
    }

    /// The first host address, Docker's default gateway; `None` for a /31
    /// or /32, which have no room for a gateway and a container.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 30).then(|| Ipv4Addr::from(self.first() + 1))
    }

    /// The host addresses: all but the network and broadcast addresses
    /// (none for a /31 or /32).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (lo, hi) = if self.prefix <= 30 {
            (self.first() + 1, u32::from(self.broadcast()))
        } else {
            (1, 1)
        };
        (lo..hi).map(Ipv4Addr::from)
    }

    /// Is `ip` a host address of this subnet (inside, and neither its
    /// network nor its broadcast address)?
    fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.prefix <= 30
            && self.contains(ip)
            && u32::from(ip) != self.first()
            && ip != self.broadcast()
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Subnet> {
        let bad = |reason: &str| NetError::InvalidSubnet {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected an address and a prefix length, like 172.18.0.0/16"))?;
        let net: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("not an IPv4 address before the /"))?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("prefix length must be a number from 0 to 32"));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("prefix length must be a number from 0 to 32"))?;
        Subnet::new(net, prefix).map_err(|e| match e {
            NetError::InvalidSubnet { reason, .. } => NetError::InvalidSubnet {
                input: s.to_string(),
                reason,
            },
            other => other,
        })
    }
}

impl TryFrom<String> for Subnet {
    type Error = NetError;

    fn try_from(s: String) -> Result<Subnet> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

// -------------------------------------------------------- choosing subnets

/// The first candidate that overlaps neither a network already taken nor
/// a route of the host.
pub fn pick_subnet(
    candidates: &[Subnet],
    taken: &[Subnet],
    host_routes: &[Subnet],
) -> Option<Subnet> {
    candidates
        .iter()
        .find(|c| !taken.iter().chain(host_routes).any(|t| c.overlaps(t)))
        .copied()
}

/// Docker's default address pools, in order: 172.17.0.0/16 to
/// 172.31.0.0/16, then 192.168.0.0/20 to 192.168.240.0/20.
pub fn default_candidates() -> Vec<Subnet> {
    let a = (17..=31).map(|b| Subnet {
        net: Ipv4Addr::new(172, b, 0, 0),
        prefix: 16,
    });
    let b = (0..16).map(|i| Subnet {
        net: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix: 20,
    });
    a.chain(b).collect()
}

/// The destinations of the host's IPv4 routes (`/proc/net/route`),
/// without the default route.
pub fn host_routes() -> Result<Vec<Subnet>> {
    let path = Path::new("/proc/net/route");
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    parse_routes(&text)
}

/// Parses the text of `/proc/net/route`: a header line, then one route a
/// line with the destination (field 2) and mask (field 8) as hex of the
/// address in network byte order read as a little-endian number. The
/// default route (mask 0) is skipped; duplicates are kept once.
pub fn parse_routes(text: &str) -> Result<Vec<Subnet>> {
    let mut routes = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 8 {
            return Err(NetError::BadRoute {
                line: line_no,
                reason: format!("expected at least 8 fields, found {}", fields.len()),
            });
        }
        let hex = |name: &str, s: &str| {
            u32::from_str_radix(s, 16)
                .map(u32::swap_bytes)
                .map_err(|_| NetError::BadRoute {
                    line: line_no,
                    reason: format!("{name} {s:?} is not hex"),
                })
        };
        let dest = hex("destination", fields[1])?;
        let m = hex("mask", fields[7])?;
        if m == 0 {
            continue;
        }
        let prefix = m.leading_ones();
        if m.count_ones() != prefix {
            return Err(NetError::BadRoute {
                line: line_no,
                reason: format!("mask {} is not contiguous", Ipv4Addr::from(m)),
            });
        }
        let s = Subnet {
            net: Ipv4Addr::from(dest & m),
            prefix: prefix as u8,
        };
        if !routes.contains(&s) {
            routes.push(s);
        }
    }
    Ok(routes)
}

// -------------------------------------------------------------------- Pool

/// A network's address pool, state in `DIR/ipam.json`. The handle holds
/// only the directory: every call reads the state under the lock, so many
/// handles (in one process or several) can share a pool.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
}

/// A pool's fixed settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolInfo {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Subnet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PoolState {
    subnet: Subnet,
    gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip_range: Option<Subnet>,
    /// The address handed out last; allocation continues after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv4Addr>,
    /// Address → owner (a container id).
    #[serde(default)]
    allocations: BTreeMap<Ipv4Addr, String>,
}

impl PoolState {
    fn range(&self) -> Subnet {
        self.ip_range.unwrap_or(self.subnet)
    }

    /// Can a container have `ip`? Errors say why not.
    fn check_assignable(&self, ip: Ipv4Addr) -> Result<()> {
        let subnet = self.subnet;
        if !subnet.contains(ip) {
            return Err(NetError::NotInSubnet { ip, subnet });
        }
        if let Some(range) = self.ip_range {
            if !range.contains(ip) {
                return Err(NetError::NotInRange { ip, range });
            }
        }
        let what = if u32::from(ip) == subnet.first() {
            "network address"
        } else if ip == subnet.broadcast() {
            "broadcast address"
        } else if ip == self.gateway {
            "gateway"
        } else {
            return match self.allocations.get(&ip) {
                Some(owner) => Err(NetError::InUse {
                    ip,
                    owner: owner.clone(),
                }),
                None => Ok(()),
            };
        };
        Err(NetError::Reserved { ip, what, subnet })
    }

    /// The next free address after `last`, wrapping around the range.
    fn next_free(&self) -> Option<Ipv4Addr> {
        let range = self.range();
        let start = range.first();
        let size = range.size();
        let after = match self.last {
            Some(l) if range.contains(l) => u64::from(u32::from(l) - start),
            _ => size - 1,
        };
        (1..=size)
            .map(|i| Ipv4Addr::from(start + ((after + i) % size) as u32))
            .find(|&ip| {
                self.subnet.is_host(ip) && ip != self.gateway && !self.allocations.contains_key(&ip)
            })
    }
}

fn check_owner(owner: &str) -> Result<()> {
    if owner.is_empty() {
        return Err(NetError::EmptyOwner);
    }
    Ok(())
}

impl Pool {
    /// Creates the pool for `subnet` in `dir` (made if missing). The
    /// gateway, by default the subnet's first host, is reserved; `ip_range`
    /// limits automatic and explicit allocation to a part of the subnet.
    pub fn create(
        dir: &Path,
        subnet: Subnet,
        gateway: Option<Ipv4Addr>,
        ip_range: Option<Subnet>,
    ) -> Result<Pool> {
        let subnet = Subnet::new(subnet.net, subnet.prefix)?;
        let Some(default_gateway) = subnet.gateway() else {
            return Err(NetError::SubnetTooSmall { subnet });
        };
        let gateway = gateway.unwrap_or(default_gateway);
        let bad_gateway = |reason| NetError::InvalidGateway {
            gateway,
            subnet,
            reason,
        };
        if !subnet.contains(gateway) {
            return Err(bad_gateway("it is outside the subnet"));
        }
        if u32::from(gateway) == subnet.first() {
            return Err(bad_gateway("it is the network address"));
        }
        if gateway == subnet.broadcast() {
            return Err(bad_gateway("it is the broadcast address"));
        }
        if let Some(range) = ip_range {
            let range = Subnet::new(range.net, range.prefix)?;
            if !subnet.covers(&range) {
                return Err(NetError::InvalidRange { range, subnet });
            }
        }
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let pool = Pool {
            dir: dir.to_path_buf(),
        };
        let _lock = pool.lock(FlockOperation::LockExclusive)?;
        let state_path = pool.state_path();
        if state_path.exists() {
            return Err(NetError::PoolExists {
                dir: dir.to_path_buf(),
            });
        }
        let state = PoolState {
            subnet,
            gateway,
            ip_range,
            last: None,
            allocations: BTreeMap::new(),
        };
        write_json_atomic(&state_path, &state)?;
        sync_dir(dir);
        Ok(pool)
    }

    /// Opens the pool in `dir`.
    pub fn open(dir: &Path) -> Result<Pool> {
        let pool = Pool {
            dir: dir.to_path_buf(),
        };
        if !pool.state_path().is_file() {
            return Err(NetError::NoPool {
                dir: dir.to_path_buf(),
            });
        }
        pool.read_state_locked()?;
        Ok(pool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pool's subnet, gateway and ip range.
    pub fn info(&self) -> Result<PoolInfo> {
        let s = self.read_state_locked()?;
        Ok(PoolInfo {
            subnet: s.subnet,
            gateway: s.gateway,
            ip_range: s.ip_range,
        })
    }

    /// Hands `owner` the next free address after the one handed out last,
    /// wrapping around, so a released address is not reused at once.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        check_owner(owner)?;
        self.update(|s| {
            let ip = s
                .next_free()
                .ok_or(NetError::NoFreeAddresses { range: s.range() })?;
            s.allocations.insert(ip, owner.to_string());
            s.last = Some(ip);
            Ok(ip)
        })
    }

    /// Hands `owner` exactly `ip` (`--ip`): it must be in the subnet and
    /// ip range, not reserved and free.
    pub fn allocate_specific(&self, ip: Ipv4Addr, owner: &str) -> Result<()> {
        check_owner(owner)?;
        self.update(|s| {
            s.check_assignable(ip)?;
            s.allocations.insert(ip, owner.to_string());
            Ok(())
        })
    }

    /// Frees `ip` if `owner` holds it. `Ok(false)` when nobody holds it;
    /// an error when someone else does.
    pub fn release(&self, ip: Ipv4Addr, owner: &str) -> Result<bool> {
        self.update(|s| match s.allocations.get(&ip) {
            None => Ok(false),
            Some(holder) if holder == owner => {
                s.allocations.remove(&ip);
                Ok(true)
            }
            Some(holder) => Err(NetError::NotOwner {
                ip,
                owner: owner.to_string(),
                holder: holder.clone(),
            }),
        })
    }

    /// Frees every address `owner` holds (cleanup after a crash) and
    /// returns them in order.
    pub fn release_owner(&self, owner: &str) -> Result<Vec<Ipv4Addr>> {
        self.update(|s| {
            let ips: Vec<Ipv4Addr> = s
                .allocations
                .iter()
                .filter(|(_, o)| *o == owner)
                .map(|(ip, _)| *ip)
                .collect();
            for ip in &ips {
                s.allocations.remove(ip);
            }
            Ok(ips)
        })
    }

    /// Address → owner, for every address handed out (not the gateway).
    pub fn allocations(&self) -> Result<BTreeMap<Ipv4Addr, String>> {
        Ok(self.read_state_locked()?.allocations)
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("ipam.json")
    }

    fn lock(&self, op: FlockOperation) -> Result<File> {
        let path = self.dir.join("ipam.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("open lock", &path))?;
        rustix::fs::flock(&f, op).map_err(|e| NetError::Io {
            what: "lock",
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(f)
    }

    fn read_state(&self) -> Result<PoolState> {
        let path = self.state_path();
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NetError::NoPool {
                    dir: self.dir.clone(),
                }
            } else {
                io("read", &path)(e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|source| NetError::Corrupt { path, source })
    }

    fn read_state_locked(&self) -> Result<PoolState> {
        let _lock = self.lock(FlockOperation::LockShared)?;
        self.read_state()
    }

    /// Runs `change` on the state under the exclusive lock and writes the
    /// state back if it changed and `change` succeeded.
    fn update<T>(&self, change: impl FnOnce(&mut PoolState) -> Result<T>) -> Result<T> {
        let _lock = self.lock(FlockOperation::LockExclusive)?;
        let before = self.read_state()?;
        let mut state = before.clone();
        let out = change(&mut state)?;
        if state != before {
            write_json_atomic(&self.state_path(), &state)?;
        }
        Ok(out)
    }
}

/// Writes JSON atomically: temp file, fsync, rename (as the engine's store
/// does). Callers hold the pool's exclusive lock, so one temp name per
/// process is enough.
fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|source| NetError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(&data)
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
mod tests;
