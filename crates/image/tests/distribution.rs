//! Registry client tests against a fake registry (axum, in a thread) that
//! can tamper, truncate, stall, drop connections and demand auth, and
//! against Debian's `docker-registry` for push.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use barge_image::distribution::{
    login, logout, pull, push, ClientOptions, DistError, PullOptions, PushOptions,
};
use barge_image::store::{Digest, Platform, Store};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;

// ------------------------------------------------------------ test images

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, name, *content).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn sha(data: &[u8]) -> String {
    Digest::of_bytes(data).to_string()
}

#[derive(Clone)]
struct TestImage {
    manifest: Vec<u8>,
    manifest_type: String,
    digest: String,
    config_digest: String,
    /// (digest, bytes) of config and layers.
    blobs: Vec<(String, Vec<u8>)>,
    layer_digests: Vec<String>,
}

fn make_image(docker: bool, arch: &str, layers: &[Vec<u8>]) -> TestImage {
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    let mut blobs = Vec::new();
    let mut layer_digests = Vec::new();
    let (lmt, cmt, mmt) = if docker {
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    } else {
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
        )
    };
    for t in layers {
        diff_ids.push(sha(t));
        let gz = gzip(t);
        let d = sha(&gz);
        descs.push(json!({"mediaType": lmt, "digest": d, "size": gz.len()}));
        layer_digests.push(d.clone());
        blobs.push((d, gz));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Labels": {"arch": arch}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = sha(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": mmt,
        "config": {"mediaType": cmt, "digest": config_digest, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    blobs.push((config_digest.clone(), config));
    TestImage {
        digest: sha(&manifest),
        manifest,
        manifest_type: mmt.to_string(),
        config_digest,
        blobs,
        layer_digests,
    }
}

fn simple_image(docker: bool, tag: &str) -> TestImage {
    let l1 = tar_of(&[("etc/hello", format!("hello {tag}").as_bytes())]);
    let big: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i * 7919).to_le_bytes())
        .collect();
    let l2 = tar_of(&[("data/big.bin", &big), ("etc/second", b"2")]);
    make_image(docker, "amd64", &[l1, l2])
}

// ------------------------------------------------------------ fake registry

#[derive(Clone, Copy, Debug, PartialEq)]
enum Misbehave {
    /// Serve other bytes than asked for.
    Tamper,
    /// Always send only half of the blob and close.
    Truncate,
    /// Drop the connection mid-blob on the first request only.
    DropOnce,
    /// Send half, then nothing.
    Stall,
}

#[derive(Clone, Debug, PartialEq)]
enum Auth {
    Basic(String, String),
    Bearer(String, String),
}

#[derive(Default)]
struct FakeState {
    manifests: HashMap<String, (Vec<u8>, String)>,
    blobs: HashMap<String, Vec<u8>>,
    misbehave: HashMap<String, Misbehave>,
    served: HashMap<String, u32>,
    log: Vec<(String, String, Option<String>)>,
    auth: Option<Auth>,
    scopes_seen: Vec<String>,
}

#[derive(Clone)]
struct Fake {
    st: Arc<Mutex<FakeState>>,
    addr: SocketAddr,
}

impl Fake {
    fn start() -> Fake {
        let st = Arc::new(Mutex::new(FakeState::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let st2 = st.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/token", get(token))
                    .fallback(handler)
                    .with_state(st2);
                axum::serve(l, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Fake { st, addr }
    }
    fn host(&self) -> String {
        self.addr.to_string()
    }
    fn add(&self, tag: &str, img: &TestImage) {
        let mut s = self.st.lock().unwrap();
        s.manifests.insert(
            tag.into(),
            (img.manifest.clone(), img.manifest_type.clone()),
        );
        s.manifests.insert(
            img.digest.clone(),
            (img.manifest.clone(), img.manifest_type.clone()),
        );
        for (d, b) in &img.blobs {
            s.blobs.insert(d.clone(), b.clone());
        }
    }
    fn add_manifest(&self, reference: &str, data: Vec<u8>, mt: &str) {
        self.st
            .lock()
            .unwrap()
            .manifests
            .insert(reference.into(), (data, mt.into()));
    }
    fn misbehave(&self, digest: &str, m: Misbehave) {
        self.st.lock().unwrap().misbehave.insert(digest.into(), m);
    }
    fn set_auth(&self, a: Auth) {
        self.st.lock().unwrap().auth = Some(a);
    }
    fn log(&self) -> Vec<(String, String, Option<String>)> {
        self.st.lock().unwrap().log.clone()
    }
}

type St = Arc<Mutex<FakeState>>;

async fn token(State(st): State<St>, req: Request) -> Response {
    let s = st.lock().unwrap();
    let q = req.uri().query().unwrap_or("").to_string();
    let Some(Auth::Bearer(user, pass)) = s.auth.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    drop(s);
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    );
    let got = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got != want {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    st.lock().unwrap().scopes_seen.push(q);
    axum::Json(json!({"token": "tok-123", "expires_in": 300})).into_response()
}

fn err(status: StatusCode, code: &str) -> Response {
    (
        status,
        axum::Json(json!({"errors": [{"code": code, "message": code.to_lowercase()}]})),
    )
        .into_response()
}

async fn handler(State(st): State<St>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let headers: HeaderMap = req.headers().clone();
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut s = st.lock().unwrap();
    s.log.push((method.clone(), path.clone(), range.clone()));
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let authz = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match s.auth.clone() {
        Some(Auth::Basic(u, p)) => {
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            );
            if authz != want {
                let mut r = err(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"fake\""),
                );
                return r;
            }
        }
        Some(Auth::Bearer(..)) if authz != "Bearer tok-123" => {
            let mut r = err(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            let v = format!(
                "Bearer realm=\"http://{host}/token\",service=\"fake, registry\",scope=\"repository:x:pull\""
            );
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_str(&v).unwrap());
            return r;
        }
        _ => {}
    }
    if path == "/v2/" || path == "/v2" {
        return (StatusCode::OK, "{}").into_response();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        return match s.manifests.get(reference) {
            Some((data, mt)) => {
                let mut r = Response::new(Body::from(data.clone()));
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_str(mt).unwrap());
                r.headers_mut().insert(
                    "docker-content-digest",
                    HeaderValue::from_str(&sha(data)).unwrap(),
                );
                r
            }
            None => err(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        let Some(data) = s.blobs.get(digest).cloned() else {
            return err(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
        };
        let n = {
            let c = s.served.entry(digest.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        let mis = s.misbehave.get(digest).copied();
        drop(s);
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|r| r.parse::<usize>().ok())
            .unwrap_or(0);
        let half = data.len() / 2;
        let full_len = data.len() - start;
        let mut resp = match mis {
            Some(Misbehave::Tamper) => {
                let mut d = data.clone();
                let i = d.len() - 10;
                d[i] ^= 0xff;
                Response::new(Body::from(d))
            }
            Some(Misbehave::Truncate) | Some(Misbehave::DropOnce)
                if mis == Some(Misbehave::Truncate) || n == 1 =>
            {
                let first = Bytes::copy_from_slice(&data[start..half.max(start)]);
                let stream = futures_util::stream::iter(vec![
                    Ok::<Bytes, std::io::Error>(first),
                    Err(std::io::Error::other("connection dropped")),
                ]);
                let mut r = Response::new(Body::from_stream(stream));
                r.headers_mut().insert(
                    "content-length",
                    HeaderValue::from_str(&full_len.to_string()).unwrap(),
                );
                r
            }
            Some(Misbehave::Stall) => {
                let first = Bytes::copy_from_slice(&data[..half]);
                let stream = futures_util::stream::unfold(0, move |k| {
                    let first = first.clone();
                    async move {
                        if k == 0 {
                            Some((Ok::<Bytes, std::io::Error>(first), 1))
                        } else {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            None
                        }
                    }
                });
                let mut r = Response::new(Body::from_stream(stream));
                r.headers_mut().insert(
                    "content-length",
                    HeaderValue::from_str(&data.len().to_string()).unwrap(),
                );
                r
            }
            _ => {
                if start > 0 {
                    let mut r = Response::new(Body::from(data[start..].to_vec()));
                    *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                    r.headers_mut().insert(
                        "content-range",
                        HeaderValue::from_str(&format!(
                            "bytes {start}-{}/{}",
                            data.len() - 1,
                            data.len()
                        ))
                        .unwrap(),
                    );
                    r
                } else {
                    Response::new(Body::from(data))
                }
            }
        };
        resp.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        return resp;
    }
    StatusCode::NOT_FOUND.into_response()
}

// ------------------------------------------------------------ helpers

fn opts() -> ClientOptions {
    ClientOptions {
        stall_timeout: Duration::from_secs(5),
        retries: 2,
        auth_file: Some(PathBuf::from("/nonexistent/barge-test-auth.json")),
        ..ClientOptions::default()
    }
}

/// Everything that must not change after a failed pull.
fn snapshot(root: &Path) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let list = |d: &str| -> BTreeSet<String> {
        std::fs::read_dir(root.join(d))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    (list("blobs/sha256"), list("layers"), index)
}

fn assert_unchanged(root: &Path, before: &(BTreeSet<String>, BTreeSet<String>, String)) {
    assert_eq!(&snapshot(root), before, "the store changed");
    let ingest: Vec<_> = std::fs::read_dir(root.join("ingest"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(ingest.is_empty(), "ingest/ not empty: {ingest:?}");
}

fn chains_of(store: &Store, img: &TestImage) -> Vec<String> {
    let d = Digest::parse(&img.config_digest).unwrap();
    store.read_config_info(&d).unwrap().chain_ids().unwrap()
}

// ------------------------------------------------------------ pull tests

#[test]
fn pull_oci_and_docker_manifests_unpacks_and_repull_is_up_to_date() {
    let fake = Fake::start();
    let oci = simple_image(false, "oci");
    let docker = simple_image(true, "docker");
    fake.add("oci", &oci);
    fake.add("docker", &docker);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (tag, img) in [("oci", &oci), ("docker", &docker)] {
        let r = format!("{}/test/img:{tag}", fake.host());
        let rep = pull(&store, &r, &opts(), &PullOptions::default()).unwrap();
        assert_eq!(rep.digest.to_string(), img.digest);
        assert_eq!(rep.image_id.to_string(), img.config_digest);
        // The second image shares its big layer with the first.
        let want = if tag == "oci" { 2 } else { 1 };
        assert_eq!((rep.layers_fetched, rep.layers_present), (want, 2 - want));
        assert!(!rep.up_to_date);
        for c in chains_of(&store, img) {
            assert!(store.has_layer(&c), "layer {c} not unpacked");
        }
        let resolved = store.resolve(&r).unwrap();
        assert_eq!(resolved.config_digest.to_string(), img.config_digest);
        let chains = chains_of(&store, img);
        let hello = store.layer_diff(&chains[0]).unwrap().join("etc/hello");
        assert_eq!(
            std::fs::read_to_string(hello).unwrap(),
            format!("hello {tag}")
        );
        // Again: nothing fetched.
        let again = pull(&store, &r, &opts(), &PullOptions::default()).unwrap();
        assert!(again.up_to_date);
        assert_eq!(again.layers_fetched, 0);
        assert_eq!(again.layers_present, 2);
    }
    // By digest: tagged as name@digest and resolvable so.
    let r = format!("{}/test/img@{}", fake.host(), oci.digest);
    let rep = pull(&store, &r, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(rep.digest.to_string(), oci.digest);
    assert!(store.resolve(&r).is_ok());
    assert!(store.check().unwrap().problems.is_empty());
    assert!(dir.path().join("distribution/sources.json").is_file());
}

#[test]
fn pull_index_selects_platform_and_store_copes_with_absent_platforms() {
    let fake = Fake::start();
    let amd = make_image(false, "amd64", &[tar_of(&[("arch", b"amd64")])]);
    let arm = make_image(false, "arm64", &[tar_of(&[("arch", b"arm64")])]);
    fake.add(&amd.digest.clone(), &amd);
    fake.add(&arm.digest.clone(), &arm);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": amd.manifest_type, "digest": amd.digest, "size": amd.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": arm.manifest_type, "digest": arm.digest, "size": arm.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .unwrap();
    let index_digest = sha(&index);
    fake.add_manifest("multi", index, "application/vnd.oci.image.index.v1+json");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = format!("{}/test/multi:multi", fake.host());
    let popts = PullOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        },
        verify_digest: false,
    };
    let rep = pull(&store, &r, &opts(), &popts).unwrap();
    assert_eq!(
        rep.digest.to_string(),
        index_digest,
        "RepoDigest is the index's"
    );
    assert_eq!(rep.image_id.to_string(), arm.config_digest);
    assert!(!store.has_blob(&Digest::parse(&amd.digest).unwrap()));
    let img = store.resolve(&r).unwrap();
    assert_eq!(img.config_digest.to_string(), arm.config_digest);
    assert_eq!(img.target.digest().to_string(), index_digest);
    assert!(store.check().unwrap().problems.is_empty());
    store.gc(&|_| false).unwrap();
    assert!(store.resolve(&r).is_ok());
    for c in chains_of(&store, &arm) {
        assert!(store.has_layer(&c));
    }
}

fn failing_pull(fake: &Fake, reference: &str, o: &ClientOptions) -> DistError {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A first image so the store is not empty.
    let before = snapshot(dir.path());
    let e = pull(&store, reference, o, &PullOptions::default()).unwrap_err();
    assert_unchanged(dir.path(), &before);
    let _ = fake;
    e
}

#[test]
fn tampered_blob_fails_and_leaves_store_unchanged() {
    let fake = Fake::start();
    let img = simple_image(false, "t");
    fake.add("t", &img);
    fake.misbehave(&img.layer_digests[1], Misbehave::Tamper);
    let e = failing_pull(&fake, &format!("{}/a/b:t", fake.host()), &opts());
    let s = e.to_string();
    assert!(matches!(e, DistError::DigestMismatch { .. }), "{s}");
    assert!(s.contains(&img.layer_digests[1]), "{s}");
}

#[test]
fn truncated_stream_fails_after_retries() {
    let fake = Fake::start();
    let img = simple_image(false, "t");
    fake.add("t", &img);
    fake.misbehave(&img.layer_digests[1], Misbehave::Truncate);
    let mut o = opts();
    o.retries = 1;
    let e = failing_pull(&fake, &format!("{}/a/b:t", fake.host()), &o);
    let s = e.to_string();
    assert!(matches!(e, DistError::Download { attempts: 2, .. }), "{s}");
    assert!(
        s.contains(&img.layer_digests[1]) && s.contains("received"),
        "{s}"
    );
}

#[test]
fn stalling_server_times_out() {
    let fake = Fake::start();
    let img = simple_image(false, "t");
    fake.add("t", &img);
    fake.misbehave(&img.layer_digests[1], Misbehave::Stall);
    let mut o = opts();
    o.retries = 0;
    o.stall_timeout = Duration::from_millis(500);
    let t = std::time::Instant::now();
    let e = failing_pull(&fake, &format!("{}/a/b:t", fake.host()), &o);
    assert!(t.elapsed() < Duration::from_secs(10));
    let s = e.to_string();
    assert!(matches!(e, DistError::Download { .. }), "{s}");
    assert!(
        s.contains("stall") || s.contains("timed out") || s.contains("no data"),
        "{s}"
    );
}

#[test]
fn oversized_manifest_and_pin_mismatch_are_refused() {
    let fake = Fake::start();
    let img = simple_image(false, "t");
    fake.add("t", &img);
    let mut huge = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4 << 20));
    huge.extend(br#""}}"#);
    fake.add_manifest("huge", huge, "application/vnd.oci.image.manifest.v1+json");
    let e = failing_pull(&fake, &format!("{}/a/b:huge", fake.host()), &opts());
    assert!(matches!(e, DistError::ManifestTooLarge { .. }), "{e}");
    // A pin that the served manifest does not match.
    let other = simple_image(false, "other");
    fake.add_manifest(&other.digest, img.manifest.clone(), &img.manifest_type);
    let e = failing_pull(
        &fake,
        &format!("{}/a/b@{}", fake.host(), other.digest),
        &opts(),
    );
    assert!(matches!(e, DistError::DigestMismatch { .. }), "{e}");
    // Policy: --verify-digest.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = pull(
        &store,
        &format!("{}/a/b:t", fake.host()),
        &opts(),
        &PullOptions {
            verify_digest: true,
            ..PullOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, DistError::DigestRequired { .. }), "{e}");
}

#[test]
fn dropped_connection_is_resumed_with_range() {
    let fake = Fake::start();
    let img = simple_image(false, "t");
    fake.add("t", &img);
    fake.misbehave(&img.layer_digests[1], Misbehave::DropOnce);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = format!("{}/a/b:t", fake.host());
    let rep = pull(&store, &r, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(rep.layers_fetched, 2);
    let ranged: Vec<_> = fake
        .log()
        .into_iter()
        .filter(|(_, p, r)| p.ends_with(&img.layer_digests[1]) && r.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "{:?}", fake.log());
    assert!(ranged[0].2.as_deref().unwrap().starts_with("bytes="));
    assert_ne!(ranged[0].2.as_deref(), Some("bytes=0-"));
    for c in chains_of(&store, &img) {
        assert!(store.has_layer(&c));
    }
}

#[test]
fn bearer_and_basic_auth() {
    // Bearer: the registry demands a token from the realm.
    let fake = Fake::start();
    let img = simple_image(false, "t");
    fake.add("t", &img);
    fake.set_auth(Auth::Bearer("alice".into(), "s3cret".into()));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = format!("{}/a/b:t", fake.host());
    let e = pull(&store, &r, &opts(), &PullOptions::default()).unwrap_err();
    assert!(matches!(e, DistError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("barge login"), "{e}");
    let mut o = opts();
    o.credentials = Some(("alice".into(), "s3cret".into()));
    pull(&store, &r, &o, &PullOptions::default()).unwrap();
    let scopes = fake.st.lock().unwrap().scopes_seen.clone();
    assert!(
        scopes
            .iter()
            .any(|q| q.contains("scope=repository%3Aa%2Fb%3Apull")),
        "{scopes:?}"
    );
    assert!(
        scopes
            .iter()
            .all(|q| q.contains("service=fake%2C+registry")),
        "{scopes:?}"
    );

    // Basic, with credentials from the auth file written by login.
    let fake = Fake::start();
    fake.add("t", &img);
    fake.set_auth(Auth::Basic("bob".into(), "pw".into()));
    let auth_dir = tempfile::tempdir().unwrap();
    let auth_file = auth_dir.path().join("sub/auth.json");
    std::fs::create_dir_all(auth_dir.path().join("sub")).unwrap();
    std::fs::write(&auth_file, r#"{"auths":{},"credHelpers":{"x":"y"}}"#).unwrap();
    let mut o = opts();
    o.auth_file = Some(auth_file.clone());
    assert!(login(&fake.host(), "bob", "wrong", &o).is_err());
    let written = login(&fake.host(), "bob", "pw", &o).unwrap();
    assert_eq!(written, auth_file);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    assert_eq!(v["credHelpers"]["x"], "y", "other keys kept");
    assert_eq!(
        v["auths"][fake.host()]["auth"],
        base64::engine::general_purpose::STANDARD.encode("bob:pw")
    );
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    pull(
        &store2,
        &format!("{}/a/b:t", fake.host()),
        &o,
        &PullOptions::default(),
    )
    .unwrap();
    assert!(logout(&fake.host(), &o).unwrap());
    assert!(!logout(&fake.host(), &o).unwrap());
    // A fresh login directory is created 0700.
    let mut o2 = opts();
    let fresh = auth_dir.path().join("new/dir/auth.json");
    o2.auth_file = Some(fresh.clone());
    login(&fake.host(), "bob", "pw", &o2).unwrap();
    let dmode = std::fs::metadata(fresh.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
}

// ------------------------------------------------------------ push (docker-registry)

struct RealRegistry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Option<RealRegistry> {
    start_registry_with("")
}

fn start_registry_with(http_extra: &str) -> Option<RealRegistry> {
    let http_extra = if http_extra.is_empty() {
        String::new()
    } else {
        format!(", {http_extra}")
    };
    let bin = Path::new("/usr/bin/docker-registry");
    assert!(
        bin.exists(),
        "docker-registry is needed by this test: apt-get install -y docker-registry"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}{http_extra}}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reg = RealRegistry {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(reg);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("docker-registry did not start");
}

#[test]
fn push_monolithic_and_chunked_then_pull_back() {
    let Some(reg) = start_registry() else {
        return;
    };
    let fake = Fake::start();
    let img = simple_image(true, "p");
    fake.add("p", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let src = format!("{}/src/img:p", fake.host());
    pull(&store, &src, &opts(), &PullOptions::default()).unwrap();

    let host = format!("127.0.0.1:{}", reg.port);
    let dest = format!("{host}/team/app:v1");
    let rep = push(&store, &src, Some(&dest), &opts(), &PushOptions::default()).unwrap();
    assert_eq!(rep.digest.to_string(), img.digest);
    assert_eq!(rep.layers_pushed, 3, "{rep:?}");
    // Again: everything exists.
    let rep = push(&store, &src, Some(&dest), &opts(), &PushOptions::default()).unwrap();
    assert_eq!(rep.layers_existing, 3, "{rep:?}");
    // Another repository of the same registry: mounted.
    let dest2 = format!("{host}/other/app:v2");
    let rep = push(&store, &src, Some(&dest2), &opts(), &PushOptions::default()).unwrap();
    assert_eq!(rep.layers_mounted, 3, "{rep:?}");
    // Chunked, to a third repository, with a small image of its own.
    let img2 = simple_image(false, "chunked");
    fake.add("c", &img2);
    let src2 = format!("{}/src/img:c", fake.host());
    pull(&store, &src2, &opts(), &PullOptions::default()).unwrap();
    let dest3 = format!("{host}/chunked/app:v3");
    let rep = push(
        &store,
        &src2,
        Some(&dest3),
        &opts(),
        &PushOptions {
            chunk_size: Some(100_000),
            ..PushOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rep.digest.to_string(), img2.digest);
    assert_eq!(
        rep.layers_pushed + rep.layers_mounted + rep.layers_existing,
        3
    );

    // Pull both back into a fresh store.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let a = pull(&store2, &dest, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(a.digest.to_string(), img.digest);
    assert_eq!(a.image_id.to_string(), img.config_digest);
    let b = pull(&store2, &dest3, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(b.digest.to_string(), img2.digest);
    for c in chains_of(&store2, &img2) {
        assert!(store2.has_layer(&c));
    }
    // Default destination: the image's own name.
    let rep = push(&store2, &dest3, None, &opts(), &PushOptions::default()).unwrap();
    assert_eq!(rep.reference, dest3);
}

#[test]
fn mirrors_default_registry_and_require_digest() {
    let fake = Fake::start();
    let img = simple_image(false, "m");
    fake.add("m", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A mirror for a registry that does not exist: the mirror serves it,
    // the local name stays the registry's.
    let mut o = opts();
    o.config.mirrors.insert(
        "registry.invalid:5000".into(),
        vec![
            "http://127.0.0.1:1".into(),
            format!("http://{}", fake.host()),
        ],
    );
    o.retries = 0;
    let r = "registry.invalid:5000/team/app:m";
    let rep = pull(&store, r, &o, &PullOptions::default()).unwrap();
    assert_eq!(rep.reference, r);
    assert!(store.resolve(r).is_ok());
    // default-registry: docker.io names fetched from it, named docker.io.
    let mut o = opts();
    o.config.default_registry = Some(fake.host());
    let rep = pull(&store, "team/app:m", &o, &PullOptions::default()).unwrap();
    assert_eq!(rep.reference, "docker.io/team/app:m");
    assert!(store.resolve("team/app:m").is_ok());
    // require-digest.
    let mut o = opts();
    o.config.require_digest = vec![fake.host()];
    let e = pull(
        &store,
        &format!("{}/team/app:m", fake.host()),
        &o,
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, DistError::DigestRequired { .. }), "{e}");
    pull(
        &store,
        &format!("{}/team/app@{}", fake.host(), img.digest),
        &o,
        &PullOptions::default(),
    )
    .unwrap();
}

#[test]
fn blob_present_but_not_unpacked_is_unpacked_from_the_store() {
    let fake = Fake::start();
    let img = simple_image(false, "u");
    fake.add("u", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = format!("{}/a/b:u", fake.host());
    pull(&store, &r, &opts(), &PullOptions::default()).unwrap();
    let chains = chains_of(&store, &img);
    std::fs::remove_dir_all(store.layer_dir(&chains[1]).unwrap()).unwrap();
    let served_before = fake.log().len();
    let rep = pull(&store, &r, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(rep.layers_fetched, 0);
    assert!(store.has_layer(&chains[1]));
    // Only the manifest and config were fetched again, no layer blob.
    let blob_gets = fake.log()[served_before..]
        .iter()
        .filter(|(_, p, _)| img.layer_digests.iter().any(|d| p.ends_with(d.as_str())))
        .count();
    assert_eq!(blob_gets, 0);
}

/// openssl: a CA and a certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=barge test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])
}

#[test]
fn tls_registry_with_certs_dir_and_tls_verify() {
    if !Path::new("/usr/bin/docker-registry").exists() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    if !make_certs(certs.path()) {
        eprintln!("openssl not usable; skipping");
        return;
    }
    let Some(reg) = start_registry_with(&format!(
        "tls: {{certificate: {}, key: {}}}",
        certs.path().join("srv.crt").display(),
        certs.path().join("srv.key").display()
    )) else {
        return;
    };
    let host = format!("127.0.0.1:{}", reg.port);
    // An image to push: pulled from the fake first.
    let fake = Fake::start();
    let img = simple_image(false, "tls");
    fake.add("tls", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let src = format!("{}/a/b:tls", fake.host());
    pull(&store, &src, &opts(), &PullOptions::default()).unwrap();
    let dest = format!("{host}/tls/img:1");
    // Verification demanded, CA unknown: a clear TLS error.
    let mut strict = opts();
    strict.tls_verify = Some(true);
    strict.config.cert_dirs = vec![certs.path().join("none")];
    let e = push(&store, &src, Some(&dest), &strict, &PushOptions::default()).unwrap_err();
    assert!(matches!(e, DistError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("--tls-verify=false"), "{e}");
    // The CA in certs.d/<host>/ca.crt: verified TLS works.
    let cd = certs.path().join("certs.d");
    std::fs::create_dir_all(cd.join(&host)).unwrap();
    std::fs::copy(certs.path().join("ca.crt"), cd.join(&host).join("ca.crt")).unwrap();
    strict.config.cert_dirs = vec![cd];
    let rep = push(&store, &src, Some(&dest), &strict, &PushOptions::default()).unwrap();
    assert_eq!(rep.digest.to_string(), img.digest);
    // Loopback is insecure by default: no CA needed.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let rep = pull(&store2, &dest, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(rep.digest.to_string(), img.digest);
}

#[test]
fn push_of_an_index_image_with_absent_platforms_pushes_the_platform_manifest() {
    let Some(reg) = start_registry() else {
        return;
    };
    let fake = Fake::start();
    let amd = make_image(false, "amd64", &[tar_of(&[("arch", b"amd64")])]);
    let arm = make_image(false, "arm64", &[tar_of(&[("arch", b"arm64")])]);
    fake.add(&amd.digest.clone(), &amd);
    fake.add(&arm.digest.clone(), &arm);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": amd.manifest_type, "digest": amd.digest, "size": amd.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": arm.manifest_type, "digest": arm.digest, "size": arm.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64"}},
        ]
    }))
    .unwrap();
    fake.add_manifest("multi", index, "application/vnd.oci.image.index.v1+json");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let src = format!("{}/m/i:multi", fake.host());
    let popts = PullOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        },
        verify_digest: false,
    };
    pull(&store, &src, &opts(), &popts).unwrap();
    let dest = format!("127.0.0.1:{}/multi/img:1", reg.port);
    let rep = push(&store, &src, Some(&dest), &opts(), &PushOptions::default()).unwrap();
    assert_eq!(rep.digest.to_string(), arm.digest);
    assert!(rep.note.is_some());
}

#[derive(Default)]
struct Recorder(Mutex<Vec<barge_image::distribution::ProgressEvent>>);

impl barge_image::distribution::Progress for Recorder {
    fn event(&self, e: &barge_image::distribution::ProgressEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
}

#[test]
fn progress_events_name_layers_by_short_id() {
    use barge_image::distribution::ProgressEvent as E;
    let fake = Fake::start();
    let img = simple_image(false, "p");
    fake.add("p", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rec = Arc::new(Recorder::default());
    let mut o = opts();
    o.progress = Some(rec.clone());
    let r = format!("{}/a/b:p", fake.host());
    pull(&store, &r, &o, &PullOptions::default()).unwrap();
    let ev = rec.0.lock().unwrap().clone();
    assert!(matches!(&ev[0], E::Resolving { reference } if *reference == r));
    assert!(ev
        .iter()
        .any(|e| matches!(e, E::Resolved { digest, .. } if digest.to_string() == img.digest)));
    for d in &img.layer_digests {
        let id = &d["sha256:".len().."sha256:".len() + 12];
        assert!(ev
            .iter()
            .any(|e| matches!(e, E::PullComplete { id: i } if i == id)));
        assert!(ev.iter().any(
            |e| matches!(e, E::Downloading { id: i, done, total } if i == id && done == total)
        ));
    }
    rec.0.lock().unwrap().clear();
    pull(&store, &r, &o, &PullOptions::default()).unwrap();
    let ev = rec.0.lock().unwrap().clone();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, E::LayerExists { .. }))
            .count(),
        2
    );
}

#[test]
fn push_compresses_uncompressed_layers_once() {
    use barge_image::distribution::PushCompression;
    let Some(reg) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A local image with uncompressed layers, as builds and imports make.
    let l1 = tar_of(&[("etc/plain", b"plain layer")]);
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let l2 = tar_of(&[("data/big.bin", &big)]);
    let mut layers = Vec::new();
    for t in [&l1, &l2] {
        let b = store.write_blob_bytes(t).unwrap();
        layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": b.digest.to_string(), "size": b.size}));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha(&l1), sha(&l2)]},
    }))
    .unwrap();
    let c = store.write_blob_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest.to_string(), "size": c.size},
        "layers": layers,
    }))
    .unwrap();
    let m = store.write_blob_bytes(&manifest).unwrap();
    store
        .tag(
            "localhost/plain:1",
            m.descriptor(oci_spec::image::MediaType::ImageManifest),
        )
        .unwrap();

    let host = format!("127.0.0.1:{}", reg.port);
    let dest = format!("{host}/comp/app:gz");
    let rep = push(
        &store,
        "localhost/plain:1",
        Some(&dest),
        &opts(),
        &PushOptions::default(),
    )
    .unwrap();
    assert_ne!(
        rep.digest, m.digest,
        "the pushed manifest names the compressed layers"
    );
    assert_eq!(rep.layers_pushed, 3, "{rep:?}");
    // Pulled back: same image id, gzip layers, same files.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let back = pull(&store2, &dest, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(back.image_id, c.digest);
    assert_eq!(back.digest, rep.digest);
    let img = store2.resolve(&dest).unwrap();
    for l in img.manifest.layers() {
        assert_eq!(
            l.media_type().to_string(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let mut head = [0u8; 2];
        use std::io::Read as _;
        store2
            .open_blob(&Digest::try_from(l.digest()).unwrap())
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert_eq!(head, [0x1f, 0x8b], "gzip magic");
        assert!(
            l.size() < 100_000 || l.size() < big.len() as u64 / 2,
            "compressed"
        );
    }
    let chains = barge_image::store::chain_ids(&[sha(&l1), sha(&l2)]);
    let f = store2.layer_diff(&chains[1]).unwrap().join("data/big.bin");
    assert_eq!(std::fs::read(f).unwrap(), big);

    // A second push reuses the compressed blobs: same manifest, all there.
    let dest2 = format!("{host}/comp/again:gz");
    let rep2 = push(
        &store,
        "localhost/plain:1",
        Some(&dest2),
        &opts(),
        &PushOptions::default(),
    )
    .unwrap();
    assert_eq!(
        rep2.digest, rep.digest,
        "compression is deterministic and cached"
    );
    assert_eq!(rep2.layers_pushed, 0, "{rep2:?}");
    // --compression-format none: the local manifest as it is.
    let dest3 = format!("{host}/comp/plain:none");
    let none = PushOptions {
        compression: PushCompression::None,
        ..PushOptions::default()
    };
    let rep3 = push(&store, "localhost/plain:1", Some(&dest3), &opts(), &none).unwrap();
    assert_eq!(rep3.digest, m.digest);
    // zstd: OCI zstd layers that pull back to the same image.
    let dest4 = format!("{host}/comp/z:zstd");
    let z = PushOptions {
        compression: PushCompression::Zstd,
        ..PushOptions::default()
    };
    let rep4 = push(&store, "localhost/plain:1", Some(&dest4), &opts(), &z).unwrap();
    let dir3 = tempfile::tempdir().unwrap();
    let store3 = Store::open(dir3.path()).unwrap();
    let back = pull(&store3, &dest4, &opts(), &PullOptions::default()).unwrap();
    assert_eq!(back.digest, rep4.digest);
    assert_eq!(back.image_id, c.digest);
    let img = store3.resolve(&dest4).unwrap();
    assert!(img
        .manifest
        .layers()
        .iter()
        .all(|l| l.media_type().to_string().ends_with("+zstd")));
}
