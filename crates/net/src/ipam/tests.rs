use super::*;

fn sn(s: &str) -> Subnet {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn pool(subnet: &str) -> (tempfile::TempDir, Pool) {
    let dir = tempfile::tempdir().unwrap();
    let p = Pool::create(dir.path(), sn(subnet), None, None).unwrap();
    (dir, p)
}

// ------------------------------------------------------------- parsing

#[test]
fn parses_cidr_and_displays_it_back() {
    let s = sn("172.18.0.0/16");
    assert_eq!(s.net, ip("172.18.0.0"));
    assert_eq!(s.prefix, 16);
    assert_eq!(s.to_string(), "172.18.0.0/16");
    assert_eq!(sn("0.0.0.0/0").size(), 1 << 32);
    assert_eq!(sn("10.1.2.3/32").size(), 1);
}

#[test]
fn rejects_malformed_cidrs_naming_the_input() {
    for bad in [
        "",
        "10.0.0.0",
        "10.0.0/8",
        "10.0.0.0/",
        "10.0.0.0/x",
        "10.0.0.0/+8",
        "10.0.0.0/-1",
        "10.0.0.0/8/8",
        "fe80::/64",
        "256.0.0.0/8",
        " 10.0.0.0/8",
    ] {
        let err = bad.parse::<Subnet>().unwrap_err();
        assert!(
            matches!(&err, NetError::InvalidSubnet { input, .. } if input == bad),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn rejects_prefix_over_32() {
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/255",
        "10.0.0.0/256",
        "10.0.0.0/999",
    ] {
        let err = bad.parse::<Subnet>().unwrap_err();
        assert!(err.to_string().contains("0 to 32"), "{bad}: {err}");
    }
    assert!(Subnet::new(ip("10.0.0.0"), 33).is_err());
}

#[test]
fn rejects_host_bits_set_and_suggests_the_network() {
    let err = "172.18.0.1/16".parse::<Subnet>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"172.18.0.1/16\""), "{msg}");
    assert!(msg.contains("host bits"), "{msg}");
    assert!(msg.contains("172.18.0.0/16"), "{msg}");
    assert!(Subnet::new(ip("10.0.0.4"), 29).is_err());
    assert!(Subnet::new(ip("10.0.0.8"), 29).is_ok());
}

#[test]
fn serializes_as_a_string_and_checks_on_the_way_back() {
    let s = sn("10.9.0.0/16");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"10.9.0.0/16\"");
    assert_eq!(
        serde_json::from_str::<Subnet>("\"10.9.0.0/16\"").unwrap(),
        s
    );
    assert!(serde_json::from_str::<Subnet>("\"10.9.0.1/16\"").is_err());
}

// ------------------------------------------------------- subnet geometry

#[test]
fn gateway_broadcast_and_hosts_of_a_slash_30() {
    let s = sn("10.0.0.0/30");
    assert_eq!(s.gateway(), Some(ip("10.0.0.1")));
    assert_eq!(s.broadcast(), ip("10.0.0.3"));
    assert_eq!(
        s.hosts().collect::<Vec<_>>(),
        [ip("10.0.0.1"), ip("10.0.0.2")]
    );
    assert_eq!(sn("172.18.0.0/16").broadcast(), ip("172.18.255.255"));
    assert_eq!(sn("172.18.0.0/16").hosts().count(), 65534);
}

#[test]
fn slash_31_and_32_have_no_hosts_and_make_no_pool() {
    for s in ["10.0.0.0/31", "10.0.0.7/32", "255.255.255.255/32"] {
        let s = sn(s);
        assert_eq!(s.gateway(), None);
        assert_eq!(s.hosts().count(), 0);
        let dir = tempfile::tempdir().unwrap();
        let err = Pool::create(dir.path(), s, None, None).unwrap_err();
        assert!(matches!(err, NetError::SubnetTooSmall { .. }));
        assert!(err.to_string().contains("subnet too small"), "{err}");
        assert!(!dir.path().join("ipam.json").exists());
    }
}

#[test]
fn contains_and_overlaps() {
    let s = sn("172.18.0.0/16");
    assert!(s.contains(ip("172.18.255.7")));
    assert!(!s.contains(ip("172.19.0.1")));
    assert!(s.overlaps(&sn("172.18.4.0/24")));
    assert!(sn("172.18.4.0/24").overlaps(&s));
    assert!(s.overlaps(&sn("172.0.0.0/8")));
    assert!(!s.overlaps(&sn("172.19.0.0/16")));
    assert!(sn("0.0.0.0/0").overlaps(&s));
    assert!(s.covers(&sn("172.18.4.0/24")));
    assert!(!sn("172.18.4.0/24").covers(&s));
}

// ------------------------------------------------------------ creation

#[test]
fn create_reserves_first_host_as_gateway_by_default() {
    let (dir, p) = pool("10.0.0.0/24");
    let info = p.info().unwrap();
    assert_eq!(info.gateway, ip("10.0.0.1"));
    assert_eq!(info.subnet, sn("10.0.0.0/24"));
    assert_eq!(info.ip_range, None);
    assert_eq!(p.allocate("a").unwrap(), ip("10.0.0.2"));
    assert!(dir.path().join("ipam.json").is_file());
}

#[test]
fn create_rejects_bad_gateways_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let s = sn("10.0.0.0/24");
    for (gw, why) in [
        ("10.0.1.1", "outside"),
        ("10.0.0.0", "network address"),
        ("10.0.0.255", "broadcast address"),
    ] {
        let err = Pool::create(dir.path(), s, Some(ip(gw)), None).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        assert!(err.to_string().contains(gw), "{err}");
    }
    let err = Pool::create(dir.path(), s, None, Some(sn("10.0.0.0/23"))).unwrap_err();
    assert!(matches!(err, NetError::InvalidRange { .. }), "{err}");
    let err = Pool::create(dir.path(), s, None, Some(sn("10.0.1.0/28"))).unwrap_err();
    assert!(matches!(err, NetError::InvalidRange { .. }), "{err}");
    let host_bits = Subnet {
        net: ip("10.0.0.1"),
        prefix: 24,
    };
    assert!(Pool::create(dir.path(), host_bits, None, None).is_err());
    assert!(!dir.path().join("ipam.json").exists());
}

#[test]
fn create_refuses_an_existing_pool_and_open_a_missing_one() {
    let (dir, _p) = pool("10.0.0.0/24");
    let err = Pool::create(dir.path(), sn("10.1.0.0/24"), None, None).unwrap_err();
    assert!(matches!(err, NetError::PoolExists { .. }), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = Pool::open(empty.path()).unwrap_err();
    assert!(matches!(err, NetError::NoPool { .. }), "{err}");
}

#[test]
fn open_reports_corrupt_state() {
    let (dir, _p) = pool("10.0.0.0/24");
    std::fs::write(dir.path().join("ipam.json"), b"{not json").unwrap();
    let err = Pool::open(dir.path()).unwrap_err();
    assert!(matches!(err, NetError::Corrupt { .. }), "{err}");
}

// ---------------------------------------------------------- allocation

#[test]
fn allocates_in_order_skipping_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pool::create(dir.path(), sn("10.0.0.0/29"), Some(ip("10.0.0.3")), None).unwrap();
    let got: Vec<_> = (0..5)
        .map(|i| p.allocate(&format!("c{i}")).unwrap())
        .collect();
    assert_eq!(
        got,
        ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
    );
    let err = p.allocate("c5").unwrap_err();
    assert_eq!(err.to_string(), "no free addresses in 10.0.0.0/29");
}

#[test]
fn does_not_reuse_a_released_address_at_once_and_wraps() {
    let (_dir, p) = pool("10.0.0.0/29"); // hosts .2-.6 after gateway .1
    let a = p.allocate("a").unwrap();
    let b = p.allocate("b").unwrap();
    assert_eq!((a, b), (ip("10.0.0.2"), ip("10.0.0.3")));
    assert!(p.release(a, "a").unwrap());
    assert_eq!(p.allocate("c").unwrap(), ip("10.0.0.4"));
    assert_eq!(p.allocate("d").unwrap(), ip("10.0.0.5"));
    assert_eq!(p.allocate("e").unwrap(), ip("10.0.0.6"));
    // Past the end: wraps past network and gateway to the freed .2.
    assert_eq!(p.allocate("f").unwrap(), ip("10.0.0.2"));
    assert!(p.release(ip("10.0.0.4"), "c").unwrap());
    assert_eq!(p.allocate("g").unwrap(), ip("10.0.0.4"));
}

#[test]
fn full_slash_30_says_so() {
    let (_dir, p) = pool("10.0.0.0/30");
    assert_eq!(p.allocate("a").unwrap(), ip("10.0.0.2"));
    let err = p.allocate("b").unwrap_err();
    assert!(matches!(err, NetError::NoFreeAddresses { .. }));
    assert_eq!(err.to_string(), "no free addresses in 10.0.0.0/30");
    assert_eq!(p.allocations().unwrap().len(), 1);
}

#[test]
fn ip_range_limits_automatic_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pool::create(
        dir.path(),
        sn("10.0.0.0/24"),
        None,
        Some(sn("10.0.0.128/30")),
    )
    .unwrap();
    let got: Vec<_> = (0..4).map(|_| p.allocate("x").unwrap()).collect();
    assert_eq!(
        got,
        ["10.0.0.128", "10.0.0.129", "10.0.0.130", "10.0.0.131"].map(ip)
    );
    let err = p.allocate("x").unwrap_err();
    assert_eq!(err.to_string(), "no free addresses in 10.0.0.128/30");
}

#[test]
fn ip_range_at_the_subnet_edge_skips_network_and_broadcast() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pool::create(
        dir.path(),
        sn("10.0.0.0/24"),
        Some(ip("10.0.0.100")),
        Some(sn("10.0.0.252/30")),
    )
    .unwrap();
    assert_eq!(p.allocate("x").unwrap(), ip("10.0.0.252"));
    assert_eq!(p.allocate("x").unwrap(), ip("10.0.0.253"));
    assert_eq!(p.allocate("x").unwrap(), ip("10.0.0.254"));
    assert!(p.allocate("x").is_err());
}

#[test]
fn allocate_specific_takes_a_free_address() {
    let (_dir, p) = pool("10.0.0.0/24");
    p.allocate_specific(ip("10.0.0.50"), "web").unwrap();
    assert_eq!(p.allocations().unwrap()[&ip("10.0.0.50")], "web");
    // Automatic allocation goes on from where it was.
    assert_eq!(p.allocate("a").unwrap(), ip("10.0.0.2"));
}

#[test]
fn allocate_specific_errors_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pool::create(
        dir.path(),
        sn("10.0.0.0/24"),
        None,
        Some(sn("10.0.0.128/25")),
    )
    .unwrap();
    p.allocate_specific(ip("10.0.0.200"), "web").unwrap();
    let cases = [
        ("10.0.1.5", "not in subnet 10.0.0.0/24"),
        ("10.0.0.5", "not in ip range 10.0.0.128/25"),
        ("10.0.0.255", "broadcast address"),
        ("10.0.0.200", "already in use by web"),
    ];
    for (addr, want) in cases {
        let err = p.allocate_specific(ip(addr), "db").unwrap_err();
        assert!(err.to_string().contains(want), "{addr}: {err}");
        assert!(err.to_string().contains(addr), "{addr}: {err}");
    }
    let (_d, q) = pool("10.0.0.0/24");
    let err = q.allocate_specific(ip("10.0.0.0"), "db").unwrap_err();
    assert!(err.to_string().contains("network address"), "{err}");
    let err = q.allocate_specific(ip("10.0.0.1"), "db").unwrap_err();
    assert!(err.to_string().contains("gateway"), "{err}");
    assert!(matches!(
        q.allocate_specific(ip("10.0.0.9"), ""),
        Err(NetError::EmptyOwner)
    ));
    assert!(matches!(q.allocate(""), Err(NetError::EmptyOwner)));
    assert_eq!(p.allocations().unwrap().len(), 1);
    assert!(q.allocations().unwrap().is_empty());
}

// ------------------------------------------------------------- release

#[test]
fn release_only_by_the_owner() {
    let (_dir, p) = pool("10.0.0.0/24");
    let a = p.allocate("a").unwrap();
    let err = p.release(a, "b").unwrap_err();
    assert!(matches!(err, NetError::NotOwner { .. }));
    assert!(err.to_string().contains("belongs to a"), "{err}");
    assert_eq!(p.allocations().unwrap()[&a], "a");
    assert!(p.release(a, "a").unwrap());
    assert!(!p.release(a, "a").unwrap());
    assert!(!p.release(ip("10.0.0.77"), "a").unwrap());
    assert!(p.allocations().unwrap().is_empty());
}

#[test]
fn release_owner_frees_all_of_a_containers_addresses() {
    let (_dir, p) = pool("10.0.0.0/24");
    let a1 = p.allocate("a").unwrap();
    let b = p.allocate("b").unwrap();
    let a2 = p.allocate("a").unwrap();
    p.allocate_specific(ip("10.0.0.9"), "a").unwrap();
    assert_eq!(p.release_owner("a").unwrap(), vec![a1, a2, ip("10.0.0.9")]);
    assert!(p.release_owner("a").unwrap().is_empty());
    let left = p.allocations().unwrap();
    assert_eq!(
        left.into_iter().collect::<Vec<_>>(),
        vec![(b, "b".to_string())]
    );
}

// --------------------------------------------------------- persistence

#[test]
fn state_persists_across_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = Pool::create(dir.path(), sn("10.0.0.0/24"), Some(ip("10.0.0.254")), None).unwrap();
        assert_eq!(p.allocate("a").unwrap(), ip("10.0.0.1"));
        assert_eq!(p.allocate("b").unwrap(), ip("10.0.0.2"));
        p.release(ip("10.0.0.2"), "b").unwrap();
    }
    let p = Pool::open(dir.path()).unwrap();
    assert_eq!(p.info().unwrap().gateway, ip("10.0.0.254"));
    assert_eq!(p.allocations().unwrap().len(), 1);
    // The cursor survives too: .2 was handed out last, so .3 comes next.
    assert_eq!(p.allocate("c").unwrap(), ip("10.0.0.3"));
    let text = std::fs::read_to_string(dir.path().join("ipam.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["subnet"], "10.0.0.0/24");
    assert_eq!(v["allocations"]["10.0.0.3"], "c");
    // No temp files left behind.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ipam.json", "ipam.lock"]);
}

// ----------------------------------------------------- choosing subnets

#[test]
fn default_candidates_are_dockers_pools() {
    let c = default_candidates();
    assert_eq!(c.len(), 31);
    assert_eq!(c[0], sn("172.17.0.0/16"));
    assert_eq!(c[14], sn("172.31.0.0/16"));
    assert_eq!(c[15], sn("192.168.0.0/20"));
    assert_eq!(c[16], sn("192.168.16.0/20"));
    assert_eq!(c[30], sn("192.168.240.0/20"));
    for s in &c {
        assert_eq!(Subnet::new(s.net, s.prefix).unwrap(), *s);
    }
}

#[test]
fn pick_subnet_skips_taken_networks_and_host_routes() {
    let c = default_candidates();
    assert_eq!(pick_subnet(&c, &[], &[]), Some(sn("172.17.0.0/16")));
    let taken = [sn("172.17.0.0/16"), sn("172.18.5.0/24")];
    let routes = [sn("172.19.0.0/16"), sn("10.0.0.0/8")];
    assert_eq!(pick_subnet(&c, &taken, &routes), Some(sn("172.20.0.0/16")));
    // A wide route covering all of 172.16/12 moves on to 192.168.
    let routes = [sn("172.16.0.0/12"), sn("192.168.1.0/24")];
    assert_eq!(pick_subnet(&c, &[], &routes), Some(sn("192.168.16.0/20")));
    assert_eq!(pick_subnet(&c, &[sn("0.0.0.0/0")], &[]), None);
    assert_eq!(pick_subnet(&[], &[], &[]), None);
}

const ROUTE_SAMPLE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wg0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0
eth0\t0101A8C0\t00000000\t0005\t0\t0\t100\tFFFFFFFF\t0\t0\t0
eth1\t0001A8C0\t00000000\t0001\t0\t0\t200\t00FFFFFF\t0\t0\t0
";

#[test]
fn parses_proc_net_route_skipping_the_default_route() {
    let routes = parse_routes(ROUTE_SAMPLE).unwrap();
    assert_eq!(
        routes,
        [
            sn("192.168.1.0/24"),
            sn("172.17.0.0/16"),
            sn("10.0.0.0/8"),
            sn("192.168.1.1/32"),
        ]
    );
    assert_eq!(parse_routes("Iface\tDestination\n").unwrap(), vec![]);
    assert_eq!(parse_routes("").unwrap(), vec![]);
}

#[test]
fn route_parser_rejects_garbage_with_the_line_number() {
    let bad = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
               eth0\tZZ\t0\t1\t0\t0\t0\t00FFFFFF\n";
    let err = parse_routes(bad).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(parse_routes("h\neth0 0001A8C0 0\n").is_err());
    let gap = "h\neth0\t0001A8C0\t0\t1\t0\t0\t0\tFF00FFFF\n";
    assert!(parse_routes(gap)
        .unwrap_err()
        .to_string()
        .contains("contiguous"));
}

#[test]
fn reads_this_hosts_routes() {
    // Whatever the host has, the default route is never among them.
    let routes = host_routes().unwrap();
    assert!(routes.iter().all(|r| r.prefix > 0), "{routes:?}");
}

// --------------------------------------------------------- concurrency

const CHILD_DIR_ENV: &str = "BARGE_NET_IPAM_CHILD_DIR";
const CHILD_OWNER_ENV: &str = "BARGE_NET_IPAM_CHILD_OWNER";
const PER_CHILD: usize = 10;
const PER_THREAD: usize = 5;

/// Runs only when re-executed by `concurrent_processes_and_threads_never_
/// share_an_address`: allocates from the pool named in the environment and
/// prints what it got.
#[test]
fn concurrency_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let owner = std::env::var(CHILD_OWNER_ENV).unwrap();
    let p = Pool::open(Path::new(&dir)).unwrap();
    for _ in 0..PER_CHILD {
        println!("ALLOCATED {}", p.allocate(&owner).unwrap());
    }
}

#[test]
fn concurrent_processes_and_threads_never_share_an_address() {
    let dir = tempfile::tempdir().unwrap();
    Pool::create(dir.path(), sn("10.77.0.0/24"), None, None).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "ipam::tests::concurrency_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR_ENV, dir.path())
                .env(CHILD_OWNER_ENV, format!("proc{i}"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = (0..30)
        .map(|t| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let p = Pool::open(&path).unwrap();
                (0..PER_THREAD)
                    .map(|_| {
                        (
                            p.allocate(&format!("thread{t}")).unwrap(),
                            format!("thread{t}"),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Reap every child before asserting, so a failure cannot remove the
    // directory under a process still using it.
    let joined: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut got: Vec<(Ipv4Addr, String)> = joined
        .into_iter()
        .flat_map(|r| r.expect("allocating thread panicked"))
        .collect();
    for (i, out) in outputs.into_iter().enumerate() {
        assert!(out.status.success(), "child {i} failed");
        let stdout = String::from_utf8(out.stdout).unwrap();
        // The harness may print "test ... " on the same line first.
        let ips: Vec<_> = stdout
            .lines()
            .filter_map(|l| l.split_once("ALLOCATED ").map(|(_, s)| s))
            .map(|s| (ip(s.trim()), format!("proc{i}")))
            .collect();
        assert_eq!(ips.len(), PER_CHILD, "child {i} output: {stdout}");
        got.extend(ips);
    }
    assert_eq!(got.len(), 30 * PER_THREAD + 4 * PER_CHILD);
    let want: BTreeMap<Ipv4Addr, String> = got.iter().cloned().collect();
    assert_eq!(want.len(), got.len(), "an address was handed out twice");
    let p = Pool::open(dir.path()).unwrap();
    assert_eq!(p.allocations().unwrap(), want);
    assert!(!want.contains_key(&ip("10.77.0.1")));
}
