//! An image's layers stacked as a root filesystem: whiteouts and opaque
//! directories of upper layers hide exactly what they should in the mounted
//! tree, and unmounting leaves nothing mounted.

use std::path::Path;
use std::process::Command;

use barge_image::store::Store;
use oci_spec::image::MediaType;
use serde_json::json;

fn barge(root: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_barge"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A layer tar of (path, Some(content) for a file | None for a dir).
fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match content {
            Some(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, path, c.as_bytes()).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Store an image made of these layer tars (bottom first) under `tag`;
/// returns the layer blobs.
fn tag_image(store: &Store, tag: &str, layers: &[Vec<u8>]) -> Vec<barge_image::store::BlobInfo> {
    let blobs: Vec<_> = layers
        .iter()
        .map(|l| store.write_blob_bytes(l).unwrap())
        .collect();
    let diff_ids: Vec<String> = blobs.iter().map(|b| b.digest.to_string()).collect();
    let descs: Vec<_> = blobs
        .iter()
        .map(|b| b.descriptor(MediaType::ImageLayer))
        .collect();
    let cfg = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
    let cfg_desc = store.write_json(&cfg, MediaType::ImageConfig).unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg_desc, "layers": descs});
    let m = store
        .write_json(&manifest, MediaType::ImageManifest)
        .unwrap();
    store.tag(tag, m).unwrap();
    blobs
}

fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                stack.push(e.path());
            } else {
                out.push(format!(
                    "{rel}={}",
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn three_layer_image_mounts_with_whiteouts_and_opaque_dirs_applied() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: mounting needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let layers = [
        layer(&[
            ("a", None),
            ("a/keep", Some("k")),
            ("a/gone", Some("g")),
            ("d", None),
            ("d/old1", Some("1")),
            ("d/sub", None),
            ("d/sub/old2", Some("2")),
            ("f1", Some("f1")),
        ]),
        // Layer 2 deletes a file and adds one.
        layer(&[("a", None), ("a/.wh.gone", Some("")), ("f2", Some("f2"))]),
        // Layer 3 replaces the directory d (opaque) and adds to a.
        layer(&[
            ("d", None),
            ("d/.wh..wh..opq", Some("")),
            ("d/new", Some("n")),
            ("a", None),
            ("a/added", Some("+")),
        ]),
    ];
    tag_image(&store, "localhost/whiteouts:1", &layers);

    let (code, out, err) = barge(root.path(), &["image", "mount", "localhost/whiteouts:1"]);
    assert_eq!(code, 0, "{err}");
    let merged = std::path::PathBuf::from(out.trim());
    let seen = listing(&merged);
    let (ucode, _, uerr) = barge(root.path(), &["image", "unmount", "localhost/whiteouts:1"]);

    assert_eq!(
        seen,
        [
            "a/",
            "a/added=+",
            "a/keep=k",
            "d/",
            "d/new=n",
            "f1=f1",
            "f2=f2"
        ],
        "merged tree"
    );
    assert_eq!(ucode, 0, "{uerr}");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !info.contains(root.path().to_str().unwrap()),
        "still mounted: {info}"
    );
    // Each layer unpacked once, under its chain id.
    assert_eq!(
        std::fs::read_dir(root.path().join("layers"))
            .unwrap()
            .count(),
        3
    );
    // A second mount reuses the unpacked layers.
    let (code, out, err) = barge(root.path(), &["image", "mount", "localhost/whiteouts:1"]);
    assert_eq!(code, 0, "{err}");
    assert!(Path::new(out.trim()).join("d/new").is_file());
    let (code, _, err) = barge(root.path(), &["image", "unmount", "localhost/whiteouts:1"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn mounted_image_keeps_its_layers_through_rmi_and_prune() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: mounting needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    tag_image(&store, "hello", &[layer(&[("hello", Some("world"))])]);
    let (code, out, err) = barge(root.path(), &["image", "mount", "hello"]);
    assert_eq!(code, 0, "{err}");
    let merged = std::path::PathBuf::from(out.trim());
    let (code, _, err) = barge(root.path(), &["image", "prune", "-a", "-f"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(merged.join("hello")).unwrap(),
        "world",
        "layer kept while mounted"
    );
    let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
}

/// A container's view: the image's layers under a writable upper dir.
/// Writes and deletions land in the upper dir; the shared layers stay as
/// they were.
#[test]
fn writable_mount_keeps_changes_in_the_upper_dir() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: mounting needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    tag_image(
        &store,
        "rw",
        &[
            layer(&[("etc", None), ("etc/motd", Some("hi"))]),
            layer(&[("bin", None), ("bin/tool", Some("x"))]),
        ],
    );
    let img = store.resolve("rw").unwrap();
    let lowers = barge_image::snapshot::unpack(&store, &img).unwrap();
    let c = root.path().join("container");
    let (upper, work, merged) = (c.join("upper"), c.join("work"), c.join("merged"));
    barge_image::snapshot::mount_rw(&lowers, &upper, &work, &merged).unwrap();
    std::fs::write(merged.join("etc/new"), "n").unwrap();
    std::fs::remove_file(merged.join("etc/motd")).unwrap();
    let motd_gone = !merged.join("etc/motd").exists();
    barge_image::snapshot::unmount(&merged).unwrap();

    assert!(motd_gone);
    assert_eq!(std::fs::read_to_string(upper.join("etc/new")).unwrap(), "n");
    assert_eq!(
        std::fs::read_to_string(lowers[0].join("etc/motd")).unwrap(),
        "hi",
        "layer untouched"
    );
    assert!(!barge_image::snapshot::is_mounted(&merged));
}

/// A big layer in an archive is unpacked while it is being stored: right
/// after `load` the layer directory is there, under its chain id, and
/// matches the blob.
#[test]
fn load_unpacks_big_layers_while_storing_them() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: unpacking owners needs root");
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let big: String = (0..3_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let l = tag_image(
        &store,
        "big",
        &[layer(&[("data", None), ("data/big", Some(&big))])],
    )
    .remove(0);
    let mut archive = Vec::new();
    barge_image::archive::save(
        &store,
        &["big"],
        barge_image::archive::ArchiveFormat::DockerArchive,
        &mut archive,
    )
    .unwrap();

    let b = tempfile::tempdir().unwrap();
    let other = Store::open(b.path()).unwrap();
    barge_image::archive::load(&other, &archive[..], &mut |_| {}).unwrap();

    let chain = l.digest.to_string(); // one layer: chain id = diff id
    assert!(other.has_layer(&chain), "layer unpacked during load");
    let diff = other.layer_diff(&chain).unwrap();
    assert_eq!(std::fs::read_to_string(diff.join("data/big")).unwrap(), big);
    assert!(other.check().unwrap().is_ok());
    // Nothing left in ingest/.
    assert_eq!(
        std::fs::read_dir(b.path().join("ingest")).unwrap().count(),
        0
    );
}
