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
}

impl NetEnv {
    fn new() -> NetEnv {
        NetEnv {
            env: Some(Env::new()),
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
        let net = self
            .env
            .as_ref()
            .and_then(|e| std::fs::read(e.root().join("networks/bridge/network.json")).ok())
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok());
        drop(self.env.take());
        if let Some(n) = net {
            if let Some(b) = n["bridge"].as_str() {
                let _ = Command::new("ip").args(["link", "delete", b]).status();
            }
            if let Some(t) = n["table"].as_str() {
                let _ = Command::new("nft")
                    .args(["delete", "table", "ip", t])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

fn links() -> String {
    let o = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
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
    // The bridge is this root's, never the real barge0.
    let bridge = n.network()["bridge"].as_str().unwrap().to_string();
    assert_ne!(bridge, "barge0");
    assert!(links().contains(&bridge));
    assert!(e.ids().is_empty());
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
fn unknown_network_is_docker_s_error_and_none_stays_the_default() {
    let n = NetEnv::new();
    let e = n.e();
    let o = e.run(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("network nosuchnet not found"), "{o}");
    let out = e.ok(&["run", "--rm", "busybox", "ip", "link"]);
    assert!(!out.contains("eth0"), "{out}");
    // No network was made for containers without one.
    assert!(!e.root().join("networks/bridge").exists());
}
