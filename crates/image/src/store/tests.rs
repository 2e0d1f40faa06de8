//! Tests of the content store. The crash and concurrency tests re-execute
//! this test binary with an environment variable that turns a `#[test]`
//! into a worker loop.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use oci_spec::image::{Descriptor, MediaType};
use serde_json::json;

use super::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

struct Img {
    manifest: Descriptor,
    config: Digest,
    layers: Vec<Digest>,
    chains: Vec<String>,
}

/// Builds an image of the given layer tars (uncompressed OCI layers).
fn make_image_layers(store: &Store, layers: &[Vec<u8>], label: &str) -> Img {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for l in layers {
        let b = store.write_blob_bytes(l).unwrap();
        diff_ids.push(b.digest.to_string());
        digests.push(b.digest.clone());
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": b.digest.to_string(), "size": b.size}));
    }
    let config = json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"test": label}, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cfg = store
        .write_blob_bytes(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg.digest.to_string(), "size": cfg.size},
        "layers": descs,
    });
    let m = store
        .write_blob_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    Img {
        manifest: m.descriptor(MediaType::ImageManifest),
        config: cfg.digest,
        layers: digests,
        chains: chain_ids(&diff_ids),
    }
}

fn make_image(store: &Store, content: &[u8], label: &str) -> Img {
    make_image_layers(store, &[layer_tar("hello.txt", content)], label)
}

fn d(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

const H: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn digest_table() {
    let ok = [
        H,
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ];
    for s in ok {
        assert_eq!(Digest::parse(s).unwrap().to_string(), s);
    }
    let bad = [
        "",
        "sha256:",
        "sha256",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "sha256:../../../../etc/passwd",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78/2b855",
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ];
    for s in bad {
        assert!(
            matches!(Digest::parse(s), Err(StoreError::InvalidDigest { .. })),
            "{s:?} should be invalid"
        );
    }
    let e = Digest::parse("sha512:abcd").unwrap_err();
    assert!(matches!(e, StoreError::UnsupportedDigestAlgorithm { .. }));
    assert!(e.to_string().contains("sha512"), "{e}");
    assert_eq!(Digest::of_bytes(b"").to_string(), H);
    assert_eq!(Digest::parse(H).unwrap().to_oci().to_string(), H);
}

#[test]
fn reference_table() {
    let dg = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let ok: &[(&str, &str)] = &[
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("user/repo", "docker.io/user/repo:latest"),
        ("user/repo:tag", "docker.io/user/repo:tag"),
        ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
        ("localhost/test:1", "localhost/test:1"),
        ("localhost:5000/test", "localhost:5000/test:latest"),
        ("localhost:5000/a/b/c:tag", "localhost:5000/a/b/c:tag"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
        ("[::1]:5000/x:y", "[::1]:5000/x:y"),
        ("Registry.Example/x", "Registry.Example/x:latest"),
        ("my-registry.local/a_b/c__d/e--f/g.h", "my-registry.local/a_b/c__d/e--f/g.h:latest"),
        ("localhost", "docker.io/library/localhost:latest"),
        ("localhost:5000", "docker.io/library/localhost:5000"),
        ("busybox:_tag", "docker.io/library/busybox:_tag"),
        ("busybox:Tag.With-Dots_1", "docker.io/library/busybox:Tag.With-Dots_1"),
        ("busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "docker.io/library/busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("busybox:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "docker.io/library/busybox:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ];
    for (input, want) in ok {
        let r = parse_reference(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), *want, "input {input}");
        // Normalisation is idempotent.
        assert_eq!(parse_reference(want).unwrap().to_string(), *want);
    }
    let r = parse_reference(&format!("busybox@{dg}")).unwrap();
    assert_eq!(r.tag, None);
    assert_eq!(r.digest, Some(d(dg)));
    assert_eq!(r.familiar(), format!("busybox@{dg}"));
    assert_eq!(
        parse_reference("busybox").unwrap().familiar(),
        "busybox:latest"
    );
    assert_eq!(
        parse_reference("user/repo:1").unwrap().familiar(),
        "user/repo:1"
    );
    assert_eq!(
        parse_reference("quay.io/a/b:1").unwrap().familiar(),
        "quay.io/a/b:1"
    );

    let bad: &[(&str, &str)] = &[
        ("", "empty"),
        ("UPPER:case", "repository name must be lowercase"),
        ("busyBox", "repository name must be lowercase"),
        ("docker.io/Library/busybox", "must be lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox:-tag", "invalid tag"),
        ("busybox:.tag", "invalid tag"),
        ("busybox:ta/g", "invalid"),
        ("busybox:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "invalid tag"),
        ("busybox@sha256:abc", "bad digest"),
        ("busybox@sha512:abcd", "not supported"),
        ("/busybox", "invalid"),
        ("busybox/", "invalid"),
        ("a//b", "invalid"),
        ("-busybox", "invalid"),
        ("busybox-", "invalid"),
        ("bus..ybox", "invalid"),
        ("bus___ybox", "invalid"),
        ("bu$ybox", "invalid"),
        ("localhost:port/x", "invalid registry domain"),
        ("-bad.example/x", "invalid registry domain"),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "64-byte hexadecimal"),
        ("a b", "invalid"),
        ("busybox:tag:tag", "invalid"),
    ];
    for (input, want) in bad {
        match parse_reference(input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("invalid reference format"),
                    "{input}: {msg}"
                );
                assert!(msg.contains(want), "{input}: {msg} (want {want:?})");
            }
        }
    }
    let long = format!("localhost/{}", "a".repeat(250));
    assert!(parse_reference(&long)
        .unwrap_err()
        .to_string()
        .contains("255"));
}

#[test]
fn chain_id_matches_spec() {
    let a = "sha256:a".to_string() + &"0".repeat(63);
    let b = "sha256:b".to_string() + &"0".repeat(63);
    assert_eq!(chain_id(&[]), "");
    assert_eq!(chain_id(std::slice::from_ref(&a)), a);
    let want = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            format!("{a} {b}").as_bytes()
        ))
    );
    assert_eq!(chain_id(&[a.clone(), b.clone()]), want);
    assert_eq!(chain_ids(&[a.clone(), b]), vec![a, want]);
}

fn ingest_count(store: &Store) -> usize {
    fs::read_dir(store.root().join("ingest")).unwrap().count()
}

fn blob_count(store: &Store) -> usize {
    fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn open_creates_and_validates_layout() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(idx["manifests"], json!([]));
    drop(s);
    Store::open(t.path()).unwrap();
    fs::write(
        t.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let e = Store::open(t.path()).unwrap_err().to_string();
    assert!(e.contains("2.0.0"), "{e}");
    fs::write(t.path().join("oci-layout"), "garbage").unwrap();
    assert!(matches!(
        Store::open(t.path()),
        Err(StoreError::BadLayout { .. })
    ));
}

#[test]
fn write_blob_verifies_and_is_idempotent() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let b = s.write_blob_bytes(b"hello").unwrap();
    assert_eq!(b.size, 5);
    assert_eq!(b.digest, Digest::of_bytes(b"hello"));
    assert!(s.has_blob(&b.digest));
    assert_eq!(fs::read(s.blob_path(&b.digest)).unwrap(), b"hello");
    // Again: same result, not rewritten.
    let ino = fs::metadata(s.blob_path(&b.digest)).unwrap();
    let b2 = s
        .write_blob(&b"hello"[..], Some(&b.digest), Some(5))
        .unwrap();
    assert_eq!(b, b2);
    let b3 = s.write_blob(&b"hello"[..], None, None).unwrap();
    assert_eq!(b, b3);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        ino.ino(),
        fs::metadata(s.blob_path(&b.digest)).unwrap().ino()
    );

    // Digest mismatch: nothing stored, no temp left.
    let before = blob_count(&s);
    let wrong = Digest::of_bytes(b"other");
    let e = s
        .write_blob(&b"not other"[..], Some(&wrong), None)
        .unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&wrong.to_string()));
    assert!(!s.has_blob(&wrong));
    assert!(!s.has_blob(&Digest::of_bytes(b"not other")));
    assert_eq!(blob_count(&s), before);
    assert_eq!(ingest_count(&s), 0);

    // Size mismatch (short and long): nothing stored.
    let dd = Digest::of_bytes(b"12345");
    assert!(matches!(
        s.write_blob(&b"12345"[..], Some(&dd), Some(4)),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(matches!(
        s.write_blob(&b"12345"[..], None, Some(6)),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert_eq!(blob_count(&s), before);
    assert_eq!(ingest_count(&s), 0);

    // A reader error: nothing stored.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("network went away"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }
    let e = s.write_blob(Failing(3), None, None).unwrap_err();
    assert!(e.to_string().contains("network went away"), "{e}");
    assert_eq!(blob_count(&s), before);
    assert_eq!(ingest_count(&s), 0);

    // A large streamed blob.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let bb = s
        .write_blob(&big[..], None, Some(big.len() as u64))
        .unwrap();
    assert_eq!(bb.digest, Digest::of_bytes(&big));
    let mut back = Vec::new();
    s.open_blob(&bb.digest)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, big);
    assert!(matches!(
        s.open_blob(&wrong),
        Err(StoreError::BlobNotFound { .. })
    ));
}

#[test]
fn read_json_is_limited_and_verified() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let b = s.write_blob_bytes(br#"{"a": 1}"#).unwrap();
    let v: serde_json::Value = s.read_json(&b.digest, 100).unwrap();
    assert_eq!(v["a"], 1);
    assert!(matches!(
        s.read_json::<serde_json::Value>(&b.digest, 3),
        Err(StoreError::TooLarge { .. })
    ));
    // Corrupt it on disk: read_json refuses.
    fs::write(s.blob_path(&b.digest), br#"{"a": 2}"#).unwrap();
    assert!(matches!(
        s.read_json::<serde_json::Value>(&b.digest, 100),
        Err(StoreError::DigestMismatch { .. })
    ));
}

#[test]
fn tag_untag_resolve() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let a = make_image(&s, b"a", "a");
    let b = make_image(&s, b"b", "b");
    s.tag("busybox", a.manifest.clone()).unwrap();
    s.tag("localhost/test:1", b.manifest.clone()).unwrap();
    s.tag("localhost/test:2", b.manifest.clone()).unwrap();

    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"][REF_NAME_ANNOTATION].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:latest",
            "localhost/test:1",
            "localhost/test:2"
        ]
    );

    for q in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox",
        "index.docker.io/library/busybox:latest",
    ] {
        let r = s.resolve(q).unwrap();
        assert_eq!(r.config_digest, a.config, "{q}");
    }
    let r = s.resolve("localhost/test:1").unwrap();
    assert_eq!(r.config_digest, b.config);
    assert_eq!(r.names, ["localhost/test:1", "localhost/test:2"]);
    assert_eq!(
        r.manifest_digest,
        Digest::try_from(b.manifest.digest()).unwrap()
    );
    // By id, full and short, with or without sha256:.
    assert_eq!(
        s.resolve(&b.config.to_string()).unwrap().config_digest,
        b.config
    );
    assert_eq!(s.resolve(b.config.hex()).unwrap().config_digest, b.config);
    assert_eq!(
        s.resolve(&b.config.hex()[..12]).unwrap().config_digest,
        b.config
    );
    // By manifest digest, and name@digest.
    let md = Digest::try_from(a.manifest.digest()).unwrap();
    assert_eq!(s.resolve(&md.to_string()).unwrap().config_digest, a.config);
    assert_eq!(
        s.resolve(&format!("busybox@{md}")).unwrap().config_digest,
        a.config
    );
    assert!(matches!(
        s.resolve(&format!("localhost/test@{md}")),
        Err(StoreError::ImageNotFound { .. })
    ));
    // Not found / invalid.
    let e = s.resolve("nosuch").unwrap_err();
    assert!(matches!(e, StoreError::ImageNotFound { .. }));
    assert_eq!(e.to_string(), "no such image: nosuch");
    assert!(matches!(
        s.resolve("Busybox"),
        Err(StoreError::InvalidReference { .. })
    ));
    assert!(matches!(
        s.resolve("abc"),
        Err(StoreError::ImageNotFound { .. })
    ));

    // Retag moves the name; the image that lost its last name stays,
    // untagged (docker's dangling image), until pruned.
    s.tag("busybox", b.manifest.clone()).unwrap();
    assert_eq!(s.resolve("busybox").unwrap().config_digest, b.config);
    let entries = s.index_entries().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().any(|d| d.digest() == a.manifest.digest()
        && d.annotations()
            .as_ref()
            .is_none_or(|m| !m.contains_key(REF_NAME_ANNOTATION))));

    // Untag.
    let old = s.untag("localhost/test:1").unwrap().unwrap();
    assert_eq!(old.digest(), b.manifest.digest());
    assert!(s.untag("localhost/test:1").unwrap().is_none());
    assert!(matches!(
        s.resolve("localhost/test:1"),
        Err(StoreError::ImageNotFound { .. })
    ));
    assert_eq!(
        s.resolve("localhost/test:2").unwrap().config_digest,
        b.config
    );

    // Tagging a manifest whose blobs are missing is refused.
    let c = make_image(&s, b"c", "c");
    fs::remove_file(s.blob_path(&c.layers[0])).unwrap();
    let e = s.tag("localhost/c:1", c.manifest.clone()).unwrap_err();
    assert!(matches!(e, StoreError::IncompleteImage { .. }), "{e}");
    assert!(e.to_string().contains(&c.layers[0].to_string()));
    let mut wrong_size = a.manifest.clone();
    wrong_size.set_size(a.manifest.size() + 1);
    assert!(matches!(
        s.tag("localhost/a:1", wrong_size),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(s.resolve("localhost/c:1").is_err());
}

#[test]
fn short_id_ambiguity() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    // Make images until two ids share the first hex digit... 4-digit prefixes
    // rarely collide, so test the ambiguity path with generated collisions.
    let mut by_first: HashMap<String, Vec<Digest>> = HashMap::new();
    let mut i = 0;
    let pair = loop {
        let img = make_image(&s, format!("x{i}").as_bytes(), "x");
        s.tag(&format!("localhost/x:{i}"), img.manifest).unwrap();
        let e = by_first
            .entry(img.config.hex()[..4].to_string())
            .or_default();
        e.push(img.config.clone());
        if e.len() == 2 {
            break e.clone();
        }
        i += 1;
        assert!(i < 5000);
    };
    let prefix = &pair[0].hex()[..4];
    let e = s.resolve(prefix).unwrap_err();
    assert!(matches!(e, StoreError::AmbiguousId { .. }), "{e}");
    assert!(e.to_string().contains("give more digits"));
    let long = &pair[0].hex()[..20];
    assert_eq!(s.resolve(long).unwrap().config_digest, pair[0]);
}

#[test]
fn images_listing() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let a = make_image(&s, b"a", "first");
    let b = make_image_layers(&s, &[layer_tar("x", b"1"), layer_tar("y", b"22")], "second");
    s.tag("localhost/a:1", a.manifest.clone()).unwrap();
    s.tag("localhost/a:latest", a.manifest.clone()).unwrap();
    s.tag("localhost/b:1", b.manifest.clone()).unwrap();
    let imgs = s.images().unwrap();
    assert_eq!(imgs.len(), 2);
    let ia = imgs.iter().find(|i| i.config_digest == a.config).unwrap();
    assert_eq!(ia.refs, ["localhost/a:1", "localhost/a:latest"]);
    assert_eq!(ia.labels.get("test").map(String::as_str), Some("first"));
    assert_eq!(ia.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(ia.platform, "linux/amd64");
    let ib = imgs.iter().find(|i| i.config_digest == b.config).unwrap();
    let want = b.manifest.size()
        + s.blob_size(&b.config).unwrap()
        + b.layers
            .iter()
            .map(|l| s.blob_size(l).unwrap())
            .sum::<u64>();
    assert_eq!(ib.size, want);
    assert_eq!(
        ib.manifest_digest,
        Digest::try_from(b.manifest.digest()).unwrap()
    );
}

/// A multi-platform index (docker manifest list with docker schema2
/// manifests) resolves to the host platform.
#[test]
fn docker_manifest_list_selects_host_platform() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let mut entries = Vec::new();
    let mut want = None;
    for (arch, variant) in [("arm64", Some("v8")), ("amd64", None), ("arm", Some("v7"))] {
        let layer = s
            .write_blob_bytes(&layer_tar("f", arch.as_bytes()))
            .unwrap();
        let cfg = json!({"architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]}});
        let cfg = s
            .write_blob_bytes(&serde_json::to_vec(&cfg).unwrap())
            .unwrap();
        let m = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_V2,
            "config": {"mediaType": DOCKER_CONFIG, "digest": cfg.digest.to_string(), "size": cfg.size},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": layer.digest.to_string(), "size": layer.size}]});
        let m = s
            .write_blob_bytes(&serde_json::to_vec(&m).unwrap())
            .unwrap();
        let mut p = json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            p["variant"] = json!(v);
        }
        entries.push(json!({"mediaType": DOCKER_MANIFEST_V2, "digest": m.digest.to_string(), "size": m.size, "platform": p}));
        if arch == Platform::host().architecture {
            want = Some((m.digest.clone(), cfg.digest.clone()));
        }
    }
    entries.push(json!({"mediaType": OCI_MANIFEST, "digest": H, "size": 0,
        "platform": {"architecture": "unknown", "os": "unknown"}}));
    let list = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries});
    let l = s
        .write_blob_bytes(&serde_json::to_vec(&list).unwrap())
        .unwrap();
    s.tag(
        "busybox:multi",
        l.descriptor(MediaType::Other(DOCKER_MANIFEST_LIST.into())),
    )
    .unwrap();
    let (md, cd) = want.unwrap();
    let r = s.resolve("busybox:multi").unwrap();
    assert_eq!(r.manifest_digest, md);
    assert_eq!(r.config_digest, cd);
    assert_eq!(s.images().unwrap()[0].config_digest, cd);

    let idx: oci_spec::image::ImageIndex = s.read_json(&l.digest, MAX_MANIFEST_BYTES).unwrap();
    let p = |a: &str, v: Option<&str>| Platform {
        os: "linux".into(),
        architecture: a.into(),
        variant: v.map(Into::into),
    };
    let pick = |pl: Platform| {
        select_manifest(&idx, &pl)
            .unwrap()
            .platform()
            .as_ref()
            .unwrap()
            .architecture()
            .to_string()
    };
    assert_eq!(pick(p("arm64", None)), "arm64");
    assert_eq!(pick(p("arm64", Some("v8"))), "arm64");
    assert_eq!(pick(p("arm", Some("v7"))), "arm");
    assert_eq!(pick(p("amd64", None)), "amd64");
    let e = select_manifest(&idx, &p("s390x", None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linux/s390x") && e.contains("linux/arm64/v8"),
        "{e}"
    );
    // The unknown/unknown attestation entry never counts, and gc/check are
    // fine with index children that were never pulled.
    assert!(
        s.check().unwrap().is_ok(),
        "{:?}",
        s.check().unwrap().problems
    );
    let rep = s.gc(&|_| false).unwrap();
    assert!(rep.blobs_removed.is_empty(), "{:?}", rep.blobs_removed);
}

fn make_layer_dir(s: &Store, chain: &str) {
    let ing = s.begin_layer(chain).unwrap();
    fs::write(ing.diff_path().join("file"), chain).unwrap();
    s.commit_layer(ing).unwrap();
}

#[test]
fn layer_dirs_commit_atomically() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let c = format!("sha256:{}", "ab".repeat(32));
    assert!(!s.has_layer(&c));
    let ing = s.begin_layer(&c).unwrap();
    fs::write(ing.diff_path().join("f"), "1").unwrap();
    assert!(!s.has_layer(&c));
    drop(ing); // abandoned: cleaned up
    assert_eq!(ingest_count(&s), 0);
    make_layer_dir(&s, &c);
    assert!(s.has_layer(&c));
    assert_eq!(s.layers().unwrap(), std::slice::from_ref(&c));
    // A second commit of the same chain keeps the first.
    let ing = s.begin_layer(&c).unwrap();
    fs::write(ing.diff_path().join("other"), "2").unwrap();
    let p = s.commit_layer(ing).unwrap();
    assert!(p.join("file").exists() && !p.join("other").exists());
    assert_eq!(ingest_count(&s), 0);
    assert!(s.begin_layer("sha256:../../etc").is_err());
    assert!(s.layer_dir("../x").is_err());
}

#[test]
fn gc_removes_only_unreferenced() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let shared = layer_tar("shared", b"shared");
    let a = make_image_layers(&s, &[shared.clone(), layer_tar("a", b"a")], "a");
    let b = make_image_layers(&s, &[shared, layer_tar("b", b"b")], "b");
    let p = make_image(&s, b"pinned", "p");
    let loose = s.write_blob_bytes(b"loose").unwrap();
    s.tag("localhost/a:1", a.manifest.clone()).unwrap();
    s.tag("localhost/b:1", b.manifest.clone()).unwrap();
    s.pin(
        "container-1",
        &[Digest::try_from(p.manifest.digest()).unwrap()],
    )
    .unwrap();
    let kept_chain = format!("sha256:{}", "cd".repeat(32));
    let orphan_chain = format!("sha256:{}", "ef".repeat(32));
    for c in a.chains.iter().chain(&b.chains).chain(&p.chains) {
        make_layer_dir(&s, c);
    }
    make_layer_dir(&s, &kept_chain);
    make_layer_dir(&s, &orphan_chain);
    // An old ingest leftover and a fresh one.
    fs::write(t.path().join("ingest/blob-old"), "x").unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(t.path().join("ingest/blob-old"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::write(t.path().join("ingest/blob-new"), "x").unwrap();
    // A foreign file in blobs/sha256 is left alone.
    fs::write(t.path().join("blobs/sha256/tmp-foreign"), "x").unwrap();

    let keep = |c: &str| c == kept_chain;
    let rep = s.gc(&keep).unwrap();
    assert_eq!(rep.blobs_removed, std::slice::from_ref(&loose.digest));
    assert_eq!(rep.bytes_freed, 5);
    assert_eq!(rep.layers_removed, std::slice::from_ref(&orphan_chain));
    assert_eq!(rep.ingest_removed, 1);
    assert!(t.path().join("ingest/blob-new").exists());
    assert!(t.path().join("blobs/sha256/tmp-foreign").exists());
    for img in [&a, &b, &p] {
        assert!(s.has_blob(&img.config));
        assert!(img.layers.iter().all(|l| s.has_blob(l)));
        assert!(img.chains.iter().all(|c| s.has_layer(c)));
    }

    // Untag b: only b's own blobs and layers go; the shared layer stays.
    s.untag("localhost/b:1").unwrap();
    let dry = s
        .gc_with(
            &keep,
            &GcOptions {
                dry_run: true,
                ..GcOptions::default()
            },
        )
        .unwrap();
    assert_eq!(dry.blobs_removed.len(), 3);
    assert!(s.has_blob(&b.config));
    let rep = s.gc(&keep).unwrap();
    let mut want = vec![
        Digest::try_from(b.manifest.digest()).unwrap(),
        b.config.clone(),
        b.layers[1].clone(),
    ];
    want.sort();
    let mut got = rep.blobs_removed.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(rep.layers_removed, [b.chains[1].clone()]);
    assert!(s.has_blob(&b.layers[0]) && s.has_layer(&b.chains[0]));
    assert!(s.resolve("localhost/a:1").is_ok());
    // A chain kept only by the callback goes when the callback lets go.
    let rep = s.gc(&|_| false).unwrap();
    assert_eq!(rep.layers_removed, [kept_chain]);
    // Unpin: the pinned image goes.
    assert!(s.unpin("container-1").unwrap());
    let rep = s.gc(&|_| false).unwrap();
    assert_eq!(rep.blobs_removed.len(), 3);
    assert_eq!(rep.layers_removed, [p.chains[0].clone()]);
    fs::remove_file(t.path().join("blobs/sha256/tmp-foreign")).unwrap();
    let rep = s.check().unwrap();
    assert!(rep.is_ok(), "{:?}", rep.problems);
    // A damaged referenced manifest blocks gc entirely.
    let am = Digest::try_from(a.manifest.digest()).unwrap();
    fs::write(s.blob_path(&am), b"{").unwrap();
    s.write_blob_bytes(b"garbage").unwrap();
    let e = s.gc(&|_| false).unwrap_err();
    assert!(matches!(e, StoreError::GcBlocked { .. }), "{e}");
    assert!(s.has_blob(&Digest::of_bytes(b"garbage")));
}

#[test]
fn check_finds_corrupt_and_missing() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let a = make_image_layers(&s, &[layer_tar("1", b"1"), layer_tar("2", b"2")], "a");
    s.tag("localhost/a:1", a.manifest.clone()).unwrap();
    let rep = s.check().unwrap();
    assert!(rep.is_ok(), "{:?}", rep.problems);
    assert_eq!(rep.blobs_checked, 4);
    assert_eq!(rep.manifests_checked, 1);

    // Flip a byte of a layer.
    let p = s.blob_path(&a.layers[0]);
    let mut data = fs::read(&p).unwrap();
    data[100] ^= 0x20;
    fs::write(&p, &data).unwrap();
    // Remove the other layer.
    fs::remove_file(s.blob_path(&a.layers[1])).unwrap();
    // A stray file and an incomplete layer dir.
    fs::write(t.path().join("blobs/sha256/junk"), "x").unwrap();
    fs::create_dir(t.path().join("layers").join("12".repeat(32))).unwrap();

    let rep = s.check().unwrap();
    let kinds: Vec<(ProblemKind, String)> = rep
        .problems
        .iter()
        .map(|p| (p.kind, p.subject.clone()))
        .collect();
    assert!(
        kinds.contains(&(ProblemKind::CorruptBlob, a.layers[0].to_string())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ProblemKind::MissingBlob, a.layers[1].to_string())),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.0 == ProblemKind::StrayFile),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.0 == ProblemKind::IncompleteLayer),
        "{kinds:?}"
    );
    assert_eq!(rep.problems.len(), 4, "{:?}", rep.problems);
    let missing = rep
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::MissingBlob)
        .unwrap();
    assert!(
        missing.to_string().contains("manifest sha256:"),
        "{missing}"
    );

    // Corrupt manifest JSON (and so its digest) is reported too.
    let t2 = tmp();
    let s2 = Store::open(t2.path()).unwrap();
    let b = make_image(&s2, b"b", "b");
    s2.tag("localhost/b:1", b.manifest.clone()).unwrap();
    let cfgp = s2.blob_path(&b.config);
    let mut cfg = fs::read(&cfgp).unwrap();
    cfg.truncate(cfg.len() - 1);
    fs::write(&cfgp, &cfg).unwrap();
    let rep = s2.check().unwrap();
    assert!(rep
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::CorruptBlob && p.subject == b.config.to_string()));
    assert!(rep
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::SizeMismatch && p.subject == b.config.to_string()));
}

#[test]
fn exclusive_lock_holds_off_writers() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let x = s.lock_exclusive().unwrap();
    let s2 = s.clone();
    let th = std::thread::spawn(move || {
        let start = Instant::now();
        s2.write_blob_bytes(b"waited").unwrap();
        start.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s.has_blob(&Digest::of_bytes(b"waited")));
    drop(x);
    let waited = th.join().unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(s.has_blob(&Digest::of_bytes(b"waited")));
    // Shared locks do not exclude each other.
    let _a = s.lock_shared().unwrap();
    let _b = s.lock_shared().unwrap();
    s.write_blob_bytes(b"while shared").unwrap();
}

// ------------------------------------------------------------ crash safety

const CRASH_ENV: &str = "BARGE_STORE_TEST_CRASH_ROOT";
const CONC_ENV: &str = "BARGE_STORE_TEST_CONC_ROOT";

fn spawn_worker(test: &str, env: &str, root: &Path, id: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, root)
        .env("BARGE_STORE_TEST_WORKER", id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Small xorshift; good enough for picking sizes and moments.
struct Rng(u64);
impl Rng {
    fn seeded() -> Rng {
        let n = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(n ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One image write: layer, config, manifest, tag — under the shared lock.
fn worker_write_image(s: &Store, rng: &mut Rng, tag: &str) {
    let _g = s.lock_shared().unwrap();
    let n = rng.below(400_000) as usize;
    let mut content = vec![0u8; n];
    for c in content.iter_mut() {
        *c = rng.next() as u8;
    }
    let img = make_image(s, &content, tag);
    s.tag(tag, img.manifest).unwrap();
}

/// Worker for `crash_kill_at_random_moments`: writes, tags, untags, pins and
/// collects garbage forever, until killed.
#[test]
fn crash_worker() {
    let Some(root) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let s = Store::open(Path::new(&root)).unwrap();
    let mut rng = Rng::seeded();
    let mut i = 0u64;
    loop {
        i += 1;
        let tag = format!("localhost/crash:{}", rng.below(12));
        match rng.below(10) {
            0 => {
                s.untag(&tag).unwrap();
            }
            1 => {
                let _ = s.gc_with(
                    &|_| false,
                    &GcOptions {
                        ingest_grace: Duration::ZERO,
                        dry_run: false,
                    },
                );
            }
            2 => {
                let b = s.write_blob_bytes(format!("pin {i}").as_bytes()).unwrap();
                s.pin(&format!("p{}", rng.below(3)), &[b.digest]).unwrap();
            }
            3 => {
                let ing = s
                    .begin_layer(&format!("sha256:{:064x}", rng.below(8)))
                    .unwrap();
                fs::write(ing.diff_path().join("f"), vec![1u8; 10_000]).unwrap();
                s.commit_layer(ing).unwrap();
            }
            _ => worker_write_image(&s, &mut rng, &tag),
        }
    }
}

#[test]
fn crash_kill_at_random_moments() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let mut rng = Rng::seeded();
    for round in 0..10 {
        let mut child = spawn_worker("store::tests::crash_worker", CRASH_ENV, t.path(), "crash");
        std::thread::sleep(Duration::from_millis(80 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let rep = s.check().unwrap();
        assert!(rep.is_ok(), "round {round}: {:#?}", rep.problems);
        // index.json and pins.json always parse; every tag resolves.
        for img in s.images().unwrap() {
            for r in &img.refs {
                s.resolve(r).unwrap();
            }
        }
        s.pins().unwrap();
    }
    let tags: usize = s.images().unwrap().iter().map(|i| i.refs.len()).sum();
    assert!(tags > 0, "the worker never tagged anything: is it running?");
    // Leftovers are only ever in ingest/ and gc cleans them.
    s.gc_with(
        &|_| false,
        &GcOptions {
            ingest_grace: Duration::ZERO,
            dry_run: false,
        },
    )
    .unwrap();
    assert_eq!(ingest_count(&s), 0);
    assert!(s.check().unwrap().is_ok());
}

// ------------------------------------------------------------ concurrency

const CONC_IMAGES: usize = 25;

#[test]
fn conc_worker() {
    let Some(root) = std::env::var_os(CONC_ENV) else {
        return;
    };
    let id = std::env::var("BARGE_STORE_TEST_WORKER").unwrap();
    let s = Store::open(Path::new(&root)).unwrap();
    let mut rng = Rng::seeded();
    for i in 0..CONC_IMAGES {
        worker_write_image(&s, &mut rng, &format!("localhost/conc-{id}:{i}"));
        if i % 5 == 0 {
            s.gc(&|_| false).unwrap();
        }
    }
}

#[test]
fn concurrent_processes_and_threads_lose_nothing() {
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let children: Vec<Child> = ["p1", "p2", "p3"]
        .iter()
        .map(|id| spawn_worker("store::tests::conc_worker", CONC_ENV, t.path(), id))
        .collect();
    let threads: Vec<_> = ["t1", "t2"]
        .iter()
        .map(|id| {
            let s = s.clone();
            let id = id.to_string();
            std::thread::spawn(move || {
                let mut rng = Rng::seeded();
                for i in 0..CONC_IMAGES {
                    worker_write_image(&s, &mut rng, &format!("localhost/conc-{id}:{i}"));
                }
            })
        })
        .collect();
    let start = Instant::now();
    for mut c in children {
        let st = c.wait().unwrap();
        assert!(st.success(), "worker failed: {st}");
    }
    for th in threads {
        th.join().unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(300));
    for id in ["p1", "p2", "p3", "t1", "t2"] {
        for i in 0..CONC_IMAGES {
            let r = format!("localhost/conc-{id}:{i}");
            s.resolve(&r).unwrap_or_else(|e| panic!("{r} lost: {e}"));
        }
    }
    assert_eq!(s.index_entries().unwrap().len(), 5 * CONC_IMAGES);
    let rep = s.check().unwrap();
    assert!(rep.is_ok(), "{:#?}", rep.problems);
}

// ------------------------------------------------------------ skopeo

fn skopeo() -> &'static str {
    let found = Command::new("skopeo").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "skopeo is required for the OCI layout interop tests: apt-get install -y skopeo"
    );
    "skopeo"
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn skopeo_reads_and_writes_the_store() {
    let sk = skopeo();
    let t = tmp();
    let s = Store::open(t.path()).unwrap();
    let img = make_image(&s, b"hello from barge\n", "skopeo");
    s.tag("localhost/test:1", img.manifest.clone()).unwrap();

    let out = tmp();
    let dir = out.path().join("copy");
    run(Command::new(sk).args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:localhost/test:1", t.path().display()),
        &format!("dir:{}", dir.display()),
    ]));
    let m = fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(
        Digest::of_bytes(&m).to_string(),
        img.manifest.digest().to_string(),
        "skopeo changed the manifest"
    );
    assert_eq!(
        fs::read(dir.join(img.layers[0].hex())).unwrap(),
        fs::read(s.blob_path(&img.layers[0])).unwrap()
    );

    // skopeo writes into the store; we read what it wrote.
    run(Command::new(sk).args([
        "--insecure-policy",
        "copy",
        &format!("dir:{}", dir.display()),
        &format!("oci:{}:localhost/other:2", t.path().display()),
    ]));
    let s = Store::open(t.path()).unwrap();
    let r = s.resolve("localhost/other:2").unwrap();
    assert_eq!(r.config_digest, img.config);
    assert_eq!(
        s.resolve("localhost/test:1").unwrap().config_digest,
        img.config
    );
    let rep = s.check().unwrap();
    assert!(rep.is_ok(), "{:#?}", rep.problems);
    let rep = s.gc(&|_| false).unwrap();
    assert!(rep.blobs_removed.is_empty());

    // And skopeo can still read what we retag after it wrote index.json.
    s.tag("localhost/third:3", r.target.clone()).unwrap();
    let dir2 = out.path().join("copy2");
    run(Command::new(sk).args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:localhost/third:3", t.path().display()),
        &format!("dir:{}", dir2.display()),
    ]));
    let m2 = fs::read(dir2.join("manifest.json")).unwrap();
    assert_eq!(m2, m);
}

#[test]
fn blob_writer_commits_only_verified_data() {
    let dir = tmp();
    let store = Store::open(dir.path()).unwrap();
    let data = b"hello blob writer";
    let want = Digest::of_bytes(data);
    // Wrong digest: nothing stored, temp removed.
    let mut w = store.begin_blob().unwrap();
    w.write_all(data).unwrap();
    let bad = Digest::of_bytes(b"other");
    assert!(matches!(
        w.commit(&bad, data.len() as u64),
        Err(StoreError::DigestMismatch { .. })
    ));
    // Wrong size.
    let mut w = store.begin_blob().unwrap();
    w.write_all(data).unwrap();
    assert!(matches!(
        w.commit(&want, 3),
        Err(StoreError::SizeMismatch { .. })
    ));
    // Dropped: removed.
    let mut w = store.begin_blob().unwrap();
    w.write_all(data).unwrap();
    drop(w);
    assert!(!store.has_blob(&want));
    assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    let mut w = store.begin_blob().unwrap();
    w.write_all(&data[..5]).unwrap();
    w.write_all(&data[5..]).unwrap();
    w.sync().unwrap();
    assert_eq!(w.digest(), want);
    w.verify(&want, data.len() as u64).unwrap();
    let info = w.commit(&want, data.len() as u64).unwrap();
    assert_eq!(info.digest, want);
    assert_eq!(fs::read(store.blob_path(&want)).unwrap(), data);
    assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
}
