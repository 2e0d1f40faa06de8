//! The container process (config.md "Process"): user, cwd, env,
//! capabilities, noNewPrivileges, stdio, --pid-file, --preserve-fds.

mod common;

use common::*;
use std::fs;
use std::process::Command;

#[test]
fn user_uid_gid_and_additional_gids() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [5, 100] })
    });
    b.sh("id -u; id -g; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo");

    let out = rt.run(&rt.id("user"), &b).ok();

    let lines = out.lines();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(groups.contains(&"5") && groups.contains(&"100"), "{out}");
}

#[test]
fn cwd_is_set() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["process"]["cwd"] = json!("/etc"));
    b.sh("pwd");

    let out = rt.run(&rt.id("cwd"), &b).ok();

    assert_eq!(out.stdout, "/etc\n");
}

#[test]
fn env_is_exactly_the_configured_one() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| c["process"]["env"] = json!(["PATH=/bin", "GREETING=hello world"]));
    b.sh("echo $GREETING; env | grep -c -e CARGO -e RUST || true");

    let out = rt.run(&rt.id("env"), &b).ok();

    assert_eq!(out.lines(), ["hello world", "0"], "no host env leaks");
}

fn cap_line(status: &str, field: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in {status}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn capability_sets_are_exact() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SETUID", "CAP_SETGID"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL", "CAP_NET_ADMIN"],
            "ambient": ["CAP_KILL"]
        });
        c["process"]["noNewPrivileges"] = json!(false);
    });
    b.sh("grep ^Cap /proc/self/status");

    let out = rt.run(&rt.id("caps"), &b).ok();

    // The runtime sets the five sets, then execve()s sh as uid 0: the kernel
    // treats root's file caps as full, so permitted (and effective) become
    // inheritable | bounding; inheritable, bounding, ambient are kept.
    let s = &out.stdout;
    assert_eq!(
        cap_line(s, "CapBnd:"),
        cap_mask(&["CHOWN", "KILL", "NET_ADMIN", "SETUID", "SETGID"])
    );
    assert_eq!(cap_line(s, "CapInh:"), cap_mask(&["KILL", "NET_ADMIN"]));
    assert_eq!(cap_line(s, "CapAmb:"), cap_mask(&["KILL"]));
    let bnd_or_inh = cap_mask(&["CHOWN", "KILL", "NET_ADMIN", "SETUID", "SETGID"]);
    assert_eq!(cap_line(s, "CapPrm:"), bnd_or_inh, "{out}");
    assert_eq!(cap_line(s, "CapEff:"), bnd_or_inh, "{out}");
}

#[test]
fn capability_sets_are_exact_for_non_root() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SETUID", "CAP_SETGID"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL", "CAP_NET_ADMIN"],
            "ambient": ["CAP_KILL"]
        });
        c["process"]["noNewPrivileges"] = json!(false);
    });
    b.sh("grep ^Cap /proc/self/status");

    let out = rt.run(&rt.id("capsuser"), &b).ok();

    // For a non-root execve() without file caps, permitted and effective
    // become the ambient set.
    let s = &out.stdout;
    assert_eq!(
        cap_line(s, "CapBnd:"),
        cap_mask(&["CHOWN", "KILL", "NET_ADMIN", "SETUID", "SETGID"])
    );
    assert_eq!(cap_line(s, "CapInh:"), cap_mask(&["KILL", "NET_ADMIN"]));
    assert_eq!(cap_line(s, "CapAmb:"), cap_mask(&["KILL"]));
    assert_eq!(cap_line(s, "CapPrm:"), cap_mask(&["KILL"]), "{out}");
    assert_eq!(cap_line(s, "CapEff:"), cap_mask(&["KILL"]), "{out}");
}

#[test]
fn default_capabilities_match_the_config() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("grep ^Cap /proc/self/status");

    let out = rt.run(&rt.id("defcaps"), &b).ok();

    let three = cap_mask(&["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"]);
    assert_eq!(cap_line(&out.stdout, "CapBnd:"), three);
    assert_eq!(cap_line(&out.stdout, "CapPrm:"), three);
    assert_eq!(cap_line(&out.stdout, "CapEff:"), three);
    assert_eq!(cap_line(&out.stdout, "CapInh:"), cap_mask(&[]));
    // ambient needs inheritable, which the default config leaves empty
    assert_eq!(cap_line(&out.stdout, "CapAmb:"), cap_mask(&[]));
}

#[test]
fn capabilities_of_non_root_user() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.config(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        });
    });
    b.sh("grep ^Cap /proc/self/status");

    let out = rt.run(&rt.id("usercaps"), &b).ok();

    let nbs = cap_mask(&["NET_BIND_SERVICE"]);
    for f in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(cap_line(&out.stdout, f), nbs, "{f} {out}");
    }
    assert_eq!(
        cap_line(&out.stdout, "CapBnd:"),
        cap_mask(&["NET_BIND_SERVICE", "KILL"])
    );
}

#[test]
fn no_new_privileges_is_set() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("grep ^NoNewPrivs /proc/self/status");

    let on = rt.run(&rt.id("nnp"), &b).ok();
    b.config(|c| c["process"]["noNewPrivileges"] = json!(false));
    let off = rt.run(&rt.id("nnpoff"), &b).ok();

    assert_eq!(
        on.stdout.split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"]
    );
    assert_eq!(
        off.stdout.split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "0"]
    );
}

#[test]
fn non_terminal_stdio_is_passed_through() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("read line; echo \"got $line\"; echo to-stderr >&2; cat");
    let input = rt.scratch().join("stdin");
    fs::write(&input, "first line\nrest\n").unwrap();
    let id = rt.id("stdio");
    rt.track(&id);
    let mut cmd = rt.command();
    cmd.stdin(fs::File::open(&input).unwrap())
        .arg("run")
        .arg("--bundle")
        .arg(b.path())
        .arg(&id);

    let out = rt.output(&mut cmd).ok();

    assert_eq!(out.stdout, "got first line\nrest\n");
    assert!(out.stderr.contains("to-stderr\n"), "{out}");
}

#[test]
fn pid_file_holds_the_container_pid() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("pidfile");
    let pid_file = rt.scratch().join("pid");

    rt.create_with(&["--pid-file", pid_file.to_str().unwrap()], &id, &b)
        .ok();

    let written = fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(written.trim(), rt.pid(&id).to_string());
    assert!(written.trim().chars().all(|c| c.is_ascii_digit()));
}

/// Runs the runtime from bash with fd 3 open on a file with "fd3 data" and
/// fd 5 open on another file, with the given extra env and run flags.
fn run_with_fds(rt: &Runtime, b: &Bundle, id: &str, env: &str, flags: &str) -> Out {
    let f3 = rt.scratch().join("fd3");
    let f5 = rt.scratch().join("fd5");
    fs::write(&f3, "fd3 data\n").unwrap();
    fs::write(&f5, "fd5 data\n").unwrap();
    rt.track(id);
    let script = format!(
        "exec 3<'{}' 5<'{}'; {env} exec '{}' --root '{}' run {flags} --bundle '{}' '{}'",
        f3.display(),
        f5.display(),
        rt.bin().display(),
        rt.root().display(),
        b.path().display(),
        id
    );
    rt.output(Command::new("bash").arg("-c").arg(script))
}

const FD_SCRIPT: &str = "cat <&3 2>/dev/null || echo no-fd3; echo LISTEN_FDS=$LISTEN_FDS; ls /proc/self/fd | tr '\\n' ' '; echo";

#[test]
fn preserve_fds_passes_fd3_and_no_other_host_fd() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh(FD_SCRIPT);
    let id = rt.id("preservefds");

    let out = run_with_fds(&rt, &b, &id, "", "--preserve-fds 1").ok();

    let lines = out.lines();
    assert_eq!(lines[0], "fd3 data", "{out}");
    // 0 1 2, the preserved 3, and ls's own directory fd (4)
    assert_eq!(lines[2], "0 1 2 3 4", "no leaked host fds: {out}");
}

#[test]
fn without_preserve_fds_no_host_fd_is_visible() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh(FD_SCRIPT);
    let id = rt.id("nofds");

    let out = run_with_fds(&rt, &b, &id, "", "").ok();

    let lines = out.lines();
    assert_eq!(lines[0], "no-fd3", "{out}");
    // 0 1 2 and ls's own directory fd (3)
    assert_eq!(lines[2], "0 1 2 3", "no leaked host fds: {out}");
}

#[test]
fn socket_activation_fds_are_passed_with_listen_fds() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh(FD_SCRIPT);
    let id = rt.id("listenfds");

    // systemd socket activation: LISTEN_PID is the runtime's pid (bash execs it)
    let out = run_with_fds(&rt, &b, &id, "export LISTEN_FDS=1 LISTEN_PID=$$;", "").ok();

    let lines = out.lines();
    assert_eq!(lines[0], "fd3 data", "{out}");
    assert_eq!(lines[1], "LISTEN_FDS=1", "{out}");
    assert_eq!(lines[2], "0 1 2 3 4", "no leaked host fds: {out}");
}
