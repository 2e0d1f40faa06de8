//! The lexer: literal text and the tokens inside `{{ }}`, as Go's
//! text/template lexes them (trim markers `{{- ` and ` -}}`, comments
//! `{{/* */}}`, strings, raw strings, characters, numbers, fields,
//! variables and identifiers).

use super::FormatError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// Literal text, with the docker CLI's `\t` and `\n` escapes applied
    /// and trim markers honoured.
    Text(String),
    /// `{{` (and a left trim marker).
    Left,
    /// `}}` (and a right trim marker).
    Right,
    Space,
    /// A function name or a keyword (`if`, `range`, `end`...).
    Ident(String),
    Bool(bool),
    Nil,
    /// `.Name`, without the dot.
    Field(String),
    /// `$name` or `$`, with the dollar.
    Var(String),
    Dot,
    /// A quoted or raw string, unquoted.
    Str(String),
    /// A number's text, parsed by the parser.
    Num(String),
    Char(char),
    Declare,
    Assign,
    Pipe,
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    pub tok: Tok,
    /// Byte offset in the source.
    pub pos: usize,
}

pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The docker CLI turns `\t` and `\n` in a format into a tab and a newline.
fn escapes(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// 1-based line and 0-based column of a byte offset.
pub(super) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src[..pos.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| pos - i - 1).unwrap_or(pos);
    (line, col)
}

pub(super) fn parse_err(src: &str, pos: usize, msg: impl std::fmt::Display) -> FormatError {
    FormatError::Parse(format!("template: :{}: {msg}", line_col(src, pos).0))
}

pub(super) fn lex(src: &str) -> Result<Vec<Item>, FormatError> {
    let mut l = Lexer {
        src,
        pos: 0,
        items: Vec::new(),
        trim_next: false,
        paren: 0,
    };
    l.run()?;
    Ok(l.items)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    items: Vec<Item>,
    /// The previous action ended with ` -}}`.
    trim_next: bool,
    paren: usize,
}

impl Lexer<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> FormatError {
        parse_err(self.src, self.pos, msg)
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, tok: Tok, pos: usize) {
        self.items.push(Item { tok, pos });
    }

    /// At `}}` or ` -}}`: the delimiter's length and whether it trims.
    fn at_right(&self) -> Option<(usize, bool)> {
        let r = self.rest();
        if r.starts_with("}}") {
            return Some((2, false));
        }
        let mut cs = r.chars();
        match (cs.next(), cs.next()) {
            (Some(c), Some('-')) if is_space(c) && r[c.len_utf8() + 1..].starts_with("}}") => {
                Some((c.len_utf8() + 3, true))
            }
            _ => None,
        }
    }

    fn run(&mut self) -> Result<(), FormatError> {
        loop {
            let start = self.pos;
            let found = self.rest().find("{{").map(|i| start + i);
            let text_end = found.unwrap_or(self.src.len());
            let mut after = text_end + 2;
            let left_trim = found.is_some() && {
                let mut cs = self.src[after..].chars();
                cs.next() == Some('-') && cs.next().is_some_and(is_space)
            };
            let mut text = escapes(&self.src[start..text_end]);
            if self.trim_next {
                text = text.trim_start_matches(is_space).to_string();
            }
            if left_trim {
                text.truncate(text.trim_end_matches(is_space).len());
            }
            self.trim_next = false;
            if !text.is_empty() {
                self.emit(Tok::Text(text), start);
            }
            if found.is_none() {
                self.pos = self.src.len();
                self.emit(Tok::Eof, self.pos);
                return Ok(());
            }
            if left_trim {
                after += 2;
            }
            self.pos = after;
            if self.rest().starts_with("/*") {
                let end = self.rest()[2..]
                    .find("*/")
                    .ok_or_else(|| self.err("unclosed comment"))?;
                self.pos += 2 + end + 2;
                let (n, trim) = self
                    .at_right()
                    .ok_or_else(|| self.err("comment ends before closing delimiter"))?;
                self.pos += n;
                self.trim_next = trim;
                continue;
            }
            self.emit(Tok::Left, after);
            self.action()?;
        }
    }

    fn action(&mut self) -> Result<(), FormatError> {
        loop {
            if let Some((n, trim)) = self.at_right() {
                if self.paren > 0 {
                    return Err(self.err("unclosed left paren"));
                }
                self.emit(Tok::Right, self.pos);
                self.pos += n;
                self.trim_next = trim;
                return Ok(());
            }
            let start = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.err("unclosed action"));
            };
            self.pos += c.len_utf8();
            match c {
                c if is_space(c) => {
                    // A space that starts ` -}}` belongs to the delimiter.
                    while self.peek().is_some_and(is_space) {
                        if self.at_right().is_some() {
                            break;
                        }
                        self.pos += 1;
                    }
                    if self.pos > start {
                        self.emit(Tok::Space, start);
                    }
                }
                '=' => self.emit(Tok::Assign, start),
                ':' => {
                    if self.peek() != Some('=') {
                        return Err(self.err("expected :="));
                    }
                    self.pos += 1;
                    self.emit(Tok::Declare, start);
                }
                '|' => self.emit(Tok::Pipe, start),
                ',' => self.emit(Tok::Comma, start),
                '(' => {
                    self.paren += 1;
                    self.emit(Tok::LParen, start);
                }
                ')' => {
                    if self.paren == 0 {
                        return Err(self.err("unexpected right paren"));
                    }
                    self.paren -= 1;
                    self.emit(Tok::RParen, start);
                }
                '"' => {
                    let s = self.quoted('"')?;
                    self.emit(Tok::Str(s), start);
                }
                '\'' => {
                    let s = self.quoted('\'')?;
                    let mut cs = s.chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) => self.emit(Tok::Char(c), start),
                        _ => return Err(self.err(format!("malformed character constant: '{s}'"))),
                    }
                }
                '`' => {
                    let end = self
                        .rest()
                        .find('`')
                        .ok_or_else(|| self.err("unterminated raw quoted string"))?;
                    let s = self.rest()[..end].replace('\r', "");
                    self.pos += end + 1;
                    self.emit(Tok::Str(s), start);
                }
                '$' => {
                    let name = self.word();
                    self.terminator()?;
                    self.emit(Tok::Var(format!("${name}")), start);
                }
                '.' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                    let name = self.word();
                    self.terminator()?;
                    if name.is_empty() {
                        self.emit(Tok::Dot, start);
                    } else {
                        self.emit(Tok::Field(name), start);
                    }
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos = start;
                    let n = self.number()?;
                    self.emit(Tok::Num(n), start);
                }
                c if is_alnum(c) => {
                    self.pos = start;
                    let w = self.word();
                    self.terminator()?;
                    let tok = match w.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        _ => Tok::Ident(w),
                    };
                    self.emit(tok, start);
                }
                c => return Err(self.err(format!("unexpected {c:?} in command"))),
            }
        }
    }

    fn word(&mut self) -> String {
        let end = self
            .rest()
            .find(|c: char| !is_alnum(c))
            .unwrap_or(self.rest().len());
        let w = self.rest()[..end].to_string();
        self.pos += end;
        w
    }

    /// After a word: a space, `.`, `,`, `|`, `:`, a paren or the delimiter.
    fn terminator(&self) -> Result<(), FormatError> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_space(c) || ".,|:()".contains(c) => Ok(()),
            Some(_) if self.rest().starts_with("}}") => Ok(()),
            Some(c) => Err(self.err(format!("bad character {c:?}"))),
        }
    }

    fn number(&mut self) -> Result<String, FormatError> {
        let start = self.pos;
        let accept = |l: &mut Self, set: &str| -> bool {
            match l.peek() {
                Some(c) if set.contains(c) => {
                    l.pos += 1;
                    true
                }
                _ => false,
            }
        };
        let run = |l: &mut Self, set: &str| while accept(l, set) {};
        accept(self, "+-");
        let mut digits = "0123456789_";
        if accept(self, "0") {
            if accept(self, "xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if accept(self, "oO") {
                digits = "01234567_";
            } else if accept(self, "bB") {
                digits = "01_";
            }
        }
        run(self, digits);
        if accept(self, ".") {
            run(self, digits);
        }
        if digits.len() == 11 && accept(self, "eE") {
            accept(self, "+-");
            run(self, "0123456789_");
        }
        if digits.len() == 23 && accept(self, "pP") {
            accept(self, "+-");
            run(self, "0123456789_");
        }
        accept(self, "i");
        let text = self.src[start..self.pos].to_string();
        if self.peek().is_some_and(is_alnum) || !text.chars().any(|c| c.is_ascii_digit()) {
            self.pos += self.peek().map(char::len_utf8).unwrap_or(0);
            return Err(self.err(format!(
                "bad number syntax: {:?}",
                &self.src[start..self.pos]
            )));
        }
        Ok(text)
    }

    /// A `"`- or `'`-quoted literal with Go's escapes; the opening quote
    /// is consumed already.
    fn quoted(&mut self, q: char) -> Result<String, FormatError> {
        let mut out = String::new();
        let unterminated = if q == '"' {
            "unterminated quoted string"
        } else {
            "unterminated character constant"
        };
        loop {
            let c = self.peek().ok_or_else(|| self.err(unterminated))?;
            self.pos += c.len_utf8();
            match c {
                '\n' => return Err(self.err(unterminated)),
                c if c == q => return Ok(out),
                '\\' => {
                    let e = self.peek().ok_or_else(|| self.err(unterminated))?;
                    self.pos += e.len_utf8();
                    let hex = |l: &mut Self, n: usize| -> Result<char, FormatError> {
                        let h = l.rest().get(..n).unwrap_or("");
                        let v = u32::from_str_radix(h, 16)
                            .ok()
                            .filter(|_| h.len() == n && h.chars().all(|c| c.is_ascii_hexdigit()))
                            .ok_or_else(|| l.err("invalid syntax in quoted string"))?;
                        l.pos += n;
                        char::from_u32(v).ok_or_else(|| l.err("invalid syntax in quoted string"))
                    };
                    out.push(match e {
                        'a' => '\x07',
                        'b' => '\x08',
                        'f' => '\x0c',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'v' => '\x0b',
                        '\\' => '\\',
                        '"' if q == '"' => '"',
                        '\'' if q == '\'' => '\'',
                        'x' => hex(self, 2)?,
                        'u' => hex(self, 4)?,
                        'U' => hex(self, 8)?,
                        '0'..='7' => {
                            let o = self.rest().get(..2).unwrap_or("");
                            let v = u32::from_str_radix(&format!("{e}{o}"), 8)
                                .ok()
                                .filter(|v| *v <= 255 && o.len() == 2)
                                .ok_or_else(|| self.err("invalid syntax in quoted string"))?;
                            self.pos += 2;
                            char::from_u32(v).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("invalid syntax in quoted string")),
                    });
                }
                c => out.push(c),
            }
        }
    }
}
