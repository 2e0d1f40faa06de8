//! The link layer: bridges, veth pairs, addresses and routes.
//!
//! [`Links`] is what the engine calls; [`Netlink`] is the real
//! implementation, speaking rtnetlink directly (no `ip` binary), and
//! [`FakeLinks`] records the same operations in memory for unit tests.
//!
//! Work inside a container's network namespace is done over a netlink
//! socket opened by a short-lived thread that first joins the namespace
//! (`setns` through rustix): a netlink socket stays bound to the namespace
//! it was created in, so the calling thread never changes namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use rustix::io::Errno;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::NetError;

/// Kernel limit on interface names, including the trailing NUL.
pub const IFNAMSIZ: usize = 16;

/// The link operations the engine needs. Implemented by [`Netlink`] (the
/// kernel) and [`FakeLinks`] (memory, for tests).
pub trait Links: Send + Sync {
    /// Creates the bridge `name` if it is missing (idempotent), gives it
    /// `addr` (address/prefix) and `mtu` when set, and brings it up.
    fn ensure_bridge(
        &self,
        name: &str,
        addr: Option<(Ipv4Addr, u8)>,
        mtu: Option<u32>,
    ) -> Result<(), NetError>;
    /// Deletes the link `name`; `false` if there was none.
    fn delete_link(&self, name: &str) -> Result<bool, NetError>;
    /// Whether a link `name` exists in the host's namespace.
    fn link_exists(&self, name: &str) -> Result<bool, NetError>;
    /// Creates a veth pair: the `host` end attached to `bridge` and up; the
    /// peer moved into the network namespace at `netns` (a path like
    /// /proc/PID/ns/net or /run/netns/X), named `ifname` (eth0), given
    /// `addr/prefix` and `mac` (the kernel picks a random one if `None`),
    /// up, with lo up and a default route via `gateway` (`None`: no default
    /// route, for internal networks). On failure nothing is left behind.
    #[allow(clippy::too_many_arguments)]
    fn attach(
        &self,
        bridge: &str,
        host: &str,
        netns: &Path,
        ifname: &str,
        addr: (Ipv4Addr, u8),
        gateway: Option<Ipv4Addr>,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NetError>;
    /// Brings up lo in the network namespace at `netns` (for `--network none`).
    fn lo_up(&self, netns: &Path) -> Result<(), NetError>;
}

/// The host-side veth name for a container: "brg" and the first 12 hex
/// characters of its id (15 bytes: IFNAMSIZ less the NUL). Not "veth…",
/// which Docker's random names use: a clash would delete another tool's link.
pub fn host_veth_name(container_id: &str) -> String {
    let hex: String = container_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("brg{hex}")
}

/// Docker's MAC address for a container address: 02:42 and the IPv4 bytes
/// (locally administered, unicast).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Checks `name` the way the kernel does (`dev_valid_name`).
pub fn check_link_name(name: &str) -> Result<(), NetError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() >= IFNAMSIZ {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("it is . or ..")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        Some("it contains '/', ':', NUL or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetError::InvalidLinkName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn prefix_ok(addr: (Ipv4Addr, u8)) -> Result<(), NetError> {
    if addr.1 == 0 || addr.1 > 32 {
        return Err(NetError::InvalidSubnet {
            input: format!("{}/{}", addr.0, addr.1),
            reason: "the prefix length must be 1 to 32".into(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The real implementation.

/// The kernel, through rtnetlink. Needs CAP_NET_ADMIN (and CAP_SYS_ADMIN to
/// enter container namespaces).
#[derive(Debug, Default, Clone, Copy)]
pub struct Netlink;

fn hint_for(err: &io::Error) -> &'static str {
    match err.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::PERM) | Some(Errno::ACCESS) => {
            "; barge needs CAP_NET_ADMIN for this (run the daemon as root)"
        }
        Some(Errno::EXIST) => {
            "; a link with that name already exists: remove it or pick another name"
        }
        Some(Errno::NETUNREACH) => "; the gateway must be inside the container's subnet",
        Some(Errno::OPNOTSUPP) => {
            "; the kernel lacks support for this (is the bridge/veth module available?)"
        }
        _ => "",
    }
}

fn link_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let op = op.into();
    move |source| NetError::Link {
        hint: hint_for(&source),
        op,
        source,
    }
}

/// A connected rtnetlink socket with synchronous request/response.
struct Nl {
    sock: Socket,
    seq: u32,
}

impl Nl {
    fn open() -> io::Result<Nl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Nl { sock, seq: 0 })
    }

    /// Opens a socket in the network namespace `ns`, from a thread that
    /// joins it and then exits; the socket keeps that namespace.
    fn open_in(ns: &File) -> io::Result<Nl> {
        let ns = ns.try_clone()?;
        std::thread::spawn(move || {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
            Nl::open()
        })
        .join()
        .map_err(|_| io::Error::other("network namespace thread panicked"))?
    }

    /// Sends one request (with NLM_F_ACK) and collects the replies until
    /// the kernel's acknowledgement; a negative ack becomes the error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0)?;

        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-length netlink message",
                    ));
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }

    /// The link called `name`, if any.
    fn link(&mut self, name: &str) -> io::Result<Option<LinkMessage>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(Errno::NODEV.raw_os_error()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets attributes on link `index` and, if `up`, brings it up.
    fn set_link(&mut self, index: u32, up: bool, attrs: Vec<LinkAttribute>) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        m.attributes = attrs;
        self.request(RouteNetlinkMessage::SetLink(m), 0).map(drop)
    }

    fn delete(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(m), 0).map(drop)
    }

    /// Adds (or replaces) `addr/prefix` on link `index`.
    fn add_address(&mut self, index: u32, addr: (Ipv4Addr, u8)) -> io::Result<()> {
        let (ip, prefix) = addr;
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        if prefix < 31 {
            let mask = u32::MAX << (32 - prefix);
            let bcast = Ipv4Addr::from(u32::from(ip) | !mask);
            m.attributes.push(AddressAttribute::Broadcast(bcast));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Adds (or replaces) the default route via `gateway` out of `index`.
    fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 0;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

fn mtu_of(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn open_netns(netns: &Path) -> Result<File, NetError> {
    File::open(netns).map_err(|source| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    })
}

fn open_host() -> Result<Nl, NetError> {
    Nl::open().map_err(link_err("open rtnetlink socket"))
}

/// Brings lo up over `nl` (a socket in the namespace `netns`).
fn lo_up_with(nl: &mut Nl, netns: &Path) -> Result<(), NetError> {
    let op = || format!("bring up lo in {}", netns.display());
    let lo = nl
        .link("lo")
        .map_err(link_err(op()))?
        .ok_or_else(|| link_err(op())(io::Error::from_raw_os_error(Errno::NODEV.raw_os_error())))?;
    nl.set_link(lo.header.index, true, Vec::new())
        .map_err(link_err(op()))
}

impl Netlink {
    #[allow(clippy::too_many_arguments)]
    fn configure_attached(
        nl: &mut Nl,
        bridge: &LinkMessage,
        bridge_name: &str,
        host: &str,
        ns: &File,
        netns: &Path,
        ifname: &str,
        addr: (Ipv4Addr, u8),
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        let host_link = nl
            .link(host)
            .map_err(link_err(format!("look up veth {host}")))?
            .ok_or_else(|| {
                link_err(format!("look up veth {host}"))(io::Error::from_raw_os_error(
                    Errno::NODEV.raw_os_error(),
                ))
            })?;
        nl.set_link(
            host_link.header.index,
            true,
            vec![LinkAttribute::Controller(bridge.header.index)],
        )
        .map_err(link_err(format!(
            "attach veth {host} to bridge {bridge_name}"
        )))?;

        let at = netns.display();
        let mut inner =
            Nl::open_in(ns).map_err(link_err(format!("enter network namespace {at}")))?;
        let peer = inner
            .link(ifname)
            .map_err(link_err(format!("look up {ifname} in {at}")))?
            .ok_or_else(|| {
                link_err(format!("look up {ifname} in {at}"))(io::Error::from_raw_os_error(
                    Errno::NODEV.raw_os_error(),
                ))
            })?;
        let index = peer.header.index;
        inner.add_address(index, addr).map_err(link_err(format!(
            "add address {}/{} to {ifname} in {at}",
            addr.0, addr.1
        )))?;
        inner
            .set_link(index, true, Vec::new())
            .map_err(link_err(format!("bring up {ifname} in {at}")))?;
        lo_up_with(&mut inner, netns)?;
        if let Some(gw) = gateway {
            inner
                .add_default_route(index, gw)
                .map_err(link_err(format!(
                    "add default route via {gw} dev {ifname} in {at}"
                )))?;
        }
        Ok(())
    }
}

impl Links for Netlink {
    fn ensure_bridge(
        &self,
        name: &str,
        addr: Option<(Ipv4Addr, u8)>,
        mtu: Option<u32>,
    ) -> Result<(), NetError> {
        check_link_name(name)?;
        if let Some(a) = addr {
            prefix_ok(a)?;
        }
        let mut nl = open_host()?;
        let link = match nl
            .link(name)
            .map_err(link_err(format!("look up bridge {name}")))?
        {
            Some(link) => link,
            None => {
                let mut m = LinkMessage::default();
                m.attributes.push(LinkAttribute::IfName(name.to_string()));
                if let Some(mtu) = mtu {
                    m.attributes.push(LinkAttribute::Mtu(mtu));
                }
                m.attributes
                    .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                        InfoKind::Bridge,
                    )]));
                match nl.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL) {
                    Ok(_) => {}
                    // Lost a race with another creator: fine, it is there.
                    Err(e) if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) => {}
                    Err(e) => return Err(link_err(format!("create bridge {name}"))(e)),
                }
                nl.link(name)
                    .map_err(link_err(format!("look up bridge {name}")))?
                    .ok_or_else(|| NetError::NoBridge {
                        name: name.to_string(),
                    })?
            }
        };
        if !is_bridge(&link) {
            return Err(NetError::Link {
                op: format!("create bridge {name}"),
                source: io::Error::from_raw_os_error(Errno::EXIST.raw_os_error()),
                hint: "; it exists and is not a bridge: remove it or pick another bridge name",
            });
        }
        let index = link.header.index;
        if let Some(a) = addr {
            nl.add_address(index, a).map_err(link_err(format!(
                "add address {}/{} to bridge {name}",
                a.0, a.1
            )))?;
        }
        let attrs = match mtu {
            Some(m) if mtu_of(&link) != Some(m) => vec![LinkAttribute::Mtu(m)],
            _ => Vec::new(),
        };
        nl.set_link(index, true, attrs)
            .map_err(link_err(format!("bring up bridge {name}")))
    }

    fn delete_link(&self, name: &str) -> Result<bool, NetError> {
        check_link_name(name)?;
        let mut nl = open_host()?;
        let Some(link) = nl
            .link(name)
            .map_err(link_err(format!("look up link {name}")))?
        else {
            return Ok(false);
        };
        match nl.delete(link.header.index) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(Errno::NODEV.raw_os_error()) => Ok(false),
            Err(e) => Err(link_err(format!("delete link {name}"))(e)),
        }
    }

    fn link_exists(&self, name: &str) -> Result<bool, NetError> {
        check_link_name(name)?;
        let mut nl = open_host()?;
        nl.link(name)
            .map(|l| l.is_some())
            .map_err(link_err(format!("look up link {name}")))
    }

    fn attach(
        &self,
        bridge: &str,
        host: &str,
        netns: &Path,
        ifname: &str,
        addr: (Ipv4Addr, u8),
        gateway: Option<Ipv4Addr>,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NetError> {
        check_link_name(bridge)?;
        check_link_name(host)?;
        check_link_name(ifname)?;
        prefix_ok(addr)?;
        let mut nl = open_host()?;
        let br = nl
            .link(bridge)
            .map_err(link_err(format!("look up bridge {bridge}")))?
            .ok_or_else(|| NetError::NoBridge {
                name: bridge.to_string(),
            })?;
        if !is_bridge(&br) {
            return Err(NetError::NoBridge {
                name: bridge.to_string(),
            });
        }
        let ns = open_netns(netns)?;

        // The peer is created straight inside the namespace under its final
        // name, so it never clashes with a host link called eth0.
        let mtu = mtu_of(&br);
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(ifname.to_string()));
        peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        if let Some(mac) = mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        if let Some(mtu) = mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        nl.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(link_err(format!(
                "create veth pair {host} (host) / {ifname} (in {})",
                netns.display()
            )))?;

        let result = Self::configure_attached(
            &mut nl, &br, bridge, host, &ns, netns, ifname, addr, gateway,
        );
        if result.is_err() {
            // Deleting one end of a veth pair deletes both.
            if let Ok(Some(l)) = nl.link(host) {
                let _ = nl.delete(l.header.index);
            }
        }
        result
    }

    fn lo_up(&self, netns: &Path) -> Result<(), NetError> {
        let ns = open_netns(netns)?;
        let mut nl = Nl::open_in(&ns).map_err(link_err(format!(
            "enter network namespace {}",
            netns.display()
        )))?;
        lo_up_with(&mut nl, netns)
    }
}

// ---------------------------------------------------------------------------
// The fake.

/// A bridge in [`FakeLinks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBridge {
    /// Every address given to it, in order, without duplicates.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    pub mtu: Option<u32>,
    pub up: bool,
}

/// An attached veth pair in [`FakeLinks`], keyed by its host end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVeth {
    pub bridge: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub addr: (Ipv4Addr, u8),
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
}

/// Everything [`FakeLinks`] knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeState {
    pub bridges: BTreeMap<String, FakeBridge>,
    pub veths: BTreeMap<String, FakeVeth>,
    /// Namespaces whose lo was brought up (by `attach` or `lo_up`).
    pub lo_up: BTreeSet<PathBuf>,
    /// Every call, as "op name", in order (including failed ones).
    pub calls: Vec<String>,
}

/// An in-memory [`Links`] for engine unit tests. It enforces the same
/// rules as the kernel where they matter to callers (names, a missing
/// bridge, a duplicate link), and can be told to fail an operation.
#[derive(Debug, Default)]
pub struct FakeLinks {
    state: Mutex<FakeState>,
    failing: Mutex<BTreeSet<String>>,
}

impl FakeLinks {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the current state.
    pub fn state(&self) -> FakeState {
        self.lock().clone()
    }

    /// Makes every later call of `op` ("ensure_bridge", "delete_link",
    /// "link_exists", "attach", "lo_up") fail with an I/O error.
    pub fn fail(&self, op: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(op.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call(&self, st: &mut FakeState, op: &str, name: &str) -> Result<(), NetError> {
        st.calls.push(format!("{op} {name}"));
        if self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(op)
        {
            return Err(NetError::Link {
                op: format!("{op} {name}"),
                source: io::Error::other("injected failure"),
                hint: "",
            });
        }
        Ok(())
    }
}

fn exists_err(op: String) -> NetError {
    let source = io::Error::from_raw_os_error(Errno::EXIST.raw_os_error());
    NetError::Link {
        hint: hint_for(&source),
        op,
        source,
    }
}

impl Links for FakeLinks {
    fn ensure_bridge(
        &self,
        name: &str,
        addr: Option<(Ipv4Addr, u8)>,
        mtu: Option<u32>,
    ) -> Result<(), NetError> {
        let mut st = self.lock();
        self.call(&mut st, "ensure_bridge", name)?;
        check_link_name(name)?;
        if let Some(a) = addr {
            prefix_ok(a)?;
        }
        if st.veths.contains_key(name) {
            return Err(exists_err(format!("create bridge {name}")));
        }
        let br = st
            .bridges
            .entry(name.to_string())
            .or_insert_with(|| FakeBridge {
                addrs: Vec::new(),
                mtu: None,
                up: false,
            });
        if let Some(a) = addr {
            if !br.addrs.contains(&a) {
                br.addrs.push(a);
            }
        }
        if mtu.is_some() {
            br.mtu = mtu;
        }
        br.up = true;
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<bool, NetError> {
        let mut st = self.lock();
        self.call(&mut st, "delete_link", name)?;
        check_link_name(name)?;
        Ok(st.bridges.remove(name).is_some() || st.veths.remove(name).is_some())
    }

    fn link_exists(&self, name: &str) -> Result<bool, NetError> {
        let mut st = self.lock();
        self.call(&mut st, "link_exists", name)?;
        check_link_name(name)?;
        Ok(st.bridges.contains_key(name) || st.veths.contains_key(name))
    }

    fn attach(
        &self,
        bridge: &str,
        host: &str,
        netns: &Path,
        ifname: &str,
        addr: (Ipv4Addr, u8),
        gateway: Option<Ipv4Addr>,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NetError> {
        let mut st = self.lock();
        self.call(&mut st, "attach", host)?;
        check_link_name(bridge)?;
        check_link_name(host)?;
        check_link_name(ifname)?;
        prefix_ok(addr)?;
        if !st.bridges.contains_key(bridge) {
            return Err(NetError::NoBridge {
                name: bridge.to_string(),
            });
        }
        if st.bridges.contains_key(host) || st.veths.contains_key(host) {
            return Err(exists_err(format!("create veth pair {host}")));
        }
        if st
            .veths
            .values()
            .any(|v| v.netns == netns && v.ifname == ifname)
        {
            return Err(exists_err(format!(
                "create veth pair {host} (host) / {ifname} (in {})",
                netns.display()
            )));
        }
        st.veths.insert(
            host.to_string(),
            FakeVeth {
                bridge: bridge.to_string(),
                netns: netns.to_path_buf(),
                ifname: ifname.to_string(),
                addr,
                gateway,
                mac,
            },
        );
        st.lo_up.insert(netns.to_path_buf());
        Ok(())
    }

    fn lo_up(&self, netns: &Path) -> Result<(), NetError> {
        let mut st = self.lock();
        self.call(&mut st, "lo_up", &netns.display().to_string())?;
        st.lo_up.insert(netns.to_path_buf());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
