//! Watching and cleaning up containers against real ones from a busybox
//! image: `stats` (one table and the live stream), `events` (the past window
//! and following new ones), `container prune`, and the image commands that
//! must respect containers: `rmi`, `image prune`, `system df`.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{rootfs_tar, Env};

/// Now as Unix seconds with nanoseconds, as `--since`/`--until` take it.
fn unix_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn full_id(e: &Env, name: &str) -> String {
    e.inspect(name, "{{.Id}}")
}

fn image_id(e: &Env, image: &str) -> String {
    e.ok(&["image", "inspect", "-f", "{{.Id}}", image])
        .trim()
        .to_string()
}

const STATS_HEADER: &str =
    "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS";

#[test]
fn stats_no_stream_shows_name_memory_limit_and_pids() {
    let e = Env::new();
    e.ok(&[
        "run", "-d", "--name", "web", "--memory", "64m", "busybox", "sleep", "1000",
    ]);
    let id = full_id(&e, "web");
    let out = e.ok(&["stats", "--no-stream", "web"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], STATS_HEADER, "{out}");
    let row = lines[1];
    assert!(row.starts_with(&id[..12]), "{out}");
    assert!(row.contains(" web "), "{out}");
    assert!(row.contains("/ 64MiB"), "{out}");
    assert!(row.contains("0B / 0B"), "{out}");
    assert_eq!(row.split_whitespace().last(), Some("1"), "{out}");

    let out = e.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "web",
    ]);
    assert_eq!(out, "web 1\n");

    let out = e.ok(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{json .}}",
        "web",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Name"], "web", "{out}");
    assert_eq!(v["Container"], "web", "{out}");
    assert_eq!(v["ID"], id.as_str(), "{out}");
    assert_eq!(v["PIDs"], "1", "{out}");
    assert!(
        v["MemUsage"].as_str().unwrap().ends_with(" / 64MiB"),
        "{out}"
    );
    assert!(v["CPUPerc"].as_str().unwrap().ends_with('%'), "{out}");
    for k in ["BlockIO", "MemPerc", "NetIO"] {
        assert!(v.get(k).is_some(), "{k} missing: {out}");
    }
}

#[test]
fn stats_shows_running_containers_or_all_with_a() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    e.ok(&["create", "--name", "idle", "busybox", "true"]);
    let out = e.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(out, "up\n");
    let out = e.ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.Container}}",
    ]);
    let idle = out
        .lines()
        .find(|l| l.starts_with("idle|"))
        .unwrap_or_else(|| panic!("{out}"));
    let short = &full_id(&e, "idle")[..12];
    assert_eq!(idle, format!("idle|0.00%|0B / 0B|0|{short}"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("up|")), "{out}");

    let o = e.run(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
}

#[test]
fn stats_measures_the_cpu_of_a_busy_container() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let out = e.ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"]);
    let pct: f64 = out.trim().trim_end_matches('%').parse().unwrap();
    assert!(pct > 5.0, "a busy loop uses a CPU: {out}");
}

#[test]
fn stats_streams_a_table_every_second() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    let mut child = e
        .cmd(&["stats", "web"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3300));
    assert!(child.try_wait().unwrap().is_none(), "stats keeps streaming");
    child.kill().unwrap();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let tables = out.lines().filter(|l| *l == STATS_HEADER).count();
    assert!(tables >= 2, "{out}");
    // Not a terminal: plain tables, no screen control.
    assert!(!out.contains('\x1b'), "{out:?}");
}

#[test]
fn events_since_shows_a_containers_life_in_order() {
    let e = Env::new();
    let since = unix_now();
    e.ok(&["create", "--name", "ev", "busybox", "sh", "-c", "exit 3"]);
    let id = full_id(&e, "ev");
    e.run(&["start", "-a", "ev"]);
    e.ok(&["rm", "ev"]);
    let until = unix_now();
    let window = [
        "events",
        "--since",
        since.as_str(),
        "--until",
        until.as_str(),
    ];

    let out = e.ok(&window);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(&id)).collect();
    let actions: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{out}");
    // `<RFC 3339 nanos> container create <id> (image=busybox, name=ev)`
    let (time, rest) = lines[0].split_once(' ').unwrap();
    assert!(
        time.len() == 30 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "{time}"
    );
    assert_eq!(
        rest,
        format!("container create {id} (image=busybox, name=ev)")
    );
    assert!(
        lines[2].ends_with(&format!("{id} (exitCode=3, image=busybox, name=ev)")),
        "{out}"
    );

    let mut args = window.to_vec();
    args.extend(["--filter", "event=die", "--format", "{{json .}}"]);
    let out = e.ok(&args);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Type"], "container", "{out}");
    assert_eq!(v["Action"], "die", "{out}");
    assert_eq!(v["status"], "die", "{out}");
    assert_eq!(v["id"], id.as_str(), "{out}");
    assert_eq!(v["from"], "busybox", "{out}");
    assert_eq!(v["Actor"]["ID"], id.as_str(), "{out}");
    assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3", "{out}");
    assert_eq!(v["Actor"]["Attributes"]["name"], "ev", "{out}");
    assert_eq!(v["scope"], "local", "{out}");
    assert!(v["timeNano"].as_i64().unwrap() / 1_000_000_000 == v["time"].as_i64().unwrap());

    let mut args = window.to_vec();
    args.extend([
        "--filter",
        "container=ev",
        "--filter",
        "event=start",
        "--filter",
        "event=destroy",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(e.ok(&args), "start ev\ndestroy ev\n");

    let mut args = window.to_vec();
    args.extend(["--filter", "image=alpine"]);
    assert_eq!(e.ok(&args), "");

    let o = e.run(&["events", "--format", "{{.Nope}}"]);
    assert_eq!(o.code, 64, "{o}");
    assert!(o.stderr.starts_with("Error parsing format: "), "{o}");
    let o = e.run(&["events", "--until", "0s", "--filter", "colour=red"]);
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("colour"), "{o}");
}

#[test]
fn events_follows_new_events_until_the_until_time() {
    let e = Env::new();
    e.ok(&["create", "--name", "before", "busybox", "true"]);
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 6;
    let started = Instant::now();
    let child = e
        .cmd(&[
            "events",
            "--until",
            &until.to_string(),
            "--format",
            "{{.Actor.Attributes.name}} {{.Action}}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    e.ok(&["run", "--rm", "--name", "late", "busybox", "true"]);
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "events ends when --until passes"
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let late: Vec<&str> = text.lines().filter(|l| l.starts_with("late ")).collect();
    assert_eq!(late.first(), Some(&"late create"), "{text}");
    assert_eq!(late.last(), Some(&"late destroy"), "{text}");
    assert!(
        late.contains(&"late start") && late.contains(&"late die"),
        "{text}"
    );
    // --until alone also shows what happened before the command.
    assert!(text.contains("before create"), "{text}");

    // Without --since or --until only new events are shown.
    let mut child = e
        .cmd(&["events"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().unwrap();
    let _ = child.wait();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "", "old events are not replayed");
}

#[test]
fn container_prune_removes_only_stopped_containers() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    e.ok(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo hello > /f",
    ]);
    e.ok(&["create", "--name", "fresh", "busybox", "true"]);
    e.ok(&[
        "run", "--name", "keep", "--label", "keep=1", "busybox", "true",
    ]);
    let up = full_id(&e, "up");
    let done = full_id(&e, "done");
    let fresh = full_id(&e, "fresh");
    let keep = full_id(&e, "keep");

    // No answer (stdin at its end) is a no.
    let out = e.ok(&["container", "prune"]);
    assert!(
        out.starts_with(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        ),
        "{out}"
    );
    assert_eq!(e.ids().len(), 4);

    let out = e.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    let deleted: Vec<&str> = out.lines().skip(1).take_while(|l| !l.is_empty()).collect();
    assert_eq!(deleted.len(), 2, "{out}");
    assert!(
        deleted.contains(&done.as_str()) && deleted.contains(&fresh.as_str()),
        "{out}"
    );
    let total = out.lines().last().unwrap();
    assert!(total.starts_with("Total reclaimed space: "), "{out}");
    assert_ne!(total, "Total reclaimed space: 0B", "{out}");
    assert_eq!(e.status("up"), "running");

    let out = e.ok(&["container", "prune", "-f", "--filter", "label=keep=1"]);
    assert_eq!(full_id_gone(&out), keep, "{out}");
    assert_eq!(e.ids(), [up]);
    assert_eq!(
        e.ok(&["container", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
}

/// The one id a prune printed.
fn full_id_gone(out: &str) -> String {
    let ids: Vec<&str> = out
        .lines()
        .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    assert_eq!(ids.len(), 1, "{out}");
    ids[0].to_string()
}

#[test]
fn rmi_refuses_an_image_a_stopped_container_uses_unless_forced() {
    let e = Env::new();
    e.ok(&["run", "--name", "once", "busybox", "echo", "hi"]);
    let short = full_id(&e, "once")[..12].to_string();
    let img = image_id(&e, "busybox");
    let img_short = &img["sha256:".len().."sha256:".len() + 12];

    let o = e.run(&["rmi", "busybox"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains(&format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container {short} is using its referenced image {img_short}"
        )),
        "{o}"
    );
    let o = e.run(&["rmi", img_short]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains(&format!(
            "conflict: unable to delete {img_short} (must be forced) - image is being used by stopped container {short}"
        )),
        "{o}"
    );
    assert_eq!(e.ok(&["images", "-q"]).trim(), img_short);

    let out = e.ok(&["rmi", "-f", "busybox"]);
    assert_eq!(out, format!("Untagged: busybox:latest\nDeleted: {img}\n"));
    assert_eq!(e.ok(&["images", "-q"]), "");
    // The container keeps its image: pinned, layers and all.
    let o = e.run(&["start", "-a", "once"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "hi\n"), "{o}");
    assert!(e.ok(&["system", "check"]).contains("no problems"));
}

#[test]
fn rmi_of_an_image_a_running_container_uses_cannot_be_forced() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    let short = full_id(&e, "up")[..12].to_string();
    let img = image_id(&e, "busybox");
    let img_short = &img["sha256:".len().."sha256:".len() + 12];

    let o = e.run(&["rmi", "-f", img_short]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains(&format!(
            "conflict: unable to delete {img_short} (cannot be forced) - image is being used by running container {short}"
        )),
        "{o}"
    );
    // By name with -f: the name goes, the image stays (untagged).
    let out = e.ok(&["rmi", "-f", "busybox"]);
    assert_eq!(out, "Untagged: busybox:latest\n");
    assert_eq!(e.ok(&["images", "-q"]).trim(), img_short);
    assert_eq!(e.ok(&["exec", "up", "echo", "ok"]), "ok\n");
}

#[test]
fn image_prune_keeps_images_containers_use() {
    let e = Env::new();
    // A second, untagged image (the same files, another image id).
    let untagged = e
        .ok(&["import", rootfs_tar().to_str().unwrap()])
        .trim()
        .to_string();
    e.ok(&[
        "create",
        "--name",
        "user",
        &untagged,
        "echo",
        "from untagged",
    ]);
    let o = e.run(&["start", "-a", "user"]);
    assert_eq!(o.stdout, "from untagged\n", "{o}");

    // Dangling only: the untagged image is in use.
    let out = e.ok(&["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    // All unused: busybox goes, the container's image stays.
    let out = e.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert!(!out.contains(&format!("deleted: {untagged}")), "{out}");
    assert_eq!(
        e.ok(&["images", "-a", "-q", "--no-trunc"]).trim(),
        untagged,
        "{out}"
    );
    // Its unpacked layer is kept too.
    let layers: Vec<_> = std::fs::read_dir(e.root().join("layers"))
        .unwrap()
        .flatten()
        .filter(|l| l.path().join("diff/bin/busybox").exists())
        .collect();
    assert_eq!(layers.len(), 1);
    let o = e.run(&["start", "-a", "user"]);
    assert_eq!(o.stdout, "from untagged\n", "{o}");
    assert!(e.ok(&["system", "check"]).contains("no problems"));
}

#[test]
fn system_df_counts_containers() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    e.ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "head -c 200000 /dev/zero > /big",
    ]);
    let out = e.ok(&["system", "df"]);
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{out}"
    );
    let row = |name: &str| -> Vec<String> {
        let l = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {out}"));
        l[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let images = row("Images");
    assert_eq!(images[..2], ["1", "1"], "{out}");
    let containers = row("Containers");
    assert_eq!(containers[..2], ["2", "1"], "{out}");
    // The writer's upper dir holds its 200 kB file.
    assert!(containers[2].ends_with("kB"), "{out}");
    let size: f64 = containers[2].trim_end_matches("kB").parse().unwrap();
    assert!((200.0..260.0).contains(&size), "{out}");
    assert!(
        containers[4].starts_with('(') && containers[4].ends_with("%)"),
        "{out}"
    );
    assert!(row("Local Volumes").len() >= 4, "{out}");
    assert_eq!(row("Build Cache")[..2], ["0", "0"], "{out}");
}
