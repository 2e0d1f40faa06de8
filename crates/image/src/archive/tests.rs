//! Tests of save/load: round trips, podman and skopeo interop (with a
//! private podman storage in a temp dir, vfs driver), bad input, and
//! concurrent loads.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use oci_spec::image::MediaType;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::store::{Store, OCI_CONFIG, OCI_MANIFEST};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A layer tar of regular files `(path, mode, content)` and symlinks (content `->target`).
fn layer_tar(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, mode, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if name.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(*mode);
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, name, &[][..]).unwrap();
        } else if let Some(t) = content.strip_prefix(b"->") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, name, std::str::from_utf8(t).unwrap())
                .unwrap();
        } else {
            h.set_mode(*mode);
            h.set_size(content.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, name, *content).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// A tar of whole files (the archive itself), names written raw.
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let n = name.as_bytes();
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Builds and tags a 2-layer image: layer 1 stored uncompressed, layer 2
/// gzip-compressed (so saving a docker-archive must decompress it).
fn make_image(store: &Store, tag: &str, salt: &str) -> Digest {
    let l1 = layer_tar(&[
        ("etc/", 0o755, b""),
        ("etc/hostname", 0o644, format!("barge-{salt}\n").as_bytes()),
        ("bin/", 0o755, b""),
        ("bin/tool", 0o755, &vec![7u8; 300_000]),
    ]);
    let l2 = layer_tar(&[
        ("etc/motd", 0o600, format!("hello {salt}\n").as_bytes()),
        ("bin/sh", 0o777, b"->tool"),
    ]);
    let b1 = store.write_blob_bytes(&l1).unwrap();
    let b2 = store.write_blob_bytes(&gzip(&l2)).unwrap();
    let config = json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Labels": {"salt": salt}},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&l1)), format!("sha256:{}", sha(&l2))]},
        "history": [{"created_by": "layer 1"}, {"created_by": "layer 2"}],
    });
    let cfg = store
        .write_blob_bytes(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg.digest.to_string(), "size": cfg.size},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": b1.digest.to_string(), "size": b1.size},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": b2.digest.to_string(), "size": b2.size},
        ],
    });
    let m = store
        .write_blob_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    store
        .tag(tag, m.descriptor(MediaType::ImageManifest))
        .unwrap();
    cfg.digest
}

/// Sorted `path mode uid:gid sha256` of the regular files and symlinks of a layer tar.
fn listing(r: impl Read) -> Vec<String> {
    let mut a = tar::Archive::new(r);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let p = p.trim_start_matches("./").trim_end_matches('/').to_string();
        let h = e.header().clone();
        let what = match h.entry_type() {
            tar::EntryType::Regular => {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                sha(&d)
            }
            tar::EntryType::Symlink => format!(
                "-> {}",
                String::from_utf8_lossy(&e.link_name_bytes().unwrap())
            ),
            _ => continue,
        };
        let mode = if h.entry_type().is_symlink() {
            0
        } else {
            h.mode().unwrap() & 0o7777
        };
        out.push(format!(
            "{p} {mode:o} {}:{} {what}",
            h.uid().unwrap(),
            h.gid().unwrap()
        ));
    }
    out.sort();
    out
}

/// The listing of each layer of an image in the store.
fn image_listing(store: &Store, r: &str) -> Vec<Vec<String>> {
    let img = store.resolve(r).unwrap();
    img.manifest
        .layers()
        .iter()
        .map(|l| {
            let f = store
                .open_blob(&Digest::try_from(l.digest()).unwrap())
                .unwrap();
            listing(crate::layer::decompressed(f).unwrap())
        })
        .collect()
}

fn refs(store: &Store) -> Vec<(Vec<String>, Digest)> {
    let mut v: Vec<_> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|i| {
            let mut r = i.refs;
            r.sort();
            (r, i.config_digest)
        })
        .collect();
    v.sort();
    v
}

fn save_vec(store: &Store, images: &[&str], f: ArchiveFormat) -> Vec<u8> {
    let mut out = Vec::new();
    save(store, images, f, &mut out).unwrap();
    out
}

fn load_ok(store: &Store, data: &[u8]) -> LoadReport {
    let mut lines = Vec::new();
    let r = load(store, data, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("Loaded image")),
        "{lines:?}"
    );
    r
}

#[test]
fn archive_round_trip_keeps_image_id_and_layers() {
    let d1 = tmp();
    let s1 = Store::open(d1.path()).unwrap();
    let id = make_image(&s1, "localhost/rt:1", "rt");
    s1.tag(
        "example.com/team/rt:2",
        s1.resolve("localhost/rt:1").unwrap().target,
    )
    .unwrap();
    let want = image_listing(&s1, "localhost/rt:1");
    for format in [ArchiveFormat::DockerArchive, ArchiveFormat::OciArchive] {
        let data = save_vec(&s1, &["localhost/rt:1", &id.to_string()], format);
        // Plain, gzip and zstd as a whole.
        let zst = zstd::encode_all(&data[..], 1).unwrap();
        for input in [data.clone(), gzip(&data), zst] {
            let d2 = tmp();
            let s2 = Store::open(d2.path()).unwrap();
            let rep = load_ok(&s2, &input);
            assert_eq!(rep.images.len(), 1, "{format:?}: {rep:?}");
            let (mut tags, got) = rep.images[0].clone();
            tags.sort();
            assert_eq!(got, id, "{format:?}");
            assert_eq!(
                tags,
                vec![
                    "example.com/team/rt:2".to_string(),
                    "localhost/rt:1".to_string()
                ],
                "{format:?}"
            );
            assert_eq!(s2.resolve("localhost/rt:1").unwrap().config_digest, id);
            assert_eq!(
                s2.resolve("example.com/team/rt:2").unwrap().config_digest,
                id
            );
            assert_eq!(image_listing(&s2, "localhost/rt:1"), want, "{format:?}");
            let c = s2.check().unwrap();
            assert!(c.is_ok(), "{format:?}: {:?}", c.problems);
            // Loading the same archive twice is fine.
            load_ok(&s2, &data);
            assert_eq!(refs(&s2).len(), 1);
        }
        // A docker-archive has uncompressed layers whose digests are the diff ids.
        if format == ArchiveFormat::DockerArchive {
            let d2 = tmp();
            let s2 = Store::open(d2.path()).unwrap();
            load_ok(&s2, &data);
            let m = s2.resolve("localhost/rt:1").unwrap().manifest;
            let cfg = s2.read_config_info(&id).unwrap();
            for (l, d) in m.layers().iter().zip(&cfg.rootfs.diff_ids) {
                assert_eq!(l.digest().to_string(), *d);
                assert_eq!(l.media_type().to_string(), OCI_LAYER_TAR);
            }
            // The archive is what docker expects.
            let mut a = tar::Archive::new(&data[..]);
            let names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
            assert!(names.contains(&"repositories".to_string()), "{names:?}");
            assert!(names.contains(&format!("{}.json", id.hex())), "{names:?}");
        }
    }
}

#[test]
fn archive_save_unknown_image_fails_cleanly() {
    let d = tmp();
    let s = Store::open(d.path()).unwrap();
    let mut out = Vec::new();
    let e = save(&s, &["nope:1"], ArchiveFormat::DockerArchive, &mut out).unwrap_err();
    assert!(e.to_string().contains("no such image"), "{e}");
    assert!(out.is_empty());
}

fn assert_load_fails(store: &Store, data: &[u8], want: &str) {
    let before = refs(store);
    let e = load(store, data, &mut |_| {}).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(want), "wanted {want:?} in: {msg}");
    assert!(!msg.contains('\n'), "one-line message: {msg}");
    assert_eq!(
        refs(store),
        before,
        "a failed load changed the tags ({msg})"
    );
}

#[test]
fn archive_bad_input_is_a_clear_error_and_tags_nothing() {
    let d = tmp();
    let s = Store::open(d.path()).unwrap();
    make_image(&s, "localhost/keep:1", "keep");

    // Not a tar.
    let junk: Vec<u8> = b"this is certainly not a tar archive\n".repeat(100);
    assert_load_fails(&s, &junk, "the input is not a tar archive");
    assert_load_fails(&s, b"", "the input is not a tar archive");
    let p = d.path().join("x.tar");
    fs::write(&p, &junk).unwrap();
    let e = load_file(&s, &p, &mut |_| {}).unwrap_err();
    assert_eq!(
        e.to_string().split(" (").next().unwrap(),
        format!("{} is not a tar archive", p.display())
    );

    // A good archive of a new image, to damage.
    let src = tmp();
    let ss = Store::open(src.path()).unwrap();
    make_image(&ss, "localhost/new:1", "new");
    let good = save_vec(&ss, &["localhost/new:1"], ArchiveFormat::DockerArchive);

    // Truncated gzip, cut in the middle and just before the trailer.
    let gz = gzip(&good);
    assert_load_fails(&s, &gz[..gz.len() / 2], "truncated gzip stream");
    assert_load_fails(&s, &gz[..gz.len() - 4], "gzip stream");
    let zst = zstd::encode_all(&good[..], 1).unwrap();
    assert_load_fails(&s, &zst[..zst.len() / 2], "truncated zstd stream");
    // A plain tar cut inside a layer.
    assert_load_fails(&s, &good[..good.len() / 2], "truncated tar stream");

    // manifest.json naming a layer that is not there.
    let layer = layer_tar(&[("a", 0o644, b"a")]);
    let diff = format!("sha256:{}", sha(&layer));
    let cfg = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    }))
    .unwrap();
    let cfg_name = format!("{}.json", sha(&cfg));
    let manifest = |layer_path: &str| {
        serde_json::to_vec(
            &json!([{"Config": cfg_name, "RepoTags": ["bad:1"], "Layers": [layer_path]}]),
        )
        .unwrap()
    };
    let m = manifest("abc/layer.tar");
    let arch = tar_of(&[(&cfg_name, &cfg), ("manifest.json", &m)]);
    assert_load_fails(
        &s,
        &arch,
        "manifest.json lists layer abc/layer.tar which is not in the archive",
    );
    // A layer whose content is not the config's diff id.
    let other = layer_tar(&[("a", 0o644, b"b")]);
    let arch = tar_of(&[
        ("manifest.json", &m),
        ("abc/layer.tar", &other),
        (&cfg_name, &cfg),
    ]);
    assert_load_fails(&s, &arch, "digest mismatch for layer abc/layer.tar");
    // The right layer loads (so the failures above are about the damage).
    let arch = tar_of(&[
        ("manifest.json", &m),
        ("abc/layer.tar", &layer),
        (&cfg_name, &cfg),
    ]);
    let before = refs(&s).len();
    load_ok(&s, &arch);
    assert_eq!(refs(&s).len(), before + 1);
    s.untag("bad:1").unwrap();

    // Path tricks.
    let arch = tar_of(&[("../evil", b"x"), ("manifest.json", &m)]);
    assert_load_fails(&s, &arch, "refusing entry \"../evil\"");
    let arch = tar_of(&[("/etc/evil", b"x"), ("manifest.json", &m)]);
    assert_load_fails(&s, &arch, "absolute path");
    let m2 = manifest("../abc/layer.tar");
    let arch = tar_of(&[(&cfg_name, &cfg), ("manifest.json", &m2)]);
    assert_load_fails(&s, &arch, "'..' in the path");

    // oci-archive: a blob whose content does not match its name.
    let oci = |blobs: &[(&str, &[u8])], index: &[u8]| {
        let mut e: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), index.to_vec()),
        ];
        for (h, data) in blobs {
            e.push((format!("blobs/sha256/{h}"), data.to_vec()));
        }
        let refs: Vec<(&str, &[u8])> = e.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
        tar_of(&refs)
    };
    let cfg_hex = sha(&cfg);
    let layer_hex = sha(&layer);
    let oci_manifest = |layer_mt: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": format!("sha256:{cfg_hex}"), "size": cfg.len()},
            "layers": [{"mediaType": layer_mt, "digest": format!("sha256:{layer_hex}"), "size": layer.len()}],
        }))
        .unwrap()
    };
    let index = |m: &[u8]| {
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", sha(m)), "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": "localhost/ocibad:1"},
        }]}))
        .unwrap()
    };
    // (a fresh store: one that has a blob already does not read it again)
    let d3 = tmp();
    let s3 = Store::open(d3.path()).unwrap();
    make_image(&s3, "localhost/keep:1", "keep");
    let good_m = oci_manifest("application/vnd.oci.image.layer.v1.tar");
    let arch = oci(
        &[
            (&cfg_hex, &cfg),
            (&layer_hex, &other),
            (&sha(&good_m), &good_m),
        ],
        &index(&good_m),
    );
    assert_load_fails(
        &s3,
        &arch,
        &format!("digest mismatch for blob sha256:{layer_hex}"),
    );
    // Unknown media type in a manifest.
    let bad_m = oci_manifest("application/x-barge-not-a-layer");
    let arch = oci(
        &[
            (&cfg_hex, &cfg),
            (&layer_hex, &layer),
            (&sha(&bad_m), &bad_m),
        ],
        &index(&bad_m),
    );
    assert_load_fails(
        &s3,
        &arch,
        "unknown media type \"application/x-barge-not-a-layer\"",
    );
    // A missing blob.
    let arch = oci(
        &[(&cfg_hex, &cfg), (&sha(&good_m), &good_m)],
        &index(&good_m),
    );
    let d4 = tmp();
    let s4 = Store::open(d4.path()).unwrap();
    make_image(&s4, "localhost/keep:1", "keep");
    assert_load_fails(
        &s4,
        &arch,
        &format!("references layer sha256:{layer_hex} which is not in the archive"),
    );
    // Neither format.
    let arch = tar_of(&[("hello.txt", b"hi")]);
    assert_load_fails(&s, &arch, "neither a docker-archive");
    // And the well-formed oci-archive loads.
    let arch = oci(
        &[
            (&cfg_hex, &cfg),
            (&layer_hex, &layer),
            (&sha(&good_m), &good_m),
        ],
        &index(&good_m),
    );
    let r = load_ok(&s3, &arch);
    assert_eq!(r.images[0].0, vec!["localhost/ocibad:1".to_string()]);

    let c = s.check().unwrap();
    assert!(c.is_ok(), "{:?}", c.problems);
}

#[test]
fn archive_concurrent_loads_both_succeed() {
    let src = tmp();
    let ss = Store::open(src.path()).unwrap();
    make_image(&ss, "localhost/a:1", "a");
    make_image(&ss, "localhost/b:1", "b");
    let a = save_vec(&ss, &["localhost/a:1"], ArchiveFormat::DockerArchive);
    let b = save_vec(&ss, &["localhost/b:1"], ArchiveFormat::OciArchive);
    let d = tmp();
    let root = d.path().to_path_buf();
    for _ in 0..3 {
        let ta = {
            let (root, a) = (root.clone(), a.clone());
            std::thread::spawn(move || load(&Store::open(&root).unwrap(), &a[..], &mut |_| {}))
        };
        let tb = {
            let (root, b) = (root.clone(), b.clone());
            std::thread::spawn(move || load(&Store::open(&root).unwrap(), &b[..], &mut |_| {}))
        };
        ta.join().unwrap().unwrap();
        tb.join().unwrap().unwrap();
    }
    let s = Store::open(&root).unwrap();
    assert_eq!(
        s.resolve("localhost/a:1").unwrap().config_digest,
        ss.resolve("localhost/a:1").unwrap().config_digest
    );
    assert_eq!(
        s.resolve("localhost/b:1").unwrap().config_digest,
        ss.resolve("localhost/b:1").unwrap().config_digest
    );
    assert!(s.check().unwrap().is_ok());
}

// ---------------------------------------------------------------- podman / skopeo

fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is required for the archive interop tests: apt-get install -y {tool}"
    );
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// podman with a private storage (vfs, no mounts) under `dir`.
struct Podman {
    dir: std::path::PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        fs::create_dir_all(dir).unwrap();
        let storage = dir.join("storage.conf");
        fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                dir.display()
            ),
        )
        .unwrap();
        fs::write(
            dir.join("containers.conf"),
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}/events.log\"\n",
                dir.display()
            ),
        )
        .unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        Podman {
            dir: dir.to_path_buf(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("TMPDIR", self.dir.join("tmp"))
            .arg("--root")
            .arg(self.dir.join("graph"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--storage-driver")
            .arg("vfs");
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["system", "reset", "-f"]).output();
    }
}

#[test]
fn archive_podman_interop() {
    require("podman");
    let d = tmp();
    let pm = Podman::new(&d.path().join("podman"));

    // Ours → podman.
    let s = Store::open(&d.path().join("store")).unwrap();
    let id = make_image(&s, "localhost/barge-made:1", "pm");
    let ours = d.path().join("ours-docker.tar");
    save(
        &s,
        &["localhost/barge-made:1"],
        ArchiveFormat::DockerArchive,
        fs::File::create(&ours).unwrap(),
    )
    .unwrap();
    let out = run(pm.cmd().arg("load").arg("-i").arg(&ours));
    assert!(out.contains("localhost/barge-made:1"), "{out}");
    let pid = run(pm.cmd().args([
        "image",
        "inspect",
        "--format",
        "{{.ID}}",
        "localhost/barge-made:1",
    ]));
    assert_eq!(pid.trim(), id.hex(), "podman sees another image id");
    // Podman re-exports it; we load that and find the same layers and id.
    let back = d.path().join("back.tar");
    run(pm
        .cmd()
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&back)
        .arg("localhost/barge-made:1"));
    let s_back = Store::open(&d.path().join("store-back")).unwrap();
    let r = load_file(&s_back, &back, &mut |_| {}).unwrap();
    assert_eq!(r.images[0].1, id);
    assert_eq!(
        image_listing(&s_back, "localhost/barge-made:1"),
        image_listing(&s, "localhost/barge-made:1")
    );

    // Our oci-archive → podman.
    let ours_oci = d.path().join("ours-oci.tar");
    s.tag(
        "localhost/barge-oci:2",
        s.resolve("localhost/barge-made:1").unwrap().target,
    )
    .unwrap();
    save(
        &s,
        &["localhost/barge-oci:2"],
        ArchiveFormat::OciArchive,
        fs::File::create(&ours_oci).unwrap(),
    )
    .unwrap();
    let out = run(pm.cmd().arg("load").arg("-i").arg(&ours_oci));
    assert!(out.contains("barge-oci"), "{out}");

    // podman import → podman save (both formats) → our load.
    let rootfs = layer_tar(&[
        ("usr/", 0o755, b""),
        ("usr/bin/", 0o755, b""),
        ("usr/bin/hello", 0o755, &vec![42u8; 100_000]),
        ("usr/bin/hi", 0o777, b"->hello"),
        ("etc/", 0o755, b""),
        ("etc/os-release", 0o644, b"NAME=imported\n"),
        ("etc/secret", 0o600, b"s3cret\n"),
    ]);
    let rootfs_path = d.path().join("rootfs.tar");
    fs::write(&rootfs_path, &rootfs).unwrap();
    run(pm
        .cmd()
        .arg("import")
        .arg(&rootfs_path)
        .arg("localhost/imported:1"));
    let want = vec![listing(&rootfs[..])];
    for format in ["docker-archive", "oci-archive"] {
        let f = d.path().join(format!("podman-{format}.tar"));
        run(pm
            .cmd()
            .args(["save", "--format", format, "-o"])
            .arg(&f)
            .arg("localhost/imported:1"));
        let st = Store::open(&d.path().join(format!("store-{format}"))).unwrap();
        make_image(&st, "localhost/already-here:1", "x");
        let mut lines = Vec::new();
        let r = load_file(&st, &f, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(r.images.len(), 1, "{format}: {r:?}");
        assert!(
            r.images[0].0.contains(&"localhost/imported:1".to_string()),
            "{format}: {r:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l == "Loaded image: localhost/imported:1"),
            "{lines:?}"
        );
        assert_eq!(image_listing(&st, "localhost/imported:1"), want, "{format}");
        assert!(st.resolve("localhost/already-here:1").is_ok());
        let c = st.check().unwrap();
        assert!(c.is_ok(), "{format}: {:?}", c.problems);
        // Compressed as a whole, too.
        if format == "docker-archive" {
            let st2 = Store::open(&d.path().join("store-gz")).unwrap();
            let gz = gzip(&fs::read(&f).unwrap());
            let r2 = load(&st2, &gz[..], &mut |_| {}).unwrap();
            assert_eq!(r2.images[0].1, r.images[0].1);
        }
    }
    drop(pm);
}

#[test]
fn archive_skopeo_reads_our_oci_archive() {
    require("skopeo");
    let d = tmp();
    let s = Store::open(&d.path().join("store")).unwrap();
    let id = make_image(&s, "localhost/sk:1", "sk");
    let f = d.path().join("oci.tar");
    save(
        &s,
        &["localhost/sk:1"],
        ArchiveFormat::OciArchive,
        fs::File::create(&f).unwrap(),
    )
    .unwrap();
    let arg = format!("oci-archive:{}", f.display());
    let out = run(Command::new("skopeo")
        .env("TMPDIR", d.path())
        .args(["inspect", &arg]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let img = s.resolve("localhost/sk:1").unwrap();
    assert_eq!(v["Digest"], img.manifest_digest.to_string(), "{out}");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{out}");
    let cfg = run(Command::new("skopeo")
        .env("TMPDIR", d.path())
        .args(["inspect", "--config", &arg]));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["config"]["Labels"]["salt"], "sk", "{cfg}");
    // And a full copy out of it verifies every blob.
    let dir = d.path().join("dir");
    run(Command::new("skopeo").env("TMPDIR", d.path()).args([
        "copy",
        &arg,
        &format!("dir:{}", dir.display()),
    ]));
    assert!(dir.join(id.hex()).is_file());
}

/// `cargo test --release -p barge-image archive_bench -- --ignored --nocapture`:
/// save/load of a ~200 MB image, against podman doing the same.
#[test]
#[ignore]
fn archive_bench_200mb_against_podman() {
    use std::time::Instant;
    require("podman");
    let d = tmp();
    let s = Store::open(&d.path().join("store")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect()
    };
    let (a, b) = (noise(100 << 20), noise(100 << 20));
    let l1 = layer_tar(&[("big1", 0o644, &a)]);
    let l2 = layer_tar(&[("big2", 0o644, &b)]);
    let b1 = s.write_blob_bytes(&l1).unwrap();
    let b2 = s.write_blob_bytes(&l2).unwrap();
    let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [b1.digest.to_string(), b2.digest.to_string()]}}))
    .unwrap();
    let c = s.write_blob_bytes(&cfg).unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": c.digest.to_string(), "size": c.size},
        "layers": [
            {"mediaType": OCI_LAYER_TAR, "digest": b1.digest.to_string(), "size": b1.size},
            {"mediaType": OCI_LAYER_TAR, "digest": b2.digest.to_string(), "size": b2.size}]}))
    .unwrap();
    let mb = s.write_blob_bytes(&m).unwrap();
    s.tag("localhost/big:1", mb.descriptor(MediaType::ImageManifest))
        .unwrap();
    drop((a, b, l1, l2));
    let f = d.path().join("big.tar");
    let t = Instant::now();
    save(
        &s,
        &["localhost/big:1"],
        ArchiveFormat::DockerArchive,
        fs::File::create(&f).unwrap(),
    )
    .unwrap();
    let our_save = t.elapsed();
    let s2 = Store::open(&d.path().join("store2")).unwrap();
    let t = Instant::now();
    load_file(&s2, &f, &mut |_| {}).unwrap();
    let our_load = t.elapsed();
    let pm = Podman::new(&d.path().join("podman"));
    let t = Instant::now();
    run(pm.cmd().arg("load").arg("-i").arg(&f));
    let pm_load = t.elapsed();
    let f2 = d.path().join("pm.tar");
    let t = Instant::now();
    run(pm
        .cmd()
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&f2)
        .arg("localhost/big:1"));
    let pm_save = t.elapsed();
    eprintln!(
        "save: barge {our_save:?} podman {pm_save:?}; load: barge {our_load:?} podman {pm_load:?}"
    );
}
