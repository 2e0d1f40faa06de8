//! `docker commit`: a container's upper dir becomes a new layer on top of
//! its image's layers, with a config built from the container's.
//!
//! The layer is stored as a plain (uncompressed) tar,
//! `application/vnd.oci.image.layer.v1.tar` (or Docker's
//! `…rootfs.diff.tar` when the base manifest is Docker's): no compressor
//! runs on the commit path, the layer's digest is its diff id, and Docker
//! keeps committed layers uncompressed as well (`docker save` writes them
//! so); a push may compress. An empty upper dir adds no layer, only a
//! history entry with `empty_layer`, as Docker does.
//!
//! The new layer is not unpacked here: the next `run` of the image unpacks
//! it once into `layers/<chain id>/diff` (`snapshot::unpack`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use barge_image::import;
use barge_image::layer;
use barge_image::store::{
    parse_reference, Digest, ImageRef, Store, DOCKER_CONFIG, DOCKER_MANIFEST_V2, MAX_CONFIG_BYTES,
    OCI_MANIFEST,
};
use oci_spec::image::MediaType;
use serde_json::{json, Map, Value};

use super::pipe::through_pipe;
use crate::error::{EngineError, Result};

/// The diff id of an empty layer (a tar of two zero blocks).
pub const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// What `docker commit` is asked for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `REPOSITORY[:TAG]` to tag the image with; `None` leaves it untagged.
    pub reference: Option<String>,
    /// `--author`.
    pub author: String,
    /// `--message`.
    pub message: String,
    /// `--change` instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    pub changes: Vec<String>,
    /// The container's Docker `Config` object (`Cmd`, `Entrypoint`, `Env`,
    /// `WorkingDir`, `User`, `Labels`, `ExposedPorts`, `Volumes`, …): the
    /// new image's `config`, with `changes` applied. `Null` keeps the base
    /// image's.
    pub container_config: Value,
    /// The container's id, recorded in the config as Docker does.
    pub container_id: String,
}

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(e.to_string())
}

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> EngineError + '_ {
    move |source| EngineError::Json {
        what: what.to_string(),
        source,
    }
}

/// The new image's `config`: the container's (or the base image's), then
/// the `--change` instructions. As in a Dockerfile, `ENTRYPOINT` clears a
/// `Cmd` not set by a `CMD` before it.
fn image_config(base: &Value, opts: &CommitOptions) -> Result<Map<String, Value>> {
    let start = if opts.container_config.is_object() {
        opts.container_config.clone()
    } else {
        base.get("config").cloned().unwrap_or_else(|| json!({}))
    };
    let mut config = match start {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut cmd_set = false;
    for c in &opts.changes {
        let instr = c
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        import::apply_change(&mut config, c).map_err(invalid)?;
        match instr.as_str() {
            "CMD" => cmd_set = true,
            "ENTRYPOINT" if !cmd_set => {
                config.remove("Cmd");
            }
            _ => {}
        }
    }
    Ok(config)
}

/// Docker's `created_by` for a commit: the container's `Cmd`, joined.
fn created_by(container_config: &Value) -> String {
    container_config
        .get("Cmd")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn layer_err(upper: &Path, why: String) -> EngineError {
    EngineError::Io {
        what: "store the layer of",
        path: upper.to_path_buf(),
        source: std::io::Error::other(why),
    }
}

/// Streams an overlay upper dir's diff into the store as a layer blob
/// (a plain tar, its digest its diff id); returns (digest, size, diff id).
/// The caller holds the store's shared lock until the blob is referenced.
pub fn store_layer(store: &Store, upper: &Path) -> Result<(Digest, u64, String)> {
    let diff_id = std::sync::Mutex::new(None);
    let blob = through_pipe(
        |w: &mut File| {
            let stats = layer::diff_upper(upper, w)?;
            if let Ok(mut d) = diff_id.lock() {
                *d = Some(stats.diff_id);
            }
            Ok(())
        },
        |r| Ok(store.write_blob(r as &mut dyn Read, None, None)?),
    )?;
    let diff_id = diff_id
        .into_inner()
        .ok()
        .flatten()
        .ok_or_else(|| layer_err(upper, "the layer writer gave no diff id".into()))?;
    if blob.digest.to_string() != diff_id {
        return Err(layer_err(
            upper,
            format!(
                "the stored layer {} is not the tar written ({diff_id})",
                blob.digest
            ),
        ));
    }
    Ok((blob.digest, blob.size, diff_id))
}

/// `docker commit`: store `upper` (the container's overlay upper dir) as
/// a layer on top of `base`'s, with a config from `opts`, and tag it
/// (`opts.reference`) or list it untagged. Returns the image id
/// (`sha256:…`, the config digest).
pub fn commit(
    store: &Store,
    base: &ImageRef,
    upper: &Path,
    opts: &CommitOptions,
) -> Result<String> {
    // What can be checked is checked before anything is stored.
    let reference = opts.reference.as_deref().map(parse_reference).transpose()?;
    let base_config: Value = store.read_json(&base.config_digest, MAX_CONFIG_BYTES)?;
    let config = image_config(&base_config, opts)?;

    // Blobs written from here are unreferenced until tagged: keep GC out.
    let _lock = store.lock_shared()?;
    let (layer_digest, layer_size, diff_id) = store_layer(store, upper)?;
    let empty_layer = diff_id == EMPTY_LAYER_DIFF_ID;

    let created = barge_runtime::utils::now_rfc3339();
    let mut cfg = match base_config {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    cfg.insert("created".into(), json!(created));
    cfg.insert("config".into(), Value::Object(config));
    cfg.insert("container".into(), json!(opts.container_id));
    for (key, value) in [("author", &opts.author), ("comment", &opts.message)] {
        if value.is_empty() {
            cfg.remove(key);
        } else {
            cfg.insert(key.into(), json!(value));
        }
    }
    let rootfs = cfg
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if !empty_layer {
        match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            Some(ids) => ids.push(json!(diff_id)),
            None => rootfs["diff_ids"] = json!([diff_id]),
        }
    }
    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    if !opts.author.is_empty() {
        entry.insert("author".into(), json!(opts.author));
    }
    entry.insert(
        "created_by".into(),
        json!(created_by(&opts.container_config)),
    );
    if !opts.message.is_empty() {
        entry.insert("comment".into(), json!(opts.message));
    }
    if empty_layer {
        entry.insert("empty_layer".into(), json!(true));
    }
    let history = cfg.entry("history").or_insert_with(|| json!([]));
    match history.as_array_mut() {
        Some(h) => h.push(Value::Object(entry)),
        None => *history = json!([Value::Object(entry)]),
    }

    // Keep the base manifest's flavour (OCI or Docker schema 2).
    let docker = base
        .manifest
        .media_type()
        .as_ref()
        .is_some_and(|m| m.to_string() == DOCKER_MANIFEST_V2);
    let config_media_type = if docker {
        MediaType::Other(DOCKER_CONFIG.into())
    } else {
        MediaType::ImageConfig
    };
    let cfg_desc = store.write_json(&Value::Object(cfg), config_media_type)?;
    let mut manifest =
        serde_json::to_value(&base.manifest).map_err(json_err("the base manifest"))?;
    manifest["config"] =
        serde_json::to_value(&cfg_desc).map_err(json_err("the config descriptor"))?;
    manifest["mediaType"] = json!(if docker {
        DOCKER_MANIFEST_V2
    } else {
        OCI_MANIFEST
    });
    if !empty_layer {
        let layer = json!({
            "mediaType": if docker { DOCKER_LAYER_TAR } else { OCI_LAYER_TAR },
            "digest": layer_digest.to_string(),
            "size": layer_size,
        });
        match manifest.get_mut("layers").and_then(Value::as_array_mut) {
            Some(l) => l.push(layer),
            None => manifest["layers"] = json!([layer]),
        }
    }
    let manifest_media_type = if docker {
        MediaType::Other(DOCKER_MANIFEST_V2.into())
    } else {
        MediaType::ImageManifest
    };
    let man_desc = store.write_json(&manifest, manifest_media_type)?;
    match &reference {
        Some(r) => store.tag(&r.to_string(), man_desc)?,
        None => store.add_untagged(man_desc)?,
    }
    Ok(Digest::try_from(cfg_desc.digest())?.to_string())
}
