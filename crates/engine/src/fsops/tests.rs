//! Tests run on plain directories in a temp dir. Those that chown, make
//! device nodes or set `trusted.*` xattrs need root and say so when
//! skipped.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, Timespec, Timestamps, CWD};

use super::*;
use barge_image::store::Store;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn write(path: &Path, data: &str) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// rootfs/etc/hostname, rootfs/data/{a.txt,sub/b.txt}, rootfs/link -> /data
fn rootfs(dir: &Path) -> PathBuf {
    let r = dir.join("rootfs");
    write(&r.join("etc/hostname"), "ctr\n");
    write(&r.join("data/a.txt"), "a");
    write(&r.join("data/sub/b.txt"), "b");
    symlink("/data", r.join("link")).unwrap();
    r
}

/// `docker cp CTR:src dest`.
fn cp_out(rootfs: &Path, src: &str, dest: &Path, archive: bool) -> Result<()> {
    let mut buf = Vec::new();
    let st = copy_from_container(rootfs, src, &mut buf)?;
    extract_to_host(&buf[..], &st, dest, archive)
}

fn tar_names(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

#[test]
fn copy_archive_names_the_top_entry_as_docker() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let names = |src: &str| {
        let mut buf = Vec::new();
        copy_from_container(&r, src, &mut buf).unwrap();
        tar_names(&buf)
    };
    assert_eq!(names("/etc/hostname"), ["hostname"]);
    assert_eq!(
        names("data"),
        ["data/", "data/a.txt", "data/sub/", "data/sub/b.txt"]
    );
    assert_eq!(names("/data/."), ["./", "./a.txt", "./sub/", "./sub/b.txt"]);
    // The last component is not followed...
    assert_eq!(names("/link"), ["link"]);
    // ...unless the path ends in a separator.
    assert_eq!(
        names("/link/"),
        ["link/", "link/a.txt", "link/sub/", "link/sub/b.txt"]
    );
    assert_eq!(names("/link/."), ["./", "./a.txt", "./sub/", "./sub/b.txt"]);
}

#[test]
fn copy_from_container_follows_docker_destination_rules() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let host = t.path().join("host");
    fs::create_dir(&host).unwrap();

    // file -> new name
    cp_out(&r, "/etc/hostname", &host.join("renamed"), false).unwrap();
    assert_eq!(read(&host.join("renamed")), "ctr\n");
    // file -> existing dir
    fs::create_dir(host.join("into")).unwrap();
    cp_out(&r, "/etc/hostname", &host.join("into"), false).unwrap();
    assert_eq!(read(&host.join("into/hostname")), "ctr\n");
    // file -> existing file: replaced
    write(&host.join("existing"), "old");
    cp_out(&r, "/etc/hostname", &host.join("existing"), false).unwrap();
    assert_eq!(read(&host.join("existing")), "ctr\n");
    // dir -> existing dir: copied into it
    cp_out(&r, "/data", &host.join("into"), false).unwrap();
    assert_eq!(read(&host.join("into/data/sub/b.txt")), "b");
    // dir/. -> existing dir: its content
    fs::create_dir(host.join("content")).unwrap();
    cp_out(&r, "/data/.", &host.join("content"), false).unwrap();
    assert_eq!(read(&host.join("content/a.txt")), "a");
    assert_eq!(read(&host.join("content/sub/b.txt")), "b");
    // dir -> new name
    cp_out(&r, "/data", &host.join("newdir"), false).unwrap();
    assert_eq!(read(&host.join("newdir/sub/b.txt")), "b");
    // dir/. -> new name: the same
    cp_out(&r, "/data/.", &host.join("newdir2"), false).unwrap();
    assert_eq!(read(&host.join("newdir2/a.txt")), "a");
    // dir -> existing file
    let e = cp_out(&r, "/data", &host.join("renamed"), false).unwrap_err();
    assert_eq!(e.to_string(), "cannot copy directory");
    // file -> missing dir asserted with a trailing slash
    let e = cp_out(
        &r,
        "/etc/hostname",
        Path::new(&format!("{}/nodir/", host.display())),
        false,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "no such directory");
    // missing parent of the destination
    assert!(cp_out(&r, "/etc/hostname", &host.join("a/b/c"), false).is_err());
    // a symlink is copied as a link
    cp_out(&r, "/link", &host.join("lnk"), false).unwrap();
    assert_eq!(fs::read_link(host.join("lnk")).unwrap(), Path::new("/data"));
    // a symlink as the destination is followed
    symlink(host.join("into"), host.join("to-into")).unwrap();
    cp_out(&r, "/data/a.txt", &host.join("to-into"), false).unwrap();
    assert_eq!(read(&host.join("into/a.txt")), "a");
    // a directory is never replaced by a file
    let mut buf = Vec::new();
    let st = copy_from_container(&r, "/etc/hostname", &mut buf).unwrap();
    fs::create_dir_all(host.join("clash/hostname")).unwrap();
    let e = extract_to_host(&buf[..], &st, &host.join("clash"), false).unwrap_err();
    assert!(e.to_string().contains("cannot overwrite directory"), "{e}");
}

#[test]
fn follow_link_copies_the_target_under_the_link_name() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let mut buf = Vec::new();
    let st = copy_from_container_follow_link(&r, "/link", &mut buf).unwrap();
    assert!(st.is_dir());
    assert_eq!(st.name, "link");
    assert_eq!(tar_names(&buf)[0], "link/");
    let host = t.path().join("out");
    extract_to_host(&buf[..], &st, &host, false).unwrap();
    assert_eq!(read(&host.join("sub/b.txt")), "b");
}

#[test]
fn missing_source_is_docker_not_found() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let e = copy_from_container(&r, "/nope", Vec::new()).unwrap_err();
    assert_eq!(missing_path(&e), Some(Path::new("/nope")));
    assert_eq!(
        in_container(e, "abc123").to_string(),
        "Could not find the file /nope in container abc123"
    );
    // A link that points nowhere is still there to copy...
    symlink("/nowhere", r.join("dangling")).unwrap();
    let st = stat_path(&r, "/dangling").unwrap();
    assert!(st.is_symlink());
    assert_eq!(st.link_target, "/nowhere");
    // ...but not to follow.
    let e = stat_path(&r, "/dangling/").unwrap_err();
    assert!(missing_path(&e).is_some(), "{e}");
    // A relative link is resolved inside the container.
    symlink("../../data", r.join("etc/up")).unwrap();
    assert_eq!(stat_path(&r, "/etc/up").unwrap().link_target, "/data");
}

#[test]
fn copies_keep_modes_and_mtimes() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    chmod(&r.join("data/a.txt"), 0o751);
    set_mtime(&r.join("data/a.txt"), 1_000_000);
    chmod(&r.join("data/sub"), 0o705);
    set_mtime(&r.join("data/sub"), 2_000_000);
    let host = t.path().join("out");
    cp_out(&r, "/data", &host, false).unwrap();
    let m = fs::metadata(host.join("a.txt")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o751);
    assert_eq!(m.mtime(), 1_000_000);
    let m = fs::metadata(host.join("sub")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o705);
    assert_eq!(m.mtime(), 2_000_000);

    // And into the container.
    let src = t.path().join("src");
    write(&src.join("x"), "x");
    chmod(&src.join("x"), 0o4711);
    set_mtime(&src.join("x"), 3_000_000);
    set_mtime(&src, 4_000_000);
    copy_to_container(&r, &src, "/tmp-new", false).unwrap();
    let m = fs::metadata(r.join("tmp-new/x")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4711);
    assert_eq!(m.mtime(), 3_000_000);
    assert_eq!(fs::metadata(r.join("tmp-new")).unwrap().mtime(), 4_000_000);
}

#[test]
fn hard_links_stay_linked() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    fs::hard_link(r.join("data/a.txt"), r.join("data/sub/a-link")).unwrap();
    let host = t.path().join("out");
    cp_out(&r, "/data", &host, false).unwrap();
    let a = fs::metadata(host.join("a.txt")).unwrap();
    let b = fs::metadata(host.join("sub/a-link")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn owner_is_root_in_the_container_unless_archive_mode() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let src = t.path().join("f");
    write(&src, "f");
    std::os::unix::fs::lchown(&src, Some(1234), Some(5678)).unwrap();
    copy_to_container(&r, &src, "/etc/plain", false).unwrap();
    let m = fs::metadata(r.join("etc/plain")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    copy_to_container(&r, &src, "/etc/archived", true).unwrap();
    let m = fs::metadata(r.join("etc/archived")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    // A directory created on the way belongs to root.
    let dir = t.path().join("d");
    write(&dir.join("inner/x"), "x");
    std::os::unix::fs::lchown(dir.join("inner"), Some(42), Some(42)).unwrap();
    copy_to_container(&r, &dir, "/newdir", true).unwrap();
    assert_eq!(fs::metadata(r.join("newdir/inner")).unwrap().uid(), 42);
}

#[test]
fn owner_is_the_caller_on_the_host_unless_archive_mode() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    std::os::unix::fs::lchown(r.join("etc/hostname"), Some(1234), Some(5678)).unwrap();
    let host = t.path().join("host");
    fs::create_dir(&host).unwrap();
    cp_out(&r, "/etc/hostname", &host.join("plain"), false).unwrap();
    let m = fs::metadata(host.join("plain")).unwrap();
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    assert_eq!((m.uid(), m.gid()), me);
    cp_out(&r, "/etc/hostname", &host.join("archived"), true).unwrap();
    let m = fs::metadata(host.join("archived")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
}

#[test]
fn copy_to_container_follows_docker_destination_rules() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let src = t.path().join("src");
    write(&src.join("f.txt"), "f");
    write(&src.join("sub/g.txt"), "g");

    // file -> existing dir
    copy_to_container(&r, &src.join("f.txt"), "/data", false).unwrap();
    assert_eq!(read(&r.join("data/f.txt")), "f");
    // file -> new name
    copy_to_container(&r, &src.join("f.txt"), "/etc/renamed", false).unwrap();
    assert_eq!(read(&r.join("etc/renamed")), "f");
    // dir -> existing dir
    copy_to_container(&r, &src, "/data", false).unwrap();
    assert_eq!(read(&r.join("data/src/sub/g.txt")), "g");
    // dir/. -> existing dir
    copy_to_container(
        &r,
        Path::new(&format!("{}/.", src.display())),
        "/etc",
        false,
    )
    .unwrap();
    assert_eq!(read(&r.join("etc/f.txt")), "f");
    assert_eq!(read(&r.join("etc/sub/g.txt")), "g");
    // dir -> existing file
    let e = copy_to_container(&r, &src, "/etc/hostname", false).unwrap_err();
    assert_eq!(e.to_string(), "cannot copy directory");
    // file -> missing/
    let e = copy_to_container(&r, &src.join("f.txt"), "/missing/", false).unwrap_err();
    assert_eq!(e.to_string(), "no such directory");
    // missing parent
    let e = copy_to_container(&r, &src.join("f.txt"), "/no/such/f", false).unwrap_err();
    assert_eq!(missing_path(&e), Some(Path::new("/no/such")));
    // a directory is not replaced by a file
    fs::create_dir(r.join("data/f2.txt")).unwrap();
    write(&src.join("f2.txt"), "f2");
    let e = copy_to_container(&r, &src.join("f2.txt"), "/data/", false).unwrap_err();
    assert!(e.to_string().contains("cannot overwrite directory"), "{e}");
    // a symlink as the destination is followed inside the container
    copy_to_container(&r, &src.join("f.txt"), "/link", false).unwrap();
    assert_eq!(read(&r.join("data/f.txt")), "f");
    // a missing host source
    assert!(copy_to_container(&r, &src.join("nope"), "/data", false).is_err());
}

#[test]
fn copy_to_container_stays_inside_the_rootfs() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let src = t.path().join("payload");
    write(&src, "pwned");
    // An absolute symlink to the host's directory, and a relative one
    // climbing out of the rootfs.
    symlink(&outside, r.join("abs")).unwrap();
    symlink("../../../../../../outside", r.join("etc/rel")).unwrap();
    fs::create_dir(r.join("outside")).unwrap();

    for dest in [
        "/abs",
        "/abs/",
        "/abs/payload",
        "/etc/rel",
        "/etc/rel/",
        "/etc/rel/x",
    ] {
        let _ = copy_to_container(&r, &src, dest, false);
        let _ = copy_to_container(&r, &src, dest, true);
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the rootfs"
    );
    // The relative link resolved inside the rootfs.
    assert_eq!(read(&r.join("outside/payload")), "pwned");
    assert_eq!(read(&r.join("outside/x")), "pwned");
}

/// A tar with `link -> <outside>` then `link/pwned`, and `../escape`.
fn evil_tar(outside: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "link", outside).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o644);
    b.append_data(&mut h, "link/pwned", &b"pwned"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn tar_into_the_container_cannot_escape_through_its_own_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let _ = copy_tar_to_container(&r, std::io::Cursor::new(evil_tar(&outside)), "/data");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the rootfs"
    );
    // The same on the host side: confined to the destination directory.
    let host = t.path().join("host");
    fs::create_dir(&host).unwrap();
    let st = CopyStat {
        path: "/x".into(),
        name: "x".into(),
        size: 0,
        mode: 0o040755,
        mtime: 0,
        link_target: String::new(),
    };
    let _ = extract_to_host(&evil_tar(&outside)[..], &st, &host, false);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the destination"
    );
    // `..` out of the destination is refused.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    {
        let name = b"../escape";
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
    }
    h.set_cksum();
    b.append(&h, &b"e"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let e = copy_tar_to_container(&r, std::io::Cursor::new(data), "/data").unwrap_err();
    assert!(e.to_string().contains("is outside of"), "{e}");
    assert!(!r.join("escape").exists());
}

#[test]
fn tar_into_the_container_needs_a_directory() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o600);
    h.set_uid(7);
    h.set_gid(8);
    b.append_data(&mut h, "new/file", &b"hi"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let e =
        copy_tar_to_container(&r, std::io::Cursor::new(data.clone()), "/etc/hostname").unwrap_err();
    assert!(e.to_string().contains("must be a directory"), "{e}");
    // Through a symlink to a directory.
    copy_tar_to_container(&r, std::io::Cursor::new(data), "/link").unwrap();
    assert_eq!(read(&r.join("data/new/file")), "hi");
    let m = fs::metadata(r.join("data/new/file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (7, 8));
    assert_eq!(fs::metadata(r.join("data/new")).unwrap().uid(), 0);
}

fn whiteout(path: &Path) {
    rustix::fs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
}

fn same_meta(from: &Path, to: &Path) {
    let m = fs::metadata(from).unwrap();
    chmod(to, m.mode() & 0o7777);
    set_mtime(to, m.mtime());
}

#[test]
fn diff_reports_what_docker_reports() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let l1 = t.path().join("l1");
    let l2 = t.path().join("l2");
    let up = t.path().join("upper");
    for f in [
        "etc/passwd",
        "etc/group",
        "bin/sh",
        "var/log/a",
        "var/keep",
        "opt/x/y",
    ] {
        write(&l1.join(f), "1");
    }
    fs::create_dir_all(l1.join("tmp")).unwrap();
    write(&l2.join("etc/hosts"), "2");
    fs::create_dir_all(l2.join("opt")).unwrap();
    whiteout(&l2.join("opt/x"));

    for d in ["etc", "bin", "var", "opt", "tmp"] {
        fs::create_dir_all(up.join(d)).unwrap();
    }
    write(&up.join("etc/passwd"), "changed");
    write(&up.join("etc/new"), "new");
    whiteout(&up.join("bin/sh"));
    rustix::fs::setxattr(
        up.join("var"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    write(&up.join("var/fresh"), "f");
    write(&up.join("var/keep"), "k");
    fs::create_dir_all(up.join("opt/x")).unwrap();
    // Directories copied up keep their lower attributes.
    same_meta(&l2.join("etc"), &up.join("etc"));
    same_meta(&l1.join("bin"), &up.join("bin"));
    same_meta(&l2.join("opt"), &up.join("opt"));
    same_meta(&l1.join("tmp"), &up.join("tmp"));

    let changes = diff(&up, &[l1, l2]).unwrap();
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "C /bin",
            "D /bin/sh",
            "C /etc",
            "A /etc/new",
            "C /etc/passwd",
            "C /opt",
            "A /opt/x",
            "C /var",
            "A /var/fresh",
            "C /var/keep",
            "D /var/log",
        ]
    );
}

#[test]
fn export_names_entries_without_dot_slash() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("rootfs");
    write(&r.join("bin/sh"), "sh");
    fs::hard_link(r.join("bin/sh"), r.join("bin/ls")).unwrap();
    symlink("bin/sh", r.join("sh")).unwrap();
    if is_root() {
        fs::create_dir(r.join("dev")).unwrap();
        rustix::fs::mknodat(
            CWD,
            r.join("dev/null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
    let mut out = Vec::new();
    export(&r, &mut out).unwrap();
    let mut a = tar::Archive::new(&out[..]);
    let mut seen = BTreeMap::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        seen.insert(name, (e.header().entry_type(), link));
    }
    assert_eq!(seen["bin/"].0, tar::EntryType::Directory);
    assert_eq!(seen["bin/ls"].0, tar::EntryType::Regular);
    assert_eq!(
        seen["bin/sh"],
        (tar::EntryType::Link, Some("bin/ls".into()))
    );
    assert_eq!(seen["sh"], (tar::EntryType::Symlink, Some("bin/sh".into())));
    if is_root() {
        assert_eq!(seen["dev/null"].0, tar::EntryType::Char);
    }
    assert!(seen
        .keys()
        .all(|k| !k.starts_with("./") && !k.starts_with('/')));
}

/// A store with a one-layer image `test/base:1` (bin/hello, etc/old).
fn store_with_base(dir: &Path) -> (Store, barge_image::store::ImageRef) {
    let store = Store::open(&dir.join("store")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin/", "etc/"] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    for (f, data) in [("bin/hello", "#!/bin/sh\n"), ("etc/old", "old")] {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, f, data.as_bytes()).unwrap();
    }
    let data = b.into_inner().unwrap();
    barge_image::import::import(
        &store,
        &data[..],
        Some("test/base:1"),
        &["ENV BASE=1".to_string()],
        None,
        "test",
        "2024-01-01T00:00:00Z",
    )
    .unwrap();
    let img = store.resolve("test/base:1").unwrap();
    (store, img)
}

#[test]
fn commit_adds_a_layer_the_next_run_unpacks() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let (store, base) = store_with_base(t.path());
    let upper = t.path().join("upper");
    write(&upper.join("newfile"), "new");
    fs::create_dir(upper.join("etc")).unwrap();
    whiteout(&upper.join("etc/old"));

    let opts = CommitOptions {
        reference: Some("test/committed:v1".into()),
        author: "me".into(),
        message: "a message".into(),
        changes: vec![r#"CMD ["/bin/hello"]"#.into(), "ENV ADDED=yes".into()],
        container_config: serde_json::json!({
            "Cmd": ["sh", "-c", "echo new > /newfile"],
            "Env": ["PATH=/bin", "BASE=1"],
            "WorkingDir": "/srv",
        }),
        container_id: "c0ffee".into(),
    };
    let id = commit(&store, &base, &upper, &opts).unwrap();
    let img = store.resolve("test/committed:v1").unwrap();
    assert_eq!(img.config_digest.to_string(), id);
    assert_eq!(img.manifest.layers().len(), 2);

    let cfg: serde_json::Value = store
        .read_json(&img.config_digest, barge_image::store::MAX_CONFIG_BYTES)
        .unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(cfg["author"], "me");
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["/bin/hello"]));
    assert_eq!(
        cfg["config"]["Env"],
        serde_json::json!(["PATH=/bin", "BASE=1", "ADDED=yes"])
    );
    assert_eq!(cfg["config"]["WorkingDir"], "/srv");
    let history = cfg["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let last = &history[1];
    assert_eq!(last["created_by"], "sh -c echo new > /newfile");
    assert_eq!(last["comment"], "a message");
    assert_eq!(last["author"], "me");

    let _lock = store.lock_shared().unwrap();
    let layers = barge_image::snapshot::unpack(&store, &img).unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(read(&layers[1].join("newfile")), "new");
    // The deletion is an overlay whiteout in the new layer.
    let st = rustix::fs::lstat(layers[1].join("etc/old")).unwrap();
    assert_eq!(
        FileType::from_raw_mode(st.st_mode),
        FileType::CharacterDevice
    );
    assert_eq!(read(&layers[0].join("etc/old")), "old");
}

#[test]
fn commit_of_an_unchanged_container_adds_no_layer() {
    needs_root!();
    let t = tempfile::tempdir().unwrap();
    let (store, base) = store_with_base(t.path());
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    let opts = CommitOptions {
        changes: vec![r#"ENTRYPOINT ["/bin/hello"]"#.into()],
        container_config: serde_json::json!({"Cmd": ["sh"]}),
        ..CommitOptions::default()
    };
    let id = commit(&store, &base, &upper, &opts).unwrap();
    let img = store.resolve(&id).unwrap();
    assert_eq!(img.manifest.layers().len(), 1);
    let cfg: serde_json::Value = store
        .read_json(&img.config_digest, barge_image::store::MAX_CONFIG_BYTES)
        .unwrap();
    assert_eq!(cfg["history"][1]["empty_layer"], true);
    // ENTRYPOINT without CMD clears the container's Cmd, as in a Dockerfile.
    assert!(cfg["config"].get("Cmd").is_none());
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/bin/hello"])
    );
    assert!(store
        .images()
        .unwrap()
        .iter()
        .any(|i| i.config_digest == img.config_digest));
    // A bad change stores nothing and says why.
    let bad = CommitOptions {
        changes: vec!["RUN true".into()],
        ..CommitOptions::default()
    };
    let e = commit(&store, &base, &upper, &bad).unwrap_err();
    assert!(e.to_string().contains("RUN is not allowed"), "{e}");
}

#[test]
fn copy_stat_gives_docker_file_modes() {
    let st = CopyStat {
        path: "/d".into(),
        name: "d".into(),
        size: 0,
        mode: 0o040755,
        mtime: 0,
        link_target: String::new(),
    };
    assert_eq!(st.go_file_mode(), (1 << 31) | 0o755);
}

#[test]
fn long_names_and_link_targets_survive_a_copy() {
    let t = tempfile::tempdir().unwrap();
    let r = rootfs(t.path());
    let deep = format!("{}/{}", "d".repeat(120), "e".repeat(200));
    write(&r.join("data").join(&deep).join("f"), "deep");
    let target = format!("/{}", "t".repeat(150));
    symlink(&target, r.join("data/longlink")).unwrap();
    let host = t.path().join("out");
    cp_out(&r, "/data/.", &host, false).unwrap();
    assert_eq!(read(&host.join(&deep).join("f")), "deep");
    assert_eq!(
        fs::read_link(host.join("longlink")).unwrap(),
        Path::new(&target)
    );
}
