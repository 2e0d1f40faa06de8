//! Volume commands: `volume create`, `ls`, `inspect`, `rm`, `prune`, with
//! Docker's flags and output. The work is in `barge_engine::volumes`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use barge_engine::store::Engine;
use barge_engine::volumes;
use serde_json::{json, Value};

use crate::format::{print_rows, Template};

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Specify volume name
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// The volume name
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true", "name=NAME", "label=KEY[=VALUE]")
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
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Do not fail when a volume does not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn key_values(list: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for kv in list {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                m.insert(k.to_string(), v.to_string());
            }
            _ if what == "label" && !kv.is_empty() => {
                m.insert(kv.clone(), String::new());
            }
            _ => bail!("invalid argument \"{kv}\" for \"--{what}\" flag: expected key=value"),
        }
    }
    Ok(m)
}

fn engine_err(e: barge_engine::EngineError) -> anyhow::Error {
    anyhow!("{e}")
}

pub fn create(root: &Path, a: &CreateArgs) -> Result<i32> {
    let name = match (&a.name_flag, &a.name) {
        (Some(f), Some(p)) if f != p => {
            bail!("conflicting options: either specify --name or provide positional arg, not both")
        }
        (Some(n), _) | (None, Some(n)) => Some(n.as_str()),
        (None, None) => None,
    };
    if a.driver != "local" {
        bail!(
            "create {}: error looking up volume plugin {}: plugin {:?} not found (Barge has only the local driver)",
            name.unwrap_or_default(),
            a.driver,
            a.driver
        );
    }
    let labels = key_values(&a.label, "label")?;
    let opts = key_values(&a.opt, "opt")?;
    let engine = Engine::open(root)?;
    let v = volumes::create(&engine, name, labels, opts).map_err(engine_err)?;
    println!("{}", v.meta.name);
    Ok(0)
}

/// `volume ls` filters: dangling, name (substring), label, driver.
struct ListFilters {
    dangling: Option<bool>,
    names: Vec<String>,
    labels: Vec<String>,
    drivers: Vec<String>,
}

fn parse_filters(items: &[String], accepted: &[&str]) -> Result<ListFilters> {
    let mut f = ListFilters {
        dangling: None,
        names: Vec::new(),
        labels: Vec::new(),
        drivers: Vec::new(),
    };
    for item in items {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        let k = k.trim().to_ascii_lowercase();
        if !accepted.contains(&k.as_str()) {
            bail!("invalid filter '{k}'");
        }
        match k.as_str() {
            "dangling" => {
                f.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}'"),
                })
            }
            "name" => f.names.push(v.to_string()),
            "label" => f.labels.push(v.to_string()),
            _ => f.drivers.push(v.to_string()),
        }
    }
    Ok(f)
}

fn title(field: &str) -> String {
    match field {
        "Name" => "VOLUME NAME".into(),
        "Mountpoint" => "MOUNTPOINT".into(),
        other => other.to_uppercase(),
    }
}

pub fn list(root: &Path, a: &ListArgs) -> Result<i32> {
    let f = parse_filters(&a.filter, &["dangling", "name", "label", "driver"])?;
    let engine = Engine::open(root)?;
    let mut rows = Vec::new();
    for v in volumes::list(&engine).map_err(engine_err)? {
        let m = &v.meta;
        if !f.names.is_empty() && !f.names.iter().any(|n| m.name.contains(n.as_str())) {
            continue;
        }
        if !volumes::labels_match(&m.labels, &f.labels) {
            continue;
        }
        if !f.drivers.is_empty() && !f.drivers.iter().any(|d| d == "local") {
            continue;
        }
        if let Some(dangling) = f.dangling {
            let used = !volumes::users(&engine, &m.name)
                .map_err(engine_err)?
                .is_empty();
            if dangling == used {
                continue;
            }
        }
        let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(json!({
            "Availability": "N/A",
            "Driver": "local",
            "Group": "N/A",
            "Labels": labels.join(","),
            "Links": "N/A",
            "Mountpoint": v.mountpoint,
            "Name": m.name,
            "Scope": "local",
            "Size": "N/A",
            "Status": "",
        }));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r["Name"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    let fmt = match a.format.as_deref() {
        Some("json") => "{{json .}}",
        Some("table") | None => "table {{.Driver}}\t{{.Name}}",
        Some(f) => f,
    };
    let t = Template::parse(fmt)?;
    write!(out, "{}", print_rows(&t, &rows, &title)?)?;
    Ok(0)
}

pub fn inspect(root: &Path, a: &InspectArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let mut values: Vec<Value> = Vec::new();
    let mut code = 0;
    for n in &a.names {
        match volumes::get(&engine, n) {
            Ok(v) => values.push(v.inspect_json()),
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
    let engine = Engine::open(root)?;
    let mut code = 0;
    for n in &a.names {
        match volumes::remove(&engine, n, a.force) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn prune(root: &Path, a: &PruneArgs) -> Result<i32> {
    let f = parse_filters(&a.filter, &["label"])?;
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force {
        if !std::io::stdin().is_terminal() {
            bail!("volume prune asks for confirmation and stdin is not a terminal: pass -f (--force) to remove without asking");
        }
        if !crate::images::confirm(&format!("{warning}\nAre you sure you want to continue?")) {
            return Ok(0);
        }
    }
    let engine = Engine::open(root)?;
    let (removed, bytes) = volumes::prune(&engine, a.all, &f.labels).map_err(engine_err)?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Deleted Volumes:")?;
        for n in &removed {
            writeln!(out, "{n}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        crate::monitoring::human_size(bytes)
    )?;
    Ok(0)
}
