//! The harness of the conformance suite: a registry per test, an HTTP
//! client, responses with assertion helpers that say what was asked, what was
//! expected and what came back, and the fixtures (blobs, image manifests,
//! artifacts, indexes) built in memory.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::blocking::{Body, Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// A digest no test ever pushes.
pub const DUMMY_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The spec's error code table (code-1 .. code-14).
pub const SPEC_ERROR_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];
/// Legacy Docker codes the spec says a client MAY encounter.
pub const LEGACY_ERROR_CODES: [&str; 2] = ["TAG_INVALID", "MANIFEST_UNVERIFIED"];

// ---------------------------------------------------------------------------
// The registry under test
// ---------------------------------------------------------------------------

pub struct Registry {
    pub base: Url,
    pub client: Client,
    handle: Option<barge_registry::ServerHandle>,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut barge_registry::Config)) -> Registry {
        let dir = tempfile::tempdir().expect("create the registry's tempdir");
        let mut config = barge_registry::Config::new(
            "127.0.0.1:0".parse().expect("socket address"),
            dir.path().to_path_buf(),
        );
        config.quiet = true;
        tweak(&mut config);
        let server = barge_registry::Server::bind(config)
            .unwrap_or_else(|e| panic!("Server::bind on 127.0.0.1:0 failed: {e}"));
        let handle = server
            .spawn()
            .unwrap_or_else(|e| panic!("Server::spawn failed: {e}"));
        let base = Url::parse(&format!("http://{}/", handle.local_addr())).expect("base url");
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("build the reqwest client");
        Registry {
            base,
            client,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Resolves a path (`/v2/...`) or a `Location` value (relative or
    /// absolute) against the registry's base URL.
    pub fn url(&self, path_or_url: &str) -> Url {
        self.base
            .join(path_or_url)
            .unwrap_or_else(|e| panic!("cannot resolve {path_or_url:?} against {}: {e}", self.base))
    }

    pub fn req(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        self.client.request(method, self.url(path_or_url))
    }

    pub fn req_url(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends and collects the whole response; `what` names the request in
    /// assertion messages.
    pub fn send(&self, what: impl Into<String>, rb: RequestBuilder) -> Resp {
        let what = what.into();
        let resp = rb
            .send()
            .unwrap_or_else(|e| panic!("{what}: request failed at the HTTP level: {e:?}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let url = resp.url().clone();
        let body = resp
            .bytes()
            .unwrap_or_else(|e| panic!("{what}: reading the response body failed: {e:?}"))
            .to_vec();
        Resp {
            what,
            url,
            status,
            headers,
            body,
        }
    }

    /// Like `send`, but a transport-level failure is returned, not panicked on.
    pub fn try_send(&self, what: impl Into<String>, rb: RequestBuilder) -> Result<Resp, String> {
        let what = what.into();
        let resp = rb
            .send()
            .map_err(|e| format!("{what}: request failed at the HTTP level: {e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let url = resp.url().clone();
        let body = resp
            .bytes()
            .map_err(|e| format!("{what}: reading the body failed: {e:?}"))?
            .to_vec();
        Ok(Resp {
            what,
            url,
            status,
            headers,
            body,
        })
    }

    pub fn get(&self, what: &str, path: &str) -> Resp {
        self.send(what, self.req(Method::GET, path))
    }

    pub fn head(&self, what: &str, path: &str) -> Resp {
        self.send(what, self.req(Method::HEAD, path))
    }

    pub fn delete(&self, what: &str, path: &str) -> Resp {
        self.send(what, self.req(Method::DELETE, path))
    }

    // -- push helpers (the pieces the scenarios do not test themselves) ----

    /// POST /v2/<repo>/blobs/uploads/ → 202 with a Location; returns it resolved.
    pub fn start_upload(&self, repo: &str) -> Url {
        let r = self.send(
            format!("POST /v2/{repo}/blobs/uploads/"),
            self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("Content-Length", "0")
                .body(Vec::<u8>::new()),
        );
        r.status(202, "a new upload session is 202 Accepted");
        r.location(self)
    }

    /// POST then PUT (monolithic); asserts 201.
    pub fn push_blob(&self, repo: &str, blob: &Blob) {
        let loc = self.start_upload(repo);
        let r = self.send(
            format!("PUT <upload>?digest={} in {repo}", blob.digest),
            self.req_url(Method::PUT, with_query(loc, &[("digest", &blob.digest)]))
                .header("Content-Type", "application/octet-stream")
                .body(blob.data.clone()),
        );
        r.status(201, "closing a monolithic upload is 201 Created");
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, m: &Manifest) -> Resp {
        self.send(
            format!("PUT /v2/{repo}/manifests/{reference}"),
            self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                .header("Content-Type", m.media_type.clone())
                .body(m.bytes.clone()),
        )
    }

    /// Pushes the config and layers, then the manifest by `reference` (a tag
    /// or its digest); asserts 201.
    pub fn push_image(&self, repo: &str, img: &Image, reference: Option<&str>) {
        self.push_blob(repo, &img.config);
        for l in &img.layers {
            self.push_blob(repo, l);
        }
        let reference = reference.unwrap_or(&img.manifest.digest);
        self.put_manifest(repo, reference, &img.manifest)
            .status(201, "pushing a manifest is 201 Created");
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(
            &format!("GET /v2/{repo}/tags/list"),
            &format!("/v2/{repo}/tags/list"),
        );
        r.status(200, "listing the tags of an existing repository is 200 OK");
        r.tag_list(repo)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

pub fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url
}

pub fn streamed(data: Vec<u8>) -> Body {
    // No known length: reqwest sends it with Transfer-Encoding: chunked.
    Body::new(std::io::Cursor::new(data))
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

pub struct Resp {
    pub what: String,
    pub url: Url,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "  request:  {} ({})", self.what, self.url);
        let _ = writeln!(s, "  status:   {}", self.status);
        let _ = write!(s, "  headers: ");
        for (k, v) in &self.headers {
            let _ = write!(s, " {}: {:?};", k, v);
        }
        let text = String::from_utf8_lossy(&self.body);
        let shown: String = text.chars().take(600).collect();
        let _ = write!(s, "\n  body ({} bytes): {}", self.body.len(), shown);
        s
    }

    pub fn fail(&self, msg: &str) -> ! {
        panic!("{}: {msg}\n{}", self.what, self.describe())
    }

    pub fn status(&self, want: u16, why: &str) -> &Resp {
        if self.status != want {
            self.fail(&format!(
                "expected status {want} ({why}), got {}",
                self.status
            ));
        }
        self
    }

    pub fn status_in(&self, want: &[u16], why: &str) -> &Resp {
        if !want.contains(&self.status) {
            self.fail(&format!(
                "expected status in {want:?} ({why}), got {}",
                self.status
            ));
        }
        self
    }

    pub fn is_4xx(&self, why: &str) -> &Resp {
        if !(400..500).contains(&self.status) {
            self.fail(&format!(
                "expected a 4xx status ({why}), got {}",
                self.status
            ));
        }
        self
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| {
            v.to_str()
                .unwrap_or_else(|_| self.fail(&format!("header {name} is not ASCII")))
                .to_string()
        })
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn must_header(&self, name: &str, why: &str) -> String {
        match self.header(name) {
            Some(v) if !v.is_empty() => v,
            _ => self.fail(&format!("missing header {name} ({why})")),
        }
    }

    pub fn header_eq(&self, name: &str, want: &str, why: &str) -> &Resp {
        let got = self.must_header(name, why);
        if got != want {
            self.fail(&format!(
                "header {name}: expected {want:?} ({why}), got {got:?}"
            ));
        }
        self
    }

    /// The Content-Type's media type, parameters dropped (the spec says
    /// clients SHOULD ignore them).
    pub fn media_type(&self) -> String {
        self.must_header("Content-Type", "a response with content has a Content-Type")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }

    pub fn body_eq(&self, want: &[u8], why: &str) -> &Resp {
        if self.body != want {
            let same_prefix = self
                .body
                .iter()
                .zip(want)
                .take_while(|(a, b)| a == b)
                .count();
            self.fail(&format!(
                "body differs ({why}): expected {} bytes, got {} bytes, first difference at byte {same_prefix}",
                want.len(),
                self.body.len()
            ));
        }
        self
    }

    pub fn body_empty(&self, why: &str) -> &Resp {
        if !self.body.is_empty() {
            self.fail(&format!(
                "expected no body ({why}), got {} bytes",
                self.body.len()
            ));
        }
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| self.fail(&format!("body is not JSON: {e}")))
    }

    pub fn location(&self, reg: &Registry) -> Url {
        let l = self.must_header("Location", "this response MUST carry a Location");
        reg.url(&l)
    }

    /// Validates the spec's error body format and returns the codes:
    /// `{"errors":[{"code":"<UPPER_SNAKE>","message":"..","detail":..}]}`.
    pub fn error_codes(&self) -> Vec<String> {
        let v = self.json();
        let errors = v
            .get("errors")
            .and_then(Value::as_array)
            .unwrap_or_else(|| self.fail("error body lacks an \"errors\" array (spec, Error Codes: the body MUST have the format {\"errors\":[{\"code\":..,\"message\":..,\"detail\":..}]})"));
        if errors.is_empty() {
            self.fail("error body has an empty \"errors\" array");
        }
        errors
            .iter()
            .map(|e| {
                let code = e
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| self.fail("an error object lacks a string \"code\""));
                if code.is_empty() || !code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    self.fail(&format!(
                        "error code {code:?}: \"The code field MUST be a unique identifier, containing only uppercase alphabetic characters and underscores.\""
                    ));
                }
                if !SPEC_ERROR_CODES.contains(&code) && !LEGACY_ERROR_CODES.contains(&code) {
                    self.fail(&format!("error code {code:?} is not in the spec's table (\"The code field MUST be one of the following\")"));
                }
                if let Some(m) = e.get("message") {
                    if !m.is_string() {
                        self.fail("error \"message\" is present but not a string");
                    }
                }
                code.to_string()
            })
            .collect()
    }

    /// Asserts the status and that the JSON error body carries one of `codes`.
    pub fn error(&self, statuses: &[u16], codes: &[&str], why: &str) -> &Resp {
        self.status_in(statuses, why);
        let got = self.error_codes();
        if !got.iter().any(|c| codes.contains(&c.as_str())) {
            self.fail(&format!(
                "expected an error code in {codes:?} ({why}), got {got:?}"
            ));
        }
        self
    }

    /// A 4xx whose body, if it is JSON, follows the error format.
    pub fn lenient_error(&self, codes: &[&str], why: &str) -> &Resp {
        self.is_4xx(why);
        if serde_json::from_slice::<Value>(&self.body).is_ok() {
            let got = self.error_codes();
            if !codes.is_empty() && !got.iter().any(|c| codes.contains(&c.as_str())) {
                self.fail(&format!(
                    "expected an error code in {codes:?} ({why}), got {got:?}"
                ));
            }
        }
        self
    }

    pub fn tag_list(&self, repo: &str) -> Vec<String> {
        let v = self.json();
        if v.get("name").and_then(Value::as_str) != Some(repo) {
            self.fail(&format!("tags list: \"name\" must be {repo:?}"));
        }
        match v.get("tags") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .unwrap_or_else(|| self.fail("a tag is not a string"))
                        .to_string()
                })
                .collect(),
            // An empty repository may answer "tags": null like distribution does.
            Some(Value::Null) => Vec::new(),
            _ => self.fail("tags list: \"tags\" must be an array"),
        }
    }
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Deterministic pseudo-random bytes (splitmix64).
pub fn rand_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

#[derive(Clone)]
pub struct Blob {
    pub data: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

impl Blob {
    pub fn new(data: Vec<u8>, media_type: &str) -> Blob {
        Blob {
            digest: sha256(&data),
            data,
            media_type: media_type.to_string(),
        }
    }

    pub fn layer(seed: u64, n: usize) -> Blob {
        Blob::new(rand_bytes(seed, n), MT_LAYER)
    }

    pub fn config(seed: u64) -> Blob {
        let v = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [format!("SEED={seed}")]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&seed.to_le_bytes())]},
        });
        Blob::new(serde_json::to_vec(&v).expect("config json"), MT_CONFIG)
    }

    pub fn empty_json() -> Blob {
        Blob::new(b"{}".to_vec(), MT_EMPTY)
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }

    /// The same bytes described with another media type (artifacts put
    /// their type on the config descriptor).
    pub fn descriptor_as(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.data.len()})
    }
}

#[derive(Clone)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

impl Manifest {
    pub fn from_value(v: &Value, media_type: &str) -> Manifest {
        Manifest::from_bytes(serde_json::to_vec(v).expect("manifest json"), media_type)
    }

    pub fn from_bytes(bytes: Vec<u8>, media_type: &str) -> Manifest {
        Manifest {
            digest: sha256(&bytes),
            bytes,
            media_type: media_type.to_string(),
        }
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Manifest,
}

/// An OCI image manifest value over a config descriptor and layers.
pub fn image_manifest_value(config: Value, layers: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config,
        "layers": layers,
    })
}

pub fn image(seed: u64) -> Image {
    let config = Blob::config(seed);
    let layers = vec![
        Blob::layer(seed * 10 + 1, 3000 + seed as usize),
        Blob::layer(seed * 10 + 2, 777),
    ];
    let descs: Vec<Value> = layers.iter().map(Blob::descriptor).collect();
    let manifest = Manifest::from_value(
        &image_manifest_value(config.descriptor(), &descs),
        MT_MANIFEST,
    );
    Image {
        config,
        layers,
        manifest,
    }
}
