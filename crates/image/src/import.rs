//! `import`: a root filesystem tarball (plain, gzip or zstd) becomes a
//! one-layer image: the tarball is stored as the layer blob as it is, unpacked
//! once into `layers/<chain id>/diff`, and given a config built from the
//! `--change` instructions.

use std::io::Read;

use oci_spec::image::{Descriptor, MediaType};
use serde_json::{json, Map, Value};

use crate::layer::{self, ApplyOptions, Compression, WhiteoutMode};
use crate::store::{parse_reference, Digest, Platform, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
    #[error("invalid --change \"{0}\": {1}")]
    Change(String, String),
    #[error("{0}: not a valid rootfs tarball (plain tar, gzip or zstd): {1}")]
    NotATar(String, layer::LayerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What [`import`] made.
pub struct Imported {
    /// The image id (config digest).
    pub id: Digest,
    pub manifest: Descriptor,
}

/// Import a rootfs tarball as an image; tag it if `reference` is given
/// (otherwise it is listed as `<none>`).
pub fn import(
    store: &Store,
    input: impl Read,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
    source: &str,
    created: &str,
) -> Result<Imported, ImportError> {
    // Check what can be checked before any byte is stored.
    let reference = reference.map(parse_reference).transpose()?;
    let mut config = Map::new();
    for c in changes {
        apply_change(&mut config, c)?;
    }
    let _lock = store.lock_shared()?;
    let blob = store.write_blob(input, None, None)?;
    // Unpack from the stored blob (page cache), which also yields the diff id.
    let ingest_probe = store.open_blob(&blob.digest)?;
    let mut head = [0u8; 8];
    let n = std::io::Read::take(&ingest_probe, 8).read(&mut head)?;
    let media_type = match layer::detect_bytes(&head[..n]) {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    };
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::OverlayFs,
        ..ApplyOptions::default()
    };
    // The chain id of a single layer is its diff id, known only once the
    // stream was read: unpack into an ingest dir, then commit it by that name.
    let ingest = store.begin_layer(&format!("sha256:{}", blob.digest.hex()))?;
    let stats = layer::apply(store.open_blob(&blob.digest)?, &ingest.diff_path(), &opts)
        .map_err(|e| ImportError::NotATar(source.to_string(), e))?;
    if !store.has_layer(&stats.diff_id) {
        store.commit_layer_as(ingest, &stats.diff_id)?;
    }
    let platform = Platform::host();
    let mut cfg = json!({
        "created": created,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": Value::Object(config),
        "rootfs": {"type": "layers", "diff_ids": [stats.diff_id]},
        "history": [{
            "created": created,
            "created_by": "barge import",
            "comment": message.map(str::to_string).unwrap_or_else(|| format!("Imported from {source}")),
        }],
    });
    if let Some(v) = platform.variant {
        cfg["variant"] = json!(v);
    }
    let cfg_desc = store.write_json(&cfg, MediaType::ImageConfig)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg_desc,
        "layers": [blob.descriptor(media_type)],
    });
    let man_desc = store.write_json(&manifest, MediaType::ImageManifest)?;
    match &reference {
        Some(r) => store.tag(&r.to_string(), man_desc.clone())?,
        None => store.add_untagged(man_desc.clone())?,
    }
    Ok(Imported {
        id: Digest::try_from(cfg_desc.digest())?,
        manifest: man_desc,
    })
}

/// Apply one Dockerfile-style instruction of `import --change`
/// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR,
/// ONBUILD) to an image config's `config` object.
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<(), ImportError> {
    let bad = |why: &str| ImportError::Change(change.to_string(), why.to_string());
    let line = change.trim();
    let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let instr = instr.to_ascii_uppercase();
    // JSON (exec) form or shell form.
    let command = |s: &str| -> Result<Value, ImportError> {
        if s.starts_with('[') {
            let v: Vec<String> = serde_json::from_str(s)
                .map_err(|e| bad(&format!("not a JSON array of strings: {e}")))?;
            Ok(json!(v))
        } else if s.is_empty() {
            Err(bad("needs an argument"))
        } else {
            Ok(json!(["/bin/sh", "-c", s]))
        }
    };
    match instr.as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command(rest)?);
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command(rest)?);
        }
        "ENV" => {
            let pairs = key_values(rest).ok_or_else(|| bad("expected KEY=value or KEY value"))?;
            let env = config.entry("Env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().ok_or_else(|| bad("Env is not a list"))?;
            for (k, v) in pairs {
                list.retain(|e| e.as_str().and_then(|e| e.split_once('=')).map(|(ek, _)| ek) != Some(k.as_str()));
                list.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest).ok_or_else(|| bad("expected KEY=value"))?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            for (k, v) in pairs {
                labels[k] = json!(v);
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            for p in rest.split_whitespace() {
                let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                let num = p.split('/').next().unwrap_or_default();
                if num.parse::<u16>().is_err() && !num.contains('-') {
                    return Err(bad(&format!("invalid port \"{p}\"")));
                }
                ports[p] = json!({});
            }
        }
        "VOLUME" => {
            let vols: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?
            } else {
                rest.split_whitespace().map(String::from).collect()
            };
            let v = config.entry("Volumes").or_insert_with(|| json!({}));
            for p in vols {
                v[p] = json!({});
            }
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" if rest.is_empty() => return Err(bad("needs an argument")),
        "WORKDIR" => {
            config.insert("WorkingDir".into(), json!(rest));
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(rest));
        }
        "ONBUILD" => {
            let v = config.entry("OnBuild").or_insert_with(|| json!([]));
            if let Some(a) = v.as_array_mut() {
                a.push(json!(rest));
            }
        }
        other => {
            return Err(bad(&format!(
                "{other} is not allowed: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR"
            )))
        }
    }
    Ok(())
}

/// `K=V K2="v 2"` or the legacy `K V...` form.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    if s.is_empty() {
        return None;
    }
    let first = s.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = s.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            if key.trim().is_empty() {
                break;
            }
            return None;
        }
        let mut val = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.peek() {
                        val.push(*n);
                    }
                }
                _ => val.push(c),
            }
            chars.next();
        }
        out.push((key, val));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(changes: &[&str]) -> Result<Value, ImportError> {
        let mut m = Map::new();
        for c in changes {
            apply_change(&mut m, c)?;
        }
        Ok(Value::Object(m))
    }

    #[test]
    fn changes_build_a_docker_config() {
        let c = cfg(&[
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /init",
            "ENV A=1 B=\"two words\"",
            "ENV C 3",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL org.x=y",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/init"]));
        assert_eq!(c["Env"], json!(["A=1", "B=two words", "C=3"]));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"], json!({"org.x": "y"}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
    }

    #[test]
    fn bad_changes_say_what_is_wrong() {
        assert!(cfg(&["RUN echo"])
            .unwrap_err()
            .to_string()
            .contains("RUN is not allowed"));
        assert!(cfg(&["CMD [broken"]).is_err());
        assert!(cfg(&["EXPOSE http"]).is_err());
        assert!(cfg(&["WORKDIR"]).is_err());
    }
}
