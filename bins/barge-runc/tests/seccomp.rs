//! Seccomp through the runtime (config-linux.md "Seccomp"): actions, errno
//! values, argument conditions, the Docker default profile, and
//! SCMP_ACT_NOTIFY with a seccomp agent at `listenerPath`.

mod common;

use common::*;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A filter allowing everything except `rules`.
fn allow_except(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

#[test]
fn errno_ret_38_makes_mkdir_fail_with_function_not_implemented() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.writable();
    b.config(|c| {
        c["linux"]["seccomp"] = allow_except(json!([{
            "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38
        }]))
    });
    b.sh("mkdir /tmp/x; echo mkdir=$?; touch /tmp/y && echo touch-ok");

    let out = rt.run(&rt.id("enosys"), &b).ok();

    assert!(
        out.stderr.contains("Function not implemented"),
        "mkdir fails with ENOSYS: {out}"
    );
    assert_eq!(out.lines(), ["mkdir=1", "touch-ok"], "{out}");
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn errno_without_errno_ret_is_eperm() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.writable();
    b.config(|c| {
        c["linux"]["seccomp"] = allow_except(json!([{
            "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"
        }]))
    });
    b.sh("mkdir /tmp/x");

    let out = rt.run(&rt.id("eperm"), &b);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

/// Enough for the runtime's last steps (sync, exec fifo, close fds,
/// execve) and for busybox sh running a few applets.
const ALLOWED: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clone",
    "clone3",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fcntl",
    "fork",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgrp",
    "getpid",
    "getppid",
    "getrandom",
    "getrlimit",
    "gettid",
    "getuid",
    "ioctl",
    "lseek",
    "lstat",
    "madvise",
    "mmap",
    "mprotect",
    "munmap",
    "nanosleep",
    "clock_nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmsg",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setpgid",
    "sigaltstack",
    "stat",
    "statfs",
    "statx",
    "sysinfo",
    "tgkill",
    "umask",
    "uname",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
];

#[test]
fn default_errno_with_an_allow_list_still_runs_sh() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.writable();
    b.config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": ALLOWED, "action": "SCMP_ACT_ALLOW" }],
        })
    });
    b.sh("echo hello; ls / >/dev/null && echo ls-ok; mkdir /tmp/x; echo mkdir=$?");

    let out = rt.run(&rt.id("allowlist"), &b).ok();

    assert_eq!(out.lines(), ["hello", "ls-ok", "mkdir=1"], "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

#[test]
fn argument_condition_denies_only_the_matching_call() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    // kill(pid, SIGUSR1) is denied, other signals pass.
    b.config(|c| {
        c["linux"]["seccomp"] = allow_except(json!([{
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{ "index": 1, "value": 10, "op": "SCMP_CMP_EQ" }]
        }]))
    });
    b.sh("trap 'echo got-usr2' USR2; \
         kill -USR1 $$ 2>/dev/null; echo usr1=$?; \
         kill -0 $$; echo zero=$?; \
         kill -USR2 $$; echo usr2=$?");

    let out = rt.run(&rt.id("argcond"), &b).ok();

    assert_eq!(
        out.lines(),
        ["usr1=1", "zero=0", "got-usr2", "usr2=0"],
        "{out}"
    );
}

#[test]
fn masked_equality_condition_denies_group_writable_chmod() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.writable();
    // chmod to a mode with the group-write bit (0o020) is denied.
    b.config(|c| {
        c["linux"]["seccomp"] = allow_except(json!([
            { "names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
              "args": [{ "index": 1, "value": 16, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ" }] },
            { "names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
              "args": [{ "index": 2, "value": 16, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ" }] }
        ]))
    });
    b.sh("mkdir /tmp/d; chmod 755 /tmp/d; echo a=$?; \
         chmod 775 /tmp/d 2>/dev/null; echo b=$?; stat -c %a /tmp/d");

    let out = rt.run(&rt.id("masked"), &b).ok();

    assert_eq!(out.lines(), ["a=0", "b=1", "755"], "{out}");
}

#[test]
fn kill_process_action_ends_the_container_with_sigsys() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["mkdir", "/tmp/x"]);
    b.writable();
    b.config(|c| {
        c["linux"]["seccomp"] = allow_except(json!([{
            "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"
        }]))
    });

    let out = rt.run(&rt.id("sigsys"), &b);

    assert_eq!(out.code(), Some(128 + libc::SIGSYS), "{out}");
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn exec_processes_get_the_filter_too() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    b.writable();
    b.config(|c| {
        c["linux"]["seccomp"] = allow_except(json!([{
            "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38
        }]))
    });
    let id = rt.id("execfilter");
    rt.start_container(&id, &b);

    let out = rt.exec(&id, &["mkdir", "/tmp/x"]);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("Function not implemented"), "{out}");
    let status = rt
        .exec(&id, &["grep", "^Seccomp:", "/proc/self/status"])
        .ok();
    assert_eq!(
        status.stdout.split_whitespace().nth(1),
        Some("2"),
        "{status}"
    );
}

fn docker_default() -> Value {
    serde_json::to_value(barge_runtime::seccomp::docker_default_profile()).unwrap()
}

#[test]
fn docker_default_profile_blocks_unshare_but_runs_normal_commands() {
    require_root!();
    let rt = Runtime::new();
    let script = "echo hi; ls /bin >/dev/null && echo ls-ok; \
                  grep ^Seccomp: /proc/self/status; \
                  unshare -U true; echo unshare=$?";

    // Without the profile, the same container may create a user namespace.
    let plain = Bundle::new();
    plain.sh(script);
    let out = rt.run(&rt.id("nodocker"), &plain).ok();
    assert!(out.stdout.contains("unshare=0"), "control: {out}");

    let b = Bundle::new();
    b.config(|c| c["linux"]["seccomp"] = docker_default());
    b.sh(script);

    let out = rt.run(&rt.id("docker"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], "hi", "{out}");
    assert_eq!(lines[1], "ls-ok", "{out}");
    assert_eq!(lines[2].split_whitespace().nth(1), Some("2"), "{out}");
    assert_eq!(lines[3], "unshare=1", "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

// ---------------------------------------------------------------------------
// The compiled-program cache (<root>/@seccomp-cache)

/// The cached programs under the runtime's `--root`.
fn cached_programs(rt: &Runtime) -> Vec<PathBuf> {
    let dir = rt.root().join("@seccomp-cache");
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// mkdir fails with ENOSYS, everything else is allowed; with flags, so
/// that the program is installed with them.
fn enosys_for_mkdir() -> Value {
    let mut s = allow_except(json!([{
        "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38
    }]));
    s["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
    s
}

#[track_caller]
fn assert_mkdir_enosys(out: &Out) {
    assert_eq!(out.lines(), ["mkdir=1", "Seccomp: 2"], "{out}");
    assert!(out.stderr.contains("Function not implemented"), "{out}");
}

#[test]
fn second_run_installs_the_cached_program_and_a_corrupt_one_is_rebuilt() {
    require_root!();
    let rt = Runtime::new().with_global_args(&["--debug"]);
    let b = Bundle::new();
    b.writable();
    b.config(|c| c["linux"]["seccomp"] = enosys_for_mkdir());
    b.sh("mkdir /tmp/x; echo mkdir=$?; grep ^Seccomp: /proc/self/status | tr -s '\\t' ' '");

    let first = rt.run(&rt.id("compile"), &b).ok();

    assert_mkdir_enosys(&first);
    assert!(
        first
            .stderr
            .contains("seccomp: program compiled and cached"),
        "{first}"
    );
    let files = cached_programs(&rt);
    assert_eq!(files.len(), 1, "one program, no temporary file: {files:?}");
    let program = &files[0];
    assert_eq!(program.extension().and_then(|e| e.to_str()), Some("bpf"));
    let bytes = fs::read(program).unwrap();
    assert!(
        !bytes.is_empty() && bytes.chunks_exact(8).remainder().is_empty(),
        "{} bytes",
        bytes.len()
    );
    let inode = fs::metadata(program).unwrap().ino();

    let second = rt.run(&rt.id("cached"), &b).ok();

    assert_mkdir_enosys(&second);
    assert!(
        second
            .stderr
            .contains("seccomp: program read from the cache"),
        "{second}"
    );
    assert_eq!(fs::metadata(program).unwrap().ino(), inode, "not rewritten");

    // A truncated program is never installed: it is rebuilt.
    fs::OpenOptions::new()
        .write(true)
        .open(program)
        .unwrap()
        .set_len(3)
        .unwrap();

    let third = rt.run(&rt.id("rebuilt"), &b).ok();

    assert_mkdir_enosys(&third);
    assert!(
        third
            .stderr
            .contains("seccomp: program compiled and cached"),
        "{third}"
    );
    assert_eq!(fs::read(program).unwrap(), bytes, "the program is back");
    assert_eq!(cached_programs(&rt), files);
}

#[test]
fn exec_installs_the_cached_program_too() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    b.writable();
    b.config(|c| c["linux"]["seccomp"] = enosys_for_mkdir());
    let id = rt.id("execcache");
    rt.start_container(&id, &b);
    assert_eq!(cached_programs(&rt).len(), 1, "stored by create");

    let out = rt.exec_with(&["--debug"], &id, &["mkdir", "/tmp/x"]);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("Function not implemented"), "{out}");
    assert!(
        out.stderr.contains("seccomp: program read from the cache"),
        "{out}"
    );
    assert!(!b.rootfs().join("tmp/x").exists());
}

// ---------------------------------------------------------------------------
// SCMP_ACT_NOTIFY

/// struct seccomp_data
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// struct seccomp_notif
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

/// struct seccomp_notif_resp
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// _IOWR('!', nr, size)
const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const SECCOMP_IOCTL_NOTIF_RECV: u64 = iowr(0, std::mem::size_of::<SeccompNotif>());
const SECCOMP_IOCTL_NOTIF_SEND: u64 = iowr(1, std::mem::size_of::<SeccompNotifResp>());

/// Waits up to `timeout` for `fd` to be readable.
fn poll_in(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    n == 1 && p.revents & libc::POLLIN != 0
}

#[test]
fn notify_hands_the_listener_fd_to_the_agent_which_answers_mkdir() {
    require_root!();
    let rt = Runtime::new();
    let sock = rt.scratch().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let b = Bundle::new();
    b.writable();
    b.config(|c| {
        let mut s = allow_except(json!([{
            "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"
        }]));
        s["listenerPath"] = json!(sock);
        s["listenerMetadata"] = json!("barge-test-meta");
        c["linux"]["seccomp"] = s;
    });
    b.sh("mkdir /tmp/x; echo mkdir=$?; echo after");
    let id = rt.id("notify");

    rt.create(&id, &b).ok();
    let pid = rt.pid(&id);

    // The agent: one connection carrying the fd and the process state.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the runtime never connected to the agent: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut payload = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut buf = vec![0u8; 65536];
        let (n, got) = barge_runtime::sys::socket::recv_fds(conn.as_fd(), &mut buf, 4).unwrap();
        fds.extend(got);
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    let state: Value = serde_json::from_slice(&payload)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&payload)));
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(fds.len(), 1, "one fd: {state}");
    assert_eq!(state["pid"], json!(pid), "{state}");
    assert_eq!(state["metadata"], "barge-test-meta", "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
    assert_eq!(state["state"]["id"], id.as_str(), "{state}");
    // runc sends it while "creating"; after Ready, "created" is right too.
    assert!(
        matches!(
            state["state"]["status"].as_str(),
            Some("creating" | "created")
        ),
        "{state}"
    );
    assert_eq!(state["state"]["pid"], json!(pid), "{state}");
    assert!(state["state"]["bundle"].is_string(), "{state}");
    let notify = fds.pop().unwrap();
    let link = fs::read_link(format!("/proc/self/fd/{}", notify.as_raw_fd())).unwrap();
    assert_eq!(link.to_str().unwrap(), "anon_inode:seccomp notify");

    rt.start(&id).ok();

    assert!(
        poll_in(&notify, WAIT_TIMEOUT),
        "no notification for mkdir; container: {}",
        rt.container_stderr(&id)
    );
    let mut req = SeccompNotif::default();
    // SAFETY: ioctl with a pointer to a zeroed struct of the kernel's size.
    let r = unsafe { libc::ioctl(notify.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) };
    assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert!(
        req.data.nr == libc::SYS_mkdir as i32 || req.data.nr == libc::SYS_mkdirat as i32,
        "notified syscall {}",
        req.data.nr
    );
    let cmdline = fs::read(format!("/proc/{}/cmdline", req.pid)).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("mkdir"),
        "notified pid {} runs {:?}",
        req.pid,
        String::from_utf8_lossy(&cmdline)
    );
    let mut resp = SeccompNotifResp {
        id: req.id,
        val: 0,
        error: -libc::EXDEV,
        flags: 0,
    };
    // SAFETY: ioctl with a pointer to an initialized response.
    let r = unsafe { libc::ioctl(notify.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) };
    assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    rt.wait_for_status(&id, "stopped");

    assert_eq!(rt.container_stdout(&id).trim(), "mkdir=1\nafter");
    assert!(
        rt.container_stderr(&id)
            .contains("Invalid cross-device link"),
        "the agent's answer: {}",
        rt.container_stderr(&id)
    );
    assert!(!b.rootfs().join("tmp/x").exists());
}

// ---------------------------------------------------------------------------
// Bad input (the unknown syscall name is in bad_input.rs)

#[track_caller]
fn assert_rejected(seccomp: Value, word: &str) {
    let rt = Runtime::new();
    let id = rt.id("badseccomp");
    let b = Bundle::with_args(&["sleep", "1000"]);
    b.cgroups_path(&id);
    b.config(|c| c["linux"]["seccomp"] = seccomp);

    let out = rt.create(&id, &b);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains(word), "error names {word}: {out}");
    assert!(!rt.state_dir(&id).exists(), "state dir left: {out}");
    assert_eq!(rt.status(&id), None);
    assert!(cgroup_dirs(&id).is_empty(), "cgroups left");
}

#[test]
fn unknown_rule_action_is_rejected() {
    require_root!();
    assert_rejected(
        allow_except(json!([{ "names": ["mkdir"], "action": "SCMP_ACT_BOGUS" }])),
        "SCMP_ACT_BOGUS",
    );
}

#[test]
fn unknown_default_action_is_rejected() {
    require_root!();
    assert_rejected(
        json!({ "defaultAction": "SCMP_ACT_NOPE", "syscalls": [] }),
        "SCMP_ACT_NOPE",
    );
}

#[test]
fn notify_without_listener_path_is_rejected() {
    require_root!();
    assert_rejected(
        allow_except(json!([{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }])),
        "listenerPath",
    );
}
