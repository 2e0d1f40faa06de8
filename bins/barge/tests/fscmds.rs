//! The file-system commands against real containers from a busybox image:
//! `cp` both ways (files, directories, tars on stdin/stdout, running and
//! stopped containers, symlinks that point at host paths), `diff`,
//! `commit` and `export`, with Docker's output and errors.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Env, Out};

/// A host directory for a test's files, beside the engine roots.
fn host_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("barge-fs-host-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// Sets a file's modification time (and access time) with `touch -d`.
fn set_mtime(p: &Path, when: &str) {
    let st = Command::new("touch")
        .args(["-h", "-d", when])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn mtime(p: &Path) -> i64 {
    std::fs::symlink_metadata(p).unwrap().mtime()
}

/// `barge ARGS` with `input` on stdin.
fn run_with_stdin(e: &Env, args: &[&str], input: &[u8]) -> Out {
    let mut child = e
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `barge ARGS` with stdout a raw byte stream.
fn run_bytes(e: &Env, args: &[&str]) -> (i32, Vec<u8>, String) {
    let o = e.cmd(args).stdin(Stdio::null()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `barge ARGS` with its stdout and stderr on a terminal (`script` gives
/// it a pty); returns what the terminal showed.
fn run_on_terminal(e: &Env, args: &[&str]) -> String {
    let mut line = format!("'{}' --root '{}'", common::barge_bin(), e.root().display());
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The entry names of a tar archive.
fn tar_names(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A tar with one directory `a/` and a file `a/b.txt` holding `text`.
fn small_tar(text: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_mtime(1_000_000_000);
    h.set_cksum();
    b.append_data(&mut h, "a/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o640);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(text.len() as u64);
    h.set_mtime(1_000_000_000);
    h.set_cksum();
    b.append_data(&mut h, "a/b.txt", text.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

fn exec_out(e: &Env, ctr: &str, cmd: &[&str]) -> String {
    let mut a = vec!["exec", ctr];
    a.extend_from_slice(cmd);
    e.ok(&a)
}

fn events(e: &Env) -> Vec<serde_json::Value> {
    std::fs::read_to_string(e.root().join("events.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn actions_of(e: &Env, name: &str) -> Vec<String> {
    events(e)
        .iter()
        .filter(|v| v["Actor"]["Attributes"]["name"] == name)
        .map(|v| v["Action"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ------------------------------------------------------------------- cp in

#[test]
fn cp_into_a_running_container_keeps_modes_and_times() {
    let e = Env::new();
    let h = host_dir();
    let f = h.path().join("f.txt");
    std::fs::write(&f, "hello from the host\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
    set_mtime(&f, "2001-02-03 04:05:06 UTC");
    let d = h.path().join("tree");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/x"), "x\n").unwrap();
    std::fs::set_permissions(d.join("sub/x"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(d.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&d.join("sub/x"), "2002-03-04 05:06:07 UTC");
    set_mtime(&d.join("sub"), "2003-04-05 06:07:08 UTC");
    // Owned by someone else on the host: root in the container unless -a.
    let suid = h.path().join("suid");
    std::fs::write(&suid, "#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&suid, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();

    e.ok(&["run", "-d", "--name", "ctr", "busybox", "sleep", "1000"]);
    // Not a terminal: no summary, as docker-cli.
    let o = e.run(&["cp", f.to_str().unwrap(), "ctr:/f.txt"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stderr, "", "{o}");
    assert_eq!(
        exec_out(&e, "ctr", &["cat", "/f.txt"]),
        "hello from the host\n"
    );
    let want = format!("751 0 0 {}\n", mtime(&f));
    assert_eq!(
        exec_out(&e, "ctr", &["stat", "-c", "%a %u %g %Y", "/f.txt"]),
        want
    );

    // A directory to a new name, then into an existing directory.
    e.ok(&["cp", d.to_str().unwrap(), "ctr:/copied"]);
    e.ok(&["container", "cp", d.to_str().unwrap(), "ctr:/tmp"]);
    for base in ["/copied", "/tmp/tree"] {
        let got = exec_out(
            &e,
            "ctr",
            &[
                "stat",
                "-c",
                "%n %a %u %Y",
                &format!("{base}/sub"),
                &format!("{base}/sub/x"),
            ],
        );
        assert_eq!(
            got,
            format!(
                "{base}/sub 750 0 {}\n{base}/sub/x 640 0 {}\n",
                mtime(&d.join("sub")),
                mtime(&d.join("sub/x"))
            )
        );
        assert_eq!(
            exec_out(&e, "ctr", &["cat", &format!("{base}/sub/x")]),
            "x\n"
        );
    }

    // -a keeps the owner and the setuid bit; without it root owns the file.
    e.ok(&["cp", "-a", suid.to_str().unwrap(), "ctr:/suid-a"]);
    e.ok(&["cp", suid.to_str().unwrap(), "ctr:/suid"]);
    let got = exec_out(
        &e,
        "ctr",
        &["stat", "-c", "%n %a %u %g", "/suid-a", "/suid"],
    );
    assert_eq!(got, "/suid-a 4755 1234 5678\n/suid 4755 0 0\n");
    let ls = exec_out(&e, "ctr", &["ls", "-ln", "/suid-a"]);
    assert!(ls.starts_with("-rwsr-xr-x"), "{ls}");

    // The summary docker-cli prints when asked (or on a terminal): the
    // size of the archive sent, to CONTAINER:PATH.
    let o = e.run(&["cp", "--quiet=false", f.to_str().unwrap(), "ctr:/f2"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stderr, "Successfully copied 2.05kB to ctr:/f2\n", "{o}");
    let shown = run_on_terminal(&e, &["cp", f.to_str().unwrap(), "ctr:/f3"]);
    assert!(
        shown.contains("Successfully copied 2.05kB to ctr:/f3"),
        "{shown}"
    );
    let o = e.run(&["cp", "-q", f.to_str().unwrap(), "ctr:/f4"]);
    assert_eq!(o.stderr, "", "{o}");
    assert!(actions_of(&e, "ctr").contains(&"extract-to-dir".to_string()));
}

// ------------------------------------------------------------------ cp out

#[test]
fn cp_out_of_a_stopped_container_to_the_host() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "stopped",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo inside > /data/sub/f && chmod 604 /data/sub/f \
         && chmod 711 /data && touch -d '2004-05-06 07:08:09' /data/sub/f",
    ]);
    assert_eq!(e.status("stopped"), "exited");
    let h = host_dir();
    let out = h.path().join("out");
    let o = e.run(&[
        "cp",
        "--quiet=false",
        "stopped:/data",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stderr.starts_with("Successfully copied ")
            && o.stderr.ends_with(&format!(" to {}\n", out.display())),
        "{o}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("sub/f")).unwrap(),
        "inside\n"
    );
    let md = std::fs::metadata(out.join("sub/f")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o604);
    let md = std::fs::metadata(&out).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o711);
    let from_ctr = e.ok(&[
        "run",
        "--rm",
        "busybox",
        "date",
        "-u",
        "-d",
        "2004-05-06 07:08:09",
        "+%s",
    ]);
    assert_eq!(mtime(&out.join("sub/f")).to_string(), from_ctr.trim());

    // A file into an existing directory, and a directory's content (`/.`).
    e.ok(&["cp", "stopped:/data/sub/f", h.path().to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(h.path().join("f")).unwrap(),
        "inside\n"
    );
    let content = h.path().join("content");
    std::fs::create_dir(&content).unwrap();
    e.ok(&["cp", "stopped:/data/.", content.to_str().unwrap()]);
    assert!(content.join("sub/f").is_file());
    // A relative destination is the caller's working directory.
    let o = e
        .cmd(&["cp", "stopped:/etc/passwd", "pw"])
        .current_dir(h.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::read_to_string(h.path().join("pw"))
        .unwrap()
        .starts_with("root:x:0:0"));

    // Copying into the stopped container works too, and shows when started.
    std::fs::write(h.path().join("new"), "added while stopped\n").unwrap();
    e.ok(&[
        "cp",
        h.path().join("new").to_str().unwrap(),
        "stopped:/data/",
    ]);
    // The rootfs was mounted only for the copy.
    assert!(e.mounts().is_empty(), "{:?}", e.mounts());
    assert_eq!(e.status("stopped"), "exited");
    let o = e.ok(&["start", "-a", "stopped"]);
    assert_eq!(o, "");
    e.ok(&[
        "cp",
        "stopped:/data/new",
        h.path().join("back").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(h.path().join("back")).unwrap(),
        "added while stopped\n"
    );
    assert!(actions_of(&e, "stopped").contains(&"archive-path".to_string()));
}

#[test]
fn cp_streams_tars_through_stdin_and_stdout() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "tars", "busybox", "sleep", "1000"]);
    // To stdout: a tar named after the source.
    let (code, tar, err) = run_bytes(&e, &["cp", "tars:/etc/passwd", "-"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(tar_names(&tar), ["passwd"]);
    let mut a = tar::Archive::new(&tar[..]);
    let mut entry = a.entries().unwrap().next().unwrap().unwrap();
    let mut text = String::new();
    entry.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("root:x:0:0"), "{text}");
    let (code, tar, err) = run_bytes(&e, &["cp", "tars:/etc", "-"]);
    assert_eq!(code, 0, "{err}");
    let names = tar_names(&tar);
    assert!(names.contains(&"etc/".to_string()), "{names:?}");
    assert!(names.contains(&"etc/group".to_string()), "{names:?}");

    // From stdin: extracted into a directory, owners from the archive.
    let o = run_with_stdin(&e, &["cp", "-", "tars:/tmp"], &small_tar("from stdin\n"));
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        exec_out(&e, "tars", &["cat", "/tmp/a/b.txt"]),
        "from stdin\n"
    );
    assert_eq!(
        exec_out(&e, "tars", &["stat", "-c", "%a %u %g %Y", "/tmp/a/b.txt"]),
        "640 1000 1000 1000000000\n"
    );
    // Compressed input is accepted too.
    let mut gz = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gz.stdin
        .take()
        .unwrap()
        .write_all(&small_tar("gzipped\n"))
        .unwrap();
    let gzipped = gz.wait_with_output().unwrap().stdout;
    let o = run_with_stdin(&e, &["cp", "-", "tars:/root"], &gzipped);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(exec_out(&e, "tars", &["cat", "/root/a/b.txt"]), "gzipped\n");

    // The destination of a tar must be a directory.
    let o = run_with_stdin(&e, &["cp", "-", "tars:/etc/passwd"], &small_tar("x"));
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("destination \"tars:/etc/passwd\" must be a directory"),
        "{o}"
    );
    let o = run_with_stdin(&e, &["cp", "-", "tars:/nope"], &small_tar("x"));
    assert_eq!(o.code, 1, "{o}");
}

#[test]
fn cp_errors_are_docker_s() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "er", "busybox", "sleep", "1000"]);
    let h = host_dir();
    let f = h.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let fs = f.to_str().unwrap();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["cp", fs, "/tmp/x"],
            "must specify at least one container source".into(),
        ),
        (
            vec!["cp", "er:/etc/passwd", "er:/tmp/x"],
            "copying between containers is not supported".into(),
        ),
        (
            vec!["cp", "nosuch:/etc/passwd", fs],
            "Error response from daemon: No such container: nosuch".into(),
        ),
        (
            vec!["cp", fs, "nosuch:/tmp"],
            "Error response from daemon: No such container: nosuch".into(),
        ),
        (
            vec!["cp", "er:/no/such/file", h.path().to_str().unwrap()],
            "Error response from daemon: Could not find the file /no/such/file in container er"
                .into(),
        ),
        (
            vec!["cp", fs, "er:/no/such/dir/f"],
            "Error response from daemon: Could not find the file /no/such/dir in container er"
                .into(),
        ),
        (
            vec!["cp", "/no/such/host/file", "er:/tmp"],
            "lstat /no/such/host/file: no such file or directory".into(),
        ),
        (
            vec!["cp", "er:/etc/passwd", "/no/such/host/dir/f"],
            "invalid output path: directory \"/no/such/host/dir\" does not exist".into(),
        ),
        (vec!["cp", "er:/etc", fs], "cannot copy directory".into()),
    ];
    for (args, want) in cases {
        let o = e.run(&args);
        assert_eq!(o.code, 1, "{args:?}: {o}");
        assert!(o.stderr.contains(&want), "{args:?}: want {want:?}: {o}");
    }
    // The failed copies changed nothing on the host.
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
    assert_eq!(std::fs::read_dir(h.path()).unwrap().count(), 1);
}

#[test]
fn cp_resolves_container_symlinks_inside_the_container() {
    let e = Env::new();
    // A host directory the container's symlink names: nothing may land in
    // it, and nothing in it may be read through the container.
    let target = host_dir();
    let t = target.path().to_str().unwrap().to_string();
    std::fs::write(target.path().join("host-secret"), "secret").unwrap();
    let h = host_dir();
    let f = h.path().join("payload");
    std::fs::write(&f, "payload\n").unwrap();
    let fs = f.to_str().unwrap();

    e.ok(&["run", "-d", "--name", "ln", "busybox", "sleep", "1000"]);
    e.ok(&["exec", "ln", "ln", "-s", &t, "/escape"]);
    e.ok(&["exec", "ln", "ln", "-s", "../../../../../../..", "/up"]);
    // The target does not exist in the container: the copies fail.
    let o = e.run(&["cp", fs, "ln:/escape/x"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("Could not find the file"), "{o}");
    let _ = e.run(&["cp", fs, "ln:/escape/"]);
    let _ = e.run(&["cp", h.path().to_str().unwrap(), "ln:/escape"]);
    let _ = e.run(&["cp", fs, &format!("ln:/up{t}/x")]);
    let o = e.run(&["cp", "ln:/escape/host-secret", h.path().to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    let o = e.run(&[
        "cp",
        "-L",
        "ln:/escape",
        h.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 1, "{o}");
    assert!(!h.path().join("out").exists());
    let o = e.run(&[
        "cp",
        &format!("ln:/up{t}/host-secret"),
        h.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, 1, "{o}");
    assert!(!h.path().join("host-secret").exists());

    // Made inside the container, the same path receives the copy there.
    e.ok(&["exec", "ln", "mkdir", "-p", &t]);
    e.ok(&["cp", fs, "ln:/escape/x"]);
    e.ok(&["cp", fs, &format!("ln:/up{t}/y")]);
    assert_eq!(exec_out(&e, "ln", &["cat", &format!("{t}/x")]), "payload\n");
    assert_eq!(exec_out(&e, "ln", &["cat", &format!("{t}/y")]), "payload\n");
    // -L follows the link in the container, under the link's name.
    e.ok(&[
        "cp",
        "-L",
        "ln:/escape",
        h.path().join("out").to_str().unwrap(),
    ]);
    assert!(h.path().join("out/x").is_file());
    assert!(!h.path().join("out/host-secret").exists());

    let mut left: Vec<String> = std::fs::read_dir(target.path())
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["host-secret"], "the host directory was written");
}

// -------------------------------------------------------------------- diff

#[test]
fn diff_lists_changes_as_docker() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "touch /new; rm /bin/ls; echo x >> /etc/passwd",
    ]);
    let want = "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /new\n";
    assert_eq!(e.ok(&["diff", "changed"]), want);
    assert_eq!(e.ok(&["container", "diff", "changed"]), want);

    // The mount points a container gets are not changes of its own.
    e.ok(&["run", "-d", "--name", "quiet", "busybox", "sleep", "1000"]);
    assert_eq!(e.ok(&["diff", "quiet"]), "");
    e.ok(&["exec", "quiet", "mkdir", "/etc/more"]);
    assert_eq!(e.ok(&["diff", "quiet"]), "C /etc\nA /etc/more\n");
    // Never started: no changes.
    e.ok(&["create", "--name", "fresh", "busybox", "true"]);
    assert_eq!(e.ok(&["diff", "fresh"]), "");

    let o = e.run(&["diff", "nosuch"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("Error response from daemon: No such container: nosuch"),
        "{o}"
    );
}

// ------------------------------------------------------------------ commit

#[test]
fn commit_makes_an_image_of_the_container_s_changes() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "src",
        "-e",
        "FROM_RUN=1",
        "-w",
        "/etc",
        "busybox",
        "sh",
        "-c",
        "touch /new; rm /bin/ls; echo x >> /etc/passwd",
    ]);
    let out = e.ok(&[
        "commit",
        "-m",
        "my message",
        "-a",
        "A. Author <a@example.com>",
        "-c",
        r#"CMD ["cat","/etc/passwd"]"#,
        "src",
        "committed:v1",
    ]);
    let id = out.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "not an image id: {out}"
    );
    assert_eq!(e.inspect("committed:v1", "{{.Id}}"), id);

    // The new layer: /new is there, /bin/ls is gone, /etc/passwd changed.
    let o = e.ok(&[
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "test -e /new && ! test -e /bin/ls && echo layered",
    ]);
    assert_eq!(o, "layered\n");
    let o = e.run(&["run", "--rm", "committed:v1", "ls", "/"]);
    assert_ne!(o.code, 0, "/bin/ls survived: {o}");
    // The --change CMD is the default command; the rest comes from the
    // container's config.
    let o = e.ok(&["run", "--rm", "committed:v1"]);
    assert!(o.starts_with("root:x:0:0") && o.ends_with("x\n"), "{o}");
    assert_eq!(
        e.inspect("committed:v1", "{{json .Config.Cmd}}"),
        r#"["cat","/etc/passwd"]"#
    );
    assert_eq!(e.inspect("committed:v1", "{{.Config.WorkingDir}}"), "/etc");
    assert!(e
        .inspect("committed:v1", "{{json .Config.Env}}")
        .contains("FROM_RUN=1"));
    assert_eq!(
        e.inspect("committed:v1", "{{.Author}}"),
        "A. Author <a@example.com>"
    );
    let history = e.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}|{{.CreatedBy}}",
        "committed:v1",
    ]);
    let top = history.lines().next().unwrap_or_default();
    assert_eq!(
        top,
        "my message|sh -c touch /new; rm /bin/ls; echo x >> /etc/passwd"
    );
    // Untagged: listed by id only.
    let out = e.ok(&["container", "commit", "src"]);
    assert!(out.starts_with("sha256:"), "{out}");
    let commits: Vec<serde_json::Value> = events(&e)
        .into_iter()
        .filter(|v| v["Action"] == "commit")
        .collect();
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert_eq!(commits[0]["Actor"]["Attributes"]["comment"], "my message");
    assert_eq!(commits[0]["Actor"]["Attributes"]["imageID"], id);
    assert_eq!(
        commits[0]["Actor"]["Attributes"]["imageRef"],
        "committed:v1"
    );

    let o = e.run(&["commit", "src", "Bad:Name"]);
    assert_eq!(o.code, 1, "{o}");
    let o = e.run(&["commit", "nosuch"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
}

#[test]
fn commit_pauses_a_running_container_unless_told_not_to() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo live > /state; sleep 1000",
    ]);
    e.wait_for(10, "/state", &mut || {
        e.run(&["exec", "live", "cat", "/state"]).stdout == "live\n"
    });
    e.ok(&["commit", "live", "snap:1"]);
    assert_eq!(e.status("live"), "running");
    let actions = actions_of(&e, "live");
    let tail: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| matches!(*a, "pause" | "unpause" | "commit"))
        .collect();
    assert_eq!(tail, ["pause", "commit", "unpause"]);
    e.ok(&["commit", "--pause=false", "live", "snap:2"]);
    let n_pauses = actions_of(&e, "live")
        .iter()
        .filter(|a| *a == "pause")
        .count();
    assert_eq!(n_pauses, 1);
    assert_eq!(e.status("live"), "running");
    let o = e.ok(&["run", "--rm", "snap:2", "cat", "/state"]);
    assert_eq!(o, "live\n");
    // A paused container stays paused.
    e.ok(&["pause", "live"]);
    e.ok(&["commit", "live", "snap:3"]);
    assert_eq!(e.status("live"), "paused");
    e.ok(&["unpause", "live"]);
}

// ------------------------------------------------------------------ export

#[test]
fn export_writes_the_root_filesystem_as_a_tar() {
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "exited",
        "busybox",
        "sh",
        "-c",
        "echo exported > /exported-file; rm /bin/ls",
    ]);
    let h = host_dir();
    let file = h.path().join("x.tar");
    e.ok(&["export", "-o", file.to_str().unwrap(), "exited"]);
    assert!(e.mounts().is_empty(), "{:?}", e.mounts());
    let o = Command::new("tar").arg("tf").arg(&file).output().unwrap();
    assert!(o.status.success());
    let listed = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = listed.lines().collect();
    for want in ["bin/busybox", "exported-file", "etc/passwd"] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    assert!(!names.contains(&"bin/ls"), "{names:?}");
    let o = Command::new("tar")
        .arg("xOf")
        .arg(&file)
        .arg("exported-file")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exported\n");

    // To stdout, from a running container.
    e.ok(&["run", "-d", "--name", "run", "busybox", "sleep", "1000"]);
    let (code, tar, err) = run_bytes(&e, &["container", "export", "run"]);
    assert_eq!(code, 0, "{err}");
    assert!(tar_names(&tar).iter().any(|n| n == "bin/busybox"));
    assert!(actions_of(&e, "run").contains(&"export".to_string()));

    // Never to a terminal.
    let shown = run_on_terminal(&e, &["export", "run"]);
    assert!(
        shown.contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{shown}"
    );
    let o = e.run(&["export", "-o", "/no/such/dir/x.tar", "exited"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("does not exist"), "{o}");
    let o = e.run(&["export", "-o", file.to_str().unwrap(), "nosuch"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
}
