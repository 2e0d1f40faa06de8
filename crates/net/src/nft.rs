//! Barge's own nftables table (family `ip`), driven through `nft -j`.
//!
//! Commands go to `nft -j -f -` as one JSON batch each, so every operation
//! is atomic; state is read back from `nft -j list table ip NAME`. Only
//! Barge's table is ever touched: no other table is read, changed or
//! flushed, and the ruleset is never flushed.
//!
//! The table holds four base chains (see [`Firewall::ensure`]), a set
//! `bridges` of Barge's bridge interfaces (for isolation between networks)
//! and rules tagged with a comment, `barge:net:<bridge>` for a network's
//! rules and `barge:port:<container id>` for a container's published
//! ports, by which they are found and deleted by handle.
//!
//! The JSON is built by pure functions ([`Firewall::ensure_json`],
//! [`Firewall::network_json`], [`Firewall::publish_json`],
//! [`Firewall::delete_rules_json`]) so it can be checked without nft.
//!
//! Ports published on a loopback address (`127.0.0.0/8`) get no rules
//! here: DNAT of loopback traffic to a bridge needs `route_localnet` and
//! source NAT of 127.0.0.1, so those connections are for a userspace proxy.
//! A port published on all addresses (`host_ip: None`) is DNATed for every
//! local address except loopback ones.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::error::NetError;
use crate::ipam::Subnet;

type Result<T> = std::result::Result<T, NetError>;

/// The table Barge uses unless told otherwise.
pub const DEFAULT_TABLE: &str = "barge";
/// The set of Barge's bridge interfaces, for isolation between networks.
pub const BRIDGES_SET: &str = "bridges";
/// nft refuses comments longer than this.
const MAX_COMMENT: usize = 128;

/// The base chains: name, type, hook, priority.
const CHAINS: [(&str, &str, &str, i32); 4] = [
    ("prerouting", "nat", "prerouting", -100), // dstnat
    ("output", "nat", "output", -100),
    ("postrouting", "nat", "postrouting", 100), // srcnat
    ("forward", "filter", "forward", 0),        // filter
];

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published port: `host_ip:host_port/proto` is DNATed to
/// `container_ip:container_port`. `host_ip: None` means every local
/// address (loopback excepted, see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub container_id: String,
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// One rule of Barge's table as nft lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

/// Barge's nftables table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    table: String,
}

impl Default for Firewall {
    fn default() -> Firewall {
        Firewall::new(DEFAULT_TABLE)
    }
}

/// The comment on a network's rules.
pub fn network_comment(bridge: &str) -> String {
    format!("barge:net:{bridge}")
}

/// The comment on a container's port rules.
pub fn port_comment(container_id: &str) -> String {
    format!("barge:port:{container_id}")
}

fn check_table(table: &str) -> Result<()> {
    let bad = |reason| {
        Err(NetError::NftName {
            what: "table name",
            input: table.to_string(),
            reason,
        })
    };
    let mut chars = table.chars();
    match chars.next() {
        None => return bad("it is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return bad("it must start with a letter or '_'")
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("use only letters, digits and '_'");
    }
    if table.len() > 64 {
        return bad("it is longer than 64 bytes");
    }
    Ok(())
}

/// An interface name (the kernel's rules, [`crate::link::check_link_name`])
/// that can also stand in an nft rule.
fn check_bridge(bridge: &str) -> Result<()> {
    crate::link::check_link_name(bridge)?;
    if bridge
        .chars()
        .any(|c| c == '*' || c == '"' || !c.is_ascii())
    {
        return Err(NetError::NftName {
            what: "bridge name",
            input: bridge.to_string(),
            reason: "it must be ascii without '*' or '\"'",
        });
    }
    Ok(())
}

fn check_container_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(NetError::NftName {
            what: "container id",
            input: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if port_comment(id).len() > MAX_COMMENT {
        return bad("it is too long for an nft comment (128 bytes)");
    }
    if id.chars().any(|c| c.is_control() || c == '"') {
        return bad("it must not contain control characters or '\"'");
    }
    Ok(())
}

// ------------------------------------------------------------ expressions

fn meta_eq(key: &str, op: &str, value: &str) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": value}})
}

fn saddr_in(subnet: Subnet) -> Value {
    json!({"match": {"op": "==",
        "left": {"payload": {"protocol": "ip", "field": "saddr"}},
        "right": {"prefix": {"addr": subnet.net.to_string(), "len": subnet.prefix}}}})
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

impl Firewall {
    pub fn new(table: &str) -> Firewall {
        Firewall {
            table: table.to_string(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether nft is installed and usable: a dry run (`nft -c -j -f -`)
    /// of adding the table.
    pub fn available() -> bool {
        let cmds = json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": DEFAULT_TABLE}}}
        ]});
        run_nft(&["-c", "-j", "-f", "-"], Some(&cmds), "check nft").is_ok()
    }

    fn batch(cmds: Vec<Value>) -> Value {
        json!({ "nftables": cmds })
    }

    fn rule(&self, chain: &str, comment: &str, expr: Vec<Value>) -> Value {
        json!({"add": {"rule": {"family": "ip", "table": self.table, "chain": chain,
            "comment": comment, "expr": expr}}})
    }

    /// The commands of [`Firewall::ensure`]: the table, its base chains
    /// (policy accept) and the `bridges` set, all idempotent `add`s.
    pub fn ensure_json(&self) -> Value {
        let mut cmds = vec![json!({"add": {"table": {"family": "ip", "name": self.table}}})];
        for (name, ty, hook, prio) in CHAINS {
            cmds.push(
                json!({"add": {"chain": {"family": "ip", "table": self.table,
                "name": name, "type": ty, "hook": hook, "prio": prio, "policy": "accept"}}}),
            );
        }
        cmds.push(json!({"add": {"set": {"family": "ip", "table": self.table,
            "name": BRIDGES_SET, "type": "ifname"}}}));
        Firewall::batch(cmds)
    }

    /// The commands adding a network's rules (without deleting old ones):
    ///
    /// * postrouting, unless internal: `ip saddr SUBNET oifname != BR masquerade`
    /// * forward: `oifname BR ct state established,related accept`,
    ///   `iifname BR oifname BR accept`,
    ///   `iifname BR oifname @bridges drop` (isolation from other Barge bridges);
    /// * internal: `iifname BR drop` and `oifname BR drop` (nothing leaves or enters);
    /// * otherwise: `oifname BR ct status dnat accept` (published ports) and
    ///   `iifname BR accept` (outbound).
    ///
    /// The bridge is also added to the `bridges` set.
    pub fn network_json(&self, bridge: &str, subnet: Subnet, internal: bool) -> Value {
        let c = network_comment(bridge);
        let mut cmds = vec![
            json!({"add": {"element": {"family": "ip", "table": self.table,
            "name": BRIDGES_SET, "elem": [bridge]}}}),
        ];
        if !internal {
            cmds.push(self.rule(
                "postrouting",
                &c,
                vec![
                    saddr_in(subnet),
                    meta_eq("oifname", "!=", bridge),
                    verdict("masquerade"),
                ],
            ));
        }
        cmds.push(self.rule(
            "forward",
            &c,
            vec![
                meta_eq("oifname", "==", bridge),
                json!({"match": {"op": "in", "left": {"ct": {"key": "state"}},
                    "right": ["established", "related"]}}),
                verdict("accept"),
            ],
        ));
        cmds.push(self.rule(
            "forward",
            &c,
            vec![
                meta_eq("iifname", "==", bridge),
                meta_eq("oifname", "==", bridge),
                verdict("accept"),
            ],
        ));
        cmds.push(self.rule(
            "forward",
            &c,
            vec![
                meta_eq("iifname", "==", bridge),
                meta_eq("oifname", "==", &format!("@{BRIDGES_SET}")),
                verdict("drop"),
            ],
        ));
        if internal {
            cmds.push(self.rule(
                "forward",
                &c,
                vec![meta_eq("iifname", "==", bridge), verdict("drop")],
            ));
            cmds.push(self.rule(
                "forward",
                &c,
                vec![meta_eq("oifname", "==", bridge), verdict("drop")],
            ));
        } else {
            cmds.push(self.rule(
                "forward",
                &c,
                vec![
                    meta_eq("oifname", "==", bridge),
                    json!({"match": {"op": "in", "left": {"ct": {"key": "status"}},
                        "right": "dnat"}}),
                    verdict("accept"),
                ],
            ));
            cmds.push(self.rule(
                "forward",
                &c,
                vec![meta_eq("iifname", "==", bridge), verdict("accept")],
            ));
        }
        Firewall::batch(cmds)
    }

    /// The commands publishing a port: the same DNAT rule in prerouting
    /// (for traffic not coming from one of Barge's bridges) and output.
    /// With a host address: `ip daddr HOST`; without one:
    /// `fib daddr type local ip daddr != 127.0.0.0/8`. A loopback host
    /// address gets no rules (an empty batch): that is the userspace
    /// proxy's job.
    pub fn publish_json(&self, p: &PortMapping) -> Value {
        if p.host_ip.is_some_and(|ip| ip.is_loopback()) {
            return Firewall::batch(vec![]);
        }
        let c = port_comment(&p.container_id);
        let mut expr = Vec::new();
        match p.host_ip {
            Some(ip) => expr.push(json!({"match": {"op": "==",
                "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                "right": ip.to_string()}})),
            None => {
                expr.push(json!({"match": {"op": "==",
                    "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                    "right": "local"}}));
                expr.push(json!({"match": {"op": "!=",
                    "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}));
            }
        }
        expr.push(json!({"match": {"op": "==",
            "left": {"payload": {"protocol": p.proto.as_str(), "field": "dport"}},
            "right": p.host_port}}));
        expr.push(json!({"dnat": {"addr": p.container_ip.to_string(),
            "port": p.container_port}}));
        // Containers reaching a published port through a host address go
        // to the userspace proxy (as with Docker's docker-proxy): DNAT
        // straight back onto a bridge would answer them from the wrong
        // address (same bridge) or be dropped as traffic between networks.
        let mut pre = vec![json!({"match": {"op": "!=",
            "left": {"meta": {"key": "iifname"}},
            "right": format!("@{BRIDGES_SET}")}})];
        pre.extend(expr.iter().cloned());
        Firewall::batch(vec![
            self.rule("prerouting", &c, pre),
            self.rule("output", &c, expr),
        ])
    }

    /// The commands deleting rules by handle.
    pub fn delete_rules_json(&self, rules: &[Rule]) -> Value {
        Firewall::batch(
            rules
                .iter()
                .map(|r| {
                    json!({"delete": {"rule": {"family": "ip", "table": self.table,
                        "chain": r.chain, "handle": r.handle}}})
                })
                .collect(),
        )
    }

    // -------------------------------------------------------- against nft

    fn apply(&self, cmds: &Value, what: &str) -> Result<()> {
        check_table(&self.table)?;
        if cmds["nftables"].as_array().is_some_and(|a| a.is_empty()) {
            return Ok(());
        }
        run_nft(&["-j", "-f", "-"], Some(cmds), what).map(drop)
    }

    /// Creates the table, its chains and the `bridges` set if missing:
    /// `prerouting` (nat, hook prerouting, priority dstnat), `output` (nat,
    /// hook output, priority -100, for local traffic to published ports),
    /// `postrouting` (nat, hook postrouting, priority srcnat) and `forward`
    /// (filter, hook forward, priority filter), all with policy accept.
    /// Idempotent.
    pub fn ensure(&self) -> Result<()> {
        let what = format!("create table ip {} and its chains", self.table);
        self.apply(&self.ensure_json(), &what)
    }

    /// Adds (or replaces, atomically) a network's rules; see
    /// [`Firewall::network_json`]. Calls [`Firewall::ensure`] first.
    pub fn add_network(&self, bridge: &str, subnet: Subnet, internal: bool) -> Result<()> {
        check_bridge(bridge)?;
        self.ensure()?;
        let listing = self.list()?;
        let comment = network_comment(bridge);
        let old: Vec<Rule> = listing
            .rules
            .into_iter()
            .filter(|r| r.comment.as_deref() == Some(&comment))
            .collect();
        let mut cmds = self.delete_rules_json(&old);
        let new = self.network_json(bridge, subnet, internal);
        extend(&mut cmds, new);
        self.apply(
            &cmds,
            &format!(
                "add rules of network {bridge} ({subnet}) to table ip {}",
                self.table
            ),
        )
    }

    /// Deletes exactly the rules commented `barge:net:<bridge>` and the
    /// bridge's element of the `bridges` set. Nothing to delete is fine.
    pub fn remove_network(&self, bridge: &str) -> Result<()> {
        check_bridge(bridge)?;
        let Some(listing) = self.list_if_exists()? else {
            return Ok(());
        };
        let comment = network_comment(bridge);
        let old: Vec<Rule> = listing
            .rules
            .into_iter()
            .filter(|r| r.comment.as_deref() == Some(&comment))
            .collect();
        let mut cmds = self.delete_rules_json(&old);
        if listing.bridges.contains(bridge) {
            extend(
                &mut cmds,
                Firewall::batch(vec![json!({"delete": {"element": {"family": "ip",
                    "table": self.table, "name": BRIDGES_SET, "elem": [bridge]}}})]),
            );
        }
        self.apply(
            &cmds,
            &format!(
                "delete rules of network {bridge} from table ip {}",
                self.table
            ),
        )
    }

    /// Adds a port's DNAT rules (see [`Firewall::publish_json`]). Calls
    /// [`Firewall::ensure`] first.
    pub fn publish(&self, p: &PortMapping) -> Result<()> {
        check_container_id(&p.container_id)?;
        self.ensure()?;
        let what = format!(
            "publish {}:{}/{} to {}:{} for container {} in table ip {}",
            p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string()),
            p.host_port,
            p.proto,
            p.container_ip,
            p.container_port,
            p.container_id,
            self.table
        );
        self.apply(&self.publish_json(p), &what)
    }

    /// Deletes the rules commented `barge:port:<container_id>`; returns
    /// how many there were.
    pub fn unpublish(&self, container_id: &str) -> Result<usize> {
        check_container_id(container_id)?;
        let Some(listing) = self.list_if_exists()? else {
            return Ok(0);
        };
        let comment = port_comment(container_id);
        let old: Vec<Rule> = listing
            .rules
            .into_iter()
            .filter(|r| r.comment.as_deref() == Some(&comment))
            .collect();
        self.apply(
            &self.delete_rules_json(&old),
            &format!(
                "delete published ports of container {container_id} from table ip {}",
                self.table
            ),
        )?;
        Ok(old.len())
    }

    /// The table's rules in nft's order; empty if the table does not exist.
    pub fn rules(&self) -> Result<Vec<Rule>> {
        Ok(self.list_if_exists()?.map(|l| l.rules).unwrap_or_default())
    }

    /// The table's chain names; empty if the table does not exist.
    pub fn chains(&self) -> Result<Vec<String>> {
        Ok(self.list_if_exists()?.map(|l| l.chains).unwrap_or_default())
    }

    /// Whether the table exists (from `nft -j list tables`).
    pub fn exists(&self) -> Result<bool> {
        check_table(&self.table)?;
        let what = "list tables";
        let out = run_nft(&["-j", "list", "tables"], None, what)?;
        let v = parse_json(&out, what)?;
        Ok(items(&v, what)?.iter().any(|item| {
            item.get("table").is_some_and(|t| {
                t["family"] == "ip" && t["name"].as_str() == Some(self.table.as_str())
            })
        }))
    }

    /// Deletes the table and everything in it; `false` if it did not exist.
    pub fn delete_table(&self) -> Result<bool> {
        if !self.exists()? {
            return Ok(false);
        }
        let cmds = Firewall::batch(vec![
            json!({"delete": {"table": {"family": "ip", "name": self.table}}}),
        ]);
        self.apply(&cmds, &format!("delete table ip {}", self.table))?;
        Ok(true)
    }

    fn list_if_exists(&self) -> Result<Option<Listing>> {
        if !self.exists()? {
            return Ok(None);
        }
        self.list().map(Some)
    }

    fn list(&self) -> Result<Listing> {
        check_table(&self.table)?;
        let what = format!("list table ip {}", self.table);
        let out = run_nft(&["-j", "list", "table", "ip", &self.table], None, &what)?;
        parse_listing(&out, &what)
    }
}

fn extend(batch: &mut Value, more: Value) {
    if let (Some(a), Value::Object(mut m)) = (batch["nftables"].as_array_mut(), more) {
        if let Some(Value::Array(b)) = m.remove("nftables") {
            a.extend(b);
        }
    }
}

/// What `nft -j list table` says about Barge's table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    chains: Vec<String>,
    rules: Vec<Rule>,
    bridges: BTreeSet<String>,
}

fn parse_json(out: &str, what: &str) -> Result<Value> {
    serde_json::from_str(out).map_err(|e| NetError::NftOutput {
        what: what.to_string(),
        reason: format!("invalid JSON: {e}"),
    })
}

fn items<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>> {
    v["nftables"].as_array().ok_or_else(|| NetError::NftOutput {
        what: what.to_string(),
        reason: "no \"nftables\" array".to_string(),
    })
}

fn parse_listing(out: &str, what: &str) -> Result<Listing> {
    let v = parse_json(out, what)?;
    let mut l = Listing::default();
    let bad = |reason: &str| NetError::NftOutput {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    for item in items(&v, what)? {
        if let Some(c) = item.get("chain") {
            let name = c["name"]
                .as_str()
                .ok_or_else(|| bad("chain without name"))?;
            l.chains.push(name.to_string());
        } else if let Some(r) = item.get("rule") {
            l.rules.push(Rule {
                chain: r["chain"]
                    .as_str()
                    .ok_or_else(|| bad("rule without chain"))?
                    .to_string(),
                handle: r["handle"]
                    .as_u64()
                    .ok_or_else(|| bad("rule without handle"))?,
                comment: r["comment"].as_str().map(str::to_string),
            });
        } else if let Some(s) = item.get("set") {
            if s["name"] == BRIDGES_SET {
                let elems = match &s["elem"] {
                    Value::Array(a) => a.clone(),
                    Value::Null => vec![],
                    other => vec![other.clone()],
                };
                l.bridges
                    .extend(elems.iter().filter_map(|e| e.as_str()).map(str::to_string));
            }
        }
    }
    Ok(l)
}

/// The nft binary: from PATH, else /usr/sbin or /sbin (root's PATH has
/// them; a service's may not).
fn nft_path() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// Runs nft with `args`, feeding `stdin` as JSON; returns its stdout.
fn run_nft(args: &[&str], stdin: Option<&Value>, what: &str) -> Result<String> {
    let spawn_err = |source| NetError::NftSpawn {
        what: what.to_string(),
        source,
    };
    let mut child = Command::new(nft_path())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(v), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error (nft exited early) shows in its status and stderr.
        let _ = pipe.write_all(v.to_string().as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NetError::Nft {
            what: what.to_string(),
            stderr: if stderr.is_empty() {
                format!("exited with {}", out.status)
            } else {
                stderr
            },
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests;
