//! `pull`: manifest (or index) and config fetched and verified, layers
//! downloaded in parallel and unpacked while they download, everything
//! committed to the store only once all of it is verified.

use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use oci_spec::image::{Descriptor, MediaType};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use crate::layer::{self, ApplyOptions, WhiteoutMode};
use crate::store::{
    is_index_media_type, is_manifest_media_type, parse_any_manifest, parse_reference,
    select_manifest, AnyManifest, BlobWriter, ConfigInfo, Digest, LayerIngest, Reference, Store,
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_INDEX,
    OCI_MANIFEST,
};

use super::auth::registry_key;
use super::http::{endpoints, error_detail, http_error, runtime, Registry};
use super::{short_id, sources, ClientOptions, DistError, ProgressEvent, PullOptions, PullReport};

/// Progress events at most this often per layer.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Pulls `reference` into `store`: see the module documentation. On any
/// error the store is left as it was (no tag, blob or layer added).
pub fn pull(
    store: &Store,
    reference: &str,
    opts: &ClientOptions,
    pull: &PullOptions,
) -> Result<PullReport, DistError> {
    let r = parse_reference(reference)?;
    if r.digest.is_none() {
        if pull.verify_digest {
            return Err(DistError::DigestRequired {
                reference: r.to_string(),
                why: "--verify-digest refuses a reference without @sha256".into(),
            });
        }
        let key = registry_key(&r.domain);
        if opts
            .config
            .require_digest
            .iter()
            .any(|d| registry_key(d) == key)
        {
            return Err(DistError::DigestRequired {
                reference: r.to_string(),
                why: format!("the configuration requires pulls from {key} to be pinned by digest (require-digest)"),
            });
        }
    }
    let rt = runtime(2)?;
    rt.block_on(pull_async(store, &r, opts, pull))
}

/// A manifest-like document fetched and verified.
struct Fetched {
    data: Bytes,
    digest: Digest,
    media_type: String,
}

fn scope_pull(path: &str) -> Vec<String> {
    vec![format!("repository:{path}:pull")]
}

async fn pull_async(
    store: &Store,
    r: &Reference,
    opts: &ClientOptions,
    popts: &PullOptions,
) -> Result<PullReport, DistError> {
    let name = r.to_string();
    opts.emit(ProgressEvent::Resolving {
        reference: name.clone(),
    });
    let want = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let eps = endpoints(opts, &r.domain);
    let mut last_err = None;
    let mut found = None;
    for (i, ep) in eps.iter().enumerate() {
        let is_primary = i + 1 == eps.len() && ep == &r.domain;
        let conn = if is_primary {
            Registry::connect(opts, &r.domain, None).await
        } else {
            Registry::connect(opts, &registry_key(ep), Some(ep)).await
        };
        let res = match conn {
            Ok(reg) => fetch_manifest(&reg, &r.path, &want, r.digest.as_ref())
                .await
                .map(|m| (reg, m)),
            Err(e) => Err(e),
        };
        match res {
            Ok(x) => {
                found = Some(x);
                break;
            }
            // A verification failure is not something another mirror should paper over.
            Err(e @ (DistError::DigestMismatch { .. } | DistError::ManifestTooLarge { .. })) => {
                return Err(e)
            }
            Err(e) => last_err = Some(e),
        }
    }
    let (reg, top) = match found {
        Some(x) => x,
        None => {
            return Err(last_err
                .unwrap_or_else(|| DistError::Other(format!("no registry endpoint for {name}"))))
        }
    };
    let reg = Arc::new(reg);
    opts.emit(ProgressEvent::Resolved {
        reference: name.clone(),
        digest: top.digest.clone(),
    });

    // The image manifest (through the index if one was served).
    let mut child: Option<Fetched> = None;
    let manifest = match parse_any_manifest(&top.digest, &top.data)? {
        AnyManifest::Image(m) => *m,
        AnyManifest::Index(idx) => {
            let d = select_manifest(&idx, &popts.platform)?;
            let cd = Digest::try_from(d.digest())?;
            let f = fetch_manifest(&reg, &r.path, &cd.to_string(), Some(&cd)).await?;
            if f.data.len() as u64 != d.size() {
                return Err(DistError::Protocol {
                    registry: reg.name.clone(),
                    reason: format!(
                        "manifest {cd} is {} bytes but the index says {}",
                        f.data.len(),
                        d.size()
                    ),
                });
            }
            let m = match parse_any_manifest(&cd, &f.data)? {
                AnyManifest::Image(m) => *m,
                AnyManifest::Index(_) => {
                    return Err(DistError::Protocol {
                        registry: reg.name.clone(),
                        reason: format!(
                            "{cd} (for {}) is a nested index; not supported",
                            popts.platform
                        ),
                    })
                }
            };
            child = Some(f);
            m
        }
    };

    // The config.
    let cdesc = manifest.config();
    let config_digest = Digest::try_from(cdesc.digest())?;
    if cdesc.size() > MAX_CONFIG_BYTES {
        return Err(DistError::Protocol {
            registry: reg.name.clone(),
            reason: format!(
                "image config {config_digest} is {} bytes, more than the {MAX_CONFIG_BYTES} allowed",
                cdesc.size()
            ),
        });
    }
    let config_data = fetch_small_blob(&reg, &r.path, &config_digest, cdesc.size()).await?;
    let cfg: ConfigInfo =
        serde_json::from_slice(&config_data).map_err(|e| DistError::Protocol {
            registry: reg.name.clone(),
            reason: format!("image config {config_digest} does not parse: {e}"),
        })?;
    let chains = cfg.chain_ids()?;
    let layers = manifest.layers().clone();
    if chains.len() != layers.len() {
        return Err(DistError::Protocol {
            registry: reg.name.clone(),
            reason: format!(
                "the image config {config_digest} lists {} diff_ids but the manifest has {} layers",
                chains.len(),
                layers.len()
            ),
        });
    }

    let previous = store
        .index_entries()?
        .into_iter()
        .find(|d| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(crate::store::REF_NAME_ANNOTATION))
                .and_then(|n| parse_reference(n).ok())
                .is_some_and(|p| p.to_string() == name)
        })
        .and_then(|d| Digest::try_from(d.digest()).ok());

    // GC waits until the image is tagged.
    let _lock = store.lock_shared()?;

    // Layers.
    // Downloads are limited to max_concurrent; unpacking, which follows
    // each download through its blob file, to that plus the CPU count, so
    // that a layer slow to unpack (many small files) never holds a download
    // slot.
    let sem = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let unpack_sem = Arc::new(Semaphore::new(opts.max_concurrent.max(1) + cpus));
    let mut jobs = Vec::new();
    let mut present = 0usize;
    let mut fetched = 0usize;
    for (i, l) in layers.iter().enumerate() {
        let digest = Digest::try_from(l.digest())?;
        let chain = chains[i].clone();
        let diff_id = cfg.rootfs.diff_ids[i].clone();
        let id = short_id(&digest);
        let has_blob = store.has_blob(&digest) && store.blob_size(&digest).ok() == Some(l.size());
        if has_blob && store.has_layer(&chain) {
            present += 1;
            opts.emit(ProgressEvent::LayerExists { id });
            continue;
        }
        let store = store.clone();
        let size = l.size();
        if has_blob {
            present += 1;
            let o = opts.clone();
            jobs.push(tokio::task::spawn_blocking(move || {
                unpack_from_store(&store, &digest, &chain, &diff_id, &o).map(|ing| LayerDone {
                    blob: None,
                    ingest: ing,
                    digest,
                    size,
                })
            }));
            continue;
        }
        fetched += 1;
        opts.emit(ProgressEvent::Waiting {
            id: id.clone(),
            size,
        });
        let ctx = Ctx {
            reg: reg.clone(),
            path: r.path.clone(),
            opts: opts.clone(),
        };
        let sem = sem.clone();
        let unpack_sem = unpack_sem.clone();
        jobs.push(tokio::spawn(async move {
            let job = LayerJob {
                digest,
                size,
                chain,
                diff_id,
            };
            fetch_layer(ctx, store, job, sem, unpack_sem).await
        }));
    }
    let mut done = Vec::new();
    let mut first_err = None;
    for j in jobs {
        match j.await {
            Ok(Ok(d)) => done.push(d),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(DistError::Other(format!("a layer task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    // Everything is verified: commit.
    let mut bytes_fetched = 0;
    let mut recorded = Vec::new();
    for d in done {
        if let Some(b) = d.blob {
            b.commit(&d.digest, d.size)?;
            bytes_fetched += d.size;
        }
        store.commit_layer(d.ingest)?;
        recorded.push(d.digest.clone());
    }
    store.write_blob(&config_data[..], Some(&config_digest), Some(cdesc.size()))?;
    if let Some(c) = &child {
        store.write_blob(&c.data[..], Some(&c.digest), Some(c.data.len() as u64))?;
    }
    store.write_blob(
        &top.data[..],
        Some(&top.digest),
        Some(top.data.len() as u64),
    )?;
    let desc = Descriptor::new(
        MediaType::from(top.media_type.as_str()),
        top.data.len() as u64,
        top.digest.to_oci(),
    );
    let up_to_date = previous.as_ref() == Some(&top.digest) && fetched == 0;
    if !up_to_date {
        store.tag(&name, desc)?;
    }
    recorded.push(config_digest.clone());
    if let Err(e) = sources::record(store, &recorded, &r.name()) {
        // Only an optimisation for push; the pull itself succeeded.
        let _ = e;
    }
    Ok(PullReport {
        reference: name,
        digest: top.digest,
        image_id: config_digest,
        layers_fetched: fetched,
        layers_present: present,
        bytes_fetched,
        up_to_date,
    })
}

struct LayerDone {
    blob: Option<BlobWriter>,
    ingest: LayerIngest,
    digest: Digest,
    size: u64,
}

#[derive(Clone)]
struct Ctx {
    reg: Arc<Registry>,
    path: String,
    opts: ClientOptions,
}

fn apply_opts() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::OverlayFs,
        ..ApplyOptions::default()
    }
}

fn unpack_from_store(
    store: &Store,
    digest: &Digest,
    chain: &str,
    diff_id: &str,
    opts: &ClientOptions,
) -> Result<LayerIngest, DistError> {
    let id = short_id(digest);
    let ingest = store.begin_layer(chain)?;
    let stats = layer::apply(store.open_blob(digest)?, &ingest.diff_path(), &apply_opts())
        .map_err(|source| DistError::Layer {
            digest: digest.clone(),
            source,
        })?;
    if stats.diff_id != diff_id {
        return Err(DistError::DiffIdMismatch {
            digest: digest.clone(),
            got: stats.diff_id,
            want: diff_id.to_string(),
        });
    }
    opts.emit(ProgressEvent::PullComplete { id });
    Ok(ingest)
}

/// How far the download has written the blob file, and how it ended.
#[derive(Default)]
struct Fill {
    written: u64,
    done: Option<Result<(), String>>,
}

/// Shared between a download and the unpacker following it.
#[derive(Default)]
struct Follow {
    fill: Mutex<Fill>,
    cv: Condvar,
}

impl Follow {
    fn lock(&self) -> std::sync::MutexGuard<'_, Fill> {
        match self.fill.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
    fn advance(&self, n: u64) {
        self.lock().written += n;
        self.cv.notify_all();
    }
    fn finish(&self, r: Result<(), String>) {
        self.lock().done = Some(r);
        self.cv.notify_all();
    }
}

/// Reads the blob file while the download is still writing it.
struct FollowReader {
    file: std::fs::File,
    pos: u64,
    follow: Arc<Follow>,
    id: String,
    total: u64,
    opts: ClientOptions,
    last: Instant,
}

impl Read for FollowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let avail = {
            let mut g = self.follow.lock();
            loop {
                if g.written > self.pos {
                    break g.written - self.pos;
                }
                match &g.done {
                    Some(Ok(())) => return Ok(0),
                    Some(Err(e)) => return Err(io::Error::other(e.clone())),
                    None => {}
                }
                g = match self.follow.cv.wait(g) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
        };
        let want = buf.len().min(avail.min(usize::MAX as u64) as usize);
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        if self.opts.progress.is_some() && self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            self.opts.emit(ProgressEvent::Extracting {
                id: self.id.clone(),
                done: self.pos,
                total: self.total,
            });
        }
        Ok(n)
    }
}

struct LayerJob {
    digest: Digest,
    size: u64,
    chain: String,
    diff_id: String,
}

async fn fetch_layer(
    ctx: Ctx,
    store: Store,
    job: LayerJob,
    download_slots: Arc<Semaphore>,
    unpack_slots: Arc<Semaphore>,
) -> Result<LayerDone, DistError> {
    let LayerJob {
        digest,
        size,
        chain,
        diff_id,
    } = job;
    let permit = download_slots
        .acquire_owned()
        .await
        .map_err(|_| DistError::Other("download queue closed".into()))?;
    let mut blob = store.begin_blob()?;
    let reader_file = std::fs::File::open(blob.path()).map_err(|source| DistError::Io {
        what: "open".into(),
        path: blob.path().to_path_buf(),
        source,
    })?;
    let ingest = store.begin_layer(&chain)?;
    let follow = Arc::new(Follow::default());
    let reader = FollowReader {
        file: reader_file,
        pos: 0,
        follow: follow.clone(),
        id: short_id(&digest),
        total: size,
        opts: ctx.opts.clone(),
        last: Instant::now(),
    };
    let unpack = tokio::spawn(async move {
        let _slot = unpack_slots.acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let res = layer::apply(reader, &ingest.diff_path(), &apply_opts());
            (res, ingest)
        })
        .await
    });
    let mut sink = |chunk: &[u8]| -> Result<(), String> {
        blob.write_all(chunk)
            .and_then(|_| blob.flush())
            .map_err(|e| format!("writing the blob: {e}"))?;
        follow.advance(chunk.len() as u64);
        Ok(())
    };
    let dl = download(&ctx, &digest, size, &mut sink).await;
    drop(permit);
    follow.finish(dl.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    // fsync here, in parallel with the other layers, not at commit.
    let synced = match &dl {
        Ok(()) => tokio::task::block_in_place(|| blob.sync()),
        Err(_) => Ok(()),
    };
    let (res, ingest) = unpack
        .await
        .map_err(|e| DistError::Other(format!("the unpacking task failed: {e}")))?
        .map_err(|e| DistError::Other(format!("the unpacking thread failed: {e}")))?;
    dl?;
    synced?;
    let id = short_id(&digest);
    ctx.opts.emit(ProgressEvent::Verifying { id: id.clone() });
    if blob.size() != size {
        return Err(DistError::Download {
            digest,
            received: blob.size(),
            expected: size,
            cause: "the blob size differs from the manifest's".into(),
            attempts: 1,
        });
    }
    let actual = blob.digest();
    if actual != digest {
        return Err(DistError::DigestMismatch {
            what: format!("layer blob {digest}"),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let stats = res.map_err(|source| DistError::Layer {
        digest: digest.clone(),
        source,
    })?;
    if stats.diff_id != diff_id {
        return Err(DistError::DiffIdMismatch {
            digest,
            got: stats.diff_id,
            want: diff_id,
        });
    }
    ctx.opts.emit(ProgressEvent::PullComplete { id });
    Ok(LayerDone {
        blob: Some(blob),
        ingest,
        digest,
        size,
    })
}

enum Failure {
    Retry(String),
    Fatal(DistError),
}

/// Downloads a blob into `tx`, resuming with `Range` after a failure.
async fn download(
    ctx: &Ctx,
    digest: &Digest,
    size: u64,
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), String> + Send),
) -> Result<(), DistError> {
    let mut received = 0u64;
    let mut attempt = 0u32;
    let id = short_id(digest);
    loop {
        match download_once(ctx, digest, size, sink, &mut received, &id).await {
            Ok(()) => return Ok(()),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(cause)) => {
                if attempt >= ctx.opts.retries {
                    let e = DistError::Download {
                        digest: digest.clone(),
                        received,
                        expected: size,
                        cause,
                        attempts: attempt + 1,
                    };
                    return Err(e);
                }
                attempt += 1;
                ctx.opts.emit(ProgressEvent::Retrying {
                    id: id.clone(),
                    attempt,
                    error: cause,
                });
                let backoff = Duration::from_millis(100 * 2u64.pow(attempt.min(6)));
                tokio::time::sleep(backoff.min(Duration::from_secs(5))).await;
            }
        }
    }
}

async fn download_once(
    ctx: &Ctx,
    digest: &Digest,
    size: u64,
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), String> + Send),
    received: &mut u64,
    id: &str,
) -> Result<(), Failure> {
    let reg = &ctx.reg;
    let url = reg.url(&format!("/v2/{}/blobs/{digest}", ctx.path));
    let from = *received;
    let resp = reg
        .send(&scope_pull(&ctx.path), &|| {
            let mut rb = reg.http().get(&url);
            if from > 0 {
                rb = rb.header(RANGE, format!("bytes={from}-"));
            }
            Ok(rb)
        })
        .await
        .map_err(|e| match e {
            DistError::Connect { .. } => Failure::Retry(e.to_string()),
            e => Failure::Fatal(e),
        })?;
    let status = resp.status();
    let mut skip = 0u64;
    if status == StatusCode::PARTIAL_CONTENT {
        let start = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match start {
            Some(s) if s == from => {}
            _ => {
                return Err(Failure::Fatal(DistError::Protocol {
                    registry: reg.name.clone(),
                    reason: format!(
                        "asked blob {digest} from byte {from}, got a partial response with Content-Range {:?}",
                        resp.headers().get(CONTENT_RANGE)
                    ),
                }))
            }
        }
    } else if status.is_success() {
        // Range ignored: the whole blob again; drop what we already have.
        skip = from;
    } else if status == StatusCode::NOT_FOUND {
        let detail = error_detail(resp).await;
        return Err(Failure::Fatal(DistError::NotFound {
            what: format!("blob {digest} of {}", ctx.path),
            registry: reg.name.clone(),
            detail,
        }));
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        let detail = error_detail(resp).await;
        return Err(Failure::Retry(format!(
            "the registry answered {status}: {detail}"
        )));
    } else {
        return Err(Failure::Fatal(http_error("GET", &url, resp).await));
    }
    let mut stream = resp.bytes_stream();
    let stall = ctx.opts.stall_timeout;
    let mut last = Instant::now();
    loop {
        let next = match tokio::time::timeout(stall, stream.next()).await {
            Err(_) => {
                return Err(Failure::Retry(format!(
                    "no data for {:.1}s (stalled)",
                    stall.as_secs_f64()
                )))
            }
            Ok(n) => n,
        };
        let mut chunk = match next {
            None => break,
            Some(Err(e)) => {
                let text = if e.is_timeout() {
                    format!("no data for {:.1}s (stalled)", stall.as_secs_f64())
                } else {
                    let mut s = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(c) = src {
                        s.push_str(": ");
                        s.push_str(&c.to_string());
                        src = c.source();
                    }
                    format!("connection dropped: {s}")
                };
                return Err(Failure::Retry(text));
            }
            Some(Ok(c)) => c,
        };
        if skip > 0 {
            let k = skip.min(chunk.len() as u64) as usize;
            let _ = chunk.split_to(k);
            skip -= k as u64;
            if chunk.is_empty() {
                continue;
            }
        }
        *received += chunk.len() as u64;
        if *received > size {
            return Err(Failure::Fatal(DistError::Download {
                digest: digest.clone(),
                received: *received,
                expected: size,
                cause: "the registry sent more bytes than the manifest says the blob has".into(),
                attempts: 1,
            }));
        }
        if let Err(e) = sink(&chunk) {
            return Err(Failure::Fatal(DistError::Other(format!(
                "layer {digest}: {e}"
            ))));
        }
        if ctx.opts.progress.is_some() && (last.elapsed() >= PROGRESS_EVERY || *received == size) {
            last = Instant::now();
            ctx.opts.emit(ProgressEvent::Downloading {
                id: id.to_string(),
                done: *received,
                total: size,
            });
        }
    }
    if *received < size {
        return Err(Failure::Retry(format!(
            "the connection closed after {received} of {size} bytes"
        )));
    }
    Ok(())
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// GETs a manifest (by tag or digest), size-limited and verified.
async fn fetch_manifest(
    reg: &Registry,
    path: &str,
    reference: &str,
    pinned: Option<&Digest>,
) -> Result<Fetched, DistError> {
    debug_assert!(MANIFEST_ACCEPT.contains(OCI_INDEX) && MANIFEST_ACCEPT.contains(OCI_MANIFEST));
    debug_assert!(
        MANIFEST_ACCEPT.contains(DOCKER_MANIFEST_LIST)
            && MANIFEST_ACCEPT.contains(DOCKER_MANIFEST_V2)
    );
    let url = reg.url(&format!("/v2/{path}/manifests/{reference}"));
    let resp = reg
        .send(&scope_pull(path), &|| {
            Ok(reg.http().get(&url).header(ACCEPT, MANIFEST_ACCEPT))
        })
        .await?;
    let what = format!("{}/{path}:{reference}", reg.name).replace(":sha256", "@sha256");
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        let detail = error_detail(resp).await;
        return Err(DistError::NotFound {
            what: format!("manifest {what}"),
            registry: reg.name.clone(),
            detail,
        });
    }
    if !status.is_success() {
        return Err(http_error("GET", &url, resp).await);
    }
    let too_large = || DistError::ManifestTooLarge {
        what: what.clone(),
        registry: reg.name.clone(),
        limit: MAX_MANIFEST_BYTES,
    };
    if let Some(len) = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
    }
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ctype = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(c) = stream.next().await {
        let c = c.map_err(|e| reg.net_err(e))?;
        body.extend_from_slice(&c);
        if body.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
    }
    let digest = Digest::of_bytes(&body);
    if let Some(p) = pinned {
        if *p != digest {
            return Err(DistError::DigestMismatch {
                what: format!("manifest {what}"),
                expected: p.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
        if h != digest.to_string() {
            return Err(DistError::DigestMismatch {
                what: format!("manifest {what} (Docker-Content-Digest header)"),
                expected: h,
                actual: digest.to_string(),
            });
        }
    }
    let media_type = if is_manifest_media_type(&ctype) || is_index_media_type(&ctype) {
        ctype
    } else {
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| DistError::Protocol {
                registry: reg.name.clone(),
                reason: format!("manifest {what} is not valid JSON: {e}"),
            })?;
        match v.get("mediaType").and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None if v.get("manifests").is_some() => OCI_INDEX.to_string(),
            None => OCI_MANIFEST.to_string(),
        }
    };
    Ok(Fetched {
        data: Bytes::from(body),
        digest,
        media_type,
    })
}

/// GETs a small blob (a config) whole, verified.
async fn fetch_small_blob(
    reg: &Registry,
    path: &str,
    digest: &Digest,
    size: u64,
) -> Result<Bytes, DistError> {
    let url = reg.url(&format!("/v2/{path}/blobs/{digest}"));
    let resp = reg
        .send(&scope_pull(path), &|| Ok(reg.http().get(&url)))
        .await?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        let detail = error_detail(resp).await;
        return Err(DistError::NotFound {
            what: format!("blob {digest} of {path}"),
            registry: reg.name.clone(),
            detail,
        });
    }
    if !status.is_success() {
        return Err(http_error("GET", &url, resp).await);
    }
    let mut body = Vec::with_capacity(size.min(MAX_CONFIG_BYTES) as usize);
    let mut stream = resp.bytes_stream();
    while let Some(c) = stream.next().await {
        let c = c.map_err(|e| reg.net_err(e))?;
        body.extend_from_slice(&c);
        if body.len() as u64 > size {
            break;
        }
    }
    if body.len() as u64 != size {
        return Err(DistError::Download {
            digest: digest.clone(),
            received: body.len() as u64,
            expected: size,
            cause: "the blob size differs from the manifest's".into(),
            attempts: 1,
        });
    }
    let actual = Digest::of_bytes(&body);
    if actual != *digest {
        return Err(DistError::DigestMismatch {
            what: format!("blob {digest}"),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(Bytes::from(body))
}
