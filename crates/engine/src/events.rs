//! Container events (`create`, `start`, `die`, `stop`, `kill`, `destroy`,
//! `pause`, `unpause`, `rename`, `restart`, `oom`, `health_status: ...`),
//! appended as Docker's event JSON, one per line, to `<root>/events.log`
//! (one `write` with O_APPEND each, so concurrent writers never interleave).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Docker's event message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "status", default)]
    pub status: String,
    #[serde(rename = "id", default)]
    pub id: String,
    #[serde(rename = "from", default)]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    #[serde(rename = "scope", default)]
    pub scope: String,
    #[serde(rename = "time")]
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

pub fn log_path(root: &Path) -> PathBuf {
    root.join("events.log")
}

/// Above this size the log is cut to its newer half.
const MAX_LOG: u64 = 8 << 20;

/// Records a container event; failures are ignored (an event is never
/// worth failing the operation it reports).
pub fn emit(
    root: &Path,
    action: &str,
    id: &str,
    image: &str,
    name: &str,
    extra: &[(&str, String)],
) {
    let (s, n) = crate::time::now();
    let mut attributes = BTreeMap::new();
    attributes.insert("image".to_string(), image.to_string());
    attributes.insert("name".to_string(), name.to_string());
    for (k, v) in extra {
        attributes.insert(k.to_string(), v.clone());
    }
    let ev = Event {
        status: action.to_string(),
        id: id.to_string(),
        from: image.to_string(),
        kind: "container".into(),
        action: action.to_string(),
        actor: Actor {
            id: id.to_string(),
            attributes,
        },
        scope: "local".into(),
        time: s,
        time_nano: s * 1_000_000_000 + i64::from(n),
    };
    let Ok(mut line) = serde_json::to_vec(&ev) else {
        return;
    };
    line.push(b'\n');
    let p = log_path(root);
    if let Ok(md) = std::fs::metadata(&p) {
        if md.len() > MAX_LOG {
            trim(&p);
        }
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
    {
        let _ = f.write_all(&line);
    }
}

/// [`emit`] for a container: Docker puts the container's labels among the
/// event's attributes (which `events --filter label=` reads).
pub fn emit_container(
    root: &Path,
    action: &str,
    rec: &crate::record::ContainerRecord,
    extra: &[(&str, String)],
) {
    let mut attrs: Vec<(&str, String)> = rec
        .config
        .labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "image" | "name"))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    attrs.extend(extra.iter().cloned());
    emit(root, action, &rec.id, &rec.config.image, &rec.name, &attrs);
}

fn trim(p: &Path) {
    let Ok(data) = std::fs::read(p) else { return };
    let half = data.len() / 2;
    let start = data[half..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| half + i + 1)
        .unwrap_or(data.len());
    let _ = crate::store::write_atomic(p, &data[start..]);
}

/// Events recorded so far from `offset` (bytes into the log); returns them
/// and the new offset. Torn lines are skipped.
pub fn read_from(root: &Path, offset: u64) -> (Vec<Event>, u64) {
    let Ok(data) = std::fs::read(log_path(root)) else {
        return (Vec::new(), 0);
    };
    let off = if offset as usize > data.len() {
        0
    } else {
        offset as usize
    };
    let mut out = Vec::new();
    let mut end = off;
    for line in data[off..].split_inclusive(|b| *b == b'\n') {
        if !line.ends_with(b"\n") {
            break;
        }
        end += line.len();
        if let Ok(e) = serde_json::from_slice::<Event>(line) {
            out.push(e);
        }
    }
    (out, end as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_events_carry_labels() {
        let t = tempfile::tempdir().unwrap();
        let mut rec: crate::record::ContainerRecord = serde_json::from_value(serde_json::json!({
            "Id": "abc", "Name": "web", "Created": "", "ImageName": "busybox", "ImageId": "",
            "ManifestDigest": "", "Config": {"Image": "busybox", "Labels": {"tier": "front"}},
            "HostConfig": {}, "RuntimePath": ""
        }))
        .unwrap();
        rec.config
            .labels
            .insert("name".into(), "not the name".into());
        emit_container(t.path(), "start", &rec, &[("x", "1".into())]);
        let (ev, _) = read_from(t.path(), 0);
        let a = &ev[0].actor.attributes;
        assert_eq!(a["tier"], "front");
        assert_eq!(a["name"], "web");
        assert_eq!(a["x"], "1");
    }

    #[test]
    fn emit_and_read() {
        let t = tempfile::tempdir().unwrap();
        emit(t.path(), "create", "abc", "busybox", "web", &[]);
        emit(
            t.path(),
            "die",
            "abc",
            "busybox",
            "web",
            &[("exitCode", "3".into())],
        );
        let (ev, off) = read_from(t.path(), 0);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].actor.attributes["exitCode"], "3");
        assert_eq!(ev[0].kind, "container");
        let (more, off2) = read_from(t.path(), off);
        assert!(more.is_empty());
        assert_eq!(off, off2);
    }
}
