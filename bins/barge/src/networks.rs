//! Network commands (`network create`, `ls`, `inspect`, `rm`, `prune`,
//! `connect`, `disconnect`), `port`, and the network parts of a
//! container's `inspect` and `ps`, with Docker's flags and output. The
//! work is in `barge_engine::network`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use barge_engine::network::{self, ConnectOptions, CreateOptions, Network};
use barge_engine::store::{Container, Engine};
use barge_engine::volumes;
use barge_net::ipam::Subnet;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::format::{print_rows, Template};

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the network (only bridge)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Option<String>,
    /// IPv4 gateway for the subnet
    #[arg(long)]
    pub gateway: Option<String>,
    /// Allocate container IPs from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Option<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options (Barge's bridge driver takes none)
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Enable manual container attachment (always on for bridge networks)
    #[arg(long)]
    pub attachable: bool,
    /// The network's name
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Provide filter values (e.g. "name=NAME", "id=ID", "label=KEY[=VALUE]", "driver=bridge", "type=custom|builtin", "dangling=true")
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output (accepted, no extra detail for local networks)
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

fn engine_err(e: barge_engine::EngineError) -> anyhow::Error {
    anyhow!("{e}")
}

fn subnet(flag: &str, s: &str) -> Result<Subnet> {
    s.parse()
        .map_err(|e| anyhow!("invalid argument \"{s}\" for \"--{flag}\" flag: {e}"))
}

pub fn create(root: &Path, a: &CreateArgs) -> Result<i32> {
    if a.driver != "bridge" {
        bail!(
            "plugin \"{}\" not found: Barge has the bridge driver only (and the predefined host and none networks)",
            a.driver
        );
    }
    if let Some(o) = a.opt.first() {
        bail!("unknown network option {o:?}: the bridge driver of Barge takes no -o options");
    }
    let gateway = match &a.gateway {
        Some(g) => Some(g.parse().map_err(|_| {
            anyhow!("invalid argument \"{g}\" for \"--gateway\" flag: not an IPv4 address")
        })?),
        None => None,
    };
    let opts = CreateOptions {
        name: a.name.clone(),
        subnet: a
            .subnet
            .as_deref()
            .map(|s| subnet("subnet", s))
            .transpose()?,
        gateway,
        ip_range: a
            .ip_range
            .as_deref()
            .map(|s| subnet("ip-range", s))
            .transpose()?,
        internal: a.internal,
        labels: crate::volumes::key_values(&a.label, "label")?,
    };
    let n = network::create(root, &opts).map_err(engine_err)?;
    println!("{}", n.id);
    Ok(0)
}

/// A stable id for the predefined `host` and `none` networks of a root.
fn builtin_id(root: &Path, name: &str) -> String {
    let h = Sha256::digest(format!("{}:{name}", root.display()).as_bytes());
    hex::encode(h)
}

/// Every network as Docker's inspect shows it: the bridge ones, then
/// `host` and `none`.
fn all_networks(root: &Path) -> Result<Vec<Value>> {
    network::ensure_default(root).map_err(engine_err)?;
    let mut v: Vec<Value> = network::list(root)
        .map_err(engine_err)?
        .iter()
        .map(|n| network_json(root, n))
        .collect();
    for (name, driver) in [("host", "host"), ("none", "null")] {
        v.push(builtin_json(root, name, driver));
    }
    Ok(v)
}

fn builtin_json(root: &Path, name: &str, driver: &str) -> Value {
    json!({
        "Name": name,
        "Id": builtin_id(root, name),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}

fn network_json(root: &Path, n: &Network) -> Value {
    let mut containers = serde_json::Map::new();
    let engine = Engine::open(root).ok();
    for ep in network::network_endpoints(root, &n.name) {
        let name = engine
            .as_ref()
            .and_then(|e| e.record(&ep.container_id).ok())
            .map(|r| r.name)
            .unwrap_or_default();
        containers.insert(
            ep.container_id.clone(),
            json!({
                "Name": name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac_address,
                "IPv4Address": format!("{}/{}", ep.ip_address, ep.ip_prefix_len),
                "IPv6Address": "",
            }),
        );
    }
    let mut cfg = json!({"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()});
    if let Some(r) = n.ip_range {
        cfg["IPRange"] = json!(r.to_string());
    }
    let mut options = json!({"com.docker.network.bridge.name": n.bridge});
    if n.name == network::BRIDGE {
        options["com.docker.network.bridge.default_bridge"] = json!("true");
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [cfg]},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

/// `network ls` filters.
fn keep(v: &Value, filters: &[(String, String)]) -> Result<bool> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, val) in filters {
        by_key.entry(k.as_str()).or_default().push(val.as_str());
    }
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    for (k, vals) in by_key {
        let hit = match k {
            "name" => vals.iter().any(|x| s("Name").contains(x)),
            "id" => vals.iter().any(|x| s("Id").starts_with(x)),
            "driver" => vals.iter().any(|x| s("Driver") == *x),
            "scope" => vals.contains(&"local"),
            "type" => {
                let builtin = network::PREDEFINED.contains(&s("Name").as_str());
                vals.iter().any(|x| match *x {
                    "builtin" => builtin,
                    "custom" => !builtin,
                    _ => false,
                })
            }
            "dangling" => {
                let unused = v["Containers"].as_object().is_none_or(|m| m.is_empty())
                    && !network::PREDEFINED.contains(&s("Name").as_str());
                vals.iter().any(|x| matches!(*x, "true" | "1") == unused)
            }
            "label" => {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
                let wanted: Vec<String> = vals.iter().map(|x| x.to_string()).collect();
                volumes::labels_match(&labels, &wanted)
            }
            other => bail!("invalid filter '{other}'"),
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_filters(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|i| {
            i.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.to_string()))
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))
        })
        .collect()
}

fn title(field: &str) -> String {
    match field {
        "ID" => "NETWORK ID".into(),
        other => other.to_uppercase(),
    }
}

pub fn list(root: &Path, a: &ListArgs) -> Result<i32> {
    let filters = parse_filters(&a.filter)?;
    let mut rows = Vec::new();
    for v in all_networks(root)? {
        if !keep(&v, &filters)? {
            continue;
        }
        let id = v["Id"].as_str().unwrap_or_default();
        let shown = if a.no_trunc {
            id
        } else {
            &id[..id.len().min(12)]
        };
        let labels: Vec<String> = v["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(json!({
            "ID": shown,
            "Name": v["Name"],
            "Driver": v["Driver"],
            "Scope": "local",
            "IPv6": "false",
            "Internal": v["Internal"].as_bool().unwrap_or(false).to_string(),
            "Labels": labels.join(","),
            "CreatedAt": v["Created"],
        }));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    let fmt = match a.format.as_deref() {
        Some("json") => "{{json .}}",
        Some("table") | None => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        Some(f) => f,
    };
    let t = Template::parse(fmt)?;
    write!(out, "{}", print_rows(&t, &rows, &title)?)?;
    Ok(0)
}

/// A network's inspect JSON by name, id or id prefix.
fn lookup(root: &Path, key: &str) -> Result<Value> {
    for (name, driver) in [("host", "host"), ("none", "null")] {
        if key == name || (key.len() >= 3 && builtin_id(root, name).starts_with(key)) {
            return Ok(builtin_json(root, name, driver));
        }
    }
    let n = network::find(root, key).map_err(engine_err)?;
    Ok(network_json(root, &n))
}

/// `inspect NAME` of a network, for the top-level `inspect` (only an
/// existing network: never makes the default one).
pub fn inspect_value(root: &Path, key: &str) -> Option<Value> {
    if key == network::BRIDGE && network::read(root, key).is_err() {
        return None;
    }
    lookup(root, key).ok()
}

/// `ps`'s NETWORKS: the container's networks, or its mode.
pub fn names_text(root: &Path, c: &Container) -> String {
    let eps = network::endpoints_of(root, &c.record.id);
    if eps.is_empty() {
        let mode = &c.record.host_config.network_mode;
        return mode.strip_prefix("container:").map_or(mode.clone(), |id| {
            format!("container:{}", barge_engine::ids::short(id))
        });
    }
    eps.iter()
        .map(|e| e.network.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn inspect(root: &Path, a: &InspectArgs) -> Result<i32> {
    let mut values = Vec::new();
    let mut code = 0;
    for k in &a.names {
        match lookup(root, k) {
            Ok(v) => values.push(v),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    crate::format::print_inspect(&values, a.format.as_deref())?;
    Ok(code)
}

pub fn rm(root: &Path, a: &RmArgs) -> Result<i32> {
    let mut code = 0;
    for k in &a.names {
        match network::remove(root, k) {
            Ok(_) => println!("{k}"),
            Err(e) if a.force && e.to_string().ends_with("not found") => {}
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn prune(root: &Path, a: &PruneArgs) -> Result<i32> {
    let filters = parse_filters(&a.filter)?;
    for (k, _) in &filters {
        if !matches!(k.as_str(), "label" | "label!") {
            bail!("invalid filter '{k}'");
        }
    }
    if !a.force {
        if !std::io::stdin().is_terminal() {
            bail!("network prune asks for confirmation and stdin is not a terminal: pass -f (--force) to remove without asking");
        }
        if !crate::images::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        ) {
            return Ok(0);
        }
    }
    let gone = prune_networks(root, &filters)?;
    if !gone.is_empty() {
        println!("Deleted Networks:");
        for n in gone {
            println!("{n}");
        }
    }
    Ok(0)
}

/// Removes the unused user-defined networks matching the label filters.
pub fn prune_networks(root: &Path, filters: &[(String, String)]) -> Result<Vec<String>> {
    let matches = |n: &Network| {
        filters.iter().all(|(k, f)| {
            let has = volumes::labels_match(&n.labels, std::slice::from_ref(f));
            has != (k == "label!")
        })
    };
    network::prune(root, &matches).map_err(engine_err)
}

fn container_of(engine: &Engine, name: &str) -> Result<(String, String, Option<i32>)> {
    let id = engine.resolve(name).map_err(engine_err)?;
    let c = engine.container(&id).map_err(engine_err)?;
    let pid = (c.state.running && c.state.pid > 0).then_some(c.state.pid);
    Ok((id, c.record.name, pid))
}

pub fn connect(root: &Path, a: &ConnectArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(engine_err)?;
    let _l = engine.lock(&id).map_err(engine_err)?;
    let (id, name, pid) = container_of(&engine, &id)?;
    let rec = engine.record(&id).map_err(engine_err)?;
    let mode = rec.host_config.network_mode.as_str();
    if mode == "host" {
        bail!("container cannot be disconnected from host network or connected to host network");
    }
    if mode == "none" || mode.starts_with("container:") {
        bail!("container cannot be connected to multiple networks with one of the networks in private ({mode}) mode");
    }
    let ip = match &a.ip {
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| anyhow!("invalid IPv4 address: {ip}"))?,
        ),
        None => None,
    };
    let opts = ConnectOptions {
        ip,
        aliases: a.alias.clone(),
    };
    network::connect(root, &a.network, &id, &name, &opts, pid).map_err(engine_err)?;
    if pid.is_some() {
        // Its DNS and resolv.conf follow (a container that started on
        // `bridge` only gets the embedded DNS now).
        if let Err(e) = barge_engine::attach::notify_network_change(&engine.dir(&id)) {
            eprintln!("WARNING: {name} is connected, but its monitor did not refresh its DNS: {e}");
        }
    }
    Ok(0)
}

pub fn disconnect(root: &Path, a: &DisconnectArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(engine_err)?;
    let _l = engine.lock(&id).map_err(engine_err)?;
    let (id, name, _) = container_of(&engine, &id)?;
    let rec = engine.record(&id).map_err(engine_err)?;
    if rec.host_config.network_mode == "host" {
        bail!("container cannot be disconnected from host network or connected to host network");
    }
    network::disconnect(root, &a.network, &id, &name).map_err(engine_err)?;
    let running = engine
        .container(&id)
        .map(|c| c.state.running)
        .unwrap_or(false);
    if running {
        if let Err(e) = barge_engine::attach::notify_network_change(&engine.dir(&id)) {
            eprintln!(
                "WARNING: {name} is disconnected, but its monitor did not refresh its DNS: {e}"
            );
        }
    }
    Ok(0)
}

/// The published ports of a running container as `(key, host_ip,
/// host_port)`; none when it is not running.
fn bound(root: &Path, c: &Container) -> Vec<network::BoundPort> {
    if c.state.running {
        network::bound_ports(root, &c.record.id)
    } else {
        Vec::new()
    }
}

pub fn port(root: &Path, a: &PortArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let id = engine.resolve(&a.container).map_err(engine_err)?;
    let c = engine.container(&id).map_err(engine_err)?;
    let ports = bound(root, &c);
    let mut out = std::io::stdout().lock();
    match &a.port {
        None => {
            for p in &ports {
                writeln!(out, "{} -> {}", p.port, host_addr(p))?;
            }
        }
        Some(want) => {
            let key = if want.contains('/') {
                want.to_ascii_lowercase()
            } else {
                format!("{want}/tcp")
            };
            let hits: Vec<_> = ports.iter().filter(|p| p.port == key).collect();
            if hits.is_empty() {
                bail!("No public port '{key}' published for {}", a.container);
            }
            for p in hits {
                writeln!(out, "{}", host_addr(p))?;
            }
        }
    }
    Ok(0)
}

fn host_addr(p: &network::BoundPort) -> String {
    if p.host_ip.contains(':') {
        format!("[{}]:{}", p.host_ip, p.host_port)
    } else {
        format!("{}:{}", p.host_ip, p.host_port)
    }
}

/// `ps`'s PORTS: `0.0.0.0:8080->80/tcp` for each published port, then
/// the exposed ports that are not published.
pub fn ports_text(root: &Path, c: &Container) -> String {
    let ports = bound(root, c);
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| format!("{}->{}", host_addr(p), p.port))
        .collect();
    for k in c.record.config.exposed_ports.keys() {
        if !ports.iter().any(|p| &p.port == k) {
            parts.push(k.clone());
        }
    }
    parts.join(", ")
}

/// A container's `NetworkSettings` as Docker's inspect shows it.
pub fn settings_json(root: &Path, c: &Container) -> Value {
    let rec = &c.record;
    let eps = network::endpoints_of(root, &rec.id);
    let mut networks = serde_json::Map::new();
    for ep in &eps {
        networks.insert(
            ep.network.clone(),
            json!({
                "IPAMConfig": if ep.ipam_configured { json!({"IPv4Address": ep.ip_address}) } else { Value::Null },
                "Links": null,
                "Aliases": if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) },
                "NetworkID": ep.network_id,
                "EndpointID": ep.endpoint_id,
                "Gateway": ep.gateway,
                "IPAddress": ep.ip_address,
                "IPPrefixLen": ep.ip_prefix_len,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": ep.mac_address,
                "DriverOpts": null,
                "DNSNames": if ep.network == network::BRIDGE { Value::Null } else {
                    let mut names = vec![rec.name.clone(), barge_engine::ids::short(&rec.id).to_string()];
                    names.extend(ep.aliases.iter().cloned());
                    json!(names)
                },
            }),
        );
    }
    let mode = &rec.host_config.network_mode;
    if eps.is_empty() && matches!(mode.as_str(), "none" | "host") {
        networks.insert(
            mode.clone(),
            json!({"NetworkID": builtin_id(root, mode), "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}),
        );
    }
    let bound = bound(root, c);
    let mut ports = serde_json::Map::new();
    if c.state.running && !mode.starts_with("container:") && mode != "host" {
        for k in rec
            .config
            .exposed_ports
            .keys()
            .chain(rec.host_config.port_bindings.keys())
        {
            ports.insert(k.clone(), Value::Null);
        }
        for p in &bound {
            let entry = ports.entry(p.port.clone()).or_insert(json!([]));
            if !entry.is_array() {
                *entry = json!([]);
            }
            if let Some(a) = entry.as_array_mut() {
                a.push(json!({"HostIp": p.host_ip, "HostPort": p.host_port}));
            }
        }
    }
    // The legacy top-level fields describe the default network only.
    let default = eps.iter().find(|e| e.network == network::BRIDGE);
    let pick =
        |f: &dyn Fn(&network::Endpoint) -> Value, empty: Value| default.map(f).unwrap_or(empty);
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": if c.state.running && c.state.pid > 0 { format!("/proc/{}/ns/net", c.state.pid) } else { String::new() },
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": pick(&|e| json!(e.endpoint_id), json!("")),
        "Gateway": pick(&|e| json!(e.gateway), json!("")),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": pick(&|e| json!(e.ip_address), json!("")),
        "IPPrefixLen": pick(&|e| json!(e.ip_prefix_len), json!(0)),
        "IPv6Gateway": "",
        "MacAddress": pick(&|e| json!(e.mac_address), json!("")),
        "Networks": networks,
    })
}
