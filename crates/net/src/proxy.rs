//! The userspace proxy for published ports, like Docker's `docker-proxy`:
//! connections and datagrams to `host_ip:host_port` are relayed to the
//! container's address by ordinary sockets in the container's monitor
//! process. It is what makes ports published on loopback work (the
//! nftables DNAT in [`crate::nft`] skips `127.0.0.0/8`), and it holds the
//! host port so no other program can take it while the container runs.
//!
//! [`Proxy::start`] binds every port first, in order; if one bind fails
//! nothing stays bound and the error is worded as Docker words it
//! (`Bind for 0.0.0.0:8080 failed: port is already allocated`). Only then
//! are the threads started:
//!
//! - TCP: one thread per listener blocks in `accept`. Each connection gets
//!   a thread that connects to the backend (5 s timeout; on failure the
//!   client is closed) and copies backend to client, plus one more that
//!   copies client to backend. EOF on one side becomes `shutdown(Write)` on
//!   the other, so half-close passes through; an error closes both sides.
//!   Every live stream is kept in a registry so stop can shut it down.
//! - UDP: one thread per listener reads datagrams (up to 64 KiB). Each
//!   client address gets its own connected socket to the backend and a
//!   thread that sends the backend's replies back to that client from the
//!   listening socket; a client idle for 30 s is forgotten.
//!
//! [`Proxy::stop`] (and, without waiting, dropping the [`Proxy`]) wakes the
//! accept threads by shutting down the listening sockets, shuts down every
//! proxied connection and joins the threads; a connection still waiting
//! for its backend to answer the connect is left to finish on its own
//! after 1 s (it closes both sides when it sees the proxy stopped).
//!
//! The proxy only relays bytes: it does no NAT, firewalling or connection
//! limiting, and never looks at what it carries.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::NetError;
use crate::nft::Proto;

/// How long a TCP connection waits for the backend to accept it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP client that sent and received nothing for this long is forgotten.
const UDP_IDLE: Duration = Duration::from_secs(30);
/// How often the UDP listener checks the stop flag while idle.
const UDP_LISTEN_TICK: Duration = Duration::from_millis(100);
/// How often a UDP client's reply thread checks for stop and idleness.
const UDP_REPLY_TICK: Duration = Duration::from_millis(200);
/// The copy buffer of each TCP direction, and the largest UDP datagram.
const BUF_SIZE: usize = 64 * 1024;
/// Connection and UDP client threads only copy bytes.
const WORKER_STACK: usize = 256 * 1024;
/// How long stop waits for the threads before leaving them.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// One port to proxy: connections/datagrams to host_ip:host_port go to backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPort {
    pub proto: Proto,
    /// The address to listen on (0.0.0.0 for all; may be IPv6 such as ::1).
    pub host_ip: IpAddr,
    /// 0: any free port (the kernel's ephemeral range); the bound port is reported by Proxy::ports().
    pub host_port: u16,
    /// When Some(end): try host_port..=end in order and take the first free one (Docker's -p 8000-8010:80).
    pub host_port_end: Option<u16>,
    pub backend: SocketAddr,
}

/// Running proxies for a set of ports; see the module docs.
pub struct Proxy {
    ports: Vec<ProxyPort>,
    shared: Arc<Shared>,
    /// One accept or receive thread per port.
    listeners: Vec<JoinHandle<()>>,
    /// A second handle on each TCP listening socket, to wake its accept.
    wakers: Vec<TcpStream>,
}

/// What the threads of one [`Proxy`] share.
struct Shared {
    stop: AtomicBool,
    conns: Mutex<Conns>,
    /// Connection and UDP client threads, joined (within a grace) at stop.
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The origin of the UDP clients' last-activity clocks.
    epoch: Instant,
}

/// The live TCP streams (client and backend sides) by connection.
#[derive(Default)]
struct Conns {
    stopped: bool,
    next: u64,
    live: HashMap<u64, Vec<TcpStream>>,
}

/// A bound socket waiting for its thread.
enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Proxy {
    /// Binds every port first, in order; if any bind fails, nothing stays
    /// bound and the error names it the way Docker does. Then serves them
    /// on threads until [`Proxy::stop`].
    pub fn start(ports: &[ProxyPort]) -> Result<Proxy, NetError> {
        let mut bound = Vec::with_capacity(ports.len());
        let mut as_bound = Vec::with_capacity(ports.len());
        for port in ports {
            let (socket, host_port) = bind_port(port)?;
            bound.push(socket);
            as_bound.push(ProxyPort {
                host_port,
                host_port_end: None,
                ..port.clone()
            });
        }

        let mut proxy = Proxy {
            ports: as_bound,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                conns: Mutex::new(Conns::default()),
                workers: Mutex::new(Vec::new()),
                epoch: Instant::now(),
            }),
            listeners: Vec::with_capacity(bound.len()),
            wakers: Vec::new(),
        };
        for (socket, port) in bound.into_iter().zip(proxy.ports.clone()) {
            if let Err(err) = proxy.serve(socket, &port) {
                proxy.stop();
                return Err(err);
            }
        }
        Ok(proxy)
    }

    /// The ports as bound, same order as given, with `host_port` set to the
    /// port actually bound and `host_port_end` None.
    pub fn ports(&self) -> Vec<ProxyPort> {
        self.ports.clone()
    }

    /// Stops accepting, closes the listeners and all proxied connections
    /// and joins the threads (within about a second).
    pub fn stop(mut self) {
        self.signal();
        let deadline = Instant::now() + STOP_GRACE;
        join_by(std::mem::take(&mut self.listeners), deadline);
        // The listener threads are gone, so no new worker appears.
        join_by(std::mem::take(&mut *lock(&self.shared.workers)), deadline);
    }

    /// Starts the thread serving one bound socket.
    fn serve(&mut self, socket: Bound, port: &ProxyPort) -> Result<(), NetError> {
        let shared = Arc::clone(&self.shared);
        let backend = port.backend;
        let handle = match socket {
            Bound::Tcp(listener) => {
                let waker = listener
                    .try_clone()
                    .map(|l| TcpStream::from(OwnedFd::from(l)))
                    .map_err(|source| NetError::ProxyThread { source })?;
                let handle = spawn(format!("proxy-tcp-{}", port.host_port), None, move || {
                    accept_loop(&listener, backend, &shared)
                })?;
                self.wakers.push(waker);
                handle
            }
            Bound::Udp(socket) => {
                socket
                    .set_read_timeout(Some(UDP_LISTEN_TICK))
                    .map_err(|source| NetError::ProxyThread { source })?;
                spawn(format!("proxy-udp-{}", port.host_port), None, move || {
                    udp_loop(socket, backend, &shared)
                })?
            }
        };
        self.listeners.push(handle);
        Ok(())
    }

    /// Tells every thread to stop and closes every proxied connection,
    /// without waiting.
    fn signal(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // On Linux, shutdown of a listening socket wakes a blocked accept
        // (it returns EINVAL) and stops the socket listening.
        for waker in self.wakers.drain(..) {
            let _ = waker.shutdown(Shutdown::Read);
        }
        let mut conns = lock(&self.shared.conns);
        conns.stopped = true;
        for (_, streams) in conns.live.drain() {
            for stream in streams {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.signal();
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("ports", &self.ports).finish()
    }
}

/// Joins the threads that finish by `deadline` and leaves the others
/// running on their own.
fn join_by(handles: Vec<JoinHandle<()>>, deadline: Instant) {
    for handle in handles {
        while !handle.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// Locks a mutex; a thread that panicked holding it leaves nothing half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn spawn(
    name: String,
    stack: Option<usize>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, NetError> {
    let mut builder = thread::Builder::new().name(name);
    if let Some(size) = stack {
        builder = builder.stack_size(size);
    }
    builder
        .spawn(f)
        .map_err(|source| NetError::ProxyThread { source })
}

/// Starts a connection or UDP client thread and records it for stop.
fn spawn_worker(shared: &Shared, name: String, f: impl FnOnce() + Send + 'static) -> bool {
    match spawn(name, Some(WORKER_STACK), f) {
        Ok(handle) => {
            let mut workers = lock(&shared.workers);
            workers.retain(|h| !h.is_finished());
            workers.push(handle);
            true
        }
        Err(_) => false,
    }
}

/// Binds one port (the first free one of a range), returning the socket
/// and the port it got.
fn bind_port(port: &ProxyPort) -> Result<(Bound, u16), NetError> {
    let first = port.host_port;
    let last = port.host_port_end.unwrap_or(first).max(first);
    let mut in_use = None;
    for candidate in first..=last {
        let addr = SocketAddr::new(port.host_ip, candidate);
        let result = match port.proto {
            Proto::Tcp => {
                TcpListener::bind(addr).and_then(|l| Ok((l.local_addr()?, Bound::Tcp(l))))
            }
            Proto::Udp => UdpSocket::bind(addr).and_then(|s| Ok((s.local_addr()?, Bound::Udp(s)))),
        };
        match result {
            Ok((local, socket)) => return Ok((socket, local.port())),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => in_use = Some(err),
            Err(err) => return Err(bind_error(port.host_ip, first, last, &err)),
        }
    }
    let err = in_use.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse));
    Err(bind_error(port.host_ip, first, last, &err))
}

/// Docker's wording: `Bind for 0.0.0.0:8000-8010 failed: port is already
/// allocated`, or the system's text of any other error.
fn bind_error(ip: IpAddr, first: u16, last: u16, err: &io::Error) -> NetError {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let addr = if first == last {
        format!("{host}:{first}")
    } else {
        format!("{host}:{first}-{last}")
    };
    let reason = if err.kind() == io::ErrorKind::AddrInUse {
        "port is already allocated".to_string()
    } else {
        error_text(err)
    };
    NetError::ProxyBind { addr, reason }
}

/// An I/O error as `bind(2)` callers print it: `cannot assign requested
/// address`, without Rust's ` (os error 99)`.
fn error_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => &text[..at],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn accept_loop(listener: &TcpListener, backend: SocketAddr, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            // The listener was shut down (by stop) or is otherwise broken.
            Err(err) if err.kind() == io::ErrorKind::InvalidInput => return,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            // Out of descriptors or memory, or the client gave up: wait a
            // little rather than spin.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(registered) = client.try_clone() else {
            continue;
        };
        let Some(id) = register(shared, None, registered) else {
            return;
        };
        let worker_shared = Arc::clone(shared);
        let started = spawn_worker(shared, format!("proxy-conn-{id}"), move || {
            relay(client, backend, id, &worker_shared);
            lock(&worker_shared.conns).live.remove(&id);
        });
        if !started {
            if let Some(streams) = lock(&shared.conns).live.remove(&id) {
                for stream in streams {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Adds a stream to the registry: a new connection (`id` None; its id is
/// returned) or a second stream of connection `id`. None once the proxy is
/// stopping: the caller closes what it has.
fn register(shared: &Shared, id: Option<u64>, stream: TcpStream) -> Option<u64> {
    let mut conns = lock(&shared.conns);
    if conns.stopped {
        return None;
    }
    let id = match id {
        Some(id) => id,
        None => {
            conns.next += 1;
            conns.next
        }
    };
    conns.live.entry(id).or_default().push(stream);
    Some(id)
}

/// Connects one client to the backend and copies both ways until both
/// directions are done.
fn relay(client: TcpStream, backend: SocketAddr, id: u64, shared: &Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&backend, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let Ok(registered) = server.try_clone() else {
        return;
    };
    if register(shared, Some(id), registered).is_none() {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    };
    let upstream = spawn(format!("proxy-up-{id}"), Some(WORKER_STACK), move || {
        copy_half(&client2, &server2)
    });
    copy_half(&server, &client);
    match upstream {
        Ok(handle) => {
            let _ = handle.join();
        }
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until EOF, then half-closes `to`. An error closes
/// both streams, which also ends the other direction.
fn copy_half(mut from: &TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A UDP client's socket to the backend and when it was last used.
struct UdpClient {
    socket: Arc<UdpSocket>,
    /// Milliseconds since [`Shared::epoch`].
    last: Arc<AtomicU64>,
}

type UdpClients = Arc<Mutex<HashMap<SocketAddr, UdpClient>>>;

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn udp_loop(listener: UdpSocket, backend: SocketAddr, shared: &Arc<Shared>) {
    let listener = Arc::new(listener);
    let clients: UdpClients = Arc::new(Mutex::new(HashMap::new()));
    let mut buf = vec![0u8; BUF_SIZE];
    while !shared.stop.load(Ordering::SeqCst) {
        let (len, client) = match listener.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue, // the tick timeout, or an error to retry
        };
        let socket = {
            let mut map = lock(&clients);
            match map.get(&client) {
                Some(known) => {
                    known
                        .last
                        .store(millis_since(shared.epoch), Ordering::SeqCst);
                    Arc::clone(&known.socket)
                }
                None => match udp_client(&listener, &clients, client, backend, shared) {
                    Some(new) => {
                        let socket = Arc::clone(&new.socket);
                        map.insert(client, new);
                        socket
                    }
                    None => continue,
                },
            }
        };
        // A send error (the backend refused an earlier datagram) loses
        // this datagram, as the network could have.
        let _ = socket.send(&buf[..len]);
    }
}

/// Opens a client's socket to the backend and starts its reply thread.
fn udp_client(
    listener: &Arc<UdpSocket>,
    clients: &UdpClients,
    client: SocketAddr,
    backend: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<UdpClient> {
    let any: IpAddr = match backend {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    socket.connect(backend).ok()?;
    socket.set_read_timeout(Some(UDP_REPLY_TICK)).ok()?;
    let socket = Arc::new(socket);
    let last = Arc::new(AtomicU64::new(millis_since(shared.epoch)));
    let entry = UdpClient {
        socket: Arc::clone(&socket),
        last: Arc::clone(&last),
    };
    let listener = Arc::clone(listener);
    let clients = Arc::clone(clients);
    let worker_shared = Arc::clone(shared);
    let name = format!("proxy-udp-{client}");
    let started = spawn_worker(shared, name, move || {
        udp_replies(&socket, &listener, client, &last, &clients, &worker_shared)
    });
    started.then_some(entry)
}

/// Sends the backend's replies to one client until stop or until the
/// client has been idle for [`UDP_IDLE`].
fn udp_replies(
    socket: &UdpSocket,
    listener: &UdpSocket,
    client: SocketAddr,
    last: &AtomicU64,
    clients: &Mutex<HashMap<SocketAddr, UdpClient>>,
    shared: &Shared,
) {
    let idle = u64::try_from(UDP_IDLE.as_millis()).unwrap_or(u64::MAX);
    let mut buf = vec![0u8; BUF_SIZE];
    while !shared.stop.load(Ordering::SeqCst) {
        match socket.recv(&mut buf) {
            Ok(len) => {
                last.store(millis_since(shared.epoch), Ordering::SeqCst);
                let _ = listener.send_to(&buf[..len], client);
            }
            Err(_) => {
                // A timeout, or the backend refused a datagram (ICMP port
                // unreachable); either way, check whether to expire. The
                // listener refreshes `last` under the lock before sending,
                // so a client is never forgotten mid-use.
                let mut map = lock(clients);
                let now = millis_since(shared.epoch);
                if now.saturating_sub(last.load(Ordering::SeqCst)) >= idle {
                    map.remove(&client);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_names_the_port_or_range_as_docker_does() {
        let in_use = io::Error::from_raw_os_error(98); // EADDRINUSE
        let ip: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(
            bind_error(ip, 8080, 8080, &in_use).to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
        assert_eq!(
            bind_error(ip, 8000, 8010, &in_use).to_string(),
            "Bind for 0.0.0.0:8000-8010 failed: port is already allocated"
        );
        let not_local = io::Error::from_raw_os_error(99); // EADDRNOTAVAIL
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(
            bind_error(ip, 80, 80, &not_local).to_string(),
            "Bind for 10.9.9.9:80 failed: cannot assign requested address"
        );
        let ip: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            bind_error(ip, 80, 80, &in_use).to_string(),
            "Bind for [::1]:80 failed: port is already allocated"
        );
    }
}
