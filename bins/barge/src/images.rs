//! The image commands: list, tag, remove, inspect, history, prune, disk
//! usage and the store check, printed as the docker CLI prints them.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use barge_engine::store::{Container, Engine};
use barge_image::store::{parse_reference, Digest, ImageRecord, Platform, Store, MAX_CONFIG_BYTES};
use clap::Args;
use serde_json::{json, Value};

use crate::format::{print_rows, Template};
use crate::human;

pub fn open_store(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("open the image store at {}", root.display()))
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (dangling=, reference=, label=)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Only images of this repository[:tag]
    pub repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image (all its tags)
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

fn short_id(d: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.hex()[..12].to_string()
    }
}

/// (repository, tag) of a stored reference, in docker's familiar form.
fn repo_tag(reference: &str) -> (String, String) {
    match parse_reference(reference) {
        Ok(r) => {
            let tag = r.tag.clone().unwrap_or_else(|| "<none>".into());
            let mut untagged = r.clone();
            untagged.tag = None;
            untagged.digest = None;
            (untagged.familiar(), tag)
        }
        Err(_) => (reference.to_string(), "<none>".into()),
    }
}

/// A simple glob: `*` any run, `?` one character.
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(
        &pattern.chars().collect::<Vec<_>>(),
        &s.chars().collect::<Vec<_>>(),
    )
}

struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<(String, Option<String>)>,
}

fn parse_filters(f: &[String]) -> Result<Filters> {
    let mut out = Filters {
        dangling: None,
        references: Vec::new(),
        labels: Vec::new(),
    };
    for item in f {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid filter '{item}': expected key=value"))?;
        match k {
            "dangling" => {
                out.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}': use true or false"),
                })
            }
            "reference" => out.references.push(v.to_string()),
            "label" => out.labels.push(match v.split_once('=') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (v.to_string(), None),
            }),
            other => bail!("invalid filter '{other}': supported are dangling, reference and label"),
        }
    }
    Ok(out)
}

fn created_secs(r: &ImageRecord) -> i64 {
    r.created
        .as_deref()
        .and_then(human::parse_rfc3339)
        .unwrap_or(0)
}

/// One row per repository:tag, like `docker images`.
fn image_rows(store: &Store, a: &ListArgs) -> Result<Vec<Value>> {
    let filters = parse_filters(&a.filter)?;
    let mut images = store.images()?;
    images.sort_by_key(|r| std::cmp::Reverse(created_secs(r)));
    let now = human::now();
    let mut rows = Vec::new();
    for img in &images {
        if let Some(d) = filters.dangling {
            if d != img.refs.is_empty() {
                continue;
            }
        }
        if !filters
            .labels
            .iter()
            .all(|(k, v)| match (img.labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                _ => false,
            })
        {
            continue;
        }
        let refs: Vec<(String, String)> = if img.refs.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.refs.iter().map(|r| repo_tag(r)).collect()
        };
        for (repo, tag) in refs {
            let name = format!("{repo}:{tag}");
            if !filters.references.is_empty()
                && !filters
                    .references
                    .iter()
                    .any(|p| glob(p, &repo) || glob(p, &name))
            {
                continue;
            }
            if let Some(want) = &a.repository {
                let (want_repo, want_tag) =
                    match want.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                        Some((r, t)) => (r.to_string(), Some(t.to_string())),
                        None => (want.clone(), None),
                    };
                let want_repo = parse_reference(&want_repo).map(|r| {
                    let mut r = r;
                    r.tag = None;
                    r.familiar()
                });
                if want_repo.ok().as_deref() != Some(repo.as_str())
                    || want_tag.as_deref().is_some_and(|t| t != tag)
                {
                    continue;
                }
            }
            let secs = created_secs(img);
            rows.push(json!({
                "ID": short_id(&img.config_digest, a.no_trunc),
                "Repository": repo,
                "Tag": tag,
                "Digest": img.target_digest.to_string(),
                "CreatedSince": if secs > 0 { human::since(now - secs) } else { "N/A".into() },
                "CreatedAt": img.created.clone().unwrap_or_default(),
                "Size": human::size(img.size),
                "Containers": "N/A",
            }));
        }
    }
    Ok(rows)
}

fn title(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "CreatedBy" => "CREATED BY".into(),
        other => other.to_uppercase(),
    }
}

pub fn list(store: &Store, a: &ListArgs) -> Result<i32> {
    let rows = image_rows(store, a)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or_default();
            if seen.insert(id.to_string()) {
                writeln!(out, "{id}")?;
            }
        }
        return Ok(0);
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let fmt = match a.format.as_deref() {
        Some("json") => "{{json .}}",
        Some("table") | None => default,
        Some(f) => f,
    };
    let t = Template::parse(fmt)?;
    write!(out, "{}", print_rows(&t, &rows, &title)?)?;
    Ok(0)
}

pub fn tag(store: &Store, source: &str, target: &str) -> Result<i32> {
    let img = store
        .resolve(source)
        .map_err(|e| anyhow!("No such image: {source} ({e})"))?;
    let r = parse_reference(target).map_err(|e| anyhow!("{e}"))?;
    if r.digest.is_some() {
        bail!("invalid reference format: a tag cannot contain a digest ({target})");
    }
    store.tag(&r.to_string(), img.target.clone())?;
    Ok(0)
}

/// The engine's containers (the engine and the image store share a root);
/// none if no container was ever made there.
fn containers(store: &Store) -> Result<Vec<Container>> {
    if !store.root().join("containers").is_dir() {
        return Ok(Vec::new());
    }
    Ok(Engine::open(store.root())?.list()?)
}

/// Does `c` run from this image (Docker compares image ids)?
fn uses(c: &Container, manifest: &Digest, config: &Digest) -> bool {
    c.record.manifest_digest == manifest.to_string() || c.record.image_id == config.to_string()
}

pub fn rmi(store: &Store, a: &RmiArgs) -> Result<i32> {
    let users = containers(store)?;
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for name in &a.images {
        match rmi_one(store, &users, name, a.force) {
            Ok(lines) => {
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    // Pinned images (those of containers) keep their blobs and layers.
    let _ = store.gc(&|_| false);
    Ok(code)
}

/// Docker's `ImageDelete`: by name, untag that name (refused without -f if
/// it is the last one and a container uses the image); by id, untag every
/// name and delete the image, refused if a running container uses it (even
/// with -f), or a stopped one, or several names hold it (without -f).
/// An image a container uses stays pinned in the store after deletion.
fn rmi_one(store: &Store, users: &[Container], name: &str, force: bool) -> Result<Vec<String>> {
    let img = store
        .resolve(name)
        .map_err(|_| anyhow!("No such image: {name}"))?;
    let short = &img.config_digest.hex()[..12];
    let using: Vec<&Container> = users
        .iter()
        .filter(|c| uses(c, &img.manifest_digest, &img.config_digest))
        .collect();
    let running = using.iter().find(|c| crate::monitoring::is_running(c));
    let stopped = using.iter().find(|c| !crate::monitoring::is_running(c));
    let cid = |c: &Container| barge_engine::ids::short(&c.record.id).to_string();
    let mut lines = Vec::new();
    let by_name = parse_reference(name).ok().and_then(|r| {
        let full = r.to_string();
        img.names.iter().find(|n| **n == full).cloned()
    });
    match by_name {
        Some(n) => {
            if !force && img.names.len() == 1 {
                if let Some(c) = using.first() {
                    bail!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {short}",
                        cid(c)
                    );
                }
            }
            store.untag(&n)?;
            let (repo, tag) = repo_tag(&n);
            lines.push(format!("Untagged: {repo}:{tag}"));
            if img.names.len() > 1 {
                return Ok(lines);
            }
            if running.is_some() {
                // Docker keeps an image a running container uses, untagged.
                store.add_untagged(img.target.clone())?;
                return Ok(lines);
            }
        }
        None => {
            let conflict = |hard: bool, what: String| {
                let how = if hard {
                    "cannot be forced"
                } else {
                    "must be forced"
                };
                anyhow!("conflict: unable to delete {short} ({how}) - {what}")
            };
            if let Some(c) = running {
                return Err(conflict(
                    true,
                    format!("image is being used by running container {}", cid(c)),
                ));
            }
            if !force && img.names.len() > 1 {
                return Err(conflict(
                    false,
                    "image is referenced in multiple repositories".into(),
                ));
            }
            if let (false, Some(c)) = (force, stopped) {
                return Err(conflict(
                    false,
                    format!("image is being used by stopped container {}", cid(c)),
                ));
            }
            for n in &img.names {
                store.untag(n)?;
                let (repo, tag) = repo_tag(n);
                lines.push(format!("Untagged: {repo}:{tag}"));
            }
        }
    }
    store.remove_entries(&Digest::try_from(img.target.digest())?)?;
    lines.push(format!("Deleted: {}", img.config_digest));
    Ok(lines)
}

fn config_value(store: &Store, id: &Digest) -> Result<Value> {
    Ok(store.read_json::<Value>(id, MAX_CONFIG_BYTES)?)
}

pub fn inspect_value(store: &Store, name: &str) -> Result<Value> {
    let img = store
        .resolve(name)
        .map_err(|_| anyhow!("No such image: {name}"))?;
    let cfg = config_value(store, &img.config_digest)?;
    let rec = store
        .images()?
        .into_iter()
        .find(|r| r.manifest_digest == img.manifest_digest);
    let repo_tags: Vec<String> = img
        .names
        .iter()
        .map(|n| {
            let (r, t) = repo_tag(n);
            format!("{r}:{t}")
        })
        .collect();
    let repo_digests: Vec<String> = img
        .names
        .iter()
        // The registry's digest: the index's for a multi-platform image.
        .map(|n| format!("{}@{}", repo_tag(n).0, img.target.digest()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let layer_size: u64 = img.manifest.layers().iter().map(|l| l.size()).sum();
    Ok(json!({
        "Id": img.config_digest.to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        // The image's own comment (commit -m), else its newest history entry's.
        "Comment": cfg
            .get("comment")
            .cloned()
            .or_else(|| {
                cfg.get("history")
                    .and_then(Value::as_array)
                    .and_then(|h| h.last())
                    .and_then(|e| e.get("comment").cloned())
            })
            .unwrap_or(json!("")),
        "Created": cfg.get("created").cloned().unwrap_or(json!("")),
        "DockerVersion": cfg.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": cfg.get("author").cloned().unwrap_or(json!("")),
        "Config": cfg.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": cfg.get("architecture").cloned().unwrap_or(json!("")),
        "Variant": cfg.get("variant").cloned().unwrap_or(Value::Null),
        "Os": cfg.get("os").cloned().unwrap_or(json!("")),
        "Size": layer_size,
        "VirtualSize": rec.map(|r| r.size).unwrap_or(layer_size),
        "GraphDriver": {"Name": "overlay", "Data": null},
        "RootFS": {
            "Type": cfg.pointer("/rootfs/type").cloned().unwrap_or(json!("layers")),
            "Layers": cfg.pointer("/rootfs/diff_ids").cloned().unwrap_or(json!([])),
        },
        "Metadata": {"LastTagTime": ""},
    }))
}

pub fn inspect(store: &Store, a: &InspectArgs) -> Result<i32> {
    let mut values = Vec::new();
    let mut code = 0;
    for name in &a.images {
        match inspect_value(store, name) {
            Ok(v) => values.push(v),
            Err(e) => {
                eprintln!("Error: {e:#}");
                code = 1;
            }
        }
    }
    crate::format::print_inspect(&values, a.format.as_deref())?;
    Ok(code)
}

pub fn history(store: &Store, a: &HistoryArgs) -> Result<i32> {
    let img = store
        .resolve(&a.image)
        .map_err(|_| anyhow!("No such image: {}", a.image))?;
    let cfg = config_value(store, &img.config_digest)?;
    let layers = img.manifest.layers();
    let hist = cfg
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let now = human::now();
    let mut rows = Vec::new();
    let mut layer_i = 0;
    for h in &hist {
        let empty = h
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = layers.get(layer_i).map(|l| l.size()).unwrap_or(0);
            layer_i += 1;
            s
        };
        let created = h
            .get("created")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let by = h
            .get("created_by")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let by_shown = if a.no_trunc || by.chars().count() <= 45 {
            by.clone()
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        let secs = human::parse_rfc3339(&created);
        rows.push(json!({
            "ID": "<missing>",
            "CreatedSince": secs.map(|s| human::since(now - s)).unwrap_or_else(|| "N/A".into()),
            "CreatedAt": created,
            "CreatedBy": by_shown,
            "Size": if a.human { human::size(size) } else { size.to_string() },
            "Comment": h.get("comment").and_then(Value::as_str).unwrap_or_default(),
        }));
    }
    if rows.is_empty() {
        for l in layers {
            rows.push(
                json!({"ID": "<missing>", "CreatedSince": "N/A", "CreatedAt": "", "CreatedBy": "",
                "Size": human::size(l.size()), "Comment": ""}),
            );
        }
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["ID"] = json!(short_id(&img.config_digest, a.no_trunc));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    let fmt = a
        .format
        .as_deref()
        .unwrap_or("table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}");
    let t = Template::parse(fmt)?;
    write!(
        out,
        "{}",
        print_rows(&t, &rows, &|f| if f == "ID" {
            "IMAGE".into()
        } else {
            title(f)
        })?
    )?;
    Ok(0)
}

/// Docker's `[y/N]` prompt (on stdout); anything but `y`, or end of input,
/// is a no.
pub(crate) fn confirm(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}

pub fn prune(store: &Store, a: &PruneArgs) -> Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(&format!("{warning}\nAre you sure you want to continue?")) {
        return Ok(0);
    }
    // Images containers use (pinned by them) are never pruned, nor any
    // other pinned image (`image mount`). Pins of containers that never
    // came to be (a killed `create`) go first.
    if let Ok(engine) = barge_engine::store::Engine::open(store.root()) {
        barge_engine::lifecycle::drop_stale_pins(&engine, store)?;
    }
    let users = containers(store)?;
    let pinned: HashSet<Digest> = store.pins()?.into_values().flatten().collect();
    let mut lines = Vec::new();
    for img in store.images()? {
        if !img.refs.is_empty() && !a.all {
            continue;
        }
        if pinned.contains(&img.target_digest)
            || pinned.contains(&img.manifest_digest)
            || users
                .iter()
                .any(|c| uses(c, &img.manifest_digest, &img.config_digest))
        {
            continue;
        }
        for r in &img.refs {
            store.untag(r)?;
            let (repo, tag) = repo_tag(r);
            lines.push(format!("untagged: {repo}:{tag}"));
        }
        store.remove_entries(&img.target_digest)?;
        lines.push(format!("deleted: {}", img.config_digest));
    }
    let report = store.gc(&|_| false)?;
    let mut out = std::io::stdout().lock();
    if !lines.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        crate::monitoring::human_size(report.bytes_freed)
    )?;
    Ok(0)
}

/// Bytes in the files under `p` (0 if it is missing).
pub(crate) fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Disk the images that containers use take (blobs and unpacked layers,
/// shared ones included): what no image prune can free.
fn used_image_bytes(store: &Store, users: &[Container]) -> u64 {
    let mut blobs: HashSet<Digest> = HashSet::new();
    let mut chains: HashSet<String> = HashSet::new();
    for c in users {
        let Ok(d) = c.record.manifest_digest.parse::<Digest>() else {
            continue;
        };
        let Ok((md, m)) = store.resolve_manifest(&d, &Platform::host()) else {
            continue;
        };
        let Ok(cd) = Digest::try_from(m.config().digest()) else {
            continue;
        };
        if let Ok(ids) = store.read_config_info(&cd).and_then(|i| i.chain_ids()) {
            chains.extend(ids);
        }
        blobs.extend(
            m.layers()
                .iter()
                .filter_map(|l| Digest::try_from(l.digest()).ok()),
        );
        blobs.insert(md);
        blobs.insert(cd);
    }
    let blob_bytes: u64 = blobs.iter().filter_map(|b| store.blob_size(b).ok()).sum();
    let layer_bytes: u64 = chains
        .iter()
        .filter_map(|c| store.layer_dir(c).ok())
        .map(|d| dir_size(&d))
        .sum();
    blob_bytes + layer_bytes
}

/// `SIZE (PCT%)` as docker prints RECLAIMABLE.
fn reclaimable(part: u64, total: u64) -> String {
    let size = crate::monitoring::human_size(part);
    match (part.min(total) * 100).checked_div(total) {
        Some(pct) => format!("{size} ({pct}%)"),
        None => size,
    }
}

/// `system df`: images, containers (their writable layer: the upper dir),
/// local volumes and the build cache, as `docker system df` counts them.
pub fn system_df(store: &Store) -> Result<i32> {
    use crate::monitoring::{human_size, is_running};
    let users = containers(store)?;
    let images = store.images()?;
    let image_bytes =
        dir_size(&store.root().join("blobs")) + dir_size(&store.root().join("layers"));
    let active_images = images
        .iter()
        .filter(|i| {
            users
                .iter()
                .any(|c| uses(c, &i.manifest_digest, &i.config_digest))
        })
        .count();
    let image_free = image_bytes.saturating_sub(used_image_bytes(store, &users));

    let engine_dir = store.root().join("containers");
    let (mut ct_bytes, mut ct_free) = (0, 0);
    for c in &users {
        let rw = dir_size(&engine_dir.join(&c.record.id).join("upper"));
        ct_bytes += rw;
        if !is_running(c) {
            ct_free += rw;
        }
    }
    let active_containers = users.iter().filter(|c| is_running(c)).count();

    let mut volumes = 0;
    let (mut vol_bytes, mut vol_free, mut active_volumes) = (0, 0, 0);
    if let Ok(rd) = std::fs::read_dir(store.root().join("volumes")) {
        for e in rd.flatten() {
            let vname = e.file_name().to_string_lossy().into_owned();
            if vname.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            volumes += 1;
            let size = dir_size(&e.path());
            vol_bytes += size;
            let used = users.iter().any(|c| {
                c.record
                    .host_config
                    .mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.source == vname)
            });
            if used {
                active_volumes += 1;
            } else {
                vol_free += size;
            }
        }
    }
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len(), "Active": active_images,
               "Size": human_size(image_bytes), "Reclaimable": reclaimable(image_free, image_bytes)}),
        json!({"Type": "Containers", "TotalCount": users.len(), "Active": active_containers,
               "Size": human_size(ct_bytes), "Reclaimable": reclaimable(ct_free, ct_bytes)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes, "Active": active_volumes,
               "Size": human_size(vol_bytes), "Reclaimable": reclaimable(vol_free, vol_bytes)}),
        json!({"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": "0B", "Reclaimable": "0B"}),
    ];
    let t = Template::parse(
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    )?;
    let titles = |f: &str| {
        if f == "TotalCount" {
            "TOTAL".into()
        } else {
            f.to_uppercase()
        }
    };
    print!("{}", print_rows(&t, &rows, &titles)?);
    Ok(0)
}

pub fn system_check(store: &Store) -> Result<i32> {
    let report = store.check()?;
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for p in &report.problems {
        *by_kind.entry(format!("{:?}", p.kind)).or_default() += 1;
        println!("{:?}: {}: {}", p.kind, p.subject, p.detail);
    }
    println!(
        "checked {} blobs ({}) and {} manifests: {}",
        report.blobs_checked,
        human::size(report.bytes_checked),
        report.manifests_checked,
        if report.problems.is_empty() {
            "no problems".to_string()
        } else {
            format!("{} problem(s)", report.problems.len())
        }
    );
    Ok(if report.is_ok() { 0 } else { 1 })
}

pub fn import(
    store: &Store,
    file: &str,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
) -> Result<i32> {
    let input: Box<dyn std::io::Read> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("open {file}"))?)
    };
    let source = if file == "-" { "-" } else { file };
    let imported = barge_image::import::import(
        store,
        input,
        reference,
        changes,
        message,
        source,
        &barge_engine::time::now_rfc3339(),
    )?;
    println!("{}", imported.id);
    Ok(0)
}

fn mount_point(store: &Store, id: &Digest) -> std::path::PathBuf {
    store.root().join("mounts").join(id.hex()).join("merged")
}

/// `image mount`: unpack what is missing, stack the layers read-only, and
/// pin the image so GC keeps its layers while it is mounted.
pub fn mount(store: &Store, name: &str) -> Result<i32> {
    let img = store
        .resolve(name)
        .map_err(|_| anyhow!("No such image: {name}"))?;
    let target = mount_point(store, &img.config_digest);
    if !barge_image::snapshot::is_mounted(&target) {
        let _lock = store.lock_shared()?;
        let lowers = barge_image::snapshot::unpack(store, &img)?;
        store.pin(
            &format!("mount:{}", img.config_digest.hex()),
            std::slice::from_ref(&img.manifest_digest),
        )?;
        if let Err(e) = barge_image::snapshot::mount_readonly(&lowers, &target) {
            let _ = store.unpin(&format!("mount:{}", img.config_digest.hex()));
            return Err(e.into());
        }
    }
    println!("{}", target.display());
    Ok(0)
}

pub fn unmount(store: &Store, name: &str) -> Result<i32> {
    let img = store
        .resolve(name)
        .map_err(|_| anyhow!("No such image: {name}"))?;
    let target = mount_point(store, &img.config_digest);
    if !barge_image::snapshot::is_mounted(&target) {
        bail!("image {name} is not mounted");
    }
    barge_image::snapshot::unmount(&target)?;
    let _ = std::fs::remove_dir(&target);
    if let Some(parent) = target.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    store.unpin(&format!("mount:{}", img.config_digest.hex()))?;
    println!("{}", img.config_digest);
    Ok(0)
}

/// `save`: an archive to a file (written beside it, then renamed, so a
/// killed save never leaves a partial file under the final name) or stdout.
pub fn save(store: &Store, output: Option<&Path>, format: &str, images: &[String]) -> Result<i32> {
    use barge_image::archive::{self, ArchiveFormat};
    let format = match format {
        "docker-archive" | "docker" => ArchiveFormat::DockerArchive,
        "oci-archive" | "oci" => ArchiveFormat::OciArchive,
        other => bail!("unknown --format {other:?}: use docker-archive or oci-archive"),
    };
    let names: Vec<&str> = images.iter().map(String::as_str).collect();
    match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = dir.join(format!(".{name}.barge-save-{}", std::process::id()));
            let result = (|| -> Result<()> {
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("create {}", tmp.display()))?;
                archive::save(store, &names, format, &f)?;
                f.sync_all()?;
                std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
                Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            archive::save(store, &names, format, std::io::stdout().lock())?;
        }
    }
    Ok(0)
}

/// `load`: add the archive's images, unpack their layers (so the first
/// container starts at once) and report them as docker does.
pub fn load(store: &Store, input: Option<&Path>, quiet: bool) -> Result<i32> {
    use barge_image::archive;
    let mut progress = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let report = match input {
        Some(p) => archive::load_file(store, p, &mut progress)?,
        None => archive::load(store, std::io::stdin().lock(), &mut progress)?,
    };
    {
        let _lock = store.lock_shared()?;
        for (_, id) in &report.images {
            let img = store.resolve(&id.to_string())?;
            barge_image::snapshot::unpack(store, &img)?;
        }
    }
    for (refs, id) in &report.images {
        if refs.is_empty() {
            println!("Loaded image ID: {id}");
        }
        for r in refs {
            let (repo, tag) = repo_tag(r);
            println!("Loaded image: {repo}:{tag}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_docker_reference_filters() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:latest", "busybox:latest"));
        assert!(!glob("busy?", "busybox"));
        assert!(glob("localhost/*", "localhost/app"));
    }

    #[test]
    fn familiar_repo_and_tag() {
        assert_eq!(
            repo_tag("docker.io/library/busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            repo_tag("localhost/app:1"),
            ("localhost/app".into(), "1".into())
        );
    }
}
