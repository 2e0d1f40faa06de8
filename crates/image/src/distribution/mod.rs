//! The registry client: pull images from, and push them to, registries that
//! speak the OCI distribution API (Docker Hub, `docker-registry`, Harbor,
//! ...), with Docker's configuration conventions (`daemon.json`-style
//! mirrors and insecure registries, `certs.d`, `auth.json`).
//!
//! Pull downloads the layers in parallel and unpacks each one *while* it
//! downloads: the response bytes are teed into a blob temp file (hashed)
//! and into the layer unpacker. Nothing becomes visible in the store until
//! every blob's digest and size and every layer's diff id are verified.

mod auth;
mod compress;
mod http;
mod pull;
mod push;
mod sources;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::store::{Digest, Platform, StoreError};

pub use auth::{login, logout};
pub use compress::PushCompression;
pub use pull::pull;
pub use push::push;

/// Where the registry configuration is read from when no path is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/barge/registries.json";
/// The environment variable naming the registry configuration file.
pub const CONFIG_ENV: &str = "BARGE_REGISTRIES_CONFIG";
/// The environment variable overriding the stall timeout (seconds).
pub const TIMEOUT_ENV: &str = "BARGE_REGISTRY_TIMEOUT";

/// Registry settings, from a JSON file in the style of Docker's
/// `daemon.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `default-registry`: `host[:port]` that references naming no registry
    /// are fetched from instead of docker.io (the local name stays
    /// `docker.io/...`).
    pub default_registry: Option<String>,
    /// `registry-mirrors`: URLs tried before docker.io (Docker's key).
    pub registry_mirrors: Vec<String>,
    /// `mirrors`: `{"host": ["https://m1", "http://m2:5000"]}`, for any registry.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// `insecure-registries`: `host[:port]` or CIDR; plain HTTP allowed and
    /// TLS not verified.
    pub insecure_registries: Vec<String>,
    /// `require-digest`: registries whose pulls must be pinned by `@sha256`.
    pub require_digest: Vec<String>,
    /// `certs-dirs`: `<dir>/<host[:port]>/*.crt` are extra CAs (Docker's layout).
    pub cert_dirs: Vec<PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            default_registry: None,
            registry_mirrors: Vec::new(),
            mirrors: BTreeMap::new(),
            insecure_registries: Vec::new(),
            require_digest: Vec::new(),
            cert_dirs: vec![
                PathBuf::from("/etc/barge/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfigFile {
    default_registry: Option<String>,
    #[serde(default)]
    registry_mirrors: Vec<String>,
    #[serde(default)]
    mirrors: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    #[serde(default)]
    require_digest: Vec<String>,
    certs_dirs: Option<Vec<PathBuf>>,
}

const CONFIG_KEYS: &[&str] = &[
    "default-registry",
    "registry-mirrors",
    "mirrors",
    "insecure-registries",
    "require-digest",
    "certs-dirs",
];

impl RegistryConfig {
    /// Reads the configuration from `path`, or when `None` from
    /// `$BARGE_REGISTRIES_CONFIG`, else `/etc/barge/registries.json`. A
    /// missing file gives the defaults; unknown keys are an error naming them.
    pub fn load(path: Option<&Path>) -> Result<RegistryConfig, DistError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match std::env::var_os(CONFIG_ENV) {
                Some(p) if !p.is_empty() => (PathBuf::from(p), true),
                _ => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
            },
        };
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(RegistryConfig::default())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistryConfig::default())
            }
            Err(e) => {
                return Err(DistError::Config {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        Self::parse(&path, &data)
    }

    fn parse(path: &Path, data: &[u8]) -> Result<RegistryConfig, DistError> {
        let bad = |reason: String| DistError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("the top level must be a JSON object".into()))?;
        let unknown: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !CONFIG_KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(bad(format!(
                "unknown key(s) {}; known keys: {}",
                unknown.join(", "),
                CONFIG_KEYS.join(", ")
            )));
        }
        let f: ConfigFile = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        let def = RegistryConfig::default();
        Ok(RegistryConfig {
            default_registry: f.default_registry.filter(|s| !s.is_empty()),
            registry_mirrors: f.registry_mirrors,
            mirrors: f.mirrors,
            insecure_registries: f.insecure_registries,
            require_digest: f.require_digest,
            cert_dirs: f.certs_dirs.unwrap_or(def.cert_dirs),
        })
    }

    /// Is `host` (`host[:port]`) listed as insecure (by name or CIDR)?
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = host_without_port(host);
        self.insecure_registries.iter().any(|e| {
            if e == host || e == bare {
                return true;
            }
            match (
                e.split_once('/'),
                bare.trim_matches(['[', ']']).parse::<IpAddr>(),
            ) {
                (Some((net, bits)), Ok(ip)) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// `host` of `host[:port]` (keeps IPv6 brackets).
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Is `host` a loopback name or address (insecure by default, as in Docker)?
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host_without_port(host).trim_matches(['[', ']']);
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Options shared by pull, push and login.
#[derive(Clone)]
pub struct ClientOptions {
    /// The registry configuration.
    pub config: RegistryConfig,
    /// `Some(false)`: no certificate checks and plain HTTP allowed (podman's
    /// `--tls-verify=false`); `Some(true)`: always verify; `None`: by the
    /// configuration (loopback registries are insecure, as in Docker).
    pub tls_verify: Option<bool>,
    /// The credentials file; `None`: `$REGISTRY_AUTH_FILE`, else
    /// `$XDG_CONFIG_HOME/barge/auth.json` (`~/.config/barge/auth.json`).
    pub auth_file: Option<PathBuf>,
    /// `--creds user:pass`: overrides the files.
    pub credentials: Option<(String, String)>,
    /// No byte received for this long is a failure (and a retry).
    pub stall_timeout: Duration,
    /// Retries per blob after a dropped connection, a stall or a 5xx.
    pub retries: u32,
    /// Parallel layer downloads / uploads.
    pub max_concurrent: usize,
    /// Receives progress events.
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("config", &self.config)
            .field("tls_verify", &self.tls_verify)
            .field("auth_file", &self.auth_file)
            .field("credentials", &self.credentials.as_ref().map(|(u, _)| u))
            .field("stall_timeout", &self.stall_timeout)
            .field("retries", &self.retries)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        let stall_timeout = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(30));
        ClientOptions {
            config: RegistryConfig::default(),
            tls_verify: None,
            auth_file: None,
            credentials: None,
            stall_timeout,
            retries: 3,
            max_concurrent: 3,
            progress: None,
        }
    }
}

impl ClientOptions {
    pub(crate) fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p.event(&e);
        }
    }
}

/// Options of [`pull`].
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// The platform to select from an index.
    pub platform: Platform,
    /// `--verify-digest`: refuse a reference without `@sha256`.
    pub verify_digest: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            verify_digest: false,
        }
    }
}

/// What [`pull`] did.
#[derive(Clone, Debug)]
pub struct PullReport {
    /// The normalised reference.
    pub reference: String,
    /// The manifest or index digest the registry served for the reference.
    pub digest: Digest,
    /// The image id (config digest).
    pub image_id: Digest,
    /// Layers downloaded.
    pub layers_fetched: usize,
    /// Layers already in the store.
    pub layers_present: usize,
    /// Bytes of layer blobs downloaded.
    pub bytes_fetched: u64,
    /// Nothing new: the tag already pointed there.
    pub up_to_date: bool,
}

/// Options of [`push`].
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// `None`: monolithic uploads; `Some(n)`: chunked `PATCH` uploads of `n` bytes.
    pub chunk_size: Option<u64>,
    /// How layers stored uncompressed are sent (gzip by default, as Docker
    /// does; an image index is pushed as stored).
    pub compression: PushCompression,
}

/// What [`push`] did.
#[derive(Clone, Debug)]
pub struct PushReport {
    /// The destination reference, normalised.
    pub reference: String,
    /// The digest of the manifest (or index) pushed for the reference.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Blobs uploaded.
    pub layers_pushed: usize,
    /// Blobs the registry had already.
    pub layers_existing: usize,
    /// Blobs mounted from another repository of the registry.
    pub layers_mounted: usize,
    /// Set when an index image was pushed as its platform manifest only
    /// (other platforms' manifests are not in the local store): says so.
    pub note: Option<String>,
}

/// Receives [`ProgressEvent`]s (from several threads).
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: &ProgressEvent);
}

/// Progress of a pull or push. Ids are 12-hex short digests, as Docker prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// Looking the reference up.
    Resolving {
        /// The reference.
        reference: String,
    },
    /// The registry served this digest for the reference.
    Resolved {
        /// The reference.
        reference: String,
        /// Its manifest or index digest.
        digest: Digest,
    },
    /// "Already exists" (on push: "Layer already exists").
    LayerExists {
        /// Short id.
        id: String,
    },
    /// Queued behind other transfers.
    Waiting {
        /// Short id.
        id: String,
        /// Its size.
        size: u64,
    },
    /// Bytes received (at most ~10 per second per layer).
    Downloading {
        /// Short id.
        id: String,
        /// Bytes so far.
        done: u64,
        /// Total.
        total: u64,
    },
    /// A transfer failed and is retried.
    Retrying {
        /// Short id.
        id: String,
        /// Attempt number (1 = first retry).
        attempt: u32,
        /// Why.
        error: String,
    },
    /// Checking digest and diff id.
    Verifying {
        /// Short id.
        id: String,
    },
    /// Unpacking (bytes of the compressed blob consumed).
    Extracting {
        /// Short id.
        id: String,
        /// Bytes so far.
        done: u64,
        /// Total.
        total: u64,
    },
    /// Layer done.
    PullComplete {
        /// Short id.
        id: String,
    },
    /// Bytes uploaded.
    Pushing {
        /// Short id.
        id: String,
        /// Bytes so far.
        done: u64,
        /// Total.
        total: u64,
    },
    /// Mounted from another repository.
    Mounted {
        /// Short id.
        id: String,
        /// The repository it came from.
        from: String,
    },
    /// Uploaded.
    Pushed {
        /// Short id.
        id: String,
    },
    /// The manifest was stored by the registry.
    ManifestWritten {
        /// The reference.
        reference: String,
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
}

/// Docker's 12-hex short id of a digest.
pub(crate) fn short_id(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Errors of the registry client. Each names what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The store failed (or a reference is malformed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry configuration file is unusable.
    #[error("registry configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pull must be pinned by digest.
    #[error("{reference}: {why}; pull it by digest (NAME@sha256:...)")]
    DigestRequired {
        /// The reference.
        reference: String,
        /// The policy that demands it.
        why: String,
    },
    /// The registry could not be reached.
    #[error("cannot reach registry {registry}: {reason}{hint}")]
    Connect {
        /// The registry host.
        registry: String,
        /// The underlying error.
        reason: String,
        /// What to try.
        hint: String,
    },
    /// TLS failed (certificate not trusted, or the registry speaks plain HTTP).
    #[error("TLS with registry {registry} failed: {reason}; if the registry has a self-signed certificate put its CA in {certs_dir}/ca.crt, or use --tls-verify=false (or list it in insecure-registries) for a registry without TLS")]
    Tls {
        /// The registry host.
        registry: String,
        /// The underlying error.
        reason: String,
        /// The certs.d directory for it.
        certs_dir: String,
    },
    /// Authentication failed or is needed.
    #[error("registry {registry} denied access{scope}: {reason}; run `barge login {registry}` (or pass --creds USER:PASS)")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The scope asked for, if any.
        scope: String,
        /// What the registry said.
        reason: String,
    },
    /// The registry has no such manifest or blob.
    #[error("{what} not found in registry {registry}: {detail}")]
    NotFound {
        /// Manifest `reference` or blob `digest`.
        what: String,
        /// The registry host.
        registry: String,
        /// The registry's message.
        detail: String,
    },
    /// An unexpected HTTP status.
    #[error("{method} {url}: the registry answered {status}: {detail}")]
    Http {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The body (shortened) or registry error message.
        detail: String,
    },
    /// A manifest larger than the store accepts.
    #[error("manifest {what} from {registry} is larger than {limit} bytes; refusing it (nothing was stored)")]
    ManifestTooLarge {
        /// The reference or digest.
        what: String,
        /// The registry host.
        registry: String,
        /// The limit.
        limit: u64,
    },
    /// Content does not hash to the digest asked for or announced.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}; the registry (or something between) served other content, nothing was stored")]
    DigestMismatch {
        /// What was fetched or pushed.
        what: String,
        /// The digest wanted.
        expected: String,
        /// The digest of the data.
        actual: String,
    },
    /// A registry response is not what the protocol says.
    #[error("registry {registry}: {reason}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob download failed after all retries.
    #[error("download of layer {digest} failed after {attempts} attempt(s): received {received} of {expected} bytes: {cause}; nothing was stored, run the pull again (or raise $BARGE_REGISTRY_TIMEOUT for a slow registry)")]
    Download {
        /// The blob.
        digest: Digest,
        /// Bytes received.
        received: u64,
        /// Bytes expected.
        expected: u64,
        /// The last error.
        cause: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A layer failed to unpack.
    #[error("layer {digest} does not unpack: {source}; nothing was stored")]
    Layer {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: crate::layer::LayerError,
    },
    /// A layer unpacked to another diff id than the config says.
    #[error("layer {digest} unpacks to {got}, but the image config says {want}: the layer is not what the image was built from; nothing was stored")]
    DiffIdMismatch {
        /// The blob.
        digest: Digest,
        /// The diff id computed.
        got: String,
        /// The config's diff id.
        want: String,
    },
    /// A blob upload failed.
    #[error("upload of {digest} to {registry} failed: {cause}")]
    Upload {
        /// The blob or manifest.
        digest: Digest,
        /// The registry host.
        registry: String,
        /// Why.
        cause: String,
    },
    /// A file (auth file, sources) could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something else the caller should know about.
    #[error("{0}")]
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let p = Path::new("/x.json");
        let c = RegistryConfig::parse(
            p,
            br#"{"default-registry":"r:5000","registry-mirrors":["https://m"],
                 "insecure-registries":["10.0.0.0/8","reg:5000"],"require-digest":["docker.io"],
                 "mirrors":{"quay.io":["http://m2:5000"]},"certs-dirs":["/c"]}"#,
        )
        .unwrap();
        assert_eq!(c.default_registry.as_deref(), Some("r:5000"));
        assert!(c.is_insecure("10.1.2.3:5000"));
        assert!(c.is_insecure("reg:5000"));
        assert!(!c.is_insecure("11.1.2.3"));
        assert_eq!(c.cert_dirs, vec![PathBuf::from("/c")]);
        let e = RegistryConfig::parse(p, br#"{"insecure":[],"mirrors":{}}"#).unwrap_err();
        assert!(e.to_string().contains("insecure"), "{e}");
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("example.com:5000"));
    }
}
