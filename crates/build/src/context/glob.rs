//! Go's `filepath.Match`, which is what COPY/ADD source wildcards are
//! (BuildKit resolves them with it, component `*` never crossing a `/`,
//! `**` no different from `*`), and what `.dockerignore` patterns are
//! checked against for syntax.

/// A malformed pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BadPattern;

/// Does `name` match the shell pattern `pattern`? `*` matches any run of
/// non-`/` characters, `?` one non-`/` character, `[...]` a class (`^`
/// negates, `a-z` ranges), `\` escapes. Errors only for a malformed
/// pattern, wherever the malformation is.
pub(super) fn matches(mut pattern: &str, mut name: &str) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest unless it has a `/`.
            return Ok(!name.contains('/'));
        }
        // The last chunk must use up the name.
        if let Some(t) = match_chunk(chunk, name)? {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        if star {
            // Skip characters for the star, never a `/`.
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                if let Some(t) = match_chunk(chunk, &name[i + c.len_utf8()..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
            }
        }
        // No match: the rest of the pattern must still be well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, "")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Is the pattern well-formed?
pub(super) fn check(pattern: &str) -> Result<(), BadPattern> {
    matches(pattern, ".").map(|_| ())
}

/// Does this path component hold a wildcard (`*`, `?`, `[` not escaped)?
pub(super) fn has_wildcards(component: &str) -> bool {
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Leading stars, then everything up to the next star outside a class.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    let bytes = trimmed.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &trimmed[..i], &trimmed[i..])
}

fn first_char(s: &str) -> Option<(char, &str)> {
    let mut it = s.chars();
    it.next().map(|c| (c, it.as_str()))
}

/// Match `chunk` (no stars) at the start of `s`: the rest of `s`, or `None`.
/// After a mismatch the chunk is still parsed for syntax errors.
fn match_chunk<'s>(mut chunk: &str, mut s: &'s str) -> Result<Option<&'s str>, BadPattern> {
    let mut failed = false;
    while let Some((c, after)) = first_char(chunk) {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = '\0';
                if !failed {
                    if let Some((sc, srest)) = first_char(s) {
                        r = sc;
                        s = srest;
                    }
                }
                chunk = after;
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.starts_with(']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        let (h, rest) = get_esc(rest)?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if let Some((sc, srest)) = first_char(s) {
                        if sc == '/' {
                            failed = true;
                        }
                        s = srest;
                    }
                }
                chunk = after;
            }
            _ => {
                let (lit, rest) = if c == '\\' {
                    first_char(after).ok_or(BadPattern)?
                } else {
                    (c, after)
                };
                if !failed {
                    if let Some((sc, srest)) = first_char(s) {
                        if sc != lit {
                            failed = true;
                        }
                        s = srest;
                    }
                }
                chunk = rest;
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// One possibly escaped character of a class; the class must go on after it.
fn get_esc(chunk: &str) -> Result<(char, &str), BadPattern> {
    let (c, mut rest) = first_char(chunk).ok_or(BadPattern)?;
    if c == '-' || c == ']' {
        return Err(BadPattern);
    }
    let c = if c == '\\' {
        let (e, r) = first_char(rest).ok_or(BadPattern)?;
        rest = r;
        e
    } else {
        c
    };
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_go_filepath_match() {
        // (pattern, name, result) from Go's path/filepath match_test.go.
        let ok: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("*x", "xxx", true),
            ("**", "a", true),
            ("**/x", "a/x", true),
            ("**/x", "a/b/x", false),
        ];
        for (p, n, want) in ok {
            assert_eq!(matches(p, n), Ok(*want), "{p:?} vs {n:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[-x]", "x"),
            ("\\", "a"),
            ("[a-b-c]", "a"),
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
            ("*x\\", "xxx"),
        ];
        for (p, n) in bad {
            assert_eq!(matches(p, n), Err(BadPattern), "{p:?} vs {n:?}");
        }
        assert!(has_wildcards("*.go"));
        assert!(has_wildcards("a[bc]"));
        assert!(!has_wildcards("a\\*b"));
        assert!(!has_wildcards("plain"));
    }
}
