//! The commands on a container's file system: `cp`, `diff`, `commit` and
//! `export`, with docker-cli's flags, messages and output.
//!
//! This module owns the container side of them: finding the root file
//! system (the mounted `merged` dir of a running container, or a mount
//! made for the time of the command under the container's lock, so a
//! concurrent `start` waits), pausing a container during `commit`, and
//! wording errors as Docker does (a daemon's errors as `Error response
//! from daemon: …`, exit status 1). Path semantics and every read or
//! write inside the container are `barge_engine::fsops`'s: nothing here
//! opens a path of the container itself.
//!
//! Known differences: `cp` sees the container's own file system only,
//! not its volumes, bind mounts or the /etc/hosts, /etc/hostname and
//! /etc/resolv.conf mounted over it (Docker mounts those for a copy);
//! `commit` takes the empty mount points the runtime created in the
//! upper dir into the layer (Docker has them in an init layer); no live
//! progress bar, only the final summary.

use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use barge_engine::error::EngineError;
use barge_engine::fsops::{self, ChangeKind, CommitOptions, CopyStat};
use barge_engine::lifecycle;
use barge_engine::record::Config;
use barge_engine::store::{Container, Engine, Lock};
use barge_image::store::Store;
use serde_json::{json, Map, Value};

use crate::human;

// ------------------------------------------------------------------ errors

/// An error the Docker daemon would return: printed as `Error response
/// from daemon: …`, exit status 1.
#[derive(Debug)]
struct DaemonError(EngineError);

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DaemonError {}

impl From<EngineError> for DaemonError {
    fn from(e: EngineError) -> Self {
        DaemonError(e)
    }
}

fn daemon(e: EngineError) -> anyhow::Error {
    anyhow::Error::new(DaemonError(e))
}

/// Runs a command body: a daemon's error is printed here (exit 1), any
/// other goes to `main` (printed as `Error: …`).
fn report(body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<i32> {
    match body() {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<DaemonError>() {
            Some(d) => {
                eprintln!(
                    "Error response from daemon: {}",
                    d.to_string().replace('\n', " ")
                );
                Ok(1)
            }
            None => Err(e),
        },
    }
}

/// An I/O error worded as Go's `os` package words it (`lstat /x: no such
/// file or directory`).
fn go_io_error(op: &str, path: &Path, e: &std::io::Error) -> anyhow::Error {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => e.to_string(),
    };
    anyhow!("{op} {}: {why}", path.display())
}

// --------------------------------------------------------------- the rootfs

/// A container found by name, id or id prefix.
fn find(engine: &Engine, name: &str) -> anyhow::Result<(String, Container)> {
    let id = engine.resolve(name).map_err(daemon)?;
    let c = engine.container(&id).map_err(daemon)?;
    Ok((id, c))
}

/// A container's root file system, mounted for as long as this lives.
/// The container's lock is held throughout: a `start` meanwhile waits
/// rather than find a mount this unmounts under it.
struct Rootfs {
    dir: PathBuf,
    /// Mounted here (a stopped container): unmounted on drop.
    mounted_here: bool,
    _lock: Lock,
}

impl Rootfs {
    fn open(engine: &Engine, store: &Store, c: &Container) -> Result<Rootfs, EngineError> {
        let lock = engine.lock(&c.record.id)?;
        let dir = engine.dir(&c.record.id);
        let mounted = barge_image::snapshot::is_mounted(&lifecycle::rootfs_dir(&dir));
        if !mounted {
            lifecycle::mount_rootfs(store, &c.record, &dir)?;
        }
        Ok(Rootfs {
            dir,
            mounted_here: !mounted,
            _lock: lock,
        })
    }

    fn path(&self) -> PathBuf {
        lifecycle::rootfs_dir(&self.dir)
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.mounted_here {
            let _ = lifecycle::unmount_rootfs(&self.dir);
        }
    }
}

// -------------------------------------------------------------- host paths

/// Go's `filepath.Clean` of an absolute path.
fn clean_abs(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    let mut out = vec![b'/'];
    out.extend_from_slice(&parts.join(&b'/'));
    out
}

fn specifies_current_dir(p: &[u8]) -> bool {
    p == b"." || p.ends_with(b"/.")
}

/// docker-cli's `resolveLocalPath`: absolute and clean, with a trailing
/// `/` or `/.` of the original kept (they change what is copied).
fn resolve_local_path(p: &str) -> anyhow::Result<PathBuf> {
    let raw = p.as_bytes();
    let joined = if raw.starts_with(b"/") {
        raw.to_vec()
    } else {
        let cwd = std::env::current_dir().context("get the current directory")?;
        let mut j = cwd.as_os_str().as_bytes().to_vec();
        j.push(b'/');
        j.extend_from_slice(raw);
        j
    };
    let mut out = clean_abs(&joined);
    if !specifies_current_dir(&out) && specifies_current_dir(raw) {
        if !out.ends_with(b"/") {
            out.push(b'/');
        }
        out.push(b'.');
    }
    if !out.ends_with(b"/") && raw.ends_with(b"/") {
        out.push(b'/');
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&out)))
}

fn is_device(ft: std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    ft.is_block_device() || ft.is_char_device()
}

/// docker-cli's `ValidateOutputPath`: the parent directory must exist, and
/// an existing path must not be a device.
fn validate_output_path(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            bail!(
                "invalid output path: directory {:?} does not exist",
                dir.display().to_string()
            );
        }
    }
    if let Ok(md) = std::fs::metadata(path) {
        if is_device(md.file_type()) {
            bail!(
                "invalid output path: {:?} must be a directory or a regular file: got a device",
                path.display().to_string()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------- cp

#[derive(clap::Args, Debug)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: Option<bool>,
    /// CONTAINER:SRC_PATH, or SRC_PATH|- (a tar archive on stdin)
    #[arg(value_name = "SRC_PATH")]
    pub source: String,
    /// DEST_PATH|- (a tar archive to stdout), or CONTAINER:DEST_PATH
    #[arg(value_name = "DEST_PATH")]
    pub destination: String,
}

/// docker-cli's `splitCpArg`: `CONTAINER:PATH`, or a local path (absolute,
/// without `:`, or starting with `.` before the `:`, as `./a:b`).
fn split_cp_arg(arg: &str) -> (&str, &str) {
    if arg.starts_with('/') {
        return ("", arg);
    }
    match arg.split_once(':') {
        Some((ctr, path)) if !ctr.starts_with('.') => (ctr, path),
        _ => ("", arg),
    }
}

/// `docker cp`: a container path to a host path or stdout (`-`), or a
/// host path or stdin (`-`) to a container path.
pub fn cp(root: &Path, a: &CpArgs) -> anyhow::Result<i32> {
    if a.source.is_empty() {
        bail!("source can not be empty");
    }
    if a.destination.is_empty() {
        bail!("destination can not be empty");
    }
    // Docker: progress and summary only for a terminal, unless -q is given.
    let quiet = a.quiet.unwrap_or_else(|| !std::io::stdout().is_terminal());
    let (src_ctr, src_path) = split_cp_arg(&a.source);
    let (dst_ctr, dst_path) = split_cp_arg(&a.destination);
    match (src_ctr.is_empty(), dst_ctr.is_empty()) {
        (false, true) => {
            report(|| copy_from_container(root, a, quiet, src_ctr, src_path, dst_path))
        }
        (true, false) => report(|| copy_to_container(root, a, quiet, src_path, dst_ctr, dst_path)),
        (false, false) => bail!("copying between containers is not supported"),
        (true, true) => bail!("must specify at least one container source"),
    }
}

fn copied_summary(bytes: u64, dest: &str) {
    eprintln!("Successfully copied {} to {dest}", human::size(bytes));
}

/// A writer counting what goes through it.
struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader counting what goes through it (shared, as the engine takes
/// the reader by value).
struct CountingReader<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the archive of `src` will hold: the stat Docker's `archive` API
/// returns with it (`-L`: a symlink's target, under the link's name).
fn source_stat(rootfs: &Path, src: &str, follow_link: bool) -> Result<CopyStat, EngineError> {
    let mut st = fsops::stat_path(rootfs, src)?;
    if follow_link && st.is_symlink() {
        let target = fsops::stat_path(rootfs, &st.link_target)?;
        st.mode = target.mode;
        st.size = target.size;
    }
    Ok(st)
}

fn is_broken_pipe(e: &EngineError) -> bool {
    matches!(e, EngineError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn copy_from_container(
    root: &Path,
    a: &CpArgs,
    quiet: bool,
    ctr: &str,
    src: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let dest = if dst == "-" {
        None
    } else {
        Some(resolve_local_path(dst)?)
    };
    if let Some(d) = &dest {
        validate_output_path(d)?;
    }
    let engine = Engine::open(root)?;
    let store = crate::images::open_store(root)?;
    let (_, c) = find(&engine, ctr)?;
    let rootfs = Rootfs::open(&engine, &store, &c).map_err(daemon)?;
    let rootfs_path = rootfs.path();
    let archive = |out: &mut dyn Write| -> Result<CopyStat, EngineError> {
        if a.follow_link {
            fsops::copy_from_container_follow_link(&rootfs_path, src, out)
        } else {
            fsops::copy_from_container(&rootfs_path, src, out)
        }
    };
    let in_ctr = |e: EngineError| daemon(fsops::in_container(e, ctr));
    let Some(dest) = dest else {
        let mut out = std::io::stdout().lock();
        archive(&mut out).map_err(in_ctr)?;
        out.flush().context("write the archive to stdout")?;
        emit(&engine, "archive-path", &c, &[]);
        return Ok(());
    };
    let st = source_stat(&rootfs_path, src, a.follow_link).map_err(in_ctr)?;
    emit(&engine, "archive-path", &c, &[]);

    // The archive streams through a pipe into the extraction on the host.
    let (mut reader, writer) = std::io::pipe().context("create a pipe")?;
    let (produced, extracted) = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut w = CountingWriter {
                inner: writer,
                n: 0,
            };
            archive(&mut w).map(|_| w.n)
        });
        let extracted = fsops::extract_to_host(&mut reader, &st, &dest, a.archive).and_then(|()| {
            // The end blocks the extraction left, so the writer ends.
            std::io::copy(&mut reader, &mut std::io::sink())
                .map(|_| ())
                .map_err(|source| EngineError::Io {
                    what: "read",
                    path: "the end of the archive".into(),
                    source,
                })
        });
        // Closed before the join: a writer still writing gets EPIPE.
        drop(reader);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(EngineError::Runtime(
                "the archive writer thread panicked".into(),
            ))
        });
        (produced, extracted)
    });
    let bytes = match (produced, extracted) {
        (Ok(n), Ok(())) => n,
        (Err(p), _) if !is_broken_pipe(&p) => return Err(in_ctr(p)),
        (_, Err(x)) => return Err(anyhow::Error::new(x)),
        (Err(p), Ok(())) => return Err(in_ctr(p)),
    };
    if !quiet {
        copied_summary(bytes, &dest.to_string_lossy());
    }
    Ok(())
}

/// The container's destination as docker-cli stats it: a symlink is
/// followed (inside the container); `None` if it does not exist.
fn dest_stat(rootfs: &Path, dest: &str) -> Option<(String, CopyStat)> {
    let st = fsops::stat_path(rootfs, dest).ok()?;
    if st.is_symlink() {
        let target = st.link_target.clone();
        let t = fsops::stat_path(rootfs, &target).ok()?;
        return Some((target, t));
    }
    Some((dest.to_string(), st))
}

fn copy_to_container(
    root: &Path,
    a: &CpArgs,
    quiet: bool,
    src: &str,
    ctr: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let host_src = if src == "-" {
        None
    } else {
        let p = resolve_local_path(src)?;
        let md = std::fs::symlink_metadata(&p).map_err(|e| go_io_error("lstat", &p, &e))?;
        Some((p, md))
    };
    let engine = Engine::open(root)?;
    let store = crate::images::open_store(root)?;
    let (_, c) = find(&engine, ctr)?;
    let rootfs = Rootfs::open(&engine, &store, &c).map_err(daemon)?;
    let rootfs_path = rootfs.path();
    let in_ctr = |e: EngineError| daemon(fsops::in_container(e, ctr));

    let found = dest_stat(&rootfs_path, dst);
    if let Some((_, st)) = &found {
        if st.mode & 0o170000 == 0o060000 || st.mode & 0o170000 == 0o020000 {
            bail!(
                "destination \"{ctr}:{dst}\" must be a directory or a regular file: got a device"
            );
        }
    }
    let shown_dest = found
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| dst.to_string());
    if src == "-" && !found.as_ref().is_some_and(|(_, st)| st.is_dir()) {
        bail!("destination \"{ctr}:{dst}\" must be a directory");
    }
    if c.record.host_config.readonly_rootfs {
        return Err(daemon(EngineError::Conflict(
            "container rootfs is marked read-only".into(),
        )));
    }

    let bytes = match host_src {
        None => {
            let n = Arc::new(AtomicU64::new(0));
            let input = CountingReader {
                inner: std::io::stdin(),
                n: n.clone(),
            };
            fsops::copy_tar_to_container(&rootfs_path, input, dst).map_err(in_ctr)?;
            // Read what follows the archive's end (tar pads to a record)
            // as Docker sends all of it: the writer never sees EPIPE.
            let rest = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
                .context("read the archive from stdin")?;
            n.load(Ordering::Relaxed) + rest
        }
        Some((p, md)) if a.follow_link && md.file_type().is_symlink() => {
            follow_link_to_container(&rootfs_path, &p, found.as_ref(), dst, a.archive)
                .map_err(in_ctr)?
        }
        Some((p, _)) => {
            fsops::copy_to_container(&rootfs_path, &p, dst, a.archive).map_err(in_ctr)?
        }
    };
    emit(&engine, "extract-to-dir", &c, &[]);
    if !quiet {
        copied_summary(bytes, &format!("{ctr}:{shown_dest}"));
    }
    Ok(())
}

/// `cp -L LINK CTR:DEST`: the link's target is copied under the link's
/// name (docker-cli's `CopyInfoSourcePath` with `followLink`).
fn follow_link_to_container(
    rootfs: &Path,
    link: &Path,
    dest: Option<&(String, CopyStat)>,
    dst: &str,
    archive: bool,
) -> Result<u64, EngineError> {
    let target = std::fs::canonicalize(link).map_err(|source| EngineError::Io {
        what: "lstat",
        path: link.to_path_buf(),
        source,
    })?;
    let name = link
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let src = if target.is_dir() {
        target.join(".")
    } else {
        target
    };
    match dest {
        // Into an existing directory: name the entry after the link.
        Some((path, st)) if st.is_dir() => {
            let into = format!("{}/{}", path.trim_end_matches('/'), name.to_string_lossy());
            fsops::copy_to_container(rootfs, &src, &into, archive)
        }
        // Elsewhere the entry takes the destination's name anyway.
        _ => fsops::copy_to_container(rootfs, &src, dst, archive),
    }
}

fn emit(engine: &Engine, action: &str, c: &Container, extra: &[(&str, String)]) {
    barge_engine::events::emit_container(engine.root(), action, &c.record, extra);
}

// -------------------------------------------------------------------- diff

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    pub container: String,
}

/// Mount points every container gets: Docker keeps them in an init layer
/// below the container's own layer, so `docker diff` never lists them.
/// Barge has no init layer; the runtime creates those missing from the
/// image in the container's upper dir.
const INIT_LAYER_PATHS: [&str; 11] = [
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

fn is_below(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// Mode or owner of a directory differ between the upper dir and the
/// topmost lower layer that has it.
fn attributes_changed(upper: &Path, lowers: &[PathBuf], path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    let Ok(up) = std::fs::symlink_metadata(upper.join(rel)) else {
        return true;
    };
    for l in lowers.iter().rev() {
        if let Ok(low) = std::fs::symlink_metadata(l.join(rel)) {
            return up.mode() != low.mode() || up.uid() != low.uid() || up.gid() != low.gid();
        }
    }
    true
}

/// The changes as Docker reports them: the init layer's mount points left
/// out, and a directory reported only because one was created in it
/// (its mtime changed) too.
fn hide_init_layer(
    changes: Vec<fsops::Change>,
    upper: &Path,
    lowers: &[PathBuf],
) -> Vec<fsops::Change> {
    let init: HashSet<&str> = INIT_LAYER_PATHS.into_iter().collect();
    let (hidden, kept): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .partition(|c| init.contains(c.path.as_str()));
    kept.iter()
        .filter(|c| {
            c.kind != ChangeKind::Changed
                || !hidden.iter().any(|h| is_below(&h.path, &c.path))
                || kept.iter().any(|o| is_below(&o.path, &c.path))
                || attributes_changed(upper, lowers, &c.path)
        })
        .cloned()
        .collect()
}

/// `docker diff`: `A`, `C` and `D` lines for the container's own layer.
pub fn diff(root: &Path, a: &DiffArgs) -> anyhow::Result<i32> {
    report(|| {
        let engine = Engine::open(root)?;
        let store = crate::images::open_store(root)?;
        let (id, c) = find(&engine, &a.container)?;
        let upper = engine.dir(&id).join("upper");
        if !upper.is_dir() {
            // Never started: nothing changed.
            return Ok(());
        }
        let lowers = lifecycle::lowers(&store, &c.record).map_err(daemon)?;
        let changes = fsops::diff(&upper, &lowers).map_err(daemon)?;
        let mut out = std::io::stdout().lock();
        for ch in hide_init_layer(changes, &upper, &lowers) {
            writeln!(out, "{ch}")?;
        }
        out.flush()?;
        Ok(())
    })
}

// ------------------------------------------------------------------ commit

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub pause: bool,
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// The container's `Config` as an image's `config` (Docker's casing), what
/// `docker commit` starts from before `--change`: the fields an image
/// carries, the empty ones left out.
fn image_config_of(c: &Config) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    if !c.user.is_empty() {
        put("User", json!(c.user));
    }
    if !c.exposed_ports.is_empty() {
        put("ExposedPorts", json!(c.exposed_ports));
    }
    if !c.env.is_empty() {
        put("Env", json!(c.env));
    }
    if !c.entrypoint.is_empty() {
        put("Entrypoint", json!(c.entrypoint));
    }
    if !c.cmd.is_empty() {
        put("Cmd", json!(c.cmd));
    }
    if let Some(h) = &c.healthcheck {
        put(
            "Healthcheck",
            serde_json::to_value(h).unwrap_or(Value::Null),
        );
    }
    if !c.volumes.is_empty() {
        put("Volumes", json!(c.volumes));
    }
    if !c.working_dir.is_empty() {
        put("WorkingDir", json!(c.working_dir));
    }
    if !c.labels.is_empty() {
        put("Labels", json!(c.labels));
    }
    if let Some(s) = &c.stop_signal {
        put("StopSignal", json!(s));
    }
    Value::Object(m)
}

/// `docker commit`: the container's upper dir as a new layer on its image,
/// the container paused meanwhile (unless `--pause=false`).
pub fn commit(root: &Path, a: &CommitArgs) -> anyhow::Result<i32> {
    report(|| {
        let engine = Engine::open(root)?;
        let store = crate::images::open_store(root)?;
        let (id, c) = find(&engine, &a.container)?;
        if c.state.dead || c.state.status == "dead" {
            return Err(daemon(EngineError::Conflict(format!(
                "You cannot commit container {id} which is Dead"
            ))));
        }
        // As Docker, a failed pause is no reason not to commit.
        let paused_here =
            a.pause && c.state.status == "running" && lifecycle::pause(&engine, &id, true).is_ok();
        let committed = commit_paused(&engine, &store, &id, &c, a);
        if paused_here {
            let _ = lifecycle::pause(&engine, &id, false);
        }
        let image_id = committed?;
        println!("{image_id}");
        Ok(())
    })
}

fn commit_paused(
    engine: &Engine,
    store: &Store,
    id: &str,
    c: &Container,
    a: &CommitArgs,
) -> anyhow::Result<String> {
    let _lock = engine.lock(id).map_err(daemon)?;
    let base = store
        .resolve(&c.record.manifest_digest)
        .map_err(|e| daemon(e.into()))?;
    let upper = engine.dir(id).join("upper");
    // A container never started has no upper dir yet: an empty layer.
    std::fs::create_dir_all(&upper).with_context(|| format!("create {}", upper.display()))?;
    let opts = CommitOptions {
        reference: a.reference.clone(),
        author: a.author.clone().unwrap_or_default(),
        message: a.message.clone().unwrap_or_default(),
        changes: a.change.clone(),
        container_config: image_config_of(&c.record.config),
        container_id: id.to_string(),
    };
    let image_id = fsops::commit(store, &base, &upper, &opts).map_err(daemon)?;
    let image_ref = a
        .reference
        .as_deref()
        .and_then(|r| barge_image::store::parse_reference(r).ok())
        .map(|r| r.familiar())
        .unwrap_or_default();
    emit(
        engine,
        "commit",
        c,
        &[
            ("comment", opts.message.clone()),
            ("imageID", image_id.clone()),
            ("imageRef", image_ref),
        ],
    );
    Ok(image_id)
}

// ------------------------------------------------------------------ export

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

/// `docker export`: the container's whole root file system as a tar, to
/// stdout (never a terminal) or a file (written beside it, then renamed).
pub fn export(root: &Path, a: &ExportArgs) -> anyhow::Result<i32> {
    let output = a.output.as_deref().filter(|p| !p.as_os_str().is_empty());
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    if let Some(p) = output {
        validate_output_path(p).context("failed to export container")?;
    }
    report(|| {
        let engine = Engine::open(root)?;
        let store = crate::images::open_store(root)?;
        let (_, c) = find(&engine, &a.container)?;
        let rootfs = Rootfs::open(&engine, &store, &c).map_err(daemon)?;
        match output {
            None => {
                let mut out = std::io::stdout().lock();
                fsops::export(&rootfs.path(), &mut out).map_err(daemon)?;
                out.flush().context("write the archive to stdout")?;
            }
            Some(p) => export_to_file(&rootfs.path(), p)?,
        }
        emit(&engine, "export", &c, &[]);
        Ok(())
    })
}

/// docker-cli's `CopyToFile`: a temporary file (mode 0600) in the same
/// directory, renamed over `path` once complete.
fn export_to_file(rootfs: &Path, path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.barge-export-{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        fsops::export(rootfs, &mut f).map_err(daemon)?;
        f.sync_all()
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_args_split_as_docker_cli() {
        assert_eq!(split_cp_arg("ctr:/etc"), ("ctr", "/etc"));
        assert_eq!(split_cp_arg("ctr:etc/x"), ("ctr", "etc/x"));
        assert_eq!(split_cp_arg("/abs:path"), ("", "/abs:path"));
        assert_eq!(split_cp_arg("./file:name"), ("", "./file:name"));
        assert_eq!(split_cp_arg("plain"), ("", "plain"));
        assert_eq!(split_cp_arg("-"), ("", "-"));
    }

    #[test]
    fn local_paths_keep_a_trailing_slash_or_dot() {
        assert_eq!(
            resolve_local_path("/a/b/../c/").unwrap(),
            Path::new("/a/c/")
        );
        assert_eq!(resolve_local_path("/a/b/.").unwrap(), Path::new("/a/b/."));
        assert_eq!(resolve_local_path("/a//b").unwrap(), Path::new("/a/b"));
        assert_eq!(resolve_local_path("/").unwrap(), Path::new("/"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(resolve_local_path("x").unwrap(), cwd.join("x"));
    }

    #[test]
    fn init_layer_mount_points_are_hidden() {
        let ch = |kind, path: &str| fsops::Change {
            kind,
            path: path.into(),
        };
        let t = tempfile::tempdir().unwrap();
        let (upper, lower) = (t.path().join("upper"), t.path().join("lower"));
        for d in [&upper, &lower] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
            std::fs::create_dir_all(d.join("var")).unwrap();
        }
        let changes = vec![
            ch(ChangeKind::Changed, "/etc"),
            ch(ChangeKind::Added, "/etc/hostname"),
            ch(ChangeKind::Added, "/etc/hosts"),
            ch(ChangeKind::Added, "/proc"),
            ch(ChangeKind::Changed, "/var"),
            ch(ChangeKind::Added, "/var/x"),
        ];
        let shown: Vec<String> =
            hide_init_layer(changes.clone(), &upper, std::slice::from_ref(&lower))
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(shown, ["C /var", "A /var/x"]);

        let mut more = changes;
        more.insert(1, ch(ChangeKind::Changed, "/etc/passwd"));
        let shown: Vec<String> = hide_init_layer(more, &upper, &[lower])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["C /etc", "C /etc/passwd", "C /var", "A /var/x"]);
    }
}
