//! Shell-word processing as BuildKit's `shell.Lex` does it: quote removal,
//! escapes and `$VAR` / `${VAR...}` expansion over one word.
//!
//! This module owns the lexer and the glob matching behind `${VAR#pat}`,
//! `${VAR%pat}` and `${VAR/pat/repl}`. It must not know about Dockerfile
//! instructions: the parser uses it (raw modes) to find heredoc words, the
//! builder uses [`expand`] / [`expand_words`] at build time.

/// A word that could not be expanded: unterminated quote, bad `${}`,
/// `${VAR?message}` on an unset variable, invalid pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {message}")]
pub struct ExpandError {
    /// The word as given.
    pub word: String,
    /// What is wrong with it.
    pub message: String,
}

/// Expands one word as BuildKit's `ProcessWord`: quotes removed, escapes
/// applied, variables replaced; whitespace is kept as is. `lookup` returns
/// `None` for an unset variable (which expands to nothing) and `Some("")`
/// for one set to the empty string (which matters to `${VAR-x}`).
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    process(word, escape, LexMode::default(), lookup).map(|(w, _)| w)
}

/// Expands like [`expand`], then splits on unquoted whitespace, as BuildKit's
/// `ProcessWords` (used for EXPOSE). Whitespace that comes from a variable's
/// value splits too; quoted whitespace does not.
pub fn expand_words(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    process(word, escape, LexMode::default(), lookup).map(|(_, ws)| ws)
}

/// The lexer switches BuildKit uses internally (heredoc detection).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LexMode {
    /// Keep the quote characters in the result.
    pub raw_quotes: bool,
    /// Keep the escape characters in the result.
    pub raw_escapes: bool,
    /// Leave `$VAR` / `${VAR...}` of unset variables as written.
    pub skip_unset_env: bool,
}

/// How deep `${a:-${b:-...}}` may nest before it is refused (each level is
/// a recursion; a 1 MiB line must not overflow the stack).
const MAX_NESTING: usize = 64;

pub(crate) fn process(
    word: &str,
    escape: char,
    mode: LexMode,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), ExpandError> {
    let mut sw = ShellWord {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        mode,
        raw_escapes: mode.raw_escapes,
        lookup,
        depth: 0,
    };
    sw.process_stop_on(None, mode.raw_escapes)
        .map_err(|message| ExpandError {
            word: word.to_string(),
            message,
        })
}

/// Words being split on unquoted whitespace (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct ShellWord<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    mode: LexMode,
    raw_escapes: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end of the word.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '\'' => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '"' => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape char escapes the next one; at the end
                        // of the word it is dropped.
                        let Some(c) = self.next() else { break };
                        words.add_raw_char(c);
                        result.push(c);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    /// `'...'`: everything literal, no escapes at all.
    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        if let Some(q) = self.next() {
            if self.mode.raw_quotes {
                result.push(q);
            }
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.mode.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"..."`: `$` expands; the escape char escapes only `"`, `$` and
    /// itself, and stays literal before anything else.
    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        if let Some(q) = self.next() {
            if self.mode.raw_quotes {
                result.push(q);
            }
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.mode.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        if self.depth >= MAX_NESTING {
            return Err("syntax error: substitutions nested too deeply".into());
        }
        self.depth += 1;
        let r = self.process_dollar_inner();
        self.depth -= 1;
        r
    }

    fn process_dollar_inner(&mut self) -> Result<String, String> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.mode.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = String::from(ch);
        let mut null_is_unset = false;
        match ch {
            '}' => {
                return Ok(match self.lookup(&name) {
                    Some(v) => v,
                    None if self.mode.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            '/' => return self.process_replace(&name),
            ':' => {
                // `${VAR:x...}`: BuildKit reads the next char and goes on as
                // for `${VAR-...}` whatever it is; unknown ones fail below,
                // after the word has been read.
                null_is_unset = true;
                match self.next() {
                    Some(c) => {
                        ch = c;
                        modifier.push(c);
                    }
                    None => return Err("syntax error: missing '}'".into()),
                }
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
        let pattern_word = ch == '#' || ch == '%';
        if null_is_unset && pattern_word {
            return Err(format!("unsupported modifier ({modifier}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), pattern_word) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".into());
                }
                return Err(e);
            }
        };
        let value = self.lookup(&name);
        if self.mode.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset_or_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match ch {
            '-' => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset_or_null { String::new() } else { word }),
            '?' => match value {
                None => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                )),
                Some(v) if null_is_unset && v.is_empty() => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    }
                )),
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                let value = value.unwrap_or_default();
                let (pattern, longest) = match word.strip_prefix(ch) {
                    Some(p) => (p, true),
                    None => (word.as_str(), false),
                };
                if ch == '#' {
                    trim_prefix(pattern, &value, longest)
                } else {
                    trim_suffix(pattern, &value, longest)
                }
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    /// `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}`.
    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '/' in ${}".into());
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".into());
                }
                return Err(e);
            }
        };
        let value = self.lookup(name);
        if self.mode.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value = value.unwrap_or_default();
        let toks = compile_pattern(&pattern)
            .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        Ok(replace(&toks, &value, &replacement, all))
    }

    /// A name: letters, digits and `_`; or a run of digits (`$1`); or one
    /// special parameter (`$@`, `$#`...).
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// One element of a `${VAR#pattern}` glob: `*`, `?` or a literal char.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

/// BuildKit's `convertShellPatternToRegex` without the regex: `\` escapes
/// `*`, `?` and `\`; before `}` or `/` it only kept them out of the `${}`
/// syntax and is dropped; anything else after `\` is an error.
fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' => match it.peek().copied() {
                Some('}' | '/') => {}
                Some(n @ ('*' | '?' | '\\')) => {
                    it.next();
                    out.push(Tok::Lit(n));
                }
                Some(n) => return Err(format!("invalid escape '\\{n}'")),
                None => return Err("invalid escape '\\' at the end".into()),
            },
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// Reverses a pattern keeping `\x` escapes in front of what they escape,
/// so a suffix search can run as a prefix search on reversed strings.
fn reverse_pattern(pattern: &str) -> String {
    let runes: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; runes.len()];
    let last = runes.len().saturating_sub(1);
    let mut i = 0;
    while i < runes.len() {
        let tok = runes[i];
        let o = last - i;
        if tok == '\\' && i != last && o >= 1 {
            out[o - 1] = tok;
            out[o] = runes[i + 1];
            i += 2;
        } else {
            out[o] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The NFA states (tokens matched so far) reachable without input from
/// `states`, i.e. through `*` matching nothing.
fn close(toks: &[Tok], states: &mut [bool]) {
    for j in 0..toks.len() {
        if states[j] && toks[j] == Tok::Star {
            states[j + 1] = true;
        }
    }
}

/// Ends (exclusive, in chars) of every prefix of `s` the pattern matches.
fn prefix_match_ends(toks: &[Tok], s: &[char]) -> Vec<usize> {
    let m = toks.len();
    let mut cur = vec![false; m + 1];
    cur[0] = true;
    close(toks, &mut cur);
    let mut ends = Vec::new();
    for (i, &c) in s.iter().enumerate() {
        if cur[m] {
            ends.push(i);
        }
        let mut next = vec![false; m + 1];
        let mut any = false;
        for j in 0..m {
            if !cur[j] {
                continue;
            }
            match toks[j] {
                Tok::Star => next[j] = true,
                Tok::Any => next[j + 1] = true,
                Tok::Lit(l) if l == c => next[j + 1] = true,
                Tok::Lit(_) => continue,
            }
            any = true;
        }
        if !any {
            return ends;
        }
        close(toks, &mut next);
        cur = next;
    }
    if cur[m] {
        ends.push(s.len());
    }
    ends
}

/// `${VAR#pat}` (shortest) / `${VAR##pat}` (longest).
fn trim_prefix(pattern: &str, value: &str, longest: bool) -> Result<String, String> {
    let toks = compile_pattern(pattern)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let chars: Vec<char> = value.chars().collect();
    let ends = prefix_match_ends(&toks, &chars);
    let end = if longest { ends.last() } else { ends.first() };
    Ok(match end {
        Some(&e) => chars[e..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${VAR%pat}` (shortest) / `${VAR%%pat}` (longest): a prefix trim on the
/// reversed value with the reversed pattern, as BuildKit does.
fn trim_suffix(pattern: &str, value: &str, longest: bool) -> Result<String, String> {
    let rev_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &rev_value, longest)?;
    Ok(trimmed.chars().rev().collect())
}

/// The leftmost match starting at or after `from`, longest at that start
/// (what Go's regexp finds for these patterns with greedy `*`).
fn find_leftmost_longest(toks: &[Tok], s: &[char], from: usize) -> Option<(usize, usize)> {
    let m = toks.len();
    // For each state, the smallest start of a thread in it.
    let mut cur: Vec<Option<usize>> = vec![None; m + 1];
    let mut best: Option<(usize, usize)> = None;
    let mut i = from;
    loop {
        if best.is_none() && cur[0].is_none() {
            cur[0] = Some(i);
        }
        for j in 0..m {
            if let (Some(st), Tok::Star) = (cur[j], toks[j]) {
                if !matches!(cur[j + 1], Some(o) if o <= st) {
                    cur[j + 1] = Some(st);
                }
            }
        }
        if let Some(st) = cur[m] {
            best = match best {
                Some((bs, _)) if bs < st => best,
                _ => Some((st, i)),
            };
        }
        if let Some((bs, _)) = best {
            for slot in cur.iter_mut() {
                if slot.is_some_and(|st| st > bs) {
                    *slot = None;
                }
            }
        }
        if i >= s.len() || (best.is_some() && cur.iter().all(Option::is_none)) {
            return best;
        }
        let c = s[i];
        let mut next: Vec<Option<usize>> = vec![None; m + 1];
        for j in 0..m {
            let Some(st) = cur[j] else { continue };
            let to = match toks[j] {
                Tok::Star => j,
                Tok::Any => j + 1,
                Tok::Lit(l) if l == c => j + 1,
                Tok::Lit(_) => continue,
            };
            if !matches!(next[to], Some(o) if o <= st) {
                next[to] = Some(st);
            }
        }
        cur = next;
        i += 1;
    }
}

/// Replaces the first (or every, as Go's `ReplaceAllString`) match.
fn replace(toks: &[Tok], value: &str, replacement: &str, all: bool) -> String {
    let s: Vec<char> = value.chars().collect();
    if !all {
        return match find_leftmost_longest(toks, &s, 0) {
            Some((a, b)) => {
                let mut out: String = s[..a].iter().collect();
                out.push_str(replacement);
                out.extend(&s[b..]);
                out
            }
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= s.len() {
        let Some((a, b)) = find_leftmost_longest(toks, &s, search) else {
            break;
        };
        out.extend(&s[last_end..a]);
        // No replacement for an empty match right after another match.
        if b > last_end || a == 0 {
            out.push_str(replacement);
        }
        last_end = b;
        search = if search + 1 > b { search + 1 } else { b };
    }
    if last_end <= s.len() {
        out.extend(&s[last_end..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverses_patterns_keeping_escapes_in_front() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn rejects_invalid_pattern_escapes() {
        for p in ["\\", "\\x", "\\\\\\"] {
            assert!(compile_pattern(p).is_err(), "{p}");
        }
        assert_eq!(
            compile_pattern("a\\}").ok(),
            Some(vec![Tok::Lit('a'), Tok::Lit('}')])
        );
    }

    #[test]
    fn finds_leftmost_longest_matches() {
        let toks = compile_pattern("b*").unwrap_or_default();
        let s: Vec<char> = "abcbd".chars().collect();
        assert_eq!(find_leftmost_longest(&toks, &s, 0), Some((1, 5)));
        let toks = compile_pattern("x?").unwrap_or_default();
        assert_eq!(find_leftmost_longest(&toks, &s, 0), None);
    }

    #[test]
    fn replace_all_with_empty_pattern_keeps_value() {
        assert_eq!(replace(&[], "xxyy", "", true), "xxyy");
        assert_eq!(replace(&[], "xy", "-", true), "-x-y-");
        assert_eq!(replace(&[], "xxyy", "ww", false), "wwxxyy");
    }
}
