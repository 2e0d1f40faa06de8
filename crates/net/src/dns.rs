//! The embedded DNS server of user-defined networks, on Docker's model:
//! every container on such a network has `nameserver 127.0.0.11` in its
//! `resolv.conf`, and a UDP socket and a TCP listener bound to
//! [`EMBEDDED_ADDR`] port 53 inside the container's network namespace
//! answer it. The sockets are created by [`bind_in_netns`] from a
//! short-lived thread that joins the namespace; the [`Server`] threads
//! that serve them run in the engine's own (host) namespace, so queries
//! forwarded upstream leave from the host, and the host's resolvers
//! (loopback ones such as systemd-resolved's 127.0.0.53 included, see
//! [`upstreams_from_resolv_conf`]) are reachable.
//!
//! How a query is answered (RFC 1035 wire format, parsed and built by
//! hand in pure functions):
//!
//! 1. A message without a readable 12-byte header, or one that is itself
//!    a response, is dropped. An opcode other than QUERY gets NOTIMP; a
//!    header followed by anything but one well-formed question gets
//!    FORMERR.
//! 2. The question name is lower-cased and given to the [`Resolver`]
//!    (class IN only). A `d.c.b.a.in-addr.arpa` PTR question the resolver
//!    can reverse gets one PTR record. A name it knows gets, for type A,
//!    one A record per address (TTL 600), and for any other type an empty
//!    NOERROR, so clients do not look elsewhere. Our answers are
//!    authoritative (AA) and say recursion is available (RA).
//! 3. Anything else is forwarded as-is to the upstreams in order: over
//!    UDP (2 s each, a truncated answer retried over TCP) for UDP queries,
//!    over TCP for TCP queries. The first answer whose ID matches is
//!    relayed; when none answers, SERVFAIL. Each forwarded UDP query gets
//!    a thread of its own (at most [`MAX_FORWARDS`] at once, the rest are
//!    dropped and the client retries), so a slow upstream never holds up
//!    names we answer ourselves.
//! 4. Over UDP, answers we build are cut to 512 bytes and relayed ones to
//!    4096 (the upstream already honoured the client's EDNS size); a cut
//!    answer keeps only the header and question and has TC set, so the
//!    client retries over TCP. Over TCP each message has a two-byte length
//!    prefix and a connection may carry many queries (5 s idle timeout).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::NetError;

/// What the server answers from: the containers on the network(s).
pub trait Resolver: Send + Sync {
    /// Addresses for `name` (lower-case, no trailing dot), or None when
    /// the name is not ours (then the query is forwarded upstream).
    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// The name for a reverse (PTR) lookup of `ip`, or None to forward.
    fn reverse(&self, ip: Ipv4Addr) -> Option<String>;
}

/// The address containers query (Docker's).
pub const EMBEDDED_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Forwarded UDP queries in flight at once; more are dropped.
pub const MAX_FORWARDS: usize = 64;
/// TCP connections served at once; more are closed at once.
const MAX_TCP_CONNS: usize = 64;
/// TTL of the records we answer.
const TTL: u32 = 600;
/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client TCP connection may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(5);
/// How often the serving threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Largest UDP answer we build ourselves (RFC 1035).
const UDP_LIMIT: usize = 512;
/// Largest UDP answer we relay.
const UDP_RELAY_LIMIT: usize = 4096;

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

const RCODE_NOERROR: u16 = 0;
const RCODE_FORMERR: u16 = 1;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NOTIMP: u16 = 4;

/// A UDP socket and a TCP listener bound to `addr` (port 53 normally)
/// inside the network namespace `netns` (a path like /proc/PID/ns/net),
/// created from a short-lived thread that joins that namespace; the
/// sockets keep the namespace. The loopback interface of that namespace
/// must be up (the caller ensures it). With port 0 the TCP listener takes
/// the port the kernel gave the UDP socket.
pub fn bind_in_netns(
    netns: &Path,
    addr: SocketAddrV4,
) -> Result<(UdpSocket, TcpListener), NetError> {
    let ns = File::open(netns).map_err(|source| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    })?;
    let bind_err = |source| NetError::DnsBind {
        addr,
        netns: netns.to_path_buf(),
        source,
    };
    std::thread::Builder::new()
        .name("barge-dns-bind".into())
        .spawn(move || -> io::Result<(UdpSocket, TcpListener)> {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
            let udp = UdpSocket::bind(addr)?;
            let port = udp.local_addr()?.port();
            let tcp = TcpListener::bind(SocketAddrV4::new(*addr.ip(), port))?;
            Ok((udp, tcp))
        })
        .map_err(bind_err)?
        .join()
        .map_err(|_| bind_err(io::Error::other("network namespace thread panicked")))?
        .map_err(bind_err)
}

/// The host's resolvers from resolv.conf text: every `nameserver` line
/// (IPv4 and IPv6, loopback ones included: the server forwards from the
/// host's namespace), port 53. At most 3, as glibc. Addresses that do not
/// parse (an IPv6 one with a `%zone`, say) are skipped.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let ip: std::net::IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .take(3)
        .collect()
}

/// A running server: threads answering on the sockets until stopped.
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Serves queries on `udp` and `tcp` (already bound) on threads of its
    /// own. Names the resolver knows are answered; other queries are
    /// forwarded to `upstreams` in order (UDP, 2 s timeout each; a
    /// truncated UDP answer is retried over TCP; TCP queries forwarded
    /// over TCP); when none answers, SERVFAIL. No upstreams: SERVFAIL for
    /// names not ours.
    pub fn start(
        udp: UdpSocket,
        tcp: TcpListener,
        resolver: Arc<dyn Resolver>,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Server, NetError> {
        let dns_err = |op| move |source| NetError::Dns { op, source };
        udp.set_read_timeout(Some(POLL))
            .map_err(dns_err("set the udp read timeout"))?;
        tcp.set_nonblocking(true)
            .map_err(dns_err("make the tcp listener nonblocking"))?;
        let upstreams: Arc<[SocketAddr]> = upstreams.into();
        let mut server = Server {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };

        let shared = Shared {
            stop: server.stop.clone(),
            resolver,
            upstreams,
        };
        let udp_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("barge-dns-udp".into())
            .spawn(move || serve_udp(udp, udp_shared))
            .map_err(dns_err("start the udp thread"))?;
        server.threads.push(thread);
        // On failure `server` is dropped here, which stops the udp thread.
        let thread = std::thread::Builder::new()
            .name("barge-dns-tcp".into())
            .spawn(move || serve_tcp(tcp, shared))
            .map_err(dns_err("start the tcp thread"))?;
        server.threads.push(thread);
        Ok(server)
    }

    /// Stops the threads and waits for them (within about 0.1 s). Forwards
    /// still waiting on an upstream finish on their own, within their
    /// timeout; TCP connections close within 0.1 s.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What every serving thread needs.
#[derive(Clone)]
struct Shared {
    stop: Arc<AtomicBool>,
    resolver: Arc<dyn Resolver>,
    upstreams: Arc<[SocketAddr]>,
}

/// Counts a thread in a bounded set; leaves it on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if count.fetch_add(1, Ordering::SeqCst) >= max {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn serve_udp(sock: UdpSocket, shared: Shared) {
    let forwards = Arc::new(AtomicUsize::new(0));
    let mut buf = [0u8; UDP_RELAY_LIMIT];
    while !shared.stop.load(Ordering::SeqCst) {
        let (len, client) = match sock.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => {
                // An error queued on the socket (ICMP from a client that
                // went away); do not spin if it repeats.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let query = &buf[..len];
        match respond(query, &*shared.resolver) {
            Action::Drop => {}
            Action::Reply(answer) => {
                let _ = sock.send_to(&truncate(&answer, UDP_LIMIT), client);
            }
            Action::Forward => {
                let Some(slot) = Slot::take(&forwards, MAX_FORWARDS) else {
                    continue;
                };
                let Ok(sock) = sock.try_clone() else {
                    continue;
                };
                let query = query.to_vec();
                let upstreams = shared.upstreams.clone();
                let _ = std::thread::Builder::new()
                    .name("barge-dns-fwd".into())
                    .spawn(move || {
                        let _slot = slot;
                        let answer = forward_udp(&query, &upstreams)
                            .or_else(|| servfail(&query))
                            .map(|a| truncate(&a, UDP_RELAY_LIMIT));
                        if let Some(answer) = answer {
                            let _ = sock.send_to(&answer, client);
                        }
                    });
            }
        }
    }
}

fn serve_tcp(listener: TcpListener, shared: Shared) {
    let conns = Arc::new(AtomicUsize::new(0));
    while !shared.stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if is_timeout(&e) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Some(slot) = Slot::take(&conns, MAX_TCP_CONNS) else {
            continue;
        };
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("barge-dns-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve_conn(stream, &shared);
            });
    }
}

/// Answers length-prefixed queries on one client connection until it
/// closes, stays idle for [`TCP_IDLE`], sends junk, or the server stops.
fn serve_conn(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL)).is_err()
        || stream.set_write_timeout(Some(TCP_IDLE)).is_err()
    {
        return;
    }
    loop {
        let mut len = [0u8; 2];
        if !read_full(&mut stream, &mut len, &shared.stop) {
            return;
        }
        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
        if !read_full(&mut stream, &mut query, &shared.stop) {
            return;
        }
        let answer = match respond(&query, &*shared.resolver) {
            Action::Drop => return,
            Action::Reply(answer) => answer,
            Action::Forward => match forward_tcp(&query, &shared.upstreams) {
                Some(answer) => answer,
                None => match servfail(&query) {
                    Some(answer) => answer,
                    None => return,
                },
            },
        };
        if write_framed(&mut stream, &answer).is_err() {
            return;
        }
    }
}

/// Fills `buf` from a stream with a short read timeout, giving up when the
/// peer closes, [`TCP_IDLE`] passes without data, or `stop` is set.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut filled = 0;
    let mut deadline = Instant::now() + TCP_IDLE;
    while filled < buf.len() {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return false;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return false,
            Ok(n) => {
                filled += n;
                deadline = Instant::now() + TCP_IDLE;
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "dns message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out)
}

fn query_id(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

fn is_truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|b| b & (FLAG_TC >> 8) as u8 != 0)
}

/// Sends `query` to each upstream in turn over UDP and returns the first
/// answer with the query's ID; a truncated one is asked again over TCP
/// (and relayed truncated if that fails).
fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query_id(query)?;
    for &upstream in upstreams {
        let Some(answer) = ask_udp(query, id, upstream) else {
            continue;
        };
        if is_truncated(&answer) {
            if let Some(full) = ask_tcp(query, id, upstream) {
                return Some(full);
            }
        }
        return Some(answer);
    }
    None
}

/// Sends `query` to each upstream in turn over TCP.
fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query_id(query)?;
    upstreams
        .iter()
        .find_map(|&upstream| ask_tcp(query, id, upstream))
}

fn ask_udp(query: &[u8], id: u16, upstream: SocketAddr) -> Option<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).ok()?;
    sock.connect(upstream).ok()?;
    sock.send(query).ok()?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        match sock.recv(&mut buf) {
            // An answer with another ID is stale or forged: wait on.
            Ok(n) if n >= 12 && query_id(&buf[..n]) == Some(id) => {
                buf.truncate(n);
                return Some(buf);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn ask_tcp(query: &[u8], id: u16, upstream: SocketAddr) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    write_framed(&mut stream, query).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).ok()?;
    (answer.len() >= 12 && query_id(&answer) == Some(id)).then_some(answer)
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Send nothing.
    Drop,
    /// Send this answer.
    Reply(Vec<u8>),
    /// Not ours: ask upstream.
    Forward,
}

/// A parsed header and first question.
#[derive(Debug)]
struct Query {
    id: u16,
    flags: u16,
    question: Question,
}

#[derive(Debug, Clone)]
struct Question {
    /// The labels as sent (case kept, so the echo matches the query).
    labels: Vec<Vec<u8>>,
    qtype: u16,
    qclass: u16,
}

impl Question {
    /// The name as the resolver wants it: lower-case, dot-separated, no
    /// trailing dot; None when a label holds a dot or a non-printable byte
    /// (such a name cannot be ours), or for the root.
    fn name(&self) -> Option<String> {
        if self.labels.is_empty() {
            return None;
        }
        let mut name = String::new();
        for label in &self.labels {
            if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
                return None;
            }
            if !name.is_empty() {
                name.push('.');
            }
            name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
        Some(name)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for label in &self.labels {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
    }
}

/// Why a message could not be parsed.
#[derive(Debug, PartialEq, Eq)]
enum ParseError {
    /// Not even a header: drop it.
    NoHeader,
    /// A response, not a query: drop it.
    NotQuery,
    /// An opcode other than QUERY.
    NotImplemented { id: u16, flags: u16 },
    /// A readable header with a bad question section.
    Malformed { id: u16, flags: u16 },
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Reads a possibly compressed name at `start`; returns its labels and the
/// offset just past it (past the first pointer, if any).
fn read_name(msg: &[u8], start: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut labels = Vec::new();
    let mut pos = start;
    let mut end = None;
    let mut jumps = 0;
    let mut total = 1;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                return Some((labels, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let len = usize::from(len);
                let label = msg.get(pos + 1..pos + 1 + len)?;
                total += len + 1;
                if total > 255 {
                    return None;
                }
                labels.push(label.to_vec());
                pos += 1 + len;
            }
            0xC0 => {
                let low = *msg.get(pos + 1)?;
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 32 {
                    return None;
                }
                pos = (usize::from(len & 0x3F) << 8) | usize::from(low);
            }
            // 0x40 and 0x80 (extended label types) are not supported.
            _ => return None,
        }
    }
}

/// Parses the header and the first question of a query.
fn parse_query(msg: &[u8]) -> Result<Query, ParseError> {
    if msg.len() < 12 {
        return Err(ParseError::NoHeader);
    }
    let id = be16(msg, 0).ok_or(ParseError::NoHeader)?;
    let flags = be16(msg, 2).ok_or(ParseError::NoHeader)?;
    if flags & FLAG_QR != 0 {
        return Err(ParseError::NotQuery);
    }
    if (flags >> 11) & 0xF != 0 {
        return Err(ParseError::NotImplemented { id, flags });
    }
    let malformed = ParseError::Malformed { id, flags };
    if be16(msg, 4) != Some(1) {
        return Err(malformed);
    }
    let Some((labels, end)) = read_name(msg, 12) else {
        return Err(malformed);
    };
    let (Some(qtype), Some(qclass)) = (be16(msg, end), be16(msg, end + 2)) else {
        return Err(malformed);
    };
    Ok(Query {
        id,
        flags,
        question: Question {
            labels,
            qtype,
            qclass,
        },
    })
}

/// Builds an answer: the query's ID, opcode and RD echoed, RA set; the
/// question (if any) re-encoded uncompressed at offset 12 and each record
/// named by a pointer to it, class IN, TTL [`TTL`].
fn build(
    id: u16,
    query_flags: u16,
    aa: bool,
    rcode: u16,
    question: Option<&Question>,
    records: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut flags = FLAG_QR | (query_flags & (0x7800 | FLAG_RD)) | FLAG_RA | (rcode & 0xF);
    if aa {
        flags |= FLAG_AA;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    if let Some(q) = question {
        q.encode(&mut out);
    }
    for (rtype, rdata) in records {
        out.extend_from_slice(&[0xC0, 0x0C]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    out
}

/// A name in wire format, uncompressed, with the root label; None when it
/// does not fit the limits (63 bytes a label, 255 in all).
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::new();
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// The address a `d.c.b.a.in-addr.arpa` name stands for.
fn reverse_addr(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = rest.split('.');
    for octet in octets.iter_mut().rev() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// Decides what to do with one query message.
fn respond(msg: &[u8], resolver: &dyn Resolver) -> Action {
    let query = match parse_query(msg) {
        Ok(query) => query,
        Err(ParseError::NoHeader | ParseError::NotQuery) => return Action::Drop,
        Err(ParseError::NotImplemented { id, flags }) => {
            return Action::Reply(build(id, flags, false, RCODE_NOTIMP, None, &[]));
        }
        Err(ParseError::Malformed { id, flags }) => {
            return Action::Reply(build(id, flags, false, RCODE_FORMERR, None, &[]));
        }
    };
    let q = &query.question;
    let Some(name) = q.name().filter(|_| q.qclass == CLASS_IN) else {
        return Action::Forward;
    };
    let ours = |records: &[(u16, Vec<u8>)]| {
        Action::Reply(build(
            query.id,
            query.flags,
            true,
            RCODE_NOERROR,
            Some(q),
            records,
        ))
    };
    if q.qtype == TYPE_PTR {
        if let Some(target) = reverse_addr(&name)
            .and_then(|ip| resolver.reverse(ip))
            .and_then(|n| encode_name(&n))
        {
            return ours(&[(TYPE_PTR, target)]);
        }
    }
    match resolver.lookup(&name) {
        None => Action::Forward,
        Some(addrs) if q.qtype == TYPE_A => {
            let records: Vec<_> = addrs
                .iter()
                .map(|ip| (TYPE_A, ip.octets().to_vec()))
                .collect();
            ours(&records)
        }
        Some(_) => ours(&[]),
    }
}

/// SERVFAIL for a query we could not get answered (None if it does not
/// parse; it did when it was forwarded, so that does not happen).
fn servfail(msg: &[u8]) -> Option<Vec<u8>> {
    let query = parse_query(msg).ok()?;
    Some(build(
        query.id,
        query.flags,
        false,
        RCODE_SERVFAIL,
        Some(&query.question),
        &[],
    ))
}

/// An answer cut to fit `limit` bytes: longer ones keep only the header
/// (TC set, no records) and the question.
fn truncate(msg: &[u8], limit: usize) -> Vec<u8> {
    if msg.len() <= limit || msg.len() < 12 {
        return msg.to_vec();
    }
    let question = (be16(msg, 4) == Some(1))
        .then(|| read_name(msg, 12))
        .flatten()
        .and_then(|(labels, end)| {
            Some(Question {
                labels,
                qtype: be16(msg, end)?,
                qclass: be16(msg, end + 2)?,
            })
        });
    let mut out = msg[..12].to_vec();
    out[2] |= (FLAG_TC >> 8) as u8;
    let qdcount = u16::from(question.is_some()).to_be_bytes();
    out[4..6].copy_from_slice(&qdcount);
    out[6..12].fill(0);
    if let Some(q) = question {
        q.encode(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Resolver for Fake {
        fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
            match name {
                "web" => Some(vec![Ipv4Addr::new(10, 1, 2, 3)]),
                "db.net1" => Some(vec![Ipv4Addr::new(10, 1, 2, 4), Ipv4Addr::new(10, 1, 2, 5)]),
                _ => None,
            }
        }
        fn reverse(&self, ip: Ipv4Addr) -> Option<String> {
            (ip == Ipv4Addr::new(10, 1, 2, 3)).then(|| "web.net1".to_string())
        }
    }

    fn query(id: u16, flags: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&encode_name(name).unwrap());
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn reply(action: Action) -> Vec<u8> {
        match action {
            Action::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn a_answer_bytes() {
        let q = query(0x1234, FLAG_RD, "web", TYPE_A);
        let r = reply(respond(&q, &Fake));
        let mut want = vec![
            0x12, 0x34, // id
            0x85, 0x80, // QR, AA, RD, RA, NOERROR
            0, 1, 0, 1, 0, 0, 0, 0, // counts
        ];
        want.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
        want.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x02, 0x58, 0, 4, 10, 1, 2, 3]);
        assert_eq!(r, want);
    }

    #[test]
    fn a_answer_without_rd_and_several_addresses() {
        let q = query(7, 0, "db.net1.", TYPE_A);
        let r = reply(respond(&q, &Fake));
        assert_eq!(&r[2..4], &[0x84, 0x80]);
        assert_eq!(be16(&r, 6), Some(2));
        assert_eq!(&r[r.len() - 4..], &[10, 1, 2, 5]);
    }

    #[test]
    fn case_insensitive_and_echoes_case() {
        let q = query(1, FLAG_RD, "WeB", TYPE_A);
        let r = reply(respond(&q, &Fake));
        assert_eq!(be16(&r, 6), Some(1));
        assert_eq!(&r[12..16], &[3, b'W', b'e', b'B']);
    }

    #[test]
    fn aaaa_of_known_name_is_empty_noerror() {
        let q = query(2, FLAG_RD, "web", 28);
        let r = reply(respond(&q, &Fake));
        assert_eq!(be16(&r, 2), Some(0x8580));
        assert_eq!(be16(&r, 6), Some(0));
        assert_eq!(&r[12..], &q[12..]);
    }

    #[test]
    fn ptr_answer() {
        let q = query(3, FLAG_RD, "3.2.1.10.in-addr.arpa", TYPE_PTR);
        let r = reply(respond(&q, &Fake));
        assert_eq!(be16(&r, 2), Some(0x8580));
        assert_eq!(be16(&r, 6), Some(1));
        let at = q.len();
        assert_eq!(&r[at..at + 2], &[0xC0, 0x0C]);
        assert_eq!(be16(&r, at + 2), Some(TYPE_PTR));
        let rdata = encode_name("web.net1").unwrap();
        assert_eq!(be16(&r, at + 10), Some(rdata.len() as u16));
        assert_eq!(&r[at + 12..], &rdata[..]);
        assert_eq!(rdata.last(), Some(&0));
    }

    #[test]
    fn unknown_names_and_unknown_reverse_are_forwarded() {
        assert_eq!(
            respond(&query(4, 0, "example.com", TYPE_A), &Fake),
            Action::Forward
        );
        assert_eq!(
            respond(&query(4, 0, "9.9.9.9.in-addr.arpa", TYPE_PTR), &Fake),
            Action::Forward
        );
    }

    #[test]
    fn junk_gets_formerr_or_is_dropped() {
        assert_eq!(respond(&[1, 2, 3], &Fake), Action::Drop);
        // A readable header, a label running past the end.
        let junk = [0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'x'];
        let r = reply(respond(&junk, &Fake));
        assert_eq!(&r[..2], &[0xAB, 0xCD]);
        assert_eq!(be16(&r, 2).map(|f| f & 0xF), Some(RCODE_FORMERR));
        assert_eq!(be16(&r, 2).map(|f| f & FLAG_QR), Some(FLAG_QR));
        // No question at all.
        let mut none = query(5, 0, "web", TYPE_A);
        none[5] = 0;
        let r = reply(respond(&none, &Fake));
        assert_eq!(be16(&r, 2).map(|f| f & 0xF), Some(RCODE_FORMERR));
        // A pointer loop.
        let mut lp = query(6, 0, "web", TYPE_A);
        lp.truncate(12);
        lp.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        let r = reply(respond(&lp, &Fake));
        assert_eq!(be16(&r, 2).map(|f| f & 0xF), Some(RCODE_FORMERR));
        // Responses are not answered.
        let mut resp = query(8, 0, "web", TYPE_A);
        resp[2] |= 0x80;
        assert_eq!(respond(&resp, &Fake), Action::Drop);
    }

    #[test]
    fn other_opcodes_get_notimp() {
        // Opcode 2 (STATUS).
        let q = query(9, 2 << 11, "web", TYPE_A);
        let r = reply(respond(&q, &Fake));
        assert_eq!(
            be16(&r, 2),
            Some(0x8000 | (2 << 11) | FLAG_RA | RCODE_NOTIMP)
        );
        assert_eq!(r.len(), 12);
    }

    #[test]
    fn compressed_question_name() {
        // The question "web" + pointer to a "net1" suffix placed after it
        // (as a label sequence in the additional data, odd but legal to parse).
        let mut q = vec![0, 10, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[3, b'w', b'e', b'b', 0xC0, 22, 0, 1, 0, 1]);
        q.extend_from_slice(&[4, b'n', b'e', b't', b'1', 0]);
        let parsed = parse_query(&q).unwrap();
        assert_eq!(parsed.question.name().as_deref(), Some("web.net1"));
        assert_eq!(parsed.question.qtype, TYPE_A);
        // Known only as "web": not ours.
        assert_eq!(respond(&q, &Fake), Action::Forward);
        // "db.net1" through a pointer: answered, question re-encoded flat.
        let mut q = vec![0, 11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[2, b'd', b'b', 0xC0, 21, 0, 1, 0, 1]);
        q.extend_from_slice(&[4, b'N', b'E', b'T', b'1', 0]);
        let r = reply(respond(&q, &Fake));
        assert_eq!(be16(&r, 6), Some(2));
        assert_eq!(&r[12..21], &[2, b'd', b'b', 4, b'N', b'E', b'T', b'1', 0]);
    }

    #[test]
    fn servfail_echoes_question() {
        let q = query(0x4242, FLAG_RD, "example.com", TYPE_A);
        let r = servfail(&q).unwrap();
        assert_eq!(be16(&r, 0), Some(0x4242));
        assert_eq!(be16(&r, 2), Some(0x8182));
        assert_eq!(&r[12..], &q[12..]);
    }

    #[test]
    fn long_answers_are_truncated_with_tc() {
        let q = query(1, FLAG_RD, "web", TYPE_A);
        let mut long = reply(respond(&q, &Fake));
        long[7] = 200;
        long.resize(600, 0);
        let cut = truncate(&long, UDP_LIMIT);
        assert_eq!(be16(&cut, 2), Some(0x8580 | FLAG_TC));
        assert_eq!(&cut[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&cut[12..], &q[12..]);
        assert_eq!(truncate(&long, UDP_RELAY_LIMIT), long);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_addr("3.2.1.10.in-addr.arpa"),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(reverse_addr("2.1.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("256.2.1.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("4.3.2.1.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("web"), None);
    }

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\n\
                    nameserver ::1 # v6\nnameserver fe80::1%eth0\n nameserver\t8.8.8.8\n\
                    nameserver 1.1.1.1\n";
        let got = upstreams_from_resolv_conf(text);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.53:53".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            "8.8.8.8:53".parse().unwrap(),
        ];
        assert_eq!(got, want);
    }
}
