//! The container lifecycle against real containers from a busybox image:
//! run/create/start/stop/kill/restart/pause/rm, ps, inspect, logs, exec,
//! wait, rename, top; exit codes; restart policies; the monitor surviving a
//! SIGKILL of the command; concurrency; Docker's default security profile;
//! and bad input that leaves nothing behind.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{cgroup_dirs, Env};

#[test]
fn run_relays_output_and_returns_the_exit_code() {
    let e = Env::new();
    let o = e.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.code, 3, "{o}");
    assert_eq!(o.stdout, "out\n");
    assert_eq!(o.stderr, "err\n");
    // --rm: gone, with its mount.
    assert!(e.ids().is_empty());
    assert!(e.mounts().is_empty(), "{:?}", e.mounts());
}

#[test]
fn exit_codes_follow_docker() {
    let e = Env::new();
    let o = e.run(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("nosuchimage"), "{o}");
    let o = e.run(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(o.code, 127, "{o}");
    let o = e.run(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(o.code, 127, "{o}");
    assert!(o.stderr.contains("executable file not found"), "{o}");
    let o = e.run(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(o.code, 126, "{o}");
    // Killed by a signal: 128 + its number.
    e.ok(&["run", "-d", "--name", "sig", "busybox", "sleep", "100"]);
    e.ok(&["kill", "sig"]);
    assert_eq!(e.ok(&["wait", "sig"]).trim(), "137");
    e.ok(&["rm", "sig"]);
    assert!(e.ids().is_empty(), "{:?}", e.ids());
    assert!(e.mounts().is_empty());
}

#[test]
fn bad_flag_values_are_refused_and_leave_nothing() {
    let e = Env::new();
    for (args, want) in [
        (vec!["--memory", "12q"], "12q"),
        (vec!["-p", "abc"], "abc"),
        (vec!["--restart", "sometimes"], "sometimes"),
        (vec!["--cpus", "lots"], "lots"),
        (vec!["--ulimit", "nofile=x"], "nofile"),
        (vec!["-v", "relative/path:/x"], "relative"),
        (vec!["--cap-add", "CAP_NOPE"], "CAP_NOPE"),
    ] {
        let mut a = vec!["run", "-d"];
        a.extend(args.iter());
        a.extend(["busybox", "true"]);
        let o = e.run(&a);
        assert_eq!(o.code, 125, "{a:?}: {o}");
        assert!(o.stderr.contains(want), "{a:?}: {o}");
    }
    assert!(e.ids().is_empty());
    let containers = std::fs::read_dir(e.root().join("containers"))
        .unwrap()
        .count();
    assert_eq!(containers, 1, "only .names should exist");
}

#[test]
fn detached_container_lifecycle() {
    let e = Env::new();
    let id = e.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(e.status("web"), "running");
    let ps = e.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{ps}");
    }
    assert!(
        ps.contains(&id[..12]) && ps.contains("Up ") && ps.contains("web"),
        "{ps}"
    );
    assert!(ps.contains("\"sleep 1000\""), "{ps}");
    // Short id prefixes and names both resolve.
    assert_eq!(e.inspect(&id[..6], "{{.Name}}"), "/web");
    let pid: i32 = e.inspect("web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // exec: output, exit code, env and user.
    assert_eq!(e.ok(&["exec", "web", "echo", "hi"]), "hi\n");
    assert_eq!(e.run(&["exec", "web", "sh", "-c", "exit 4"]).code, 4);
    assert_eq!(
        e.ok(&["exec", "-e", "X=1", "web", "sh", "-c", "echo $X"]),
        "1\n"
    );
    assert_eq!(e.ok(&["exec", "-u", "65534", "web", "id", "-u"]), "65534\n");
    assert_eq!(e.ok(&["exec", "-w", "/tmp", "web", "pwd"]), "/tmp\n");
    assert_eq!(e.run(&["exec", "web", "nosuchcmd"]).code, 127);
    // top lists the container's processes.
    let top = e.ok(&["top", "web"]);
    assert!(top.contains("sleep 1000"), "{top}");
    // rm of a running container needs -f.
    let o = e.run(&["rm", "web"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("You cannot remove a running container"),
        "{o}"
    );
    // stop: PID 1 ignores SIGTERM, so SIGKILL after the timeout.
    e.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(e.status("web"), "exited");
    assert_eq!(e.inspect("web", "{{.State.ExitCode}}"), "137");
    let ps = e.ok(&["ps"]);
    assert!(!ps.contains("web"), "{ps}");
    let ps = e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("web Exited (137) "), "{ps}");
    // exec in a stopped container: an error.
    let o = e.run(&["exec", "web", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is not running"), "{o}");
    assert!(
        e.mounts().is_empty(),
        "stopped container keeps no mount: {:?}",
        e.mounts()
    );
    // start again: same container, new process.
    e.ok(&["start", "web"]);
    assert_eq!(e.status("web"), "running");
    // Starting a running container is fine (Docker prints its name).
    assert_eq!(e.ok(&["start", "web"]), "web\n");
    e.ok(&["rm", "-f", "web"]);
    assert!(e.ids().is_empty());
    assert!(e.mounts().is_empty());
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    assert!(!e.root().join("containers").join(&id).exists());
}

#[test]
fn names_are_unique_and_rename_works() {
    let e = Env::new();
    e.ok(&["create", "--name", "one", "busybox", "true"]);
    let o = e.run(&["create", "--name", "one", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("is already in use by container"), "{o}");
    assert_eq!(e.ids().len(), 1);
    e.ok(&["rename", "one", "two"]);
    assert_eq!(e.inspect("two", "{{.Name}}"), "/two");
    assert_ne!(e.run(&["inspect", "one"]).code, 0);
    // The old name is free again.
    e.ok(&["create", "--name", "one", "busybox", "true"]);
    // Made-up names for the rest.
    e.ok(&["create", "busybox", "true"]);
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.lines().count(), 3, "{names}");
    assert_eq!(e.status("two"), "created");
    let o = e.run(&["rm", "nosuch"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
}

#[test]
fn create_then_start_attached_and_wait() {
    let e = Env::new();
    e.ok(&[
        "create",
        "--name",
        "cc",
        "-e",
        "A=b",
        "-w",
        "/etc",
        "busybox",
        "sh",
        "-c",
        "echo $A; pwd; exit 5",
    ]);
    let o = e.run(&["start", "-a", "cc"]);
    assert_eq!(o.code, 5, "{o}");
    assert_eq!(o.stdout, "b\n/etc\n");
    assert_eq!(e.ok(&["wait", "cc"]).trim(), "5");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ww",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 7",
    ]);
    assert_eq!(e.ok(&["wait", "ww"]).trim(), "7");
    // Also when --rm removes the container while we wait.
    e.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "wr",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 9",
    ]);
    assert_eq!(e.ok(&["wait", "wr"]).trim(), "9");
}

#[test]
fn logs_keep_both_streams_with_tail_and_timestamps() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ll",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 0.2; echo three",
    ]);
    e.ok(&["wait", "ll"]);
    let o = e.run(&["logs", "ll"]);
    assert_eq!(o.stdout, "one\nthree\n");
    assert_eq!(o.stderr, "two\n");
    assert_eq!(e.run(&["logs", "--tail", "1", "ll"]).stdout, "three\n");
    let t = e.ok(&["logs", "-t", "ll"]);
    assert!(
        t.lines().all(|l| l.contains('T') && l.contains("Z ")),
        "{t}"
    );
    // The log file is Docker's json-file format.
    let path = e.inspect("ll", "{{.LogPath}}");
    let text = std::fs::read_to_string(path).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "one\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    // --log-driver none: no log.
    e.ok(&[
        "run",
        "--name",
        "nn",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "x",
    ]);
    assert_ne!(e.run(&["logs", "nn"]).code, 0);
}

#[test]
fn logs_follow_ends_when_the_container_exits() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ff",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    let o = e.run(&["logs", "-f", "ff"]);
    assert_eq!(o.stdout, "a\nb\n", "{o}");
}

#[test]
fn on_failure_restarts_up_to_the_limit_and_logs_span_restarts() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rr",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    e.wait_for(20, "the container to give up", &mut || {
        e.status("rr") == "exited"
    });
    assert_eq!(e.inspect("rr", "{{.RestartCount}}"), "2");
    assert_eq!(e.inspect("rr", "{{.State.ExitCode}}"), "1");
    assert_eq!(e.ok(&["logs", "rr"]), "run\nrun\nrun\n");
}

#[test]
fn always_comes_back_after_its_process_is_killed_but_not_after_stop() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "aa",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid: i32 = e.inspect("aa", "{{.State.Pid}}").parse().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    e.wait_for(10, "a restart", &mut || {
        e.inspect("aa", "{{.RestartCount}}") == "1" && e.status("aa") == "running"
    });
    let pid2: i32 = e.inspect("aa", "{{.State.Pid}}").parse().unwrap();
    assert_ne!(pid, pid2);
    e.ok(&["stop", "-t", "0", "aa"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(e.status("aa"), "exited");
}

#[test]
fn the_container_survives_a_sigkill_of_the_command_that_started_it() {
    let e = Env::new();
    let mut child = e
        .cmd(&[
            "run",
            "--name",
            "ss",
            "busybox",
            "sh",
            "-c",
            "sleep 1; echo done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    e.wait_for(10, "the container to run", &mut || {
        e.run(&["inspect", "-f", "{{.State.Status}}", "ss"])
            .stdout
            .trim()
            == "running"
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(e.status("ss"), "running");
    assert_eq!(e.ok(&["wait", "ss"]).trim(), "0");
    assert_eq!(e.ok(&["logs", "ss"]), "done\n");
    let ps = e.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (0)"), "{ps}");
}

#[test]
fn twenty_containers_started_at_once_all_run() {
    let e = Env::new();
    std::thread::scope(|s| {
        for i in 0..20 {
            let e = &e;
            s.spawn(move || {
                let name = format!("par{i}");
                let o = e.run(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
                assert_eq!(o.code, 0, "{name}: {o}");
            });
        }
    });
    let names = e.ok(&["ps", "--format", "{{.Names}}"]);
    let mut got: Vec<&str> = names.lines().collect();
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("par{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    let ids = e.ids();
    std::thread::scope(|s| {
        for id in &ids {
            let e = &e;
            s.spawn(move || e.ok(&["rm", "-f", id]));
        }
    });
    assert!(e.ids().is_empty());
    assert!(e.mounts().is_empty());
}

#[test]
fn pause_and_unpause() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "pp", "busybox", "sleep", "1000"]);
    e.ok(&["pause", "pp"]);
    assert_eq!(e.status("pp"), "paused");
    assert!(e
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(Paused)"));
    assert_ne!(e.run(&["exec", "pp", "true"]).code, 0);
    e.ok(&["unpause", "pp"]);
    assert_eq!(e.status("pp"), "running");
    e.ok(&["exec", "pp", "true"]);
}

fn status_field(e: &Env, args: &[&str], field: &str) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend(args);
    a.extend(["busybox", "grep", field, "/proc/self/status"]);
    e.ok(&a)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn docker_default_security_profile_and_privileged() {
    let e = Env::new();
    // Docker's 14 default capabilities.
    assert_eq!(status_field(&e, &[], "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&e, &[], "Seccomp:"), "2");
    assert_eq!(status_field(&e, &[], "NoNewPrivs"), "0");
    assert_eq!(
        status_field(&e, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(
        status_field(&e, &["--security-opt", "seccomp=unconfined"], "Seccomp:"),
        "0"
    );
    assert_eq!(
        status_field(
            &e,
            &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"],
            "CapBnd"
        ),
        "0000000000001000"
    );
    assert_eq!(status_field(&e, &["--privileged"], "Seccomp:"), "0");
    assert_ne!(
        status_field(&e, &["--privileged"], "CapBnd"),
        "00000000a80425fb"
    );
    // Masked and read-only /proc paths.
    for p in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if std::path::Path::new(p).exists() {
            let n = e.ok(&["run", "--rm", "busybox", "wc", "-c", p]);
            assert_eq!(n.split_whitespace().next(), Some("0"), "{p}");
        }
    }
    let o = e.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/sysrq",
    ]);
    assert_ne!(o.code, 0, "{o}");
    // The default seccomp profile blocks what Docker blocks.
    let o = e.run(&["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert_ne!(o.code, 0, "{o}");
}

#[test]
fn mounting_the_engine_itself_is_refused_unless_allowed() {
    let e = Env::new();
    let root = e.root().to_string_lossy().into_owned();
    for v in [
        format!("{root}:/x"),
        format!("{root}/containers:/x"),
        "/var/run/docker.sock:/s".to_string(),
    ] {
        let o = e.run(&["run", "--rm", "-v", &v, "busybox", "true"]);
        assert_eq!(o.code, 125, "{v}: {o}");
        assert!(o.stderr.contains("--allow-engine-socket"), "{o}");
        assert!(o.stderr.contains("root"), "{o}");
    }
    assert!(e.ids().is_empty());
    e.ok(&[
        "run",
        "--rm",
        "--allow-engine-socket",
        "-v",
        &format!("{root}:/x:ro"),
        "busybox",
        "ls",
        "/x/containers",
    ]);
}

#[test]
fn run_flags_reach_the_container() {
    let e = Env::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "from host").unwrap();
    let v = format!("{}:/data", host.path().display());
    let out = e.ok(&[
        "run", "--rm", "-h", "myhost", "-e", "FOO=bar", "-u", "65534:65534", "-w", "/tmp",
        "-v", &v, "--tmpfs", "/scratch", "--read-only", "-l", "k=v",
        "busybox", "sh", "-c",
        "hostname; echo $FOO; id -u; id -g; pwd; cat /data/f; echo; touch /scratch/x && echo tmpfs-ok; touch /nope 2>/dev/null || echo ro-ok",
    ]);
    assert_eq!(
        out,
        "myhost\nbar\n65534\n65534\n/tmp\nfrom host\ntmpfs-ok\nro-ok\n"
    );
    // A read-only bind.
    let v = format!("{}:/data:ro", host.path().display());
    let o = e.run(&["run", "--rm", "-v", &v, "busybox", "touch", "/data/g"]);
    assert_ne!(o.code, 0);
    // --entrypoint replaces the image's command.
    assert_eq!(
        e.ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"]),
        "a b\n"
    );
    // Resource limits land in the container's cgroup.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(e.inspect("lim", "{{.HostConfig.Memory}}"), "67108864");
    let pid = e.inspect("lim", "{{.State.Pid}}");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains("/barge/"), "{cg}");
    let id = e.inspect("lim", "{{.Id}}");
    let mem = std::path::Path::new("/sys/fs/cgroup/memory/barge")
        .join(&id)
        .join("memory.limit_in_bytes");
    if mem.exists() {
        assert_eq!(std::fs::read_to_string(mem).unwrap().trim(), "67108864");
    }
    let pids = std::path::Path::new("/sys/fs/cgroup/pids/barge")
        .join(&id)
        .join("pids.max");
    if pids.exists() {
        assert_eq!(std::fs::read_to_string(pids).unwrap().trim(), "50");
    }
}

#[test]
fn inspect_has_dockers_shape() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ii",
        "-l",
        "a=b",
        "--restart",
        "on-failure:3",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "ii"])).unwrap();
    let c = &v[0];
    assert_eq!(c["Name"], "/ii");
    assert_eq!(c["Path"], "sleep");
    assert_eq!(c["Args"][0], "1000");
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["State"]["Status"], "running");
    assert!(c["Image"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(c["Config"]["Labels"]["a"], "b");
    assert_eq!(c["Config"]["Image"], "busybox");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    assert!(c["NetworkSettings"].is_object());
    assert!(c["Mounts"].is_array());
    // Images are still found by `inspect`.
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "busybox"])).unwrap();
    assert!(v[0]["Id"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn interactive_stdin_reaches_the_container() {
    let e = Env::new();
    let mut child = e
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "tr a-z A-Z; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\nworld\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\nWORLD\ndone\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn health_checks_report_healthy_and_unhealthy() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "1000",
    ]);
    e.wait_for(10, "unhealthy", &mut || {
        e.inspect("hc", "{{.State.Health.Status}}") == "unhealthy"
    });
    assert!(e
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(unhealthy)"));
    e.ok(&["exec", "hc", "touch", "/tmp/ok"]);
    e.wait_for(10, "healthy", &mut || {
        e.inspect("hc", "{{.State.Health.Status}}") == "healthy"
    });
    assert!(e
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(healthy)"));
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "hc"])).unwrap();
    let log = v[0]["State"]["Health"]["Log"].as_array().unwrap().clone();
    assert!(!log.is_empty() && log.len() <= 5);
    assert_eq!(log.last().unwrap()["ExitCode"], 0);
    assert_eq!(
        e.ok(&["ps", "-q", "--filter", "health=healthy"])
            .lines()
            .count(),
        1
    );
}

#[test]
fn init_reaps_and_forwards_signals() {
    if common::find_tini().is_none() {
        eprintln!("skipped: tini-static is not installed (apt-get install tini)");
        return;
    }
    let e = Env::new();
    // Under --init, PID 1 is the init and the command is its child.
    let out = e.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("/sbin/docker-init -- sh"), "{out}");
    assert_ne!(lines[1], "1", "{out}");
    // SIGTERM reaches sleep through the init: stop is quick.
    e.ok(&[
        "run", "-d", "--init", "--name", "ini", "busybox", "sleep", "1000",
    ]);
    let t = std::time::Instant::now();
    e.ok(&["stop", "-t", "10", "ini"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(e.inspect("ini", "{{.State.ExitCode}}"), "143");
}

#[test]
fn restart_gives_a_new_process_and_ps_filters_work() {
    let e = Env::new();
    e.ok(&[
        "run", "-d", "--name", "rs", "-l", "tier=web", "busybox", "sleep", "1000",
    ]);
    e.ok(&["run", "-d", "--name", "ex", "busybox", "sh", "-c", "exit 2"]);
    e.ok(&["wait", "ex"]);
    let pid = e.inspect("rs", "{{.State.Pid}}");
    e.ok(&["restart", "-t", "0", "rs"]);
    assert_eq!(e.status("rs"), "running");
    assert_ne!(e.inspect("rs", "{{.State.Pid}}"), pid);
    let f = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "-a", "--format", "{{.Names}}"];
        a.extend(args);
        let mut v: Vec<String> = e.ok(&a).lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(f(&["--filter", "status=exited"]), vec!["ex"]);
    assert_eq!(f(&["--filter", "exited=2"]), vec!["ex"]);
    assert_eq!(f(&["--filter", "label=tier=web"]), vec!["rs"]);
    assert_eq!(f(&["--filter", "name=r"]), vec!["rs"]);
    assert_eq!(f(&["--filter", "ancestor=busybox"]), vec!["ex", "rs"]);
    assert_eq!(f(&["-n", "1"]), vec!["ex"]);
    assert_eq!(f(&["-l"]), vec!["ex"]);
    assert_eq!(e.ok(&["ps", "-q"]).lines().count(), 1);
    assert_eq!(
        e.ok(&["ps", "-aq", "--no-trunc"])
            .lines()
            .next()
            .unwrap()
            .len(),
        64
    );
    let o = e.run(&["ps", "--filter", "status=sleepy"]);
    assert_ne!(o.code, 0);
}

#[test]
fn an_oom_kill_is_recorded() {
    let e = Env::new();
    let o = e.run(&[
        "run",
        "--name",
        "oomy",
        "--memory",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=\"$x$x\"; done",
    ]);
    assert_eq!(o.code, 137, "{o}");
    assert_eq!(e.inspect("oomy", "{{.State.OOMKilled}}"), "true");
    let events = std::fs::read_to_string(e.root().join("events.log")).unwrap();
    assert!(events.contains("\"Action\":\"oom\""), "{events}");
}

#[test]
fn logs_rotate_with_max_size_and_max_file() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let path = std::path::PathBuf::from(e.inspect("rot", "{{.LogPath}}"));
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(&name))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() <= 2048, "{f}");
    }
    let logs = e.ok(&["logs", "rot"]);
    assert!(logs.ends_with("line-299\n"), "{logs}");
    assert!(
        !logs.contains("line-0\n"),
        "the oldest lines were rotated away"
    );
    let o = e.run(&["run", "--rm", "--log-opt", "max-file=x", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
}

#[test]
fn other_oci_runtimes_and_terminals() {
    let e = Env::new();
    if std::path::Path::new("/usr/sbin/runc").exists()
        || std::path::Path::new("/usr/bin/runc").exists()
    {
        assert_eq!(
            e.ok(&[
                "run",
                "--rm",
                "--runtime",
                "runc",
                "busybox",
                "echo",
                "via runc"
            ]),
            "via runc\n"
        );
    }
    let o = e.run(&[
        "run",
        "--rm",
        "--runtime",
        "/no/such/runtime",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o}");
    // -t: the container's stdio is a pty (output relayed through it).
    let out = e.ok(&["run", "--rm", "-t", "busybox", "tty"]);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
}

#[test]
fn signals_to_an_attached_run_reach_the_container() {
    let e = Env::new();
    let child = e
        .cmd(&[
            "run",
            "--name",
            "sp",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got INT; exit 7' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    e.wait_for(10, "the container to run", &mut || {
        e.run(&["logs", "sp"]).stdout.contains("ready")
    });
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ngot INT\n");
}

#[test]
fn named_volumes_persist_and_start_with_the_image_content() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            "data1:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    // A new volume gets what the image has at its mount point...
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            "etc1:/etc",
            "busybox",
            "cat",
            "/etc/group"
        ])
        .lines()
        .next(),
        Some("root:x:0:")
    );
    // ...also one made empty by `volume create`, on its first use.
    e.ok(&["volume", "create", "etc3"]);
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            "etc3:/etc",
            "busybox",
            "cat",
            "/etc/group"
        ])
        .lines()
        .next(),
        Some("root:x:0:")
    );
    // ...unless nocopy.
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            "etc2:/etc:nocopy",
            "busybox",
            "ls",
            "/etc"
        ])
        .trim(),
        ""
    );
    // An anonymous volume goes with `rm -v`.
    e.ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/scratch",
        "busybox",
        "touch",
        "/scratch/x",
    ]);
    let mounts: serde_json::Value =
        serde_json::from_str(&e.inspect("anon", "{{json .Mounts}}")).unwrap();
    let src = mounts[0]["Source"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&src).join("x").exists(), "{src}");
    e.ok(&["rm", "-v", "anon"]);
    assert!(!std::path::Path::new(&src).exists());
}

#[test]
fn a_killed_monitor_leaves_the_container_running_and_stop_still_cleans_up() {
    let e = Env::new();
    let id = e.ok(&["run", "-d", "--name", "mk", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(e.root().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = state["MonitorPid"].as_i64().unwrap();
    assert!(monitor > 0);
    std::process::Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(e.status("mk"), "running");
    e.ok(&["stop", "-t", "0", "mk"]);
    assert_eq!(e.status("mk"), "exited");
    assert!(e.mounts().is_empty(), "{:?}", e.mounts());
    assert!(cgroup_dirs(id).is_empty(), "{:?}", cgroup_dirs(id));
    e.ok(&["rm", "mk"]);
}

#[test]
fn a_pin_left_by_a_killed_create_does_not_keep_the_image_forever() {
    let e = Env::new();
    let store = barge_image::store::Store::open(e.root()).unwrap();
    let img = store.resolve("busybox").unwrap();
    let ghost = format!("container-{}", "f".repeat(64));
    store
        .pin(&ghost, std::slice::from_ref(&img.manifest_digest))
        .unwrap();
    // A real container's pin stays.
    let id = e.ok(&["create", "busybox", "true"]).trim().to_string();
    e.ok(&["image", "prune", "-a", "-f"]);
    let pins = store.pins().unwrap();
    assert!(!pins.contains_key(&ghost), "{pins:?}");
    assert!(pins.contains_key(&format!("container-{id}")), "{pins:?}");
    e.ok(&["rm", &id]);
    assert!(store.pins().unwrap().is_empty());
}

#[test]
fn mount_points_stay_out_of_the_container_layer() {
    let e = Env::new();
    let vol = tempfile::tempdir().unwrap();
    let v = format!("{}:/data/in", vol.path().display());
    e.ok(&[
        "run", "--name", "mp", "-v", &v, "--tmpfs", "/scratch", "busybox", "touch", "/new",
    ]);
    let upper = e
        .root()
        .join("containers")
        .join(e.inspect("mp", "{{.Id}}"))
        .join("upper");
    let mut names: Vec<String> = std::fs::read_dir(&upper)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Only what the process wrote: no /etc/hostname, /proc, /data/in...
    assert_eq!(names, vec!["new".to_string()]);
    assert_eq!(e.ok(&["diff", "mp"]), "A /new\n");
}
