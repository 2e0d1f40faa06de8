//! Reading manifests, indexes and image configs in OCI and Docker schema2
//! media types, platform selection, and chain ids.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{Digest, StoreError};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the docker twin of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Largest manifest or index the store will parse.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest image config the store will parse.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// True for an OCI index or a docker manifest list.
pub fn is_index_media_type(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

/// True for an OCI image manifest or a docker schema2 manifest.
pub fn is_manifest_media_type(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST_V2
}

/// True for an OCI or docker image config.
pub fn is_config_media_type(mt: &str) -> bool {
    mt == OCI_CONFIG || mt == DOCKER_CONFIG
}

/// A parsed manifest-like blob.
#[derive(Clone, Debug)]
pub enum AnyManifest {
    /// An image manifest (OCI or docker schema2).
    Image(Box<ImageManifest>),
    /// An index (OCI index or docker manifest list).
    Index(Box<ImageIndex>),
}

/// Parses a manifest or index from bytes, deciding by the `mediaType` field
/// or, when absent (allowed by OCI), by the shape (`manifests` vs `layers`).
pub fn parse_any_manifest(digest: &Digest, data: &[u8]) -> Result<AnyManifest, StoreError> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| StoreError::InvalidJson {
            what: "manifest".into(),
            digest: digest.to_string(),
            source: e,
        })?;
    let mt = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1)
        || mt.starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err(StoreError::UnsupportedManifest {
            digest: digest.to_string(),
            media_type: "docker schema1".into(),
        });
    }
    let is_index = if mt.is_empty() {
        v.get("manifests").is_some()
    } else if is_index_media_type(mt) {
        true
    } else if is_manifest_media_type(mt) {
        false
    } else {
        return Err(StoreError::UnsupportedManifest {
            digest: digest.to_string(),
            media_type: mt.to_string(),
        });
    };
    let json_err = |e| StoreError::InvalidJson {
        what: if is_index {
            "image index"
        } else {
            "image manifest"
        }
        .into(),
        digest: digest.to_string(),
        source: e,
    };
    if is_index {
        Ok(AnyManifest::Index(
            serde_json::from_value(v).map_err(json_err)?,
        ))
    } else {
        Ok(AnyManifest::Image(
            serde_json::from_value(v).map_err(json_err)?,
        ))
    }
}

/// The parts of an image config (OCI or docker) the store itself needs.
/// Parsed leniently: unknown fields are ignored. Read the full config with
/// `Store::read_json::<oci_spec::image::ImageConfiguration>` when needed.
#[derive(Clone, Debug, Deserialize)]
pub struct ConfigInfo {
    /// Creation time (RFC 3339), if recorded.
    #[serde(default)]
    pub created: Option<String>,
    /// GOARCH of the image.
    #[serde(default)]
    pub architecture: String,
    /// GOOS of the image.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// The execution parameters (only labels are read here).
    #[serde(default)]
    pub config: Option<ConfigLabels>,
    /// The layer diff ids.
    pub rootfs: RootFs,
}

/// `config.Labels` of an image config.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigLabels {
    /// Image labels.
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layer tars, bottom first.
    pub diff_ids: Vec<String>,
}

impl ConfigInfo {
    /// The image labels (empty if none).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
    }

    /// Chain ids of every layer prefix, bottom first (`sha256:<hex>`).
    pub fn chain_ids(&self) -> Result<Vec<String>, StoreError> {
        for d in &self.rootfs.diff_ids {
            Digest::parse(d)?;
        }
        Ok(chain_ids(&self.rootfs.diff_ids))
    }
}

/// The OCI chain id of a layer stack (image-spec config.md):
/// `ChainID(L0) = DiffID(L0)`, `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`.
/// Returns `""` for an empty stack.
pub fn chain_id(diff_ids: &[String]) -> String {
    chain_ids(diff_ids).pop().unwrap_or_default()
}

/// The chain id of every prefix of `diff_ids`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// A platform to select from an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// GOOS (`linux`).
    pub os: String,
    /// GOARCH (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// CPU variant (`v8`, `v7`), if it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in Go's names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            "mips" if cfg!(target_endian = "little") => ("mipsle", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `platform` from an index: same os and
/// architecture; an exact variant match beats an entry without a variant,
/// which beats another variant (arm64 `v8` is the default variant). An
/// index whose only entry has no platform yields that entry.
pub fn select_manifest(index: &ImageIndex, platform: &Platform) -> Result<Descriptor, StoreError> {
    let mut best: Option<(u8, &Descriptor)> = None;
    let manifests = index.manifests();
    for d in manifests {
        let score = match d.platform() {
            None if manifests.len() == 1 => 1,
            None => continue,
            Some(p) => {
                if p.os().to_string() != platform.os
                    || p.architecture().to_string() != platform.architecture
                {
                    continue;
                }
                let norm = |v: Option<&str>| -> Option<String> {
                    match (platform.architecture.as_str(), v) {
                        ("arm64", Some("v8")) | ("arm64", None) => None,
                        ("amd64", Some("v1")) | ("amd64", None) => None,
                        (_, v) => v.map(str::to_string),
                    }
                };
                let want = norm(platform.variant.as_deref());
                let have = norm(p.variant().as_deref());
                if want == have {
                    4
                } else if have.is_none() {
                    3
                } else {
                    2
                }
            }
        };
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, d));
        }
    }
    match best {
        Some((_, d)) => Ok(d.clone()),
        None => Err(StoreError::NoPlatformMatch {
            platform: platform.to_string(),
            available: manifests
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| {
                    let mut s = format!("{}/{}", p.os(), p.architecture());
                    if let Some(v) = p.variant() {
                        s.push('/');
                        s.push_str(v);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
