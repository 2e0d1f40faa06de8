//! End-to-end tests of the registry server over real HTTP(S).

use std::path::Path;

use barge_registry::{Config, Server, ServerHandle, TlsFiles, TokenConfig, TokenKey};
use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Reg {
    handle: Option<ServerHandle>,
    dir: tempfile::TempDir,
    base: String,
    client: Client,
}

impl Reg {
    fn start(configure: impl FnOnce(&mut Config, &Path)) -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("root"));
        config.quiet = true;
        configure(&mut config, dir.path());
        let server = Server::bind(config).unwrap();
        let base = format!("http://{}", server.local_addr());
        let handle = server.spawn().unwrap();
        Reg {
            handle: Some(handle),
            dir,
            base,
            client: Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = digest(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .body(data.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap());
        d
    }

    fn push_manifest(&self, repo: &str, reference: &str, body: &str, ct: &str) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", ct)
            .body(body.to_string())
            .send()
            .unwrap()
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

trait JsonValue {
    fn json_value(self) -> serde_json::Value;
}

impl JsonValue for Response {
    fn json_value(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().unwrap()).unwrap()
    }
}

fn json(r: Response) -> serde_json::Value {
    r.json_value()
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn error_code(r: Response) -> String {
    let v = json(r);
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

fn image_manifest(config: &str, config_len: usize, layers: &[(&str, usize)]) -> String {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, n)| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
        })
        .collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
        "layers": layers,
    })
    .to_string()
}

#[test]
fn base_endpoint_answers_with_the_api_version() {
    let reg = Reg::start(|_, _| {});
    let r = reg.req(Method::GET, "/v2/").send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(r.text().unwrap(), "{}");
    let r = reg.req(Method::GET, "/nope").send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn monolithic_push_then_pull_round_trips() {
    let reg = Reg::start(|_, _| {});
    let layer = vec![7u8; 3 << 20];
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let ld = reg.push_blob("lib/app", &layer);
    let cd = reg.push_blob("lib/app", config);
    // The blob is in the store, so the root is an image layout.
    assert!(reg
        .dir
        .path()
        .join("root/blobs/sha256")
        .join(&ld[7..])
        .is_file());

    let r = reg
        .req(Method::GET, &format!("/v2/lib/app/blobs/{ld}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-content-digest"), ld);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(r.bytes().unwrap().as_ref(), &layer[..]);
    let r = reg
        .req(Method::HEAD, &format!("/v2/lib/app/blobs/{ld}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), layer.len().to_string());
    // Not linked into another repository.
    let r = reg
        .req(Method::HEAD, &format!("/v2/other/blobs/{ld}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let m = image_manifest(&cd, config.len(), &[(&ld, layer.len())]);
    let md = digest(m.as_bytes());
    let r = reg.push_manifest("lib/app", "v1", &m, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "docker-content-digest"), md);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/lib/app/manifests/{md}")
    );

    for reference in ["v1", md.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/lib/app/manifests/{reference}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), md);
        assert_eq!(r.text().unwrap(), m);
    }
    let r = reg
        .req(Method::HEAD, "/v2/lib/app/manifests/v1")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), m.len().to_string());

    let r = reg.push_manifest("lib/app", "v2", &m, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::CREATED);
    let tags: serde_json::Value = reg
        .req(Method::GET, "/v2/lib/app/tags/list")
        .send()
        .unwrap()
        .json_value();
    assert_eq!(
        tags,
        serde_json::json!({"name": "lib/app", "tags": ["v1", "v2"]})
    );
    let cat: serde_json::Value = reg
        .req(Method::GET, "/v2/_catalog")
        .send()
        .unwrap()
        .json_value();
    assert_eq!(cat, serde_json::json!({"repositories": ["lib/app"]}));

    // Delete a tag, then the manifest (and its other tag).
    let r = reg
        .req(Method::DELETE, "/v2/lib/app/manifests/v2")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::GET, "/v2/lib/app/manifests/v2")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r), "MANIFEST_UNKNOWN");
    let r = reg
        .req(Method::DELETE, &format!("/v2/lib/app/manifests/{md}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::GET, "/v2/lib/app/manifests/v1")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reg
        .req(Method::DELETE, &format!("/v2/lib/app/manifests/{md}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reg
        .req(Method::DELETE, &format!("/v2/lib/app/blobs/{ld}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::GET, &format!("/v2/lib/app/blobs/{ld}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r), "BLOB_UNKNOWN");
}

#[test]
fn chunked_upload_checks_order_and_digest() {
    let reg = Reg::start(|_, _| {});
    let data: Vec<u8> = (0..20u8).collect();
    let r = reg
        .req(Method::POST, "/v2/c/blobs/uploads/")
        .header("Content-Length", "0")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = header(&r, "location");
    assert!(loc.starts_with("/v2/c/blobs/uploads/"), "{loc}");
    assert_eq!(header(&r, "range"), "0-0");
    assert!(!header(&r, "docker-upload-uuid").is_empty());

    let patch = |range: &str, body: &[u8]| {
        reg.req(Method::PATCH, &loc)
            .header("Content-Range", range)
            .header("Content-Type", "application/octet-stream")
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    let r = patch("0-4", &data[..5]);
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-4");
    let r = patch("10-14", &data[10..15]);
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "range"), "0-4");
    let r = reg.req(Method::GET, &loc).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-4");
    let r = patch("5-9", &data[5..10]);
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-9");
    // A streamed chunk (no Content-Range), as docker sends.
    let r = reg
        .req(Method::PATCH, &loc)
        .body(data[10..15].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-14");
    // The last chunk rides on the PUT.
    let d = digest(&data);
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={d}"))
        .body(data[15..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(header(&r, "location"), format!("/v2/c/blobs/{d}"));
    let got = reg
        .req(Method::GET, &format!("/v2/c/blobs/{d}"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    // The session is gone.
    let r = reg.req(Method::GET, &loc).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r), "BLOB_UPLOAD_UNKNOWN");

    // A wrong digest stores nothing.
    let r = reg
        .req(Method::POST, "/v2/c/blobs/uploads/")
        .send()
        .unwrap();
    let loc = header(&r, "location");
    let wrong = digest(b"something else");
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={wrong}"))
        .body(b"abc".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "DIGEST_INVALID");
    assert!(!reg
        .dir
        .path()
        .join("root/blobs/sha256")
        .join(&wrong[7..])
        .exists());
    assert!(!reg
        .dir
        .path()
        .join("root/blobs/sha256")
        .join(&digest(b"abc")[7..])
        .exists());

    // Cancel.
    let r = reg
        .req(Method::POST, "/v2/c/blobs/uploads/")
        .send()
        .unwrap();
    let loc = header(&r, "location");
    let r = reg.req(Method::DELETE, &loc).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = reg
        .req(Method::PATCH, &loc)
        .body(b"x".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reg
        .req(Method::PATCH, "/v2/c/blobs/uploads/not-a-uuid")
        .body(b"x".to_vec())
        .send()
        .unwrap();
    assert_eq!(error_code(r), "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn range_requests_return_partial_content() {
    let reg = Reg::start(|_, _| {});
    let data: Vec<u8> = (0..100u8).collect();
    let d = reg.push_blob("r", &data);
    let get = |range: &str| {
        reg.req(Method::GET, &format!("/v2/r/blobs/{d}"))
            .header("Range", range)
            .send()
            .unwrap()
    };
    let r = get("bytes=10-19");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&r, "content-range"), "bytes 10-19/100");
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(r.bytes().unwrap().as_ref(), &data[10..20]);
    let r = get("bytes=90-");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().unwrap().as_ref(), &data[90..]);
    let r = get("bytes=-5");
    assert_eq!(r.bytes().unwrap().as_ref(), &data[95..]);
    let r = get("bytes=100-");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "content-range"), "bytes */100");
}

#[test]
fn manifest_push_errors_follow_the_spec() {
    let reg = Reg::start(|_, _| {});
    let cd = reg.push_blob("e", b"{}");
    let missing = digest(b"missing");
    let m = image_manifest(&cd, 2, &[(&missing, 7)]);
    let r = reg.push_manifest("e", "t", &m, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "MANIFEST_BLOB_UNKNOWN");

    let m = image_manifest(&cd, 2, &[]);
    let r = reg.push_manifest("e", &digest(b"other"), &m, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "DIGEST_INVALID");

    let r = reg.push_manifest("e", "t", "{not json", OCI_MANIFEST);
    assert_eq!(error_code(r), "MANIFEST_INVALID");

    let big = format!("{{\"schemaVersion\":2,\"x\":\"{}\"}}", "a".repeat(5 << 20));
    let r = reg.push_manifest("e", "t", &big, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // An index needs its children in the repository.
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest(m.as_bytes()), "size": m.len()}]})
    .to_string();
    let r = reg.push_manifest("e", "idx", &index, OCI_INDEX);
    assert_eq!(error_code(r), "MANIFEST_BLOB_UNKNOWN");
    let r = reg.push_manifest("e", &digest(m.as_bytes()), &m, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg.push_manifest("e", "idx", &index, OCI_INDEX);
    assert_eq!(r.status(), StatusCode::CREATED);

    let r = reg.req(Method::GET, "/v2/Bad/manifests/t").send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "NAME_INVALID");
    let r = reg
        .req(Method::GET, "/v2/nothere/tags/list")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r), "NAME_UNKNOWN");
    let r = reg
        .req(Method::GET, "/v2/e/blobs/sha256:zz")
        .send()
        .unwrap();
    assert_eq!(error_code(r), "DIGEST_INVALID");
}

#[test]
fn tags_paginate_with_link_header() {
    let reg = Reg::start(|_, _| {});
    let cd = reg.push_blob("p", b"{}");
    let m = image_manifest(&cd, 2, &[]);
    for t in ["c", "a", "b", "d"] {
        assert_eq!(
            reg.push_manifest("p", t, &m, OCI_MANIFEST).status(),
            StatusCode::CREATED
        );
    }
    let r = reg.req(Method::GET, "/v2/p/tags/list?n=2").send().unwrap();
    assert_eq!(
        header(&r, "link"),
        "</v2/p/tags/list?n=2&last=b>; rel=\"next\""
    );
    let v: serde_json::Value = r.json_value();
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    let r = reg
        .req(Method::GET, "/v2/p/tags/list?n=2&last=b")
        .send()
        .unwrap();
    assert_eq!(header(&r, "link"), "");
    let v: serde_json::Value = r.json_value();
    assert_eq!(v["tags"], serde_json::json!(["c", "d"]));
}

#[test]
fn referrers_list_manifests_with_a_subject() {
    let reg = Reg::start(|_, _| {});
    let cd = reg.push_blob("s", b"{}");
    let m = image_manifest(&cd, 2, &[]);
    let md = digest(m.as_bytes());
    assert_eq!(
        reg.push_manifest("s", "t", &m, OCI_MANIFEST).status(),
        StatusCode::CREATED
    );
    let empty = reg.push_blob("s", b"{}");
    let art = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/x.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": m.len()},
        "annotations": {"k": "v"}})
    .to_string();
    let ad = digest(art.as_bytes());
    let r = reg.push_manifest("s", &ad, &art, OCI_MANIFEST);
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject"), md);

    let r = reg
        .req(Method::GET, &format!("/v2/s/referrers/{md}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    let v: serde_json::Value = r.json_value();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], ad);
    assert_eq!(v["manifests"][0]["artifactType"], "application/x.sig");
    assert_eq!(v["manifests"][0]["annotations"]["k"], "v");
    assert_eq!(v["manifests"][0]["size"], art.len());

    let r = reg
        .req(
            Method::GET,
            &format!("/v2/s/referrers/{md}?artifactType=application/x.other"),
        )
        .send()
        .unwrap();
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let v: serde_json::Value = r.json_value();
    assert_eq!(v["manifests"], serde_json::json!([]));

    let r = reg
        .req(
            Method::GET,
            &format!("/v2/s/referrers/{}", digest(b"nobody")),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Deleting the referrer drops it from the list.
    let r = reg
        .req(Method::DELETE, &format!("/v2/s/manifests/{ad}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: serde_json::Value = reg
        .req(Method::GET, &format!("/v2/s/referrers/{md}"))
        .send()
        .unwrap()
        .json_value();
    assert_eq!(v["manifests"], serde_json::json!([]));
}

#[test]
fn cross_repository_mount_links_or_falls_back_to_upload() {
    let reg = Reg::start(|_, _| {});
    let d = reg.push_blob("a", b"shared");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={d}&from=a"),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/b/blobs/{d}"));
    let r = reg
        .req(Method::HEAD, &format!("/v2/b/blobs/{d}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let missing = digest(b"missing");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={missing}&from=a"),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/b/blobs/uploads/"));
}

#[test]
fn deletes_can_be_disabled() {
    let reg = Reg::start(|c, _| c.delete_enabled = false);
    let d = reg.push_blob("x", b"x");
    let r = reg
        .req(Method::DELETE, &format!("/v2/x/blobs/{d}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r), "UNSUPPORTED");
}

#[test]
fn htpasswd_auth_requires_valid_basic_credentials() {
    let reg = Reg::start(|c, dir| {
        let p = dir.join("htpasswd");
        let h = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(&p, format!("alice:{h}\n")).unwrap();
        c.htpasswd = Some(p);
    });
    let r = reg.req(Method::GET, "/v2/").send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "www-authenticate"),
        "Basic realm=\"barge-registry\""
    );
    assert_eq!(error_code(r), "UNAUTHORIZED");
    let r = reg
        .req(Method::GET, "/v2/")
        .basic_auth("alice", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for _ in 0..2 {
        let r = reg
            .req(Method::GET, "/v2/")
            .basic_auth("alice", Some("s3cret"))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[test]
fn htpasswd_with_non_bcrypt_entries_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("htpasswd");
    std::fs::write(&p, "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let mut c = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("root"));
    c.htpasswd = Some(p);
    let e = Server::bind(c).unwrap_err().to_string();
    assert!(e.contains("htpasswd -B"), "{e}");
}

#[test]
fn bind_error_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = Server::bind(Config::new(addr, dir.path().to_path_buf()))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&addr.to_string()), "{e}");
}

fn sign(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"tok-secret"),
    )
    .unwrap()
}

#[test]
fn token_auth_checks_scopes() {
    let reg = Reg::start(|c, _| {
        c.token = Some(TokenConfig {
            realm: "https://auth.example/token".into(),
            service: "barge".into(),
            issuer: "issuer".into(),
            key: TokenKey::Hmac(b"tok-secret".to_vec()),
        })
    });
    let r = reg.req(Method::GET, "/v2/").send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "www-authenticate"),
        "Bearer realm=\"https://auth.example/token\",service=\"barge\""
    );
    let r = reg.req(Method::GET, "/v2/x/tags/list").send().unwrap();
    assert!(header(&r, "www-authenticate").contains("scope=\"repository:x:pull\""));

    let now = jsonwebtoken::get_current_timestamp();
    let pull_only = sign(
        serde_json::json!({"iss": "issuer", "aud": "barge", "exp": now + 300,
        "access": [{"type": "repository", "name": "x", "actions": ["pull"]}]}),
    );
    let push = sign(
        serde_json::json!({"iss": "issuer", "aud": "barge", "exp": now + 300,
        "access": [{"type": "repository", "name": "x", "actions": ["pull", "push"]}]}),
    );
    let r = reg
        .req(Method::GET, "/v2/")
        .bearer_auth(&pull_only)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = reg
        .req(Method::POST, "/v2/x/blobs/uploads/")
        .bearer_auth(&pull_only)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = header(&r, "www-authenticate");
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"repository:x:pull,push\""), "{c}");
    let r = reg
        .req(Method::POST, "/v2/x/blobs/uploads/")
        .bearer_auth(&push)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::POST, "/v2/y/blobs/uploads/")
        .bearer_auth(&push)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = reg
        .req(Method::GET, "/v2/_catalog")
        .bearer_auth(&push)
        .send()
        .unwrap();
    assert!(header(&r, "www-authenticate").contains("scope=\"registry:catalog:*\""));
}

#[test]
fn tls_serves_https() {
    let reg = Reg::start(|c, dir| {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let st = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            // webpki refuses a CA certificate as the server's own.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        c.tls = Some(TlsFiles { cert, key });
    });
    let pem = std::fs::read(reg.dir.path().join("cert.pem")).unwrap();
    let client = Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let https = reg.base.replace("http://", "https://");
    let r = client.get(format!("{https}/v2/")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[test]
fn tls_with_a_missing_cert_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("root"));
    c.tls = Some(TlsFiles {
        cert: dir.path().join("nope.pem"),
        key: dir.path().join("nokey.pem"),
    });
    let e = Server::bind(c).unwrap_err().to_string();
    assert!(e.contains("nope.pem"), "{e}");
}
