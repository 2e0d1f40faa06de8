//! Paths as Go's `path` package reads them (Docker's rules are written in
//! terms of `filepath.Clean`, `Dir` and `Base`), and a few byte helpers.

/// Go's `filepath.Clean` on a slash-separated path.
pub(super) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir`.
pub(super) fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".into(),
    }
}

/// The last component of a cleaned relative path (the path itself when it
/// has no `/`).
pub(super) fn base(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// `a/b` from `a` and `b`, where an empty `a` is the top.
pub(super) fn join_bytes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len() + 1 + b.len());
    out.extend_from_slice(a);
    if !a.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(b);
    out
}

/// The parent of a relative byte path (`""` at the top).
pub(super) fn parent_bytes(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => &p[..i],
        None => &p[..0],
    }
}

/// The last component of a relative byte path.
pub(super) fn base_bytes(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// A byte path for messages.
pub(super) fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean_dir_base_agree_with_go() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean("/../a/"), "/a");
        assert_eq!(clean("./a//b/./"), "a/b");
        assert_eq!(clean("a/../../x"), "../x");
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("a"), ".");
        assert_eq!(base("a/b/c"), "c");
        assert_eq!(base("c"), "c");
        assert_eq!(parent_bytes(b"a/b"), b"a");
        assert_eq!(parent_bytes(b"a"), b"");
        assert_eq!(join_bytes(b"", b"x"), b"x");
    }
}
