use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;

/// A directory with the given files (`name/` makes a directory).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let p = d.path().join(name);
        if let Some(dir) = name.strip_suffix('/') {
            fs::create_dir_all(d.path().join(dir)).unwrap();
            continue;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    d
}

fn ctx_with_ignore(files: &[(&str, &str)], ignore: &str) -> (tempfile::TempDir, Context) {
    let d = tree(files);
    fs::write(d.path().join(".dockerignore"), ignore).unwrap();
    let c = Context::from_dir(d.path(), None).unwrap();
    (d, c)
}

fn ctx(files: &[(&str, &str)]) -> (tempfile::TempDir, Context) {
    let d = tree(files);
    let c = Context::from_dir(d.path(), None).unwrap();
    (d, c)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rels(sel: &[Selected]) -> Vec<&str> {
    sel.iter().map(|s| s.rel.as_str()).collect()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---------------------------------------------------------------------------
// .dockerignore

#[test]
fn dockerignore_follows_dockers_rules() {
    let ignore = "\
\u{feff}# a comment line
*.log
!keep.log
   # indented: a pattern, not a comment (Docker only skips lines starting with #)

/rooted.txt
build/
docs
**/*.tmp
!important.tmp
secret/**
!secret/public/**
vendor/*/test
a?c.txt
[xy].dat
node_modules
!node_modules/keep.js
./dot/./slash//name
cache/../tmpdir
\\#hash
**/deep
";
    let (_d, c) = ctx_with_ignore(&[("x", "")], ignore);
    let table: &[(&str, bool)] = &[
        ("app.log", true),
        ("sub/app.log", false), // `*.log` is anchored at the root
        ("keep.log", false),
        (
            "   # indented: a pattern, not a comment (Docker only skips lines starting with #)",
            false,
        ),
        (
            "# indented: a pattern, not a comment (Docker only skips lines starting with #)",
            true,
        ),
        ("rooted.txt", true),
        ("/rooted.txt", true),
        ("sub/rooted.txt", false),
        ("build", true),
        ("build/out/bin", true),
        ("builds", false),
        ("docs", true),
        ("docs/readme.md", true),
        ("x/docs", false),
        ("a.tmp", true),
        ("a/b/c.tmp", true),
        ("important.tmp", false),
        ("x/important.tmp", true),
        ("secret/key", true),
        ("secret/public/index.html", false),
        ("secret/public", true), // `secret/public/**` needs something under it
        ("vendor/lib/test", true),
        ("vendor/lib/test/file.go", true),
        ("vendor/lib/src", false),
        ("vendor/a/b/test", false),
        ("abc.txt", true),
        ("ac.txt", false),
        ("a/c.txt", false),
        ("x.dat", true),
        ("z.dat", false),
        ("node_modules/left-pad/index.js", true),
        ("node_modules/keep.js", false),
        ("dot/slash/name", true),
        ("tmpdir", true),
        ("cache", false),
        ("#hash", true),
        ("deep", true),
        ("a/b/deep", true),
        ("a/b/deep/file", true),
        ("a/deeper", false),
        (".", false),
        ("x", false),
    ];
    for (path, want) in table {
        assert_eq!(c.is_ignored(path), *want, "is_ignored({path:?})");
    }
}

#[test]
fn dockerignore_last_match_wins_and_dir_vs_dir_slash() {
    let (_d, c) = ctx_with_ignore(&[("x", "")], "!a.txt\n*.txt\n");
    assert!(
        c.is_ignored("a.txt"),
        "an exception before the pattern changes nothing"
    );
    let (_d, c) = ctx_with_ignore(&[("x", "")], "*.txt\n!a.txt\n*.txt\n");
    assert!(c.is_ignored("a.txt"));
    let (_d, c) = ctx_with_ignore(&[("x", "")], "dir/\n");
    assert!(c.is_ignored("dir") && c.is_ignored("dir/f"));
    let (_d, c) = ctx_with_ignore(&[("x", "")], "dir\n");
    assert!(c.is_ignored("dir") && c.is_ignored("dir/f"));
    let (_d, c) = ctx_with_ignore(&[("x", "")], "*\n!src\n");
    assert!(c.is_ignored("Dockerfile"));
    assert!(!c.is_ignored("src/main.rs"));
    let (_d, c) = ctx_with_ignore(&[("x", "")], "**\n");
    assert!(c.is_ignored("anything/at/all"));
    let (_d, c) = ctx_with_ignore(&[("x", "")], "a/**\n");
    assert!(c.is_ignored("a/b") && !c.is_ignored("ab"));
    let (_d, c) = ctx_with_ignore(&[("x", "")], "a/**/b\n");
    assert!(c.is_ignored("a/b") && c.is_ignored("a/x/y/b") && !c.is_ignored("a/xb"));
}

#[test]
fn dockerignore_parses_like_ignorefile_readall() {
    let got = ignore::read_patterns("\u{feff}#c\r\n  a  \r\n\n! /b/../c/ \n/\n#x\n!\n");
    assert_eq!(got, strings(&["a", "!c", "/", "!"]));
}

#[test]
fn dockerignore_rejects_bad_patterns() {
    let d = tree(&[("x", "")]);
    fs::write(d.path().join(".dockerignore"), "ok\n!\n").unwrap();
    let e = Context::from_dir(d.path(), None).unwrap_err().to_string();
    assert!(e.contains("illegal exclusion pattern: \"!\""), "{e}");
    fs::write(d.path().join(".dockerignore"), "a[\n").unwrap();
    let e = Context::from_dir(d.path(), None).unwrap_err().to_string();
    assert!(e.contains("syntax error in pattern \"a[\""), "{e}");
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let d = tree(&[
        ("Dockerfile", "FROM x"),
        (".dockerignore", "a\n"),
        ("Dockerfile.dockerignore", "b\n"),
        ("sub/build.Dockerfile", "FROM y"),
        ("sub/build.Dockerfile.dockerignore", "c\n"),
    ]);
    let c = Context::from_dir(d.path(), None).unwrap();
    assert!(!c.is_ignored("a") && c.is_ignored("b"));
    let df = d.path().join("sub/build.Dockerfile");
    let c = Context::from_dir(d.path(), Some(&df)).unwrap();
    assert!(!c.is_ignored("a") && !c.is_ignored("b") && c.is_ignored("c"));
    let other = d.path().join("sub/other.Dockerfile");
    let c = Context::from_dir(d.path(), Some(&other)).unwrap();
    assert!(c.is_ignored("a") && !c.is_ignored("b"));
}

// ---------------------------------------------------------------------------
// Dockerfile

#[test]
fn reads_the_dockerfile_even_when_ignored() {
    let (d, c) = ctx_with_ignore(&[("Dockerfile", "FROM a\n")], "Dockerfile\n");
    assert_eq!(c.read_dockerfile(None).unwrap(), "FROM a\n");
    fs::write(d.path().join("other"), "FROM b\n").unwrap();
    let abs = d.path().join("other");
    assert_eq!(c.read_dockerfile(Some(&abs)).unwrap(), "FROM b\n");
}

#[test]
fn reads_lowercase_dockerfile_and_reports_missing_one() {
    let (_d, c) = ctx(&[("dockerfile", "FROM low\n")]);
    assert_eq!(c.read_dockerfile(None).unwrap(), "FROM low\n");
    let (d, c) = ctx(&[("x", "")]);
    let e = c.read_dockerfile(None).unwrap_err().to_string();
    let want = format!(
        "failed to read dockerfile: open {}: no such file or directory",
        fs::canonicalize(d.path())
            .unwrap()
            .join("Dockerfile")
            .display()
    );
    assert_eq!(e, want);
}

#[test]
fn refuses_a_dockerfile_over_10_mib() {
    let (d, c) = ctx(&[("x", "")]);
    let big = vec![b'#'; (MAX_DOCKERFILE_BYTES + 1) as usize];
    fs::write(d.path().join("Dockerfile"), big).unwrap();
    let e = c.read_dockerfile(None).unwrap_err().to_string();
    assert!(e.contains("larger than 10485760 bytes"), "{e}");
}

#[test]
fn missing_context_dir_is_dockers_error() {
    let e = Context::from_dir(Path::new("/nonexistent/ctx"), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "unable to prepare context: path \"/nonexistent/ctx\" not found"
    );
}

// ---------------------------------------------------------------------------
// select

#[test]
fn selects_paths_and_wildcards_in_order() {
    let (_d, c) = ctx(&[
        ("b.txt", "b"),
        ("a.txt", "a"),
        ("c.md", ""),
        ("src/main.go", ""),
        ("src/util.go", ""),
        ("src/sub/deep.go", ""),
        ("x1", ""),
        ("x2", ""),
        ("xa", ""),
        ("dir/", ""),
    ]);
    let s = c.select(&strings(&["*.txt"])).unwrap();
    assert_eq!(rels(&s), ["a.txt", "b.txt"]);
    assert!(!s[0].is_dir);
    let s = c.select(&strings(&["/src/*.go", "c.md"])).unwrap();
    assert_eq!(rels(&s), ["src/main.go", "src/util.go", "c.md"]);
    let s = c.select(&strings(&["x?"])).unwrap();
    assert_eq!(rels(&s), ["x1", "x2", "xa"]);
    let s = c.select(&strings(&["x[0-9]"])).unwrap();
    assert_eq!(rels(&s), ["x1", "x2"]);
    // `**` is `*`: one level, as filepath.Match reads it.
    let s = c.select(&strings(&["**/*.go"])).unwrap();
    assert_eq!(rels(&s), ["src/main.go", "src/util.go"]);
    // A directory matched is a root; it is not descended into.
    let s = c.select(&strings(&["s*"])).unwrap();
    assert_eq!(rels(&s), ["src"]);
    assert!(s[0].is_dir);
    let s = c.select(&strings(&[".", "./src/../dir/"])).unwrap();
    assert_eq!(rels(&s), [".", "dir"]);
    assert_eq!(s[0].path, c.root());
    assert_eq!(s[1].path, c.root().join("dir"));
}

#[test]
fn select_refuses_paths_outside_the_context() {
    let (_d, c) = ctx(&[("a", "")]);
    for src in ["../x", "a/../../x", "/../etc/passwd", ".."] {
        let e = c.select(&strings(&[src])).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("COPY failed: forbidden path outside the build context: {src}")
        );
    }
}

#[test]
fn select_reports_missing_sources_as_buildkit_does() {
    let (_d, c) = ctx(&[("a", "")]);
    let e = c.select(&strings(&["nope"])).unwrap_err().to_string();
    assert_eq!(e, "failed to compute cache key: \"/nope\": not found");
    let e = c.select(&strings(&["/x/*.go"])).unwrap_err().to_string();
    assert_eq!(e, "failed to compute cache key: \"/x/*.go\": not found");
    let e = c.select(&strings(&["*.none"])).unwrap_err().to_string();
    assert_eq!(e, "failed to compute cache key: \"/*.none\": not found");
    let e = c.select(&strings(&["a["])).unwrap_err().to_string();
    assert!(e.contains("syntax error in pattern"), "{e}");
}

#[test]
fn ignored_paths_are_invisible_to_select() {
    let (_d, c) = ctx_with_ignore(
        &[
            ("secret.key", ""),
            ("app.log", ""),
            ("keep.log", ""),
            ("build/out", ""),
            ("build/keep/me", ""),
            ("private/x", ""),
        ],
        "*.key\n*.log\n!keep.log\nbuild\n!build/keep\nprivate\n",
    );
    let e = c.select(&strings(&["secret.key"])).unwrap_err().to_string();
    assert_eq!(e, "failed to compute cache key: \"/secret.key\": not found");
    assert_eq!(rels(&c.select(&strings(&["*.log"])).unwrap()), ["keep.log"]);
    assert!(c.select(&strings(&["private"])).is_err());
    assert!(c.select(&strings(&["build/out"])).is_err());
    // An excluded directory with a re-included file inside exists.
    let s = c.select(&strings(&["build"])).unwrap();
    let walked: Vec<String> = c
        .walk(&s[0])
        .unwrap()
        .iter()
        .map(|e| paths::show(&e.sub))
        .collect();
    assert_eq!(walked, ["", "keep", "keep/me"]);
}

#[test]
fn select_follows_symlinks_inside_the_context_only() {
    let (d, c) = ctx(&[("real/f", "data")]);
    std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", d.path().join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/passwd", d.path().join("up")).unwrap();
    let s = c.select(&strings(&["link/f"])).unwrap();
    assert_eq!(s[0].rel, "link/f");
    assert_eq!(s[0].path, c.root().join("real/f"));
    let s = c.select(&strings(&["link"])).unwrap();
    assert!(s[0].is_dir);
    // `/etc` and `../..` resolve inside the context, where there is nothing.
    assert!(c.select(&strings(&["abs/passwd"])).is_err());
    assert!(c.select(&strings(&["up"])).is_err());
}

// ---------------------------------------------------------------------------
// hash

fn set_mtime(p: &Path, secs: u64) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn hash_is_stable_and_ignores_mtimes() {
    let files = [("src/a", "alpha"), ("src/b/c", "gamma"), ("top", "t")];
    let (d1, c1) = ctx(&files);
    let (d2, c2) = ctx(&files);
    set_mtime(&d2.path().join("src/a"), 12345);
    set_mtime(&d1.path().join("top"), 1);
    let srcs = strings(&["src", "top"]);
    let h1 = c1.hash(&c1.select(&srcs).unwrap()).unwrap();
    assert_eq!(h1.len(), 64);
    assert_eq!(h1, c1.hash(&c1.select(&srcs).unwrap()).unwrap());
    assert_eq!(h1, c2.hash(&c2.select(&srcs).unwrap()).unwrap());
}

#[test]
fn hash_changes_with_content_mode_name_and_symlink_target() {
    let files = [("src/a", "alpha"), ("src/b", "beta")];
    let hash = |c: &Context| c.hash(&c.select(&strings(&["src"])).unwrap()).unwrap();
    let (_d, c) = ctx(&files);
    let base = hash(&c);

    let (d, c) = ctx(&files);
    fs::write(d.path().join("src/a"), "alphA").unwrap();
    assert_ne!(hash(&c), base, "content");

    let (d, c) = ctx(&files);
    fs::set_permissions(d.path().join("src/a"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_ne!(hash(&c), base, "mode");

    let (d, c) = ctx(&files);
    fs::rename(d.path().join("src/b"), d.path().join("src/c")).unwrap();
    assert_ne!(hash(&c), base, "rename");

    let (d, c) = ctx(&files);
    std::os::unix::fs::symlink("a", d.path().join("src/l")).unwrap();
    let with_link = hash(&c);
    fs::remove_file(d.path().join("src/l")).unwrap();
    std::os::unix::fs::symlink("b", d.path().join("src/l")).unwrap();
    assert_ne!(hash(&c), with_link, "symlink target");

    // The name a file is selected as is where it lands: it counts.
    let (_d, c) = ctx(&[("x", "same"), ("y", "same")]);
    let hx = c.hash(&c.select(&strings(&["x"])).unwrap()).unwrap();
    let hy = c.hash(&c.select(&strings(&["y"])).unwrap()).unwrap();
    assert_ne!(hx, hy);
}

#[test]
fn hash_leaves_ignored_files_out() {
    let (d, c) = ctx_with_ignore(&[("src/a", "alpha"), ("src/x.log", "1")], "**/*.log\n");
    let h = |c: &Context| c.hash(&c.select(&strings(&["src"])).unwrap()).unwrap();
    let before = h(&c);
    fs::write(d.path().join("src/x.log"), "2").unwrap();
    fs::write(d.path().join("src/y.log"), "new").unwrap();
    assert_eq!(h(&c), before);
}

// ---------------------------------------------------------------------------
// copy_into

struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    fn new() -> Rootfs {
        Rootfs {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn at(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }
    fn read(&self, p: &str) -> String {
        fs::read_to_string(self.at(p)).unwrap()
    }
}

fn copy(
    c: &Context,
    srcs: &[&str],
    rootfs: &Rootfs,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let sel = c.select(&strings(srcs))?;
    copy_into(c, &sel, rootfs.path(), dest, opts)
}

#[test]
fn copy_semantics_table() {
    let (_d, c) = ctx(&[
        ("f.txt", "file"),
        ("g.txt", "gee"),
        ("dir/a", "A"),
        ("dir/sub/b", "B"),
    ]);
    let o = CopyOptions::default();
    // (sources, dest, files expected in the rootfs with their contents)
    type Case<'a> = (&'a [&'a str], &'a str, &'a [(&'a str, &'a str)]);
    let table: &[Case] = &[
        (&["f.txt"], "/new", &[("/new", "file")]),
        (&["f.txt"], "/d/", &[("/d/f.txt", "file")]),
        (&["f.txt"], "/deep/er/name", &[("/deep/er/name", "file")]),
        (&["dir"], "/app", &[("/app/a", "A"), ("/app/sub/b", "B")]),
        (&["dir/"], "/app/", &[("/app/a", "A"), ("/app/sub/b", "B")]),
        (
            &["f.txt", "g.txt"],
            "/m/",
            &[("/m/f.txt", "file"), ("/m/g.txt", "gee")],
        ),
        (
            &["*.txt"],
            "/w/",
            &[("/w/f.txt", "file"), ("/w/g.txt", "gee")],
        ),
        (
            &["f.txt", "dir"],
            "/mix/",
            &[("/mix/f.txt", "file"), ("/mix/a", "A")],
        ),
        (
            &["."],
            "/all",
            &[("/all/f.txt", "file"), ("/all/dir/sub/b", "B")],
        ),
    ];
    for (srcs, dest, want) in table {
        let r = Rootfs::new();
        copy(&c, srcs, &r, dest, &o).unwrap();
        for (p, content) in *want {
            assert_eq!(&r.read(p), content, "{srcs:?} -> {dest}: {p}");
        }
    }
    // A file onto an existing directory (no slash) goes inside it.
    let r = Rootfs::new();
    fs::create_dir(r.at("/exists")).unwrap();
    copy(&c, &["f.txt"], &r, "/exists", &o).unwrap();
    assert_eq!(r.read("/exists/f.txt"), "file");
    // The hint makes a directory of a missing destination.
    let r = Rootfs::new();
    let hinted = CopyOptions {
        dest_is_dir_hint: true,
        ..CopyOptions::default()
    };
    copy(&c, &["f.txt"], &r, "/h", &hinted).unwrap();
    assert_eq!(r.read("/h/f.txt"), "file");
    // An existing file is replaced.
    let r = Rootfs::new();
    fs::write(r.at("/old"), "old").unwrap();
    copy(&c, &["f.txt"], &r, "/old", &o).unwrap();
    assert_eq!(r.read("/old"), "file");
}

#[test]
fn multiple_sources_need_a_directory_destination() {
    let (_d, c) = ctx(&[("f.txt", ""), ("g.txt", "")]);
    let r = Rootfs::new();
    let want = "When using COPY with more than one source file, the destination must be a directory and end with a /";
    let e = copy(&c, &["f.txt", "g.txt"], &r, "/dst", &CopyOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), want);
    let e = copy(&c, &["*.txt"], &r, "/dst", &CopyOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), want);
    let add = CopyOptions {
        extract_archives: true,
        ..CopyOptions::default()
    };
    let e = copy(&c, &["*.txt"], &r, "/dst", &add)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("When using ADD"), "{e}");
}

#[test]
fn copy_resets_owners_keeps_modes_and_times_and_applies_chmod_chown() {
    let (d, c) = ctx(&[("dir/x", "x"), ("dir/sub/y", "y"), ("f", "f")]);
    fs::set_permissions(d.path().join("dir/x"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(d.path().join("dir/sub"), fs::Permissions::from_mode(0o711)).unwrap();
    set_mtime(&d.path().join("dir/x"), 1_000_000);
    std::os::unix::fs::symlink("x", d.path().join("dir/link")).unwrap();

    let r = Rootfs::new();
    copy(&c, &["dir"], &r, "/a/b", &CopyOptions::default()).unwrap();
    let x = fs::metadata(r.at("/a/b/x")).unwrap();
    assert_eq!(x.mode() & 0o7777, 0o750);
    assert_eq!(x.mtime(), 1_000_000);
    assert_eq!(
        fs::metadata(r.at("/a/b/sub")).unwrap().mode() & 0o7777,
        0o711
    );
    assert_eq!(fs::read_link(r.at("/a/b/link")).unwrap(), Path::new("x"));
    assert_eq!(fs::metadata(r.at("/a")).unwrap().mode() & 0o7777, 0o755);
    if is_root() {
        assert_eq!((x.uid(), x.gid()), (0, 0));
    }

    let r = Rootfs::new();
    let o = CopyOptions {
        chown: Some((1234, 5678)),
        chmod: Some(0o640),
        ..CopyOptions::default()
    };
    if !is_root() {
        return;
    }
    copy(&c, &["dir", "f"], &r, "/p/q/", &o).unwrap();
    for p in ["/p/q/x", "/p/q/sub/y", "/p/q/f"] {
        let m = fs::metadata(r.at(p)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1234, 5678, 0o640),
            "{p}"
        );
    }
    let sub = fs::metadata(r.at("/p/q/sub")).unwrap();
    assert_eq!((sub.uid(), sub.mode() & 0o7777), (1234, 0o640));
    let link = fs::symlink_metadata(r.at("/p/q/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (1234, 5678));
    // Directories created for the destination: BuildKit's MkdirAll gives
    // them to the --chown user, mode 0755.
    for p in ["/p", "/p/q"] {
        let m = fs::metadata(r.at(p)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1234, 5678, 0o755),
            "{p}"
        );
    }
}

#[test]
fn copy_skips_ignored_files() {
    let (_d, c) = ctx_with_ignore(
        &[
            ("src/a", "a"),
            ("src/a.log", "log"),
            ("src/tmp/t", "t"),
            ("src/tmp/keep", "k"),
        ],
        "**/*.log\nsrc/tmp\n!src/tmp/keep\n",
    );
    let r = Rootfs::new();
    copy(&c, &["src"], &r, "/s", &CopyOptions::default()).unwrap();
    assert!(r.at("/s/a").exists());
    assert!(!r.at("/s/a.log").exists());
    assert!(!r.at("/s/tmp/t").exists());
    assert_eq!(r.read("/s/tmp/keep"), "k");
}

#[test]
fn never_writes_through_rootfs_symlinks_to_the_host() {
    let (_d, c) = ctx(&[
        ("passwd", "evil"),
        ("etcdir/passwd", "evil2"),
        ("lib/x", "x"),
    ]);
    let host = tempfile::tempdir().unwrap();
    let r = Rootfs::new();
    // The image's /etc points at a host path; /lib at something relative
    // climbing out.
    std::os::unix::fs::symlink(host.path(), r.at("/etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", r.at("/up")).unwrap();
    copy(&c, &["passwd"], &r, "/etc/passwd", &CopyOptions::default()).unwrap();
    copy(&c, &["etcdir"], &r, "/etc/", &CopyOptions::default()).unwrap();
    copy(&c, &["passwd"], &r, "/up/escaped", &CopyOptions::default()).unwrap();
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        0,
        "host dir written"
    );
    // The symlink was followed inside the root instead.
    let inside = r.at(host.path().to_str().unwrap());
    assert_eq!(fs::read_to_string(inside.join("passwd")).unwrap(), "evil2");
    assert_eq!(r.read("/escaped"), "evil");
    // A symlink below the destination where a directory is copied: an
    // error, as BuildKit's, never followed.
    fs::create_dir(r.at("/app")).unwrap();
    std::os::unix::fs::symlink(host.path(), r.at("/app/lib")).unwrap();
    let e = copy(&c, &["."], &r, "/app", &CopyOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "cannot copy to non-directory: /app/lib");
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        0,
        "host dir written"
    );
}

#[test]
fn copying_a_file_over_a_directory_or_a_dir_over_a_file_fails() {
    let (_d, c) = ctx(&[("f", "x"), ("d/f", "y")]);
    let r = Rootfs::new();
    fs::create_dir_all(r.at("/t/f/inner")).unwrap();
    let e = copy(&c, &["f"], &r, "/t/", &CopyOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "cannot replace directory /t/f with a file");
    fs::write(r.at("/file"), "").unwrap();
    let e = copy(&c, &["d"], &r, "/file", &CopyOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "cannot copy to non-directory: /file");
}

// ---------------------------------------------------------------------------
// ADD archives

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o640);
        h.set_uid(42);
        h.set_gid(43);
        h.set_mtime(7);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn add_extracts_local_tar_gz_zstd_and_plain_tar() {
    let inner = tar_of(&[("top.txt", "top"), ("dir/in.txt", "in")]);
    let (d, c) = ctx(&[("x", "")]);
    fs::write(d.path().join("a.tar"), &inner).unwrap();
    fs::write(d.path().join("b.tgz"), gzip(&inner)).unwrap();
    fs::write(
        d.path().join("c.tar.zst"),
        zstd::encode_all(&inner[..], 3).unwrap(),
    )
    .unwrap();
    fs::write(d.path().join("plain.gz"), gzip(b"not a tar")).unwrap();
    let add = CopyOptions {
        extract_archives: true,
        ..CopyOptions::default()
    };
    for (src, dest) in [("a.tar", "/a"), ("b.tgz", "/b/"), ("c.tar.zst", "/c")] {
        let r = Rootfs::new();
        copy(&c, &[src], &r, dest, &add).unwrap();
        assert_eq!(r.read(&format!("{dest}/top.txt")), "top", "{src}");
        assert_eq!(r.read(&format!("{dest}/dir/in.txt")), "in", "{src}");
        let m = fs::metadata(r.at(&format!("{dest}/top.txt"))).unwrap();
        assert_eq!(m.mode() & 0o777, 0o640);
        if is_root() {
            assert_eq!(
                (m.uid(), m.gid()),
                (42, 43),
                "ADD keeps the archive's owners"
            );
        }
    }
    // Not an archive (gzip of text): copied as it is.
    let r = Rootfs::new();
    copy(&c, &["plain.gz"], &r, "/p/", &add).unwrap();
    assert!(r.at("/p/plain.gz").is_file());
    // COPY never extracts.
    let r = Rootfs::new();
    copy(&c, &["b.tgz"], &r, "/b/", &CopyOptions::default()).unwrap();
    assert!(r.at("/b/b.tgz").is_file());
    // --chown applies to what the archive holds.
    if is_root() {
        let r = Rootfs::new();
        let o = CopyOptions {
            chown: Some((7, 8)),
            ..add.clone()
        };
        copy(&c, &["b.tgz"], &r, "/o", &o).unwrap();
        for p in ["/o/top.txt", "/o/dir/in.txt"] {
            let m = fs::metadata(r.at(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (7, 8), "{p}");
        }
    }
}

#[test]
fn add_refuses_tar_bz2_it_cannot_read() {
    let (d, c) = ctx(&[("x", "")]);
    fs::write(d.path().join("a.tar.bz2"), b"BZh91AY&SY....").unwrap();
    fs::write(d.path().join("data.bz2"), b"BZh91AY&SY....").unwrap();
    let add = CopyOptions {
        extract_archives: true,
        ..CopyOptions::default()
    };
    let r = Rootfs::new();
    let e = copy(&c, &["a.tar.bz2"], &r, "/", &add)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bzip2-compressed archives are not supported"),
        "{e}"
    );
    copy(&c, &["data.bz2"], &r, "/", &add).unwrap();
    assert!(r.at("/data.bz2").is_file());
}

// ---------------------------------------------------------------------------
// from_tar

/// A tar entry written byte for byte, whatever its name says.
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    link: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn from_tar_extracts_a_gzip_context_and_cleans_up() {
    let t = tar_of(&[
        ("Dockerfile", "FROM tar\n"),
        ("src/a", "A"),
        (".dockerignore", "*.log\n"),
        ("x.log", ""),
    ]);
    let parent = tempfile::tempdir().unwrap();
    let c = Context::from_tar(&gzip(&t)[..], parent.path()).unwrap();
    let root = c.root().to_path_buf();
    assert!(root.starts_with(fs::canonicalize(parent.path()).unwrap()));
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    assert_eq!(c.read_dockerfile(None).unwrap(), "FROM tar\n");
    assert_eq!(
        c.read_dockerfile(Some(Path::new("/Dockerfile"))).unwrap(),
        "FROM tar\n"
    );
    assert!(c.is_ignored("x.log"));
    assert_eq!(rels(&c.select(&strings(&["src/a"])).unwrap()), ["src/a"]);
    drop(c);
    assert!(!root.exists(), "temporary context removed on drop");
}

#[test]
fn from_tar_contains_malicious_entries() {
    let outside = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().as_bytes().to_vec();

    // `../x` is refused.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"../x", tar::EntryType::Regular, b"pwn", b"");
    let e = Context::from_tar(&b.into_inner().unwrap()[..], parent.path()).unwrap_err();
    assert!(e.to_string().contains("unsafe path"), "{e}");

    // A symlink to a host directory, then a file through it: refused or
    // kept inside, never written on the host.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"evil", tar::EntryType::Symlink, b"", &target);
    raw_entry(&mut b, b"evil/pwn", tar::EntryType::Regular, b"pwn", b"");
    if let Ok(c) = Context::from_tar(&b.into_inner().unwrap()[..], parent.path()) {
        assert!(c
            .root()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("pwn")
            .is_file());
    }
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "wrote outside"
    );

    // Absolute names and symlinks climbing out resolve inside the context.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"/abs", tar::EntryType::Regular, b"abs", b"");
    raw_entry(
        &mut b,
        b"up",
        tar::EntryType::Symlink,
        b"",
        b"../../../../../../..",
    );
    raw_entry(&mut b, b"up/pwn2", tar::EntryType::Regular, b"pwn", b"");
    raw_entry(&mut b, b"slash", tar::EntryType::Symlink, b"", b"/");
    raw_entry(&mut b, b"slash/pwn3", tar::EntryType::Regular, b"pwn", b"");
    raw_entry(
        &mut b,
        b"Dockerfile",
        tar::EntryType::Symlink,
        b"",
        b"/etc/hostname",
    );
    let c = Context::from_tar(&b.into_inner().unwrap()[..], parent.path()).unwrap();
    assert_eq!(fs::read_to_string(c.root().join("abs")).unwrap(), "abs");
    assert!(c.root().join("pwn2").is_file());
    assert!(c.root().join("pwn3").is_file());
    // The Dockerfile symlink resolves inside the context: not the host's.
    let e = c.read_dockerfile(None).unwrap_err().to_string();
    assert!(e.contains("no such file or directory"), "{e}");
    // Selecting through the symlinks stays inside as well.
    let s = c.select(&strings(&["up/pwn2", "slash"])).unwrap();
    assert_eq!(s[0].path, c.root().join("pwn2"));
    assert_eq!(s[1].path, c.root());

    // Device nodes are refused.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"dev", tar::EntryType::Char, b"", b"");
    let e = Context::from_tar(&b.into_inner().unwrap()[..], parent.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unable to prepare context: entry 'dev' of the context tar is a device node, which a build context may not hold"
    );
    // Nothing left behind by the failed extractions.
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 1);
}

#[test]
fn from_tar_refuses_bzip2_and_garbage() {
    let parent = tempfile::tempdir().unwrap();
    let e = Context::from_tar(&b"BZh91AY&SY"[..], parent.path()).unwrap_err();
    assert!(e.to_string().contains("bzip2-compressed"), "{e}");
    let e = Context::from_tar(&[7u8; 1024][..], parent.path()).unwrap_err();
    assert!(
        e.to_string().starts_with("unable to prepare context"),
        "{e}"
    );
}

#[test]
fn from_tar_refuses_more_than_1_gib() {
    let parent = tempfile::tempdir().unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(MAX_TAR_BYTES + 1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let e = Context::from_tar(&h.as_bytes()[..], parent.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unable to prepare context: the context tar holds more than 1073741824 bytes (at entry 'huge')"
    );
}

#[test]
fn a_rootfs_source_has_no_dockerignore_and_resolves_inside() {
    let d = tree(&[(".dockerignore", "*\n"), ("usr/lib/x", "x")]);
    std::os::unix::fs::symlink("/usr/lib", d.path().join("lib")).unwrap();
    let c = Context::from_rootfs(d.path()).unwrap();
    assert!(!c.is_ignored("usr/lib/x"));
    let s = c.select(&strings(&["/lib/x"])).unwrap();
    assert_eq!(s[0].path, c.root().join("usr/lib/x"));
}
