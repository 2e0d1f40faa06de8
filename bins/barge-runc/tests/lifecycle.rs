//! Container lifecycle and the state/list/ps/kill/pause/events/update/spec/
//! features/exec commands (runtime.md "Lifecycle" and "Operations", runc CLI).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

#[test]
fn create_reports_created_state_with_pid() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("created");

    rt.create(&id, &b).ok();

    let state = rt.state_json(&id);
    assert_eq!(state["status"], "created", "{state}");
    let pid = state["pid"].as_i64().expect("pid in created state") as i32;
    assert!(
        pid > 0 && pid_alive(pid),
        "created container has live pid: {state}"
    );
}

#[test]
fn state_json_has_required_fields() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("statejson");
    rt.create(&id, &b).ok();

    let state = rt.state_json(&id);
    assert!(state["ociVersion"].is_string(), "ociVersion: {state}");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "created");
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "pid: {state}");
    let bundle = state["bundle"].as_str().expect("bundle in state");
    assert_eq!(
        fs::canonicalize(bundle).unwrap(),
        fs::canonicalize(b.path()).unwrap(),
        "bundle is the bundle's absolute path"
    );
    assert!(Path::new(bundle).is_absolute());
}

#[test]
fn start_makes_container_running_and_runs_the_process() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("echo started-ok; exec sleep 1000");
    let id = rt.id("start");
    rt.create(&id, &b).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    assert!(
        !rt.container_stdout(&id).contains("started-ok"),
        "process must not run before start"
    );

    rt.start(&id).ok();

    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(wait_until(WAIT_TIMEOUT, || rt
        .container_stdout(&id)
        .contains("started-ok")));
}

#[test]
fn kill_sigkill_stops_container() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("killstop");
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);

    rt.kill(&id, "SIGKILL").ok();

    rt.wait_for_status(&id, "stopped");
    assert!(!pid_alive(pid));
}

#[test]
fn kill_delivers_the_chosen_signal() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.sh("trap 'echo got-usr1 > /shared/signal; exit 0' USR1; \
         touch /shared/ready; while :; do sleep 0.1; done");
    let id = rt.id("killsig");
    rt.start_container(&id, &b);
    wait_until(WAIT_TIMEOUT, || shared.join("ready").exists());

    rt.kill(&id, "SIGUSR1").ok();

    assert_eq!(wait_for_file(&shared.join("signal")).trim(), "got-usr1");
    rt.wait_for_status(&id, "stopped");
}

#[test]
fn kill_accepts_signal_numbers_and_names_without_sig_prefix() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.sh(
        "trap 'echo hup >> /shared/log' HUP; trap 'echo term >> /shared/log; exit 3' TERM; \
         touch /shared/ready; while :; do sleep 0.1; done",
    );
    let id = rt.id("killnum");
    rt.start_container(&id, &b);
    wait_until(WAIT_TIMEOUT, || shared.join("ready").exists());

    rt.kill(&id, "1").ok(); // SIGHUP
    assert!(wait_until(WAIT_TIMEOUT, || read_lossy(&shared.join("log"))
        .contains("hup")));
    rt.kill(&id, "TERM").ok();
    rt.wait_for_status(&id, "stopped");
    assert_eq!(read_lossy(&shared.join("log")), "hup\nterm\n");
}

#[test]
fn signals_ignored_by_the_caller_are_not_ignored_in_the_container() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.sh(
        "trap 'echo hup >> /shared/log' HUP; trap 'echo int >> /shared/log; exit 4' INT; \
         touch /shared/ready; while :; do sleep 0.1; done",
    );
    let id = rt.id("ignsig");
    // As under nohup, or a non-interactive shell's background job.
    rt.create_after("trap '' HUP INT", &id, &b).ok();
    rt.start(&id).ok();
    rt.wait_for_status(&id, "running");
    wait_until(WAIT_TIMEOUT, || shared.join("ready").exists());
    rt.kill(&id, "HUP").ok();
    assert!(
        wait_until(WAIT_TIMEOUT, || read_lossy(&shared.join("log"))
            .contains("hup")),
        "the container's HUP trap never ran: the ignored disposition leaked in"
    );
    rt.kill(&id, "INT").ok();
    rt.wait_for_status(&id, "stopped");
    assert_eq!(read_lossy(&shared.join("log")), "hup\nint\n");
}

#[test]
fn kill_default_signal_is_sigterm() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.sh("trap 'echo term > /shared/sig; exit 0' TERM; touch /shared/ready; while :; do sleep 0.1; done");
    let id = rt.id("killdef");
    rt.start_container(&id, &b);
    wait_until(WAIT_TIMEOUT, || shared.join("ready").exists());

    rt.cmd(&["kill", &id]).ok();

    assert_eq!(wait_for_file(&shared.join("sig")).trim(), "term");
}

#[test]
fn delete_removes_state_dir() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("delete");
    rt.start_container(&id, &b);
    assert!(
        rt.state_dir(&id).exists(),
        "runc-style state dir <root>/<id>"
    );
    rt.kill(&id, "SIGKILL").ok();
    rt.wait_for_status(&id, "stopped");

    rt.delete(&id).ok();

    assert!(!rt.state_dir(&id).exists());
    let out = rt.state(&id).failed();
    assert!(!out.stderr.is_empty(), "state of deleted container: {out}");
}

#[test]
fn delete_of_created_container_kills_it() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("delcreated");
    rt.create(&id, &b).ok();
    let pid = rt.pid(&id);

    rt.delete(&id).ok();

    assert!(wait_until(WAIT_TIMEOUT, || !pid_alive(pid)));
    assert!(!rt.state_dir(&id).exists());
}

#[test]
fn delete_force_removes_running_container() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("delforce");
    b.cgroups_path(&id);
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);

    rt.delete_force(&id).ok();

    assert!(wait_until(WAIT_TIMEOUT, || !pid_alive(pid)));
    assert!(!rt.state_dir(&id).exists());
    assert_eq!(cgroup_dirs(&id), Vec::<std::path::PathBuf>::new());
}

#[test]
fn run_propagates_exit_code() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("exit 42");

    let out = rt.run(&rt.id("exit42"), &b);

    assert_eq!(out.code(), Some(42), "{out}");
}

#[test]
fn run_reports_death_by_signal_as_128_plus_signal() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("runsig");
    rt.track(&id);
    let mut cmd = rt.command();
    cmd.arg("run").arg("--bundle").arg(b.path()).arg(&id);
    let (o, e) = (rt.scratch().join("run.out"), rt.scratch().join("run.err"));
    let run = std::thread::spawn(move || run_to_files(&mut cmd, &o, &e, COMMAND_TIMEOUT));
    rt.wait_for_status(&id, "running");

    rt.kill(&id, "SIGKILL").ok();

    let out = run.join().unwrap();
    assert_eq!(out.code(), Some(137), "{out}");
}

#[test]
fn run_cleans_up_after_the_process_exits() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("echo hi");
    let id = rt.id("runclean");
    b.cgroups_path(&id);

    let out = rt.run(&id, &b).ok();

    assert_eq!(out.stdout, "hi\n");
    assert!(!rt.state_dir(&id).exists(), "run without -d deletes");
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
}

#[test]
fn run_detached_leaves_a_running_container() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("rund");

    rt.run_detached(&id, &b).ok();

    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn list_shows_container_as_table_and_json() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("list");
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);

    let table = rt.cmd(&["list"]).ok();
    let header = table.stdout.lines().next().unwrap_or("");
    for col in ["ID", "PID", "STATUS", "BUNDLE"] {
        assert!(header.contains(col), "list header has {col}: {table}");
    }
    let row = table
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no row for {id}: {table}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], pid.to_string(), "{row}");
    assert_eq!(fields[2], "running", "{row}");

    let json = rt.cmd(&["list", "--format", "json"]).ok().json();
    let entry = json
        .as_array()
        .expect("list --format json is an array")
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {json}"))
        .clone();
    assert_eq!(entry["status"], "running");
    assert_eq!(entry["pid"], pid);

    let quiet = rt.cmd(&["list", "-q"]).ok();
    assert_eq!(quiet.lines(), vec![id.clone()]);
}

#[test]
fn ps_lists_the_container_processes() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let id = rt.id("ps");
    rt.start_container(&id, &b);
    let pid = rt.pid(&id);

    let json = rt.cmd(&["ps", "--format", "json", &id]).ok().json();
    let mut pids: Vec<i64> = json
        .as_array()
        .expect("ps json is an array of pids")
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    pids.sort();
    assert!(pids.contains(&(pid as i64)), "{pids:?} has init {pid}");
    assert!(
        wait_until(WAIT_TIMEOUT, || rt
            .cmd(&["ps", "--format", "json", &id])
            .json()
            .as_array()
            .map(|a| a.len())
            == Some(3)),
        "sh + 2 sleeps"
    );

    let table = rt.cmd(&["ps", &id]).ok();
    assert!(table.stdout.lines().next().unwrap_or("").contains("PID"));
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&pid.to_string())),
        "ps table shows init pid {pid}: {table}"
    );
    assert_eq!(
        table
            .stdout
            .lines()
            .filter(|l| l.trim_end().ends_with("sleep 1000"))
            .count(),
        2,
        "{table}"
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let shared = b.shared_dir("/shared");
    b.sh("i=0; while :; do i=$((i+1)); echo $i > /shared/c.new; mv /shared/c.new /shared/c; sleep 0.02; done");
    let id = rt.id("pause");
    rt.start_container(&id, &b);
    let counter = || {
        read_lossy(&shared.join("c"))
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    assert!(wait_until(WAIT_TIMEOUT, || counter() > 3), "counter runs");

    rt.pause(&id).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    thread::sleep(Duration::from_millis(200));
    let frozen = counter();
    thread::sleep(Duration::from_millis(500));
    assert_eq!(counter(), frozen, "counter must not advance while paused");

    rt.resume(&id).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(
        wait_until(WAIT_TIMEOUT, || counter() > frozen + 3),
        "counter advances after resume"
    );
}

#[test]
fn events_stats_prints_memory_and_pids() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("events");
    rt.start_container(&id, &b);

    let out = rt.cmd(&["events", "--stats", &id]).ok();

    let ev = out.json();
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    assert!(ev["data"]["memory"].is_object(), "memory stats: {ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "memory usage: {ev}"
    );
    assert!(ev["data"]["pids"].is_object(), "pids stats: {ev}");
    assert_eq!(ev["data"]["pids"]["current"], 1, "{ev}");
}

/// Reads a cgroup value for cgroupsPath `/<id>`: v1 file if the controller is
/// mounted as v1, else the unified file.
fn cgroup_value(id: &str, v1: (&str, &str), v2: &str) -> String {
    let p1 = cgroup_file(v1.0, id, v1.1);
    let p = if p1.exists() {
        p1
    } else {
        Path::new("/sys/fs/cgroup").join(id).join(v2)
    };
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn update_memory_changes_the_cgroup_limit() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("updmem");
    b.cgroups_path(&id);
    rt.start_container(&id, &b);

    rt.cmd(&["update", "--memory", "67108864", &id]).ok();

    assert_eq!(
        cgroup_value(&id, ("memory", "memory.limit_in_bytes"), "memory.max"),
        "67108864"
    );
}

#[test]
fn update_pids_limit_changes_the_cgroup_limit() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("updpids");
    b.cgroups_path(&id);
    rt.start_container(&id, &b);

    rt.cmd(&["update", "--pids-limit", "42", &id]).ok();

    assert_eq!(cgroup_value(&id, ("pids", "pids.max"), "pids.max"), "42");
    // and the container sees it in its own cgroup mount
    let inside = rt.exec(
        &id,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
        ],
    );
    assert_eq!(inside.ok().stdout.trim(), "42");
}

#[test]
fn spec_writes_a_config_that_run_accepts() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    fs::remove_file(b.config_path()).unwrap();

    rt.cmd(&["spec", "--bundle", b.path().to_str().unwrap()])
        .ok();

    let spec = b.read_config();
    assert!(spec["ociVersion"].is_string(), "{spec}");
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    // No tty in tests: run it non-terminal with a command that says hello.
    b.config(|c| c["process"]["terminal"] = json!(false));
    b.sh("echo from-spec");
    let out = rt.run(&rt.id("spec"), &b).ok();
    assert_eq!(out.stdout, "from-spec\n");
}

#[test]
fn spec_refuses_to_overwrite_existing_config() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new();
    let before = fs::read_to_string(b.config_path()).unwrap();

    let out = rt.cmd(&["spec", "--bundle", b.path().to_str().unwrap()]);

    assert!(!out.success(), "{out}");
    assert_eq!(fs::read_to_string(b.config_path()).unwrap(), before);
}

#[test]
fn features_prints_supported_features_json() {
    require_root!();
    let rt = Runtime::new();

    let f = rt.cmd(&["features"]).ok().json();

    assert!(f["ociVersionMin"].is_string(), "{f}");
    assert!(f["ociVersionMax"].is_string(), "{f}");
    let hooks: Vec<&str> = f["hooks"]
        .as_array()
        .expect("hooks array")
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "hook {h} in {hooks:?}");
    }
    let opts = f["mountOptions"].as_array().expect("mountOptions");
    for o in ["ro", "rbind", "nosuid"] {
        assert!(opts.contains(&json!(o)), "mount option {o}: {opts:?}");
    }
    let ns = f["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces");
    for n in ["pid", "network", "mount", "ipc", "uts", "user", "cgroup"] {
        assert!(ns.contains(&json!(n)), "namespace {n}: {ns:?}");
    }
    let caps = f["linux"]["capabilities"].as_array().expect("capabilities");
    assert!(caps.contains(&json!("CAP_SYS_ADMIN")), "{caps:?}");
    assert!(f["linux"]["cgroup"].is_object(), "linux.cgroup: {f}");
    assert!(f["linux"]["seccomp"].is_object(), "linux.seccomp: {f}");
    assert_eq!(f["linux"]["seccomp"]["enabled"], true, "{f}");
}

// ---------------------------------------------------------------------------
// exec

#[test]
fn exec_joins_the_container_pid_namespace() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execps");
    rt.start_container(&id, &b);

    let out = rt.exec(&id, &["ps", "-o", "pid,args"]).ok();

    assert!(
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep", "1000"]),
        "PID 1 is the container process: {out}"
    );
    let me = rt.exec(&id, &["sh", "-c", "echo $$"]).ok();
    assert_ne!(me.stdout.trim(), "1");
}

#[test]
fn exec_sets_env_cwd_and_user() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execenv");
    rt.start_container(&id, &b);

    let out = rt
        .exec_with(
            &[
                "--env",
                "GREETING=hello",
                "--cwd",
                "/tmp",
                "--user",
                "1000:1000",
            ],
            &id,
            &["sh", "-c", "echo $GREETING; pwd; id -u; id -g"],
        )
        .ok();

    assert_eq!(out.lines(), ["hello", "/tmp", "1000", "1000"]);
}

#[test]
fn exec_process_json() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execproc");
    rt.start_container(&id, &b);
    let proc_json = rt.scratch().join("proc.json");
    fs::write(
        &proc_json,
        json!({
            "terminal": false,
            "user": { "uid": 1000, "gid": 1000 },
            "args": ["sh", "-c", "echo $FROM; pwd; id -u"],
            "env": ["PATH=/bin", "FROM=process-json"],
            "cwd": "/etc"
        })
        .to_string(),
    )
    .unwrap();

    let out = rt
        .exec_with(&["--process", proc_json.to_str().unwrap()], &id, &[])
        .ok();

    assert_eq!(out.lines(), ["process-json", "/etc", "1000"]);
}

#[test]
fn exec_propagates_exit_code() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execexit");
    rt.start_container(&id, &b);

    let out = rt.exec(&id, &["sh", "-c", "exit 7"]);

    assert_eq!(out.code(), Some(7), "{out}");
}

#[test]
fn exec_detached_writes_pid_file() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execd");
    rt.start_container(&id, &b);
    let pid_file = rt.scratch().join("exec.pid");

    rt.exec_with(
        &["-d", "--pid-file", pid_file.to_str().unwrap()],
        &id,
        &["sleep", "999"],
    )
    .ok();

    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid file holds a pid");
    rt.adopt_pid(pid);
    assert!(pid_alive(pid));
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        fs::read_link(format!("/proc/{}/ns/pid", rt.pid(&id))).unwrap(),
        "exec'd process is in the container's pid namespace"
    );
    assert!(fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .starts_with("sleep\0999"));
}

#[test]
fn exec_into_stopped_container_fails() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("execstop");
    rt.start_container(&id, &b);
    rt.kill(&id, "KILL").ok();
    rt.wait_for_status(&id, "stopped");

    let out = rt.exec(&id, &["true"]).failed();

    assert!(!out.stderr.is_empty(), "{out}");
}

#[test]
fn run_keep_leaves_a_stopped_container_for_delete() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sh", "-c", "exit 4"]);
    let id = rt.id("keep");

    let out = rt.cmd(&["run", "--keep", "--bundle", b.path().to_str().unwrap(), &id]);

    assert_eq!(out.code(), Some(4), "{out}");
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"));
    rt.delete(&id).ok();
    assert_eq!(rt.status(&id), None);
}

#[test]
fn pidfd_socket_receives_a_pidfd_of_the_init() {
    use std::os::unix::net::UnixListener;
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("pidfd");
    let sock = rt.scratch().join("pidfd.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 16];
        let (_, fds) =
            barge_runtime::sys::socket::recv_fds(std::os::fd::AsFd::as_fd(&conn), &mut buf, 1)
                .unwrap();
        let fd = fds.into_iter().next().expect("an fd was sent");
        let link = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        let info = fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        (link.to_string_lossy().into_owned(), info)
    });

    rt.cmd(&[
        "create",
        "--pidfd-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();

    let (link, info) = receiver.join().unwrap();
    assert!(link.contains("pidfd"), "{link}");
    let pid = rt.pid(&id);
    assert!(
        info.lines().any(|l| l == format!("Pid:\t{pid}")),
        "pidfd of the init {pid}: {info}"
    );
}
