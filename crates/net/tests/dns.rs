//! The embedded DNS server over real sockets on 127.0.0.1: answers from a
//! fake resolver over UDP and TCP, forwarding to fake upstreams, SERVFAIL
//! when they stay silent, and binding inside another network namespace
//! (root only).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use barge_net::dns::{bind_in_netns, Resolver, Server, EMBEDDED_ADDR};

struct Fake;

impl Resolver for Fake {
    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        (name == "web").then(|| vec![Ipv4Addr::new(10, 1, 2, 3)])
    }
    fn reverse(&self, _: Ipv4Addr) -> Option<String> {
        None
    }
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fn rcode(answer: &[u8]) -> u8 {
    answer[3] & 0x0F
}

fn ancount(answer: &[u8]) -> u16 {
    u16::from_be_bytes([answer[6], answer[7]])
}

fn start(upstreams: Vec<SocketAddr>) -> (Server, SocketAddr, SocketAddr) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (u, t) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let server = Server::start(udp, tcp, Arc::new(Fake), upstreams).unwrap();
    (server, u, t)
}

fn ask_udp(server: SocketAddr, q: &[u8], timeout: Duration) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(q, server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn ask_tcp(stream: &mut TcpStream, q: &[u8]) -> Vec<u8> {
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    stream.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).unwrap();
    answer
}

fn stop_quickly(server: Server) {
    let t = Instant::now();
    server.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn answers_known_names_over_udp_and_tcp() {
    let (server, udp, tcp) = start(Vec::new());

    let q = query(0xBEEF, "web", 1);
    let a = ask_udp(udp, &q, Duration::from_secs(2));
    assert_eq!(&a[..2], &[0xBE, 0xEF]);
    assert_eq!(rcode(&a), 0);
    assert_eq!(ancount(&a), 1);
    assert_eq!(&a[a.len() - 4..], &[10, 1, 2, 3]);

    let mut stream = TcpStream::connect(tcp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for id in [1u16, 2] {
        let a = ask_tcp(&mut stream, &query(id, "WEB", 1));
        assert_eq!(&a[..2], &id.to_be_bytes());
        assert_eq!(ancount(&a), 1);
        assert_eq!(&a[a.len() - 4..], &[10, 1, 2, 3]);
    }
    // Not ours and no upstreams: SERVFAIL, over both.
    let a = ask_tcp(&mut stream, &query(3, "example.com", 1));
    assert_eq!(rcode(&a), 2);
    let a = ask_udp(udp, &query(4, "example.com", 1), Duration::from_secs(2));
    assert_eq!(rcode(&a), 2);

    stop_quickly(server);
    // The connection is closed once the server stopped.
    let mut buf = [0u8; 1];
    assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn forwards_unknown_names_and_checks_the_id() {
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = upstream.recv_from(&mut buf).unwrap();
        let q = buf[..n].to_vec();
        // A forged answer with another ID first: it must be ignored.
        let mut forged = q.clone();
        forged[0] ^= 0xFF;
        forged[2] |= 0x80;
        forged.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 6, 6, 6, 6]);
        forged[7] = 1;
        upstream.send_to(&forged, from).unwrap();
        let mut canned = q.clone();
        canned[2] |= 0x80;
        canned[3] |= 0x80;
        canned[7] = 1;
        canned.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        upstream.send_to(&canned, from).unwrap();
        q
    });
    let (server, udp, _) = start(vec![up_addr]);
    let q = query(0x7777, "example.com", 1);
    let a = ask_udp(udp, &q, Duration::from_secs(3));
    assert_eq!(fake.join().unwrap(), q, "the query is forwarded as-is");
    assert_eq!(&a[..2], &[0x77, 0x77]);
    assert_eq!(ancount(&a), 1);
    assert_eq!(&a[a.len() - 4..], &[93, 184, 216, 34]);
    stop_quickly(server);
}

#[test]
fn forwards_tcp_queries_over_tcp() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = upstream.accept().unwrap();
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).unwrap();
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        conn.read_exact(&mut q).unwrap();
        q[2] |= 0x80;
        q[3] |= 0x80;
        q[7] = 1;
        q.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        conn.write_all(&framed).unwrap();
    });
    let (server, _, tcp) = start(vec![up_addr]);
    let mut stream = TcpStream::connect(tcp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let a = ask_tcp(&mut stream, &query(9, "example.org", 1));
    assert_eq!(&a[..2], &[0, 9]);
    assert_eq!(&a[a.len() - 4..], &[1, 2, 3, 4]);
    stop_quickly(server);
}

#[test]
fn silent_upstream_gives_servfail() {
    // Bound but never read: queries to it go unanswered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (server, udp, _) = start(vec![silent.local_addr().unwrap()]);
    let t = Instant::now();
    let a = ask_udp(
        udp,
        &query(0x0101, "example.net", 1),
        Duration::from_secs(4),
    );
    let took = t.elapsed();
    assert_eq!(&a[..2], &[0x01, 0x01]);
    assert_eq!(rcode(&a), 2);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    // A known name is still answered at once while a forward is pending.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&query(1, "nowhere.example", 1), udp).unwrap();
    let t = Instant::now();
    let a = ask_udp(udp, &query(2, "web", 1), Duration::from_secs(1));
    assert_eq!(ancount(&a), 1);
    assert!(t.elapsed() < Duration::from_millis(500));
    stop_quickly(server);
}

#[test]
fn binds_inside_another_network_namespace() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to create a network namespace");
        return;
    }
    let child = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec sleep 30"])
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipped: cannot run unshare");
        return;
    };
    let pid = child.id();
    // Wait until the child is in its own namespace with lo up.
    let ns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut result = None;
    while Instant::now() < deadline {
        if std::fs::read_link(&ns).is_ok_and(|l| l != own) {
            // An error means lo is not up yet: try again.
            if let Ok(socks) = bind_in_netns(&ns, SocketAddrV4::new(EMBEDDED_ADDR, 0)) {
                result = Some(socks);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some((udp, tcp)) = result else {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("skipped: unshare -n did not give a usable namespace");
        return;
    };
    let local = udp.local_addr().unwrap();
    assert_eq!(local.ip(), std::net::IpAddr::V4(EMBEDDED_ADDR));
    assert_eq!(tcp.local_addr().unwrap().port(), local.port());
    // The same address and port are free on the host: another namespace.
    let host = UdpSocket::bind(local);
    // The server runs there too (its threads stay in this namespace).
    let server = Server::start(udp, tcp, Arc::new(Fake), Vec::new()).unwrap();
    stop_quickly(server);
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = &host {
        // 127.0.0.11 lies in 127.0.0.0/8, so it is bindable on any host lo.
        panic!("host-side bind of {local} failed: {e}");
    }
}
