//! Linux namespaces (config-linux.md "Namespaces", "User namespace mappings",
//! "Offset for Time Namespace"), checked from inside the container.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// The host's namespace link for `ns` (e.g. "net:[4026531840]").
fn host_ns(ns: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn pid1_is_the_container_process() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("echo $$");

    let out = rt.run(&rt.id("pid1"), &b).ok();

    assert_eq!(out.stdout, "1\n");
}

#[test]
fn default_namespaces_are_new() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done");

    let out = rt.run(&rt.id("newns"), &b).ok();

    let inside = out.lines();
    assert_eq!(inside.len(), 5, "{out}");
    for (i, ns) in ["pid", "net", "ipc", "uts", "mnt"].iter().enumerate() {
        assert_ne!(inside[i], host_ns(ns), "{ns} namespace must be new");
    }
}

#[test]
fn hostname_is_set() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["hostname"] = json!("barge-box"));
    b.sh("hostname; cat /proc/sys/kernel/hostname");

    let out = rt.run(&rt.id("hostname"), &b).ok();

    assert_eq!(out.lines(), ["barge-box", "barge-box"]);
}

#[test]
fn domainname_is_set() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["domainname"] = json!("example.org"));
    b.sh("cat /proc/sys/kernel/domainname");

    let out = rt.run(&rt.id("domainname"), &b).ok();

    assert_eq!(out.stdout, "example.org\n");
}

#[test]
fn only_the_rootfs_is_visible() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("ls -1a /; test -e /shared-host-marker && echo LEAK || true");
    let mut want: Vec<String> = fs::read_dir(b.rootfs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.extend([".".to_string(), "..".to_string()]);
    want.sort();

    let out = rt.run(&rt.id("rootonly"), &b).ok();

    let mut got = out.lines();
    got.sort();
    assert_eq!(got, want, "`ls /` shows exactly the bundle's rootfs");
}

#[test]
fn network_namespace_has_only_loopback() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("tail -n +3 /proc/net/dev | cut -d: -f1; ls /sys/class/net");

    let out = rt.run(&rt.id("netns"), &b).ok();

    assert_eq!(out.lines(), ["lo", "lo"]);
}

#[test]
fn user_namespace_maps_container_root_to_host_uid() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.user_namespace(100000, 65536);
    b.sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; touch /shared/made-by-root");

    let out = rt.run(&rt.id("userns"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], "0", "root inside: {out}");
    assert_eq!(lines[1], "0", "{out}");
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(&lines[2]), "0 100000 65536", "uid_map: {out}");
    assert_eq!(norm(&lines[3]), "0 100000 65536", "gid_map: {out}");
    let meta = fs::metadata(shared.join("made-by-root")).expect("file created");
    assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
}

#[test]
fn user_namespace_maps_user_1000() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.user_namespace(200000, 65536);
    b.config(|c| c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 }));
    b.sh("id -u; touch /shared/made-by-user");

    let out = rt.run(&rt.id("userns1000"), &b).ok();

    assert_eq!(out.lines(), ["1000"]);
    let meta = fs::metadata(shared.join("made-by-user")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (201000, 201000));
}

#[test]
fn joins_an_existing_network_namespace_by_path() {
    require_root!();
    let holder = HostProcess::spawn("unshare", &["--net", "sleep", "1000"]);
    let pid = holder.pid();
    assert!(wait_until(WAIT_TIMEOUT, || {
        fs::read_link(format!("/proc/{pid}/ns/net"))
            .map(|l| l.to_string_lossy() != host_ns("net"))
            .unwrap_or(false)
    }));
    let target = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.namespace("network", Some(&format!("/proc/{pid}/ns/net")));
    b.sh("readlink /proc/self/ns/net");

    let out = rt.run(&rt.id("joinnet"), &b).ok();

    assert_eq!(out.stdout.trim(), target.to_string_lossy());
}

#[test]
fn joins_an_existing_uts_namespace_by_path() {
    require_root!();
    let holder = HostProcess::spawn(
        "unshare",
        &[
            "--uts",
            "sh",
            "-c",
            "hostname joined-uts && exec sleep 1000",
        ],
    );
    let pid = holder.pid();
    assert!(wait_until(WAIT_TIMEOUT, || {
        fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .map(|c| c.starts_with("sleep"))
            .unwrap_or(false)
    }));
    let rt = Runtime::new();
    let b = Bundle::new();
    b.namespace("uts", Some(&format!("/proc/{pid}/ns/uts")));
    b.config(|c| {
        // Setting a hostname would change the joined namespace's.
        c.as_object_mut().unwrap().remove("hostname");
    });
    b.sh("hostname; readlink /proc/self/ns/uts");

    let out = rt.run(&rt.id("joinuts"), &b).ok();

    let target = fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_eq!(
        out.lines(),
        [
            "joined-uts".to_string(),
            target.to_string_lossy().into_owned()
        ]
    );
}

#[test]
fn cgroup_namespace_hides_the_cgroup_path() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = rt.id("cgns");
    b.cgroups_path(&id).namespace("cgroup", None);
    b.sh("readlink /proc/self/ns/cgroup; cat /proc/self/cgroup");

    let out = rt.run(&id, &b).ok();

    let lines = out.lines();
    assert_ne!(lines[0], host_ns("cgroup"));
    assert!(lines.len() > 1, "{out}");
    for l in &lines[1..] {
        assert!(l.ends_with(":/"), "cgroup paths are / inside: {out}");
    }
}

#[test]
fn without_cgroup_namespace_the_cgroup_path_is_visible() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = rt.id("nocgns");
    b.cgroups_path(&id);
    b.sh("cat /proc/self/cgroup");

    let out = rt.run(&id, &b).ok();

    assert!(
        out.lines().iter().any(|l| l.ends_with(&format!(":/{id}"))),
        "{out}"
    );
}

#[test]
fn time_namespace_applies_offsets() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let ten_days = 10 * 86400;
    b.namespace("time", None).config(|c| {
        c["linux"]["timeOffsets"] = json!({
            "monotonic": { "secs": ten_days, "nanosecs": 0 },
            "boottime": { "secs": ten_days, "nanosecs": 0 },
        })
    });
    b.sh("cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time");
    let host_uptime = || -> f64 {
        fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = host_uptime();

    let out = rt.run(&rt.id("timens"), &b).ok();

    let after = host_uptime();
    let lines = out.lines();
    let inside: f64 = lines[0].parse().unwrap();
    assert!(
        inside >= before + ten_days as f64 && inside <= after + ten_days as f64 + 1.0,
        "uptime inside {inside}, host {before}..{after}"
    );
    assert_ne!(lines[1], host_ns("time"));
}

#[test]
fn ipc_namespace_is_private() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("cat /proc/sysvipc/shm | wc -l; readlink /proc/self/ns/ipc");

    let out = rt.run(&rt.id("ipc"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], "1", "only the header: no host shm segments");
    assert_ne!(lines[1], host_ns("ipc"));
}

/// A new user namespace that also joins a network namespace owned by the
/// host (Kubernetes' pod sandbox with user namespaces): the join happens
/// before the user namespace is made, and the container is still pid 1 and
/// root only inside.
#[test]
fn new_user_namespace_joins_a_host_owned_network_namespace() {
    require_root!();
    let holder = HostProcess::spawn("unshare", &["--net", "sleep", "1000"]);
    let pid = holder.pid();
    assert!(wait_until(WAIT_TIMEOUT, || {
        fs::read_link(format!("/proc/{pid}/ns/net"))
            .map(|l| l.to_string_lossy() != host_ns("net"))
            .unwrap_or(false)
    }));
    let target = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.user_namespace(100000, 65536);
    b.namespace("network", Some(&format!("/proc/{pid}/ns/net")));
    b.sh("readlink /proc/self/ns/net; echo $$; id -u; cat /proc/self/uid_map");

    let out = rt.run(&rt.id("userns-joinnet"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], target.to_string_lossy(), "{out}");
    assert_eq!(lines[1], "1", "pid 1 in its own pid namespace: {out}");
    assert_eq!(lines[2], "0", "{out}");
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(&lines[3]), "0 100000 65536", "{out}");
}
