//! The HTTP handlers: one entry point ([`handle`]) that authenticates,
//! routes and answers every request, plus the access log.
//!
//! File work runs in `spawn_blocking`; request bodies stream to disk through
//! a channel to one blocking writer per request, and blobs stream out the
//! same way, so no blob is ever held in memory.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use barge_image::store::{
    Digest, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::auth::{basic_challenge, parse_basic, required_scope, Htpasswd, TokenAuth};
use crate::error::{io_fault, ApiError, Code};
use crate::route::{
    parse_content_range, parse_path, parse_query, parse_range, query_get, valid_name, valid_tag,
    valid_upload_id, ByteRange, Route, RouteError,
};
use crate::storage::{Registry, IO_BUF};

/// The API version header sent on every response.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// Digest state of an upload, kept while its chunks arrive in order so the
/// final PUT need not re-read the data.
#[derive(Default)]
struct UploadHash {
    hasher: Option<Sha256>,
    hashed: u64,
}

/// Everything a request handler needs.
pub struct AppState {
    /// The storage.
    pub reg: Registry,
    /// Basic auth, if configured.
    pub htpasswd: Option<Htpasswd>,
    /// Token auth, if configured (takes precedence over basic).
    pub token: Option<TokenAuth>,
    /// Whether DELETE is allowed.
    pub delete_enabled: bool,
    /// No access log.
    pub quiet: bool,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadHash>>>>,
}

impl AppState {
    /// Builds the state.
    pub fn new(
        reg: Registry,
        htpasswd: Option<Htpasswd>,
        token: Option<TokenAuth>,
        delete_enabled: bool,
        quiet: bool,
    ) -> AppState {
        AppState {
            reg,
            htpasswd,
            token,
            delete_enabled,
            quiet,
            uploads: Mutex::new(HashMap::new()),
        }
    }

    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadHash>> {
        match self.uploads.lock() {
            Ok(mut m) => m.entry(id.to_string()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(UploadHash::default())),
        }
    }

    fn forget_upload(&self, id: &str) {
        if let Ok(mut m) = self.uploads.lock() {
            m.remove(id);
        }
    }
}

type Resp = Result<Response<Body>, ApiError>;

/// Answers one request (never fails: errors become spec JSON responses).
pub async fn handle(state: Arc<AppState>, req: Request<Body>) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || header_str(req.headers(), header::CONTENT_LENGTH).is_some_and(|l| l.trim() != "0");
    let mut resp = match dispatch(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if has_body && resp.status().as_u16() >= 400 {
        // The body may be unread: say the connection closes (RFC 9112
        // section 9.3) so a client does not reuse it mid-body.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    if !state.quiet {
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        eprintln!(
            "{method} {path} {} {bytes} {}ms",
            resp.status().as_u16(),
            start.elapsed().as_millis()
        );
    }
    resp
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn build(b: axum::http::response::Builder, body: Body) -> Resp {
    b.body(body)
        .map_err(|e| ApiError::internal(format!("building the response: {e}")))
}

fn json_response(status: StatusCode, content_type: &str) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
}

fn json_body(b: axum::http::response::Builder, v: &Value) -> Resp {
    let s = v.to_string();
    build(b.header(header::CONTENT_LENGTH, s.len()), Body::from(s))
}

fn empty(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, 0)
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| {
        ApiError::new(
            Code::DigestInvalid,
            format!("{e} (this registry stores sha256 digests only)"),
        )
        .with_detail(json!({ "digest": s }))
    })
}

enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(s: &str) -> Result<Reference, ApiError> {
    if s.contains(':') {
        parse_digest(s).map(Reference::Digest)
    } else if valid_tag(s) {
        Ok(Reference::Tag(s.to_string()))
    } else {
        Err(ApiError::new(
            Code::ManifestInvalid,
            format!("invalid tag {s:?}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"),
        ))
    }
}

async fn authenticate(
    state: &Arc<AppState>,
    method: &Method,
    authz: Option<String>,
    route: &Route,
) -> Result<(), ApiError> {
    if let Some(t) = &state.token {
        let scope = required_scope(method, route);
        return t.check(authz.as_deref(), scope.as_ref());
    }
    if state.htpasswd.is_some() {
        let Some((user, pw)) = authz.as_deref().and_then(parse_basic) else {
            return Err(basic_challenge("authentication required"));
        };
        let st = state.clone();
        let ok = blocking(move || Ok(st.htpasswd.as_ref().is_some_and(|h| h.verify(&user, &pw))))
            .await?;
        if !ok {
            return Err(basic_challenge("invalid username or password"));
        }
    }
    Ok(())
}

async fn dispatch(state: &Arc<AppState>, req: Request<Body>) -> Resp {
    let method = req.method().clone();
    let authz = header_str(req.headers(), header::AUTHORIZATION).map(str::to_string);
    let route = match parse_path(req.uri().path()) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            return build(
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header(header::CONTENT_LENGTH, 19),
                Body::from("404 page not found\n"),
            );
        }
        Err(RouteError::BadName(n)) => {
            authenticate(state, &method, authz, &Route::Base).await?;
            return Err(
                ApiError::new(Code::NameInvalid, format!("invalid repository name {n:?}"))
                    .with_detail(json!({ "name": n })),
            );
        }
    };
    authenticate(state, &method, authz, &route).await?;
    match (&method, route) {
        (&Method::GET | &Method::HEAD, Route::Base) => json_body(
            json_response(StatusCode::OK, "application/json"),
            &json!({}),
        ),
        (&Method::GET, Route::Catalog) => catalog(state, req).await,
        (&Method::GET, Route::Tags(name)) => tags_list(state, req, name).await,
        (&Method::GET | &Method::HEAD, Route::Manifest(name, r)) => {
            get_manifest(state, &method, name, r).await
        }
        (&Method::PUT, Route::Manifest(name, r)) => put_manifest(state, req, name, r).await,
        (&Method::DELETE, Route::Manifest(name, r)) => delete_manifest(state, name, r).await,
        (&Method::GET | &Method::HEAD, Route::Blob(name, d)) => {
            get_blob(state, req, &method, name, d).await
        }
        (&Method::DELETE, Route::Blob(name, d)) => delete_blob(state, name, d).await,
        (&Method::POST, Route::UploadStart(name)) => start_upload(state, req, name).await,
        (&Method::PATCH, Route::Upload(name, id)) => patch_upload(state, req, name, id).await,
        (&Method::PUT, Route::Upload(name, id)) => put_upload(state, req, name, id).await,
        (&Method::GET, Route::Upload(name, id)) => upload_status(state, name, id).await,
        (&Method::DELETE, Route::Upload(name, id)) => cancel_upload(state, name, id).await,
        (&Method::GET, Route::Referrers(name, d)) => referrers(state, req, name, d).await,
        (m, _) => Err(ApiError::new(
            Code::Unsupported,
            format!("method {m} is not supported on this endpoint"),
        )),
    }
}

// ------------------------------------------------------------ listings

/// One page of a listing, and the `(n, last)` of the next page if any.
type Page = (Vec<String>, Option<(usize, String)>);

fn paginate(mut items: Vec<String>, query: &[(String, String)]) -> Result<Page, ApiError> {
    if let Some(last) = query_get(query, "last") {
        items.retain(|t| t.as_str() > last);
    }
    let n = match query_get(query, "n") {
        None | Some("") => None,
        Some(s) => Some(s.parse::<usize>().map_err(|_| {
            ApiError::new(
                Code::Unsupported,
                format!("the page size n={s:?} is not a number"),
            )
            .with_status(StatusCode::BAD_REQUEST)
        })?),
    };
    let mut next = None;
    if let Some(n) = n {
        if items.len() > n {
            items.truncate(n);
            if let Some(l) = items.last() {
                next = Some((n, l.clone()));
            }
        }
    }
    Ok((items, next))
}

async fn catalog(state: &Arc<AppState>, req: Request<Body>) -> Resp {
    let query = parse_query(req.uri().query());
    let st = state.clone();
    let repos = blocking(move || st.reg.catalog()).await?;
    let (repos, next) = paginate(repos, &query)?;
    let mut b = json_response(StatusCode::OK, "application/json");
    if let Some((n, last)) = next {
        b = b.header(
            header::LINK,
            format!("</v2/_catalog?n={n}&last={last}>; rel=\"next\""),
        );
    }
    json_body(b, &json!({ "repositories": repos }))
}

async fn tags_list(state: &Arc<AppState>, req: Request<Body>, name: String) -> Resp {
    let query = parse_query(req.uri().query());
    let st = state.clone();
    let n2 = name.clone();
    let tags = blocking(move || st.reg.tags(&n2)).await?.ok_or_else(|| {
        ApiError::new(
            Code::NameUnknown,
            format!("repository {name:?} is not known"),
        )
        .with_detail(json!({ "name": name }))
    })?;
    let (tags, next) = paginate(tags, &query)?;
    let mut b = json_response(StatusCode::OK, "application/json");
    if let Some((n, last)) = next {
        b = b.header(
            header::LINK,
            format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\""),
        );
    }
    json_body(b, &json!({ "name": name, "tags": tags }))
}

async fn referrers(state: &Arc<AppState>, req: Request<Body>, name: String, d: String) -> Resp {
    let subject = parse_digest(&d)?;
    let query = parse_query(req.uri().query());
    let filter = query_get(&query, "artifactType")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let st = state.clone();
    let mut list = blocking(move || st.reg.referrers(&name, &subject)).await?;
    let mut b = json_response(StatusCode::OK, OCI_INDEX);
    if let Some(f) = &filter {
        list.retain(|v| v.get("artifactType").and_then(Value::as_str) == Some(f.as_str()));
        b = b.header("OCI-Filters-Applied", "artifactType");
    }
    json_body(
        b,
        &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list }),
    )
}

// ------------------------------------------------------------ manifests

fn manifest_unknown(r: &str) -> ApiError {
    ApiError::new(Code::ManifestUnknown, format!("manifest {r} is not known"))
        .with_detail(json!({ "reference": r }))
}

async fn resolve(state: &Arc<AppState>, name: &str, r: &str) -> Result<Digest, ApiError> {
    match parse_reference(r)? {
        Reference::Digest(d) => Ok(d),
        Reference::Tag(t) => {
            let st = state.clone();
            let name = name.to_string();
            let t2 = t.clone();
            blocking(move || st.reg.tag(&name, &t2))
                .await?
                .ok_or_else(|| manifest_unknown(&t))
        }
    }
}

async fn get_manifest(state: &Arc<AppState>, method: &Method, name: String, r: String) -> Resp {
    let d = resolve(state, &name, &r).await?;
    let st = state.clone();
    let d2 = d.clone();
    let found = blocking(move || {
        let Some(mt) = st.reg.revision(&name, &d2)? else {
            return Ok(None);
        };
        let data = st
            .reg
            .store()
            .read_blob_limited(&d2, MAX_MANIFEST_BYTES, "manifest")?;
        Ok(Some((mt, data)))
    })
    .await?;
    let Some((mt, data)) = found else {
        return Err(manifest_unknown(&r));
    };
    let b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, mt)
        .header(header::CONTENT_LENGTH, data.len())
        .header("Docker-Content-Digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""));
    if *method == Method::HEAD {
        build(b, Body::empty())
    } else {
        build(b, Body::from(data))
    }
}

/// How much of an oversized body is read and dropped so the client sees
/// the 413 instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Reads a whole request body of at most `limit` bytes.
async fn read_limited(body: Body, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                Code::ManifestInvalid,
                format!("reading the request body: {e}"),
            )
        })?;
        seen += chunk.len() as u64;
        if seen > limit {
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        out.extend_from_slice(&chunk);
    }
    if seen > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        Code::SizeInvalid,
        format!("the manifest is larger than the {limit} bytes this registry accepts"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

fn is_index_type(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

fn is_image_type(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST_V2
}

fn descriptor_digest(v: &Value, what: &str) -> Result<Digest, ApiError> {
    let s = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(Code::ManifestInvalid, format!("{what} has no digest")))?;
    Digest::parse(s).map_err(|e| ApiError::new(Code::ManifestInvalid, format!("{what}: {e}")))
}

/// What the manifest body says, checked for shape.
#[derive(Debug)]
struct ParsedManifest {
    media_type: String,
    /// Blobs (config, layers) that must be in the repository.
    blobs: Vec<Digest>,
    /// Child manifests (of an index) that must be in the repository.
    children: Vec<Digest>,
    subject: Option<Digest>,
    artifact_type: Option<String>,
    annotations: Option<Value>,
}

fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, ApiError> {
    let invalid = |m: String| ApiError::new(Code::ManifestInvalid, m);
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the manifest is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("the manifest is not a JSON object".into()));
    }
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid(
            "schemaVersion must be 2 (docker schema1 manifests are not supported)".into(),
        ));
    }
    let body_mt = v.get("mediaType").and_then(Value::as_str);
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    let media_type = match (body_mt, ct) {
        (Some(b), _) => b.to_string(),
        (None, Some(c)) => c.to_string(),
        (None, None) => {
            if v.get("manifests").is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        }
    };
    if let (Some(b), Some(c)) = (body_mt, ct) {
        if b != c && (is_index_type(c) || is_image_type(c)) {
            return Err(invalid(format!(
                "Content-Type {c} does not match the manifest's mediaType {b}"
            )));
        }
    }
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    if is_image_type(&media_type) {
        let config = v
            .get("config")
            .filter(|c| c.is_object())
            .ok_or_else(|| invalid("the manifest has no config descriptor".into()))?;
        blobs.push(descriptor_digest(config, "config")?);
        let layers = match v.get("layers") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => &a[..],
            Some(_) => return Err(invalid("layers is not an array".into())),
        };
        for (i, l) in layers.iter().enumerate() {
            let d = descriptor_digest(l, &format!("layer {i}"))?;
            let foreign = l
                .get("urls")
                .and_then(Value::as_array)
                .is_some_and(|u| !u.is_empty());
            if !foreign {
                blobs.push(d);
            }
        }
    } else if is_index_type(&media_type) {
        let manifests = match v.get("manifests") {
            Some(Value::Array(a)) => &a[..],
            _ => return Err(invalid("the index has no manifests array".into())),
        };
        for (i, m) in manifests.iter().enumerate() {
            children.push(descriptor_digest(m, &format!("manifests[{i}]"))?);
        }
    } else {
        return Err(ApiError::new(
            Code::ManifestInvalid,
            format!(
                "unsupported manifest media type {media_type:?}; push an OCI image manifest or \
                 index, or a docker schema2 manifest or manifest list"
            ),
        ));
    }
    let subject = match v.get("subject") {
        None | Some(Value::Null) => None,
        Some(s) => Some(descriptor_digest(s, "subject")?),
    };
    let artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            v.get("config")
                .and_then(|c| c.get("mediaType"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let annotations = v.get("annotations").filter(|a| a.is_object()).cloned();
    Ok(ParsedManifest {
        media_type,
        blobs,
        children,
        subject,
        artifact_type,
        annotations,
    })
}

async fn put_manifest(state: &Arc<AppState>, req: Request<Body>, name: String, r: String) -> Resp {
    let reference = parse_reference(&r)?;
    let query = parse_query(req.uri().query());
    let content_type = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_string);
    let body = read_limited(req.into_body(), MAX_MANIFEST_BYTES).await?;
    let digest = Digest::of_bytes(&body);
    if let Reference::Digest(want) = &reference {
        if *want != digest {
            return Err(ApiError::new(
                Code::DigestInvalid,
                format!("the manifest's digest is {digest}, not {want}"),
            ));
        }
    }
    let mut extra_tags = Vec::new();
    if let Reference::Tag(t) = &reference {
        extra_tags.push(t.clone());
    }
    for (k, v) in &query {
        if k == "tag" {
            if !valid_tag(v) {
                return Err(ApiError::new(
                    Code::ManifestInvalid,
                    format!("invalid tag {v:?}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"),
                ));
            }
            if !extra_tags.contains(v) {
                extra_tags.push(v.clone());
            }
        }
    }
    let parsed = parse_manifest(&body, content_type.as_deref())?;
    let st = state.clone();
    let d = digest.clone();
    let name2 = name.clone();
    let tags = extra_tags.clone();
    let subject = parsed.subject.clone();
    blocking(move || {
        let reg = &st.reg;
        for b in &parsed.blobs {
            if reg.linked_blob_size(&name2, b).is_none() {
                return Err(ApiError::new(
                    Code::ManifestBlobUnknown,
                    format!("blob {b} is not in repository {name2}; push it first"),
                )
                .with_detail(json!({ "digest": b.to_string() })));
            }
        }
        for c in &parsed.children {
            if reg.revision(&name2, c)?.is_none() {
                return Err(ApiError::new(
                    Code::ManifestBlobUnknown,
                    format!("manifest {c} is not in repository {name2}; push it first"),
                )
                .with_detail(json!({ "digest": c.to_string() })));
            }
        }
        let size = body.len() as u64;
        reg.store().write_blob(&body[..], Some(&d), Some(size))?;
        reg.link_blob(&name2, &d)?;
        reg.put_revision(&name2, &d, &parsed.media_type)?;
        if let Some(s) = &parsed.subject {
            let mut desc = json!({
                "mediaType": parsed.media_type,
                "digest": d.to_string(),
                "size": size,
            });
            if let Some(a) = &parsed.artifact_type {
                desc["artifactType"] = json!(a);
            }
            if let Some(a) = &parsed.annotations {
                desc["annotations"] = a.clone();
            }
            reg.add_referrer(&name2, s, &d, &desc)?;
        }
        for t in &tags {
            reg.set_tag(&name2, t, &d)?;
        }
        Ok(())
    })
    .await?;
    let mut b = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_LENGTH, 0);
    if let Some(s) = subject {
        b = b.header("OCI-Subject", s.to_string());
    }
    if matches!(reference, Reference::Digest(_)) {
        for t in &extra_tags {
            b = b.header("OCI-Tag", t.as_str());
        }
    }
    build(b, Body::empty())
}

fn delete_disabled() -> ApiError {
    ApiError::new(
        Code::Unsupported,
        "deletes are disabled on this registry (start it with deletes enabled)",
    )
}

async fn delete_manifest(state: &Arc<AppState>, name: String, r: String) -> Resp {
    if !state.delete_enabled {
        return Err(delete_disabled());
    }
    let reference = parse_reference(&r)?;
    let st = state.clone();
    blocking(move || {
        let reg = &st.reg;
        match reference {
            Reference::Tag(t) => {
                if !reg.delete_tag(&name, &t)? {
                    return Err(manifest_unknown(&t));
                }
            }
            Reference::Digest(d) => {
                if reg.revision(&name, &d)?.is_none() {
                    return Err(manifest_unknown(&d.to_string()));
                }
                let subject = reg
                    .store()
                    .read_blob_limited(&d, MAX_MANIFEST_BYTES, "manifest")
                    .ok()
                    .and_then(|data| serde_json::from_slice::<Value>(&data).ok())
                    .and_then(|v| {
                        v.get("subject")
                            .and_then(|s| s.get("digest"))
                            .and_then(Value::as_str)
                            .and_then(|s| Digest::parse(s).ok())
                    });
                reg.delete_revision(&name, &d)?;
                reg.delete_tags_of(&name, &d)?;
                if let Some(s) = subject {
                    reg.remove_referrer(&name, &s, &d)?;
                }
            }
        }
        Ok(())
    })
    .await?;
    build(empty(StatusCode::ACCEPTED), Body::empty())
}

// ------------------------------------------------------------ blobs

fn blob_unknown(d: &Digest) -> ApiError {
    ApiError::new(Code::BlobUnknown, format!("blob {d} is not known"))
        .with_detail(json!({ "digest": d.to_string() }))
}

/// Streams `len` bytes of `file` from its current position.
fn file_body(mut file: File, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut left = len;
        while left > 0 {
            let want = left.min(IO_BUF as u64) as usize;
            let mut buf = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                let _ = tx.blocking_send(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob shorter than its size",
                )));
                return;
            }
            buf.truncate(filled);
            left -= filled as u64;
            if tx.blocking_send(Ok(buf.freeze())).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

async fn get_blob(
    state: &Arc<AppState>,
    req: Request<Body>,
    method: &Method,
    name: String,
    d: String,
) -> Resp {
    let d = parse_digest(&d)?;
    let st = state.clone();
    let d2 = d.clone();
    let found = blocking(move || {
        let Some(size) = st.reg.linked_blob_size(&name, &d2) else {
            return Ok(None);
        };
        Ok(Some((size, st.reg.store().blob_path(&d2))))
    })
    .await?;
    let Some((size, path)) = found else {
        return Err(blob_unknown(&d));
    };
    let range = if *method == Method::HEAD {
        ByteRange::Full
    } else {
        parse_range(header_str(req.headers(), header::RANGE), size)
    };
    let base = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""))
        .header(header::CACHE_CONTROL, "max-age=31536000");
    let (status, start, len, b) = match range {
        ByteRange::Unsatisfiable => {
            return build(
                base.status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .header(header::CONTENT_LENGTH, 0),
                Body::empty(),
            );
        }
        ByteRange::Full => (StatusCode::OK, 0, size, base),
        ByteRange::Partial(a, e) => (
            StatusCode::PARTIAL_CONTENT,
            a,
            e - a + 1,
            base.header(header::CONTENT_RANGE, format!("bytes {a}-{e}/{size}")),
        ),
    };
    let b = b
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len);
    if *method == Method::HEAD {
        return build(b, Body::empty());
    }
    let file = blocking(move || {
        let mut f = File::open(&path).map_err(io_fault(format!("open {}", path.display())))?;
        f.seek(SeekFrom::Start(start))
            .map_err(io_fault(format!("seek {}", path.display())))?;
        Ok(f)
    })
    .await?;
    build(b, file_body(file, len))
}

async fn delete_blob(state: &Arc<AppState>, name: String, d: String) -> Resp {
    if !state.delete_enabled {
        return Err(delete_disabled());
    }
    let d = parse_digest(&d)?;
    let st = state.clone();
    let d2 = d.clone();
    if !blocking(move || st.reg.unlink_blob(&name, &d2)).await? {
        return Err(blob_unknown(&d));
    }
    build(empty(StatusCode::ACCEPTED), Body::empty())
}

// ------------------------------------------------------------ uploads

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        Code::BlobUploadUnknown,
        format!("upload {id} is not known (finished, cancelled or never started)"),
    )
}

fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn upload_headers(
    status: StatusCode,
    name: &str,
    id: &str,
    size: u64,
) -> axum::http::response::Builder {
    empty(status)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header(header::RANGE, range_value(size))
        .header("Docker-Upload-UUID", id)
}

fn blob_created(name: &str, d: &Digest) -> Resp {
    build(
        empty(StatusCode::CREATED)
            .header(header::LOCATION, format!("/v2/{name}/blobs/{d}"))
            .header("Docker-Content-Digest", d.to_string()),
        Body::empty(),
    )
}

/// Streams a request body into `path` at `offset` (cutting anything after
/// it), updating `hasher` when given. Returns the bytes written and the
/// hasher. On failure the file is cut back to `offset`.
async fn write_body(
    body: Body,
    path: PathBuf,
    offset: u64,
    mut hasher: Option<Sha256>,
) -> Result<(u64, Option<Sha256>), ApiError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let p2 = path.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let mut f = OpenOptions::new()
            .write(true)
            .open(&p2)
            .map_err(io_fault("open upload file"))?;
        f.set_len(offset)
            .map_err(io_fault("truncate upload file"))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_fault("seek upload file"))?;
        let mut w = BufWriter::with_capacity(IO_BUF, f);
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            w.write_all(&chunk).map_err(io_fault("write upload file"))?;
            n += chunk.len() as u64;
        }
        w.flush().map_err(io_fault("write upload file"))?;
        Ok((n, hasher))
    });
    let mut stream = body.into_data_stream();
    let mut body_err = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => {
                if b.is_empty() {
                    continue;
                }
                if tx.send(b).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                body_err = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let res = writer
        .await
        .map_err(|e| ApiError::internal(format!("writer failed: {e}")))
        .and_then(|r| r);
    let res = match (res, body_err) {
        (Ok(v), None) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Some(e)) => Err(ApiError::new(
            Code::BlobUploadInvalid,
            format!("reading the request body failed: {e}"),
        )),
    };
    if res.is_err() {
        let _ = tokio::task::spawn_blocking(move || {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(offset))
        })
        .await;
    }
    res
}

/// Appends a request body to upload `id` (whose current size is `size`),
/// keeping the running digest when the data arrives in order.
async fn append(
    state: &Arc<AppState>,
    hash: &mut UploadHash,
    id: &str,
    size: u64,
    body: Body,
) -> Result<u64, ApiError> {
    let hasher = if hash.hashed == size {
        hash.hasher.take().or_else(|| (size == 0).then(Sha256::new))
    } else {
        None
    };
    let path = state.reg.upload_data(id);
    match write_body(body, path, size, hasher).await {
        Ok((n, h)) => {
            hash.hashed = if h.is_some() { size + n } else { 0 };
            hash.hasher = h;
            Ok(size + n)
        }
        Err(e) => {
            hash.hasher = None;
            hash.hashed = u64::MAX;
            Err(e)
        }
    }
}

/// Checks a chunk's `Content-Range` against the upload's size.
fn check_content_range(
    headers: &HeaderMap,
    name: &str,
    id: &str,
    size: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(cr) = header_str(headers, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let Some((a, b)) = parse_content_range(cr) else {
        return Err(ApiError::new(
            Code::BlobUploadInvalid,
            format!("invalid Content-Range {cr:?}; expected <start>-<end>"),
        ));
    };
    if a != size {
        return Err(ApiError::new(
            Code::BlobUploadInvalid,
            format!(
                "chunk starts at {a} but the upload has {size} bytes; send the chunk at {size}"
            ),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header(header::RANGE, &range_value(size))
        .with_header(header::LOCATION, &format!("/v2/{name}/blobs/uploads/{id}"))
        .with_header(header::HeaderName::from_static("docker-upload-uuid"), id));
    }
    let len = b - a + 1;
    if let Some(cl) =
        header_str(headers, header::CONTENT_LENGTH).and_then(|s| s.parse::<u64>().ok())
    {
        if cl != len {
            return Err(ApiError::new(
                Code::SizeInvalid,
                format!("Content-Range {cr} is {len} bytes but Content-Length is {cl}"),
            ));
        }
    }
    Ok(Some(len))
}

async fn start_upload(state: &Arc<AppState>, req: Request<Body>, name: String) -> Resp {
    let query = parse_query(req.uri().query());
    if let Some(m) = query_get(&query, "mount") {
        let d = parse_digest(m)?;
        let from = query_get(&query, "from").map(str::to_string);
        let authz = header_str(req.headers(), header::AUTHORIZATION).map(str::to_string);
        let may_read_from = |f: &str| match &state.token {
            Some(t) => t.can_pull(authz.as_deref(), f),
            None => true,
        };
        let allowed_from = from
            .as_deref()
            .filter(|f| valid_name(f) && may_read_from(f))
            .map(str::to_string);
        let no_auth = state.token.is_none() && state.htpasswd.is_none();
        let st = state.clone();
        let (n2, d2) = (name.clone(), d.clone());
        let has_from = from.is_some();
        let mounted = blocking(move || {
            let ok = match &allowed_from {
                Some(f) => st.reg.linked_blob_size(f, &d2).is_some(),
                None => !has_from && no_auth && st.reg.store().has_blob(&d2),
            };
            if ok {
                st.reg.link_blob(&n2, &d2)?;
            }
            Ok(ok)
        })
        .await?;
        if mounted {
            return blob_created(&name, &d);
        }
    }
    let digest = query_get(&query, "digest").map(parse_digest).transpose()?;
    let st = state.clone();
    let n2 = name.clone();
    let id = blocking(move || st.reg.create_upload(&n2)).await?;
    let Some(d) = digest else {
        return build(
            upload_headers(StatusCode::ACCEPTED, &name, &id, 0),
            Body::empty(),
        );
    };
    // Monolithic upload: the body is the blob.
    let lock = state.upload_lock(&id);
    let mut hash = lock.lock().await;
    let res = finish(state, &mut hash, &name, &id, 0, req.into_body(), &d).await;
    drop(hash);
    state.forget_upload(&id);
    res?;
    blob_created(&name, &d)
}

/// Appends the final body (if any), then verifies and stores the blob.
async fn finish(
    state: &Arc<AppState>,
    hash: &mut UploadHash,
    name: &str,
    id: &str,
    size: u64,
    body: Body,
    d: &Digest,
) -> Result<(), ApiError> {
    let res = async {
        let size = append(state, hash, id, size, body).await?;
        let known = match hash.hasher.take() {
            Some(h) if hash.hashed == size => Digest::from_hex(&hex::encode(h.finalize())).ok(),
            _ => None,
        };
        let st = state.clone();
        let (n2, id2, d2) = (name.to_string(), id.to_string(), d.clone());
        blocking(move || st.reg.finish_upload(&n2, &id2, &d2, known)).await?;
        Ok(())
    }
    .await;
    if res.is_err() {
        let st = state.clone();
        let id2 = id.to_string();
        let _ = blocking(move || st.reg.delete_upload(&id2)).await;
    }
    res
}

async fn upload_size(state: &Arc<AppState>, name: &str, id: &str) -> Result<u64, ApiError> {
    if !valid_upload_id(id) {
        return Err(upload_unknown(id));
    }
    let st = state.clone();
    let (n2, id2) = (name.to_string(), id.to_string());
    blocking(move || st.reg.upload_size(&n2, &id2))
        .await?
        .ok_or_else(|| upload_unknown(id))
}

async fn patch_upload(state: &Arc<AppState>, req: Request<Body>, name: String, id: String) -> Resp {
    if !valid_upload_id(&id) {
        return Err(upload_unknown(&id));
    }
    let lock = state.upload_lock(&id);
    let mut hash = lock.lock().await;
    let size = match upload_size(state, &name, &id).await {
        Ok(s) => s,
        Err(e) => {
            drop(hash);
            state.forget_upload(&id);
            return Err(e);
        }
    };
    let expected = check_content_range(req.headers(), &name, &id, size)?;
    let new_size = append(state, &mut hash, &id, size, req.into_body()).await?;
    if let Some(len) = expected {
        if new_size - size != len {
            let path = state.reg.upload_data(&id);
            let _ = tokio::task::spawn_blocking(move || {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size))
            })
            .await;
            hash.hasher = None;
            hash.hashed = u64::MAX;
            return Err(ApiError::new(
                Code::SizeInvalid,
                format!(
                    "the chunk had {} bytes but Content-Range announced {len}",
                    new_size - size
                ),
            ));
        }
    }
    build(
        upload_headers(StatusCode::ACCEPTED, &name, &id, new_size),
        Body::empty(),
    )
}

async fn put_upload(state: &Arc<AppState>, req: Request<Body>, name: String, id: String) -> Resp {
    if !valid_upload_id(&id) {
        return Err(upload_unknown(&id));
    }
    let query = parse_query(req.uri().query());
    let lock = state.upload_lock(&id);
    let mut hash = lock.lock().await;
    let size = match upload_size(state, &name, &id).await {
        Ok(s) => s,
        Err(e) => {
            drop(hash);
            state.forget_upload(&id);
            return Err(e);
        }
    };
    let Some(d) = query_get(&query, "digest") else {
        return Err(ApiError::new(
            Code::DigestInvalid,
            "the digest query parameter is required to finish an upload",
        ));
    };
    let d = parse_digest(d)?;
    check_content_range(req.headers(), &name, &id, size)?;
    let res = finish(state, &mut hash, &name, &id, size, req.into_body(), &d).await;
    drop(hash);
    state.forget_upload(&id);
    res?;
    blob_created(&name, &d)
}

async fn upload_status(state: &Arc<AppState>, name: String, id: String) -> Resp {
    let size = upload_size(state, &name, &id).await?;
    build(
        upload_headers(StatusCode::NO_CONTENT, &name, &id, size),
        Body::empty(),
    )
}

async fn cancel_upload(state: &Arc<AppState>, name: String, id: String) -> Resp {
    upload_size(state, &name, &id).await?;
    let st = state.clone();
    let id2 = id.clone();
    blocking(move || st.reg.delete_upload(&id2)).await?;
    state.forget_upload(&id);
    build(empty(StatusCode::NO_CONTENT), Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(d: &Digest) -> Value {
        json!({"mediaType": "application/octet-stream", "digest": d.to_string(), "size": 1})
    }

    #[test]
    fn manifest_parsing_collects_blobs_children_and_subject() {
        let c = Digest::of_bytes(b"c");
        let l = Digest::of_bytes(b"l");
        let s = Digest::of_bytes(b"s");
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/x.cfg", "digest": c.to_string(), "size": 1},
            "layers": [desc(&l)], "subject": desc(&s), "annotations": {"a": "b"}});
        let p = parse_manifest(m.to_string().as_bytes(), None).unwrap();
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(p.blobs, vec![c.clone(), l.clone()]);
        assert_eq!(p.subject, Some(s));
        assert_eq!(p.artifact_type.as_deref(), Some("application/x.cfg"));
        assert_eq!(p.annotations, Some(json!({"a": "b"})));

        let i = json!({"schemaVersion": 2, "manifests": [desc(&l)], "artifactType": "x/y"});
        let p = parse_manifest(i.to_string().as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(p.children, vec![l]);
        assert_eq!(p.artifact_type.as_deref(), Some("x/y"));
    }

    #[test]
    fn manifest_parsing_rejects_bad_input() {
        let bad = |b: &str, ct: Option<&str>| parse_manifest(b.as_bytes(), ct).unwrap_err().code;
        assert_eq!(bad("not json", None), Code::ManifestInvalid);
        assert_eq!(bad(r#"{"schemaVersion":1}"#, None), Code::ManifestInvalid);
        assert_eq!(
            bad(r#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None),
            Code::ManifestInvalid
        );
        assert_eq!(
            bad(
                &format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}"}}"#),
                Some(OCI_INDEX)
            ),
            Code::ManifestInvalid
        );
        assert_eq!(
            bad(
                r#"{"schemaVersion":2,"config":{"digest":"sha256:xyz"},"layers":[]}"#,
                Some(OCI_MANIFEST)
            ),
            Code::ManifestInvalid
        );
    }

    #[test]
    fn pagination_limits_and_continues() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = parse_query(Some("n=2"));
        let (page, next) = paginate(items.clone(), &q).unwrap();
        assert_eq!(page, vec!["a", "b"]);
        assert_eq!(next, Some((2, "b".to_string())));
        let q = parse_query(Some("n=2&last=b"));
        let (page, next) = paginate(items.clone(), &q).unwrap();
        assert_eq!(page, vec!["c", "d"]);
        assert_eq!(next, None);
        let (page, _) = paginate(items.clone(), &parse_query(Some("n=0"))).unwrap();
        assert!(page.is_empty());
        assert!(paginate(items, &parse_query(Some("n=x"))).is_err());
    }
}
