//! `--network bridge`: the default bridge network of a private engine root
//! (its own bridge and nftables table, named after the root), addresses in
//! its subnet, containers reaching each other and the host reaching them,
//! veths and addresses given back at remove, concurrent allocation. Every
//! bridge and table a test made is deleted by name when it ends.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::Command;

use common::Env;

/// An engine root whose bridge network is torn down (containers first,
/// then the bridge and the nft table, by the names the root recorded).
struct NetEnv {
    env: Option<Env>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// The tests compare the host's links before and after: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl NetEnv {
    fn new() -> NetEnv {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        NetEnv {
            env: Some(Env::new()),
            _serial: serial,
        }
    }

    fn e(&self) -> &Env {
        self.env.as_ref().unwrap()
    }

    fn network(&self) -> serde_json::Value {
        let p = self.e().root().join("networks/bridge/network.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// The network's subnet as (address, prefix).
    fn subnet(&self) -> (Ipv4Addr, u8) {
        let n = self.network();
        let s = n["subnet"].as_str().unwrap();
        let (a, p) = s.split_once('/').unwrap();
        (a.parse().unwrap(), p.parse().unwrap())
    }

    fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        let (net, prefix) = self.subnet();
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        u32::from(ip) & mask == u32::from(net) & mask
    }
}

impl Drop for NetEnv {
    fn drop(&mut self) {
        // Env's drop removes the containers and then every bridge and the
        // nft table the root recorded.
        drop(self.env.take());
    }
}

fn links() -> String {
    let o = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The names of the host's links (their states flicker).
fn link_names() -> Vec<String> {
    links()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn veth(id: &str) -> String {
    format!("brg{}", &id[..12])
}

#[test]
fn run_gets_an_address_in_the_subnet_and_hosts_names_it() {
    let n = NetEnv::new();
    let e = n.e();
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0; cat /etc/hosts; hostname",
    ]);
    let ip: Ipv4Addr = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("inet "))
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address on eth0: {out}"))
        .parse()
        .unwrap();
    assert!(n.in_subnet(ip), "{ip} not in {:?}: {out}", n.subnet());
    let hostname = out.lines().last().unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{ip}\t")) && l.contains(hostname)),
        "{out}"
    );
    // The bridge is this root's, never the real barge0. It stays when the
    // last container is gone (as docker0 does); `system reset` takes it
    // and the root's nftables table down.
    let bridge = n.network()["bridge"].as_str().unwrap().to_string();
    let table = n.network()["table"].clone();
    assert_ne!(bridge, "barge0");
    assert!(e.ids().is_empty());
    assert!(links().contains(&bridge));
    assert!(!nft_table(e).is_empty());
    e.ok(&["run", "-d", "--name", "left", "busybox", "sleep", "60"]);
    let net = unique("gone");
    e.ok(&["network", "create", &net]);
    e.ok(&["system", "reset", "-f"]);
    assert!(e.ids().is_empty());
    assert!(!links().contains(&bridge), "{}", links());
    assert!(nft_table_named(&table).is_empty());
    assert!(!e.root().join("networks/bridge").exists());
    assert!(e.ok(&["images", "-q"]).trim().is_empty());
}

#[test]
fn containers_reach_each_other_and_the_host_reaches_them() {
    let n = NetEnv::new();
    let e = n.e();
    let a = e.ok(&["run", "-d", "--network", "bridge", "busybox", "sleep", "60"]);
    let b = e.ok(&["run", "-d", "--network", "bridge", "busybox", "sleep", "60"]);
    let (a, b) = (a.trim().to_string(), b.trim().to_string());
    let ip_a = e.inspect(&a, "{{.NetworkSettings.IPAddress}}");
    let ip_b = e.inspect(&b, "{{.NetworkSettings.IPAddress}}");
    assert_ne!(ip_a, ip_b);
    assert!(n.in_subnet(ip_a.parse().unwrap()), "{ip_a}");
    assert_eq!(
        e.inspect(&a, "{{.NetworkSettings.Networks.bridge.IPAddress}}"),
        ip_a
    );
    let gw = n.network()["gateway"].as_str().unwrap().to_string();
    assert_eq!(e.inspect(&a, "{{.NetworkSettings.Gateway}}"), gw);
    // eth0 inside has the address inspect shows.
    let out = e.ok(&["exec", &a, "ip", "-4", "addr", "show", "eth0"]);
    assert!(out.contains(&format!("inet {ip_a}/")), "{out}");
    // Container to container, both ways.
    e.ok(&["exec", &a, "ping", "-c1", "-W2", &ip_b]);
    e.ok(&["exec", &b, "ping", "-c1", "-W2", &ip_a]);
    // Host to container, through this root's bridge.
    let st = Command::new("busybox")
        .args(["ping", "-c1", "-W2", &ip_a])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    // Both veths on the host; gone after rm -f.
    let l = links();
    assert!(l.contains(&veth(&a)) && l.contains(&veth(&b)), "{l}");
    e.ok(&["rm", "-f", &a, &b]);
    let l = links();
    assert!(!l.contains(&veth(&a)) && !l.contains(&veth(&b)), "{l}");
    // Their addresses are free again: the pool hands them out anew once it
    // wraps; here the next containers only must not collide, and the pool
    // must not still hold the removed ones.
    let pool = std::fs::read_to_string(e.root().join("networks/bridge/ipam/ipam.json")).unwrap();
    assert!(!pool.contains(&a) && !pool.contains(&b), "{pool}");
}

#[test]
fn stop_deletes_the_veth_and_start_makes_it_again() {
    let n = NetEnv::new();
    let e = n.e();
    let a = e.ok(&["run", "-d", "--network", "bridge", "busybox", "sleep", "60"]);
    let a = a.trim().to_string();
    let ip = e.inspect(&a, "{{.NetworkSettings.IPAddress}}");
    assert!(links().contains(&veth(&a)));
    e.ok(&["stop", "-t", "0", &a]);
    assert!(!links().contains(&veth(&a)), "{}", links());
    e.ok(&["start", &a]);
    assert!(links().contains(&veth(&a)));
    let out = e.ok(&["exec", &a, "ip", "-4", "addr", "show", "eth0"]);
    assert!(out.contains(&format!("inet {ip}/")), "{out}");
    e.ok(&["rm", "-f", &a]);
    assert!(!links().contains(&veth(&a)));
}

#[test]
fn concurrent_runs_get_distinct_addresses_released_at_remove() {
    let n = NetEnv::new();
    let e = n.e();
    let children: Vec<_> = (0..10)
        .map(|_| {
            e.cmd(&["run", "-d", "--network", "bridge", "busybox", "sleep", "60"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
        ids.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    let ips: HashSet<String> = ids
        .iter()
        .map(|id| e.inspect(id, "{{.NetworkSettings.IPAddress}}"))
        .collect();
    assert_eq!(ips.len(), 10, "{ips:?}");
    for ip in &ips {
        assert!(n.in_subnet(ip.parse().unwrap()), "{ip}");
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    e.ok(&args);
    let l = links();
    for id in &ids {
        assert!(!l.contains(&veth(id)), "{l}");
    }
    let pool = std::fs::read_to_string(e.root().join("networks/bridge/ipam/ipam.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&pool).unwrap();
    let left = match v["allocations"].as_object() {
        Some(m) => m.len(),
        None => 0,
    };
    assert_eq!(left, 0, "{pool}");
}

#[test]
fn unknown_network_is_docker_s_error_bridge_is_the_default_and_none_has_only_lo() {
    let n = NetEnv::new();
    let e = n.e();
    let o = e.run(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("network nosuchnet not found"), "{o}");
    // As in Docker, a container without --network is on `bridge`.
    let out = e.ok(&["run", "--rm", "busybox", "ip", "-4", "addr", "show", "eth0"]);
    let ip: Ipv4Addr = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("inet "))
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address on eth0: {out}"))
        .parse()
        .unwrap();
    assert!(n.in_subnet(ip), "{ip}");
    // `none`: loopback only, and up.
    let out = e.ok(&["run", "--rm", "--network", "none", "busybox", "ip", "link"]);
    let ifaces: Vec<&str> = out
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(ifaces.len(), 1, "{out}");
    assert!(
        ifaces[0].contains(": lo:") && ifaces[0].contains("UP"),
        "{out}"
    );
    e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ping",
        "-c1",
        "-W1",
        "127.0.0.1",
    ]);
}

// ---------------------------------------------------------------------------
// Published ports
// ---------------------------------------------------------------------------

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET path` from `addr`, retried for up to 5 s while the
/// server starts; None if it never answered.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(
            &addr.parse().unwrap(),
            std::time::Duration::from_secs(1),
        ) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
            let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = String::new();
                if s.read_to_string(&mut buf).is_ok() && buf.starts_with("HTTP/") {
                    return buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// `httpd` serving `body` at `/`.
const HTTPD: &str =
    "mkdir -p /www && echo \"$BODY\" > /www/index.html && exec httpd -f -p 80 -h /www";

fn nft_table_named(t: &serde_json::Value) -> String {
    let o = Command::new("nft")
        .args(["list", "table", "ip", t.as_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn nft_table(e: &common::Env) -> String {
    let net: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.root().join("networks/bridge/network.json")).unwrap(),
    )
    .unwrap();
    let t = net["table"].as_str().unwrap().to_string();
    let o = Command::new("nft")
        .args(["list", "table", "ip", &t])
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn published_port_on_loopback_reaches_httpd_and_is_shown() {
    let n = NetEnv::new();
    let e = n.e();
    let (p1, p2) = (free_port(), free_port());
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "BODY=hello-barge",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let id = id.trim().to_string();
    // Through the userspace proxy (loopback).
    assert_eq!(
        http_get(&format!("127.0.0.1:{p1}"), "/").as_deref(),
        Some("hello-barge\n")
    );
    // Published on every address: loopback through the proxy, and an
    // address of the host on this test's own bridge through nftables DNAT.
    assert_eq!(
        http_get(&format!("127.0.0.1:{p2}"), "/").as_deref(),
        Some("hello-barge\n")
    );
    let gw = n.network()["gateway"].as_str().unwrap().to_string();
    assert_eq!(
        http_get(&format!("{gw}:{p2}"), "/").as_deref(),
        Some("hello-barge\n")
    );
    let table = nft_table(e);
    assert!(table.contains(&format!("barge:port:{id}")), "{table}");
    assert!(table.contains(&format!("dport {p2}")), "{table}");
    // Containers reach it through the host too: from the same bridge
    // (`host-gateway`) and from another network, both through the proxy.
    let out = e.ok(&[
        "run",
        "--rm",
        "--add-host",
        "hostgw:host-gateway",
        "busybox",
        "wget",
        "-qO-",
        &format!("http://hostgw:{p2}/"),
    ]);
    assert_eq!(out, "hello-barge\n");
    let other = unique("other");
    e.ok(&["network", "create", &other]);
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        &other,
        "busybox",
        "wget",
        "-qO-",
        &format!("http://{gw}:{p2}/"),
    ]);
    assert_eq!(out, "hello-barge\n");
    e.ok(&["network", "rm", &other]);
    // port, ps and inspect show both.
    let port = e.ok(&["port", "web"]);
    assert!(
        port.contains(&format!("80/tcp -> 127.0.0.1:{p1}")),
        "{port}"
    );
    assert!(port.contains(&format!("80/tcp -> 0.0.0.0:{p2}")), "{port}");
    assert_eq!(e.ok(&["port", "web", "80/tcp"]).lines().count(), 2,);
    let o = e.run(&["port", "web", "81"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("No public port '81/tcp' published for web"),
        "{o}"
    );
    let ps = e.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{p1}->80/tcp")), "{ps}");
    assert_eq!(
        e.inspect(
            "web",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}"
        ),
        p1.to_string()
    );

    // The port is taken: Docker's error, and nothing is left running or
    // half-configured by the failed container.
    let before = link_names();
    let o = e.run(&[
        "run",
        "--rm",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o}");
    assert!(
        o.stderr.contains(&format!(
            "Bind for 127.0.0.1:{p1} failed: port is already allocated"
        )),
        "{o}"
    );
    assert_eq!(e.ids().len(), 1);
    assert_eq!(link_names(), before);

    // Removing the container removes its rules, veth and proxy.
    e.ok(&["rm", "-f", "web"]);
    let table = nft_table(e);
    assert!(!table.contains("barge:port:"), "{table}");
    assert!(!links().contains(&veth(&id)));
    std::net::TcpListener::bind(("127.0.0.1", p1)).expect("the port is free again");
}

#[test]
fn random_ports_publish_all_and_bad_publish_specs() {
    let n = NetEnv::new();
    let e = n.e();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rnd",
        "-e",
        "BODY=rnd",
        "-p",
        "127.0.0.1::80",
        "--expose",
        "81",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let hp = e.ok(&["port", "rnd", "80"]);
    let addr = hp.trim().to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    assert_eq!(http_get(&addr, "/").as_deref(), Some("rnd\n"));
    // The exposed, unpublished port is listed without a host side.
    let ps = e.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains("81/tcp"), "{ps}");

    e.ok(&[
        "run", "-d", "--name", "all", "-e", "BODY=all", "-P", "--expose", "80", "busybox", "sh",
        "-c", HTTPD,
    ]);
    let hp = e.ok(&["port", "all", "80"]);
    let port = hp.trim().rsplit(':').next().unwrap().to_string();
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}"), "/").as_deref(),
        Some("all\n")
    );

    for (spec, want) in [
        ("80x", "invalid containerPort: 80x"),
        ("99999:80", "invalid hostPort: 99999"),
        ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ("80/icmp", "invalid proto: icmp"),
    ] {
        let o = e.run(&["run", "--rm", "-p", spec, "busybox", "true"]);
        assert_eq!(o.code, 125, "{spec}: {o}");
        assert!(o.stderr.contains(want), "{spec}: {o}");
    }
    assert_eq!(e.ids().len(), 2);
}

// ---------------------------------------------------------------------------
// User-defined networks
// ---------------------------------------------------------------------------

/// A user-defined network of the test's root, by a unique name.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand_hex())
}

fn rand_hex() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t:08x}")
}

#[test]
fn user_network_resolves_names_and_aliases_and_forwards_the_rest() {
    let n = NetEnv::new();
    let e = n.e();
    let net = unique("front");
    let id = e.ok(&["network", "create", "--label", "team=a", &net]);
    assert_eq!(id.trim().len(), 64);
    let bridge = format!("bgn{}", &id.trim()[..12]);
    assert!(links().contains(&bridge));
    e.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        &net,
        "--network-alias",
        "www",
        "-e",
        "BODY=by-name",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        &net,
        "busybox",
        "sleep",
        "60",
    ]);
    let srv_ip = e.inspect(
        "srv",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    );
    // nslookup by name and by alias, from the embedded DNS at 127.0.0.11.
    for name in ["srv", "www"] {
        let out = e.ok(&["exec", "cli", "nslookup", name]);
        assert!(out.contains("127.0.0.11"), "{out}");
        assert!(out.contains(&srv_ip), "{name}: {out}");
    }
    // wget by name and alias.
    for name in ["srv", "www"] {
        let out = e.ok(&["exec", "cli", "wget", "-qO-", &format!("http://{name}/")]);
        assert_eq!(out, "by-name\n");
    }
    let resolv = e.ok(&["exec", "cli", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("nameserver 127.0.0.11") && resolv.contains("ndots:0"),
        "{resolv}"
    );
    // An unknown name is not ours: forwarded, and not answered by us.
    let o = e.run(&["exec", "cli", "nslookup", "no-such-container-here.invalid"]);
    assert!(!o.stdout.contains(&srv_ip), "{o}");
    // A container started on `bridge` and connected later gets the
    // embedded DNS at once (its resolv.conf rewritten in place).
    e.ok(&["run", "-d", "--name", "late", "busybox", "sleep", "60"]);
    let before = e.ok(&["exec", "late", "cat", "/etc/resolv.conf"]);
    assert!(!before.contains("127.0.0.11"), "{before}");
    e.ok(&["network", "connect", &net, "late"]);
    let after = e.ok(&["exec", "late", "cat", "/etc/resolv.conf"]);
    assert!(after.contains("nameserver 127.0.0.11"), "{after}");
    let out = e.ok(&["exec", "late", "nslookup", "www"]);
    assert!(out.contains(&srv_ip), "{out}");
    let ps = e.ok(&[
        "ps",
        "--filter",
        &format!("network={net}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(ps.lines().count(), 3, "{ps}");
    e.ok(&["network", "disconnect", &net, "late"]);
    let back = e.ok(&["exec", "late", "cat", "/etc/resolv.conf"]);
    assert!(!back.contains("127.0.0.11"), "{back}");
    e.ok(&["rm", "-f", "late"]);
    // A stopped container no longer resolves.
    e.ok(&["stop", "-t", "0", "srv"]);
    let o = e.run(&["exec", "cli", "nslookup", "srv"]);
    assert!(!o.stdout.contains(&srv_ip), "{o}");

    // inspect, ls, filters.
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["network", "inspect", &net])).unwrap();
    assert_eq!(v[0]["Name"], net.as_str());
    assert_eq!(v[0]["Driver"], "bridge");
    assert_eq!(v[0]["Labels"]["team"], "a");
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 2);
    let ls = e.ok(&[
        "network",
        "ls",
        "--filter",
        "label=team=a",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls.trim(), net);
    let ls = e.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["bridge bridge", "host host", "none null"] {
        assert!(ls.contains(want), "{ls}");
    }
    // In use: refused, and nothing changes.
    let o = e.run(&["network", "rm", &net]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("has active endpoints"), "{o}");
    assert!(links().contains(&bridge));
    e.ok(&["rm", "-f", "srv", "cli"]);
    assert_eq!(e.ok(&["network", "rm", &net]).trim(), net);
    assert!(!links().contains(&bridge), "{}", links());
    let table = nft_table(e);
    assert!(!table.contains(&bridge), "{table}");
}

#[test]
fn networks_are_isolated_and_internal_ones_have_no_way_out() {
    let n = NetEnv::new();
    let e = n.e();
    let (a, b, inner) = (unique("na"), unique("nb"), unique("ni"));
    e.ok(&["network", "create", &a]);
    e.ok(&["network", "create", &b]);
    e.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.213.7.0/24",
        &inner,
    ]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "on-a",
        "--network",
        &a,
        "busybox",
        "sleep",
        "60",
    ]);
    let ip_a = e.inspect(
        "on-a",
        &format!("{{{{(index .NetworkSettings.Networks \"{a}\").IPAddress}}}}"),
    );
    // Same network: reachable; other network: not.
    e.ok(&[
        "run",
        "--rm",
        "--network",
        &a,
        "busybox",
        "ping",
        "-c1",
        "-W2",
        &ip_a,
    ]);
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        &b,
        "busybox",
        "ping",
        "-c1",
        "-W2",
        &ip_a,
    ]);
    assert_ne!(o.code, 0, "a container on {b} reached {ip_a} on {a}: {o}");
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        &b,
        "busybox",
        "nslookup",
        "on-a",
    ]);
    assert!(!o.stdout.contains(&ip_a), "{o}");
    // Internal: an address in the given subnet, no default route, and the
    // host's other networks are unreachable.
    let out = e.ok(&["run", "--rm", "--network", &inner, "busybox", "ip", "route"]);
    assert!(!out.contains("default"), "{out}");
    assert!(out.contains("10.213.7.0/24"), "{out}");
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        &inner,
        "busybox",
        "ping",
        "-c1",
        "-W2",
        &ip_a,
    ]);
    assert_ne!(o.code, 0, "{o}");
    // connect puts a running container on a second network, disconnect
    // takes it off.
    e.ok(&["network", "connect", &b, "on-a"]);
    let out = e.ok(&["exec", "on-a", "ip", "-4", "addr", "show", "eth1"]);
    let ip_b = e.inspect(
        "on-a",
        &format!("{{{{(index .NetworkSettings.Networks \"{b}\").IPAddress}}}}"),
    );
    assert!(out.contains(&format!("inet {ip_b}/")), "{out}");
    e.ok(&[
        "run",
        "--rm",
        "--network",
        &b,
        "busybox",
        "ping",
        "-c1",
        "-W2",
        &ip_b,
    ]);
    let o = e.run(&["network", "connect", &b, "on-a"]);
    assert!(o.stderr.contains("already exists in network"), "{o}");
    e.ok(&["network", "disconnect", &b, "on-a"]);
    let o = e.run(&["exec", "on-a", "ip", "link", "show", "eth1"]);
    assert_ne!(o.code, 0, "{o}");
    let o = e.run(&["network", "disconnect", &b, "on-a"]);
    assert!(o.stderr.contains("is not connected to network"), "{o}");
    e.ok(&["rm", "-f", "on-a"]);
    let bridges: Vec<String> = [&a, &b, &inner]
        .iter()
        .map(|net| {
            e.ok(&[
                "network",
                "inspect",
                "-f",
                "{{index .Options \"com.docker.network.bridge.name\"}}",
                net,
            ])
            .trim()
            .to_string()
        })
        .collect();
    let gone = e.ok(&["network", "prune", "-f"]);
    for net in [&a, &b, &inner] {
        assert!(gone.contains(net.as_str()), "{gone}");
    }
    let l = links();
    for b in &bridges {
        assert!(b.starts_with("bgn") && !l.contains(b.as_str()), "{b}: {l}");
    }
}

#[test]
fn thirty_concurrent_runs_on_one_network_get_distinct_addresses() {
    let n = NetEnv::new();
    let e = n.e();
    let net = unique("many");
    e.ok(&["network", "create", "--subnet", "10.214.0.0/24", &net]);
    let children: Vec<_> = (0..30)
        .map(|_| {
            e.cmd(&["run", "-d", "--network", &net, "busybox", "sleep", "60"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
        ids.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    let tmpl = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
    let ips: HashSet<String> = ids.iter().map(|id| e.inspect(id, &tmpl)).collect();
    assert_eq!(ips.len(), 30, "{ips:?}");
    for ip in &ips {
        assert!(ip.starts_with("10.214.0."), "{ip}");
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    e.ok(&args);
    let l = links();
    for id in &ids {
        assert!(!l.contains(&veth(id)), "{l}");
    }
    e.ok(&["network", "rm", &net]);
}

#[test]
fn network_bad_input_is_refused_and_leaves_nothing() {
    let n = NetEnv::new();
    let e = n.e();
    let net = unique("bad");
    e.ok(&["network", "create", "--subnet", "10.215.0.0/16", &net]);
    let before = link_names();
    let nets_before = e.ok(&["network", "ls", "-q"]);
    for (args, want) in [
        (
            vec!["network", "create", "--subnet", "10.215.3.0/24", "other-x"],
            "Pool overlaps with other one on this address space",
        ),
        (vec!["network", "create", &net], "already exists"),
        (vec!["network", "create", "bridge"], "already exists"),
        (vec!["network", "create", "a/b"], "invalid network name"),
        (
            vec!["network", "create", "--subnet", "10.216.0.0/33", "x2"],
            "invalid argument",
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.217.0.0/24",
                "--gateway",
                "10.9.9.9",
                "x3",
            ],
            "invalid gateway",
        ),
        (
            vec!["network", "rm", "bridge"],
            "pre-defined network and cannot be removed",
        ),
        (
            vec!["network", "rm", "nosuch-net"],
            "network nosuch-net not found",
        ),
        (
            vec!["network", "connect", "nosuch-net", "x"],
            "No such container: x",
        ),
    ] {
        let o = e.run(&args);
        assert_ne!(o.code, 0, "{args:?}: {o}");
        assert!(o.stderr.contains(want), "{args:?}: {o}");
    }
    e.ok(&["create", "--name", "idle", "busybox", "true"]);
    let o = e.run(&["network", "connect", "nosuch-net", "idle"]);
    assert!(o.stderr.contains("network nosuch-net not found"), "{o}");
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--ip",
        "10.99.0.5",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("not in subnet"), "{o}");
    let o = e.run(&["run", "--rm", "--ip", "172.17.0.50", "busybox", "true"]);
    assert!(o.stderr.contains("user defined networks only"), "{o}");
    assert_eq!(link_names(), before);
    assert_eq!(e.ok(&["network", "ls", "-q"]), nets_before);
    // --ip inside the subnet is honoured; taken twice is refused.
    let out = e.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        &net,
        "--ip",
        "10.215.0.77",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(!out.trim().is_empty());
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--ip",
        "10.215.0.77",
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("already in use"), "{o}");
    let ip = e.ok(&["exec", "fixed", "ip", "-4", "addr", "show", "eth0"]);
    assert!(ip.contains("inet 10.215.0.77/16"), "{ip}");
    e.ok(&["rm", "-f", "fixed", "idle"]);
    e.ok(&["network", "rm", &net]);
}

#[test]
fn container_mode_hosts_dns_and_add_host() {
    let n = NetEnv::new();
    let e = n.e();
    e.ok(&["run", "-d", "--name", "base", "busybox", "sleep", "60"]);
    let ip = e.inspect("base", "{{.NetworkSettings.IPAddress}}");
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "busybox",
        "ip",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains(&format!("inet {ip}/")), "{out}");
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "-p",
        "80:80",
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("conflicting options"), "{o}");
    let out = e.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--hostname",
        "web1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf; hostname",
    ]);
    let gw = n.network()["gateway"].as_str().unwrap().to_string();
    assert!(out.contains("10.1.2.3\tdb"), "{out}");
    assert!(out.contains(&format!("{gw}\tgw")), "{out}");
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.contains("search example.test"), "{out}");
    assert!(out.lines().last() == Some("web1"), "{out}");
    let o = e.run(&["run", "--rm", "--add-host", "nocolon", "busybox", "true"]);
    assert!(o.stderr.contains("bad format for add-host"), "{o}");
}

#[test]
fn a_killed_monitor_leaves_nothing_after_rm() {
    let n = NetEnv::new();
    let e = n.e();
    let p = free_port();
    let id = e.ok(&[
        "run",
        "-d",
        "-p",
        &format!("{p}:80"),
        "busybox",
        "sleep",
        "60",
    ]);
    let id = id.trim().to_string();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = state["MonitorPid"].as_i64().unwrap();
    assert!(monitor > 0);
    // Our own child process, by the pid the engine recorded for it.
    Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["rm", "-f", &id]);
    let table = nft_table(e);
    assert!(!table.contains("barge:port:"), "{table}");
    assert!(!links().contains(&veth(&id)), "{}", links());
    let pool = std::fs::read_to_string(e.root().join("networks/bridge/ipam/ipam.json")).unwrap();
    assert!(!pool.contains(&id), "{pool}");
    std::net::TcpListener::bind(("0.0.0.0", p)).expect("the port is free again");
}

#[test]
fn system_prune_removes_stopped_containers_and_unused_networks() {
    let n = NetEnv::new();
    let e = n.e();
    let (used, unused) = (unique("used"), unique("unused"));
    e.ok(&["network", "create", &used]);
    e.ok(&["network", "create", &unused]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--network",
        &used,
        "busybox",
        "sleep",
        "60",
    ]);
    e.ok(&[
        "create",
        "--name",
        "stopped",
        "--network",
        &used,
        "busybox",
        "true",
    ]);
    let o = e.run(&["system", "prune"]);
    assert_ne!(
        o.code, 0,
        "prune without -f and no terminal must refuse: {o}"
    );
    let out = e.ok(&["system", "prune", "-f"]);
    assert!(
        out.contains("Deleted Networks:") && out.contains(&unused),
        "{out}"
    );
    assert!(!out.contains(&used), "{out}");
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "keeper");
    let nets = e.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.contains(&used) && !nets.contains(&unused), "{nets}");
    e.ok(&["rm", "-f", "keeper"]);
    e.ok(&["network", "rm", &used]);
}
