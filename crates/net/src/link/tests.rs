use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::Command;

use serde_json::Value;

use super::*;

// ---------------------------------------------------------------------------
// Pure functions and the fake.

#[test]
fn veth_names_and_macs() {
    assert_eq!(host_veth_name("0123456789abcdef"), "brg0123456789ab");
    assert_eq!(host_veth_name("ABCDEF0123"), "brgabcdef0123");
    assert!(host_veth_name(&"f".repeat(64)).len() < IFNAMSIZ);
    assert!(check_link_name(&host_veth_name(&"a".repeat(64))).is_ok());
    assert_eq!(
        mac_for(Ipv4Addr::new(172, 17, 0, 2)),
        [0x02, 0x42, 172, 17, 0, 2]
    );
}

#[test]
fn link_names_are_checked() {
    assert!(check_link_name("barge0").is_ok());
    assert!(check_link_name("a23456789012345").is_ok());
    for bad in ["", "a234567890123456", ".", "..", "a/b", "a:b", "a b"] {
        let err = check_link_name(bad).unwrap_err();
        assert!(err.to_string().contains("invalid interface name"), "{err}");
    }
}

#[test]
fn fake_bridges() {
    let f = FakeLinks::new();
    let a = (Ipv4Addr::new(10, 1, 2, 1), 24);
    f.ensure_bridge("br0", Some(a), Some(1400)).unwrap();
    f.ensure_bridge("br0", Some(a), None).unwrap();
    let st = f.state();
    let br = &st.bridges["br0"];
    assert_eq!(br.addrs, vec![a]);
    assert_eq!(br.mtu, Some(1400));
    assert!(br.up);
    assert!(f.link_exists("br0").unwrap());
    assert!(f.delete_link("br0").unwrap());
    assert!(!f.delete_link("br0").unwrap());
    assert!(!f.link_exists("br0").unwrap());
    assert!(f.ensure_bridge("much-too-long-name", None, None).is_err());
    assert_eq!(
        f.state().calls[..2],
        [
            "ensure_bridge br0".to_string(),
            "ensure_bridge br0".to_string()
        ]
    );
}

#[test]
fn fake_attach() {
    let f = FakeLinks::new();
    let ns = Path::new("/proc/42/ns/net");
    let addr = (Ipv4Addr::new(10, 1, 2, 5), 24);
    let gw = Some(Ipv4Addr::new(10, 1, 2, 1));
    let err = f
        .attach("br0", "veth1", ns, "eth0", addr, gw, None)
        .unwrap_err();
    assert!(
        err.to_string().contains("bridge br0 does not exist"),
        "{err}"
    );
    assert!(f.state().veths.is_empty());

    f.ensure_bridge("br0", None, None).unwrap();
    let mac = Some(mac_for(addr.0));
    f.attach("br0", "veth1", ns, "eth0", addr, gw, mac).unwrap();
    let st = f.state();
    let v = &st.veths["veth1"];
    assert_eq!(
        (
            v.bridge.as_str(),
            v.ifname.as_str(),
            v.addr,
            v.gateway,
            v.mac
        ),
        ("br0", "eth0", addr, gw, mac)
    );
    assert_eq!(v.netns, ns);
    assert!(st.lo_up.contains(ns));
    assert!(f.link_exists("veth1").unwrap());

    // The same host name, or eth0 twice in one namespace, clash.
    let other = Path::new("/proc/43/ns/net");
    let err = f
        .attach("br0", "veth1", other, "eth0", addr, gw, None)
        .unwrap_err();
    assert!(err.to_string().contains("File exists"), "{err}");
    assert!(f
        .attach("br0", "veth2", ns, "eth0", addr, gw, None)
        .is_err());
    f.attach("br0", "veth2", other, "eth0", addr, None, None)
        .unwrap();
    assert_eq!(f.state().veths["veth2"].gateway, None);

    assert!(f.delete_link("veth1").unwrap());
    assert!(!f.state().veths.contains_key("veth1"));

    f.lo_up(Path::new("/run/netns/x")).unwrap();
    assert!(f.state().lo_up.contains(Path::new("/run/netns/x")));
}

#[test]
fn fake_injected_failure() {
    let f = FakeLinks::new();
    f.fail("ensure_bridge");
    let err = f.ensure_bridge("br0", None, None).unwrap_err();
    assert!(err.to_string().contains("ensure_bridge br0"), "{err}");
    assert!(f.state().bridges.is_empty());
    assert_eq!(f.state().calls, ["ensure_bridge br0"]);
}

// ---------------------------------------------------------------------------
// The kernel. These need root; they create links and namespaces with unique
// names and remove them (and only them) at the end, even on failure.

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"))
}

fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Removes what a test created, in reverse order.
#[derive(Default)]
struct Guard {
    links: Vec<String>,
    netns: Vec<String>,
}

impl Guard {
    fn netns(&mut self) -> String {
        let name = format!("barge-t-{:08x}", random() as u32);
        let out = run(&["ip", "netns", "add", &name]);
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        self.netns.push(name.clone());
        name
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for ns in self.netns.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        for link in self.links.iter().rev() {
            if Netlink.link_exists(link).unwrap_or(false) {
                let _ = run(&["ip", "link", "del", link]);
            }
        }
    }
}

fn host_link_absent(name: &str) -> bool {
    !run(&["ip", "link", "show", name]).status.success()
}

fn addrs_of(entry: &Value) -> Vec<(String, u64)> {
    entry["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| {
            (
                a["local"].as_str().unwrap().to_string(),
                a["prefixlen"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn is_up(entry: &Value) -> bool {
    entry["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

#[test]
fn bridge_lifecycle() {
    need_root!();
    let mut g = Guard::default();
    let name = format!("barge-t{:06x}", random() as u32 & 0xff_ffff);
    g.links.push(name.clone());
    let third = (random() % 250) as u8 + 1;
    let addr = (Ipv4Addr::new(10, 200, third, 1), 24);

    assert!(!Netlink.link_exists(&name).unwrap());
    Netlink
        .ensure_bridge(&name, Some(addr), Some(1400))
        .unwrap();
    Netlink
        .ensure_bridge(&name, Some(addr), Some(1400))
        .unwrap();
    assert!(Netlink.link_exists(&name).unwrap());

    let v = json(&["ip", "-j", "-d", "addr", "show", "dev", &name]);
    let e = &v[0];
    assert!(is_up(e), "{e}");
    assert_eq!(e["mtu"], 1400);
    assert_eq!(e["linkinfo"]["info_kind"], "bridge");
    assert_eq!(addrs_of(e), vec![(addr.0.to_string(), 24)]);

    assert!(Netlink.delete_link(&name).unwrap());
    assert!(!Netlink.delete_link(&name).unwrap());
    assert!(host_link_absent(&name));
}

#[test]
fn attach_and_ping() {
    need_root!();
    let mut g = Guard::default();
    let r = random();
    let br = format!("barge-t{:06x}", r as u32 & 0xff_ffff);
    let third = ((r >> 32) % 250) as u8 + 1;
    let gw = Ipv4Addr::new(10, 200, third, 1);
    let host1 = format!("vbt{:06x}a", r as u32 & 0xff_ffff);
    let host2 = format!("vbt{:06x}b", r as u32 & 0xff_ffff);
    g.links.extend([br.clone(), host1.clone(), host2.clone()]);
    let ns1 = g.netns();
    let ns2 = g.netns();
    Netlink.ensure_bridge(&br, Some((gw, 24)), None).unwrap();

    let ip1 = Ipv4Addr::new(10, 200, third, 2);
    let path1 = PathBuf::from(format!("/run/netns/{ns1}"));
    Netlink
        .attach(
            &br,
            &host1,
            &path1,
            "eth0",
            (ip1, 24),
            Some(gw),
            Some(mac_for(ip1)),
        )
        .unwrap();

    let addrs = json(&["ip", "netns", "exec", &ns1, "ip", "-j", "addr"]);
    let links = addrs.as_array().unwrap();
    let eth0 = links.iter().find(|l| l["ifname"] == "eth0").unwrap();
    assert!(is_up(eth0), "{eth0}");
    assert_eq!(addrs_of(eth0), vec![(ip1.to_string(), 24)]);
    assert_eq!(
        eth0["address"],
        "02:42:0a:c8:".to_string() + &format!("{third:02x}:02")
    );
    let lo = links.iter().find(|l| l["ifname"] == "lo").unwrap();
    assert!(is_up(lo), "{lo}");

    let routes = json(&["ip", "netns", "exec", &ns1, "ip", "-j", "route"]);
    let default = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == "default")
        .expect("a default route");
    assert_eq!(default["gateway"], gw.to_string());
    assert_eq!(default["dev"], "eth0");

    let enslaved = json(&["ip", "-j", "link", "show", "master", &br]);
    let host = enslaved
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ifname"] == host1.as_str())
        .expect("host veth on the bridge");
    assert!(is_up(host), "{host}");

    let gws = gw.to_string();
    let ping: &[&str] = if Command::new("ping").arg("-V").output().is_ok() {
        &["ping", "-c1", "-W1", &gws]
    } else {
        &["busybox", "ping", "-c1", "-W1", &gws]
    };
    let mut cmd = vec!["ip", "netns", "exec", &ns1];
    cmd.extend_from_slice(ping);
    // The first ping may race the bridge port's forwarding state.
    let ok = (0..5).any(|_| {
        let out = run(&cmd);
        if !out.status.success() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        out.status.success()
    });
    assert!(ok, "ping {gw} from {ns1} failed");

    // Internal network: no default route.
    let ip2 = Ipv4Addr::new(10, 200, third, 3);
    let path2 = PathBuf::from(format!("/run/netns/{ns2}"));
    Netlink
        .attach(&br, &host2, &path2, "eth0", (ip2, 24), None, None)
        .unwrap();
    let routes = json(&["ip", "netns", "exec", &ns2, "ip", "-j", "route"]);
    assert!(
        !routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default"),
        "{routes}"
    );
    let addrs = json(&[
        "ip", "netns", "exec", &ns2, "ip", "-j", "addr", "show", "dev", "eth0",
    ]);
    assert_eq!(addrs_of(&addrs[0]), vec![(ip2.to_string(), 24)]);

    // A second eth0 in the same namespace is refused and leaves nothing.
    let host3 = format!("vbt{:06x}c", r as u32 & 0xff_ffff);
    g.links.push(host3.clone());
    let err = Netlink
        .attach(&br, &host3, &path2, "eth0", (ip2, 24), None, None)
        .unwrap_err();
    assert!(err.to_string().contains(&host3), "{err}");
    assert!(host_link_absent(&host3));

    // lo_up on a fresh namespace.
    let ns3 = g.netns();
    Netlink
        .lo_up(Path::new(&format!("/run/netns/{ns3}")))
        .unwrap();
    let lo = json(&[
        "ip", "netns", "exec", &ns3, "ip", "-j", "addr", "show", "dev", "lo",
    ]);
    assert!(is_up(&lo[0]), "{lo}");
}

#[test]
fn attach_errors_leave_nothing() {
    need_root!();
    let mut g = Guard::default();
    let r = random();
    let br = format!("barge-t{:06x}", r as u32 & 0xff_ffff);
    let host = format!("vbt{:06x}e", r as u32 & 0xff_ffff);
    g.links.extend([br.clone(), host.clone()]);
    let ns = g.netns();
    let path = PathBuf::from(format!("/run/netns/{ns}"));
    let ip = Ipv4Addr::new(10, 200, ((r >> 32) % 250) as u8 + 1, 2);

    // Missing bridge.
    let err = Netlink
        .attach(&br, &host, &path, "eth0", (ip, 24), None, None)
        .unwrap_err();
    assert!(matches!(err, NetError::NoBridge { .. }), "{err}");
    assert!(err.to_string().contains(&br), "{err}");
    assert!(host_link_absent(&host));

    Netlink.ensure_bridge(&br, None, None).unwrap();

    // Missing namespace.
    let err = Netlink
        .attach(
            &br,
            &host,
            Path::new("/run/netns/barge-t-none"),
            "eth0",
            (ip, 24),
            None,
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("barge-t-none"), "{err}");
    assert!(host_link_absent(&host));

    // A gateway that is not on the link fails after the veth exists: the
    // pair is removed again.
    let err = Netlink
        .attach(
            &br,
            &host,
            &path,
            "eth0",
            (ip, 24),
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            None,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("default route via 192.0.2.1"),
        "{err}"
    );
    assert!(host_link_absent(&host));
    let links = json(&["ip", "netns", "exec", &ns, "ip", "-j", "link"]);
    assert!(
        !links
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["ifname"] == "eth0"),
        "{links}"
    );

    // Deleting a link that is not there.
    assert!(!Netlink.delete_link(&host).unwrap());
}
