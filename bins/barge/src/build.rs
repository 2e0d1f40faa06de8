//! `barge build` and `barge builder prune`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use barge_build::builder::{BuildOptions, Builder, Progress};
use barge_build::context::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag); may be repeated
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; - reads it from stdin)
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long)]
    pub label: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Images to consider as cache sources (local images)
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Set type of progress output (auto, plain, tty, quiet)
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Check the Dockerfile for errors without building
    #[arg(long)]
    pub check: bool,
    /// OCI runtime for RUN steps
    #[arg(long)]
    pub runtime: Option<String>,
    /// Secret to expose to RUN --mount=type=secret (id=ID,src=PATH or id=ID,env=VAR)
    #[arg(long)]
    pub secret: Vec<String>,
    /// The build context: a directory, or - for a tar on stdin
    pub context: String,
}

pub fn build(root: &Path, a: &BuildArgs) -> Result<i32> {
    let engine = barge_engine::store::Engine::open(root)?;
    let store = crate::images::open_store(root)?;
    if a.context == "-" && a.file.as_deref() == Some("-") {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    for t in &a.tags {
        barge_image::store::parse_reference(t)
            .map_err(|e| anyhow!("invalid argument \"{t}\" for \"-t, --tag\" flag: {e}"))?;
    }
    if !matches!(
        a.progress.as_str(),
        "auto" | "plain" | "tty" | "quiet" | "rawjson"
    ) {
        bail!(
            "invalid progress mode {:?} (auto, plain, tty, quiet)",
            a.progress
        );
    }
    let tmp_parent = root.join("build-context");
    std::fs::create_dir_all(&tmp_parent)
        .with_context(|| format!("create {}", tmp_parent.display()))?;
    let ctx = if a.context == "-" {
        Context::from_tar(std::io::stdin().lock(), &tmp_parent)?
    } else {
        let dir = Path::new(&a.context);
        if !dir.is_dir() {
            bail!("unable to prepare context: path {:?} not found", a.context);
        }
        let df_path = match a.file.as_deref() {
            Some("-") | None => None,
            Some(f) => Some(PathBuf::from(f)),
        };
        Context::from_dir(dir, df_path.as_deref())?
    };
    let text = match a.file.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .take(10 << 20 | 1)
                .read_to_string(&mut s)
                .context("read the Dockerfile from stdin")?;
            if s.len() > 10 << 20 {
                bail!("the Dockerfile on stdin is larger than 10 MiB");
            }
            s
        }
        Some(f) => ctx.read_dockerfile(Some(Path::new(f)))?,
        None => ctx.read_dockerfile(None)?,
    };
    let df = barge_build::parser::parse(&text).map_err(|e| {
        if e.message.contains("no build stage") {
            anyhow!("{e} (a Dockerfile must start with FROM, after parser directives, comments and ARGs)")
        } else {
            anyhow!("{e}")
        }
    })?;
    if a.check {
        println!("Check complete, no warnings found.");
        return Ok(0);
    }
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let labels = barge_engine::opts::parse_label(&a.label)?;
    // Secrets: files given by path, or written from an environment variable
    // into a private file removed after the build.
    let mut secrets = BTreeMap::new();
    let secret_dir = tempfile_dir(&root.join("build-context"))?;
    for (i, spec) in a.secret.iter().enumerate() {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for kv in spec.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => bail!("invalid secret {spec:?}: use id=ID,src=PATH or id=ID,env=VAR"),
            }
        }
        let id = id
            .or_else(|| env.clone())
            .ok_or_else(|| anyhow!("invalid secret {spec:?}: no id"))?;
        let path = match (src, env) {
            (Some(p), _) => {
                if !p.is_file() {
                    bail!("secret {id}: {} is not a file", p.display());
                }
                std::fs::canonicalize(&p)?
            }
            (None, Some(var)) => {
                let v = std::env::var(&var)
                    .map_err(|_| anyhow!("secret {id}: environment variable {var} is not set"))?;
                let p = secret_dir.0.join(format!("secret-{i}"));
                std::fs::write(&p, v)?;
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o400))?;
                p
            }
            (None, None) => bail!("invalid secret {spec:?}: give src=PATH or env=VAR"),
        };
        secrets.insert(id, path);
    }
    let opts = BuildOptions {
        tags: a.tags.clone(),
        build_args,
        labels,
        target: a.target.clone(),
        no_cache: a.no_cache,
        runtime: a.runtime.clone(),
        secrets,
        cache_from: a.cache_from.clone(),
        pull: Some(crate::registry::build_pull_hook(root)),
        always_pull: a.pull,
    };
    let quiet = a.quiet || a.progress == "quiet";
    let progress = Progress::new(Box::new(std::io::stderr()), quiet);
    let mut builder = Builder::new(&store, &engine, &ctx, &df, &opts, progress)?;
    let (mut image, built) = builder.build()?;
    let _lock = store.lock_shared()?;
    let (img, desc) = image.write(&store)?;
    let id = img.config_digest.to_string();
    builder.progress().note(&format!("writing image {id} done"));
    if a.tags.is_empty() {
        store.add_untagged(desc)?;
    } else {
        for t in &a.tags {
            let r = barge_image::store::parse_reference(t)?;
            store.tag(&r.to_string(), desc.clone())?;
            builder.progress().note(&format!("naming to {r} done"));
        }
    }
    drop(_lock);
    let unused = builder.unused_args();
    if !unused.is_empty() && !quiet {
        eprintln!(
            "[Warning] One or more build-args {unused:?} were not consumed (ran {} steps, {} from the cache)",
            built.ran, built.cached
        );
    }
    if let Some(p) = &a.iidfile {
        std::fs::write(p, &id).with_context(|| format!("write {}", p.display()))?;
    }
    if quiet {
        println!("{id}");
    }
    std::io::stdout().flush().ok();
    Ok(0)
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Remove all build cache (the same here: every entry)
    #[arg(short, long)]
    pub all: bool,
}

/// `barge builder prune`: drops every build cache entry (and the cache
/// mounts of RUN --mount=type=cache), then collects the blobs and layers
/// nothing else uses.
pub fn prune(root: &Path, a: &BuilderPruneArgs) -> Result<i32> {
    if !a.force
        && !crate::images::confirm(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let store = crate::images::open_store(root)?;
    let n = barge_build::builder::prune_cache(root, &store)?;
    let report = store.gc(&|_| false)?;
    println!("Deleted build cache objects: {n}");
    println!(
        "Total reclaimed space: {}",
        crate::human::size(report.bytes_freed)
    );
    Ok(0)
}

/// A private temp dir (0700) removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(parent: &Path) -> Result<TempDir> {
    std::fs::create_dir_all(parent)?;
    let d = parent.join(format!("secrets-{}", &barge_engine::ids::new_id()?[..16]));
    std::fs::create_dir(&d)?;
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(TempDir(d))
}
