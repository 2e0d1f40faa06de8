//! The container's root filesystem, set up by the container init inside its
//! new mount namespace: propagation, the bind of the rootfs onto itself, the
//! config's mounts, /dev (devices, symlinks), pivot_root, masked and
//! read-only paths, the read-only root.
//!
//! Every mount target is resolved *inside* the rootfs with openat2's
//! RESOLVE_IN_ROOT (a symlink `/etc/x -> /` resolves to the rootfs, never to
//! the host) and mounted through its `/proc/self/fd/N` handle, so a symlink
//! swapped in between the check and the mount cannot redirect it
//! (CVE-2021-30465 class). Mounts under /proc are limited to the paths runc
//! allows.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::cgroups::CgroupMount;
use crate::error::{io_err, Context, Result, RuntimeError};
use crate::sys;

const O_PATH: libc::c_int = libc::O_PATH;

/// Parsed `mount.options`.
#[derive(Default, Debug, PartialEq)]
pub struct MountOptions {
    pub flags: libc::c_ulong,
    pub clear: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub data: Vec<String>,
}

/// Parse mount options as runc does: known flags become MS_* bits,
/// propagation options are applied separately, the rest is fs data.
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in opts {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "suid" => (0, libc::MS_NOSUID),
            "nosuid" => (libc::MS_NOSUID, 0),
            "dev" => (0, libc::MS_NODEV),
            "nodev" => (libc::MS_NODEV, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "noexec" => (libc::MS_NOEXEC, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "nosymfollow" => (256, 0),
            "symfollow" => (0, 256),
            "private" => {
                o.propagation.push(libc::MS_PRIVATE);
                continue;
            }
            "rprivate" => {
                o.propagation.push(libc::MS_PRIVATE | libc::MS_REC);
                continue;
            }
            "shared" => {
                o.propagation.push(libc::MS_SHARED);
                continue;
            }
            "rshared" => {
                o.propagation.push(libc::MS_SHARED | libc::MS_REC);
                continue;
            }
            "slave" => {
                o.propagation.push(libc::MS_SLAVE);
                continue;
            }
            "rslave" => {
                o.propagation.push(libc::MS_SLAVE | libc::MS_REC);
                continue;
            }
            "unbindable" => {
                o.propagation.push(libc::MS_UNBINDABLE);
                continue;
            }
            "runbindable" => {
                o.propagation.push(libc::MS_UNBINDABLE | libc::MS_REC);
                continue;
            }
            // runc extension handled by callers that know it; harmless to drop here.
            "tmpcopyup" => continue,
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags = (o.flags & !clear) | set;
        o.clear |= clear;
    }
    o
}

/// `rootfsPropagation` to mount flags (default: rslave, as runc).
pub fn root_propagation(spec: &Spec) -> Result<libc::c_ulong> {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    Ok(match p.as_str() {
        "" => libc::MS_SLAVE | libc::MS_REC,
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        other => {
            return Err(RuntimeError::Config(format!(
                "invalid linux.rootfsPropagation \"{other}\""
            )))
        }
    })
}

/// The path of an fd usable as a mount source or target.
fn fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A path relative to the rootfs: strip the leading "/", reject "..".
fn relative(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The rootfs, open, with helpers that resolve paths inside it.
pub struct Root {
    pub path: PathBuf,
    fd: OwnedFd,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let f = File::open(path).ctx(|| format!("open rootfs {}", path.display()))?;
        Ok(Root {
            path: path.to_path_buf(),
            fd: f.into(),
        })
    }

    /// Open `p` (a container path) as O_PATH, resolved inside the rootfs.
    pub fn resolve(&self, p: &Path) -> std::io::Result<OwnedFd> {
        let rel = relative(p);
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        sys::openat2(
            self.fd.as_fd(),
            &rel,
            O_PATH,
            0,
            sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Resolve a directory, creating it and its parents inside the rootfs.
    pub fn mkdir_all(&self, p: &Path, mode: u32) -> Result<OwnedFd> {
        self.make(p, Some(mode), 0)
    }

    /// Resolve a file, creating it (empty) and its parents if missing.
    pub fn create_file(&self, p: &Path) -> Result<OwnedFd> {
        self.make(p, None, 0)
    }

    /// Resolve `p`, creating what is missing: a directory (`dir_mode`) or
    /// an empty file. A dangling symlink on the way is followed inside the
    /// rootfs and its target created there, as runc does.
    fn make(&self, p: &Path, dir_mode: Option<u32>, depth: u32) -> Result<OwnedFd> {
        match self.resolve(p) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io_err(format!("resolve {} in the rootfs", p.display()), e)),
        }
        if depth > 40 {
            return Err(RuntimeError::Other(format!(
                "{}: too many levels of symbolic links",
                p.display()
            )));
        }
        let rel = relative(p);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(RuntimeError::Other(format!(
                "cannot create {}",
                p.display()
            )));
        };
        let parent = Path::new("/").join(parent);
        let pfd = self.make(&parent, Some(0o755), depth)?;
        let cname = sys::cstr(name).ctx(|| p.display().to_string())?;
        let made = match dir_mode {
            Some(mode) => sys::mkdirat(pfd.as_fd(), &cname, mode),
            // No symlink following at all: the name must be a new file.
            None => sys::openat2(
                pfd.as_fd(),
                Path::new(name),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o644,
                0x04, /* RESOLVE_NO_SYMLINKS */
            )
            .map(drop),
        };
        match made {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Something is there but did not resolve: a dangling symlink.
                if let Ok(target) = std::fs::read_link(fd_path(pfd.as_fd()).join(name)) {
                    let next = if target.is_absolute() {
                        target
                    } else {
                        parent.join(target)
                    };
                    return self.make(&Path::new("/").join(relative(&next)), dir_mode, depth + 1);
                }
            }
            Err(e) => return Err(io_err(format!("create {} in the rootfs", p.display()), e)),
        }
        self.resolve(p)
            .ctx(|| format!("resolve {} in the rootfs", p.display()))
    }
}

/// Mounts allowed under /proc (what runc allows: lxcfs-style file binds).
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

fn check_proc_dest(dest: &Path, typ: &str) -> Result<()> {
    let d = Path::new("/").join(relative(dest));
    if d == Path::new("/proc") {
        if typ == "proc" || typ.is_empty() {
            return Ok(());
        }
        return Err(RuntimeError::Config(format!(
            "mount of type \"{typ}\" over /proc is not allowed: /proc must be a proc mount"
        )));
    }
    if d.starts_with("/proc") && !PROC_ALLOWED.iter().any(|a| d == Path::new(a)) {
        return Err(RuntimeError::Config(format!(
            "mount destination {} is not allowed: only {} may be mounted under /proc",
            d.display(),
            PROC_ALLOWED.join(", ")
        )));
    }
    Ok(())
}

/// What the init needs to know to build the rootfs.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub root: &'a Root,
    pub cgroup_mounts: &'a [CgroupMount],
    pub cgroupns: bool,
    pub userns: bool,
}

/// Everything before pivot_root: propagation, self-bind, mounts, /dev.
pub fn prepare(spec: &Spec, rootfs: &Path) -> Result<()> {
    // Shared and unbindable are applied after pivot_root (an unbindable /
    // cannot be bound, a shared one would leak mounts to the host).
    let prop = match root_propagation(spec)? {
        p if p & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0 => libc::MS_SLAVE | libc::MS_REC,
        p => p,
    };
    sys::mount(None, Path::new("/"), None, prop, None).ctx(|| "set propagation of /".into())?;
    make_parent_private(rootfs)?;
    sys::mount(
        Some(rootfs),
        rootfs,
        Some("bind"),
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .ctx(|| format!("bind mount rootfs {}", rootfs.display()))?;
    Ok(())
}

/// pivot_root needs the new root's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "read /proc/self/mountinfo".into())?;
    let mut best: Option<(&str, bool)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = f[4];
        if rootfs.starts_with(mp) && best.is_none_or(|(b, _)| mp.len() >= b.len()) {
            let shared = f[6..]
                .iter()
                .take_while(|x| **x != "-")
                .any(|x| x.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        sys::mount(None, Path::new(mp), None, libc::MS_PRIVATE, None)
            .ctx(|| format!("make {mp} private"))?;
    }
    Ok(())
}

/// Mount every entry of `mounts` inside the rootfs.
pub fn mount_all(ctx: &RootfsContext) -> Result<()> {
    for m in ctx.spec.mounts().iter().flatten() {
        mount_one(ctx, m).map_err(|e| match e {
            RuntimeError::Config(_) => e,
            e => RuntimeError::Other(format!("mount {}: {e}", m.destination().display())),
        })?;
    }
    Ok(())
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Check where a resolved target really is: a symlink inside the rootfs
/// may lead to /proc, which the literal destination did not show.
fn check_resolved(ctx: &RootfsContext, target: BorrowedFd, dest: &Path, typ: &str) -> Result<()> {
    let real = std::fs::read_link(fd_path(target)).ctx(|| format!("resolve {}", dest.display()))?;
    let inside = real
        .strip_prefix(&ctx.root.path)
        .map(|r| Path::new("/").join(r))
        .map_err(|_| {
            RuntimeError::Config(format!(
                "mount destination {} resolves outside the rootfs",
                dest.display()
            ))
        })?;
    if inside != Path::new("/").join(relative(dest)) {
        check_proc_dest(&inside, typ)?;
    }
    Ok(())
}

fn mount_one(ctx: &RootfsContext, m: &Mount) -> Result<()> {
    let typ = m.typ().clone().unwrap_or_default();
    let dest = m.destination();
    check_proc_dest(dest, if is_bind(m) { "bind" } else { &typ })?;
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let root = ctx.root;
    if is_bind(m) {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            ctx.bundle.join(src)
        };
        let meta = std::fs::metadata(&src).ctx(|| format!("bind source {}", src.display()))?;
        let target = if meta.is_dir() {
            root.mkdir_all(dest, 0o755)?
        } else {
            root.create_file(dest)?
        };
        check_resolved(ctx, target.as_fd(), dest, "bind")?;
        let tpath = fd_path(target.as_fd());
        let rec = opts.flags & libc::MS_REC;
        sys::mount(Some(&src), &tpath, Some("bind"), libc::MS_BIND | rec, None)
            .ctx(|| format!("bind {} to {}", src.display(), dest.display()))?;
        // Re-open: the target now is the root of the new mount.
        let target = root
            .resolve(dest)
            .ctx(|| format!("resolve {}", dest.display()))?;
        let tpath = fd_path(target.as_fd());
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            remount_bind(&tpath, extra | rec, &src)?;
        }
        for p in &opts.propagation {
            sys::mount(None, &tpath, None, *p, None)
                .ctx(|| format!("set propagation of {}", dest.display()))?;
        }
        return Ok(());
    }
    match typ.as_str() {
        "cgroup" | "cgroup2" => return mount_cgroup(ctx, m, &opts),
        _ => {}
    }
    let target = root.mkdir_all(dest, 0o755)?;
    check_resolved(ctx, target.as_fd(), dest, &typ)?;
    let tpath = fd_path(target.as_fd());
    let data = opts.data.join(",");
    let src = m.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
    let flags = opts.flags & !libc::MS_REMOUNT;
    let r = sys::mount(
        Some(&src),
        &tpath,
        Some(&typ),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    );
    match r {
        Ok(()) => {}
        // In a user namespace sharing the host's network namespace sysfs
        // cannot be mounted; bind the host's instead (read-only), as runc.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && (typ == "sysfs" || typ == "mqueue") => {
            let host = if typ == "sysfs" {
                Path::new("/sys")
            } else {
                Path::new("/dev/mqueue")
            };
            sys::mount(
                Some(host),
                &tpath,
                Some("bind"),
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .ctx(|| format!("bind {} to {}", host.display(), dest.display()))?;
            let target = root
                .resolve(dest)
                .ctx(|| format!("resolve {}", dest.display()))?;
            remount_bind(&fd_path(target.as_fd()), flags | libc::MS_REC, host)?;
        }
        Err(e) => return Err(io_err(format!("mount {typ} on {}", dest.display()), e)),
    }
    if !opts.propagation.is_empty() {
        let target = root
            .resolve(dest)
            .ctx(|| format!("resolve {}", dest.display()))?;
        for p in &opts.propagation {
            sys::mount(None, &fd_path(target.as_fd()), None, *p, None)
                .ctx(|| format!("set propagation of {}", dest.display()))?;
        }
    }
    Ok(())
}

/// Remount a bind mount with flags; in a user namespace the flags the
/// kernel locked on the source (nosuid, nodev, ...) must be kept.
fn remount_bind(target: &Path, flags: libc::c_ulong, src: &Path) -> Result<()> {
    let base = libc::MS_BIND | libc::MS_REMOUNT;
    match sys::mount(None, target, None, base | flags, None) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = sys::statvfs_flags(src).unwrap_or(0);
            let mut extra = 0;
            for (st, ms) in [
                (libc::ST_RDONLY, libc::MS_RDONLY),
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if locked & st != 0 {
                    extra |= ms;
                }
            }
            sys::mount(None, target, None, base | flags | extra, None)
                .ctx(|| format!("remount {} with its options", target.display()))
        }
        Err(e) => Err(io_err(format!("remount {}", target.display()), e)),
    }
}

/// A `cgroup` mount: the container's own cgroups, read-only as asked.
fn mount_cgroup(ctx: &RootfsContext, m: &Mount, opts: &MountOptions) -> Result<()> {
    let dest = m.destination();
    let root = ctx.root;
    let target = root.mkdir_all(dest, 0o755)?;
    let flags = opts.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
    let unified = ctx.cgroup_mounts.len() == 1 && ctx.cgroup_mounts[0].name.is_empty();
    if unified {
        let cm = &ctx.cgroup_mounts[0];
        if ctx.cgroupns {
            sys::mount(
                Some(Path::new("cgroup2")),
                &fd_path(target.as_fd()),
                Some("cgroup2"),
                flags,
                None,
            )
            .ctx(|| format!("mount cgroup2 on {}", dest.display()))?;
        } else {
            sys::mount(
                Some(&cm.host_path),
                &fd_path(target.as_fd()),
                Some("bind"),
                libc::MS_BIND,
                None,
            )
            .ctx(|| format!("bind {} to {}", cm.host_path.display(), dest.display()))?;
            let t = root.resolve(dest).ctx(|| dest.display().to_string())?;
            remount_bind(&fd_path(t.as_fd()), flags, &cm.host_path)?;
        }
        return Ok(());
    }
    // v1 / hybrid: a tmpfs with one bind per hierarchy, then made read-only.
    sys::mount(
        Some(Path::new("tmpfs")),
        &fd_path(target.as_fd()),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs on {}", dest.display()))?;
    for cm in ctx.cgroup_mounts {
        if cm.name.is_empty() {
            continue;
        }
        let sub = dest.join(&cm.name);
        let t = root.mkdir_all(&sub, 0o755)?;
        if !cm.host_path.exists() {
            continue;
        }
        sys::mount(
            Some(&cm.host_path),
            &fd_path(t.as_fd()),
            Some("bind"),
            libc::MS_BIND,
            None,
        )
        .ctx(|| format!("bind {} to {}", cm.host_path.display(), sub.display()))?;
        let t = root.resolve(&sub).ctx(|| sub.display().to_string())?;
        remount_bind(
            &fd_path(t.as_fd()),
            flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            &cm.host_path,
        )?;
        // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct".
        if cm.name.contains(',') {
            let dfd = root.resolve(dest).ctx(|| dest.display().to_string())?;
            let tgt = sys::cstr(&cm.name).ctx(|| cm.name.clone())?;
            for part in cm.name.split(',') {
                if let Ok(n) = CString::new(part) {
                    let _ = sys::symlinkat(&tgt, dfd.as_fd(), &n);
                }
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let t = root.resolve(dest).ctx(|| dest.display().to_string())?;
        sys::mount(
            None,
            &fd_path(t.as_fd()),
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=755"),
        )
        .ctx(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

/// The devices every container gets (runtime-linux.md "Default Devices").
fn default_devices() -> [(&'static str, u64, u64); 6] {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

/// Does the config bind-mount the host's /dev (then no devices are made)?
fn dev_is_bound(spec: &Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| relative(m.destination()) == Path::new("dev") && is_bind(m))
}

/// Create default and configured devices and the /dev symlinks.
pub fn setup_dev(ctx: &RootfsContext) -> Result<()> {
    if dev_is_bound(ctx.spec) {
        return Ok(());
    }
    let configured: Vec<LinuxDevice> = ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for (path, major, minor) in default_devices() {
        if configured.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        make_device(
            ctx,
            Path::new(path),
            libc::S_IFCHR,
            major,
            minor,
            0o666,
            Some(0),
            Some(0),
        )?;
    }
    for d in &configured {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RuntimeError::Config(format!(
                    "device {} has type \"a\", which is only valid in cgroup rules",
                    d.path().display()
                )))
            }
        };
        make_device(
            ctx,
            d.path(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid(),
            d.gid(),
        )?;
    }
    let dev = ctx.root.mkdir_all(Path::new("/dev"), 0o755)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    links.push(("pts/ptmx", "ptmx"));
    for (target, name) in links {
        let (Ok(t), Ok(n)) = (CString::new(target), CString::new(name)) else {
            continue;
        };
        match sys::symlinkat(&t, dev.as_fd(), &n) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // /dev/ptmx may be a device node in the image: replace it.
                if name == "ptmx" {
                    // Through the fd of /dev, which was resolved inside the rootfs.
                    let p = fd_path(dev.as_fd()).join("ptmx");
                    if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.file_type().is_symlink()) {
                        let _ = std::fs::remove_file(&p);
                        let _ = sys::symlinkat(&t, dev.as_fd(), &n);
                    }
                }
            }
            Err(e) => return Err(io_err(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    ctx: &RootfsContext,
    path: &Path,
    kind: u32,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<()> {
    let rel = relative(path);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(RuntimeError::Config(format!(
            "invalid device path {}",
            path.display()
        )));
    };
    let pfd = ctx.root.mkdir_all(&Path::new("/").join(parent), 0o755)?;
    let cname = sys::cstr(name).ctx(|| path.display().to_string())?;
    if ctx.userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let target = ctx.root.create_file(path)?;
        let host = if kind == libc::S_IFIFO {
            None
        } else {
            Some(path)
        };
        if let Some(host) = host {
            sys::mount(
                Some(host),
                &fd_path(target.as_fd()),
                Some("bind"),
                libc::MS_BIND,
                None,
            )
            .ctx(|| format!("bind device {}", path.display()))?;
        }
        return Ok(());
    }
    match sys::mknodat(
        pfd.as_fd(),
        &cname,
        kind | (mode & 0o7777),
        sys::makedev(major, minor),
    ) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // An existing node of the right kind is kept; anything else is
            // replaced (through the parent's fd, resolved inside the rootfs).
            let p = fd_path(pfd.as_fd()).join(name);
            let keep = std::fs::symlink_metadata(&p).is_ok_and(|m| {
                let ft = m.file_type();
                (ft.is_char_device() || ft.is_block_device() || ft.is_fifo())
                    && m.rdev() == sys::makedev(major, minor)
            });
            if !keep {
                let _ = std::fs::remove_file(&p);
                sys::mknodat(
                    pfd.as_fd(),
                    &cname,
                    kind | (mode & 0o7777),
                    sys::makedev(major, minor),
                )
                .ctx(|| format!("mknod {}", path.display()))?;
            }
        }
        Err(e) => return Err(io_err(format!("mknod {}", path.display()), e)),
    }
    let node = ctx
        .root
        .resolve(path)
        .ctx(|| format!("resolve {}", path.display()))?;
    if uid.is_some() || gid.is_some() {
        sys::fchownat_empty(
            node.as_fd(),
            uid.unwrap_or(u32::MAX),
            gid.unwrap_or(u32::MAX),
        )
        .ctx(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// pivot_root into the rootfs and drop the old root; with `no_pivot`, or
/// when the rootfs is on ramfs/initramfs (pivot_root returns EINVAL), move
/// the rootfs onto / and chroot instead.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if !no_pivot {
        let new_root = File::open(rootfs).ctx(|| format!("open {}", rootfs.display()))?;
        let old_root = File::open("/").ctx(|| "open /".into())?;
        sys::fchdir(new_root.as_fd()).ctx(|| "chdir to rootfs".into())?;
        match sys::pivot_root(Path::new("."), Path::new(".")) {
            Ok(()) => {
                sys::fchdir(old_root.as_fd()).ctx(|| "chdir to old root".into())?;
                sys::mount(
                    None,
                    Path::new("."),
                    None,
                    libc::MS_SLAVE | libc::MS_REC,
                    None,
                )
                .ctx(|| "make old root rslave".into())?;
                sys::umount2(Path::new("."), libc::MNT_DETACH).ctx(|| "unmount old root".into())?;
                std::env::set_current_dir("/").ctx(|| "chdir /".into())?;
                return Ok(());
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(io_err("pivot_root", e)),
        }
    }
    std::env::set_current_dir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    sys::mount(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None)
        .ctx(|| "move rootfs to /".into())?;
    sys::chroot(Path::new(".")).ctx(|| "chroot".into())?;
    std::env::set_current_dir("/").ctx(|| "chdir /".into())?;
    Ok(())
}

/// After pivot_root: masked paths, read-only paths, read-only root, root
/// propagation, sysctls.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    // Sysctls first: /proc/sys is usually among the read-only paths.
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
            std::fs::write(&path, v).ctx(|| format!("set sysctl {k}={v}"))?;
        }
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let locked = sys::statvfs_flags(Path::new("/")).unwrap_or(0);
        let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        for (st, ms) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
        ] {
            if locked & st != 0 {
                flags |= ms;
            }
        }
        sys::mount(None, Path::new("/"), None, flags, None).ctx(|| "remount / read-only".into())?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if p.contains("shared") || p.contains("unbindable") {
            sys::mount(None, Path::new("/"), None, root_propagation(spec)?, None)
                .ctx(|| format!("set root propagation {p}"))?;
        }
    }
    Ok(())
}

fn mask_path(p: &Path) -> Result<()> {
    match sys::mount(
        Some(Path::new("/dev/null")),
        p,
        Some("bind"),
        libc::MS_BIND,
        None,
    ) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => sys::mount(
            Some(Path::new("tmpfs")),
            p,
            Some("tmpfs"),
            libc::MS_RDONLY,
            Some("size=0,mode=555"),
        )
        .ctx(|| format!("mask {}", p.display())),
        Err(e) => Err(io_err(format!("mask {}", p.display()), e)),
    }
}

fn readonly_path(p: &Path) -> Result<()> {
    match sys::mount(Some(p), p, Some("bind"), libc::MS_BIND | libc::MS_REC, None) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(io_err(format!("make {} read-only", p.display()), e)),
    }
    remount_bind(
        p,
        libc::MS_RDONLY | libc::MS_REC | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        p,
    )
    .or_else(|_| remount_bind(p, libc::MS_RDONLY | libc::MS_REC, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_flags_propagation_and_data() {
        let m = o(&["nosuid", "ro", "rbind", "rslave", "size=65536k", "mode=755"]);
        assert_eq!(
            m.flags,
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(m.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(m.data, vec!["size=65536k", "mode=755"]);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        assert_eq!(o(&["ro", "rw"]).flags, 0);
        assert_eq!(o(&["noexec", "exec", "nodev"]).flags, libc::MS_NODEV);
    }

    #[test]
    fn relative_never_climbs_out() {
        assert_eq!(
            relative(Path::new("/../../etc/passwd")),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(relative(Path::new("a/../../b")), PathBuf::from("b"));
    }

    #[test]
    fn proc_destinations_are_limited() {
        assert!(check_proc_dest(Path::new("/proc"), "proc").is_ok());
        assert!(check_proc_dest(Path::new("/proc/cpuinfo"), "bind").is_ok());
        assert!(check_proc_dest(Path::new("/proc/sys/kernel/core_pattern"), "bind").is_err());
        assert!(check_proc_dest(Path::new("/proc/self/../1/x"), "bind").is_err());
        assert!(check_proc_dest(Path::new("/proc"), "tmpfs").is_err());
    }

    #[test]
    fn resolve_keeps_absolute_symlinks_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tmp")).unwrap();
        std::os::unix::fs::symlink("/tmp", d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", d.path().join("up")).unwrap();
        let root = Root::open(d.path()).unwrap();
        let fd = root.mkdir_all(Path::new("/link/made"), 0o755).unwrap();
        drop(fd);
        assert!(d.path().join("tmp/made").is_dir());
        let fd = root.mkdir_all(Path::new("/up/inside"), 0o755).unwrap();
        drop(fd);
        assert!(
            d.path().join("etc/inside").is_dir(),
            "climbing symlink must resolve inside the root"
        );
        root.create_file(Path::new("/link/file")).unwrap();
        assert!(d.path().join("tmp/file").is_file());
    }
}
