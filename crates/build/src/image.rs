//! A stage's image while it is being built: its manifest and config as
//! JSON, written to the store whenever a layer is added (so the next step
//! can unpack it) and at the end.

use barge_image::store::{
    Digest, ImageRef, Store, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_CONFIG, OCI_MANIFEST,
};
use oci_spec::image::{ImageManifest, MediaType};
use serde_json::{json, Map, Value};

use crate::error::{BuildError, Result};

/// An image under construction.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest (OCI or Docker schema 2, as the base was).
    pub manifest: Value,
    /// The image config (`architecture`, `os`, `config`, `rootfs`, `history`).
    pub config: Map<String, Value>,
}

/// Go's architecture name of this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Image {
    /// `FROM scratch`.
    pub fn scratch() -> Image {
        let mut config = Map::new();
        config.insert("architecture".into(), json!(host_arch()));
        config.insert("os".into(), json!("linux"));
        config.insert(
            "config".into(),
            json!({"Env": [format!("PATH={}", barge_engine::spec::DEFAULT_PATH)]}),
        );
        config.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        config.insert("history".into(), json!([]));
        Image {
            manifest: json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {},
                "layers": [],
            }),
            config,
        }
    }

    /// An image of the store.
    pub fn load(store: &Store, img: &ImageRef) -> Result<Image> {
        let manifest = serde_json::to_value(&img.manifest).map_err(BuildError::json)?;
        let config: Value = store.read_json(&img.config_digest, MAX_CONFIG_BYTES)?;
        let config = match config {
            Value::Object(m) => m,
            _ => {
                return Err(BuildError::Other(
                    "the base image's config is not an object".into(),
                ))
            }
        };
        let mut image = Image { manifest, config };
        // BuildKit gives a stage Docker's default PATH when its base has none.
        if !image.env().iter().any(|(k, _)| k == "PATH") {
            image.set_env("PATH", barge_engine::spec::DEFAULT_PATH);
        }
        Ok(image)
    }

    /// The image a manifest digest names (a cache entry).
    pub fn load_manifest(store: &Store, digest: &Digest) -> Result<Image> {
        let manifest: Value = store.read_json(digest, MAX_MANIFEST_BYTES)?;
        let cfg_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| BuildError::Other(format!("manifest {digest} has no config")))?;
        let cfg_digest = Digest::parse(cfg_digest)?;
        let config: Value = store.read_json(&cfg_digest, MAX_CONFIG_BYTES)?;
        let config = match config {
            Value::Object(m) => m,
            _ => return Err(BuildError::Other("an image config is not an object".into())),
        };
        Ok(Image { manifest, config })
    }

    /// `config.config` (Docker's container config of the image).
    pub fn cfg(&mut self) -> &mut Map<String, Value> {
        let c = self.config.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        match c.as_object_mut() {
            Some(m) => m,
            None => unreachable!("made an object above"),
        }
    }

    /// A string field of `config.config`.
    pub fn get_str(&self, key: &str) -> String {
        self.config
            .get("config")
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// A string-array field of `config.config`.
    pub fn get_list(&self, key: &str) -> Vec<String> {
        self.config
            .get("config")
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `Env` as (key, value) in order.
    pub fn env(&self) -> Vec<(String, String)> {
        self.get_list("Env")
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect()
    }

    /// Sets (or replaces) one `Env` variable.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.get_list("Env");
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.cfg().insert("Env".into(), json!(env));
    }

    /// Appends a history entry.
    pub fn add_history(&mut self, created_by: &str, empty_layer: bool) {
        self.add_history_with(created_by, empty_layer, None);
    }

    /// [`add_history`](Self::add_history) with a `comment` (the builder
    /// records a layer's cache key there, for `--cache-from`).
    pub fn add_history_with(&mut self, created_by: &str, empty_layer: bool, comment: Option<&str>) {
        let now = barge_engine::time::now_rfc3339();
        // The image is as old as its newest step.
        self.config.insert("created".into(), json!(now));
        let mut entry = Map::new();
        entry.insert("created".into(), json!(now));
        entry.insert("created_by".into(), json!(created_by));
        if let Some(c) = comment {
            entry.insert("comment".into(), json!(c));
        }
        if empty_layer {
            entry.insert("empty_layer".into(), json!(true));
        }
        let h = self.config.entry("history").or_insert_with(|| json!([]));
        match h.as_array_mut() {
            Some(a) => a.push(Value::Object(entry)),
            None => *h = json!([Value::Object(entry)]),
        }
    }

    /// Appends a layer (already in the store).
    pub fn add_layer(&mut self, digest: &Digest, size: u64, diff_id: &str) {
        let docker = self.is_docker();
        let layer = json!({
            "mediaType": if docker {
                "application/vnd.docker.image.rootfs.diff.tar"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            },
            "digest": digest.to_string(),
            "size": size,
        });
        match self
            .manifest
            .get_mut("layers")
            .and_then(Value::as_array_mut)
        {
            Some(l) => l.push(layer),
            None => self.manifest["layers"] = json!([layer]),
        }
        let rootfs = self
            .config
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            Some(ids) => ids.push(json!(diff_id)),
            None => rootfs["diff_ids"] = json!([diff_id]),
        }
    }

    fn is_docker(&self) -> bool {
        self.manifest.get("mediaType").and_then(Value::as_str)
            == Some(barge_image::store::DOCKER_MANIFEST_V2)
    }

    /// `rootfs.diff_ids`.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `history` entries.
    pub fn history(&self) -> Vec<Value> {
        self.config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(Vec::len)
            .unwrap_or(0)
    }

    /// Writes config and manifest to the store; returns the image as the
    /// store sees it (for unpacking) and the manifest descriptor digest.
    /// The caller holds the store's shared lock until the result is pinned
    /// or tagged.
    pub fn write(&mut self, store: &Store) -> Result<(ImageRef, oci_spec::image::Descriptor)> {
        let docker = self.is_docker();
        let cfg_type = if docker {
            MediaType::Other(barge_image::store::DOCKER_CONFIG.into())
        } else {
            MediaType::Other(OCI_CONFIG.into())
        };
        let cfg_desc = store.write_json(&Value::Object(self.config.clone()), cfg_type)?;
        self.manifest["config"] = serde_json::to_value(&cfg_desc).map_err(BuildError::json)?;
        if !docker {
            self.manifest["mediaType"] = json!(OCI_MANIFEST);
        }
        let man_type = if docker {
            MediaType::Other(barge_image::store::DOCKER_MANIFEST_V2.into())
        } else {
            MediaType::ImageManifest
        };
        let man_desc = store.write_json(&self.manifest, man_type)?;
        let manifest: ImageManifest =
            serde_json::from_value(self.manifest.clone()).map_err(BuildError::json)?;
        let img = ImageRef {
            names: Vec::new(),
            target: man_desc.clone(),
            manifest_digest: Digest::try_from(man_desc.digest())?,
            manifest,
            config_digest: Digest::try_from(cfg_desc.digest())?,
        };
        Ok((img, man_desc))
    }
}
