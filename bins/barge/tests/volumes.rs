//! Volumes against real containers from a busybox image: `volume create`,
//! `ls`, `inspect`, `rm`, `prune`; volumes in use; invalid names; read-only
//! volumes; `--volumes-from`; tmpfs- and bind-typed local volumes; and
//! concurrent first use of one volume.

mod common;

use serde_json::Value;

use common::Env;

fn inspect_volume(e: &Env, name: &str) -> Value {
    let v: Value = serde_json::from_str(&e.ok(&["volume", "inspect", name])).unwrap();
    v[0].clone()
}

fn volume_names(e: &Env) -> Vec<String> {
    e.ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn create_ls_and_inspect_have_dockers_shapes() {
    let e = Env::new();
    assert_eq!(
        e.ok(&["volume", "create", "--label", "tier=db", "data"]),
        "data\n"
    );
    // Creating it again returns it unchanged.
    assert_eq!(e.ok(&["volume", "create", "data"]), "data\n");
    let anon = e.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()));

    let v = inspect_volume(&e, "data");
    assert_eq!(v["Name"], "data");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["tier"], "db");
    let mp = v["Mountpoint"].as_str().unwrap();
    assert!(mp.ends_with("/volumes/data/_data"), "{mp}");
    assert!(std::path::Path::new(mp).is_dir());
    assert!(v["CreatedAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(inspect_volume(&e, &anon)["Labels"], Value::Null);
    assert_eq!(
        e.ok(&["volume", "inspect", "-f", "{{.Driver}} {{.Name}}", "data"]),
        "local data\n"
    );

    let table = e.ok(&["volume", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "DRIVER    VOLUME NAME");
    assert!(lines.contains(&"local     data"), "{table}");
    assert_eq!(
        e.ok(&["volume", "ls", "-q", "--filter", "label=tier=db"]),
        "data\n"
    );
    assert_eq!(
        e.ok(&["volume", "ls", "-q", "--filter", "name=dat"]),
        "data\n"
    );
    let json: Value = serde_json::from_str(
        e.ok(&["volume", "ls", "--format", "json", "-f", "name=data"])
            .trim(),
    )
    .unwrap();
    assert_eq!(json["Name"], "data");
    assert_eq!(json["Labels"], "tier=db");

    // Other options for an existing volume, another driver, unknown
    // options: refused, with what is supported.
    let o = e.run(&["volume", "create", "-o", "type=tmpfs", "data"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("data"), "{o}");
    let o = e.run(&["volume", "create", "-d", "nfs", "other"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nfs"), "{o}");
    let o = e.run(&["volume", "create", "-o", "type=nfs", "other"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("type=tmpfs"), "{o}");
    assert_eq!(volume_names(&e).len(), 2);

    let o = e.run(&["volume", "inspect", "nope"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("get nope: no such volume"), "{o}");
}

#[test]
fn a_volume_in_use_is_not_removed() {
    let e = Env::new();
    e.ok(&[
        "create",
        "--name",
        "user",
        "-v",
        "busy:/data",
        "busybox",
        "true",
    ]);
    // A container's volume exists (with its metadata) once it has run.
    e.ok(&["start", "-a", "user"]);
    let id = e.inspect("user", "{{.Id}}");
    let o = e.run(&["volume", "rm", "busy"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains(&format!("remove busy: volume is in use - [{id}]")),
        "{o}"
    );
    // -f does not override it (as in Docker), only a missing volume.
    assert_eq!(e.run(&["volume", "rm", "-f", "busy"]).code, 1);
    assert_eq!(e.ok(&["volume", "rm", "-f", "missing"]), "missing\n");
    assert_eq!(volume_names(&e), vec!["busy".to_string()]);
    assert_eq!(
        e.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        ""
    );
    e.ok(&["rm", "user"]);
    assert_eq!(
        e.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        "busy\n"
    );
    // Every name is tried; the exit code says one failed.
    let o = e.run(&["volume", "rm", "busy", "nope"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stdout, "busy\n");
    assert!(o.stderr.contains("get nope: no such volume"), "{o}");
    assert!(volume_names(&e).is_empty());
}

#[test]
fn invalid_volume_names_create_nothing() {
    let e = Env::new();
    let msg = "create a/b: \"a/b\" includes invalid characters for a local volume name";
    let o = e.run(&["run", "--rm", "-v", "a/b:/x", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains(msg), "{o}");
    let o = e.run(&["volume", "create", "a/b"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains(msg), "{o}");
    assert!(volume_names(&e).is_empty());
    assert!(e.ids().is_empty());
}

#[test]
fn read_only_volumes_and_volumes_from() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "src",
        "-v",
        "shared1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f",
    ]);
    let o = e.run(&[
        "run",
        "--rm",
        "-v",
        "shared1:/data:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("Read-only file system"), "{o}");

    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "sh",
            "-c",
            "cat /data/f && touch /data/g"
        ]),
        "hello\n"
    );
    let o = e.run(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "sh",
        "-c",
        "cat /data/f && touch /data/h",
    ]);
    assert_ne!(o.code, 0, "{o}");
    assert_eq!(o.stdout, "hello\n");
    assert!(o.stderr.contains("Read-only file system"), "{o}");

    // Recorded as Docker's VolumesFrom.
    e.ok(&[
        "create",
        "--name",
        "vf",
        "--volumes-from",
        "src:ro",
        "busybox",
        "true",
    ]);
    assert_eq!(
        e.inspect("vf", "{{json .HostConfig.VolumesFrom}}"),
        "[\"src:ro\"]"
    );

    let o = e.run(&["run", "--rm", "--volumes-from", "ghost", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("No such container: ghost"), "{o}");
}

#[test]
fn tmpfs_and_bind_typed_volumes() {
    let e = Env::new();
    e.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "o=size=1m",
        "tmpv",
    ]);
    let v = inspect_volume(&e, "tmpv");
    assert_eq!(v["Options"]["type"], "tmpfs");
    assert_eq!(v["Options"]["o"], "size=1m");
    let mounts = e.ok(&[
        "run",
        "--rm",
        "-v",
        "tmpv:/data",
        "busybox",
        "grep",
        " /data ",
        "/proc/mounts",
    ]);
    assert!(mounts.starts_with("tmpfs /data tmpfs"), "{mounts}");
    assert!(mounts.contains("size=1024k"), "{mounts}");

    let host = tempfile::Builder::new()
        .prefix("barge-vol-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::write(host.path().join("hostfile"), "from host\n").unwrap();
    let dev = format!("device={}", host.path().display());
    e.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &dev,
        "bindv",
    ]);
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "-v",
            "bindv:/data",
            "busybox",
            "sh",
            "-c",
            "cat /data/hostfile && echo back > /data/out"
        ]),
        "from host\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "back\n"
    );
    // inspect shows the host directory as the mount's source.
    e.ok(&[
        "create",
        "--name",
        "bc",
        "-v",
        "bindv:/data",
        "busybox",
        "true",
    ]);
    assert_eq!(
        e.inspect("bc", "{{(index .Mounts 0).Source}}"),
        host.path().display().to_string()
    );
    e.ok(&["rm", "bc"]);
    // Removing the volume leaves the host directory alone.
    e.ok(&["volume", "rm", "bindv"]);
    assert!(host.path().join("hostfile").is_file());

    let missing = format!("device={}/missing", host.path().display());
    let o = e.run(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &missing,
        "bad",
    ]);
    assert_ne!(o.code, 0, "{o}");
}

#[test]
fn prune_removes_unused_anonymous_volumes_unless_all() {
    let e = Env::new();
    e.ok(&["volume", "create", "named"]);
    e.ok(&["run", "--name", "a1", "-v", "/scratch", "busybox", "true"]);
    e.ok(&[
        "run", "--name", "keep", "-v", "/scratch", "-v", "kept:/k", "busybox", "true",
    ]);
    let anon_of = |name: &str| -> String {
        let m: Value = serde_json::from_str(&e.inspect(name, "{{json .Mounts}}")).unwrap();
        m.as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/scratch")
            .unwrap()["Name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a1, keep) = (anon_of("a1"), anon_of("keep"));
    e.ok(&["rm", "a1"]);
    assert_eq!(volume_names(&e).len(), 4);

    // Without -f and no terminal: refused, nothing removed.
    let o = e.run(&["volume", "prune"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("-f"), "{o}");
    assert_eq!(volume_names(&e).len(), 4);

    let out = e.ok(&["volume", "prune", "-f"]);
    assert_eq!(
        out,
        format!("Deleted Volumes:\n{a1}\n\nTotal reclaimed space: 0B\n")
    );
    let names = volume_names(&e);
    assert!(names.contains(&keep) && names.contains(&"named".to_string()));

    let out = e.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("named\n"), "{out}");
    let mut names = volume_names(&e);
    names.sort();
    let mut want = vec![keep, "kept".to_string()];
    want.sort();
    assert_eq!(names, want);

    // `rm -v` takes the anonymous one, not the named one.
    e.ok(&["rm", "-v", "keep"]);
    assert_eq!(volume_names(&e), vec!["kept".to_string()]);
}

#[test]
fn concurrent_first_use_of_a_volume_makes_one() {
    let e = Env::new();
    let children: Vec<_> = (0..10)
        .map(|_| {
            e.cmd(&["run", "--rm", "-v", "shared:/d", "busybox", "true"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(volume_names(&e), vec!["shared".to_string()]);
    assert!(e.root().join("volumes/shared/meta.json").is_file());
    assert!(e.ids().is_empty());
}
