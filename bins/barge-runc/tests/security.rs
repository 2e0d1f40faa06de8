//! Hardening against the known runc escapes: the runtime binary cannot be
//! overwritten from a container (CVE-2019-5736), no host fd or directory
//! leaks into the container (CVE-2024-21626), symlinks in the rootfs cannot
//! redirect mounts to the host (CVE-2021-30465 class), /proc/sys,
//! /proc/sysrq-trigger and the cgroup release_agent stay out of reach, and
//! mounts under /proc are limited to runc's allow-list.

mod common;

use common::*;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// sha256 of a host file, by `sha256sum`.
fn sha256(p: &Path) -> String {
    let out = host("sha256sum", &[p.to_str().unwrap()]).ok();
    out.stdout.split_whitespace().next().unwrap().to_string()
}

/// The runtime binary with symlinks resolved (what a container would
/// overwrite in CVE-2019-5736).
fn runtime_file() -> PathBuf {
    fs::canonicalize(runtime_bin()).unwrap()
}

/// Mount points (field 5) of the host's mountinfo.
fn host_mountpoints() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect()
}

// ---------------------------------------------------------------------------
// CVE-2019-5736: the runtime binary

/// A private copy of the runtime binary (so an escape that works damages
/// only the copy, not the shared build), with its sha256.
fn private_runtime_copy(rt: &Runtime) -> (PathBuf, String) {
    let copy = rt.scratch().join("runtime-copy");
    fs::copy(runtime_file(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let sha = sha256(&copy);
    (copy, sha)
}

/// Is the executable behind /proc/<pid>/exe write-protected: a sealed
/// memfd, or a file on a read-only mount?
fn exe_protection(pid: u32) -> (String, libc::c_int, bool) {
    let path = format!("/proc/{pid}/exe");
    let link = fs::read_link(&path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let f = fs::File::open(&path).unwrap();
    // SAFETY: fcntl on an fd we own, no pointers.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    // SAFETY: a zeroed statvfs filled in by fstatvfs on an fd we own.
    let ro = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::fstatvfs(f.as_raw_fd(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    };
    (link, seals, ro)
}

const ALL_SEALS: libc::c_int =
    libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;

#[test]
fn foreground_runtime_runs_from_a_write_protected_executable() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "3"]);
    let id = rt.id("protexe");
    let mut child = rt
        .command()
        .arg("run")
        .arg("--bundle")
        .arg(b.path())
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // By the time the container runs, the runtime has re-executed itself.
    rt.wait_for_status(&id, "running");
    let (link, seals, ro) = exe_protection(pid);
    let status = child.wait().unwrap();

    let sealed = seals >= 0 && seals & ALL_SEALS == ALL_SEALS;
    assert!(
        sealed || ro,
        "the foreground runtime (pid {pid}) runs from {link:?}: neither a sealed memfd \
         (seals {seals:#x}) nor on a read-only mount"
    );
    if link.starts_with("/memfd:") {
        assert!(sealed, "memfd {link:?} is not sealed ({seals:#x})");
    }
    assert!(status.success(), "run exited {status}");
}

#[test]
fn container_cannot_overwrite_the_runtime_binary_through_init_exe() {
    require_root!();
    let rt = Runtime::new();
    let (copy, before) = private_runtime_copy(&rt);
    let b = Bundle::with_args(&["sleep", "4"]);
    let out = b.shared_dir("/out");
    // A startContainer hook runs in the container while its parent, the
    // init (pid 1 there), still runs the runtime's code. It tries to write
    // at once, and keeps an fd to try again once the init has exec'd and
    // the runtime has exited (the CVE-2019-5736 flow).
    let script = r#"
        p=$PPID
        echo $p > /out/ppid
        readlink /proc/$p/exe > /out/link 2>&1
        cat /proc/$p/exe > /out/copy 2>/out/copy.err
        if (echo CVE-2019-5736 >> /proc/$p/exe) 2>/out/now.err; then echo WRITTEN > /out/now; else echo REFUSED > /out/now; fi
        exec 7</proc/$p/exe || { echo NOFD > /out/later; exit 0; }
        (
            sleep 2
            if (echo CVE-2019-5736 >> /proc/self/fd/7) 2>/out/later.err; then
                echo WRITTEN > /out/later
            else
                echo REFUSED > /out/later
            fi
        ) </dev/null >/dev/null 2>&1 &
    "#;
    b.config(|c| {
        c["hooks"] = json!({
            "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", script] }]
        })
    });
    let id = rt.id("exe");
    let mut cmd = Command::new(&copy);
    cmd.arg("--root")
        .arg(rt.root())
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(&id);

    let run = rt.output(&mut cmd);
    let later = wait_for_file(&out.join("later"));

    let after = sha256(&copy);
    let now = read_lossy(&out.join("now"));
    let link = read_lossy(&out.join("link"));
    let errs = format!(
        "now: {} later: {} link: {link}",
        read_lossy(&out.join("now.err")),
        read_lossy(&out.join("later.err"))
    );
    assert!(run.success(), "{run}");
    assert_eq!(before, after, "the runtime binary changed! {errs}");
    assert_eq!(now.trim(), "REFUSED", "{errs}");
    assert_eq!(later.trim(), "REFUSED", "{errs}");
    // Refused for a lasting reason (read-only mount, or a sealed memfd),
    // not only because someone happened to execute the file.
    let later_err = read_lossy(&out.join("later.err"));
    assert!(
        later_err.contains("Read-only file system")
            || later_err.contains("Operation not permitted"),
        "{errs}"
    );
    // The container did reach the runtime's code (a copy of it).
    let got = out.join("copy");
    if got.metadata().map(|m| m.len() > 0).unwrap_or(false) {
        assert_eq!(sha256(&got), before, "init's exe holds the runtime's bytes");
    }
}

#[test]
fn container_entrypoint_proc_self_exe_cannot_touch_the_runtime_binary() {
    require_root!();
    let rt = Runtime::new();
    let (copy, before) = private_runtime_copy(&rt);
    // "#!/proc/self/exe" in an image amounts to this: the container process
    // is the file behind the init's /proc/self/exe at execve time.
    let b = Bundle::with_args(&["/proc/self/exe", "--version"]);
    let id = rt.id("selfexe");
    rt.track(&id);
    let mut cmd = Command::new(&copy);
    cmd.arg("--root")
        .arg(rt.root())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id);

    let run = rt.output(&mut cmd);

    assert_eq!(sha256(&copy), before, "the runtime binary changed! {run}");
}

// ---------------------------------------------------------------------------
// CVE-2024-21626: leaked fds, cwd outside the rootfs

/// Parses `N -> target` lines of `ls -l /proc/self/fd` (busybox format).
fn fd_links(ls: &str) -> Vec<(u32, String)> {
    ls.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let n = left.split_whitespace().last()?.parse().ok()?;
            Some((n, target.trim().to_string()))
        })
        .collect()
}

#[track_caller]
fn assert_only_stdio(ls: &str, what: &str) {
    let links = fd_links(ls);
    assert!(
        links.iter().any(|(n, _)| *n == 0),
        "{what}: no fd listing: {ls}"
    );
    for (n, target) in &links {
        if *n <= 2 {
            continue;
        }
        // ls's own fd on the directory it lists.
        let own = target.starts_with("/proc/") && target.ends_with("/fd");
        assert!(own, "{what}: leaked fd {n} -> {target}\n{ls}");
    }
}

#[test]
fn container_process_has_only_stdio_fds() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("ls -l /proc/self/fd");

    let out = rt.run(&rt.id("fds"), &b).ok();
    assert_only_stdio(&out.stdout, "run");

    // And after create/start (the init held the exec fifo).
    let id = rt.id("fds-create");
    let b2 = Bundle::new();
    b2.sh("ls -l /proc/self/fd; sleep 1000");
    rt.start_container(&id, &b2);
    assert!(wait_until(WAIT_TIMEOUT, || rt
        .container_stdout(&id)
        .contains("-> ")));
    thread_sleep_ms(200);
    assert_only_stdio(&rt.container_stdout(&id), "create/start");
}

fn thread_sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn exec_process_has_only_stdio_fds() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execfds");
    rt.start_container(&id, &b);

    let out = rt.exec(&id, &["ls", "-l", "/proc/self/fd"]).ok();

    assert_only_stdio(&out.stdout, "exec");
}

/// A container script that proves where its cwd is: `pwd -P` must be an
/// absolute path (getcwd says "(unreachable)" outside the root) that names
/// the very directory the process is in, and the host-only marker file
/// must not be there.
const CWD_PROBE: &str = r#"
    p=$(pwd -P 2>&1); echo "pwd=$p"
    case "$p" in /*) ;; *) echo OUTSIDE; exit 0;; esac
    [ "$(stat -c %d:%i .)" = "$(stat -c %d:%i "$p" 2>/dev/null)" ] || echo OUTSIDE
    ls -a . ..  2>/dev/null | grep -q barge-host-only-marker && echo HOSTMARKER
    ls -a ../../.. 2>/dev/null | grep -q barge-host-only-marker && echo HOSTMARKER
    echo done
"#;

#[track_caller]
fn assert_cwd_inside(out: &Out, what: &str) {
    if out.success() {
        assert!(
            out.stdout.contains("pwd=/") && out.stdout.contains("done"),
            "{what}: {out}"
        );
        assert!(
            !out.stdout.contains("OUTSIDE") && !out.stdout.contains("HOSTMARKER"),
            "{what}: cwd is outside the container: {out}"
        );
        assert!(!out.stdout.contains("(unreachable)"), "{what}: {out}");
    } else {
        // A refusal must say why, on one line, mentioning the cwd.
        let err = out.stderr.to_lowercase();
        assert!(
            err.contains("cwd") || err.contains("chdir") || err.contains("/proc/self/fd"),
            "{what}: failure without a clear error: {out}"
        );
        assert!(!out.stdout.contains("OUTSIDE"), "{what}: {out}");
    }
}

#[test]
fn cwd_through_proc_self_fd_never_lands_outside_the_rootfs() {
    require_root!();
    let rt = Runtime::new();
    for n in 3..=10 {
        let b = Bundle::new();
        fs::write(b.path().join("barge-host-only-marker"), "x").unwrap();
        let cwd = format!("/proc/self/fd/{n}");
        b.config(|c| c["process"]["cwd"] = json!(cwd));
        b.sh(CWD_PROBE);

        let out = rt.run(&rt.id(&format!("cwd{n}")), &b);
        assert_cwd_inside(&out, &format!("run with cwd {cwd}"));

        let id = rt.id(&format!("cwdc{n}"));
        let out = rt.create(&id, &b);
        if out.success() {
            rt.start(&id).ok();
            rt.wait_for_status(&id, "stopped");
            let o = Out {
                cmdline: format!("create/start with cwd {cwd}"),
                status: out.status,
                stdout: rt.container_stdout(&id),
                stderr: rt.container_stderr(&id),
                timed_out: false,
            };
            assert_cwd_inside(&o, &format!("create with cwd {cwd}"));
        } else {
            assert_cwd_inside(&out, &format!("create with cwd {cwd}"));
        }
    }
}

#[test]
fn exec_cwd_through_proc_self_fd_never_lands_outside_the_rootfs() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    fs::write(b.path().join("barge-host-only-marker"), "x").unwrap();
    let id = rt.id("execcwd");
    rt.start_container(&id, &b);
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = rt.exec_with(&["--cwd", &cwd], &id, &["sh", "-c", CWD_PROBE]);
        assert_cwd_inside(&out, &format!("exec --cwd {cwd}"));
    }
}

/// Runs the runtime with `args` while it inherits (without --preserve-fds)
/// an open directory fd on `dir` as fd `target`, as a careless caller (or a
/// runtime bug like runc's leaked cgroup fd) would hand it one.
fn cmd_with_inherited_dir_fd(rt: &Runtime, args: &[&str], dir: &Path, target: i32) -> Out {
    let d = fs::File::open(dir).unwrap();
    let raw = d.as_raw_fd();
    let mut cmd = rt.command();
    cmd.args(args);
    // SAFETY: dup2 is async-signal-safe; `raw` stays open until the spawn
    // is done (`d` lives to the end of this function).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = rt.output(&mut cmd);
    drop(d);
    out
}

#[test]
fn inherited_host_dir_fd_cannot_become_the_cwd() {
    require_root!();
    let b = Bundle::new();
    let rt = Runtime::new();
    // The host directory the fd points at: the bundle dir, with a marker.
    fs::write(b.path().join("barge-host-only-marker"), "x").unwrap();
    b.config(|c| c["process"]["cwd"] = json!("/proc/self/fd/5"));
    b.sh(CWD_PROBE);
    let id = rt.id("inhfd");
    rt.track(&id);

    let out = cmd_with_inherited_dir_fd(
        &rt,
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
        b.path(),
        5,
    );

    assert_cwd_inside(
        &out,
        "run with an inherited dir fd 5 and cwd /proc/self/fd/5",
    );
}

#[test]
fn inherited_host_dir_fd_is_not_visible_in_the_container() {
    require_root!();
    let b = Bundle::new();
    let rt = Runtime::new();
    b.sh("ls -l /proc/self/fd");
    let id = rt.id("inhfd2");
    rt.track(&id);

    let out = cmd_with_inherited_dir_fd(
        &rt,
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
        b.path(),
        5,
    );

    assert!(out.success(), "{out}");
    assert_only_stdio(&out.stdout, "run with an inherited fd 5");
}

#[test]
fn exec_with_inherited_host_dir_fd_cannot_get_a_host_cwd() {
    require_root!();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let rt = Runtime::new();
    fs::write(b.path().join("barge-host-only-marker"), "x").unwrap();
    let id = rt.id("inhfdexec");
    rt.start_container(&id, &b);

    let out = cmd_with_inherited_dir_fd(
        &rt,
        &[
            "exec",
            "--cwd",
            "/proc/self/fd/5",
            &id,
            "sh",
            "-c",
            CWD_PROBE,
        ],
        b.path(),
        5,
    );

    assert_cwd_inside(
        &out,
        "exec with an inherited dir fd 5 and --cwd /proc/self/fd/5",
    );
    let out = cmd_with_inherited_dir_fd(
        &rt,
        &["exec", &id, "ls", "-l", "/proc/self/fd"],
        b.path(),
        5,
    );
    assert!(out.success(), "{out}");
    assert_only_stdio(&out.stdout, "exec with an inherited fd 5");
}

// ---------------------------------------------------------------------------
// CVE-2021-30465 class: symlinks as mount targets

#[test]
fn symlinked_mount_targets_resolve_inside_the_rootfs() {
    require_root!();
    let rt = Runtime::new();
    let hostmark = tempfile::Builder::new()
        .prefix("barge-hostmark-")
        .tempdir_in("/tmp")
        .unwrap();
    let h = hostmark.path().to_str().unwrap().to_string(); // /tmp/barge-hostmark-X
    fs::write(hostmark.path().join("host-only"), "host").unwrap();
    let b = Bundle::with_args(&["sh"]);
    let r = b.rootfs();
    // Three ways out: absolute with "..", "/" itself, relative climbing.
    symlink(format!("/../../../..{h}"), r.join("evil")).unwrap();
    symlink("/", r.join("mnt")).unwrap();
    symlink(format!("../../../../../../..{h}"), r.join("rel")).unwrap();
    // The in-rootfs counterpart of the host dir.
    fs::create_dir_all(r.join(&h[1..])).unwrap();
    let src = b.host_dir("source");
    fs::write(src.join("from-source"), "src").unwrap();
    b.bind(&src, "/evil/bound", &["ro"]);
    b.mount(json!({ "destination": "/rel/tmpfs", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] }));
    b.bind(&src, "/mnt/inroot", &["ro"]);
    b.sh(&format!(
        "cat {h}/bound/from-source; echo; \
         grep -c ' {h}/tmpfs ' /proc/self/mountinfo; \
         cat /inroot/from-source; echo; \
         ls {h}/host-only 2>/dev/null || echo no-host-only"
    ));
    let id = rt.id("symlinks");
    let host_before = host_mountpoints();

    rt.create(&id, &b).ok();
    let host_during = host_mountpoints();
    rt.start(&id).ok();
    rt.wait_for_status(&id, "stopped");

    let new: Vec<&String> = host_during
        .iter()
        .filter(|m| !host_before.contains(m))
        .filter(|m| m.starts_with(&h) || m.as_str() == "/" || m.starts_with("/inroot"))
        .collect();
    assert!(new.is_empty(), "host got mounts: {new:?}");
    let names: Vec<String> = fs::read_dir(hostmark.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["host-only"], "host dir {h} was touched");
    assert!(!Path::new("/inroot").exists(), "/inroot made on the host");
    let stdout = rt.container_stdout(&id);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["src", "1", "src", "no-host-only"],
        "mounts are visible at the in-rootfs paths: {stdout}\n{}",
        rt.container_stderr(&id)
    );
    assert!(r.join(&h[1..]).join("bound").is_dir());
    assert!(r.join("inroot").exists());
}

#[test]
fn dangling_symlinked_mount_target_never_touches_the_host() {
    require_root!();
    let rt = Runtime::new();
    let hostmark = tempfile::Builder::new()
        .prefix("barge-hostmark-")
        .tempdir_in("/tmp")
        .unwrap();
    let h = hostmark.path().to_str().unwrap().to_string();
    let b = Bundle::new();
    // The target exists on the host only, not in the rootfs.
    symlink(format!("/../../../..{h}"), b.rootfs().join("evil")).unwrap();
    let src = b.host_dir("source");
    fs::write(src.join("from-source"), "src").unwrap();
    b.bind(&src, "/evil/sub", &["ro"]);
    b.mount(json!({ "destination": "/evil/tmp2", "type": "tmpfs", "source": "tmpfs" }));
    b.sh(&format!(
        "cat {h}/sub/from-source; echo; grep -c ' {h}/tmp2 ' /proc/self/mountinfo"
    ));

    let out = rt.run(&rt.id("dangling"), &b);

    let names: Vec<_> = fs::read_dir(hostmark.path()).unwrap().collect();
    assert!(names.is_empty(), "host dir {h} got {names:?}: {out}");
    // runc creates the target inside the rootfs; a runtime that refuses
    // must say so.
    if out.success() {
        assert_eq!(out.lines(), ["src", "1"], "{out}");
    } else {
        assert!(out.stderr.contains("/evil"), "{out}");
    }
}

#[test]
fn symlink_into_proc_cannot_smuggle_a_mount_under_proc() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["cat", "/proc/sys/kernel/core_pattern"]);
    symlink("/proc/sys/kernel", b.rootfs().join("evilproc")).unwrap();
    let src = b.path().join("fake_core_pattern");
    fs::write(&src, "|/evil\n").unwrap();
    b.bind(&src, "/evilproc/core_pattern", &[]);
    let id = rt.id("procsym");

    let out = rt.create(&id, &b);

    assert!(
        !out.success(),
        "a bind mount reaching /proc/sys/kernel/core_pattern through a symlink was allowed: {out}"
    );
    assert!(out.stderr.contains("/proc"), "{out}");
    assert_eq!(rt.status(&id), None);
    assert!(!rt.state_dir(&id).exists());
}

// ---------------------------------------------------------------------------
// /proc/sys, /proc/sysrq-trigger, cgroup release_agent

#[test]
fn proc_sys_and_sysrq_trigger_are_read_only() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    // "h" only prints sysrq help to the kernel log, should it ever work.
    b.sh(
        "(echo evil > /proc/sys/kernel/hostname) 2>/dev/null && echo HOSTNAME-WRITTEN; \
         (echo 0 > /proc/sys/kernel/randomize_va_space) 2>/dev/null && echo SYSCTL-WRITTEN; \
         (echo h > /proc/sysrq-trigger) 2>/dev/null && echo SYSRQ-WRITTEN; \
         [ -e /proc/sysrq-trigger ] && echo HAS-SYSRQ; \
         grep -E ' /proc/(sys|sysrq-trigger) ' /proc/self/mountinfo; hostname",
    );

    let out = rt.run(&rt.id("procsys"), &b).ok();

    assert!(!out.stdout.contains("WRITTEN"), "{out}");
    let mounts: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" /proc/"))
        .collect();
    // This kernel may lack CONFIG_MAGIC_SYSRQ (no /proc/sysrq-trigger).
    let want = if out.stdout.contains("HAS-SYSRQ") {
        2
    } else {
        1
    };
    assert_eq!(mounts.len(), want, "{out}");
    for m in mounts {
        let opts = m.split(' ').nth(5).unwrap();
        assert!(opts.split(',').any(|o| o == "ro"), "not read-only: {m}");
    }
    assert_eq!(out.lines().last().unwrap(), "runc");
}

#[test]
fn cgroup_release_agent_and_cgroup_mounts_are_out_of_reach() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh(
        "for f in /sys/fs/cgroup/release_agent /sys/fs/cgroup/*/release_agent \
                  /sys/fs/cgroup/*/notify_on_release /sys/fs/cgroup/*/cgroup.procs; do \
            [ -e $f ] || continue; echo found $f; \
            (echo /evil >> $f) 2>/dev/null && echo WROTE $f; \
         done; \
         mkdir /sys/fs/cgroup/memory/evil 2>/dev/null && echo MKDIR-OK; \
         touch /sys/fs/cgroup/evil 2>/dev/null && echo TOUCH-OK; \
         mount -t cgroup -o memory cgroup /tmp 2>/dev/null && echo MOUNT-OK; \
         mount -t cgroup -o none,name=evil cgroup /tmp 2>/dev/null && echo MOUNT-OK; \
         mount -t cgroup2 none /tmp 2>/dev/null && echo MOUNT-OK; \
         echo end",
    );

    let out = rt.run(&rt.id("relagent"), &b).ok();

    assert!(out.stdout.contains("found "), "no cgroup files seen: {out}");
    assert!(!out.stdout.contains("WROTE"), "{out}");
    assert!(!out.stdout.contains("-OK"), "{out}");
    assert!(out.stdout.contains("end"), "{out}");
    // The host's release agents are untouched.
    for e in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let ra = e.path().join("release_agent");
        if let Ok(s) = fs::read_to_string(&ra) {
            assert!(!s.contains("/evil"), "{} = {s}", ra.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Mounts under /proc

fn refused_proc_mount(mount: Value, what: &str) {
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("procmnt");
    b.cgroups_path(&id);
    b.mount(mount);
    let before = host_mountpoints();

    let out = rt.create(&id, &b);

    assert_eq!(out.code(), Some(1), "{what}: {out}");
    let err = out.stderr.to_lowercase();
    assert!(err.contains("/proc"), "{what}: error names the path: {out}");
    assert!(
        ["not allowed", "invalid", "forbidden", "cannot be mounted"]
            .iter()
            .any(|w| err.contains(w)),
        "{what}: clear error: {out}"
    );
    assert!(!rt.state_dir(&id).exists(), "{what}: state dir left");
    assert_eq!(rt.status(&id), None);
    assert!(cgroup_dirs(&id).is_empty(), "{what}: cgroups left");
    let after = host_mountpoints();
    let new: Vec<_> = after.iter().filter(|m| !before.contains(m)).collect();
    assert!(
        !new.iter().any(|m| m.contains(b.path().to_str().unwrap())),
        "{what}: mounts left: {new:?}"
    );
    let leftover = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| pid_alive(*p))
        .any(|p| {
            fs::read_to_string(format!("/proc/{p}/cgroup"))
                .map(|c| c.contains(&id))
                .unwrap_or(false)
        });
    assert!(
        !leftover,
        "{what}: a process is left in the container's cgroup"
    );
}

#[test]
fn bind_mount_over_proc_sys_kernel_core_pattern_is_refused() {
    require_root!();
    let src = tempfile::NamedTempFile::new().unwrap();
    fs::write(src.path(), "|/evil\n").unwrap();
    refused_proc_mount(
        json!({ "destination": "/proc/sys/kernel/core_pattern", "type": "bind",
                "source": src.path(), "options": ["bind"] }),
        "bind over core_pattern",
    );
}

#[test]
fn tmpfs_over_proc_self_is_refused() {
    require_root!();
    refused_proc_mount(
        json!({ "destination": "/proc/self/../1/attr", "type": "tmpfs", "source": "tmpfs" }),
        "tmpfs over /proc/1/attr",
    );
    refused_proc_mount(
        json!({ "destination": "/proc", "type": "tmpfs", "source": "tmpfs" }),
        "tmpfs over /proc",
    );
}

#[test]
fn allowed_proc_file_bind_works() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let src = b.path().join("fake_uptime");
    fs::write(&src, "12345.67 0.00\n").unwrap();
    b.bind(&src, "/proc/uptime", &["ro"]);
    b.sh("cat /proc/uptime");

    let out = rt.run(&rt.id("uptime"), &b).ok();

    assert_eq!(out.stdout.trim(), "12345.67 0.00");
}

/// An image whose /dev is a symlink to an absolute path must not make the
/// runtime replace or create device nodes on the host: the link resolves
/// inside the rootfs.
#[test]
fn dev_symlinked_out_of_the_rootfs_never_touches_host_files() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sh", "-c", "ls -l /dev/null /dev/ptmx"]);
    let host = tempfile::tempdir().unwrap();
    for f in ["ptmx", "null", "zero"] {
        fs::write(host.path().join(f), "host file\n").unwrap();
    }
    // The default bundle mounts a tmpfs on /dev; take it out so the image's
    // own /dev is what the runtime fills.
    b.config(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.retain(|m| m["destination"] != "/dev");
        for m in m.iter_mut() {
            let d = m["destination"].as_str().unwrap().to_string();
            if let Some(rest) = d.strip_prefix("/dev/") {
                m["destination"] = json!(format!("/dev/{rest}"));
            }
        }
    });
    fs::remove_dir_all(b.rootfs().join("dev")).unwrap();
    symlink(host.path(), b.rootfs().join("dev")).unwrap();
    // Where the link really leads (inside the rootfs) the image has files of
    // the same names, which the runtime replaces with nodes and links.
    let inside = b.rootfs().join(host.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    for f in ["ptmx", "null", "zero"] {
        fs::write(inside.join(f), "image file\n").unwrap();
    }

    let _ = rt.run(&rt.id("devlink"), &b);

    for f in ["ptmx", "null", "zero"] {
        let p = host.path().join(f);
        let meta = fs::symlink_metadata(&p).unwrap();
        assert!(meta.is_file(), "host {} was replaced", p.display());
        assert_eq!(fs::read_to_string(&p).unwrap(), "host file\n");
    }
    let names: Vec<_> = fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "nothing new on the host: {names:?}");
}
