//! The image commands against a private store: import, images, tag, rmi,
//! inspect, history, prune, system df/check, and bad input that must leave
//! the store as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

fn barge() -> &'static str {
    env!("CARGO_BIN_EXE_barge")
}

/// A tarball of the busybox test rootfs (made once per test binary).
fn rootfs_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        // Build scratch, not /tmp: kept between runs, removed with target/.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("barge-images-rootfs");
        let bundle = dir.join("bundle");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = Command::new("bash")
            .arg(repo.join("scripts/make-test-bundle.sh"))
            .arg(&bundle)
            .stdout(Stdio::null())
            .status()
            .expect("run make-test-bundle.sh");
        assert!(st.success(), "make-test-bundle.sh failed");
        let tar = dir.join("rootfs.tar");
        let st = Command::new("tar")
            .args(["-C"])
            .arg(bundle.join("rootfs"))
            .args(["-cf"])
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        tar
    })
}

struct Store {
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[exit {}]\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&Path>) -> Out {
        let mut c = Command::new(barge());
        c.arg("--root").arg(self.dir.path()).args(args);
        c.stdin(match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        });
        let o: Output = c.output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "barge {args:?}: {o}");
        o.stdout
    }

    fn import(&self, reference: &str) -> String {
        self.ok(&["import", rootfs_tar().to_str().unwrap(), reference])
            .trim()
            .to_string()
    }

    /// What `images` shows, as "repo:tag" lines.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    }
}

#[test]
fn import_prints_the_id_and_images_lists_it_with_docker_columns() {
    let s = Store::new();
    let id = s.import("busybox");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let out = s.ok(&["images"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.trim().is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let row = lines.next().unwrap();
    assert!(row.starts_with("busybox "), "{out}");
    assert!(row.contains(" latest "), "{out}");
    assert!(row.contains(&id[7..19]), "short id in {out}");
    assert_eq!(s.ok(&["images", "-q"]).trim(), &id[7..19]);
    assert_eq!(s.ok(&["images", "-q", "--no-trunc"]).trim(), id);
}

#[test]
fn import_from_stdin_with_gzip_and_changes_sets_the_config() {
    let s = Store::new();
    let gz = s.dir.path().join("rootfs.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c {} > {}",
            rootfs_tar().display(),
            gz.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let o = s.run_with_stdin(
        &[
            "import",
            "-c",
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "-c",
            "ENV A=1",
            "-c",
            "WORKDIR /srv",
            "-m",
            "from stdin",
            "-",
            "localhost/app:1",
        ],
        Some(&gz),
    );
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&s.ok(&["image", "inspect", "localhost/app:1"])).unwrap();
    let img = &v[0];
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "echo hi"])
    );
    assert_eq!(img["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(img["Config"]["WorkingDir"], "/srv");
    assert_eq!(img["RepoTags"], serde_json::json!(["localhost/app:1"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    let hist = s.ok(&["history", "localhost/app:1"]);
    assert!(
        hist.contains("barge import") && hist.contains("from stdin"),
        "{hist}"
    );
}

#[test]
fn same_layer_is_unpacked_once_and_shared() {
    let s = Store::new();
    s.import("a");
    s.import("b");
    let layers: Vec<_> = std::fs::read_dir(s.dir.path().join("layers"))
        .unwrap()
        .collect();
    assert_eq!(layers.len(), 1, "one unpacked layer for two images");
    let diff = layers[0].as_ref().unwrap().path().join("diff");
    assert!(
        diff.join("bin/busybox").is_file(),
        "layer unpacked at {}",
        diff.display()
    );
}

#[test]
fn import_without_a_name_is_dangling_until_pruned() {
    let s = Store::new();
    let o = s.run(&["import", rootfs_tar().to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(s.names(), ["<none>:<none>"]);
    assert_eq!(
        s.ok(&["images", "--filter", "dangling=true", "-q"])
            .lines()
            .count(),
        1
    );
    let out = s.ok(&["image", "prune", "-f"]);
    assert!(
        out.contains("deleted: sha256:") && out.contains("Total reclaimed space"),
        "{out}"
    );
    assert!(s.names().is_empty());
    assert!(s.ok(&["system", "check"]).contains("no problems"));
}

#[test]
fn retagging_a_name_leaves_the_old_image_dangling() {
    let s = Store::new();
    let first = s.import("app");
    let o = s.run(&[
        "import",
        "-c",
        "CMD [\"true\"]",
        rootfs_tar().to_str().unwrap(),
        "app",
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(s.names(), ["<none>:<none>", "app:latest"]);
    assert_eq!(
        s.ok(&["images", "-f", "dangling=true", "-q", "--no-trunc"])
            .trim(),
        first
    );
}

#[test]
fn tag_and_rmi_follow_dockers_rules() {
    let s = Store::new();
    let id = s.import("busybox");
    s.ok(&["tag", "busybox", "localhost/alias:2"]);
    assert_eq!(s.names(), ["busybox:latest", "localhost/alias:2"]);

    // By id with two names: refused without -f.
    let o = s.run(&["rmi", &id[7..19]]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("must be forced") && o.stderr.contains("multiple repositories"),
        "{o}"
    );
    assert_eq!(s.names().len(), 2, "nothing removed");

    // By name: only that name goes.
    let out = s.ok(&["rmi", "busybox"]);
    assert_eq!(out.trim(), "Untagged: busybox:latest");
    assert_eq!(s.names(), ["localhost/alias:2"]);

    // The last name: untagged and deleted, blobs and layer gone.
    let out = s.ok(&["rmi", "localhost/alias:2"]);
    assert!(
        out.contains("Untagged: localhost/alias:2") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert!(s.names().is_empty());
    assert_eq!(
        std::fs::read_dir(s.dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(s.dir.path().join("layers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn rmi_force_by_id_removes_every_name() {
    let s = Store::new();
    let id = s.import("one");
    s.ok(&["tag", "one", "two"]);
    let out = s.ok(&["rmi", "-f", &id]);
    assert!(
        out.contains("Untagged: one:latest") && out.contains("Untagged: two:latest"),
        "{out}"
    );
    assert!(s.names().is_empty());
}

#[test]
fn images_filters_and_formats() {
    let s = Store::new();
    s.import("busybox");
    s.ok(&["tag", "busybox", "localhost/web:1"]);
    s.ok(&[
        "import",
        "-c",
        "LABEL tier=db",
        rootfs_tar().to_str().unwrap(),
        "localhost/db:1",
    ]);
    let by_ref = s.ok(&[
        "images",
        "--filter",
        "reference=localhost/*",
        "--format",
        "{{.Repository}}",
    ]);
    let mut v: Vec<&str> = by_ref.lines().collect();
    v.sort();
    assert_eq!(v, ["localhost/db", "localhost/web"]);
    let by_label = s.ok(&[
        "images",
        "--filter",
        "label=tier=db",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(by_label.trim(), "localhost/db:1");
    let json_lines = s.ok(&["images", "--format", "json"]);
    for l in json_lines.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert!(v["ID"].is_string() && v["Repository"].is_string(), "{l}");
    }
    let table = s.ok(&["images", "--format", "table {{.Repository}}\t{{.Tag}}"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    let only = s.ok(&["images", "localhost/web", "--format", "{{.Tag}}"]);
    assert_eq!(only.trim(), "1");
    let bad = s.run(&["images", "--filter", "color=red"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("color"), "{bad}");
}

#[test]
fn system_df_counts_images() {
    let s = Store::new();
    s.import("busybox");
    let out = s.ok(&["system", "df"]);
    let images = out.lines().find(|l| l.starts_with("Images")).unwrap();
    let cols: Vec<&str> = images.split_whitespace().collect();
    assert_eq!(cols[1], "1", "{out}");
    assert!(
        out.contains("Containers") && out.contains("Build Cache"),
        "{out}"
    );
}

/// Bad input gets a one-line error and leaves the store as it was.
#[test]
fn bad_input_is_refused_and_leaves_the_store_unchanged() {
    let s = Store::new();
    s.import("busybox");
    let before = s.names();
    let not_tar = s.dir.path().join("notes.txt");
    std::fs::write(&not_tar, "hello, this is not a tarball\n").unwrap();
    let truncated = s.dir.path().join("cut.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c {} | head -c 20000 > {}",
            rootfs_tar().display(),
            truncated.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["import", not_tar.to_str().unwrap(), "x"],
            "not a valid rootfs tarball",
        ),
        (
            vec!["import", truncated.to_str().unwrap(), "y"],
            "not a valid rootfs tarball",
        ),
        (vec!["import", "/nonexistent.tar", "z"], "/nonexistent.tar"),
        (vec!["tag", "busybox", "UPPER:case"], "must be lowercase"),
        (vec!["tag", "nosuch", "x"], "No such image: nosuch"),
        (vec!["rmi", "nosuch"], "No such image: nosuch"),
        (
            vec![
                "import",
                "-c",
                "RUN rm -rf /",
                rootfs_tar().to_str().unwrap(),
                "w",
            ],
            "RUN is not allowed",
        ),
        (vec!["image", "inspect", "nosuch"], "No such image"),
        (vec!["history", "nosuch"], "No such image"),
    ];
    for (args, want) in cases {
        let o = s.run(&args);
        assert_eq!(o.code, 1, "barge {args:?}: {o}");
        assert!(
            o.stderr.contains(want),
            "barge {args:?} should say {want:?}: {o}"
        );
        assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {o}");
        assert_eq!(s.names(), before, "store changed by {args:?}");
    }
    assert!(s.ok(&["system", "check"]).contains("no problems"));
    assert!(
        !s.dir.path().join("layers").read_dir().unwrap().any(|e| {
            e.map(|e| !e.path().join("diff/bin/busybox").exists())
                .unwrap_or(true)
        }),
        "no half-unpacked layer"
    );
}

#[test]
fn system_check_reports_a_corrupted_blob() {
    let s = Store::new();
    s.import("busybox");
    assert!(s.ok(&["system", "check"]).contains("no problems"));
    // Flip a byte of the biggest blob (the layer).
    let blobs = s.dir.path().join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(&biggest).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&biggest, data).unwrap();
    let o = s.run(&["system", "check"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stdout
            .contains(biggest.file_name().unwrap().to_str().unwrap()),
        "{o}"
    );
}

#[test]
fn two_imports_at_once_both_succeed() {
    let s = Store::new();
    let root = s.dir.path().to_path_buf();
    let spawn = |name: &str, change: &str| {
        Command::new(barge())
            .arg("--root")
            .arg(&root)
            .args(["import", "-c", change, rootfs_tar().to_str().unwrap(), name])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut a = spawn("first", "ENV X=1");
    let mut b = spawn("second", "ENV X=2");
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert_eq!(s.names(), ["first:latest", "second:latest"]);
    assert!(s.ok(&["system", "check"]).contains("no problems"));
}

#[test]
fn save_then_load_round_trips_both_formats() {
    let s = Store::new();
    let id = s.import("localhost/app:1");
    for format in ["docker-archive", "oci-archive"] {
        let archive = s.dir.path().join(format!("{format}.tar"));
        s.ok(&[
            "save",
            "--format",
            format,
            "-o",
            archive.to_str().unwrap(),
            "localhost/app:1",
        ]);
        let other = Store::new();
        let out = other.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
        assert!(
            out.contains("Loaded image: localhost/app:1"),
            "{format}: {out}"
        );
        assert_eq!(
            other.ok(&["images", "-q", "--no-trunc"]).trim(),
            id,
            "{format}: same image id"
        );
        assert!(other.ok(&["system", "check"]).contains("no problems"));
        // Loaded layers are unpacked, ready for a container.
        assert_eq!(
            std::fs::read_dir(other.dir.path().join("layers"))
                .unwrap()
                .count(),
            1
        );
    }
}

#[test]
fn load_of_a_broken_archive_changes_nothing() {
    let s = Store::new();
    s.import("busybox");
    let before = s.names();
    let junk = s.dir.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 5000]).unwrap();
    let o = s.run(&["load", "-i", junk.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(o.stderr.trim().lines().count(), 1, "{o}");
    assert_eq!(s.names(), before);
    assert!(s.ok(&["system", "check"]).contains("no problems"));
}

/// A big rootfs tarball (64 MiB of incompressible data), so that a command
/// can be killed while it streams.
fn big_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("barge-images-big");
        let tar = dir.join("big.tar");
        if !tar.exists() {
            std::fs::create_dir_all(dir.join("root")).unwrap();
            let st = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "head -c 67108864 /dev/urandom > {d}/root/blob && tar -C {d}/root -cf {t}.tmp . && mv {t}.tmp {t}",
                    d = dir.display(),
                    t = tar.display()
                ))
                .status()
                .unwrap();
            assert!(st.success());
        }
        tar
    })
}

/// SIGKILL of `import` and `load` at several moments: the store stays
/// consistent (no visible partial image, no corrupt blob) and works after.
#[test]
fn commands_killed_midway_leave_a_consistent_store() {
    let s = Store::new();
    s.import("base");
    let archive = s.dir.path().join("big-save.tar");
    s.ok(&["import", big_tar().to_str().unwrap(), "big"]);
    s.ok(&["save", "-o", archive.to_str().unwrap(), "big"]);
    s.ok(&["rmi", "big"]);
    let before = s.names();
    for (i, delay_ms) in [5u64, 30, 80, 150, 300].iter().enumerate() {
        let args: Vec<String> = if i % 2 == 0 {
            vec![
                "import".into(),
                big_tar().display().to_string(),
                format!("killed{i}"),
            ]
        } else {
            vec![
                "load".into(),
                "-q".into(),
                "-i".into(),
                archive.display().to_string(),
            ]
        };
        let mut child = Command::new(barge())
            .arg("--root")
            .arg(s.dir.path())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let names = s.names();
        if status.success() {
            // It finished before the kill: its image is complete.
            assert!(names.len() == before.len() + 1, "{names:?}");
            s.ok(&["rmi", names.iter().find(|n| !before.contains(n)).unwrap()]);
        } else {
            assert_eq!(
                names, before,
                "no partial image after a kill at {delay_ms} ms"
            );
        }
        let check = s.run(&["system", "check"]);
        assert_eq!(
            check.code, 0,
            "store inconsistent after a kill at {delay_ms} ms: {check}"
        );
    }
    // A killed save never leaves a partial archive under the name asked for.
    let out = s.dir.path().join("killed-save.tar");
    let mut child = Command::new(barge())
        .arg("--root")
        .arg(s.dir.path())
        .args(["save", "-o", out.to_str().unwrap(), "base"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.kill();
    if !child.wait().unwrap().success() {
        assert!(!out.exists(), "partial archive left at {}", out.display());
    }
    // The next command works.
    s.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(s.names().contains(&"big:latest".to_string()));
}

#[test]
fn an_untagged_image_saved_by_id_loads_as_none() {
    let s = Store::new();
    let o = s.run(&["import", rootfs_tar().to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    let id = o.stdout.trim().to_string();
    let archive = s.dir.path().join("untagged.tar");
    s.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        &id,
    ]);
    let other = Store::new();
    let out = other.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image ID: {id}"));
    assert_eq!(other.names(), ["<none>:<none>"]);
    assert_eq!(other.ok(&["images", "-q", "--no-trunc"]).trim(), id);
}
