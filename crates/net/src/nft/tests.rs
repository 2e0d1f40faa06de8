use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};

fn subnet(s: &str) -> Subnet {
    s.parse().unwrap()
}

fn mapping(id: &str, host_ip: Option<Ipv4Addr>, port: u16) -> PortMapping {
    PortMapping {
        container_id: id.to_string(),
        proto: Proto::Tcp,
        host_ip,
        host_port: port,
        container_ip: Ipv4Addr::new(172, 31, 0, 2),
        container_port: 80,
    }
}

fn cmds(v: &Value) -> &Vec<Value> {
    v["nftables"].as_array().unwrap()
}

/// The rules of a batch as (chain, comment, expr).
fn added_rules(v: &Value) -> Vec<(String, String, Value)> {
    cmds(v)
        .iter()
        .filter_map(|c| c["add"].get("rule"))
        .map(|r| {
            (
                r["chain"].as_str().unwrap().to_string(),
                r["comment"].as_str().unwrap().to_string(),
                r["expr"].clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------- JSON (no nft)

#[test]
fn ensure_json_has_table_chains_and_set() {
    let v = Firewall::new("t1").ensure_json();
    let c = cmds(&v);
    assert_eq!(
        c[0],
        json!({"add": {"table": {"family": "ip", "name": "t1"}}})
    );
    let chains: Vec<(String, String, String, i64)> = c
        .iter()
        .filter_map(|c| c["add"].get("chain"))
        .map(|ch| {
            assert_eq!(ch["table"], "t1");
            assert_eq!(ch["family"], "ip");
            assert_eq!(ch["policy"], "accept");
            (
                ch["name"].as_str().unwrap().to_string(),
                ch["type"].as_str().unwrap().to_string(),
                ch["hook"].as_str().unwrap().to_string(),
                ch["prio"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
    ]
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d));
    assert_eq!(chains, want);
    assert!(c
        .iter()
        .any(|c| c["add"]["set"]["name"] == BRIDGES_SET && c["add"]["set"]["type"] == "ifname"));
}

#[test]
fn network_json_masquerades_and_isolates() {
    let v = Firewall::new("t1").network_json("brg0", subnet("172.31.0.0/24"), false);
    let c = cmds(&v);
    assert_eq!(
        c[0],
        json!({"add": {"element": {"family": "ip", "table": "t1", "name": "bridges", "elem": ["brg0"]}}})
    );
    let rules = added_rules(&v);
    assert!(rules
        .iter()
        .all(|(_, comment, _)| comment == "barge:net:brg0"));
    let masq: Vec<_> = rules.iter().filter(|r| r.0 == "postrouting").collect();
    assert_eq!(masq.len(), 1);
    assert_eq!(
        masq[0].2,
        json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "172.31.0.0", "len": 24}}}},
            {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "brg0"}},
            {"masquerade": null}
        ])
    );
    let fwd: Vec<&Value> = rules
        .iter()
        .filter(|r| r.0 == "forward")
        .map(|r| &r.2)
        .collect();
    // established first, then bridge->bridge accept, then isolation drop
    assert_eq!(
        fwd[0][1]["match"]["right"],
        json!(["established", "related"])
    );
    assert_eq!(fwd[1][0]["match"]["right"], "brg0");
    assert_eq!(fwd[1][1]["match"]["right"], "brg0");
    assert_eq!(fwd[1][2], json!({"accept": null}));
    assert_eq!(fwd[2][1]["match"]["right"], "@bridges");
    assert_eq!(fwd[2][2], json!({"drop": null}));
    assert!(!fwd
        .iter()
        .any(|e| e.as_array().unwrap().len() == 2 && e[1] == json!({"drop": null})));
}

#[test]
fn internal_network_json_drops_and_does_not_masquerade() {
    let v = Firewall::new("t1").network_json("brg1", subnet("10.9.0.0/16"), true);
    let rules = added_rules(&v);
    assert!(!rules.iter().any(|r| r.0 == "postrouting"));
    assert!(!rules.iter().any(|r| r.2.to_string().contains("masquerade")));
    let drops: Vec<&Value> = rules
        .iter()
        .filter(|r| r.2.as_array().unwrap().len() == 2)
        .map(|r| &r.2)
        .collect();
    assert_eq!(
        drops,
        [
            &json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "brg1"}}, {"drop": null}]),
            &json!([{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "brg1"}}, {"drop": null}]),
        ]
    );
}

#[test]
fn publish_json_dnat_in_prerouting_and_output() {
    let fw = Firewall::new("t1");
    let p = mapping("abc", Some(Ipv4Addr::new(192, 0, 2, 7)), 8080);
    let v = fw.publish_json(&p);
    let rules = added_rules(&v);
    assert_eq!(
        rules.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["prerouting", "output"]
    );
    let want = json!([
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.7"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
        {"dnat": {"addr": "172.31.0.2", "port": 80}}
    ]);
    // prerouting skips traffic from Barge's bridges (for the proxy).
    let mut pre = vec![
        json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "@bridges"}}),
    ];
    pre.extend(want.as_array().unwrap().iter().cloned());
    assert_eq!(rules[0].2, Value::Array(pre));
    assert_eq!(rules[1].2, want);
    for r in &rules {
        assert_eq!(r.1, "barge:port:abc");
    }
}

#[test]
fn publish_json_all_addresses_uses_fib_and_skips_loopback() {
    let fw = Firewall::new("t1");
    let mut p = mapping("abc", None, 53);
    p.proto = Proto::Udp;
    let v = fw.publish_json(&p);
    let rules = added_rules(&v);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].2[0]["match"]["right"], "@bridges");
    let e = &rules[1].2;
    assert_eq!(
        e[0]["match"]["left"],
        json!({"fib": {"result": "type", "flags": ["daddr"]}})
    );
    assert_eq!(e[0]["match"]["right"], "local");
    assert_eq!(e[1]["match"]["op"], "!=");
    assert_eq!(
        e[1]["match"]["right"],
        json!({"prefix": {"addr": "127.0.0.0", "len": 8}})
    );
    assert_eq!(e[2]["match"]["left"]["payload"]["protocol"], "udp");
    assert_eq!(e[2]["match"]["right"], 53);

    let lo = fw.publish_json(&mapping("abc", Some(Ipv4Addr::LOCALHOST), 80));
    assert!(cmds(&lo).is_empty(), "loopback is for the userspace proxy");
}

#[test]
fn delete_rules_json_by_handle() {
    let fw = Firewall::new("t1");
    let v = fw.delete_rules_json(&[Rule {
        chain: "forward".into(),
        handle: 42,
        comment: None,
    }]);
    assert_eq!(
        v,
        json!({"nftables": [{"delete": {"rule": {"family": "ip", "table": "t1", "chain": "forward", "handle": 42}}}]})
    );
}

#[test]
fn parses_listing() {
    let out = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
      {"table": {"family": "ip", "name": "t", "handle": 4}},
      {"set": {"family": "ip", "name": "bridges", "table": "t", "type": "ifname", "handle": 2, "elem": ["br0", "br1"]}},
      {"chain": {"family": "ip", "table": "t", "name": "forward", "handle": 1}},
      {"rule": {"family": "ip", "table": "t", "chain": "forward", "handle": 3, "comment": "barge:net:br0", "expr": []}},
      {"rule": {"family": "ip", "table": "t", "chain": "forward", "handle": 5, "expr": []}}]}"#;
    let l = parse_listing(out, "list").unwrap();
    assert_eq!(l.chains, ["forward"]);
    assert_eq!(
        l.rules,
        [
            Rule {
                chain: "forward".into(),
                handle: 3,
                comment: Some("barge:net:br0".into())
            },
            Rule {
                chain: "forward".into(),
                handle: 5,
                comment: None
            },
        ]
    );
    assert_eq!(l.bridges.iter().collect::<Vec<_>>(), ["br0", "br1"]);
    let err = parse_listing("nope", "list table ip t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("list table ip t"), "{err}");
}

#[test]
fn rejects_bad_names() {
    assert!(Firewall::new("bad name").ensure().is_err());
    assert!(Firewall::new("").ensure().is_err());
    assert!(Firewall::new("1abc").ensure().is_err());
    let fw = Firewall::new("t1");
    let err = fw
        .add_network("a-very-long-bridge-name", subnet("10.0.0.0/24"), false)
        .unwrap_err();
    assert!(err.to_string().contains("15 bytes"), "{err}");
    assert!(fw.publish(&mapping("", None, 80)).is_err());
    assert!(fw.unpublish(&"x".repeat(200)).is_err());
}

// ------------------------------------------------------- against real nft

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A uniquely named table, deleted on drop (even when the test fails).
struct TempTable(Firewall);

impl TempTable {
    fn new() -> TempTable {
        if !Firewall::available() {
            let why = match Command::new(nft_path()).arg("--version").output() {
                Err(e) => format!("cannot run nft ({e})"),
                Ok(_) => {
                    "nft is installed but not usable (are the tests running as root?)".to_string()
                }
            };
            panic!("{why}: these tests need nftables as root; apt-get install -y nftables");
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        TempTable(Firewall::new(&format!(
            "barge_t_{}_{n}",
            std::process::id()
        )))
    }
}

impl Drop for TempTable {
    fn drop(&mut self) {
        if let Err(e) = self.0.delete_table() {
            eprintln!("cannot delete test table {}: {e}", self.0.table());
        }
    }
}

fn comments(fw: &Firewall) -> Vec<(String, String)> {
    fw.rules()
        .unwrap()
        .into_iter()
        .map(|r| (r.chain, r.comment.unwrap_or_default()))
        .collect()
}

fn table_names() -> Vec<String> {
    let out = run_nft(&["-j", "list", "tables"], None, "list tables").unwrap();
    let v = parse_json(&out, "list tables").unwrap();
    items(&v, "list tables")
        .unwrap()
        .iter()
        .filter_map(|i| i.get("table"))
        .map(|t| {
            format!(
                "{} {}",
                t["family"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn root_ensure_is_idempotent() {
    let t = TempTable::new();
    let fw = &t.0;
    assert!(!fw.exists().unwrap());
    assert!(fw.chains().unwrap().is_empty());
    fw.ensure().unwrap();
    let first = fw.chains().unwrap();
    assert_eq!(first, ["prerouting", "output", "postrouting", "forward"]);
    fw.ensure().unwrap();
    assert_eq!(fw.chains().unwrap(), first);
    assert!(fw.rules().unwrap().is_empty());
}

#[test]
fn root_networks_and_ports() {
    let t = TempTable::new();
    let fw = &t.0;
    fw.ensure().unwrap();
    fw.add_network("bt0", subnet("172.31.250.0/24"), false)
        .unwrap();
    fw.add_network("bt1", subnet("172.31.251.0/24"), true)
        .unwrap();
    let net0 = fw.network_json("bt0", subnet("172.31.250.0/24"), false);
    let net1 = fw.network_json("bt1", subnet("172.31.251.0/24"), true);
    let n0 = added_rules(&net0).len();
    let n1 = added_rules(&net1).len();

    // add_network again replaces, it does not duplicate
    fw.add_network("bt0", subnet("172.31.250.0/24"), false)
        .unwrap();

    fw.publish(&mapping("c1", Some(Ipv4Addr::new(192, 0, 2, 1)), 8080))
        .unwrap();
    fw.publish(&mapping("c1", None, 8443)).unwrap();
    fw.publish(&mapping("c2", None, 9000)).unwrap();
    fw.publish(&mapping("c3", Some(Ipv4Addr::LOCALHOST), 9001))
        .unwrap();

    let all = comments(fw);
    let count = |c: &str| all.iter().filter(|r| r.1 == c).count();
    assert_eq!(count("barge:net:bt0"), n0, "{all:?}");
    assert_eq!(count("barge:net:bt1"), n1, "{all:?}");
    assert_eq!(count("barge:port:c1"), 4, "{all:?}");
    assert_eq!(count("barge:port:c2"), 2, "{all:?}");
    assert_eq!(count("barge:port:c3"), 0, "{all:?}");
    assert!(all.contains(&("postrouting".into(), "barge:net:bt0".into())));
    assert!(!all.contains(&("postrouting".into(), "barge:net:bt1".into())));
    assert!(all.contains(&("prerouting".into(), "barge:port:c1".into())));
    assert!(all.contains(&("output".into(), "barge:port:c1".into())));
    assert_eq!(all.len(), n0 + n1 + 6);
    assert_eq!(
        fw.list().unwrap().bridges.into_iter().collect::<Vec<_>>(),
        ["bt0", "bt1"]
    );

    // unpublish deletes exactly that container's rules
    assert_eq!(fw.unpublish("c1").unwrap(), 4);
    assert_eq!(fw.unpublish("c1").unwrap(), 0);
    let after: Vec<_> = all
        .iter()
        .filter(|r| r.1 != "barge:port:c1")
        .cloned()
        .collect();
    assert_eq!(comments(fw), after);

    // remove_network deletes exactly that network's rules and set element
    fw.remove_network("bt0").unwrap();
    let after: Vec<_> = after
        .into_iter()
        .filter(|r| r.1 != "barge:net:bt0")
        .collect();
    assert_eq!(comments(fw), after);
    assert_eq!(count("barge:net:bt1"), n1);
    assert_eq!(
        fw.list().unwrap().bridges.into_iter().collect::<Vec<_>>(),
        ["bt1"]
    );
    fw.remove_network("bt0").unwrap();
    assert_eq!(comments(fw), after);
}

#[test]
fn root_delete_table() {
    let t = TempTable::new();
    let fw = &t.0;
    let name = format!("ip {}", fw.table());
    let before: Vec<String> = table_names();
    fw.ensure().unwrap();
    fw.add_network("bt2", subnet("172.31.252.0/24"), false)
        .unwrap();
    assert!(table_names().contains(&name));
    assert!(fw.delete_table().unwrap());
    let now = table_names();
    assert!(!now.contains(&name), "{now:?}");
    assert!(!fw.delete_table().unwrap());
    assert!(fw.rules().unwrap().is_empty());
    assert_eq!(fw.unpublish("c1").unwrap(), 0);
    fw.remove_network("bt2").unwrap();
    // other tables are untouched (other tests' tables may come and go)
    for other in before.iter().filter(|n| !n.contains("barge_t_")) {
        assert!(now.contains(other), "{other} vanished");
    }
}

#[test]
fn root_errors_carry_nft_stderr() {
    let t = TempTable::new();
    let fw = &t.0;
    // the table does not exist yet, so listing it directly fails
    let err = fw.list().unwrap_err().to_string();
    assert!(
        err.contains(&format!("list table ip {}", fw.table())),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
}
