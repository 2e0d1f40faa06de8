//! `.dockerignore`: the file format (moby `patternmatcher/ignorefile`
//! `ReadAll`) and the matcher (moby `patternmatcher`, `New` and
//! `MatchesOrParentMatches`), kept to Docker's rules including their
//! quirks: patterns are cleaned with `filepath.Clean`, a leading `/` is
//! dropped, `**` matches any number of directories, `!` re-includes, the
//! last matching pattern wins, and a pattern matching a directory matches
//! everything under it.
//!
//! Docker turns each pattern into a regular expression; this module keeps
//! the same four kinds of match (exact, prefix, suffix, "regexp") and runs
//! the regexp ones on a small token list instead.

use super::glob;
use super::paths::{clean, dir};

/// Why `.dockerignore` could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PatternError {
    /// `!` alone.
    BareExclusion,
    /// A pattern `filepath.Match` refuses.
    Syntax(String),
}

/// The patterns of a `.dockerignore` file, as `ReadAll` returns them: a
/// UTF-8 BOM dropped, `#` comment lines and blank lines skipped, each
/// pattern trimmed and cleaned, `/` prefixes dropped, `!` kept.
pub(super) fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Comments are only lines *starting* with `#` (before trimming).
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push(p);
    }
    out
}

/// How a pattern is matched (patternmatcher's `matchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// `lit/**`: the path starts with `lit/`.
    Prefix,
    /// `**/lit` (leading `**` and no other wildcard): ends with `/lit`.
    Suffix,
    /// Anything else: the token list.
    Tokens,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Quest,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: `(.*/)?`.
    AnyDirs,
    /// A trailing `**`: `.*`.
    Any,
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
    tokens: Vec<Token>,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub(super) struct IgnoreMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl IgnoreMatcher {
    /// patternmatcher's `New`.
    pub(super) fn new(patterns: &[String]) -> Result<IgnoreMatcher, PatternError> {
        let mut m = IgnoreMatcher::default();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(PatternError::BareExclusion);
                }
                exclusion = true;
                m.exclusions = true;
                p = rest.to_string();
            }
            glob::check(&p).map_err(|_| PatternError::Syntax(p.clone()))?;
            let (kind, tokens) = compile(&p);
            m.patterns.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
                tokens,
            });
        }
        Ok(m)
    }

    /// Are there `!` patterns (can something under an excluded directory
    /// come back)?
    pub(super) fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// patternmatcher's `MatchesOrParentMatches` on a cleaned relative path.
    pub(super) fn matches(&self, file: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let parent = dir(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.is_match(file);
            if !m && parent != "." {
                let mut prefix = String::new();
                for (i, d) in parent_dirs.iter().enumerate() {
                    if i > 0 {
                        prefix.push('/');
                    }
                    prefix.push_str(d);
                    if p.is_match(&prefix) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// patternmatcher's `compile`, token by token.
fn compile(p: &str) -> (Kind, Vec<Token>) {
    let chars: Vec<char> = p.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = Kind::Exact;
    let mut i = 0;
    let mut n = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        tokens.push(Token::Any);
                        kind = Kind::Tokens;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    kind = Kind::Tokens;
                }
                if n == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                kind = Kind::Tokens;
            }
            '?' => {
                tokens.push(Token::Quest);
                kind = Kind::Tokens;
            }
            '\\' => match chars.get(i) {
                Some(c) => {
                    tokens.push(Token::Lit(*c));
                    i += 1;
                    kind = Kind::Tokens;
                }
                None => tokens.push(Token::Lit('\\')),
            },
            '[' => {
                // Well-formed: `glob::check` passed.
                let mut negated = false;
                if chars.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    match chars.get(i) {
                        None => break,
                        Some(']') if !ranges.is_empty() => {
                            i += 1;
                            break;
                        }
                        Some(_) => {}
                    }
                    let lo = class_char(&chars, &mut i);
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        hi = class_char(&chars, &mut i);
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
                kind = Kind::Tokens;
            }
            ']' => {
                tokens.push(Token::Lit(']'));
                kind = Kind::Tokens;
            }
            c => tokens.push(Token::Lit(c)),
        }
        n += 1;
    }
    (kind, tokens)
}

fn class_char(chars: &[char], i: &mut usize) -> char {
    let mut c = chars.get(*i).copied().unwrap_or('\0');
    *i += 1;
    if c == '\\' {
        c = chars.get(*i).copied().unwrap_or('\0');
        *i += 1;
    }
    c
}

impl Pattern {
    fn is_match(&self, path: &str) -> bool {
        match self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens => {
                let s: Vec<char> = path.chars().collect();
                let mut failed = vec![false; (self.tokens.len() + 1) * (s.len() + 1)];
                match_tokens(&self.tokens, 0, &s, 0, &mut failed)
            }
        }
    }
}

/// Do `tokens[t..]` match all of `s[i..]`? `failed` memoizes the states
/// known not to match, so the work is bounded by tokens × characters.
fn match_tokens(tokens: &[Token], t: usize, s: &[char], i: usize, failed: &mut [bool]) -> bool {
    let key = t * (s.len() + 1) + i;
    if failed[key] {
        return false;
    }
    let ok = match tokens.get(t) {
        None => i == s.len(),
        Some(Token::Lit(c)) => s.get(i) == Some(c) && match_tokens(tokens, t + 1, s, i + 1, failed),
        Some(Token::Quest) => {
            s.get(i).is_some_and(|c| *c != '/') && match_tokens(tokens, t + 1, s, i + 1, failed)
        }
        Some(Token::Class { negated, ranges }) => {
            s.get(i)
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && match_tokens(tokens, t + 1, s, i + 1, failed)
        }
        Some(Token::Star) => {
            let mut j = i;
            loop {
                if match_tokens(tokens, t + 1, s, j, failed) {
                    break true;
                }
                if j == s.len() || s[j] == '/' {
                    break false;
                }
                j += 1;
            }
        }
        Some(Token::Any) => {
            // Go's `.` does not match a newline.
            s[i..].iter().all(|c| *c != '\n') && match_tokens(tokens, t + 1, s, s.len(), failed)
        }
        Some(Token::AnyDirs) => {
            if match_tokens(tokens, t + 1, s, i, failed) {
                true
            } else {
                let mut found = false;
                for j in i..s.len() {
                    if s[j] == '\n' {
                        break;
                    }
                    if s[j] == '/' && match_tokens(tokens, t + 1, s, j + 1, failed) {
                        found = true;
                        break;
                    }
                }
                found
            }
        }
    };
    if !ok {
        failed[key] = true;
    }
    ok
}
