//! Image references in docker's grammar, normalised the way docker does it.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] path-component ['/' path-component]*
//! domain           := host [':' port]         host: dns name, IPv4 or [IPv6]
//! path-component   := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
//! tag              := [\w][\w.-]{0,127}
//! ```
//! `busybox` becomes `docker.io/library/busybox:latest`; a first component
//! is a domain only if it contains `.` or `:`, is `localhost`, or has an
//! upper-case letter (docker's rule); `index.docker.io` is `docker.io`.

use std::fmt;

use super::{Digest, StoreError};

/// The registry docker assumes when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub path: String,
    /// Tag; `latest` is filled in when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Pinned manifest digest (`@sha256:...`).
    pub digest: Option<Digest>,
}

impl Reference {
    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form docker prints: `busybox:latest` for
    /// `docker.io/library/busybox:latest`, unchanged for other registries.
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        if self.domain != DEFAULT_DOMAIN {
            return full;
        }
        let rest = &full[DEFAULT_DOMAIN.len() + 1..];
        match rest.strip_prefix("library/") {
            Some(r) if !self.path["library/".len()..].contains('/') => r.to_string(),
            _ => rest.to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Parses and normalises a docker-style reference (see the module doc).
pub fn parse_reference(s: &str) -> Result<Reference, StoreError> {
    if s.is_empty() {
        return Err(invalid(s, "empty reference"));
    }
    if super::digest::is_sha256_hex(s) {
        return Err(invalid(
            s,
            "cannot specify 64-byte hexadecimal strings as a repository name (use it as an image id)",
        ));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            let digest = match Digest::parse(d) {
                Ok(d) => d,
                Err(StoreError::UnsupportedDigestAlgorithm { algorithm, .. }) => {
                    return Err(invalid(
                        s,
                        format!("digest algorithm {algorithm:?} is not supported (only sha256)"),
                    ))
                }
                Err(_) => return Err(invalid(s, "bad digest after '@' (want sha256:<64 hex>)")),
            };
            (r, Some(digest))
        }
        None => (s, None),
    };
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(c) if last_slash.is_none_or(|sl| c > sl) => (&rest[..c], Some(&rest[c + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(invalid(
                s,
                format!("invalid tag {t:?} (want [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"),
            ));
        }
    }
    if name.is_empty() {
        return Err(invalid(s, "empty repository name"));
    }
    let (domain, path) = split_domain(name);
    if !valid_domain(&domain) {
        return Err(invalid(s, format!("invalid registry domain {domain:?}")));
    }
    if path.is_empty() || !path.split('/').all(valid_path_component) {
        let lower = path.to_ascii_lowercase();
        if !path.is_empty() && lower.split('/').all(valid_path_component) {
            return Err(invalid(s, "repository name must be lowercase"));
        }
        return Err(invalid(
            s,
            format!(
                "invalid repository path {path:?} (lowercase letters, digits and separators . _ __ - between them)"
            ),
        ));
    }
    if domain.len() + 1 + path.len() > MAX_NAME_LEN {
        return Err(invalid(
            s,
            format!("repository name must not be more than {MAX_NAME_LEN} characters"),
        ));
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TAG.to_string()),
    };
    Ok(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (domain, path)
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // [IPv6]:port
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}
