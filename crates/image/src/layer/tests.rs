//! Tests of the layer module: round trips, whiteouts (flattened and as
//! overlay lowers, checked through a real overlay mount as root), diffs of a
//! real overlay upper, hostile tarballs, compression detection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
use sha2::{Digest, Sha256};

use super::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---------------------------------------------------------------- listings

fn xattrs_of(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let names: Vec<Vec<u8>> = buf[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| n.to_vec())
        .collect();
    let mut out = Vec::new();
    for name in names {
        let mut v = vec![0u8; 65536];
        let k = rustix::fs::lgetxattr(p, name.as_slice(), &mut v[..]).unwrap();
        out.push((String::from_utf8_lossy(&name).into_owned(), v[..k].to_vec()));
    }
    out.sort();
    out
}

/// path -> description of everything apply must preserve, plus "#links".
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, String>,
        inodes: &mut HashMap<u64, Vec<String>>,
    ) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = FileType::from_raw_mode(m.mode());
            let link = if ft == FileType::Symlink {
                fs::read_link(&p).unwrap().to_string_lossy().into_owned()
            } else {
                String::new()
            };
            let size = if ft == FileType::RegularFile {
                m.size()
            } else {
                0
            };
            let mtime = m.mtime();
            out.insert(
                rel.clone(),
                format!(
                    "{ft:?} {:o} {}:{} size={size} mtime={mtime} link={link:?} rdev={:x} xattrs={:?}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    m.rdev(),
                    xattrs_of(&p)
                ),
            );
            if ft != FileType::Directory && m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().push(rel.clone());
            }
            if ft == FileType::Directory {
                walk(root, &p, out, inodes);
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut inodes = HashMap::new();
    walk(root, root, &mut out, &mut inodes);
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    groups.sort();
    out.insert("#links".into(), format!("{groups:?}"));
    out
}

fn paths(root: &Path) -> BTreeSet<String> {
    listing(root)
        .into_keys()
        .filter(|k| k != "#links")
        .collect()
}

fn set_times(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

// ---------------------------------------------------------------- tar building

struct TarB(tar::Builder<Vec<u8>>);

impl TarB {
    fn new() -> Self {
        TarB(tar::Builder::new(Vec::new()))
    }
    fn raw(
        &mut self,
        name: &[u8],
        kind: tar::EntryType,
        link: Option<&[u8]>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), tar::EntryType::Directory, None, b"")
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), tar::EntryType::Regular, None, data)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Symlink,
            Some(target.as_bytes()),
            b"",
        )
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Link,
            Some(target.as_bytes()),
            b"",
        )
    }
    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

fn entry_names(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(Cursor::new(tar_bytes));
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

// ---------------------------------------------------------------- mounts

struct Mount(PathBuf);

impl Mount {
    fn overlay(opts: &str, at: &Path) -> Mount {
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", opts])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay -o {opts}");
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

// ---------------------------------------------------------------- round trip

/// A tree with every kind of file and attribute; returns a long path in it.
fn build_tree(src: &Path) -> String {
    let root = is_root();
    fs::create_dir(src).unwrap();
    let s = |p: &str| src.join(p);
    fs::create_dir_all(s("a/b")).unwrap();
    fs::write(s("a/file"), b"hello").unwrap();
    fs::write(s("a/setuid"), vec![7u8; 100_000]).unwrap();
    fs::set_permissions(s("a/setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(s("a/hard1"), b"shared").unwrap();
    fs::hard_link(s("a/hard1"), s("a/b/hard2")).unwrap();
    symlink("a/file", s("link")).unwrap();
    symlink("/etc/passwd", s("abs")).unwrap();
    rustix::fs::mknodat(
        CWD,
        s("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    fs::set_permissions(s("fifo"), fs::Permissions::from_mode(0o640)).unwrap();
    let long_dir = "d".repeat(90) + "/" + &"e".repeat(90);
    fs::create_dir_all(s(&long_dir)).unwrap();
    let long_file = format!("{long_dir}/{}", "f".repeat(120));
    fs::write(s(&long_file), b"long").unwrap();
    symlink("t".repeat(150), s("longlink")).unwrap();
    fs::write(s("old"), b"").unwrap();
    fs::write(s("future"), b"").unwrap();
    fs::create_dir(s("private")).unwrap();
    fs::set_permissions(s("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(s(".hidden"), b"x").unwrap();
    rustix::fs::lsetxattr(
        s("a/file").as_path(),
        "user.test",
        b"value\0bin",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        s("a/b").as_path(),
        "user.dir",
        b"d",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    if root {
        rustix::fs::mknodat(
            CWD,
            s("null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        fs::set_permissions(s("null"), fs::Permissions::from_mode(0o666)).unwrap();
        rustix::fs::mknodat(
            CWD,
            s("loop"),
            FileType::BlockDevice,
            Mode::from_raw_mode(0o660),
            rustix::fs::makedev(7, 0),
        )
        .unwrap();
        std::os::unix::fs::chown(s("a"), Some(1000), Some(1001)).unwrap();
        std::os::unix::fs::lchown(s("link"), Some(1001), Some(1002)).unwrap();
        std::os::unix::fs::chown(s("future"), Some(3_000_000), Some(3_000_001)).unwrap();
        fs::set_permissions(s("a/setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
        // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW.
        let mut cap = Vec::new();
        cap.extend_from_slice(&0x0200_0001u32.to_le_bytes());
        cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
        cap.extend_from_slice(&[0u8; 12]);
        rustix::fs::lsetxattr(
            s("a/setuid").as_path(),
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    // Times last, deepest first.
    set_times(&s("a/file"), 0);
    set_times(&s("old"), -86_400);
    set_times(&s("future"), (1i64 << 33) + 5);
    set_times(&s("link"), 12_345);
    set_times(&s("fifo"), 777);
    set_times(&s(&long_file), 5);
    set_times(&s(&long_dir), 6);
    set_times(&s("a/b"), 1);
    set_times(&s("a"), 1_234_567_890);

    long_file
}

#[test]
fn round_trip_preserves_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let root = is_root();
    let long_file = build_tree(&src);

    let mut tar_bytes = Vec::new();
    let written = tar_dir(&src, &mut tar_bytes).unwrap();
    assert_eq!(written.size, tar_bytes.len() as u64);
    assert_eq!(
        written.diff_id,
        format!("sha256:{}", hex::encode(Sha256::digest(&tar_bytes)))
    );
    let names = entry_names(&tar_bytes);
    assert!(names.contains(&long_file), "PAX long name: {names:?}");
    assert!(names.contains(&"a/".to_string()));

    let dst = tmp.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let stats = apply(Cursor::new(&tar_bytes), &dst, &ApplyOptions::default()).unwrap();
    assert_eq!(stats.diff_id, written.diff_id);
    assert_eq!(stats.compression, Compression::None);
    assert_eq!(stats.entries, names.len() as u64);

    let want = listing(&src);
    let got = listing(&dst);
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "entry {k}");
    }
    assert_eq!(want, got);
    assert!(want["#links"].contains("a/b/hard2"), "{}", want["#links"]);
    assert!(want["a/file"].contains("user.test"));
    if root {
        assert!(want["a/setuid"].contains("security.capability"));
        assert!(want["a/setuid"].contains(" 4755 "));
        assert!(want["future"].contains("3000000:3000001"));
    }
    // Deterministic: the copy tars to the same bytes.
    let mut again = Vec::new();
    let again_stats = tar_dir(&dst, &mut again).unwrap();
    assert_eq!(again_stats.diff_id, written.diff_id);
}

// ---------------------------------------------------------------- whiteouts

fn three_layers() -> [Vec<u8>; 3] {
    let l1 = TarB::new()
        .dir("etc/")
        .file("etc/passwd", b"root:x:0:0")
        .file("etc/keep", b"keep")
        .dir("bin/")
        .file("bin/sh", b"sh")
        .dir("bin/tools/")
        .file("bin/tools/one", b"1")
        .finish();
    let l2 = TarB::new()
        .dir("etc/")
        .file("etc/.wh.passwd", b"")
        .file("etc/new", b"new")
        .finish();
    // The opaque marker after some of the new content: it still only hides
    // the lower layers.
    let l3 = TarB::new()
        .dir("bin/")
        .file("bin/busybox", b"bb")
        .file("bin/.wh..wh..opq", b"")
        .dir("bin/tools/")
        .file("bin/tools/two", b"2")
        .finish();
    [l1, l2, l3]
}

fn expected_three() -> BTreeSet<String> {
    [
        "bin",
        "bin/busybox",
        "bin/tools",
        "bin/tools/two",
        "etc",
        "etc/keep",
        "etc/new",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn three_layers_flattened() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("rootfs");
    fs::create_dir(&dst).unwrap();
    for l in three_layers() {
        apply(Cursor::new(l), &dst, &ApplyOptions::default()).unwrap();
    }
    assert_eq!(paths(&dst), expected_three());
    assert_eq!(fs::read(dst.join("bin/tools/two")).unwrap(), b"2");
}

#[test]
fn three_layers_as_overlay_lowers() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::OverlayFs,
        ..ApplyOptions::default()
    };
    let mut dirs = Vec::new();
    for (i, l) in three_layers().into_iter().enumerate() {
        let d = tmp.path().join(format!("l{}", i + 1));
        fs::create_dir(&d).unwrap();
        apply(Cursor::new(l), &d, &opts).unwrap();
        dirs.push(d);
    }
    if !is_root() {
        return; // mknod 0:0 and trusted.* need root
    }
    let wh = fs::symlink_metadata(dirs[1].join("etc/passwd")).unwrap();
    assert_eq!(
        FileType::from_raw_mode(wh.mode()),
        FileType::CharacterDevice
    );
    assert_eq!(wh.rdev(), 0);
    assert!(!dirs[1].join("etc/.wh.passwd").exists());
    let x = xattrs_of(&dirs[2].join("bin"));
    assert!(
        x.contains(&("trusted.overlay.opaque".into(), b"y".to_vec())),
        "{x:?}"
    );
    assert!(!dirs[2].join("bin/.wh..wh..opq").exists());

    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower = format!(
        "lowerdir={}:{}:{}",
        dirs[2].display(),
        dirs[1].display(),
        dirs[0].display()
    );
    let m = Mount::overlay(&lower, &merged);
    assert_eq!(paths(&merged), expected_three());
    drop(m);
}

#[test]
fn diff_of_a_real_overlay_upper() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &str| tmp.path().join(p);
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(t(d)).unwrap();
    }
    let lower_tar = TarB::new()
        .dir("a/")
        .file("a/x", b"x")
        .file("a/y", b"y")
        .dir("d/")
        .dir("d/old/")
        .file("d/old/f", b"f")
        .file("keep", b"k")
        .finish();
    apply(
        Cursor::new(&lower_tar),
        &t("lower"),
        &ApplyOptions::default(),
    )
    .unwrap();
    {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off",
            t("lower").display(),
            t("upper").display(),
            t("work").display()
        );
        let _m = Mount::overlay(&opts, &t("merged"));
        let m = |p: &str| t("merged").join(p);
        fs::remove_file(m("a/x")).unwrap();
        fs::remove_dir_all(m("d")).unwrap();
        fs::create_dir(m("d")).unwrap();
        fs::write(m("d/new"), b"new").unwrap();
        fs::write(m("added"), b"added").unwrap();
        fs::hard_link(m("added"), m("added2")).unwrap();
    }
    let mut diff = Vec::new();
    let st = diff_upper(&t("upper"), &mut diff).unwrap();
    assert_eq!(st.size, diff.len() as u64);
    let names = entry_names(&diff);
    for want in [
        "a/",
        "a/.wh.x",
        "d/",
        "d/.wh..wh..opq",
        "d/new",
        "added",
        "added2",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "{want} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "a/y" || n.starts_with("d/old")),
        "{names:?}"
    );
    let mut a = tar::Archive::new(Cursor::new(&diff));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == b"added2" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"added");
        }
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                assert!(
                    !x.unwrap().key().unwrap().contains("overlay"),
                    "overlay xattr leaked"
                );
            }
        }
    }
    // Flattening lower + diff gives the merged view.
    let flat = t("flat");
    fs::create_dir(&flat).unwrap();
    apply(Cursor::new(&lower_tar), &flat, &ApplyOptions::default()).unwrap();
    apply(Cursor::new(&diff), &flat, &ApplyOptions::default()).unwrap();
    let want: BTreeSet<String> = ["a", "a/y", "added", "added2", "d", "d/new", "keep"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(paths(&flat), want);
}

// ---------------------------------------------------------------- hostile

struct Arena {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    target: PathBuf,
    sentinel: PathBuf,
}

impl Arena {
    fn new() -> Arena {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("x").join("y");
        let target = base.join("target");
        let sentinel = base.join("sentinel");
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(&sentinel).unwrap();
        fs::write(sentinel.join("file"), b"precious").unwrap();
        Arena {
            base: tmp.path().to_path_buf(),
            _tmp: tmp,
            target,
            sentinel,
        }
    }
    fn apply(&self, tar_bytes: Vec<u8>, opts: &ApplyOptions) -> Result<ApplyStats, LayerError> {
        let before = listing(&self.base.join("x/y/sentinel"));
        let r = apply(Cursor::new(tar_bytes), &self.target, opts);
        assert_eq!(before, listing(&self.sentinel), "sentinel changed");
        for outside in [
            "evil",
            "pwned",
            "x/evil",
            "x/y/evil",
            "x/pwned",
            "x/y/pwned",
        ] {
            assert!(
                !self.base.join(outside).exists(),
                "{outside} written outside"
            );
        }
        assert!(!Path::new("/evil").exists() && !Path::new("/abs").exists());
        r
    }
}

fn err_text(r: Result<ApplyStats, LayerError>) -> String {
    match r {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_paths_are_rejected_or_contained() {
    let d = ApplyOptions::default();
    let a = Arena::new();
    let e = err_text(a.apply(TarB::new().file("../evil", b"x").finish(), &d));
    assert!(e.contains("'../evil'") && e.contains(".."), "{e}");

    let e = err_text(a.apply(TarB::new().file("a/../../evil", b"x").finish(), &d));
    assert!(e.contains("a/../../evil"), "{e}");

    a.apply(TarB::new().file("/abs/evil", b"x").finish(), &d)
        .unwrap();
    assert_eq!(fs::read(a.target.join("abs/evil")).unwrap(), b"x");

    // A symlink to the host directory, then a file through it.
    let host = a.sentinel.to_str().unwrap().to_string();
    // Dangling inside the target: refused.
    let e = err_text(
        a.apply(
            TarB::new()
                .symlink("s", &host)
                .file("s/pwned", b"x")
                .finish(),
            &d,
        ),
    );
    assert!(
        e.contains("'s/pwned'") && e.contains("parent 's' is not a directory"),
        "{e}"
    );
    // Resolving inside the target: written there.
    let inside = format!("{}/", host.trim_start_matches('/'));
    a.apply(TarB::new().dir(&inside).file("s/pwned", b"x").finish(), &d)
        .unwrap();
    assert!(!a.sentinel.join("pwned").exists());
    assert!(a.target.join(&inside).join("pwned").exists());
    // ... also when the symlink came from a lower layer.
    a.apply(TarB::new().file("s/pwned2", b"x").finish(), &d)
        .unwrap();
    assert!(a.target.join(&inside).join("pwned2").exists());
    assert!(!a.sentinel.join("pwned2").exists());

    // A relative symlink climbing out, then a file through it.
    a.apply(
        TarB::new()
            .symlink("up", "../../..")
            .file("up/pwned", b"x")
            .file("up/x/y/sentinel/file", b"overwritten")
            .finish(),
        &d,
    )
    .unwrap();
    assert!(a.target.join("pwned").exists());
    assert_eq!(fs::read(a.sentinel.join("file")).unwrap(), b"precious");

    // A regular file over a symlink replaces the symlink, never writes through it.
    let target_link = a.sentinel.join("file");
    a.apply(
        TarB::new()
            .symlink("over", target_link.to_str().unwrap())
            .file("over", b"replaced")
            .finish(),
        &d,
    )
    .unwrap();
    assert_eq!(fs::read(a.target.join("over")).unwrap(), b"replaced");
}

#[test]
fn hostile_links_devices_and_whiteouts() {
    let d = ApplyOptions::default();
    let a = Arena::new();
    let e = err_text(a.apply(TarB::new().hardlink("h", "/etc/passwd").finish(), &d));
    assert!(
        e.contains("hardlink to '/etc/passwd'") && e.contains("not found"),
        "{e}"
    );
    assert!(!a.target.join("h").exists());

    let e = err_text(a.apply(TarB::new().hardlink("h", "../outside").finish(), &d));
    assert!(e.contains("'../outside'"), "{e}");
    let e = err_text(a.apply(TarB::new().hardlink("h", "../sentinel/file").finish(), &d));
    assert!(e.contains("'..'"), "{e}");

    // A hardlink through a symlink to the host: resolved inside the target.
    let host = a.sentinel.to_str().unwrap().to_string();
    let e = err_text(
        a.apply(
            TarB::new()
                .symlink("s", &host)
                .hardlink("h", "s/file")
                .finish(),
            &d,
        ),
    );
    assert!(e.contains("not found"), "{e}");
    // A hardlink inside the target works.
    a.apply(TarB::new().file("f", b"1").hardlink("g", "f").finish(), &d)
        .unwrap();
    assert_eq!(
        fs::metadata(a.target.join("f")).unwrap().ino(),
        fs::metadata(a.target.join("g")).unwrap().ino()
    );

    let unpriv = ApplyOptions {
        unprivileged: true,
        ..ApplyOptions::default()
    };
    let mut dev = TarB::new();
    dev.raw(b"dev/sda", tar::EntryType::Block, None, b"");
    let e = err_text(a.apply(dev.finish(), &unpriv));
    assert!(
        e.contains("'dev/sda'") && e.contains("device nodes are not allowed"),
        "{e}"
    );
    let mut dev = TarB::new();
    dev.raw(b"dev/null", tar::EntryType::Char, None, b"")
        .file("after", b"a");
    let skip = ApplyOptions {
        skip_devices: true,
        ..unpriv.clone()
    };
    a.apply(dev.finish(), &skip).unwrap();
    assert!(!a.target.join("dev/null").exists() && a.target.join("after").exists());

    // Whiteouts that would reach outside.
    let e = err_text(a.apply(TarB::new().file("../../.wh.sentinel", b"").finish(), &d));
    assert!(e.contains("unsafe path"), "{e}");
    let e = err_text(a.apply(TarB::new().file("a/.wh...", b"").finish(), &d));
    assert!(e.contains("invalid whiteout"), "{e}");
    // Through a symlink to the host directory: nothing outside is deleted.
    a.apply(
        TarB::new()
            .symlink("s2", &host)
            .file("s2/.wh.file", b"")
            .file("s2/.wh..wh..opq", b"")
            .finish(),
        &d,
    )
    .unwrap();
    // A whiteout of a symlink to the host deletes the symlink only.
    a.apply(TarB::new().file(".wh.s2", b"").finish(), &d)
        .unwrap();
    assert!(fs::symlink_metadata(a.target.join("s2")).is_err());
    assert!(a.sentinel.join("file").exists());
}

#[test]
fn limits_against_bombs() {
    let a = Arena::new();
    let small = ApplyOptions {
        max_total_bytes: 1 << 20,
        max_entries: 100,
        ..ApplyOptions::default()
    };
    // A huge declared size with no data behind it.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("huge").unwrap();
    h.set_size(1 << 40);
    h.set_mode(0o644);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 4096]);
    let e = err_text(a.apply(bytes, &small));
    assert!(
        e.contains("'huge' declares 1099511627776 bytes") && e.contains("layer limit 1048576"),
        "{e}"
    );
    assert!(!a.target.join("huge").exists());

    // Many tiny files.
    let mut many = TarB::new();
    for i in 0..150 {
        many.file(&format!("f{i}"), b"");
    }
    let e = err_text(a.apply(many.finish(), &small));
    assert_eq!(e, "layer exceeds 100 entries");

    // Total bytes across entries.
    let mut big = TarB::new();
    for i in 0..5 {
        big.file(&format!("b{i}"), &vec![1u8; 300 << 10]);
    }
    let e = err_text(a.apply(big.finish(), &small));
    assert!(e.contains("'b3' declares"), "{e}");

    // A PAX header bigger than any honest one.
    let mut b = tar::Builder::new(Vec::new());
    let junk = "v".repeat(3 << 20);
    b.append_pax_extensions([("SCHILY.xattr.user.junk", junk.as_bytes())])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("p").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let e = err_text(a.apply(b.into_inner().unwrap(), &ApplyOptions::default()));
    assert!(e.contains("exceed"), "{e}");
}

// ---------------------------------------------------------------- compression

#[test]
fn compression_by_magic_and_diff_id() {
    let mut plain = TarB::new()
        .dir("d/")
        .file("d/f", &vec![42u8; 70_000])
        .finish();
    plain.extend_from_slice(&[0u8; 8192]); // record padding after the end blocks
    let want = format!("sha256:{}", hex::encode(Sha256::digest(&plain)));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(Cursor::new(&plain), 3).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    for (bytes, kind, misleading) in [
        (&plain, Compression::None, "layer.tar.gz"),
        (&gz, Compression::Gzip, "layer.tar.zst"),
        (&zst, Compression::Zstd, "layer.tar"),
    ] {
        assert_eq!(detect(Cursor::new(bytes.as_slice())).unwrap(), kind);
        let file = tmp.path().join(misleading);
        fs::write(&file, bytes).unwrap();
        let mut out = Vec::new();
        decompressed(fs::File::open(&file).unwrap())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        let dst = tmp.path().join(format!("dst-{kind:?}"));
        fs::create_dir(&dst).unwrap();
        let st = apply(
            fs::File::open(&file).unwrap(),
            &dst,
            &ApplyOptions::default(),
        )
        .unwrap();
        assert_eq!(st.compression, kind);
        assert_eq!(st.diff_id, want);
        assert_eq!(fs::read(dst.join("d/f")).unwrap().len(), 70_000);
    }

    let dst = tmp.path().join("truncated");
    fs::create_dir(&dst).unwrap();
    let r = apply(
        Cursor::new(&gz[..gz.len() / 2]),
        &dst,
        &ApplyOptions::default(),
    );
    match r {
        Err(LayerError::Read { .. }) => {}
        other => panic!("truncated gzip: {other:?}"),
    }
    let e = err_text(apply(
        Cursor::new(&gz[..gz.len() / 2]),
        &dst,
        &ApplyOptions::default(),
    ));
    assert!(e.starts_with("reading the layer stream"), "{e}");
    let e = err_text(apply(
        Cursor::new(&b"this is not a tar file at all"[..]),
        &dst,
        &ApplyOptions::default(),
    ));
    assert!(e.contains("reading the layer stream"), "{e}");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path();
    let l1 = TarB::new()
        .dir("x/")
        .file("x/inner", b"i")
        .file("y", b"file")
        .finish();
    apply(Cursor::new(l1), dst, &ApplyOptions::default()).unwrap();
    // A file replaces the directory, a directory replaces the file.
    let l2 = TarB::new()
        .file("x", b"now a file")
        .dir("y/")
        .file("y/z", b"z")
        .finish();
    apply(Cursor::new(l2), dst, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(dst.join("x")).unwrap(), b"now a file");
    assert!(dst.join("y").is_dir() && dst.join("y/z").is_file());
    // Directory mtimes are set after their content.
    let m = fs::metadata(dst.join("y")).unwrap();
    assert_eq!(m.mtime(), 1_600_000_000);
    // A root entry "./" only sets the root's attributes.
    apply(
        Cursor::new(TarB::new().dir("./").finish()),
        dst,
        &ApplyOptions::default(),
    )
    .unwrap();
}

#[test]
fn interop_with_gnu_tar() {
    if !Path::new("/usr/bin/tar").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    // GNU tar (PAX, xattrs) -> apply.
    let out = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--format=posix",
            "-C",
        ])
        .arg(&src)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = tmp.path().join("dst");
    fs::create_dir(&dst).unwrap();
    apply(Cursor::new(&out.stdout), &dst, &ApplyOptions::default()).unwrap();
    let (want, got) = (listing(&src), listing(&dst));
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "entry {k}");
    }
    // Ours -> GNU tar extracts it the same.
    let mut ours = Vec::new();
    tar_dir(&src, &mut ours).unwrap();
    let gnu = tmp.path().join("gnu");
    fs::create_dir(&gnu).unwrap();
    let mut child = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-xpf",
            "-",
            "-C",
        ])
        .arg(&gnu)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&ours).unwrap();
    assert!(child.wait().unwrap().success());
    let got = listing(&gnu);
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "entry {k}");
    }
}

/// Throughput on a real tree: `BARGE_BENCH_DIR=/usr cargo test --release -p
/// barge-image bench_tar_apply -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_tar_apply() {
    let Some(dir) = std::env::var_os("BARGE_BENCH_DIR") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer.tar");
    let t = std::time::Instant::now();
    let st = tar_dir(Path::new(&dir), fs::File::create(&layer).unwrap()).unwrap();
    let t_tar = t.elapsed();
    let dst = tmp.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let t = std::time::Instant::now();
    let ap = apply(
        fs::File::open(&layer).unwrap(),
        &dst,
        &ApplyOptions::default(),
    )
    .unwrap();
    let t_apply = t.elapsed();
    assert_eq!(ap.diff_id, st.diff_id);
    eprintln!(
        "{} MB, {} entries: tar_dir {t_tar:?}, apply {t_apply:?}",
        st.size >> 20,
        ap.entries
    );
}
