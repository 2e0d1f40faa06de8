//! Shared harness of the container tests: a private engine root with a
//! busybox image, the `barge` binary, and cleanup of every container made.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn barge_bin() -> &'static str {
    env!("CARGO_BIN_EXE_barge")
}

/// `barge-monitor` and `barge-runc` must sit next to `barge` (the CI builds
/// every binary first: `cargo build --workspace --bins`).
pub fn check_helpers() {
    let dir = Path::new(barge_bin()).parent().unwrap();
    for b in ["barge-monitor", "barge-runc"] {
        assert!(
            dir.join(b).is_file(),
            "{b} is not built next to {}: run `cargo build --workspace --bins` first",
            barge_bin()
        );
    }
}

/// A tarball of the busybox test rootfs (made once per test binary).
pub fn rootfs_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("barge-containers-rootfs");
        let bundle = dir.join("bundle");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = Command::new("bash")
            .arg(repo.join("scripts/make-test-bundle.sh"))
            .arg(&bundle)
            .stdout(Stdio::null())
            .status()
            .expect("run make-test-bundle.sh");
        assert!(st.success(), "make-test-bundle.sh failed");
        let tar = dir.join(format!("rootfs-{}.tar", std::process::id()));
        let st = Command::new("tar")
            .arg("-C")
            .arg(bundle.join("rootfs"))
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        tar
    })
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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

/// A private engine root with `busybox` imported.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        check_helpers();
        let dir = tempfile::Builder::new()
            .prefix("barge-ct-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let e = Env { dir };
        e.ok(&["import", rootfs_tar().to_str().unwrap(), "busybox"]);
        e
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(barge_bin());
        c.arg("--root").arg(self.root()).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        let o: Output = self.cmd(args).stdin(Stdio::null()).output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "barge {args:?}: {o}");
        o.stdout
    }

    /// `inspect -f TEMPLATE NAME`, trimmed.
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
            .trim()
            .to_string()
    }

    pub fn status(&self, name: &str) -> String {
        self.inspect(name, "{{.State.Status}}")
    }

    /// Polls `cond` for up to `secs` seconds.
    pub fn wait_for(&self, secs: u64, what: &str, cond: &mut dyn FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    /// Every mount under this root still mounted.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.root().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| m.starts_with(&root))
            .collect()
    }

    pub fn ids(&self) -> Vec<String> {
        self.ok(&["ps", "-aq", "--no-trunc"])
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let out = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in out.stdout.lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
        for m in self.mounts().iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        teardown_networks(self.root());
    }
}

/// Deletes the bridges and the nftables table the networks of an engine
/// root made (by the names the root recorded), so a test leaves no link
/// or rule behind.
pub fn teardown_networks(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("networks")) else {
        return;
    };
    let mut tables = std::collections::BTreeSet::new();
    for e in entries.flatten() {
        let Ok(data) = std::fs::read(e.path().join("network.json")) else {
            continue;
        };
        let Ok(n) = serde_json::from_slice::<serde_json::Value>(&data) else {
            continue;
        };
        if let Some(b) = n["bridge"].as_str() {
            let _ = Command::new("ip")
                .args(["link", "delete", b])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(t) = n["table"].as_str() {
            tables.insert(t.to_string());
        }
    }
    for t in tables {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &t])
            .stderr(Stdio::null())
            .status();
    }
}

/// The host cgroup directories of a container (v1 controllers and the
/// unified tree) that exist.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join("barge").join(id);
            if p.exists() {
                v.push(p);
            }
        }
    }
    let p = Path::new("/sys/fs/cgroup/barge").join(id);
    if p.exists() {
        v.push(p);
    }
    v
}

/// The static init `--init` uses, if installed.
pub fn find_tini() -> Option<PathBuf> {
    ["/usr/bin/tini-static", "/usr/bin/tini"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}
