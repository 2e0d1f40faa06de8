//! Credentials: `auth.json` (Docker's format), Docker's `config.json`,
//! `WWW-Authenticate` parsing, and `login` / `logout`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::http::{runtime, Challenge, Registry};
use super::{ClientOptions, DistError};

/// The key Docker uses for Docker Hub in `config.json`.
const DOCKER_HUB_LEGACY_KEY: &str = "https://index.docker.io/v1/";

/// The name a registry is stored under in `auth.json` (`docker.io` for every
/// alias of Docker Hub, scheme and path stripped otherwise).
pub(crate) fn registry_key(registry: &str) -> String {
    let r = registry
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let r = r.split('/').next().unwrap_or(r);
    match r {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => r.to_string(),
    }
}

fn aliases(key: &str) -> Vec<String> {
    if key == "docker.io" {
        vec![
            "docker.io".into(),
            DOCKER_HUB_LEGACY_KEY.into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
            "https://registry-1.docker.io".into(),
            "https://index.docker.io".into(),
        ]
    } else {
        vec![
            key.to_string(),
            format!("https://{key}"),
            format!("http://{key}"),
            format!("https://{key}/v1/"),
            format!("https://{key}/v2/"),
        ]
    }
}

/// The auth file in use: the option, `$REGISTRY_AUTH_FILE`, else
/// `$XDG_CONFIG_HOME/barge/auth.json` (`~/.config/barge/auth.json`).
pub(crate) fn auth_file_path(opts: &ClientOptions) -> PathBuf {
    if let Some(p) = &opts.auth_file {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"));
    config.join("barge/auth.json")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => home().join(".docker/config.json"),
    }
}

fn read_json_file(path: &Path) -> Result<Option<serde_json::Value>, DistError> {
    match std::fs::read(path) {
        Ok(d) => serde_json::from_slice(&d)
            .map(Some)
            .map_err(|e| DistError::Config {
                path: path.to_path_buf(),
                reason: format!("not valid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DistError::Io {
            what: "read".into(),
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn creds_in(v: &serde_json::Value, key: &str) -> Option<(String, String)> {
    let auths = v.get("auths")?.as_object()?;
    for a in aliases(key) {
        let Some(entry) = auths.get(&a) else {
            continue;
        };
        if let Some(enc) = entry.get("auth").and_then(|x| x.as_str()) {
            let dec = base64::engine::general_purpose::STANDARD
                .decode(enc.trim())
                .ok()?;
            let s = String::from_utf8(dec).ok()?;
            let (u, p) = s.split_once(':')?;
            return Some((u.to_string(), p.to_string()));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(|x| x.as_str()),
            entry.get("password").and_then(|x| x.as_str()),
        ) {
            return Some((u.to_string(), p.to_string()));
        }
    }
    None
}

/// Credentials for `registry`: `--creds`, the auth file, Docker's config.
pub(crate) fn lookup_credentials(opts: &ClientOptions, registry: &str) -> Option<(String, String)> {
    if let Some(c) = &opts.credentials {
        return Some(c.clone());
    }
    let key = registry_key(registry);
    for p in [auth_file_path(opts), docker_config_path()] {
        if let Ok(Some(v)) = read_json_file(&p) {
            if let Some(c) = creds_in(&v, &key) {
                return Some(c);
            }
        }
    }
    None
}

/// Parses a `WWW-Authenticate` header: the scheme (lower-case) and its
/// parameters (quoted strings may hold commas and `\"`).
pub(crate) fn parse_challenge(h: &str) -> Option<(String, BTreeMap<String, String>)> {
    let h = h.trim();
    let (scheme, rest) = match h.split_once(' ') {
        Some((s, r)) => (s, r),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut chars = rest[i..].char_indices();
            let mut end = rest.len() - i;
            let mut esc = false;
            for (k, c) in chars.by_ref() {
                if esc {
                    val.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    end = k + 1;
                    break;
                } else {
                    val.push(c);
                }
            }
            i += end;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        if !key.is_empty() {
            params.insert(key, val);
        }
    }
    Some((scheme.to_ascii_lowercase(), params))
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> DistError {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| DistError::Io { what, path, source }
}

/// Writes `v` to `path` atomically with mode 0600 (parent created 0700).
fn write_private_json(path: &Path, v: &serde_json::Value) -> Result<(), DistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", dir))?;
    }
    let data = serde_json::to_vec_pretty(v).map_err(|e| DistError::Other(e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "auth.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io_err("write", path))
}

/// Checks `username`/`password` against `registry`'s `/v2/` (basic or token
/// flow) and stores them in the auth file, which is returned. `docker.io`
/// (and its aliases) means Docker Hub.
pub fn login(
    registry: &str,
    username: &str,
    password: &str,
    opts: &ClientOptions,
) -> Result<PathBuf, DistError> {
    let key = registry_key(registry);
    let mut o = opts.clone();
    o.credentials = Some((username.to_string(), password.to_string()));
    let rt = runtime(1)?;
    rt.block_on(async {
        let reg = Registry::connect(&o, &key, None).await?;
        reg.check_login().await
    })?;
    let path = auth_file_path(opts);
    let mut v = read_json_file(&path)?.unwrap_or_else(|| serde_json::json!({}));
    let obj = v.as_object_mut().ok_or_else(|| DistError::Config {
        path: path.clone(),
        reason: "the top level must be a JSON object".into(),
    })?;
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    if let Some(a) = auths.as_object_mut() {
        a.insert(key, serde_json::json!({ "auth": enc }));
    }
    write_private_json(&path, &v)?;
    Ok(path)
}

/// Removes `registry`'s credentials from the auth file; returns whether
/// there were any.
pub fn logout(registry: &str, opts: &ClientOptions) -> Result<bool, DistError> {
    let key = registry_key(registry);
    let path = auth_file_path(opts);
    let Some(mut v) = read_json_file(&path)? else {
        return Ok(false);
    };
    let mut removed = false;
    if let Some(a) = v.get_mut("auths").and_then(|a| a.as_object_mut()) {
        for k in aliases(&key) {
            removed |= a.remove(&k).is_some();
        }
    }
    if removed {
        write_private_json(&path, &v)?;
    }
    Ok(removed)
}

impl Registry {
    /// Login check: the credentials must be accepted.
    pub(crate) async fn check_login(&self) -> Result<(), DistError> {
        match self.challenge() {
            Challenge::None => Ok(()),
            Challenge::Basic => self.check_basic().await,
            Challenge::Bearer { .. } => self.token(&[]).await.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="a \"q\", b""#).unwrap();
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "a \"q\", b");
        assert_eq!(registry_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_key("localhost:5000"), "localhost:5000");
    }
}
