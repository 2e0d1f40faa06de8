//! Request parsing: which endpoint a path names, repository name and tag
//! validation, query strings, and the `Content-Range` / `Range` headers.
//!
//! Nothing here touches the file system; every string that later becomes a
//! path component (name, tag, upload id, digest) is validated here.

/// The longest repository name accepted (distribution's limit).
pub const MAX_NAME_LEN: usize = 255;

/// An endpoint of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(String),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(String, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(String, String),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(String),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(String, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(String, String),
}

impl Route {
    /// The repository the route is about, if any.
    pub fn repo(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::Blob(n, _)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

/// Why a path is not a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not an API path at all (404).
    NotFound,
    /// An API path whose repository name is invalid (400 NAME_INVALID).
    BadName(String),
}

/// Parses the path (without query) of a request.
pub fn parse_path(path: &str) -> Result<Route, RouteError> {
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Route::Base),
        Some(r) => r.strip_prefix('/').ok_or(RouteError::NotFound)?,
        None => return Err(RouteError::NotFound),
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name_of = |k: usize| -> Result<String, RouteError> {
        if k == 0 {
            return Err(RouteError::NotFound);
        }
        let name = segs[..k].join("/");
        if valid_name(&name) {
            Ok(name)
        } else {
            Err(RouteError::BadName(name))
        }
    };
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Ok(Route::Tags(name_of(n - 2)?));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        let id = segs[n - 1];
        if id.is_empty() {
            return Ok(Route::UploadStart(name_of(n - 3)?));
        }
        return Ok(Route::Upload(name_of(n - 3)?, id.to_string()));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Ok(Route::UploadStart(name_of(n - 2)?));
    }
    if n >= 3 && !segs[n - 1].is_empty() {
        let last = segs[n - 1].to_string();
        match segs[n - 2] {
            "manifests" => return Ok(Route::Manifest(name_of(n - 2)?, last)),
            "blobs" => return Ok(Route::Blob(name_of(n - 2)?, last)),
            "referrers" => return Ok(Route::Referrers(name_of(n - 2)?, last)),
            _ => {}
        }
    }
    Err(RouteError::NotFound)
}

/// True if `name` matches the spec's repository name grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
/// and is at most [`MAX_NAME_LEN`] bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    // [a-z0-9]+
    let start = i;
    while i < b.len() && alnum(b[i]) {
        i += 1;
    }
    if i == start {
        return false;
    }
    while i < b.len() {
        // separator: '.', '_', '__', '-+'
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
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    true
}

/// True if `tag` matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'))
}

/// True if `id` has the shape of an upload id this server hands out
/// (a UUID: 36 characters of lowercase hex and dashes).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Parses a query string into (key, value) pairs, percent-decoded.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of `key` in a parsed query.
pub fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses an upload `Content-Range` (`<start>-<end>`, inclusive; a
/// `bytes ` or `bytes=` prefix is tolerated).
pub fn parse_content_range(s: &str) -> Option<(u64, u64)> {
    let s = s.trim();
    let s = s
        .strip_prefix("bytes=")
        .or_else(|| s.strip_prefix("bytes "))
        .unwrap_or(s);
    let s = s.split('/').next()?;
    let (a, b) = s.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    if b < a {
        return None;
    }
    Some((a, b))
}

/// The result of interpreting a `Range` request header against a size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteRange {
    /// Serve the whole entity (no header, or one we ignore).
    Full,
    /// Serve `start..=end`.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Interprets a `Range: bytes=a-b | a- | -n` header for an entity of `size`
/// bytes. Multiple ranges and other units are ignored (whole entity).
pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(h) = header else {
        return ByteRange::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return ByteRange::Full;
        };
        if n == 0 || size == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Partial(size.saturating_sub(n), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return ByteRange::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return ByteRange::Full,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial(start, end.min(size - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_names_with_slashes() {
        assert_eq!(parse_path("/v2/"), Ok(Route::Base));
        assert_eq!(parse_path("/v2"), Ok(Route::Base));
        assert_eq!(parse_path("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(
            parse_path("/v2/a/b/c/manifests/latest"),
            Ok(Route::Manifest("a/b/c".into(), "latest".into()))
        );
        assert_eq!(
            parse_path("/v2/foo/blobs/sha256:abc"),
            Ok(Route::Blob("foo".into(), "sha256:abc".into()))
        );
        assert_eq!(
            parse_path("/v2/foo/blobs/uploads/"),
            Ok(Route::UploadStart("foo".into()))
        );
        assert_eq!(
            parse_path("/v2/foo/blobs/uploads"),
            Ok(Route::UploadStart("foo".into()))
        );
        assert_eq!(
            parse_path("/v2/x/blobs/uploads/abc"),
            Ok(Route::Upload("x".into(), "abc".into()))
        );
        assert_eq!(
            parse_path("/v2/foo/blobs/tags/list"),
            Ok(Route::Tags("foo/blobs".into()))
        );
        assert_eq!(
            parse_path("/v2/r/referrers/sha256:1"),
            Ok(Route::Referrers("r".into(), "sha256:1".into()))
        );
        assert_eq!(parse_path("/v3/foo"), Err(RouteError::NotFound));
        assert_eq!(parse_path("/v2/foo"), Err(RouteError::NotFound));
        assert_eq!(parse_path("/v2/manifests/x"), Err(RouteError::NotFound));
        assert_eq!(
            parse_path("/v2/Foo/manifests/x"),
            Err(RouteError::BadName("Foo".into()))
        );
        assert_eq!(
            parse_path("/v2/../x/manifests/x"),
            Err(RouteError::BadName("../x".into()))
        );
    }

    #[test]
    fn names_follow_the_spec_grammar() {
        for ok in [
            "a",
            "a/b",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "0/1/2",
            "library/busybox",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a___b", "a.", ".a", "a..b", "a-", "_a", "..", "a/../b",
            "a b", "a:b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_name(&"a".repeat(256)));
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x.Y-1"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag(""));
        assert!(!valid_tag("sha256:abc"));
    }

    #[test]
    fn upload_ids_are_uuids() {
        assert!(valid_upload_id("0123abcd-0000-4000-8000-00000000beef"));
        assert!(!valid_upload_id("../../../etc/passwd"));
        assert!(!valid_upload_id("0123ABCD-0000-4000-8000-00000000beef"));
    }

    #[test]
    fn query_is_percent_decoded() {
        let q = parse_query(Some("mount=sha256%3Aab&from=a%2Fb&n=3&x"));
        assert_eq!(query_get(&q, "mount"), Some("sha256:ab"));
        assert_eq!(query_get(&q, "from"), Some("a/b"));
        assert_eq!(query_get(&q, "n"), Some("3"));
        assert_eq!(query_get(&q, "x"), Some(""));
        assert_eq!(query_get(&q, "y"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, 9)));
        assert_eq!(parse_content_range("bytes=5-9"), Some((5, 9)));
        assert_eq!(parse_content_range("9-5"), None);
        assert_eq!(parse_content_range("x-5"), None);
    }

    #[test]
    fn range_header_forms() {
        assert_eq!(parse_range(None, 10), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), ByteRange::Partial(0, 4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), ByteRange::Partial(5, 9));
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            ByteRange::Partial(5, 9)
        );
        assert_eq!(parse_range(Some("bytes=-3"), 10), ByteRange::Partial(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), ByteRange::Partial(0, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), ByteRange::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=4-2"), 10), ByteRange::Full);
    }
}
