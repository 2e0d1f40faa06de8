//! Root filesystem, mounts, devices and the per-process settings that live in
//! the kernel's view of the container (config.md "Root", "Mounts";
//! config-linux.md "Devices", "Default Devices", "Masked/Readonly Paths",
//! "Sysctl", "Rootfs Mount Propagation"; process rlimits/oomScoreAdj/umask).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;

#[test]
fn readonly_root_rejects_writes() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    assert_eq!(b.read_config()["root"]["readonly"], true);
    b.sh("touch /x 2>&1; echo rc=$?");

    let out = rt.run(&rt.id("rofs"), &b).ok();

    assert!(out.stdout.contains("Read-only file system"), "{out}");
    assert!(out.stdout.ends_with("rc=1\n"), "{out}");
    assert!(!b.rootfs().join("x").exists());
}

#[test]
fn writable_root_accepts_writes() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.writable().sh("echo data > /x && cat /x");

    let out = rt.run(&rt.id("rwfs"), &b).ok();

    assert_eq!(out.stdout, "data\n");
    assert_eq!(fs::read_to_string(b.rootfs().join("x")).unwrap(), "data\n");
}

#[test]
fn masked_paths_are_empty() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.push(json!("/etc/group"));
        masked.push(json!("/home"));
    });
    b.sh(
        "for f in /proc/kcore /proc/keys /proc/timer_list /etc/group; do \
           [ -e $f ] && echo $f $(cat $f 2>/dev/null | wc -c); done; \
         for d in /proc/acpi /sys/firmware /home; do \
           [ -e $d ] && echo $d $(ls -A $d | wc -l); done; true",
    );

    let out = rt.run(&rt.id("masked"), &b).ok();

    let lines = out.lines();
    assert!(lines.contains(&"/etc/group 0".to_string()), "{out}");
    assert!(lines.contains(&"/home 0".to_string()), "{out}");
    for l in &lines {
        assert!(l.ends_with(" 0"), "masked path not empty: {l}\n{out}");
    }
    assert!(lines.len() >= 4, "{out}");
}

#[test]
fn readonly_paths_reject_writes() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let data = b.host_dir("data");
    b.bind(&data, "/data", &["rw"]);
    b.config(|c| {
        c["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/data"))
    });
    b.sh("(echo evil > /proc/sys/kernel/hostname) 2>&1; echo rc=$?; \
         touch /data/x 2>&1; echo rc=$?; hostname");

    let out = rt.run(&rt.id("ropaths"), &b).ok();

    let lines = out.lines();
    assert!(lines[0].contains("Read-only file system"), "{out}");
    assert_eq!(lines[1], "rc=1");
    assert!(lines[2].contains("Read-only file system"), "{out}");
    assert_eq!(lines[3], "rc=1");
    assert_eq!(lines[4], "runc", "hostname unchanged");
    assert!(!data.join("x").exists());
}

#[test]
fn default_devices_exist() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("for d in null zero full random urandom tty; do \
           echo $d $(stat -c '%F %t:%T' /dev/$d); done; \
         for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; \
         grep -E ' /dev/(shm|pts) ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1; \
         echo x > /dev/null && head -c 3 /dev/zero | wc -c");

    let out = rt.run(&rt.id("devices"), &b).ok();

    assert_eq!(
        out.lines(),
        [
            "null character special file 1:3",
            "zero character special file 1:5",
            "full character special file 1:7",
            "random character special file 1:8",
            "urandom character special file 1:9",
            "tty character special file 5:0",
            "pts/ptmx",
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
            "devpts",
            "tmpfs",
            "3",
        ]
    );
}

#[test]
fn custom_device_is_created_with_given_attributes() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        // root in the default config lacks CAP_DAC_OVERRIDE; write as the owner
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        c["linux"]["devices"] = json!([{
            "path": "/dev/barge-null",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o640,
            "uid": 1000,
            "gid": 1000
        }]);
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }));
    });
    b.sh(
        "stat -c '%F %t:%T %a %u:%g' /dev/barge-null && echo hi > /dev/barge-null && echo written",
    );

    let out = rt.run(&rt.id("customdev"), &b).ok();

    assert_eq!(
        out.lines(),
        ["character special file 1:3 640 1000:1000", "written"]
    );
}

#[test]
fn bind_mounts_ro_and_rw() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let ro = b.host_dir("ro-src");
    let rw = b.host_dir("rw-src");
    fs::write(ro.join("hello"), "from host\n").unwrap();
    b.bind(&ro, "/ro", &["ro"]).bind(&rw, "/rw", &["rw"]);
    b.sh("cat /ro/hello; touch /ro/new 2>&1; echo rc=$?; \
         echo from container > /rw/out && echo ok");

    let out = rt.run(&rt.id("binds"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], "from host");
    assert!(lines[1].contains("Read-only file system"), "{out}");
    assert_eq!(lines[2], "rc=1");
    assert_eq!(lines[3], "ok");
    assert!(!ro.join("new").exists());
    assert_eq!(
        fs::read_to_string(rw.join("out")).unwrap(),
        "from container\n"
    );
}

#[test]
fn bind_mount_options_are_applied() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let src = b.host_dir("opts-src");
    b.bind(&src, "/opts", &["ro", "nosuid", "noexec", "nodev"]);
    b.sh("grep ' /opts ' /proc/self/mountinfo | cut -d' ' -f6");

    let out = rt.run(&rt.id("bindopts"), &b).ok();

    let opts: Vec<&str> = out.stdout.trim().split(',').collect();
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "{o} in {opts:?}");
    }
}

#[test]
fn tmpfs_mount_with_size_and_mode() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.mount(json!({
        "destination": "/scratch",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "size=1m", "mode=1770"]
    }));
    b.sh(
        "stat -c %a /scratch; df -k /scratch | tail -n1 | awk '{print $2}'; \
         dd if=/dev/zero of=/scratch/big bs=1k count=2000 2>&1; echo rc=$?",
    );

    let out = rt.run(&rt.id("tmpfs"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], "1770");
    assert_eq!(lines[1], "1024", "size=1m: {out}");
    assert!(out.stdout.contains("No space left on device"), "{out}");
    assert_eq!(lines.last().unwrap(), "rc=1");
}

#[test]
fn symlink_mount_target_resolves_inside_the_rootfs() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    symlink("/tmp", b.rootfs().join("etc/x")).unwrap();
    let src = b.host_dir("symlink-src");
    fs::write(src.join("marker"), "inside\n").unwrap();
    b.bind(&src, "/etc/x", &["ro"]);
    b.sh("cat /tmp/marker; readlink /etc/x");

    let out = rt.run(&rt.id("symlinktarget"), &b).ok();

    assert_eq!(out.lines(), ["inside", "/tmp"]);
    assert!(
        !std::path::Path::new("/tmp/marker").exists()
            || fs::read_to_string("/tmp/marker").unwrap() != "inside\n"
    );
}

/// Optional fields (e.g. "shared:12") of the mountinfo line for `/`.
fn root_propagation(rt: &Runtime, b: &Bundle, prop: &str) -> String {
    b.config(|c| c["linux"]["rootfsPropagation"] = json!(prop));
    b.sh("awk '$5 == \"/\" { for (i = 7; $i != \"-\"; i++) printf \"%s \", $i; print \"\" }' /proc/self/mountinfo");
    rt.run(&rt.id("prop"), b).ok().stdout.trim().to_string()
}

#[test]
fn rootfs_propagation_shared_makes_root_a_peer_group() {
    require_root!();
    let rt = Runtime::new();

    let fields = root_propagation(&rt, &Bundle::new(), "shared");

    assert!(fields.contains("shared:"), "shared root: {fields:?}");
}

#[test]
fn rootfs_propagation_private() {
    require_root!();
    let rt = Runtime::new();

    let fields = root_propagation(&rt, &Bundle::new(), "private");

    assert!(!fields.contains("shared:"), "private root: {fields:?}");
    assert!(!fields.contains("master:"), "private root: {fields:?}");
}

#[test]
fn rootfs_propagation_unbindable() {
    require_root!();
    let rt = Runtime::new();

    let fields = root_propagation(&rt, &Bundle::new(), "unbindable");

    assert!(fields.contains("unbindable"), "unbindable root: {fields:?}");
}

#[test]
fn sysctls_are_applied() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        c["linux"]["sysctl"] = json!({
            "net.ipv4.ip_forward": "1",
            "kernel.domainname": "sysctl.example",
            "kernel.shmmax": "1048576"
        })
    });
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname /proc/sys/kernel/shmmax");

    let out = rt.run(&rt.id("sysctl"), &b).ok();

    assert_eq!(out.lines(), ["1", "sysctl.example", "1048576"]);
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/domainname")
            .unwrap()
            .trim(),
        "sysctl.example",
        "host untouched"
    );
}

#[test]
fn rlimits_are_applied() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        c["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000 },
            { "type": "RLIMIT_NPROC", "soft": 300, "hard": 400 }
        ])
    });
    b.sh("ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu");

    let out = rt.run(&rt.id("rlimits"), &b).ok();

    assert_eq!(out.lines(), ["512", "1000", "300", "400"]);
}

#[test]
fn oom_score_adj_is_applied() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["process"]["oomScoreAdj"] = json!(345));
    b.sh("cat /proc/self/oom_score_adj");

    let out = rt.run(&rt.id("oomadj"), &b).ok();

    assert_eq!(out.stdout, "345\n");
}

#[test]
fn umask_is_applied() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["process"]["user"]["umask"] = json!(0o027));
    b.sh("umask");

    let out = rt.run(&rt.id("umask"), &b).ok();

    assert_eq!(out.stdout, "0027\n");
}

#[test]
fn default_umask_is_0022() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("umask");

    let out = rt.run(&rt.id("umaskdef"), &b).ok();

    assert_eq!(out.stdout, "0022\n");
}
