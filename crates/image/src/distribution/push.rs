//! `push`: blobs (HEAD, cross-repository mount, monolithic or chunked
//! upload, in parallel), then the manifest(s) by digest and tag.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::store::{parse_reference, AnyManifest, Digest, Reference, Store};

use super::http::{error_detail, http_error, runtime, Registry};
use super::{short_id, sources, ClientOptions, DistError, ProgressEvent, PushOptions, PushReport};

const PROGRESS_EVERY: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 256 * 1024;

/// Pushes the local image `local` (any name or id [`Store::resolve`]
/// accepts) to `dest` (default: the image's own reference).
pub fn push(
    store: &Store,
    local: &str,
    dest: Option<&str>,
    opts: &ClientOptions,
    popts: &PushOptions,
) -> Result<PushReport, DistError> {
    // No GC while blobs this push writes (compressed layers, the manifest
    // naming them) wait for their upload.
    let _lock = store.lock_shared()?;
    let img = store.resolve(local)?;
    let dest = match dest {
        Some(d) => parse_reference(d)?,
        None => {
            let named = parse_reference(local)
                .ok()
                .filter(|r| img.names.contains(&r.to_string()));
            match named.or_else(|| img.names.first().and_then(|n| parse_reference(n).ok())) {
                Some(r) => r,
                None => {
                    return Err(DistError::Other(format!(
                        "image {local} has no name to push it as; give a destination (REGISTRY/REPO:TAG)"
                    )))
                }
            }
        }
    };
    let rt = runtime(2)?;
    rt.block_on(push_async(store, img, dest, opts, popts))
}

struct Plan {
    /// Manifests pushed by digest before the top one (an index's children).
    children: Vec<(Digest, Vec<u8>, String)>,
    /// The manifest or index pushed by tag.
    top: (Digest, Vec<u8>, String),
    /// Blobs (layers, then configs), deduplicated.
    blobs: Vec<(Digest, u64)>,
    note: Option<String>,
}

fn media_type_of(data: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .or_else(|| {
                    Some(if v.get("manifests").is_some() {
                        crate::store::OCI_INDEX.to_string()
                    } else {
                        crate::store::OCI_MANIFEST.to_string()
                    })
                })
        })
        .unwrap_or_else(|| crate::store::OCI_MANIFEST.to_string())
}

fn manifest_blobs(
    store: &Store,
    d: &Digest,
    out: &mut Vec<(Digest, u64)>,
) -> Result<(), DistError> {
    if let AnyManifest::Image(m) = store.read_any_manifest(d)? {
        for l in m.layers().iter().chain(std::iter::once(m.config())) {
            let ld = Digest::try_from(l.digest())?;
            if !out.iter().any(|(x, _)| *x == ld) {
                out.push((ld, l.size()));
            }
        }
    }
    Ok(())
}

fn plan(
    store: &Store,
    img: &crate::store::ImageRef,
    compression: super::PushCompression,
    opts: &ClientOptions,
) -> Result<Plan, DistError> {
    let td = Digest::try_from(img.target.digest())?;
    let read = |d: &Digest| -> Result<(Digest, Vec<u8>, String), DistError> {
        let data = store.read_blob_limited(d, crate::store::MAX_MANIFEST_BYTES, "manifest")?;
        let mt = media_type_of(&data);
        Ok((d.clone(), data, mt))
    };
    let mut blobs = Vec::new();
    if td == img.manifest_digest {
        let md = super::compress::manifest_for_push(store, &td, compression, opts)?;
        manifest_blobs(store, &md, &mut blobs)?;
        return Ok(Plan {
            children: Vec::new(),
            top: read(&md)?,
            blobs,
            note: None,
        });
    }
    // An index: all its children must be here to push it.
    let mut complete = true;
    let mut children = Vec::new();
    if let AnyManifest::Index(i) = store.read_any_manifest(&td)? {
        for c in i.manifests() {
            let cd = Digest::try_from(c.digest())?;
            let ok = store.has_blob(&cd)
                && match store.read_any_manifest(&cd) {
                    Ok(AnyManifest::Image(m)) => m
                        .layers()
                        .iter()
                        .chain(std::iter::once(m.config()))
                        .all(|l| Digest::try_from(l.digest()).is_ok_and(|d| store.has_blob(&d))),
                    _ => false,
                };
            if !ok {
                complete = false;
                break;
            }
            children.push(cd);
        }
    }
    if complete {
        let mut ch = Vec::new();
        for c in &children {
            manifest_blobs(store, c, &mut blobs)?;
            ch.push(read(c)?);
        }
        return Ok(Plan {
            children: ch,
            top: read(&td)?,
            blobs,
            note: None,
        });
    }
    let md = super::compress::manifest_for_push(store, &img.manifest_digest, compression, opts)?;
    manifest_blobs(store, &md, &mut blobs)?;
    Ok(Plan {
        children: Vec::new(),
        top: read(&md)?,
        blobs,
        note: Some(format!(
            "the image index {td} lists platforms that are not in the local store; pushed only the platform manifest {}",
            img.manifest_digest
        )),
    })
}

/// The config blobs among a plan's blobs.
fn config_digests(store: &Store, plan: &Plan) -> Result<Vec<Digest>, DistError> {
    let mut out = Vec::new();
    for (d, _, _) in plan.children.iter().chain(std::iter::once(&plan.top)) {
        if let AnyManifest::Image(m) = store.read_any_manifest(d)? {
            out.push(Digest::try_from(m.config().digest())?);
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Existing,
    Mounted,
    Pushed,
}

async fn push_async(
    store: &Store,
    img: crate::store::ImageRef,
    dest: Reference,
    opts: &ClientOptions,
    popts: &PushOptions,
) -> Result<PushReport, DistError> {
    let plan = plan(store, &img, popts.compression, opts)?;
    let reg = Arc::new(Registry::connect(opts, &dest.domain, None).await?);
    let sem = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
    let mut jobs = Vec::new();
    let configs = config_digests(store, &plan)?;
    for (d, size) in plan.blobs.clone() {
        let reg = reg.clone();
        let sem = sem.clone();
        let store = store.clone();
        let mut opts = opts.clone();
        if configs.contains(&d) {
            // Docker shows layers only.
            opts.progress = None;
        }
        let dest = dest.clone();
        let chunk = popts.chunk_size;
        jobs.push(tokio::spawn(async move {
            let _p = sem
                .acquire_owned()
                .await
                .map_err(|_| DistError::Other("upload queue closed".into()))?;
            push_blob(&reg, &store, &dest, &d, size, &opts, chunk).await
        }));
    }
    let (mut pushed, mut existing, mut mounted) = (0, 0, 0);
    let mut first_err = None;
    for j in jobs {
        match j.await {
            Ok(Ok(Outcome::Existing)) => existing += 1,
            Ok(Ok(Outcome::Mounted)) => mounted += 1,
            Ok(Ok(Outcome::Pushed)) => pushed += 1,
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(DistError::Other(format!("an upload task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let scopes = push_scopes(&dest.path, None);
    for (d, data, mt) in &plan.children {
        put_manifest(&reg, &dest.path, &d.to_string(), d, data, mt, &scopes).await?;
    }
    let (td, tdata, tmt) = &plan.top;
    let tag = match (&dest.tag, &dest.digest) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".into(),
    };
    if let Some(want) = &dest.digest {
        if want != td {
            return Err(DistError::DigestMismatch {
                what: format!("push destination {dest}"),
                expected: want.to_string(),
                actual: td.to_string(),
            });
        }
    }
    put_manifest(&reg, &dest.path, &tag, td, tdata, tmt, &scopes).await?;
    opts.emit(ProgressEvent::ManifestWritten {
        reference: dest.to_string(),
        digest: td.clone(),
        size: tdata.len() as u64,
    });
    let digests: Vec<Digest> = plan.blobs.iter().map(|(d, _)| d.clone()).collect();
    let _ = sources::record(store, &digests, &dest.name());
    Ok(PushReport {
        reference: dest.to_string(),
        digest: td.clone(),
        size: tdata.len() as u64,
        layers_pushed: pushed,
        layers_existing: existing,
        layers_mounted: mounted,
        note: plan.note,
    })
}

fn push_scopes(path: &str, from: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("repository:{path}:pull,push")];
    if let Some(f) = from {
        v.push(format!("repository:{f}:pull"));
    }
    v
}

async fn put_manifest(
    reg: &Registry,
    path: &str,
    reference: &str,
    digest: &Digest,
    data: &[u8],
    media_type: &str,
    scopes: &[String],
) -> Result<(), DistError> {
    let url = reg.url(&format!("/v2/{path}/manifests/{reference}"));
    let body = Bytes::copy_from_slice(data);
    let resp = reg
        .send(scopes, &|| {
            Ok(reg
                .http()
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(body.clone()))
        })
        .await?;
    if !resp.status().is_success() {
        return Err(http_error("PUT", &url, resp).await);
    }
    if let Some(h) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if h.starts_with("sha256:") && h != digest.to_string() {
            return Err(DistError::DigestMismatch {
                what: format!("manifest pushed to {}/{path}:{reference}", reg.name),
                expected: digest.to_string(),
                actual: h.to_string(),
            });
        }
    }
    Ok(())
}

fn location(reg: &Registry, resp: &Response, what: &Digest) -> Result<String, DistError> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| reg.url(l))
        .ok_or_else(|| DistError::Upload {
            digest: what.clone(),
            registry: reg.name.clone(),
            cause: format!(
                "the registry answered {} without a Location header",
                resp.status()
            ),
        })
}

fn with_digest(loc: &str, d: &Digest) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={d}")
}

enum Failure {
    Retry(String),
    Fatal(DistError),
}

fn classify(e: DistError) -> Failure {
    match e {
        DistError::Connect { .. } => Failure::Retry(e.to_string()),
        e => Failure::Fatal(e),
    }
}

async fn push_blob(
    reg: &Registry,
    store: &Store,
    dest: &Reference,
    d: &Digest,
    size: u64,
    opts: &ClientOptions,
    chunk: Option<u64>,
) -> Result<Outcome, DistError> {
    let id = short_id(d);
    let scopes = push_scopes(&dest.path, None);
    let head_url = reg.url(&format!("/v2/{}/blobs/{d}", dest.path));
    let resp = reg
        .send(&scopes, &|| Ok(reg.http().head(&head_url)))
        .await?;
    if resp.status().is_success() {
        opts.emit(ProgressEvent::LayerExists { id });
        return Ok(Outcome::Existing);
    }
    let mut attempt = 0u32;
    loop {
        match push_blob_once(reg, store, dest, d, size, opts, chunk).await {
            Ok(o) => return Ok(o),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(cause)) => {
                if attempt >= opts.retries {
                    return Err(DistError::Upload {
                        digest: d.clone(),
                        registry: reg.name.clone(),
                        cause: format!("{cause} (after {} attempt(s))", attempt + 1),
                    });
                }
                attempt += 1;
                opts.emit(ProgressEvent::Retrying {
                    id: id.clone(),
                    attempt,
                    error: cause,
                });
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt.min(5)))).await;
            }
        }
    }
}

async fn push_blob_once(
    reg: &Registry,
    store: &Store,
    dest: &Reference,
    d: &Digest,
    size: u64,
    opts: &ClientOptions,
    chunk: Option<u64>,
) -> Result<Outcome, Failure> {
    let id = short_id(d);
    let path = &dest.path;
    // A mount from another repository of the same registry that has it.
    let mut upload_loc = None;
    let domain_prefix = format!("{}/", dest.domain);
    for src in sources::lookup(store, d) {
        let Some(from) = src.strip_prefix(&domain_prefix) else {
            continue;
        };
        if from == path {
            continue;
        }
        let url = reg.url(&format!("/v2/{path}/blobs/uploads/?mount={d}&from={from}"));
        let scopes = push_scopes(path, Some(from));
        let resp = reg
            .send(&scopes, &|| {
                Ok(reg.http().post(&url).header(CONTENT_LENGTH, "0"))
            })
            .await
            .map_err(classify)?;
        if resp.status() == StatusCode::CREATED {
            opts.emit(ProgressEvent::Mounted {
                id,
                from: from.to_string(),
            });
            return Ok(Outcome::Mounted);
        }
        if resp.status() == StatusCode::ACCEPTED {
            upload_loc = Some(location(reg, &resp, d).map_err(Failure::Fatal)?);
            break;
        }
    }
    let scopes = push_scopes(path, None);
    let mut loc = match upload_loc {
        Some(l) => l,
        None => {
            let url = reg.url(&format!("/v2/{path}/blobs/uploads/"));
            let resp = reg
                .send(&scopes, &|| {
                    Ok(reg.http().post(&url).header(CONTENT_LENGTH, "0"))
                })
                .await
                .map_err(classify)?;
            check_status(reg, "POST", &url, resp, StatusCode::ACCEPTED, d)
                .await
                .and_then(|r| location(reg, &r, d).map_err(Failure::Fatal))?
        }
    };
    let blob_path = store.blob_path(d);
    let sent = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let report = {
        let opts = opts.clone();
        let id = id.clone();
        let sent = sent.clone();
        move |n: u64| {
            let done = sent.fetch_add(n, Ordering::Relaxed) + n;
            if opts.progress.is_none() {
                return;
            }
            if let Ok(mut l) = last.lock() {
                if l.elapsed() >= PROGRESS_EVERY || done == size {
                    *l = Instant::now();
                    opts.emit(ProgressEvent::Pushing {
                        id: id.clone(),
                        done,
                        total: size,
                    });
                }
            }
        }
    };
    let put_url;
    match chunk {
        None => {
            put_url = with_digest(&loc, d);
            let report = report.clone();
            let resp = reg
                .send(&scopes, &|| {
                    let body = file_body(blob_path.clone(), report.clone())?;
                    Ok(reg
                        .http()
                        .put(&put_url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size.to_string())
                        .body(body))
                })
                .await
                .map_err(classify)?;
            check_status(reg, "PUT", &put_url, resp, StatusCode::CREATED, d).await?;
        }
        Some(n) => {
            let n = n.max(1);
            let mut f = std::fs::File::open(&blob_path).map_err(|source| {
                Failure::Fatal(DistError::Io {
                    what: "open blob".into(),
                    path: blob_path.clone(),
                    source,
                })
            })?;
            let mut off = 0u64;
            while off < size {
                let len = n.min(size - off);
                let mut buf = vec![0u8; len as usize];
                f.seek(SeekFrom::Start(off))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map_err(|source| {
                        Failure::Fatal(DistError::Io {
                            what: "read blob".into(),
                            path: blob_path.clone(),
                            source,
                        })
                    })?;
                let body = Bytes::from(buf);
                let range = format!("{}-{}", off, off + len - 1);
                let url = loc.clone();
                let resp = reg
                    .send(&scopes, &|| {
                        Ok(reg
                            .http()
                            .patch(&url)
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_RANGE, range.clone())
                            .header(CONTENT_LENGTH, len.to_string())
                            .body(body.clone()))
                    })
                    .await
                    .map_err(classify)?;
                let resp = check_status(reg, "PATCH", &url, resp, StatusCode::ACCEPTED, d).await?;
                loc = location(reg, &resp, d).map_err(Failure::Fatal)?;
                off += len;
                report(len);
            }
            put_url = with_digest(&loc, d);
            let resp = reg
                .send(&scopes, &|| {
                    Ok(reg.http().put(&put_url).header(CONTENT_LENGTH, "0"))
                })
                .await
                .map_err(classify)?;
            check_status(reg, "PUT", &put_url, resp, StatusCode::CREATED, d).await?;
        }
    }
    opts.emit(ProgressEvent::Pushed { id });
    Ok(Outcome::Pushed)
}

async fn check_status(
    reg: &Registry,
    method: &str,
    url: &str,
    resp: Response,
    want: StatusCode,
    d: &Digest,
) -> Result<Response, Failure> {
    let s = resp.status();
    if s == want
        || (s.is_success() && want != StatusCode::ACCEPTED)
        || s == StatusCode::ACCEPTED && want == StatusCode::ACCEPTED
    {
        return Ok(resp);
    }
    if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
        let detail = error_detail(resp).await;
        return Err(Failure::Retry(format!("{method} {url}: {s}: {detail}")));
    }
    let detail = error_detail(resp).await;
    Err(Failure::Fatal(DistError::Upload {
        digest: d.clone(),
        registry: reg.name.clone(),
        cause: format!("{method} {url}: the registry answered {s}: {detail}"),
    }))
}

/// The blob file as a streamed request body, read 256 KiB at a time.
fn file_body(
    path: PathBuf,
    report: impl Fn(u64) + Send + Sync + 'static,
) -> Result<reqwest::Body, DistError> {
    let f = std::fs::File::open(&path).map_err(|source| DistError::Io {
        what: "open blob".into(),
        path: path.clone(),
        source,
    })?;
    let f = tokio::fs::File::from_std(f);
    let stream = futures_util::stream::unfold((f, report), |(mut f, report)| async move {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut filled = 0;
        // Fill the buffer (tokio's file reads come in smaller pieces).
        loop {
            match f.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break;
                    }
                }
                Err(e) => return Some((Err(e), (f, report))),
            }
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        report(filled as u64);
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), (f, report)))
    });
    Ok(reqwest::Body::wrap_stream(stream))
}
