//! Loading and checking a bundle's `config.json`.
//!
//! The spec's types come from oci-spec; serde checks the shape (types, enum
//! values such as capability names), and [`validate`] checks what the schema
//! cannot express (namespace rules, sysctls that would change the host, ...).
//! Nothing here touches the system.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Result, RuntimeError};

/// Largest config.json we accept (a config is a few KiB; this bounds a
/// hostile or broken file).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A parsed config and the raw bytes it came from (kept in the state so
/// later commands do not depend on the bundle).
pub struct LoadedConfig {
    pub spec: Spec,
    pub raw: Vec<u8>,
}

/// Read `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<LoadedConfig> {
    let path = bundle.join("config.json");
    let meta = std::fs::metadata(&path)
        .map_err(|e| RuntimeError::Config(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(RuntimeError::Config(format!(
            "{} is {} bytes, larger than the {} byte limit",
            path.display(),
            meta.len(),
            MAX_CONFIG_BYTES
        )));
    }
    let raw = std::fs::read(&path)
        .map_err(|e| RuntimeError::Config(format!("cannot read {}: {e}", path.display())))?;
    let spec = parse(&raw)?;
    Ok(LoadedConfig { spec, raw })
}

/// Parse config JSON, reporting the path of the offending field.
pub fn parse(raw: &[u8]) -> Result<Spec> {
    serde_json::from_slice::<Spec>(raw).map_err(|e| {
        let mut msg = e.to_string();
        // serde lists every accepted variant; keep the message to one short line.
        if let Some(i) = msg.find(", expected one of") {
            let tail = msg
                .rfind(" at line")
                .map(|j| msg[j..].to_string())
                .unwrap_or_default();
            msg.truncate(i);
            msg.push_str(&tail);
        }
        let field = json_path_at(raw, e.line(), e.column());
        if field.is_empty() {
            RuntimeError::Config(format!("config.json: {msg}"))
        } else {
            RuntimeError::Config(format!("config.json: {field}: {msg}"))
        }
    })
}

/// The JSON path (`process.args`, `mounts[2].options`) of the value at a
/// 1-based line and column, found by scanning the text. Used only to word
/// error messages; a scanner is far smaller than a path-tracking
/// deserializer.
pub fn json_path_at(raw: &[u8], line: usize, column: usize) -> String {
    enum Frame {
        Obj(Option<String>),
        Arr(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let (mut l, mut c) = (1usize, 0usize);
    let mut i = 0;
    let mut last_string: Option<String> = None;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\n' {
            l += 1;
            c = 0;
        } else {
            c += 1;
        }
        if l > line || (l == line && c >= column) {
            break;
        }
        match b {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' {
                        i += 1;
                        c += 1;
                    }
                    i += 1;
                    c += 1;
                }
                last_string =
                    Some(String::from_utf8_lossy(&raw[start..i.min(raw.len())]).into_owned());
                c += 1;
            }
            b':' => {
                if let Some(Frame::Obj(k)) = stack.last_mut() {
                    *k = last_string.take();
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Arr(n)) => *n += 1,
                Some(Frame::Obj(k)) => *k = None,
                None => {}
            },
            b'{' => stack.push(Frame::Obj(None)),
            b'[' => stack.push(Frame::Arr(0)),
            b'}' | b']' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = String::new();
    for f in &stack {
        match f {
            Frame::Obj(Some(k)) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Obj(None) => {}
            Frame::Arr(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

/// The rootfs directory of a bundle, absolute.
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| RuntimeError::Config("root is missing".into()))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(RuntimeError::Config("root.path is empty".into()));
    }
    let full = if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    };
    let canon = std::fs::canonicalize(&full).map_err(|e| {
        RuntimeError::Config(format!("rootfs ({}) does not exist: {e}", full.display()))
    })?;
    if !canon.is_dir() {
        return Err(RuntimeError::Config(format!(
            "rootfs ({}) is not a directory",
            full.display()
        )));
    }
    Ok(canon)
}

/// Namespaces of the config: (type, optional path to join).
pub fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.iter().map(|n| (n.typ(), n.path().clone())).collect())
        .unwrap_or_default()
}

fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    namespaces(spec).iter().any(|(ty, _)| *ty == t)
}

/// Check what serde cannot: returns the first problem found.
pub fn validate(spec: &Spec, need_process: bool) -> Result<()> {
    let bad = |m: String| Err(RuntimeError::Config(m));
    if !spec.version().starts_with("1.") {
        return bad(format!(
            "unsupported ociVersion \"{}\": barge-runc implements runtime-spec 1.x",
            spec.version()
        ));
    }
    if need_process {
        let Some(process) = spec.process() else {
            return bad("process is missing".into());
        };
        match process.args() {
            Some(a) if !a.is_empty() && !a[0].is_empty() => {}
            _ => return bad("process.args must name the program to run".into()),
        }
        if !process.cwd().is_absolute() {
            return bad(format!(
                "process.cwd \"{}\" must be an absolute path",
                process.cwd().display()
            ));
        }
        for e in process.env().iter().flatten() {
            if !e.contains('=') {
                return bad(format!(
                    "process.env entry \"{e}\" is not of the form KEY=value"
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for (t, _) in namespaces(spec) {
        if !seen.insert(t) {
            return bad(format!("namespace {t} is listed twice in linux.namespaces"));
        }
    }
    let linux = spec.linux().as_ref();
    let has_maps = linux
        .map(|l| {
            l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        })
        .unwrap_or(false);
    let user_ns = namespaces(spec)
        .into_iter()
        .find(|(t, _)| *t == LinuxNamespaceType::User);
    match &user_ns {
        Some((_, None)) if !has_maps => {
            return bad("a new user namespace needs linux.uidMappings and linux.gidMappings".into())
        }
        None if has_maps => {
            return bad("linux.uidMappings are set but there is no user namespace".into())
        }
        _ => {}
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_ns(spec, LinuxNamespaceType::Uts)
    {
        return bad("cannot set hostname without a private UTS namespace".into());
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_ns(spec, LinuxNamespaceType::Uts)
    {
        return bad("cannot set domainname without a private UTS namespace".into());
    }
    if let Some(l) = linux {
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
            && !has_ns(spec, LinuxNamespaceType::Time)
        {
            return bad("linux.timeOffsets need a time namespace".into());
        }
        for key in l.sysctl().iter().flat_map(|s| s.keys()) {
            check_sysctl(spec, key)?;
        }
        for d in l.devices().iter().flatten() {
            if !d.path().is_absolute() {
                return bad(format!(
                    "device path \"{}\" must be absolute",
                    d.path().display()
                ));
            }
        }
        if let Some(s) = l.seccomp() {
            crate::seccomp::validate(s)?;
        }
    }
    for m in spec.mounts().iter().flatten() {
        if m.destination().as_os_str().is_empty() {
            return bad("a mount has an empty destination".into());
        }
    }
    Ok(())
}

/// runc's rule: a sysctl may only be set when the container has its own
/// instance of the namespace it belongs to; otherwise it would change the
/// host.
fn check_sysctl(spec: &Spec, key: &str) -> Result<()> {
    let ns_private = |t: LinuxNamespaceType| has_ns(spec, t);
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ok = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        ns_private(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        // A joined network namespace (a path) is not the host's either.
        ns_private(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        ns_private(LinuxNamespaceType::Uts)
    } else {
        return Err(RuntimeError::Config(format!(
            "sysctl \"{key}\" is not namespaced: setting it would change the host"
        )));
    };
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Config(format!(
            "sysctl \"{key}\" is not in a separate kernel namespace of the container"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<Spec> {
        parse(json.as_bytes())
    }

    const BASE: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#;

    #[test]
    fn accepts_a_minimal_config() {
        let s = spec(BASE).unwrap();
        validate(&s, true).unwrap();
    }

    #[test]
    fn reports_the_field_of_a_type_error() {
        let e = spec(r#"{"ociVersion":"1.0.2","process":{"args":"sh","cwd":"/"}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("process.args"), "{e}");
    }

    #[test]
    fn finds_the_json_path_of_a_position() {
        let j = "{\"a\": {\"b\": [1, {\"c\": \"x\"}]},\n \"d\": 2}";
        // the "x" value
        let col = j.find("\"x\"").unwrap() + 2;
        assert_eq!(json_path_at(j.as_bytes(), 1, col), "a.b[1].c");
        assert_eq!(json_path_at(j.as_bytes(), 2, 7), "d");
    }

    #[test]
    fn names_an_unknown_capability_in_one_short_line() {
        let e = spec(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/",
            "capabilities":{"bounding":["CAP_BOGUS"]}}}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("CAP_BOGUS"), "{e}");
        assert!(!e.contains("CAP_AUDIT_CONTROL"), "lists every variant: {e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn rejects_empty_args_relative_cwd_and_old_versions() {
        let s = spec(&BASE.replace(r#"["sh"]"#, "[]")).unwrap();
        assert!(validate(&s, true).is_err());
        let s = spec(&BASE.replace(r#""cwd":"/""#, r#""cwd":"tmp""#)).unwrap();
        assert!(validate(&s, true).is_err());
        let s = spec(&BASE.replace("1.0.2", "0.9")).unwrap();
        assert!(validate(&s, true).is_err());
    }

    #[test]
    fn rejects_duplicate_namespaces_and_hostname_without_uts() {
        let s = spec(&BASE.replace(r#"{"type":"mount"}"#, r#"{"type":"pid"}"#)).unwrap();
        assert!(validate(&s, true)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let s = spec(&BASE.replace(r#""root""#, r#""hostname":"h","root""#)).unwrap();
        assert!(validate(&s, true).unwrap_err().to_string().contains("UTS"));
    }

    #[test]
    fn rejects_sysctls_that_would_change_the_host() {
        let with = |sysctl: &str, ns: &str| {
            let j = BASE.replace(
                r#""namespaces":[{"type":"pid"},{"type":"mount"}]"#,
                &format!(r#""namespaces":[{ns}],"sysctl":{{"{sysctl}":"1"}}"#),
            );
            validate(&spec(&j).unwrap(), true)
        };
        assert!(with("net.ipv4.ip_forward", r#"{"type":"pid"}"#).is_err());
        assert!(with("net.ipv4.ip_forward", r#"{"type":"network"}"#).is_ok());
        assert!(with("kernel.shmmax", r#"{"type":"ipc"}"#).is_ok());
        assert!(with("kernel.shmmax", r#"{"type":"pid"}"#).is_err());
        assert!(with("vm.swappiness", r#"{"type":"ipc"}"#).is_err());
    }

    #[test]
    fn new_user_namespace_needs_mappings() {
        let j = BASE.replace(r#"{"type":"mount"}"#, r#"{"type":"user"}"#);
        assert!(validate(&spec(&j).unwrap(), true).is_err());
    }
}
