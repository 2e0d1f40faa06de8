//! The userspace port proxy against real sockets on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use barge_net::nft::Proto;
use barge_net::proxy::{Proxy, ProxyPort};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

fn port(proto: Proto, host_port: u16, backend: SocketAddr) -> ProxyPort {
    ProxyPort {
        proto,
        host_ip: LOCALHOST,
        host_port,
        host_port_end: None,
        backend,
    }
}

/// A TCP backend that echoes every connection until EOF, then half-closes.
fn tcp_echo() -> SocketAddr {
    tcp_backend(|mut conn| {
        let mut copy = conn.try_clone().unwrap();
        let _ = std::io::copy(&mut conn, &mut copy);
        let _ = conn.shutdown(Shutdown::Write);
    })
}

fn tcp_backend(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || serve(conn));
        }
    });
    addr
}

fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

fn connect(proxy: &Proxy, index: usize) -> TcpStream {
    let bound = &proxy.ports()[index];
    let stream = TcpStream::connect((bound.host_ip, bound.host_port)).unwrap();
    stream.set_read_timeout(TIMEOUT).unwrap();
    stream
}

/// The proxy closed `client`: a read gives EOF or a reset, not a timeout.
fn assert_closed(client: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("read {n} bytes from a connection that should be closed"),
        Err(err) => assert!(
            !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "connection still open: {err}"
        ),
    }
}

/// A port free right now (bound and released).
fn free_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_carries_a_mebibyte_both_ways_on_a_kernel_chosen_port() {
    let proxy = Proxy::start(&[port(Proto::Tcp, 0, tcp_echo())]).unwrap();
    let bound = proxy.ports();
    assert_eq!(bound.len(), 1);
    assert_ne!(bound[0].host_port, 0);
    assert_eq!(bound[0].host_port_end, None);

    let mut client = connect(&proxy, 0);
    let sent: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut writer = client.try_clone().unwrap();
    let to_send = sent.clone();
    let writing = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    writing.join().unwrap();
    assert!(
        got == sent,
        "echoed {} bytes, not the 1 MiB sent",
        got.len()
    );
    proxy.stop();
}

#[test]
fn tcp_half_close_reaches_the_backend_and_the_reply_comes_back() {
    let backend = tcp_backend(|mut conn| {
        let mut request = Vec::new();
        conn.read_to_end(&mut request).unwrap();
        conn.write_all(format!("got {} bytes", request.len()).as_bytes())
            .unwrap();
    });
    let proxy = Proxy::start(&[port(Proto::Tcp, 0, backend)]).unwrap();
    let mut client = connect(&proxy, 0);
    client.write_all(b"hello").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "got 5 bytes");
    proxy.stop();
}

#[test]
fn a_taken_port_fails_as_docker_says_and_binds_nothing() {
    let backend = tcp_echo();
    let first = Proxy::start(&[port(Proto::Tcp, 0, backend)]).unwrap();
    let taken = first.ports()[0].host_port;
    let free = free_port();

    let err = Proxy::start(&[
        port(Proto::Tcp, free, backend),
        port(Proto::Tcp, taken, backend),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Bind for 127.0.0.1:{taken} failed: port is already allocated")
    );
    // The port bound before the failure was released.
    TcpListener::bind((LOCALHOST, free)).unwrap();
    first.stop();
}

#[test]
fn a_range_takes_its_first_free_port_and_names_itself_when_full() {
    // Hold `base` and find `base + 1`, `base + 2` free.
    let (held, base) = loop {
        let held = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let base = held.local_addr().unwrap().port();
        if base < u16::MAX - 2
            && TcpListener::bind((LOCALHOST, base + 1)).is_ok()
            && TcpListener::bind((LOCALHOST, base + 2)).is_ok()
        {
            break (held, base);
        }
    };
    let backend = tcp_echo();
    let mut ranged = port(Proto::Tcp, base, backend);
    ranged.host_port_end = Some(base + 2);
    let proxy = Proxy::start(&[ranged.clone()]).unwrap();
    assert_eq!(
        proxy.ports(),
        vec![ProxyPort {
            host_port: base + 1,
            host_port_end: None,
            ..ranged.clone()
        }]
    );

    let mut full = ranged.clone();
    full.host_port_end = Some(base + 1);
    let err = Proxy::start(&[full]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Bind for 127.0.0.1:{base}-{} failed: port is already allocated",
            base + 1
        )
    );
    proxy.stop();
    drop(held);
}

#[test]
fn udp_clients_each_get_their_own_replies() {
    let proxy = Proxy::start(&[port(Proto::Udp, 0, udp_echo())]).unwrap();
    let bound = &proxy.ports()[0];
    assert_ne!(bound.host_port, 0);
    let target = SocketAddr::new(bound.host_ip, bound.host_port);

    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
            socket.set_read_timeout(TIMEOUT).unwrap();
            socket
        })
        .collect();
    let mut buf = [0u8; 65536];
    for round in 0..3 {
        for (i, client) in clients.iter().enumerate() {
            let message = format!("client {i} round {round}");
            client.send_to(message.as_bytes(), target).unwrap();
        }
        for (i, client) in clients.iter().enumerate() {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, target);
            assert_eq!(&buf[..n], format!("client {i} round {round}").as_bytes());
        }
    }
    // A large datagram passes whole.
    let big = vec![42u8; 60000];
    clients[0].send_to(&big, target).unwrap();
    let (n, _) = clients[0].recv_from(&mut buf).unwrap();
    assert_eq!(n, big.len());
    proxy.stop();
    UdpSocket::bind(target).unwrap();
}

#[test]
fn stop_is_quick_closes_open_connections_and_frees_the_port() {
    let proxy = Proxy::start(&[port(Proto::Tcp, 0, tcp_echo())]).unwrap();
    let host_port = proxy.ports()[0].host_port;
    let mut client = connect(&proxy, 0);
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    let started = Instant::now();
    proxy.stop();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        started.elapsed()
    );
    assert_closed(&mut client);
    TcpListener::bind((LOCALHOST, host_port)).unwrap();
}

#[test]
fn a_refusing_backend_closes_the_client_and_other_connections_still_work() {
    let refusing = SocketAddr::new(LOCALHOST, free_port());
    let proxy = Proxy::start(&[
        port(Proto::Tcp, 0, refusing),
        port(Proto::Tcp, 0, tcp_echo()),
    ])
    .unwrap();
    for _ in 0..2 {
        assert_closed(&mut connect(&proxy, 0));
    }
    let mut client = connect(&proxy, 1);
    client.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    proxy.stop();
}
