//! Executing a parsed Dockerfile: the stages the target needs, each
//! instruction in order. Metadata instructions change the image config;
//! RUN runs in a container (Docker's default security profile, through the
//! OCI runtime binary) on an overlay of the stage's layers; COPY/ADD write
//! into such an overlay; each of those becomes a layer (its upper dir's
//! diff). Filesystem steps are cached by a key chained from the base image
//! and every instruction before them (with the build args in scope and the
//! content hash of what COPY/ADD copies), so an unchanged rebuild runs no
//! container at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use barge_engine::record::{Config, ContainerRecord, HostConfig};
use barge_image::snapshot;
use barge_image::store::{Digest, Store};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::context::{Context, CopyOptions};
use crate::error::{io, BuildError, Result};
use crate::image::Image;
use crate::parser::{CmdLine, Command, Dockerfile, Instruction};

/// Predefined build args that need no ARG (Docker's proxy args).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What `barge build` was asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `-t`, each a reference.
    pub tags: Vec<String>,
    /// `--build-arg K=V` (`K` alone takes the caller's environment).
    pub build_args: BTreeMap<String, String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--runtime` for RUN steps (default barge-runc).
    pub runtime: Option<String>,
    /// `--cache-from`: local images whose layers may stand for steps
    /// (matched by the cache key each layer's history entry records).
    pub cache_from: Vec<String>,
    /// `--secret id=ID,src=PATH`: files `RUN --mount=type=secret` can read
    /// (never stored in a layer or the cache key).
    pub secrets: BTreeMap<String, PathBuf>,
    /// Fetches a base image that is not in the store (`FROM` of a registry
    /// image), or every base image with `--pull`; `None`: local images only.
    pub pull: Option<PullHook>,
    /// `--pull`: fetch base images even when they are in the store.
    pub always_pull: bool,
}

/// A function that puts the image a reference names into the store.
pub type PullFn = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// See [`BuildOptions::pull`].
#[derive(Clone)]
pub struct PullHook(pub std::sync::Arc<PullFn>);

impl std::fmt::Debug for PullHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullHook")
    }
}

/// Where progress goes: BuildKit's plain format, `#N ...` lines.
pub struct Progress {
    out: Box<dyn Write + Send>,
    quiet: bool,
    next: usize,
    start: Instant,
}

impl Progress {
    pub fn new(out: Box<dyn Write + Send>, quiet: bool) -> Progress {
        Progress {
            out,
            quiet,
            next: 1,
            start: Instant::now(),
        }
    }

    fn begin(&mut self, title: &str) -> usize {
        let n = self.next;
        self.next += 1;
        if !self.quiet {
            let _ = writeln!(self.out, "#{n} {title}");
        }
        n
    }

    fn line(&mut self, n: usize, t: Instant, text: &str) {
        if !self.quiet {
            let _ = writeln!(self.out, "#{n} {:.3} {text}", t.elapsed().as_secs_f64());
            let _ = self.out.flush();
        }
    }

    /// A line of its own (`#N writing image ...`).
    pub fn note(&mut self, text: &str) {
        if !self.quiet {
            let n = self.next;
            self.next += 1;
            let _ = writeln!(self.out, "#{n} {text}");
            let _ = writeln!(self.out, "#{n} DONE 0.0s");
            let _ = self.out.flush();
        }
    }

    fn done(&mut self, n: usize, t: Instant) {
        if !self.quiet {
            let _ = writeln!(self.out, "#{n} DONE {:.1}s", t.elapsed().as_secs_f64());
            let _ = self.out.flush();
        }
    }

    fn cached(&mut self, n: usize) {
        if !self.quiet {
            let _ = writeln!(self.out, "#{n} CACHED");
            let _ = self.out.flush();
        }
    }

    /// Seconds since the build began.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct Built {
    /// `sha256:<config digest>`.
    pub id: String,
    /// How many steps ran (not cached).
    pub ran: usize,
    /// How many filesystem steps were cached.
    pub cached: usize,
}

/// One stage being built.
#[derive(Clone)]
struct StageState {
    image: Image,
    /// Cache chain key so far.
    key: String,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
    /// CMD given in this stage (ENTRYPOINT keeps it then).
    cmd_set: bool,
}

/// The builder of one Dockerfile.
pub struct Builder<'a> {
    store: &'a Store,
    engine: &'a barge_engine::store::Engine,
    ctx: &'a Context,
    df: &'a Dockerfile,
    opts: &'a BuildOptions,
    /// Build args given and not yet consumed by an ARG (reported at the end
    /// as Docker does).
    used_args: BTreeSet<String>,
    /// Finished stages by index.
    done: HashMap<usize, StageState>,
    ran: usize,
    cached: usize,
    runtime: PathBuf,
    /// Shared by the threads of stages built in parallel.
    progress: std::sync::Arc<std::sync::Mutex<Progress>>,
    /// The `--cache-from` images.
    cache_from: Vec<Image>,
}

/// The cache entries: `<root>/build-cache/<key>` holds a manifest digest,
/// pinned in the store as `build-cache-<key>`.
fn cache_dir(root: &Path) -> PathBuf {
    root.join("build-cache")
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

impl<'a> Builder<'a> {
    pub fn new(
        store: &'a Store,
        engine: &'a barge_engine::store::Engine,
        ctx: &'a Context,
        df: &'a Dockerfile,
        opts: &'a BuildOptions,
        mut progress: Progress,
    ) -> Result<Builder<'a>> {
        let mut cache_from = Vec::new();
        for name in &opts.cache_from {
            match store.resolve(name) {
                Ok(img) => cache_from.push(Image::load(store, &img)?),
                Err(_) => progress.note(&format!(
                    "[warning] --cache-from {name}: no such image here (ignored)"
                )),
            }
        }
        let runtime =
            barge_engine::runtime::find_binary(opts.runtime.as_deref().unwrap_or("barge-runc"))?;
        Ok(Builder {
            store,
            engine,
            ctx,
            df,
            opts,
            used_args: BTreeSet::new(),
            done: HashMap::new(),
            ran: 0,
            cached: 0,
            runtime,
            progress: std::sync::Arc::new(std::sync::Mutex::new(progress)),
            cache_from,
        })
    }

    /// The index of the stage a name or number refers to.
    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self
            .df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>()
            .ok()
            .filter(|i| *i < self.df.stages.len())
    }

    /// Values of the ARGs before the first FROM (for FROM lines).
    fn meta_args(&mut self) -> Result<BTreeMap<String, String>> {
        let mut vals: BTreeMap<String, String> = BTreeMap::new();
        for ins in &self.df.meta_args {
            if let Command::Arg(list) = &ins.command {
                for (name, default) in list {
                    let v = match self.opts.build_args.get(name) {
                        Some(v) => {
                            self.used_args.insert(name.clone());
                            Some(v.clone())
                        }
                        None => match default {
                            Some(d) => Some(self.expand(ins, d, &|k| vals.get(k).cloned())?),
                            None => None,
                        },
                    };
                    if let Some(v) = v {
                        vals.insert(name.clone(), v);
                    }
                }
            }
        }
        Ok(vals)
    }

    fn expand(
        &self,
        ins: &Instruction,
        word: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String> {
        crate::parser::expand(word, self.df.escape, lookup).map_err(|e| BuildError::Step {
            line: ins.line,
            instruction: first_line(&ins.original),
            message: e.to_string(),
        })
    }

    /// The stages `target` needs, in build order.
    /// The earlier stages stage `i` uses (its base, `--from=`).
    fn stage_deps(&self, i: usize) -> Vec<usize> {
        let st = &self.df.stages[i];
        let mut deps = Vec::new();
        if let Some(j) = self.stage_index(&st.base).filter(|j| *j < i) {
            deps.push(j);
        }
        for ins in &st.instructions {
            for (k, v) in &ins.flags {
                let from = match (k.as_str(), v) {
                    ("from", Some(v)) => Some(v.clone()),
                    ("mount", Some(v)) => v
                        .split(',')
                        .find_map(|kv| kv.strip_prefix("from=").map(String::from)),
                    _ => None,
                };
                if let Some(j) = from.and_then(|f| self.stage_index(&f)).filter(|j| *j < i) {
                    deps.push(j);
                }
            }
        }
        deps
    }

    fn needed(&self, target: usize) -> Result<Vec<usize>> {
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if need.insert(i) {
                todo.extend(self.stage_deps(i));
            }
        }
        Ok(need.into_iter().collect())
    }

    /// A builder for one stage on another thread: the same inputs, the
    /// stages built so far, the shared progress printer.
    fn worker(&self) -> Builder<'a> {
        Builder {
            store: self.store,
            engine: self.engine,
            ctx: self.ctx,
            df: self.df,
            opts: self.opts,
            used_args: BTreeSet::new(),
            done: self.done.clone(),
            ran: 0,
            cached: 0,
            runtime: self.runtime.clone(),
            progress: self.progress.clone(),
            cache_from: self.cache_from.clone(),
        }
    }

    /// Builds `order` (the needed stages): each as soon as the stages it
    /// uses are done; stages that do not depend on each other at once.
    fn build_stages(&mut self, order: &[usize], meta: &BTreeMap<String, String>) -> Result<()> {
        let mut remaining: Vec<usize> = order.to_vec();
        while !remaining.is_empty() {
            let ready: Vec<usize> = remaining
                .iter()
                .copied()
                .filter(|i| {
                    self.stage_deps(*i)
                        .iter()
                        .all(|d| self.done.contains_key(d))
                })
                .collect();
            if ready.is_empty() {
                return Err(BuildError::Other(
                    "the stages depend on each other in a cycle".into(),
                ));
            }
            remaining.retain(|i| !ready.contains(i));
            if let [only] = ready[..] {
                let st = self.build_stage(only, meta)?;
                self.done.insert(only, st);
                continue;
            }
            type StageResult = (usize, Result<(StageState, BTreeSet<String>, usize, usize)>);
            let results: Vec<StageResult> = std::thread::scope(|s| {
                let handles: Vec<_> = ready
                    .iter()
                    .map(|&i| {
                        let mut w = self.worker();
                        s.spawn(move || {
                            let r = w.build_stage(i, meta);
                            (i, r.map(|st| (st, w.used_args, w.ran, w.cached)))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(ready.iter())
                    .map(|(h, &i)| {
                        h.join().unwrap_or_else(|_| {
                            (
                                i,
                                Err(BuildError::Other(format!("building stage {i} panicked"))),
                            )
                        })
                    })
                    .collect()
            });
            for (i, r) in results {
                let (st, used, ran, cached) = r?;
                self.used_args.extend(used);
                self.ran += ran;
                self.cached += cached;
                self.done.insert(i, st);
            }
        }
        Ok(())
    }

    /// Builds the target stage (or the last) and returns its image.
    pub fn build(&mut self) -> Result<(Image, Built)> {
        if self.df.stages.is_empty() {
            return Err(BuildError::Other(
                "the Dockerfile has no FROM: no build stage in current context".into(),
            ));
        }
        let target = match &self.opts.target {
            Some(t) => self.stage_index(t).ok_or_else(|| {
                BuildError::Other(format!("target stage \"{t}\" could not be found"))
            })?,
            None => self.df.stages.len() - 1,
        };
        let meta = self.meta_args()?;
        let order = self.needed(target)?;
        self.build_stages(&order, &meta)?;
        let mut last = self
            .done
            .remove(&target)
            .ok_or_else(|| BuildError::Other("the target stage was not built".into()))?;
        for (k, v) in &self.opts.labels {
            let labels = last
                .image
                .cfg()
                .entry("Labels")
                .or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            labels[k] = json!(v);
        }
        // The whole image is a cache entry too (metadata steps after the
        // last layer included): an unchanged rebuild gives the same id.
        let label_key: Vec<String> = self
            .opts
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = sha(&["image", &last.key, &label_key.join("\n")]);
        let entry = cache_dir(self.engine.root()).join(&key);
        let mut image = last.image;
        match self.cache_lookup(&entry) {
            Some(cached) if !self.opts.no_cache => image = cached,
            _ => {
                let _lock = self.store.lock_shared()?;
                self.cache_store(&entry, &key, &mut image)?;
            }
        }
        let built = Built {
            id: String::new(),
            ran: self.ran,
            cached: self.cached,
        };
        Ok((image, built))
    }

    fn base_image(&mut self, i: usize, meta: &BTreeMap<String, String>) -> Result<(Image, String)> {
        let st = &self.df.stages[i];
        let from_ins = Instruction {
            line: st.line,
            end_line: st.line,
            original: format!("FROM {}", st.base),
            flags: Vec::new(),
            heredocs: Vec::new(),
            command: Command::Maintainer(String::new()),
        };
        let base = self.expand(&from_ins, &st.base, &|k| meta.get(k).cloned())?;
        if base.eq_ignore_ascii_case("scratch") {
            return Ok((Image::scratch(), sha(&["scratch"])));
        }
        if let Some(j) = self.stage_index(&base).filter(|j| *j < i) {
            let prev = self.done.get(&j).ok_or_else(|| {
                BuildError::Other(format!("stage {base} is used before it was built"))
            })?;
            return Ok((prev.image.clone(), prev.key.clone()));
        }
        if let Some(pull) = &self.opts.pull {
            let missing = matches!(
                self.store.resolve(&base),
                Err(barge_image::store::StoreError::ImageNotFound { .. })
            );
            if missing || (self.opts.always_pull && !base.starts_with("sha256:")) {
                (pull.0)(&base).map_err(|message| BuildError::Step {
                    line: st.line,
                    instruction: format!("FROM {base}"),
                    message,
                })?;
            }
        }
        let img = self.store.resolve(&base).map_err(|e| BuildError::Step {
            line: st.line,
            instruction: format!("FROM {base}"),
            message: match e {
                barge_image::store::StoreError::ImageNotFound { .. } => format!(
                    "pull access denied or repository does not exist: {base} is not in the local store (load or import it first)"
                ),
                other => other.to_string(),
            },
        })?;
        let image = Image::load(self.store, &img)?;
        Ok((image, sha(&["image", &img.manifest_digest.to_string()])))
    }

    /// The progress printer.
    pub fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        match self.progress.lock() {
            Ok(g) => g,
            // A panicked stage thread: the printer itself is fine.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn build_stage(&mut self, i: usize, meta: &BTreeMap<String, String>) -> Result<StageState> {
        let (image, key) = self.base_image(i, meta)?;
        let mut st = StageState {
            image,
            key,
            args: BTreeMap::new(),
            cmd_set: false,
        };
        let stage = &self.df.stages[i];
        let label = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
        let total = stage.instructions.len() + 1;
        let n = self
            .progress()
            .begin(&format!("[{label} 1/{total}] FROM {}", stage.base));
        self.progress().done(n, Instant::now());
        // ONBUILD triggers of the base image run first.
        let triggers = st.image.get_list("OnBuild");
        if !triggers.is_empty() {
            st.image.cfg().remove("OnBuild");
            for t in triggers {
                let df = crate::parser::parse(&format!("FROM scratch\n{t}\n"))?;
                let ins = df
                    .stages
                    .first()
                    .and_then(|s| s.instructions.first())
                    .cloned()
                    .ok_or_else(|| BuildError::Other(format!("empty ONBUILD trigger {t:?}")))?;
                let n = self
                    .progress()
                    .begin(&format!("[{label} ONBUILD] {}", first_line(&ins.original)));
                let t0 = Instant::now();
                self.step(&mut st, &ins, n)?;
                self.progress().done(n, t0);
            }
        }
        let instructions = stage.instructions.clone();
        for (k, ins) in instructions.iter().enumerate() {
            let n = self.progress().begin(&format!(
                "[{label} {}/{total}] {}",
                k + 2,
                first_line(&ins.original)
            ));
            let t0 = Instant::now();
            let cached = self.step(&mut st, ins, n)?;
            if cached {
                self.progress().cached(n);
            } else {
                self.progress().done(n, t0);
            }
        }
        Ok(st)
    }

    /// What an instruction sees when it expands words: ENV first, then ARG.
    fn lookup_env(&self, st: &StageState) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &st.args {
            if let Some(v) = v {
                m.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in st.image.env() {
            m.insert(k, v);
        }
        m
    }

    /// The build args in scope, for the cache key and RUN's environment.
    fn args_in_scope(&self, st: &StageState) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = st
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for p in PROXY_ARGS {
            if let Some(val) = self.opts.build_args.get(*p) {
                if !st.args.contains_key(*p) {
                    v.push((p.to_string(), val.clone()));
                }
            }
        }
        v
    }

    /// Runs one instruction; true if it was taken from the cache.
    fn step(&mut self, st: &mut StageState, ins: &Instruction, n: usize) -> Result<bool> {
        let env = self.lookup_env(st);
        let lookup = |k: &str| env.get(k).cloned();
        let step_err = |message: String| BuildError::Step {
            line: ins.line,
            instruction: first_line(&ins.original),
            message,
        };
        // Metadata steps chain into the key too (they change what later
        // steps see), with the build args in scope.
        let args_key: Vec<String> = self
            .args_in_scope(st)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let base_key = sha(&[&st.key, &ins.original, &args_key.join("\n")]);
        match &ins.command {
            Command::From { .. } => {}
            Command::Maintainer(m) => {
                st.image.config.insert("author".into(), json!(m));
                st.image.add_history(&format!("MAINTAINER {m}"), true);
            }
            Command::Env(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(ins, k, &lookup)?;
                    // Later pairs of one ENV see the values before it.
                    let v = self.expand(ins, v, &lookup)?;
                    st.image.set_env(&k, &v);
                    shown.push(format!("{k}={v}"));
                }
                st.image
                    .add_history(&format!("ENV {}", shown.join(" ")), true);
            }
            Command::Arg(list) => {
                let mut shown = Vec::new();
                for (name, default) in list {
                    let v = match self.opts.build_args.get(name) {
                        Some(v) => {
                            self.used_args.insert(name.clone());
                            Some(v.clone())
                        }
                        None => match default {
                            Some(d) => Some(self.expand(ins, d, &lookup)?),
                            None => None,
                        },
                    };
                    shown.push(match &v {
                        Some(v) => format!("{name}={v}"),
                        None => name.clone(),
                    });
                    st.args.insert(name.clone(), v);
                }
                st.image
                    .add_history(&format!("ARG {}", shown.join(" ")), true);
            }
            Command::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(ins, k, &lookup)?;
                    let v = self.expand(ins, v, &lookup)?;
                    let labels = st.image.cfg().entry("Labels").or_insert_with(|| json!({}));
                    if !labels.is_object() {
                        *labels = json!({});
                    }
                    labels[&k] = json!(v);
                    shown.push(format!("{k}={v}"));
                }
                st.image
                    .add_history(&format!("LABEL {}", shown.join(" ")), true);
            }
            Command::Cmd(c) => {
                let args = self.cmd_args(st, c);
                st.image.cfg().insert("Cmd".into(), json!(args));
                st.cmd_set = true;
                st.image.add_history(&format!("CMD {}", json!(args)), true);
            }
            Command::Entrypoint(c) => {
                let args = self.cmd_args(st, c);
                st.image.cfg().insert("Entrypoint".into(), json!(args));
                if !st.cmd_set {
                    st.image.cfg().insert("Cmd".into(), Value::Null);
                }
                st.image
                    .add_history(&format!("ENTRYPOINT {}", json!(args)), true);
            }
            Command::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    for p in crate::parser::expand_words(p, self.df.escape, &lookup)
                        .map_err(|e| step_err(e.to_string()))?
                    {
                        let p = if p.contains('/') {
                            p.to_ascii_lowercase()
                        } else {
                            format!("{p}/tcp")
                        };
                        let ep = st
                            .image
                            .cfg()
                            .entry("ExposedPorts")
                            .or_insert_with(|| json!({}));
                        if !ep.is_object() {
                            *ep = json!({});
                        }
                        ep[&p] = json!({});
                        shown.push(p);
                    }
                }
                st.image
                    .add_history(&format!("EXPOSE map[{}]", shown.join(" ")), true);
            }
            Command::Volume(vols) => {
                let mut shown = Vec::new();
                for v in vols {
                    let v = self.expand(ins, v, &lookup)?;
                    if v.trim().is_empty() {
                        return Err(step_err(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    let vs = st.image.cfg().entry("Volumes").or_insert_with(|| json!({}));
                    if !vs.is_object() {
                        *vs = json!({});
                    }
                    vs[&v] = json!({});
                    shown.push(v);
                }
                st.image
                    .add_history(&format!("VOLUME {}", json!(shown)), true);
            }
            Command::User(u) => {
                let u = self.expand(ins, u, &lookup)?;
                st.image.cfg().insert("User".into(), json!(u));
                st.image.add_history(&format!("USER {u}"), true);
            }
            Command::StopSignal(s) => {
                let s = self.expand(ins, s, &lookup)?;
                barge_engine::opts::parse_signal_name(&s).map_err(|e| step_err(e.to_string()))?;
                st.image.cfg().insert("StopSignal".into(), json!(s));
                st.image.add_history(&format!("STOPSIGNAL {s}"), true);
            }
            Command::Shell(sh) => {
                st.image.cfg().insert("Shell".into(), json!(sh));
                st.image.add_history(&format!("SHELL {}", json!(sh)), true);
            }
            Command::Onbuild(inner) => {
                let text = inner.original.clone();
                let mut list = st.image.get_list("OnBuild");
                list.push(text.clone());
                st.image.cfg().insert("OnBuild".into(), json!(list));
                st.image.add_history(&format!("ONBUILD {text}"), true);
            }
            Command::Healthcheck(h) => {
                let v = match h {
                    None => json!({"Test": ["NONE"]}),
                    Some(h) => {
                        let d = |flag: &str, v: &Option<String>| -> Result<i64> {
                            match v {
                                Some(s) => barge_engine::opts::parse_duration(flag, s)
                                    .map_err(|e| step_err(e.to_string())),
                                None => Ok(0),
                            }
                        };
                        let mut m = serde_json::Map::new();
                        m.insert("Test".into(), json!(h.test));
                        for (key, flag, val) in [
                            ("Interval", "--interval", &h.interval),
                            ("Timeout", "--timeout", &h.timeout),
                            ("StartPeriod", "--start-period", &h.start_period),
                            ("StartInterval", "--start-interval", &h.start_interval),
                        ] {
                            let n = d(flag, val)?;
                            if n != 0 {
                                m.insert(key.into(), json!(n));
                            }
                        }
                        if let Some(r) = &h.retries {
                            let r: i64 = r
                                .parse()
                                .map_err(|_| step_err(format!("invalid --retries value {r:?}")))?;
                            m.insert("Retries".into(), json!(r));
                        }
                        Value::Object(m)
                    }
                };
                st.image.cfg().insert("Healthcheck".into(), v.clone());
                st.image
                    .add_history(&format!("HEALTHCHECK {}", first_line(&ins.original)), true);
            }
            Command::Workdir(w) => {
                let w = self.expand(ins, w, &lookup)?;
                let cur = st.image.get_str("WorkingDir");
                let dir = if w.starts_with('/') {
                    w.clone()
                } else {
                    let base = if cur.is_empty() { "/".to_string() } else { cur };
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                let dir = clean_path(&dir);
                st.image.cfg().insert("WorkingDir".into(), json!(dir));
                let key = base_key.clone();
                let dirc = dir.clone();
                let user = st.image.get_str("User");
                let cached =
                    self.fs_step(st, &key, &format!("WORKDIR {dir}"), &mut |b, rootfs| {
                        b.ensure_dir(rootfs, &dirc, &user)
                    })?;
                return Ok(cached);
            }
            Command::Run { cmd } => {
                let args = self.run_args(st, ins, cmd);
                let shown = format!(
                    "RUN {}",
                    match cmd {
                        CmdLine::Exec(v) => json!(v).to_string(),
                        CmdLine::Shell(_) => args.join(" "),
                    }
                );
                let key = base_key.clone();
                let ins_c = ins.clone();
                // ENV and the build args in scope (not kept in the image).
                let mut env: Vec<String> = st
                    .image
                    .env()
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                for (k, v) in self.args_in_scope(st) {
                    if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                        env.push(format!("{k}={v}"));
                    }
                }
                let run_env = RunEnv {
                    env,
                    user: st.image.get_str("User"),
                    workdir: st.image.get_str("WorkingDir"),
                };
                let cached = self.fs_step(st, &key, &shown, &mut |b, rootfs| {
                    b.run_container(&ins_c, &args, rootfs, &run_env, n)
                })?;
                return Ok(cached);
            }
            Command::Copy { sources, dest } | Command::Add { sources, dest } => {
                let is_add = matches!(ins.command, Command::Add { .. });
                return self.copy_step(st, ins, is_add, sources, dest, &base_key);
            }
        }
        // A metadata step: the key moves on, nothing is stored.
        st.key = base_key;
        Ok(false)
    }

    fn cmd_args(&self, st: &StageState, c: &CmdLine) -> Vec<String> {
        match c {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(s) => {
                let mut sh = st.image.get_list("Shell");
                if sh.is_empty() {
                    sh = vec!["/bin/sh".into(), "-c".into()];
                }
                sh.push(s.clone());
                sh
            }
        }
    }

    /// The argv of a RUN: exec form as is; shell form through SHELL, with a
    /// heredoc body as the script.
    fn run_args(&self, st: &StageState, ins: &Instruction, c: &CmdLine) -> Vec<String> {
        match c {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(s) => {
                let script = ins.heredoc_script().unwrap_or_else(|| s.clone());
                let mut sh = st.image.get_list("Shell");
                if sh.is_empty() {
                    sh = vec!["/bin/sh".into(), "-c".into()];
                }
                sh.push(script);
                sh
            }
        }
    }

    fn copy_step(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        is_add: bool,
        sources: &[String],
        dest: &str,
        base_key: &str,
    ) -> Result<bool> {
        let env = self.lookup_env(st);
        let lookup = |k: &str| env.get(k).cloned();
        let step_err = |message: String| BuildError::Step {
            line: ins.line,
            instruction: first_line(&ins.original),
            message,
        };
        let flag = |name: &str| -> Option<String> {
            ins.flags
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone().unwrap_or_default())
        };
        // `COPY <<EOF /file`: heredoc bodies become files of a scratch
        // context.
        let heredocs: Vec<&crate::parser::Heredoc> = sources
            .iter()
            .filter_map(|s| ins.heredoc_for_source(s))
            .collect();
        if !heredocs.is_empty() {
            if heredocs.len() != sources.len() {
                return Err(step_err(
                    "a COPY/ADD takes either heredocs or files as its sources, not both".into(),
                ));
            }
            return self.copy_heredocs(st, ins, &heredocs, dest, base_key);
        }
        let mut srcs = Vec::new();
        for s in sources {
            let s = self.expand(ins, s, &lookup)?;
            if is_add
                && (s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@"))
            {
                return Err(step_err(format!(
                    "ADD {s}: remote sources need the network, which builds do not have; download it into the build context and COPY it"
                )));
            }
            srcs.push(s);
        }
        let dest = self.expand(ins, dest, &lookup)?;
        let workdir = st.image.get_str("WorkingDir");
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!(
                "{}/{dest}",
                if workdir.is_empty() {
                    ""
                } else {
                    workdir.trim_end_matches('/')
                }
            )
        };
        let dest_is_dir = dest.ends_with('/') || dest == "." || srcs.len() > 1;
        if srcs.len() > 1 && !dest.ends_with('/') {
            return Err(step_err(
                "When using COPY with more than one source file, the destination must be a directory and end with a /".into(),
            ));
        }
        let chmod = match flag("chmod") {
            Some(m) => Some(u32::from_str_radix(&m, 8).map_err(|_| {
                step_err(format!(
                    "invalid chmod parameter: {m}: only octal modes are supported"
                ))
            })?),
            None => None,
        };
        // Sources: the context, or another stage's / image's filesystem.
        let from = flag("from");
        let mut _mounted: Option<TempMount> = None;
        let from_key;
        let src_ctx_owned;
        let src_ctx: &Context = match &from {
            None => {
                from_key = "context".to_string();
                self.ctx
            }
            Some(f) => {
                let f = self.expand(ins, f, &lookup)?;
                let (image, key) = match self.stage_index(&f) {
                    Some(j) => {
                        let prev = self.done.get(&j).ok_or_else(|| {
                            step_err(format!("stage {f} is not built before this step"))
                        })?;
                        (prev.image.clone(), prev.key.clone())
                    }
                    None => {
                        let img = self
                            .store
                            .resolve(&f)
                            .map_err(|e| step_err(e.to_string()))?;
                        (
                            Image::load(self.store, &img)?,
                            sha(&["image", &img.manifest_digest.to_string()]),
                        )
                    }
                };
                from_key = key;
                let m = self.mount_image(&image)?;
                src_ctx_owned = Context::from_rootfs(&m.merged)?;
                _mounted = Some(m);
                &src_ctx_owned
            }
        };
        let selected = src_ctx.select(&srcs).map_err(|e| step_err(e.to_string()))?;
        let content = src_ctx.hash(&selected)?;
        let chown = flag("chown");
        let key = sha(&[base_key, &from_key, &content]);
        let shown = format!(
            "{} {} {}",
            if is_add { "ADD" } else { "COPY" },
            srcs.join(" "),
            dest
        );
        let opts = CopyOptions {
            chown: None,
            chmod,
            dest_is_dir_hint: dest_is_dir,
            extract_archives: is_add,
            keep_owners: from.is_some(),
        };
        let cached = self.fs_step(st, &key, &shown, &mut |_b, rootfs| {
            let mut o = opts.clone();
            if let Some(c) = &chown {
                let ident = resolve_chown(rootfs, c)?;
                o.chown = Some(ident);
            }
            crate::context::copy_into(src_ctx, &selected, rootfs, &dest_abs, &o)?;
            Ok(())
        })?;
        Ok(cached)
    }

    /// `COPY <<EOF /dest`: each heredoc is a file named after its
    /// delimiter (expanded with the stage's ENV/ARG unless quoted).
    fn copy_heredocs(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        heredocs: &[&crate::parser::Heredoc],
        dest: &str,
        base_key: &str,
    ) -> Result<bool> {
        let env = self.lookup_env(st);
        let lookup = |k: &str| env.get(k).cloned();
        let mut files: Vec<(String, String)> = Vec::new();
        for h in heredocs {
            let body = if h.expand {
                self.expand(ins, &h.body(), &lookup)?
            } else {
                h.body()
            };
            files.push((h.name.clone(), body));
        }
        let dest = self.expand(ins, dest, &lookup)?;
        let workdir = st.image.get_str("WorkingDir");
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", workdir.trim_end_matches('/'))
        };
        let contents: Vec<String> = files.iter().map(|(n, b)| format!("{n}\n{b}")).collect();
        let key = sha(&[base_key, "heredoc", &contents.join("\0")]);
        let scratch = tempdir_in(&self.engine.root().join("build-tmp"))?;
        for (name, body) in &files {
            let p = scratch.path().join(name);
            std::fs::write(&p, body).map_err(io("write", &p))?;
            // BuildKit writes heredoc files 0644 (--chmod applies on copy).
            let _ =
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        }
        let ctx = Context::from_rootfs(scratch.path())?;
        let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
        let selected = ctx.select(&names)?;
        let chmod = match ins.flags.iter().rev().find(|(k, _)| k == "chmod") {
            Some((_, Some(m))) => {
                Some(u32::from_str_radix(m, 8).map_err(|_| BuildError::Step {
                    line: ins.line,
                    instruction: first_line(&ins.original),
                    message: format!("invalid chmod parameter: {m}"),
                })?)
            }
            _ => None,
        };
        let opts = CopyOptions {
            chown: None,
            chmod,
            dest_is_dir_hint: dest.ends_with('/') || names.len() > 1,
            extract_archives: false,
            keep_owners: false,
        };
        let shown = format!(
            "COPY {} {dest}",
            names
                .iter()
                .map(|n| format!("<<{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        self.fs_step(st, &key, &shown, &mut |_b, rootfs| {
            crate::context::copy_into(&ctx, &selected, rootfs, &dest_abs, &opts)?;
            Ok(())
        })
    }

    /// A filesystem step: from the cache if `key` is there, else `f` on an
    /// overlay of the stage's layers, whose upper dir becomes a layer.
    fn fs_step(
        &mut self,
        st: &mut StageState,
        key: &str,
        created_by: &str,
        f: &mut dyn FnMut(&Builder<'_>, &Path) -> Result<()>,
    ) -> Result<bool> {
        let entry = cache_dir(self.engine.root()).join(key);
        if !self.opts.no_cache {
            if let Some(img) = self.cache_lookup(&entry) {
                st.image = img;
                st.key = key.to_string();
                self.cached += 1;
                return Ok(true);
            }
            if let Some((layer, diff_id, by)) = self.layer_from_cache_images(st, key) {
                let _lock = self.store.lock_shared()?;
                st.image.add_layer(&layer.0, layer.1, &diff_id);
                st.image
                    .add_history_with(&by, false, Some(&format!("barge-cache:{key}")));
                st.key = key.to_string();
                self.cached += 1;
                self.cache_store(&entry, key, &mut st.image)?;
                return Ok(true);
            }
        }
        // Blobs written here stay unreferenced until pinned.
        let _lock = self.store.lock_shared()?;
        let (imgref, _) = st.image.write(self.store)?;
        let lowers = snapshot::unpack(self.store, &imgref)?;
        let tmp = TempMount::new(self.engine.root(), &lowers)?;
        let existed = mountpoints_present(&tmp.merged);
        f(self, &tmp.merged)?;
        tmp.unmount()?;
        remove_created_mountpoints(&tmp.upper, &existed);
        let (digest, size, diff_id) = barge_engine::fsops::store_layer(self.store, &tmp.upper)?;
        drop(tmp);
        let empty = diff_id == barge_engine::fsops::EMPTY_LAYER_DIFF_ID;
        if !empty {
            st.image.add_layer(&digest, size, &diff_id);
        }
        st.image
            .add_history_with(created_by, empty, Some(&format!("barge-cache:{key}")));
        st.key = key.to_string();
        self.ran += 1;
        self.cache_store(&entry, key, &mut st.image)?;
        Ok(false)
    }

    /// A `--cache-from` image whose layers start with this stage's and
    /// whose next layer was made by the step with this cache key.
    fn layer_from_cache_images(
        &self,
        st: &StageState,
        key: &str,
    ) -> Option<((Digest, u64), String, String)> {
        let ours = st.image.diff_ids();
        let want = format!("barge-cache:{key}");
        for cf in &self.cache_from {
            let theirs = cf.diff_ids();
            if theirs.len() <= ours.len() || theirs[..ours.len()] != ours[..] {
                continue;
            }
            // The history entry of layer number ours.len().
            let Some(entry) = cf
                .history()
                .into_iter()
                .filter(|h| {
                    !h.get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
                .nth(ours.len())
            else {
                continue;
            };
            if entry.get("comment").and_then(Value::as_str) != Some(want.as_str()) {
                continue;
            }
            let Some(layer) = cf
                .manifest
                .get("layers")
                .and_then(Value::as_array)
                .and_then(|l| l.get(ours.len()))
            else {
                continue;
            };
            let (Some(d), Some(size)) = (
                layer.get("digest").and_then(Value::as_str),
                layer.get("size").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let Ok(digest) = Digest::parse(d) else {
                continue;
            };
            if !self.store.has_blob(&digest) {
                continue;
            }
            let by = entry
                .get("created_by")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            return Some(((digest, size), theirs[ours.len()].clone(), by));
        }
        None
    }

    fn cache_lookup(&self, entry: &Path) -> Option<Image> {
        let text = std::fs::read_to_string(entry).ok()?;
        let digest = Digest::parse(text.trim()).ok()?;
        Image::load_manifest(self.store, &digest).ok()
    }

    fn cache_store(&self, entry: &Path, key: &str, image: &mut Image) -> Result<()> {
        let (imgref, _) = image.write(self.store)?;
        self.store.pin(
            &format!("build-cache-{key}"),
            std::slice::from_ref(&imgref.manifest_digest),
        )?;
        let dir = cache_dir(self.engine.root());
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        barge_engine::store::write_atomic(entry, imgref.manifest_digest.to_string().as_bytes())?;
        Ok(())
    }

    /// Mounts an image read-only (a COPY --from source).
    fn mount_image(&self, image: &Image) -> Result<TempMount> {
        let _lock = self.store.lock_shared()?;
        let mut image = image.clone();
        let (imgref, _) = image.write(self.store)?;
        let lowers = snapshot::unpack(self.store, &imgref)?;
        TempMount::new(self.engine.root(), &lowers)
    }

    /// WORKDIR: creates the missing directories, owned by the stage's USER
    /// as BuildKit does.
    fn ensure_dir(&self, rootfs: &Path, dir: &str, user: &str) -> Result<()> {
        let owner = if user.is_empty() {
            None
        } else {
            let id = barge_engine::spec::resolve_user(rootfs, user, &[])?;
            Some((id.uid, id.gid))
        };
        let mut cur = rootfs.to_path_buf();
        for comp in dir.split('/').filter(|c| !c.is_empty()) {
            cur.push(comp);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    // Follow inside the rootfs only: leave it to the
                    // runtime (a symlinked WORKDIR resolves at exec).
                    return Ok(());
                }
                Ok(_) => {
                    return Err(BuildError::Other(format!(
                        "WORKDIR {dir}: {} is not a directory",
                        cur.display()
                    )))
                }
                Err(_) => {
                    std::fs::create_dir(&cur).map_err(io("create", &cur))?;
                    if let Some((u, g)) = owner {
                        std::os::unix::fs::lchown(&cur, Some(u), Some(g))
                            .map_err(io("chown", &cur))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs a RUN step's command in a container on `rootfs`.
    fn run_container(
        &self,
        ins: &Instruction,
        args: &[String],
        rootfs: &Path,
        c: &RunEnv,
        n: usize,
    ) -> Result<()> {
        let step_err = |message: String| BuildError::Step {
            line: ins.line,
            instruction: first_line(&ins.original),
            message,
        };
        let id = barge_engine::ids::new_id()?;
        let dir = rootfs
            .parent()
            .map(|p| p.join("bundle"))
            .ok_or_else(|| BuildError::Other("no bundle dir".into()))?;
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let hostname = id[..12].to_string();
        barge_engine::spec::write_etc_files(&dir, &hostname, "")?;
        let network = ins
            .flags
            .iter()
            .find(|(k, _)| k == "network")
            .and_then(|(_, v)| v.clone())
            .unwrap_or_else(|| "none".into());
        if !matches!(network.as_str(), "none" | "host" | "default") {
            return Err(step_err(format!(
                "unsupported network mode {network:?} (none or host)"
            )));
        }
        let mut mounts = Vec::new();
        for (k, v) in &ins.flags {
            if k == "mount" {
                let v = v.clone().unwrap_or_default();
                if let Some(m) = self.run_mount(ins, &v)? {
                    mounts.push(m);
                }
            }
        }
        // Mount points the runtime creates for these mounts are not part
        // of the layer: note which are missing now, remove them after.
        let created = missing_paths(rootfs, mounts.iter().map(|m| m.target.as_str()));
        let record = ContainerRecord {
            id: id.clone(),
            name: format!("build-{hostname}"),
            created: barge_engine::time::now_rfc3339(),
            image_name: String::new(),
            image_id: String::new(),
            manifest_digest: String::new(),
            config: Config {
                hostname: hostname.clone(),
                user: c.user.clone(),
                env: c.env.clone(),
                cmd: args.to_vec(),
                working_dir: c.workdir.clone(),
                ..Config::default()
            },
            host_config: HostConfig {
                network_mode: if network == "host" {
                    "host".into()
                } else {
                    "none".into()
                },
                shm_size: 64 << 20,
                mounts,
                ..HostConfig::default()
            },
            runtime_path: self.runtime.to_string_lossy().into_owned(),
        };
        let volumes = self.engine.volumes_dir();
        let spec = barge_engine::spec::build(&barge_engine::spec::SpecInput {
            record: &record,
            rootfs,
            dir: &dir,
            volumes_dir: &volumes,
            init_binary: None,
            cgroup_v2: Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            netns_path: None,
        })?;
        barge_engine::store::write_json_atomic(&dir.join("config.json"), &spec)?;
        let rt = barge_engine::runtime::Runtime::new(
            self.runtime.clone(),
            self.engine.runtime_root(&record.runtime_path),
        );
        let log = dir.join("runtime.log");
        let mut child = rt
            .command()
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--bundle")
            .arg(&dir)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| step_err(format!("run the OCI runtime: {e}")))?;
        let mut tail: Vec<String> = Vec::new();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut threads = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || {
                for l in BufReader::new(out)
                    .lines()
                    .map_while(std::result::Result::ok)
                {
                    let _ = tx.send(l);
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || {
                for l in BufReader::new(err)
                    .lines()
                    .map_while(std::result::Result::ok)
                {
                    let _ = tx.send(l);
                }
            }));
        }
        drop(tx);
        let t0 = Instant::now();
        for l in rx {
            self.progress().line(n, t0, &l);
            tail.push(l);
            if tail.len() > 10 {
                tail.remove(0);
            }
        }
        for t in threads {
            let _ = t.join();
        }
        let status = child
            .wait()
            .map_err(|e| step_err(format!("wait for the OCI runtime: {e}")))?;
        let _ = rt.delete(&id);
        remove_if_empty(rootfs, &created);
        if !status.success() {
            let code = status.code().unwrap_or(-1);
            if let Some(msg) = barge_engine::runtime::last_log_error(&log) {
                return Err(step_err(format!("the container could not start: {msg}")));
            }
            return Err(step_err(format!(
                "process {:?} did not complete successfully: exit code: {code}{}",
                args.join(" "),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n  last output:\n    {}", tail.join("\n    "))
                }
            )));
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// `RUN --mount=type=cache|bind|tmpfs,...` as a container mount.
    fn run_mount(
        &self,
        ins: &Instruction,
        spec: &str,
    ) -> Result<Option<barge_engine::record::MountSpec>> {
        let step_err = |message: String| BuildError::Step {
            line: ins.line,
            instruction: first_line(&ins.original),
            message,
        };
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        for part in spec.split(',') {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            kv.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let kind = kv.get("type").cloned().unwrap_or_else(|| "bind".into());
        if kind == "secret" {
            let id = kv
                .get("id")
                .cloned()
                .or_else(|| {
                    kv.get("target")
                        .or(kv.get("dst"))
                        .and_then(|t| t.rsplit('/').next().map(String::from))
                })
                .ok_or_else(|| step_err(format!("--mount={spec}: a secret needs an id")))?;
            let target = kv
                .get("target")
                .or(kv.get("dst"))
                .cloned()
                .unwrap_or_else(|| format!("/run/secrets/{id}"));
            return match self.opts.secrets.get(&id) {
                Some(src) => Ok(Some(barge_engine::record::MountSpec {
                    kind: "bind".into(),
                    source: src.to_string_lossy().into_owned(),
                    target,
                    read_only: true,
                    options: vec!["no-create".into()],
                })),
                None if kv.get("required").is_some_and(|v| v != "false") => Err(step_err(format!(
                    "secret {id} not found: pass it with --secret id={id},src=PATH"
                ))),
                None => Ok(None),
            };
        }
        let target = kv
            .get("target")
            .or_else(|| kv.get("dst"))
            .or_else(|| kv.get("destination"))
            .cloned()
            .ok_or_else(|| step_err(format!("--mount={spec}: target is required")))?;
        let ro = |default: bool| -> bool {
            match (kv.get("ro").or(kv.get("readonly")), kv.get("rw")) {
                (Some(v), _) => v != "false",
                (None, Some(v)) => v == "false",
                (None, None) => default,
            }
        };
        match kind.as_str() {
            "cache" => {
                let id = kv.get("id").cloned().unwrap_or_else(|| target.clone());
                let dir = cache_dir(self.engine.root())
                    .join("mounts")
                    .join(sha(&["cache-mount", &id]));
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                Ok(Some(barge_engine::record::MountSpec {
                    kind: "bind".into(),
                    source: dir.to_string_lossy().into_owned(),
                    target,
                    read_only: ro(false),
                    options: Vec::new(),
                }))
            }
            "tmpfs" => Ok(Some(barge_engine::record::MountSpec {
                kind: "tmpfs".into(),
                source: String::new(),
                target,
                read_only: false,
                options: kv
                    .get("size")
                    .map(|s| vec![format!("size={s}")])
                    .unwrap_or_default(),
            })),
            "bind" => {
                if kv.contains_key("from") {
                    return Err(step_err(format!(
                        "--mount={spec}: binding from another stage or image is not available yet; use COPY --from"
                    )));
                }
                let source = kv
                    .get("source")
                    .or(kv.get("src"))
                    .cloned()
                    .unwrap_or_default();
                let sel = self
                    .ctx
                    .select(&[if source.is_empty() {
                        ".".into()
                    } else {
                        source.clone()
                    }])
                    .map_err(|e| step_err(e.to_string()))?;
                let path = sel
                    .first()
                    .map(|s| s.path.clone())
                    .ok_or_else(|| step_err(format!("--mount={spec}: {source} not found")))?;
                Ok(Some(barge_engine::record::MountSpec {
                    kind: "bind".into(),
                    source: path.to_string_lossy().into_owned(),
                    target,
                    read_only: ro(true),
                    options: vec!["no-create".into()],
                }))
            }
            other => Err(step_err(format!(
                "--mount={spec}: unknown mount type {other:?} (cache, bind, tmpfs, secret)"
            ))),
        }
    }

    /// Build args given but used by no ARG (Docker warns).
    pub fn unused_args(&self) -> Vec<String> {
        self.opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// The environment a RUN sees: the stage's ENV and build args, its USER
/// and WORKDIR.
#[derive(Debug, Clone, Default)]
struct RunEnv {
    env: Vec<String>,
    user: String,
    workdir: String,
}

/// A temporary overlay of some layers with its own upper dir, under
/// `<root>/build-tmp/`; unmounted and removed on drop.
struct TempMount {
    dir: PathBuf,
    merged: PathBuf,
    upper: PathBuf,
    mounted: bool,
    /// Held while in use: [`prune_cache`] takes only unlocked (stale) ones.
    _lock: std::fs::File,
}

impl TempMount {
    fn new(root: &Path, lowers: &[PathBuf]) -> Result<TempMount> {
        let base = root.join("build-tmp");
        std::fs::create_dir_all(&base).map_err(io("create", &base))?;
        let dir = base.join(&barge_engine::ids::new_id()?[..16]);
        let merged = dir.join("merged");
        let upper = dir.join("upper");
        let work = dir.join("work");
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(io("create", &empty))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io("lock", &lock_path)(e.into()))?;
        let mut t = TempMount {
            dir,
            merged: merged.clone(),
            upper: upper.clone(),
            mounted: false,
            _lock: lock,
        };
        let lowers: Vec<PathBuf> = if lowers.is_empty() {
            vec![empty]
        } else {
            lowers.to_vec()
        };
        // Overlay wants the top layer first: snapshot::mount_rw takes them
        // bottom first, as unpack returns them.
        snapshot::mount_rw(&lowers, &upper, &work, &merged)?;
        t.mounted = true;
        Ok(t)
    }

    fn unmount(&self) -> Result<()> {
        snapshot::unmount(&self.merged)?;
        Ok(())
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.mounted && snapshot::is_mounted(&self.merged) {
            let _ = snapshot::unmount(&self.merged);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `barge builder prune`: every cache entry and its pin, the cache mounts
/// of `RUN --mount=type=cache`, and the scratch of builds that died (a
/// build in progress holds a lock on its scratch). Returns the number of
/// entries removed; the caller then collects the blobs (`Store::gc`).
pub fn prune_cache(root: &Path, store: &Store) -> Result<usize> {
    let mut n = 0;
    for (name, _) in store.pins()? {
        if name.starts_with("build-cache-") && store.unpin(&name)? {
            n += 1;
        }
    }
    let dir = cache_dir(root);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    }
    let tmp = root.join("build-tmp");
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let d = e.path();
            let in_use = std::fs::File::open(d.join("lock")).is_ok_and(|f| {
                rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
            });
            if in_use {
                continue;
            }
            let merged = d.join("merged");
            if snapshot::is_mounted(&merged) {
                let _ = snapshot::unmount(&merged);
            }
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    Ok(n)
}

/// Paths the runtime may create as mount points in the rootfs.
const MOUNTPOINTS: &[&str] = &[
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc",
    "proc",
    "sys",
    "dev",
];

fn mountpoints_present(rootfs: &Path) -> Vec<bool> {
    MOUNTPOINTS
        .iter()
        .map(|p| std::fs::symlink_metadata(rootfs.join(p)).is_ok())
        .collect()
}

/// Removes from the upper dir what exists only because the runtime made
/// mount points (Docker's builds do not put them in layers).
fn remove_created_mountpoints(upper: &Path, existed: &[bool]) {
    for (p, was) in MOUNTPOINTS.iter().zip(existed) {
        if *was {
            continue;
        }
        let path = upper.join(p);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(&path);
            }
            // Only if empty: a RUN may have put files there.
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&path);
            }
            _ => {}
        }
    }
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(parent: &Path) -> Result<TempDir> {
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let d = parent.join(format!("heredoc-{}", &barge_engine::ids::new_id()?[..16]));
    std::fs::create_dir(&d).map_err(io("create", &d))?;
    Ok(TempDir(d))
}

/// The paths (each target and its missing parents) that do not exist in
/// `rootfs` yet, deepest first; none through a symlink.
fn missing_paths<'t>(rootfs: &Path, targets: impl Iterator<Item = &'t str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in targets {
        let mut cur = PathBuf::new();
        let mut missing = Vec::new();
        for comp in t.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if comp == ".." {
                missing.clear();
                break;
            }
            cur.push(comp);
            match std::fs::symlink_metadata(rootfs.join(&cur)) {
                Ok(m) if m.file_type().is_symlink() => {
                    missing.clear();
                    break;
                }
                Ok(_) => {}
                Err(_) => missing.push(cur.clone()),
            }
        }
        out.extend(missing.into_iter().rev());
    }
    out
}

/// Removes the empty files and dirs among `paths` (made as mount points).
fn remove_if_empty(rootfs: &Path, paths: &[PathBuf]) {
    for p in paths {
        let full = rootfs.join(p);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(&full);
            }
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&full);
            }
            _ => {}
        }
    }
}

/// `--chown=user[:group]` resolved in the rootfs.
fn resolve_chown(rootfs: &Path, spec: &str) -> Result<(u32, u32)> {
    let id = barge_engine::spec::resolve_user(rootfs, spec, &[])?;
    // A uid without a group: the same number as the gid (Docker's and
    // BuildKit's rule); a user name alone: its primary group.
    if !spec.contains(':') && spec.parse::<u32>().is_ok() {
        return Ok((id.uid, id.uid));
    }
    Ok((id.uid, id.gid))
}

/// First line of an instruction as written (for messages and progress).
fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or_default();
    if l.len() > 120 {
        format!(
            "{}...",
            &l[..l
                .char_indices()
                .take(117)
                .last()
                .map(|(i, c)| i + c.len_utf8())
                .unwrap_or(0)]
        )
    } else {
        l.to_string()
    }
}

/// `filepath.Clean` for absolute container paths.
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean() {
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn keys_chain() {
        assert_ne!(sha(&["a", "bc"]), sha(&["ab", "c"]));
        assert_eq!(sha(&["x"]), sha(&["x"]));
    }
}
