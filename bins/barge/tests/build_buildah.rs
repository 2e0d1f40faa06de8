//! `barge build` against `buildah bud`: the same Dockerfile and context,
//! built by both engines from the same busybox base, must give the same
//! root filesystem and the same config.
//!
//! Each test starts a private buildah (storage, run root, containers.conf,
//! registries.conf, signature policy and TMPDIR all in a temp dir, removed
//! at the end; only containers/image's shared blob-info cache under
//! /var/lib/containers/cache is written, as any root podman does) and gives
//! it barge's own `busybox` (`barge save` + `buildah pull docker-archive:`),
//! so `FROM busybox` means the same bytes for both. buildah builds with
//! `--network none` (no netavark, no firewall rules) and `--layers --format
//! docker`: a layer per instruction as Docker makes (without `--layers`
//! buildah runs a stage's RUNs in one container, so a later RUN changes an
//! earlier one's files in place instead of copying them up, which a hard
//! link shows), and a Docker config (with Healthcheck, Shell and OnBuild,
//! which the OCI one drops).
//!
//! Both images are mounted (`barge image mount`, `buildah from` + `buildah
//! mount`) and every entry is listed: path, type, permission bits, owner,
//! size and sha256 of a file, target of a symlink, device number, and the
//! other paths a file is hard-linked with. Times are not compared. Config:
//! the fields in `CONFIG_FIELDS`, "nothing" spelled any way counting as one.
//!
//! What may differ, each for a reason given where it is allowed: the
//! mount-point stubs buildah commits (`buildah_stub`), the directories it
//! makes for VOLUMEs (`buildah_volume_dir`), its version label
//! (`normalized`); per case, the differences where buildah departs from
//! Docker (`Case::buildah_departs`) and the barge bugs found and not fixed
//! yet (`Case::barge_bugs`), each of which must still show, so that the
//! lists shrink as bugs are fixed.
//!
//! buildah 1.28 (Debian 12) has no heredocs: the heredoc case gives buildah
//! the same build written without them.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use barge_image::store::Digest;
use common::{Env, Out};
use serde_json::Value;

/// Config fields compared (Docker's image config names).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

// ---------------------------------------------------------------- buildah

/// A private buildah: its own storage and configuration under a temp dir.
struct Buildah {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Buildah {
    /// Sets up the private store and puts barge's `busybox` in it.
    fn new(e: &Env) -> Buildah {
        let bin = find_in_path("buildah").unwrap_or_else(|| {
            panic!(
                "buildah is not installed: these tests compare `barge build` with `buildah bud`; \
                 install it with `apt-get install -y buildah` (scripts/setup.sh does)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("barge-buildah-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("tmp")).unwrap();
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
                d.display()
            ),
        )
        .unwrap();
        // No systemd as PID 1 on the test VMs (cgroupfs); root may lack
        // CAP_SYS_RESOURCE, so the default ulimits must not exceed ours;
        // runc because crun refuses hybrid cgroup hosts.
        let (nofile, nproc) = hard_limits();
        let mut conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             netns = \"none\"\n\
             [network]\nnetwork_config_dir = \"{0}/networks\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
            d.display()
        );
        if let Some(runc) = find_in_path("runc") {
            conf.push_str(&format!(
                "runtime = \"runc\"\n[engine.runtimes]\nrunc = [\"{}\"]\n",
                runc.display()
            ));
        }
        fs::write(d.join("containers.conf"), conf).unwrap();
        // Short names are never looked up in a registry.
        fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
        )
        .unwrap();
        fs::write(
            d.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        let b = Buildah { bin, dir };
        let archive = b.dir.path().join("busybox.tar");
        e.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
        let src = format!("docker-archive:{}", archive.display());
        b.ok(&["pull", "--quiet", "--signature-policy", &b.policy(), &src]);
        // The archive says busybox:latest: buildah stores it as localhost/busybox.
        b.ok(&["inspect", "-t", "image", "localhost/busybox:latest"]);
        b
    }

    fn policy(&self) -> String {
        self.dir.path().join("policy.json").display().to_string()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(&self.bin);
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("TMPDIR", d.join("tmp"))
            .env_remove("BUILDAH_LAYERS")
            .env_remove("BUILDAH_FORMAT")
            .env_remove("BUILDAH_ISOLATION")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let o = self.cmd(args).output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "buildah {args:?}: {o}");
        o.stdout
    }

    /// The image's Docker config (`buildah inspect`'s `.Docker.config`).
    fn config(&self, image: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", "-t", "image", image])).unwrap();
        v["Docker"]["config"].clone()
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all"]);
        let _ = self.run(&["rmi", "--all", "--force"]);
        // Whatever containers/storage still has mounted under the temp dir.
        for m in mounts_under(self.dir.path()).iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
        for m in mounts_under(self.dir.path()).iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// A mounted buildah image: a working container and its mount, removed on drop.
struct BuildahMount<'a> {
    b: &'a Buildah,
    ctr: String,
    path: PathBuf,
}

impl<'a> BuildahMount<'a> {
    fn new(b: &'a Buildah, image: &str) -> BuildahMount<'a> {
        let ctr = b
            .ok(&[
                "from",
                "--quiet",
                "--pull=never",
                "--signature-policy",
                &b.policy(),
                image,
            ])
            .trim()
            .to_string();
        let path = PathBuf::from(b.ok(&["mount", &ctr]).trim());
        BuildahMount { b, ctr, path }
    }
}

impl Drop for BuildahMount<'_> {
    fn drop(&mut self) {
        let _ = self.b.run(&["umount", &self.ctr]);
        let _ = self.b.run(&["rm", &self.ctr]);
    }
}

/// A mounted barge image, unmounted on drop.
struct BargeMount<'a> {
    e: &'a Env,
    image: String,
    path: PathBuf,
}

impl<'a> BargeMount<'a> {
    fn new(e: &'a Env, image: &str) -> BargeMount<'a> {
        let path = PathBuf::from(e.ok(&["image", "mount", image]).trim());
        BargeMount {
            e,
            image: image.to_string(),
            path,
        }
    }
}

impl Drop for BargeMount<'_> {
    fn drop(&mut self) {
        let _ = self.e.run(&["image", "unmount", &self.image]);
    }
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Our hard limits on open files and processes (processes at most
/// kernel.pid_max: the runtime under buildah sees no more).
fn hard_limits() -> (u64, u64) {
    use rustix::process::{getrlimit, Resource};
    let nofile = getrlimit(Resource::Nofile).maximum.unwrap_or(1 << 20);
    let pid_max: u64 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let nproc = getrlimit(Resource::Nproc)
        .maximum
        .unwrap_or(pid_max)
        .min(pid_max);
    (nofile, nproc)
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

// ---------------------------------------------------------------- listing

/// One entry of a root filesystem, as compared.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// `d` directory, `f` file, `l` symlink, `p` fifo, `c`/`b` devices, `s` socket.
    kind: char,
    /// Permission bits with setuid, setgid and sticky.
    mode: u32,
    uid: u32,
    gid: u32,
    /// Files: size and sha256 of the content.
    size: u64,
    digest: String,
    /// Symlinks: the target.
    target: String,
    /// Devices: the device number.
    rdev: u64,
    /// Files: the other paths of the same inode, sorted.
    links: Vec<String>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04o} {}:{}",
            self.kind, self.mode, self.uid, self.gid
        )?;
        match self.kind {
            'f' => write!(f, " {} bytes sha256:{}", self.size, &self.digest[..16])?,
            'l' => write!(f, " -> {}", self.target)?,
            'c' | 'b' => write!(f, " dev {:#x}", self.rdev)?,
            _ => {}
        }
        if !self.links.is_empty() {
            write!(f, " hard-linked with {:?}", self.links)?;
        }
        Ok(())
    }
}

/// Every entry under `root` (not `root` itself), by path from `/`.
fn listing(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for de in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = de.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            let ft = md.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                'f'
            } else if ft.is_fifo() {
                'p'
            } else if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else {
                's'
            };
            let mut e = Entry {
                kind,
                mode: md.permissions().mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: 0,
                digest: String::new(),
                target: String::new(),
                rdev: 0,
                links: Vec::new(),
            };
            match kind {
                'd' => stack.push(p.clone()),
                'f' => {
                    let data = fs::read(&p).unwrap();
                    e.size = data.len() as u64;
                    e.digest = Digest::of_bytes(&data).hex().to_string();
                    inodes
                        .entry((md.dev(), md.ino()))
                        .or_default()
                        .push(rel.clone());
                }
                'l' => e.target = fs::read_link(&p).unwrap().display().to_string(),
                'c' | 'b' => e.rdev = md.rdev(),
                _ => {}
            }
            out.insert(rel, e);
        }
    }
    for paths in inodes.values().filter(|v| v.len() > 1) {
        for p in paths {
            let mut others: Vec<String> = paths.iter().filter(|o| *o != p).cloned().collect();
            others.sort();
            out.get_mut(p).unwrap().links = others;
        }
    }
    out
}

/// Paths buildah leaves in an image that Docker's builders do not: when the
/// base image lacks them, buildah creates /etc/hostname (and, with a
/// network, /etc/hosts and /etc/resolv.conf) as empty files to bind-mount
/// its generated ones onto in every RUN container, and /run to mount
/// /run/.containerenv under, and commits those mount points with the layer
/// (BuildKit removes its mount stubs; barge mounts nothing there). Only
/// the empty stubs are let through: a real file or a non-empty directory
/// at one of these paths is compared as any other.
fn buildah_stub(path: &str, e: &Entry, listing: &BTreeMap<String, Entry>) -> bool {
    match path {
        "/etc/hosts" | "/etc/hostname" | "/etc/resolv.conf" => {
            e.kind == 'f' && e.size == 0 && e.uid == 0
        }
        "/run" => e.kind == 'd' && !listing.keys().any(|p| p.starts_with("/run/")),
        _ => false,
    }
}

/// buildah also creates every VOLUME of the config as an empty directory
/// in the image; BuildKit's VOLUME only changes the config.
fn buildah_volume_dir(
    path: &str,
    e: &Entry,
    volumes: &Value,
    listing: &BTreeMap<String, Entry>,
) -> bool {
    let inside = format!("{path}/");
    e.kind == 'd' && volumes.get(path).is_some() && !listing.keys().any(|p| p.starts_with(&inside))
}

/// The differences between the two listings, keyed `path /P`; `volumes`
/// is buildah's config's Volumes.
fn compare_listings(
    barge: &BTreeMap<String, Entry>,
    buildah: &BTreeMap<String, Entry>,
    volumes: &Value,
) -> Vec<(String, String)> {
    let mut diffs = Vec::new();
    let mut paths: Vec<&String> = barge.keys().chain(buildah.keys()).collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        match (barge.get(p), buildah.get(p)) {
            (Some(a), Some(b)) if a == b => {}
            (None, Some(b))
                if buildah_stub(p, b, buildah) || buildah_volume_dir(p, b, volumes, buildah) => {}
            (a, b) => diffs.push((
                format!("path {p}"),
                format!(
                    "barge: {}\n      buildah: {}",
                    a.map_or("(absent)".to_string(), |e| e.to_string()),
                    b.map_or("(absent)".to_string(), |e| e.to_string())
                ),
            )),
        }
    }
    diffs
}

// ---------------------------------------------------------------- config

/// A config field with the ways of saying "nothing" made one (`null`).
fn normalized(field: &str, v: &Value) -> Value {
    let mut v = v.clone();
    if field == "Labels" {
        // buildah labels every image with its version.
        if let Some(m) = v.as_object_mut() {
            m.remove("io.buildah.version");
        }
    }
    let empty = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        Value::Null
    } else {
        v
    }
}

fn compare_configs(barge: &Value, buildah: &Value) -> Vec<(String, String)> {
    CONFIG_FIELDS
        .iter()
        .filter_map(|f| {
            let a = normalized(f, &barge[*f]);
            let b = normalized(f, &buildah[*f]);
            (a != b).then(|| {
                (
                    format!("config {f}"),
                    format!("barge: {a}\n      buildah: {b}"),
                )
            })
        })
        .collect()
}

// ---------------------------------------------------------------- contexts

/// A build context in a temp dir.
struct Ctx {
    dir: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            dir: tempfile::Builder::new()
                .prefix("barge-buildah-ctx-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn at(&self, p: &str) -> PathBuf {
        let path = self.path().join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    }

    /// A file, mode 0644.
    fn file(&self, p: &str, content: &str) -> &Ctx {
        self.file_mode(p, content, 0o644)
    }

    fn file_mode(&self, p: &str, content: &str, mode: u32) -> &Ctx {
        let path = self.at(p);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn dir(&self, p: &str, mode: u32) -> &Ctx {
        let path = self.at(p);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn symlink(&self, p: &str, target: &str) -> &Ctx {
        std::os::unix::fs::symlink(target, self.at(p)).unwrap();
        self
    }

    fn chown(&self, p: &str, uid: u32, gid: u32) -> &Ctx {
        std::os::unix::fs::lchown(self.path().join(p), Some(uid), Some(gid)).unwrap();
        self
    }

    /// A tar archive (gzip-compressed when the name ends in `.gz`) of
    /// `entries`, with the owners and modes they say.
    fn tar(&self, name: &str, entries: &[TarEntry]) -> &Ctx {
        let mut b = tar::Builder::new(Vec::new());
        for t in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(t.uid.into());
            h.set_gid(t.gid.into());
            h.set_mode(t.mode);
            h.set_mtime(1_700_000_000);
            match t.kind {
                'd' => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, t.path, std::io::empty()).unwrap();
                }
                'f' => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(t.data.len() as u64);
                    b.append_data(&mut h, t.path, t.data.as_bytes()).unwrap();
                }
                'l' | 'h' => {
                    h.set_entry_type(if t.kind == 'l' {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_size(0);
                    b.append_link(&mut h, t.path, t.data).unwrap();
                }
                k => panic!("tar entry kind {k}"),
            }
        }
        let data = b.into_inner().unwrap();
        let path = self.at(name);
        if name.ends_with(".gz") {
            let mut gz = Command::new("gzip")
                .args(["-n", "-c"])
                .stdin(Stdio::piped())
                .stdout(fs::File::create(&path).unwrap())
                .spawn()
                .expect("gzip");
            {
                use std::io::Write;
                gz.stdin.take().unwrap().write_all(&data).unwrap();
            }
            assert!(gz.wait().unwrap().success());
        } else {
            fs::write(&path, data).unwrap();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        self
    }
}

struct TarEntry {
    kind: char,
    path: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// File content, or a link's target.
    data: &'static str,
}

const fn te(
    kind: char,
    path: &'static str,
    mode: u32,
    owner: (u32, u32),
    data: &'static str,
) -> TarEntry {
    TarEntry {
        kind,
        path,
        mode,
        uid: owner.0,
        gid: owner.1,
        data,
    }
}

// ---------------------------------------------------------------- cases

/// One build to make with both engines.
#[derive(Default)]
struct Case<'a> {
    name: &'a str,
    /// Written to the context as `Dockerfile`.
    dockerfile: &'a str,
    /// The same build for buildah when 1.28 lacks the syntax (heredocs).
    buildah_dockerfile: Option<&'a str>,
    build_args: &'a [(&'a str, &'a str)],
    target: Option<&'a str>,
    /// Differences where buildah is the one that departs from Docker
    /// (BuildKit): (key as reported, e.g. `path /app` or `config Cmd`, why).
    /// A key ending in `*` matches every key it begins.
    buildah_departs: &'a [(&'a str, &'a str)],
    /// Differences that are barge bugs, reported and not fixed yet: (key,
    /// the bug).
    barge_bugs: &'a [(&'a str, &'a str)],
}

/// Builds `case` in `ctx` with both engines and fails on any difference
/// but the stubs the module comment allows and the case's known ones.
/// Every known difference must still show: a list that no longer matches
/// fails too, so that it shrinks as bugs are fixed.
fn assert_same_as_buildah(case: Case, ctx: Ctx) {
    let e = Env::new();
    let b = Buildah::new(&e);
    fs::write(ctx.path().join("Dockerfile"), case.dockerfile).unwrap();
    let tag = format!("equiv-{}", case.name);

    let mut args: Vec<String> = vec!["build".into(), "-q".into(), "-t".into(), tag.clone()];
    let mut bargs: Vec<String> = vec![
        "bud".into(),
        "--quiet".into(),
        "--layers".into(),
        "--no-cache".into(),
        "--pull=never".into(),
        "--network".into(),
        "none".into(),
        "--format".into(),
        "docker".into(),
        "--signature-policy".into(),
        b.policy(),
        "-t".into(),
        tag.clone(),
    ];
    for (k, v) in case.build_args {
        for a in [&mut args, &mut bargs] {
            a.push("--build-arg".into());
            a.push(format!("{k}={v}"));
        }
    }
    if let Some(t) = case.target {
        for a in [&mut args, &mut bargs] {
            a.push("--target".into());
            a.push(t.into());
        }
    }
    if let Some(df) = case.buildah_dockerfile {
        // Outside the context, so that both contexts hold the same files.
        let p = b.dir.path().join("Dockerfile.buildah");
        fs::write(&p, df).unwrap();
        bargs.push("-f".into());
        bargs.push(p.display().to_string());
    }
    let ctx_path = ctx.path().display().to_string();
    args.push(ctx_path.clone());
    bargs.push(ctx_path);

    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = e.run(&a);
    assert_eq!(o.code, 0, "barge {a:?} failed: {o}");
    let a: Vec<&str> = bargs.iter().map(String::as_str).collect();
    let o = b.run(&a);
    assert_eq!(o.code, 0, "buildah {a:?} failed: {o}");

    let buildah_cfg = b.config(&format!("localhost/{tag}:latest"));
    let barge_cfg: Value =
        serde_json::from_str(&e.ok(&["image", "inspect", "-f", "{{json .Config}}", &tag])).unwrap();
    let mut diffs = {
        let bm = BargeMount::new(&e, &tag);
        let hm = BuildahMount::new(&b, &format!("localhost/{tag}:latest"));
        compare_listings(
            &listing(&bm.path),
            &listing(&hm.path),
            &buildah_cfg["Volumes"],
        )
    };
    diffs.extend(compare_configs(&barge_cfg, &buildah_cfg));

    let known: Vec<(&str, String)> = case
        .buildah_departs
        .iter()
        .map(|(k, why)| (*k, format!("buildah departs from Docker: {why}")))
        .chain(
            case.barge_bugs
                .iter()
                .map(|(k, bug)| (*k, format!("known barge bug: {bug}"))),
        )
        .collect();
    let matches = |known: &str, key: &str| match known.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == known,
    };
    let mut report = String::new();
    for (key, what) in &diffs {
        if !known.iter().any(|(k, _)| matches(k, key)) {
            report.push_str(&format!("  {key}:\n      {what}\n"));
        }
    }
    for (k, why) in &known {
        if !diffs.iter().any(|(key, _)| matches(k, key)) {
            report.push_str(&format!(
                "  {k}: listed as a known difference ({why}) but the same now: remove it from the case\n"
            ));
        }
    }
    assert!(
        report.is_empty(),
        "case {}: barge build and buildah bud differ\n{report}Dockerfile:\n{}",
        case.name,
        case.dockerfile
    );
}

#[test]
fn multi_stage_build_with_copy_from_stages_and_images() {
    let ctx = Ctx::new();
    assert_same_as_buildah(
        Case {
            name: "multistage",
            dockerfile: "FROM busybox AS build\n\
                 ARG VERSION=1.0\n\
                 RUN mkdir -p /out/sub/empty && echo \"artifact $VERSION\" > /out/a.txt \\\n\
                  && echo sub > /out/sub/b.txt && chmod 640 /out/a.txt \\\n\
                  && chown 12:34 /out/sub/b.txt && chmod 700 /out/sub && ln -s a.txt /out/link\n\
                 FROM build AS derived\n\
                 RUN echo derived >> /out/a.txt\n\
                 FROM busybox AS unused\n\
                 RUN echo never > /never\n\
                 FROM busybox\n\
                 COPY --from=build /out /opt/out\n\
                 COPY --from=derived /out/a.txt /opt/derived.txt\n\
                 COPY --from=build /out/sub/ /opt/sub-contents/\n\
                 COPY --from=busybox /etc/passwd /opt/passwd-from-image\n\
                 COPY --from=0 /out/link /opt/link-copied\n\
                 CMD [\"cat\", \"/opt/derived.txt\"]\n",
            build_args: &[("VERSION", "2.5")],
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn target_stops_at_the_named_stage() {
    let ctx = Ctx::new();
    ctx.file("app.txt", "app\n");
    assert_same_as_buildah(
        Case {
            name: "target",
            dockerfile: "FROM busybox AS base\n\
                 ENV STAGE=base\n\
                 COPY app.txt /app/\n\
                 FROM base AS test\n\
                 ENV STAGE=test\n\
                 RUN echo tested > /app/tested\n\
                 FROM base\n\
                 RUN echo final > /app/final\n",
            target: Some("test"),
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn dockerignore_excludes_and_reincludes() {
    let ctx = Ctx::new();
    ctx.file(
        ".dockerignore",
        "# comment\n*.log\n!keep.log\nsecret/\n**/*.tmp\ndocs/**/draft*\n!docs/keep/draft-final.md\nbuild\n",
    )
    .file("a.log", "a")
    .file("keep.log", "k")
    .file("secret/key", "s")
    .file("sub/x.tmp", "x")
    .file("sub/deep/y.tmp", "y")
    .file("sub/z.txt", "z")
    .file("docs/intro.md", "intro")
    .file("docs/a/draft1.md", "d1")
    .file("docs/keep/draft-final.md", "final")
    .file("build/out.bin", "bin")
    .file("buildinfo.txt", "info")
    .file("src/main.c", "int main;")
    .dir("emptydir", 0o755);
    assert_same_as_buildah(
        Case {
            name: "dockerignore",
            dockerfile: "FROM busybox\nCOPY . /ctx/\nCOPY docs /docs-only/\nCOPY sub/ /sub-only\n",
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn user_and_workdir_own_what_they_create() {
    let ctx = Ctx::new();
    assert_same_as_buildah(
        Case {
            name: "userworkdir",
            dockerfile: "FROM busybox\n\
                 RUN echo 'app:x:1234:2345:app:/home/app:/bin/sh' >> /etc/passwd \\\n\
                  && echo 'app:x:2345:' >> /etc/group && echo 'other:x:3456:app' >> /etc/group\n\
                 WORKDIR /srv/app\n\
                 RUN chown app:app /srv/app\n\
                 USER app\n\
                 RUN touch owned && mkdir sub && id -u > uid && id -g > gid && id -G > groups\n\
                 WORKDIR sub/deeper\n\
                 RUN pwd > /tmp/pwd-as-app\n\
                 USER 1234:3456\n\
                 RUN touch /tmp/as-numeric && id -g > /tmp/gid-numeric\n\
                 USER root\n\
                 WORKDIR /\n\
                 RUN touch /as-root\n\
                 USER app\n\
                 CMD [\"id\"]\n",
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn copy_chmod_and_chown() {
    let ctx = Ctx::new();
    ctx.file("a.txt", "a\n")
        .file("b.txt", "b\n")
        .file_mode("script.sh", "#!/bin/sh\necho script\n", 0o644)
        .file_mode("exec.sh", "#!/bin/sh\necho exec\n", 0o755)
        .file("owned.txt", "owned by 99\n")
        .chown("owned.txt", 99, 98)
        .file("dir/f1", "f1\n")
        .file_mode("dir/sub/f2", "f2\n", 0o600)
        .dir("dir/sub", 0o700);
    assert_same_as_buildah(
        Case {
            name: "chmodchown",
            dockerfile: "FROM busybox\n\
                 RUN echo 'app:x:1234:2345::/home/app:/bin/sh' >> /etc/passwd \\\n\
                  && echo 'appgrp:x:2345:' >> /etc/group\n\
                 COPY --chown=1234:2345 a.txt /x/a.txt\n\
                 COPY --chown=app:appgrp dir/ /y/\n\
                 COPY --chown=1234 dir /y2\n\
                 COPY --chmod=0750 script.sh /usr/local/bin/script\n\
                 COPY --chmod=600 --chown=7:8 a.txt b.txt /z/\n\
                 COPY --chmod=755 dir /w/\n\
                 ADD --chown=5:6 a.txt /v/a.txt\n\
                 COPY exec.sh /e/\n\
                 COPY owned.txt /o/\n",
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn run_rm_whites_out_base_files_and_replaces_directories() {
    let ctx = Ctx::new();
    assert_same_as_buildah(
        Case {
            name: "whiteouts",
            dockerfile: "FROM busybox\n\
                 RUN rm /etc/group /bin/vi\n\
                 RUN rm -rf /home/user && mkdir -p /home/user/new && echo new > /home/user/new/file\n\
                 RUN rm -rf /root && echo file > /root\n\
                 RUN mkdir -p /data/keep /data/gone && echo 1 > /data/a && echo 2 > /data/b \\\n\
                  && echo 3 > /data/gone/c && echo f > /data-file\n\
                 RUN rm /data/a && rm -rf /data/gone\n\
                 RUN rm -rf /data && mkdir /data && echo fresh > /data/only\n\
                 RUN rm /data-file && mkdir /data-file && echo in > /data-file/in\n\
                 RUN mkdir /tmp/x && rm -rf /tmp/x && rm -rf /home && mkdir /home\n",
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn env_and_arg_expansion() {
    let ctx = Ctx::new();
    ctx.file("f.txt", "f\n").file("g.txt", "g\n");
    assert_same_as_buildah(
        Case {
            name: "envarg",
            dockerfile: "ARG BASE=busybox\n\
                 FROM $BASE\n\
                 ARG A=one\n\
                 ARG B\n\
                 ARG EMPTY=\n\
                 ARG FILE=f.txt\n\
                 ENV X=$A Y=${B:-defb} Z=\"${A}_${B:+set}\" Q='single $A'\n\
                 ENV W=$X/w\n\
                 ENV OLD legacy form\n\
                 ENV X2=new X3=\"[$X2]\"\n\
                 ARG C=${X}c\n\
                 RUN echo \"$A|$B|$X|$Y|$Z|$W|$C|$Q|$EMPTY|${UNSET:-u}|$OLD|$X3\" > /vals \\\n\
                  && env | grep -E '^(A|B|C|X|Y|Z|W|Q|EMPTY|OLD|X2|X3)=' | sort > /envs\n\
                 LABEL l1=$X \"l2\"=\"${Y}-x\" l3=\"$C\" l4='$X'\n\
                 WORKDIR /w/$X\n\
                 EXPOSE 80 ${PORT:-443}/tcp\n\
                 COPY $FILE /copied/${X}.txt\n\
                 STOPSIGNAL ${SIG:-SIGUSR1}\n\
                 USER ${UID:-0}\n\
                 ENV B=${B}-env\n\
                 RUN echo \"$B\" > /tmp/b\n",
            build_args: &[("B", "bee"), ("FILE", "g.txt")],
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn add_extracts_local_tar_archives() {
    let ctx = Ctx::new();
    let entries = [
        te('d', "pkg/", 0o755, (0, 0), ""),
        te('d', "pkg/bin/", 0o755, (0, 0), ""),
        te(
            'f',
            "pkg/bin/tool",
            0o755,
            (1000, 1000),
            "#!/bin/sh\necho tool\n",
        ),
        te('h', "pkg/bin/tool2", 0o755, (1000, 1000), "pkg/bin/tool"),
        te('f', "pkg/bin/suid", 0o4755, (0, 0), "suid\n"),
        te('d', "pkg/etc/", 0o750, (33, 33), ""),
        te('f', "pkg/etc/conf", 0o640, (33, 33), "key=value\n"),
        te('l', "pkg/current", 0o777, (0, 0), "bin"),
        te('d', "pkg/empty/", 0o700, (0, 0), ""),
    ];
    ctx.tar("pkg.tar.gz", &entries)
        .tar("plain.tar", &entries[..5])
        .file("data.txt", "not an archive\n");
    assert_same_as_buildah(
        Case {
            name: "addtar",
            dockerfile: "FROM busybox\n\
                 ADD pkg.tar.gz /opt/\n\
                 ADD pkg.tar.gz /opt2/sub/\n\
                 ADD plain.tar /plain/\n\
                 COPY pkg.tar.gz /raw/\n\
                 ADD data.txt /added/\n\
                 RUN mkdir -p /existing/pkg/bin && echo old > /existing/pkg/bin/tool && echo keep > /existing/pkg/keep\n\
                 ADD pkg.tar.gz /existing/\n",
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn heredoc_run_and_copy() {
    let ctx = Ctx::new();
    // buildah 1.28 has no heredocs: the same steps, written without them.
    // A RUN heredoc is the script given to the shell; a COPY heredoc is a
    // file of that content (variables expanded unless the delimiter is
    // quoted), mode 0644, owned by root.
    ctx.file("heredoc-four", "copied world\n")
        .file("heredoc-five", "literal $WHO\n");
    assert_same_as_buildah(
        Case {
            name: "heredoc",
            dockerfile: "FROM busybox\n\
                 ARG WHO=world\n\
                 RUN <<EOF\n\
                 set -e\n\
                 mkdir -p /hd\n\
                 echo \"hello $WHO $((1+2))\" > /hd/one\n\
                 ln -s one /hd/one-link\n\
                 EOF\n\
                 RUN <<-EOT\n\
                 \techo tabs stripped > /hd/two\n\
                 \tEOT\n\
                 RUN <<EOF sh -e\n\
                 echo via-stdin > /hd/three\n\
                 EOF\n\
                 COPY <<EOF /hd/four\n\
                 copied $WHO\n\
                 EOF\n\
                 COPY <<'EOF' /hd/five\n\
                 literal $WHO\n\
                 EOF\n\
                 RUN rm -f /hd-unused\n",
            buildah_dockerfile: Some(
                "FROM busybox\n\
                 ARG WHO=world\n\
                 RUN set -e; mkdir -p /hd; echo \"hello $WHO $((1+2))\" > /hd/one; ln -s one /hd/one-link\n\
                 RUN echo tabs stripped > /hd/two\n\
                 RUN echo via-stdin > /hd/three\n\
                 COPY heredoc-four /hd/four\n\
                 COPY heredoc-five /hd/five\n\
                 RUN rm -f /hd-unused\n",
            ),
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn symlinks_hardlinks_and_fifos_made_by_run() {
    let ctx = Ctx::new();
    assert_same_as_buildah(
        Case {
            name: "links",
            dockerfile: "FROM busybox\n\
                 RUN mkdir /l && echo t > /l/target && ln -s target /l/rel && ln -s /l/target /l/abs \\\n\
                  && ln -s nowhere /l/dangling && ln /l/target /l/hard1 && ln /l/target /l/hard2 \\\n\
                  && ln -s ../etc /l/dirlink && mkfifo -m 0620 /l/fifo\n\
                 RUN ln /bin/busybox /l/bb-hard && ln -sf /bin/busybox /l/abs\n\
                 RUN echo changed >> /l/hard1\n\
                 RUN mkdir /m && echo x > /m/a && ln /m/a /m/b && ln /m/a /m/c && rm /m/a\n",
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn setuid_setgid_and_sticky_bits() {
    let ctx = Ctx::new();
    ctx.file_mode("suid.sh", "#!/bin/sh\necho suid\n", 0o4755)
        .file_mode("plain.sh", "#!/bin/sh\necho plain\n", 0o644);
    assert_same_as_buildah(
        Case {
            name: "setuid",
            dockerfile: "FROM busybox\n\
                 RUN mkdir -p /opt/m/sgid-dir /opt/m/sticky && cd /opt/m && touch u g ug \\\n\
                  && chmod 4755 u && chmod 2711 g && chmod 6750 ug && chmod 1777 sticky \\\n\
                  && chown 0:12 sgid-dir && chmod 2775 sgid-dir && touch sgid-dir/inherit && mkdir sgid-dir/sub\n\
                 RUN chown 5:5 /opt/m/g\n\
                 COPY suid.sh /opt/ctx/suid.sh\n\
                 COPY --chmod=4755 plain.sh /opt/ctx/chmod-suid\n\
                 COPY --chmod=2755 --chown=1:2 plain.sh /opt/ctx/chown-sgid\n",
            buildah_departs: &[(
                "path /opt/ctx/suid.sh",
                "buildah strips setuid and setgid from build-context files on \
                 purpose, as the classic docker builder did (buildah#574, #2498); \
                 BuildKit's context transfer (fsutil) keeps the mode bits, as barge does",
            )],
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn config_instructions() {
    let ctx = Ctx::new();
    assert_same_as_buildah(
        Case {
            name: "config",
            dockerfile: "FROM busybox\n\
                 ENV A=1 B=\"two words\"\n\
                 LABEL maintainer=\"someone\" com.example.multi=\"a b\"\n\
                 LABEL com.example.second=2\n\
                 EXPOSE 8080 53/udp 9000-9002\n\
                 VOLUME [\"/data\", \"/logs\"]\n\
                 VOLUME /more\n\
                 STOPSIGNAL SIGQUIT\n\
                 WORKDIR /app\n\
                 USER 1000:1000\n\
                 HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD [\"true\"]\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 ONBUILD RUN echo child\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD echo hi\n",
            buildah_departs: &[
                (
                    "path /app",
                    "WORKDIR /app comes before USER 1000:1000: BuildKit makes it \
                     as root, buildah makes it at commit as the last USER",
                ),
                (
                    "config Cmd",
                    "a shell-form CMD after SHELL [\"/bin/sh\", \"-ec\"]: BuildKit \
                     runs it with that shell, buildah with /bin/sh -c",
                ),
            ],
            ..Case::default()
        },
        ctx,
    );
}

#[test]
fn copy_sources_destinations_and_globs() {
    let ctx = Ctx::new();
    ctx.file("a.txt", "a\n")
        .file("b.txt", "b\n")
        .file("c.md", "c\n")
        .file("dir/f1", "f1\n")
        .file("dir/sub/f2", "f2\n")
        .symlink("dir/sub/link", "f2")
        .symlink("link-in-ctx", "a.txt")
        .dir("emptydir", 0o750);
    assert_same_as_buildah(
        Case {
            name: "copysem",
            dockerfile: "FROM busybox\n\
                 COPY dir /d1\n\
                 COPY dir/ /d2/\n\
                 COPY *.txt /txt/\n\
                 COPY a.txt /new/nested/path/file\n\
                 COPY a.txt b.txt /multi/\n\
                 COPY emptydir /empty-copied\n\
                 COPY link-in-ctx /ctx-link\n\
                 COPY link-in-ctx c.md /ctx-links/\n\
                 RUN mkdir -p /existing/sub && echo old > /existing/a.txt && echo keep > /existing/sub/keep\n\
                 COPY a.txt /existing/\n\
                 COPY dir/sub /existing/sub\n\
                 ADD a.txt /added-no-slash\n\
                 WORKDIR /wd\n\
                 COPY a.txt rel/\n\
                 COPY b.txt .\n",
            ..Case::default()
        },
        ctx,
    );
}
