//! Phase one, BuildKit's `parser.Parse`: the text becomes a list of raw
//! nodes, one per instruction, each with its name as written, its `--flags`,
//! its arguments split the way that instruction splits them, whether they
//! were a JSON array, and its heredoc bodies.
//!
//! This module owns parser directives, comments, line continuations,
//! heredoc bodies and the per-instruction argument splitting
//! (`line_parsers.go`). It must not judge arguments (counts, flags, names):
//! that is phase two, in `instructions.rs`.

use super::lex::{self, LexMode};
use super::{Heredoc, ParseError, MAX_LINE_BYTES};

/// One instruction as the line parsers left it.
#[derive(Debug, Default)]
pub(super) struct Node {
    /// The instruction name as written (`run`, `RUN`...).
    pub cmd: String,
    /// `--name[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// The arguments. ENV and LABEL: key, value, key, value...
    pub args: Vec<String>,
    /// The arguments were a JSON array.
    pub json: bool,
    /// The instruction line, continuations joined, comments dropped.
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    /// ONBUILD's instruction.
    pub child: Option<Box<Node>>,
    pub start_line: usize,
    pub end_line: usize,
}

/// What phase one produced.
pub(super) struct Ast {
    pub directives: Vec<(String, String)>,
    pub escape: char,
    pub nodes: Vec<Node>,
    /// Lines in the file.
    pub lines: usize,
}

const KNOWN_DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

/// Parser directives, read until the first line that is not one.
struct Directives {
    escape: char,
    done: bool,
    list: Vec<(String, String)>,
}

impl Directives {
    /// BuildKit's `DirectiveParser.ParseLine`: `# key=value` with a known
    /// key, before anything else. `Ok(true)` when the line was one.
    fn parse_line(&mut self, line: &str) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Some((key, value)) = split_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_ascii_lowercase();
        if !KNOWN_DIRECTIVES.contains(&key.as_str()) {
            self.done = true;
            return Ok(false);
        }
        if self.list.iter().any(|(k, _)| *k == key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ))
                }
            };
        }
        self.list.push((key, value.to_string()));
        Ok(true)
    }
}

/// Whitespace as RE2's `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Matches `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` by hand.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    let value = rest.trim_matches(is_re_space);
    if !value.is_empty() {
        return Some((key, value));
    }
    // Only whitespace after `=`: the lazy `(.+?)` still takes one char.
    let last = rest.char_indices().last().map_or(0, |(i, _)| i);
    Some((key, &rest[last..]))
}

/// `[\t\v\f\r ]`, what BuildKit splits arguments on.
fn is_token_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a trailing escape char (and the blanks after it) that continues
/// the line; BuildKit's `lineContinuationRegex`. An escape char escaped by
/// another one does not continue the line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(body) = t.strip_suffix(escape) else {
        return (line, true);
    };
    if body.ends_with(escape) {
        return (line, true);
    }
    (body, false)
}

/// Reads the raw lines of a source, counting them.
struct Lines<'a> {
    it: std::str::SplitInclusive<'a, char>,
    count: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<Option<&'a str>, ParseError> {
        let Some(line) = self.it.next() else {
            return Ok(None);
        };
        self.count += 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(ParseError::new(
                self.count,
                format!("dockerfile line greater than max allowed size of {MAX_LINE_BYTES} bytes"),
            ));
        }
        let line = if self.count == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        Ok(Some(line))
    }
}

pub(super) fn parse(src: &str) -> Result<Ast, ParseError> {
    let mut d = Directives {
        escape: '\\',
        done: false,
        list: Vec::new(),
    };
    let mut lines = Lines {
        it: src.split_inclusive('\n'),
        count: 0,
    };
    let mut nodes = Vec::new();
    while let Some(raw) = lines.next()? {
        let start = lines.count;
        let token = trim_newline(raw).trim_start();
        d.parse_line(token).map_err(|m| ParseError::new(start, m))?;
        if is_comment(token) {
            continue;
        }
        let (first, mut end) = trim_continuation(token, d.escape);
        if end && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        while !end {
            let Some(raw) = lines.next()? else { break };
            let token = trim_newline(raw);
            d.parse_line(token)
                .map_err(|m| ParseError::new(lines.count, m))?;
            // Comment lines and blank lines inside a continuation are
            // skipped; the instruction goes on.
            if is_comment(token) || token.trim_start().is_empty() {
                continue;
            }
            let (part, e) = trim_continuation(token, d.escape);
            line.push_str(part);
            end = e;
        }
        let mut node =
            new_node_from_line(&line, d.escape, 0).map_err(|m| ParseError::new(start, m))?;
        if can_contain_heredoc(&node) && line.contains("<<") {
            let heredocs = heredocs_from_line(&line).map_err(|m| ParseError::new(start, m))?;
            for mut h in heredocs {
                let mut terminated = false;
                while let Some(raw) = lines.next()? {
                    let mut candidate = trim_newline(raw);
                    if h.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == h.name {
                        terminated = true;
                        break;
                    }
                    h.content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::new(
                        start,
                        format!("unterminated heredoc {:?}", h.name),
                    ));
                }
                node.heredocs.push(h);
            }
        }
        node.start_line = start;
        node.end_line = lines.count;
        nodes.push(node);
    }
    Ok(Ast {
        directives: d.list,
        escape: d.escape,
        nodes,
        lines: lines.count,
    })
}

/// RUN, COPY and ADD in shell form (also under ONBUILD) read heredocs.
fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.child, node.cmd.eq_ignore_ascii_case("onbuild")) {
        (Some(child), true) => child,
        _ => node,
    };
    let cmd = n.cmd.to_ascii_lowercase();
    matches!(cmd.as_str(), "run" | "copy" | "add") && !n.json
}

/// The heredoc words of a line (`<<EOF`, `<<-EOF`, `3<<"EOF"`), lexed as
/// BuildKit does: with `\` as escape whatever the directive says, quotes and
/// escapes kept, unset variables left alone. A line that does not lex has
/// none.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mode = LexMode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
    };
    let words = match lex::process(line, '\\', mode, &|_| None) {
        Ok((_, words)) => words,
        Err(_) => return Ok(Vec::new()),
    };
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc_word(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// A heredoc word, `^(\d*)<<(-?)([^<]*)$`, its name unquoted. The body is
/// expanded at build time unless some part of the name was quoted.
pub(super) fn parse_heredoc_word(src: &str) -> Result<Option<Heredoc>, String> {
    let rest = src.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let plain_mode = LexMode {
        skip_unset_env: true,
        ..LexMode::default()
    };
    let (_, words) = lex::process(rest, '\\', plain_mode, &|_| None).map_err(|e| e.to_string())?;
    let [word] = words.as_slice() else {
        return Ok(None);
    };
    let raw_mode = LexMode {
        raw_quotes: true,
        ..plain_mode
    };
    let (_, raw_words) =
        lex::process(rest, '\\', raw_mode, &|_| None).map_err(|e| e.to_string())?;
    let [raw_word] = raw_words.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: word.clone(),
        content: String::new(),
        expand: quotes(word) == quotes(raw_word),
        chomp,
    }))
}

/// Splits `INSTRUCTION [--flags] args` (BuildKit's `splitCommand`).
fn split_command(line: &str) -> (String, Vec<String>, String) {
    let t = line.trim();
    let Some(i) = t.find(is_token_ws) else {
        return (t.to_string(), Vec::new(), String::new());
    };
    let cmd = t[..i].to_string();
    let rest = t[i..].trim_start_matches(is_token_ws);
    let (args, flags) = extract_builder_flags(rest);
    (cmd, flags, args.trim().to_string())
}

/// Takes the leading `--flag[=value]` words off `line` (BuildKit's
/// `extractBuilderFlags`): quotes removed, `\` escapes the next char, a
/// lone `--` ends the flags.
fn extract_builder_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut i = 0;
    while i <= n {
        if phase == Phase::Spaces {
            let Some(&(at, ch)) = chars.get(i) else { break };
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            if ch != '-' || chars.get(i + 1).map(|&(_, c)| c) != Some('-') {
                return (&line[at..], words);
            }
            phase = Phase::Word;
        }
        let Some(&(at, mut ch)) = chars.get(i) else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[at..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                i += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                i += 1;
                continue;
            }
            if ch == '\\' {
                if i + 1 == n {
                    i += 1;
                    continue;
                }
                i += 1;
                ch = chars[i].1;
            }
            word.push(ch);
            i += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            i += 1;
            continue;
        }
        if ch == '\\' {
            if i + 1 == n {
                phase = Phase::Word;
                i += 1;
                continue;
            }
            i += 1;
            ch = chars[i].1;
        }
        word.push(ch);
        i += 1;
    }
    ("", words)
}

/// Splits on blanks, keeping quotes and escapes (BuildKit's `parseWords`,
/// for ENV, LABEL and ARG): `a="b c" d` is two words.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut i = 0;
    loop {
        if phase == Phase::Spaces {
            let Some(&ch) = chars.get(i) else { break };
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        let Some(&ch) = chars.get(i) else {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        };
        let mut ch = ch;
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                i += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if i + 1 == n {
                    // An escape char at the very end is dropped.
                    i += 1;
                    continue;
                }
                // Outside quotes the escape char stays, with what it
                // escapes, even a quote.
                word.push(ch);
                i += 1;
                ch = chars[i];
            }
            word.push(ch);
            i += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if i + 1 == n {
                phase = Phase::Word;
                i += 1;
                continue;
            }
            word.push(ch);
            i += 1;
            ch = chars[i];
        }
        word.push(ch);
        i += 1;
    }
    words
}

/// Splits on runs of `[\t\v\f\r ]`.
fn split_ws(rest: &str) -> Vec<String> {
    rest.split(is_token_ws)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why a `[...]` argument is not taken as an exec-form array.
enum JsonError {
    /// Not JSON (or not an array): the shell form is used instead.
    NotJson,
    /// A JSON array with something else than strings in it: an error.
    NotStrings,
}

const ERR_NOT_STRINGS: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

fn parse_json(rest: &str) -> Result<Vec<String>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotJson);
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_str(rest).map_err(|_| JsonError::NotJson)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(JsonError::NotStrings),
        })
        .collect()
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or the whole text as one.
fn parse_maybe_json(rest: &str, node: &mut Node) -> Result<(), String> {
    if rest.is_empty() {
        return Ok(());
    }
    match parse_json(rest) {
        Ok(args) => {
            node.args = args;
            node.json = true;
        }
        Err(JsonError::NotStrings) => return Err(ERR_NOT_STRINGS.into()),
        Err(JsonError::NotJson) => node.args = vec![rest.to_string()],
    }
    Ok(())
}

/// COPY, ADD, VOLUME: a JSON array, or words split on blanks.
fn parse_maybe_json_to_list(rest: &str, node: &mut Node) -> Result<(), String> {
    match parse_json(rest) {
        Ok(args) => {
            node.args = args;
            node.json = true;
        }
        Err(JsonError::NotStrings) => return Err(ERR_NOT_STRINGS.into()),
        Err(JsonError::NotJson) => node.args = split_ws(rest),
    }
    Ok(())
}

/// ENV and LABEL: `k=v k2="v 2"`, or the legacy `k the rest of the line`.
fn parse_name_val(rest: &str, what: &str, escape: char, node: &mut Node) -> Result<(), String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(());
    };
    if !first.contains('=') {
        let Some(i) = rest.find(is_token_ws) else {
            return Err(format!("{what} must have two arguments"));
        };
        let value = rest[i..].trim_start_matches(is_token_ws);
        node.args = vec![rest[..i].to_string(), value.to_string()];
        return Ok(());
    }
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        node.args.push(k.to_string());
        node.args.push(v.to_string());
    }
    Ok(())
}

/// HEALTHCHECK: the type word (`CMD`, `NONE`), then a maybe-JSON command.
fn parse_health_config(rest: &str, node: &mut Node) -> Result<(), String> {
    if rest.is_empty() {
        return Ok(());
    }
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let mut sub = Node::default();
    parse_maybe_json(cmd, &mut sub)?;
    node.args = std::iter::once(typ.to_string()).chain(sub.args).collect();
    node.json = sub.json;
    Ok(())
}

/// One joined instruction line to a node. `depth` counts ONBUILD nesting:
/// only one level is parsed (ONBUILD ONBUILD is refused in phase two).
fn new_node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, String> {
    let (cmd, flags, rest) = split_command(line);
    let mut node = Node {
        original: line.to_string(),
        flags,
        ..Node::default()
    };
    match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&rest, &mut node)?,
        "arg" => node.args = parse_words(&rest, escape),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&rest, &mut node)?,
        "env" => parse_name_val(&rest, "ENV", escape, &mut node)?,
        "label" => parse_name_val(&rest, "LABEL", escape, &mut node)?,
        "expose" | "from" => node.args = split_ws(&rest),
        "healthcheck" => parse_health_config(&rest, &mut node)?,
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest];
        }
        "onbuild" => {
            if !rest.is_empty() && depth == 0 {
                node.child = Some(Box::new(new_node_from_line(&rest, escape, depth + 1)?));
            } else if !rest.is_empty() {
                node.args = vec![rest];
            }
        }
        _ => {}
    }
    node.cmd = cmd;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_regex_quirks() {
        assert_eq!(split_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(
            split_directive("#\t  dIrEcTiVe=value  "),
            Some(("dIrEcTiVe", "value"))
        );
        assert_eq!(
            split_directive("# directive =value"),
            Some(("directive", "value"))
        );
        assert_eq!(
            split_directive("# check=skip=all"),
            Some(("check", "skip=all"))
        );
        assert_eq!(split_directive("# syntax="), None);
        assert_eq!(split_directive("# syntax=  "), Some(("syntax", " ")));
        assert_eq!(split_directive("# 1x=y"), None);
        assert_eq!(split_directive("#!/bin/sh"), None);
        assert_eq!(split_directive("# a comment"), None);
    }

    #[test]
    fn continuation_needs_an_unescaped_escape_char() {
        assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\  \t", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("RUN a \\\\", '\\'), ("RUN a \\\\", true));
        assert_eq!(trim_continuation("RUN a `", '`'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\", '`'), ("RUN a \\", true));
    }

    #[test]
    fn builder_flags_stop_at_the_first_plain_word() {
        let (rest, flags) = extract_builder_flags("--from=build --chown=\"a b\" src dst");
        assert_eq!(rest, "src dst");
        assert_eq!(flags, ["--from=build", "--chown=a b"]);
        let (rest, flags) = extract_builder_flags("-- --not-a-flag x");
        assert_eq!(rest.trim(), "--not-a-flag x");
        assert!(flags.is_empty());
        let (rest, flags) = extract_builder_flags("--link");
        assert_eq!(rest, "");
        assert_eq!(flags, ["--link"]);
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f' g=h\\ i", '\\'),
            ["a=\"b c\"", "d='e f'", "g=h\\ i"]
        );
        assert_eq!(parse_words("x=\"unterminated", '\\'), ["x=\"unterminated"]);
    }

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc_word("<<EOF").ok().flatten();
        assert_eq!(
            h.as_ref().map(|h| (h.name.as_str(), h.expand, h.chomp)),
            Some(("EOF", true, false))
        );
        let h = parse_heredoc_word("<<-'EOT'").ok().flatten();
        assert_eq!(
            h.as_ref().map(|h| (h.name.as_str(), h.expand, h.chomp)),
            Some(("EOT", false, true))
        );
        let h = parse_heredoc_word("3<<E\"O\"F").ok().flatten();
        assert_eq!(
            h.as_ref().map(|h| (h.name.as_str(), h.expand)),
            Some(("EOF", false))
        );
        assert!(matches!(parse_heredoc_word("a<<EOF"), Ok(None)));
        assert!(matches!(parse_heredoc_word("<<"), Ok(None)));
        assert!(matches!(parse_heredoc_word("<<<EOF"), Ok(None)));
    }
}
