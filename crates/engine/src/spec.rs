//! The OCI runtime config (`config.json`) of a container, built as Docker
//! builds it: Docker's default mounts, capabilities, seccomp profile,
//! masked and read-only paths, then the user's flags.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde_json::{json, Value};

use crate::error::{io, EngineError, Result};
use crate::record::{ContainerRecord, MountSpec};

/// Docker's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths Docker masks in /proc and /sys.
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The process identity resolved from the image's /etc/passwd and
/// /etc/group.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Reads a file of the container's rootfs with every path component
/// resolved inside it (a symlinked /etc/passwd cannot reach the host's).
pub fn read_in_root(rootfs: &Path, path: &str, limit: u64) -> Option<String> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Resolves Docker's `--user` (`name`, `uid`, `name:group`, `uid:gid`) and
/// `--group-add` against the rootfs, with Docker's errors.
pub fn resolve_user(rootfs: &Path, user: &str, group_add: &[String]) -> Result<Identity> {
    let passwd = read_in_root(rootfs, "/etc/passwd", 4 << 20).unwrap_or_default();
    let group = read_in_root(rootfs, "/etc/group", 4 << 20).unwrap_or_default();
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = users
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let (uid, mut gid, home, uname) = match (entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>().unwrap_or(0),
            f[3].parse::<u32>().unwrap_or(0),
            f[5].to_string(),
            f[0].to_string(),
        ),
        (None, Ok(n)) => (n, 0, "/".to_string(), String::new()),
        (None, Err(_)) => {
            return Err(EngineError::InvalidArgument(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    let find_group = |g: &str| -> Result<u32> {
        if let Some(f) = groups.iter().find(|f| f[0] == g) {
            return Ok(f[2].parse().unwrap_or(0));
        }
        g.parse::<u32>().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "unable to find group {g}: no matching entries in group file"
            ))
        })
    };
    if let Some(g) = g {
        gid = find_group(g)?;
    }
    let mut additional: Vec<u32> = Vec::new();
    if g.is_none() && !uname.is_empty() {
        for f in &groups {
            if f[3].split(',').any(|m| m == uname) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !additional.contains(&n) {
                        additional.push(n);
                    }
                }
            }
        }
    }
    for g in group_add {
        let n = find_group(g)?;
        if !additional.contains(&n) {
            additional.push(n);
        }
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids: additional,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Capabilities after `--cap-add`/`--cap-drop` (names already normalised
/// to `CAP_*` or `ALL`), as moby's `caps.TweakCapabilities`.
pub fn capabilities(add: &[String], drop: &[String], privileged: bool) -> Vec<String> {
    if privileged {
        return all_caps();
    }
    let base: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_caps()
    } else {
        barge_runtime::seccomp::DOCKER_DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        base.into_iter().filter(|c| !drop.contains(c)).collect()
    };
    for c in add {
        if c != "ALL" && !caps.contains(c) && !drop.contains(c) {
            caps.push(c.clone());
        }
    }
    if drop.iter().any(|c| c == "ALL") {
        for c in add {
            if c != "ALL" && !caps.contains(c) {
                caps.push(c.clone());
            }
        }
    }
    caps
}

/// Every capability this process may hand out: all of
/// [`CAPABILITIES`](crate::opts::CAPABILITIES) (by number) in our
/// own bounding set (root may lack some, e.g. in a VM without
/// CAP_SYS_RESOURCE; asking for more would fail the container's start).
pub fn all_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    crate::opts::CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && bounding & (1u64 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// What the spec builder needs besides the record.
pub struct SpecInput<'a> {
    pub record: &'a ContainerRecord,
    /// The mounted rootfs (overlay).
    pub rootfs: &'a Path,
    /// `containers/<id>`: hostname, hosts, resolv.conf live here.
    pub dir: &'a Path,
    /// Engine root (for volumes).
    pub volumes_dir: &'a Path,
    /// `tini-static` or similar for `--init`.
    pub init_binary: Option<&'a Path>,
    /// cgroup v2 only (unified hierarchy at /sys/fs/cgroup).
    pub cgroup_v2: bool,
    /// `--network container:NAME`: the network namespace to join.
    pub netns_path: Option<&'a str>,
}

/// Builds `config.json` for the container.
pub fn build(input: &SpecInput<'_>) -> Result<Value> {
    let rec = input.record;
    let cfg = &rec.config;
    let hc = &rec.host_config;
    let privileged = hc.privileged;

    let mut args: Vec<String> = cfg
        .entrypoint
        .iter()
        .chain(cfg.cmd.iter())
        .cloned()
        .collect();
    if args.is_empty() {
        return Err(EngineError::InvalidArgument("no command specified".into()));
    }
    let ident = resolve_user(input.rootfs, &cfg.user, &hc.group_add)?;

    let mut env: Vec<String> = Vec::new();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&cfg.env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={}", cfg.hostname));
    if cfg.tty && !has(&cfg.env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env.extend(
        cfg.env
            .iter()
            .filter(|e| !e.starts_with("HOSTNAME="))
            .cloned(),
    );
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", ident.home));
    }

    let mut mounts = default_mounts(hc.shm_size, privileged, input.cgroup_v2);
    for (name, target) in [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        mounts.push(json!({
            "destination": target,
            "type": "bind",
            "source": input.dir.join(name),
            "options": ["rbind", "rprivate"],
        }));
    }
    for m in &hc.mounts {
        mounts.push(user_mount(m, input.volumes_dir)?);
    }
    if let Some(init) = input.init_binary {
        mounts.push(json!({
            "destination": "/sbin/docker-init",
            "type": "bind",
            "source": init,
            "options": ["bind", "ro"],
        }));
        args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
    }

    let caps = capabilities(&hc.cap_add, &hc.cap_drop, privileged);
    let mut no_new_privs = false;
    let mut seccomp: Option<Value> = None;
    let mut seccomp_unconfined = privileged;
    let mut system_paths = !privileged;
    for opt in &hc.security_opt {
        use crate::opts::{SeccompProfile, SecurityOpt};
        match crate::opts::parse_security_opt(opt)? {
            SecurityOpt::NoNewPrivileges(v) => no_new_privs = v,
            SecurityOpt::Seccomp(SeccompProfile::Unconfined) => seccomp_unconfined = true,
            SecurityOpt::Seccomp(SeccompProfile::Builtin) => {}
            SecurityOpt::Seccomp(SeccompProfile::Path(v)) => {
                let json = std::fs::read_to_string(Path::new(&v)).map_err(|e| {
                    EngineError::InvalidArgument(format!(
                        "opening seccomp profile ({v}) failed: {e}"
                    ))
                })?;
                seccomp = Some(seccomp_profile(&json, &caps)?);
                seccomp_unconfined = false;
            }
            SecurityOpt::SystemPathsUnconfined => system_paths = false,
            // No AppArmor or SELinux on Barge's hosts yet; cgroups stay
            // read-only.
            SecurityOpt::Apparmor(_) | SecurityOpt::Label(_) | SecurityOpt::WritableCgroups(_) => {}
        }
    }
    if seccomp.is_none() && !seccomp_unconfined {
        seccomp = Some(seccomp_profile(
            barge_runtime::seccomp::DOCKER_DEFAULT_JSON,
            &caps,
        )?);
    }

    let mut rlimits = Vec::new();
    for u in &hc.ulimits {
        rlimits.push(json!({
            "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
            "hard": u.hard,
            "soft": u.soft,
        }));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match input.netns_path {
        Some(path) => namespaces.push(json!({"type": "network", "path": path})),
        None if hc.network_mode != "host" => namespaces.push(json!({"type": "network"})),
        None => {}
    }
    if input.cgroup_v2 && !privileged {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = serde_json::Map::new();
    let mut dev_rules = vec![json!({"allow": false, "access": "rwm"})];
    if privileged {
        dev_rules = vec![json!({"allow": true, "access": "rwm"})];
    }
    let mut devices = Vec::new();
    for d in &hc.devices {
        let (dev, rule) = device(&d.path_on_host, &d.path_in_container, &d.cgroup_permissions)?;
        devices.push(dev);
        dev_rules.push(rule);
    }
    if privileged {
        devices.extend(host_devices());
    }
    resources.insert("devices".into(), Value::Array(dev_rules));
    let mut memory = serde_json::Map::new();
    if hc.memory > 0 {
        memory.insert("limit".into(), json!(hc.memory));
        let swap = match hc.memory_swap {
            0 => hc.memory * 2,
            s => s,
        };
        memory.insert("swap".into(), json!(swap));
    }
    if !memory.is_empty() {
        resources.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = serde_json::Map::new();
    if hc.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(hc.nano_cpus * period / 1_000_000_000));
    }
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        resources.insert("pids".into(), json!({"limit": p}));
    }

    let mut process = json!({
        "terminal": cfg.tty,
        "user": {
            "uid": ident.uid,
            "gid": ident.gid,
        },
        "args": args,
        "env": env,
        "cwd": if cfg.working_dir.is_empty() { "/" } else { cfg.working_dir.as_str() },
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": hc.oom_score_adj,
    });
    if !ident.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(ident.additional_gids);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = Value::Array(rlimits);
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("/barge/{}", rec.id),
        "devices": devices,
    });
    if !hc.sysctls.is_empty() {
        linux["sysctl"] = json!(hc.sysctls);
    }
    if system_paths {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }

    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {
            "path": input.rootfs,
            "readonly": hc.readonly_rootfs,
        },
        "hostname": cfg.hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// Docker's profile format converted for this container's capabilities.
fn seccomp_profile(json: &str, caps: &[String]) -> Result<Value> {
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let p = barge_runtime::seccomp::from_docker_profile(
        json,
        &caps,
        barge_runtime::seccomp::host_arch(),
    )
    .map_err(|e| EngineError::InvalidArgument(format!("decoding seccomp profile failed: {e}")))?;
    serde_json::to_value(p).map_err(|source| EngineError::Json {
        what: "serialize the seccomp profile".into(),
        source,
    })
}

fn default_mounts(shm_size: i64, privileged: bool, cgroup_v2: bool) -> Vec<Value> {
    let shm = if shm_size > 0 { shm_size } else { 64 << 20 };
    let sys_opts: Vec<&str> = if privileged {
        vec!["nosuid", "noexec", "nodev", "rw"]
    } else {
        vec!["nosuid", "noexec", "nodev", "ro"]
    };
    let cg_opts: Vec<&str> = if privileged {
        vec!["nosuid", "noexec", "nodev", "relatime", "rw"]
    } else {
        vec!["nosuid", "noexec", "nodev", "relatime", "ro"]
    };
    let _ = cgroup_v2;
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": cg_opts}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ]
}

/// A named volume's data directory (created on first use, see
/// [`crate::volumes::ensure`]).
pub fn volume_dir(volumes_dir: &Path, name: &str) -> PathBuf {
    volumes_dir.join(name).join("_data")
}

fn user_mount(m: &MountSpec, volumes_dir: &Path) -> Result<Value> {
    let mut opts: Vec<String> = Vec::new();
    let mut propagation = "rprivate".to_string();
    let mut extra: Vec<String> = Vec::new();
    for o in &m.options {
        match o.as_str() {
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = o.clone()
            }
            "ro" | "rw" | "z" | "Z" | "nocopy" | "readonly" => {}
            _ => extra.push(o.clone()),
        }
    }
    match m.kind.as_str() {
        "bind" | "volume" => {
            let source = if m.kind == "bind" {
                let p = PathBuf::from(&m.source);
                if !p.exists() {
                    // Docker's -v creates a missing host directory;
                    // --mount refuses (the parser marks it).
                    if m.options.iter().any(|o| o == "no-create") {
                        return Err(EngineError::InvalidArgument(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source
                        )));
                    }
                    std::fs::create_dir_all(&p).map_err(io("create bind source", &p))?;
                }
                p
            } else {
                match crate::volumes::mount_source(volumes_dir, &m.source)? {
                    crate::volumes::MountSource::Dir(d) => d,
                    crate::volumes::MountSource::Tmpfs(o) => {
                        // A tmpfs-typed volume: a tmpfs of its own for
                        // this container (Docker shares one).
                        let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                        if m.read_only {
                            opts.push("ro".into());
                        }
                        opts.extend(o);
                        return Ok(json!({
                            "destination": m.target,
                            "type": "tmpfs",
                            "source": "tmpfs",
                            "options": opts,
                        }));
                    }
                }
            };
            opts.push("rbind".into());
            opts.push(if m.read_only { "ro" } else { "rw" }.into());
            opts.push(propagation);
            opts.extend(
                extra
                    .into_iter()
                    .filter(|o| o != "no-create" && o != "create-host-path"),
            );
            Ok(json!({
                "destination": m.target,
                "type": "bind",
                "source": source,
                "options": opts,
            }))
        }
        "tmpfs" => {
            opts.extend([
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ]);
            if m.read_only {
                opts.push("ro".into());
            }
            opts.extend(extra);
            Ok(json!({
                "destination": m.target,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": opts,
            }))
        }
        other => Err(EngineError::InvalidArgument(format!(
            "mount type {other:?} is not one of bind, volume, tmpfs"
        ))),
    }
}

/// A `--device` as an OCI device plus its cgroup rule.
fn device(host: &str, ctr: &str, perms: &str) -> Result<(Value, Value)> {
    let p = Path::new(host);
    let md = std::fs::metadata(p).map_err(|e| {
        EngineError::InvalidArgument(format!(
            "error gathering device information while adding custom device \"{host}\": {e}"
        ))
    })?;
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Err(EngineError::InvalidArgument(format!(
            "error gathering device information while adding custom device \"{host}\": not a device node"
        )));
    };
    let rdev = md.rdev();
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let perms = if perms.is_empty() { "rwm" } else { perms };
    Ok((
        json!({
            "path": if ctr.is_empty() { host } else { ctr },
            "type": kind,
            "major": major,
            "minor": minor,
            "fileMode": md.mode() & 0o7777,
            "uid": md.uid(),
            "gid": md.gid(),
        }),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
    ))
}

/// Every device node directly under the host's /dev (for `--privileged`).
fn host_devices() -> Vec<Value> {
    let mut v = Vec::new();
    let mut walk = vec![PathBuf::from("/dev")];
    while let Some(dir) = walk.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            let name = p.to_string_lossy().into_owned();
            if ft.is_dir() {
                if !matches!(name.as_str(), "/dev/pts" | "/dev/shm" | "/dev/mqueue") {
                    walk.push(p);
                }
                continue;
            }
            if name == "/dev/console" || name == "/dev/ptmx" {
                continue;
            }
            if ft.is_char_device() || ft.is_block_device() {
                if let Ok((d, _)) = device(&name, "", "rwm") {
                    v.push(d);
                }
            }
        }
    }
    v
}

/// The files Docker bind-mounts over /etc/hostname, /etc/hosts and
/// /etc/resolv.conf, written into the container's directory.
pub fn write_etc_files(dir: &Path, hostname: &str, domainname: &str) -> Result<()> {
    write_etc_files_net(
        dir,
        &EtcFiles {
            hostname,
            domainname,
            ..EtcFiles::default()
        },
    )
}

/// What goes into a container's /etc/hostname, /etc/hosts and
/// /etc/resolv.conf.
#[derive(Debug, Default)]
pub struct EtcFiles<'a> {
    pub hostname: &'a str,
    pub domainname: &'a str,
    /// The container's address on its first network (else its hostname
    /// maps to 127.0.1.1).
    pub ip: Option<&'a str>,
    /// `--add-host`: (name, address).
    pub extra_hosts: &'a [(String, String)],
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
    /// On a user-defined network: the resolver is the embedded DNS server
    /// at 127.0.0.11 (which forwards to `dns` or the host's resolvers).
    pub embedded_dns: bool,
}

/// [`write_etc_files`] with everything a network mode brings.
pub fn write_etc_files_net(dir: &Path, f: &EtcFiles<'_>) -> Result<()> {
    let w = |name: &str, data: String| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(io("write", &p))
    };
    w("hostname", format!("{}\n", f.hostname))?;
    let fqdn = if f.domainname.is_empty() {
        f.hostname.to_string()
    } else {
        format!("{}.{} {}", f.hostname, f.domainname, f.hostname)
    };
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, ip) in f.extra_hosts {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    hosts.push_str(&format!("{}\t{fqdn}\n", f.ip.unwrap_or("127.0.1.1")));
    w("hosts", hosts)?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    w("resolv.conf", resolv_conf(&host, f))
}

/// A container's resolv.conf from the host's, Docker's way: the host's
/// loopback resolvers are dropped (unreachable from the container's
/// namespace), Google's are the fallback, `--dns*` replace the host's
/// lines, and with the embedded DNS the only nameserver is 127.0.0.11
/// with `ndots:0`.
pub fn resolv_conf(host: &str, f: &EtcFiles<'_>) -> String {
    let mut servers = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for l in host.lines() {
        let mut words = l.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ns) = words.next() {
                    if !(ns.starts_with("127.") || ns == "::1") {
                        servers.push(ns.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    if f.embedded_dns {
        servers = vec!["127.0.0.11".into()];
        options = std::iter::once("ndots:0".to_string())
            .chain(f.dns_options.iter().cloned())
            .collect();
    } else {
        if !f.dns.is_empty() {
            servers = f.dns.to_vec();
        } else if servers.is_empty() {
            servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
        }
        if !f.dns_options.is_empty() {
            options = f.dns_options.to_vec();
        }
    }
    if !f.dns_search.is_empty() {
        search = f.dns_search.iter().filter(|s| *s != ".").cloned().collect();
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The engine's own state and the API sockets a container must not get
/// (it would be root on the host): is `source` one of them?
pub fn is_engine_path(source: &Path, engine_root: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let src = canon(source);
    let root = canon(engine_root);
    if src.starts_with(&root) {
        return true;
    }
    let s = src.to_string_lossy();
    let sockets = [
        "/run/docker.sock",
        "/var/run/docker.sock",
        "/run/podman/podman.sock",
        "/run/containerd/containerd.sock",
    ];
    if sockets
        .iter()
        .any(|k| canon(Path::new(k)) == src || s == *k)
    {
        return true;
    }
    if s.starts_with("/run/barge") || s.starts_with("/var/run/barge") {
        return true;
    }
    // Any unix socket named like an engine's API socket.
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_socket = std::fs::metadata(&src).is_ok_and(|m| m.file_type().is_socket());
    is_socket
        && (name.starts_with("docker") || name.starts_with("barge") || name.starts_with("podman"))
}

/// Label maps for `inspect` are ordered; a helper for callers.
pub fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_follows_docker() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";
        let plain = resolv_conf(host, &EtcFiles::default());
        assert_eq!(
            plain,
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
        // Only loopback resolvers on the host: Google's.
        let only_lo = resolv_conf("nameserver 127.0.0.53\n", &EtcFiles::default());
        assert_eq!(only_lo, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let dns = ["192.0.2.53".to_string()];
        let search = [".".to_string()];
        let opts = ["timeout:1".to_string()];
        let given = resolv_conf(
            host,
            &EtcFiles {
                dns: &dns,
                dns_search: &search,
                dns_options: &opts,
                ..EtcFiles::default()
            },
        );
        assert_eq!(given, "nameserver 192.0.2.53\noptions timeout:1\n");
        let embedded = resolv_conf(
            host,
            &EtcFiles {
                dns: &dns,
                dns_options: &opts,
                embedded_dns: true,
                ..EtcFiles::default()
            },
        );
        assert_eq!(
            embedded,
            "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0 timeout:1\n"
        );
    }

    fn rootfs_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(t.path().join("etc/group"), group).unwrap();
        t
    }

    #[test]
    fn users_resolve_as_docker() {
        let t = rootfs_with(
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
            "root:x:0:\nwww:x:33:\nadm:x:4:www\nstaff:x:50:\n",
        );
        let r = |u: &str, g: &[&str]| {
            resolve_user(
                t.path(),
                u,
                &g.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(r("", &[]).unwrap().home, "/root");
        let w = r("www", &[]).unwrap();
        assert_eq!((w.uid, w.gid, w.additional_gids.clone()), (33, 33, vec![4]));
        assert_eq!(r("33", &[]).unwrap().home, "/var/www");
        let n = r("1234:staff", &["adm"]).unwrap();
        assert_eq!((n.uid, n.gid, n.additional_gids), (1234, 50, vec![4]));
        assert!(r("nobody", &[])
            .unwrap_err()
            .to_string()
            .contains("unable to find user nobody"));
        assert!(r("www:nogroup", &[]).is_err());
    }

    #[test]
    fn passwd_symlink_stays_in_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("etc/passwd")).unwrap();
        // Resolved inside the (empty) root: no host users.
        assert!(resolve_user(t.path(), "root", &[]).is_err());
    }

    #[test]
    fn caps_tweaks() {
        let d = capabilities(&[], &[], false);
        assert_eq!(d.len(), 14);
        let c = capabilities(&["CAP_SYS_ADMIN".into()], &["CAP_CHOWN".into()], false);
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        let only = capabilities(&["CAP_NET_ADMIN".into()], &["ALL".into()], false);
        assert_eq!(only, vec!["CAP_NET_ADMIN".to_string()]);
        assert_eq!(capabilities(&[], &[], true), all_caps());
        assert!(all_caps().len() > 14);
    }

    #[test]
    fn engine_paths() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("barge");
        std::fs::create_dir_all(root.join("containers")).unwrap();
        assert!(is_engine_path(&root, &root));
        assert!(is_engine_path(&root.join("containers"), &root));
        assert!(is_engine_path(Path::new("/var/run/docker.sock"), &root));
        assert!(!is_engine_path(t.path(), &root));
        assert!(!is_engine_path(Path::new("/tmp"), &root));
    }
}
