//! The parser: Go's text/template grammar over the lexer's tokens.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

use super::funcs;
use super::lex::{lex, line_col, parse_err, Item, Tok};
use super::FormatError;

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    /// `{{pipeline}}`: printed unless it declares variables.
    Action(Pipe),
    If(Block),
    With(Block),
    Range(Block),
    Break,
    Continue,
    /// `{{template "name" pipeline}}` (and the use half of `{{block}}`).
    Template {
        name: String,
        pipe: Option<Pipe>,
    },
}

#[derive(Debug)]
pub(super) struct Block {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(super) struct Pipe {
    /// Variables declared (`:=`) or assigned (`=`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    /// The source text, line and column, for error messages.
    pub src: String,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug)]
pub(super) struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(super) enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Num(Number),
    Str(String),
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// A function.
    Ident(String),
    /// `(pipeline)`.
    Pipe(Box<Pipe>),
    /// `(pipeline).A.B`.
    Chain(Box<Arg>, Vec<String>),
}

pub(super) struct Parsed {
    pub root: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

pub(super) fn parse(src: &str) -> Result<Parsed, FormatError> {
    let items = lex(src)?;
    let mut p = Parser {
        src,
        items,
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        defines: BTreeMap::new(),
    };
    let root = p.top()?;
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

enum End {
    End,
    Else,
}

struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    defines: BTreeMap<String, Vec<Node>>,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Left => "\"{{\"".into(),
        Tok::Right => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Ident(s) if is_keyword(s) => format!("<{s}>"),
        Tok::Ident(s) => format!("identifier {s:?}"),
        Tok::Bool(b) => format!("{b}"),
        Tok::Nil => "nil".into(),
        Tok::Field(f) => format!("field .{f}"),
        Tok::Var(v) => format!("variable {v}"),
        Tok::Dot => "\".\"".into(),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Char(c) => format!("{c:?}"),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Eof => "EOF".into(),
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "block"
            | "break"
            | "continue"
            | "define"
            | "else"
            | "end"
            | "if"
            | "range"
            | "template"
            | "with"
    )
}

fn is_ident(t: &Tok, word: &str) -> bool {
    matches!(t, Tok::Ident(s) if s == word)
}

fn number(text: &str) -> Option<Number> {
    let t = text.replace('_', "");
    if t.ends_with('i') {
        return None;
    }
    let (neg, mag) = match t.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = mag.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        u64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|b| b.is_ascii_digit()) {
        lower.parse::<u64>().ok()
    } else {
        None
    };
    if let Some(u) = int {
        return if neg {
            i64::try_from(u).ok().map(|i| Number::from(-i))
        } else {
            Some(Number::from(u))
        };
    }
    if lower.starts_with("0x") {
        return None;
    }
    let f: f64 = t.parse().ok()?;
    Number::from_f64(f).filter(|_| f.is_finite())
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> FormatError {
        parse_err(self.src, pos, msg)
    }

    fn next(&mut self) -> Item {
        let it = self.items[self.i.min(self.items.len() - 1)].clone();
        self.i = (self.i + 1).min(self.items.len());
        it
    }

    fn peek(&self) -> &Item {
        &self.items[self.i.min(self.items.len() - 1)]
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> Item {
        self.skip_space();
        self.next()
    }

    fn peek_non_space(&mut self) -> &Item {
        self.skip_space();
        self.peek()
    }

    fn unexpected(&self, it: &Item, context: &str) -> FormatError {
        self.err(
            it.pos,
            format!("unexpected {} in {context}", describe(&it.tok)),
        )
    }

    fn expect_right(&mut self, context: &str) -> Result<Item, FormatError> {
        let it = self.next_non_space();
        if it.tok != Tok::Right {
            return Err(self.unexpected(&it, context));
        }
        Ok(it)
    }

    fn top(&mut self) -> Result<Vec<Node>, FormatError> {
        let mut list = Vec::new();
        loop {
            let it = self.peek().clone();
            match &it.tok {
                Tok::Eof => return Ok(list),
                Tok::Left => {
                    let save = self.i;
                    self.next();
                    if is_ident(&self.next_non_space().tok, "define") {
                        self.define()?;
                        continue;
                    }
                    self.i = save;
                    match self.action()? {
                        Ok(n) => list.push(n),
                        Err(End::End) => return Err(self.err(it.pos, "unexpected {{end}}")),
                        Err(End::Else) => return Err(self.err(it.pos, "unexpected {{else}}")),
                    }
                }
                _ => list.push(
                    self.text_or_action()?
                        .map_err(|_| self.unexpected(&it, "input"))?,
                ),
            }
        }
    }

    /// Nodes up to an `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> Result<(Vec<Node>, End), FormatError> {
        let mut list = Vec::new();
        loop {
            if self.peek().tok == Tok::Eof {
                return Err(self.err(self.peek().pos, "unexpected EOF"));
            }
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(end) => return Ok((list, end)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Result<Node, End>, FormatError> {
        let it = self.next();
        match it.tok {
            Tok::Text(t) => Ok(Ok(Node::Text(t))),
            Tok::Left => {
                self.backup();
                self.action()
            }
            _ => Err(self.unexpected(&it, "input")),
        }
    }

    /// After `{{`: a control structure or a pipeline.
    fn action(&mut self) -> Result<Result<Node, End>, FormatError> {
        let left = self.next();
        let it = self.next_non_space();
        let word = match &it.tok {
            Tok::Ident(w) if is_keyword(w) => w.clone(),
            _ => {
                self.backup();
                return Ok(Ok(Node::Action(self.pipeline(
                    left.pos,
                    "command",
                    Tok::Right,
                )?)));
            }
        };
        Ok(Ok(match word.as_str() {
            "end" => {
                self.expect_right("end")?;
                return Ok(Err(End::End));
            }
            "else" => {
                let next = &self.peek_non_space().tok;
                if !(is_ident(next, "if") || is_ident(next, "with")) {
                    self.expect_right("else")?;
                }
                return Ok(Err(End::Else));
            }
            "if" => Node::If(self.control(left.pos, "if")?),
            "with" => Node::With(self.control(left.pos, "with")?),
            "range" => Node::Range(self.control(left.pos, "range")?),
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return Err(self.err(it.pos, format!("{{{{{word}}}}} outside {{{{range}}}}")));
                }
                self.expect_right(&word)?;
                if word == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            "template" => {
                let name = self.template_name("template clause")?;
                let pipe = if self.peek_non_space().tok == Tok::Right {
                    self.next();
                    None
                } else {
                    Some(self.pipeline(left.pos, "template clause", Tok::Right)?)
                };
                Node::Template { name, pipe }
            }
            "block" => {
                let name = self.template_name("block clause")?;
                let pipe = self.pipeline(left.pos, "block clause", Tok::Right)?;
                let body = self.definition_body()?;
                self.defines.insert(name.clone(), body);
                Node::Template {
                    name,
                    pipe: Some(pipe),
                }
            }
            _ => return Err(self.unexpected(&it, "command")),
        }))
    }

    fn template_name(&mut self, context: &str) -> Result<String, FormatError> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Str(s) => Ok(s),
            _ => Err(self.unexpected(&it, context)),
        }
    }

    /// `{{define "name"}}...{{end}}` (after `define`).
    fn define(&mut self) -> Result<(), FormatError> {
        let name = self.template_name("define clause")?;
        self.expect_right("define clause")?;
        let body = self.definition_body()?;
        self.defines.insert(name, body);
        Ok(())
    }

    fn definition_body(&mut self) -> Result<Vec<Node>, FormatError> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let depth = std::mem::take(&mut self.range_depth);
        let pos = self.peek().pos;
        let (body, end) = self.item_list()?;
        self.vars = vars;
        self.range_depth = depth;
        match end {
            End::End => Ok(body),
            End::Else => Err(self.err(pos, "unexpected {{else}} in definition")),
        }
    }

    /// `if`, `with` or `range`: pipeline, list, optional else, end.
    fn control(&mut self, pos: usize, context: &str) -> Result<Block, FormatError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(pos, context, Tok::Right)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            End::End => None,
            End::Else => {
                let next = self.peek().clone();
                if context == "if" && is_ident(&next.tok, "if") {
                    self.next();
                    Some(vec![Node::If(self.control(next.pos, "if")?)])
                } else if context == "with" && is_ident(&next.tok, "with") {
                    self.next();
                    Some(vec![Node::With(self.control(next.pos, "with")?)])
                } else {
                    let (l, end) = self.item_list()?;
                    if let End::Else = end {
                        return Err(self.err(self.peek().pos, "expected end; found {{else}}"));
                    }
                    Some(l)
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Block {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to `end` (`}}` or `)`), which it consumes.
    fn pipeline(&mut self, start: usize, context: &str, end: Tok) -> Result<Pipe, FormatError> {
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x =`, and in range `$i, $e :=`.
        loop {
            let save = self.i;
            let v = self.peek_non_space().clone();
            let Tok::Var(name) = v.tok else {
                self.i = save;
                break;
            };
            self.next();
            match self.peek_non_space().tok {
                Tok::Declare | Tok::Assign => {
                    assign = self.next().tok == Tok::Assign;
                    decl.push(name.clone());
                    self.vars.push(name);
                    break;
                }
                Tok::Comma => {
                    self.next();
                    decl.push(name.clone());
                    self.vars.push(name);
                    if context == "range" && decl.len() < 2 {
                        let p = self.peek_non_space().clone();
                        if matches!(p.tok, Tok::Var(_)) {
                            continue;
                        }
                        return Err(self.err(p.pos, "range can only initialize variables"));
                    }
                    return Err(self.err(v.pos, format!("too many declarations in {context}")));
                }
                _ => {
                    if decl.len() == 1 {
                        // `$i,` then a variable that is not declared.
                        return Err(self.err(v.pos, "missing := after range variables"));
                    }
                    self.i = save;
                    break;
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let it = self.next_non_space();
            if it.tok == end {
                if cmds.is_empty() {
                    return Err(self.err(it.pos, format!("missing value for {context}")));
                }
                for (i, c) in cmds.iter().enumerate().skip(1) {
                    let c: &Cmd = c;
                    if matches!(
                        c.args[0],
                        Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Num(_) | Arg::Str(_)
                    ) {
                        return Err(self.err(
                            it.pos,
                            format!("non executable command in pipeline stage {}", i + 1),
                        ));
                    }
                }
                let (line, col) = line_col(self.src, start);
                return Ok(Pipe {
                    decl,
                    assign,
                    cmds,
                    src: self.src[start..it.pos].trim().to_string(),
                    line,
                    col,
                });
            }
            match it.tok {
                Tok::Bool(_)
                | Tok::Char(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Num(_)
                | Tok::Nil
                | Tok::Var(_)
                | Tok::Str(_)
                | Tok::LParen => {
                    self.backup();
                    cmds.push(self.command(context)?);
                }
                _ => return Err(self.unexpected(&it, context)),
            }
        }
    }

    fn command(&mut self, context: &str) -> Result<Cmd, FormatError> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            let pos = self.peek().pos;
            if let Some(a) = self.operand(context)? {
                args.push(a);
            }
            let it = self.next();
            match it.tok {
                Tok::Space => continue,
                Tok::Right | Tok::RParen => self.backup(),
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&it, "operand")),
            }
            if args.is_empty() {
                return Err(self.err(pos, "empty command"));
            }
            return Ok(Cmd { args });
        }
    }

    fn operand(&mut self, context: &str) -> Result<Option<Arg>, FormatError> {
        let pos = self.peek().pos;
        let Some(term) = self.term(context)? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f.clone());
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(v, mut f) => {
                f.extend(fields);
                Arg::Var(v, f)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Num(_) | Arg::Nil | Arg::Dot => {
                return Err(self.err(pos, "unexpected . after term"));
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self, context: &str) -> Result<Option<Arg>, FormatError> {
        let it = self.next_non_space();
        Ok(Some(match it.tok {
            Tok::Ident(name) => {
                if is_keyword(&name) {
                    return Err(self.err(it.pos, format!("unexpected <{name}> in {context}")));
                }
                if !funcs::exists(&name) {
                    return Err(FormatError::Function(name));
                }
                Arg::Ident(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Var(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err(it.pos, format!("undefined variable {name:?}")));
                }
                Arg::Var(name, Vec::new())
            }
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Char(c) => Arg::Num(Number::from(c as u32)),
            Tok::Num(n) => Arg::Num(
                number(&n)
                    .ok_or_else(|| self.err(it.pos, format!("illegal number syntax: {n:?}")))?,
            ),
            Tok::Str(s) => Arg::Str(s),
            Tok::LParen => Arg::Pipe(Box::new(self.pipeline(
                it.pos + 1,
                "parenthesized pipeline",
                Tok::RParen,
            )?)),
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// The value of a literal argument.
pub(super) fn literal(a: &Arg) -> Option<Value> {
    Some(match a {
        Arg::Nil => Value::Null,
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Num(n) => Value::Number(n.clone()),
        Arg::Str(s) => Value::String(s.clone()),
        _ => return None,
    })
}

/// The last field name in a pipeline, in source order (for table headers).
pub(super) fn last_field(pipe: &Pipe) -> Option<&str> {
    fn arg(a: &Arg) -> Option<&str> {
        match a {
            Arg::Field(f) | Arg::Var(_, f) => f.last().map(String::as_str),
            Arg::Chain(inner, f) => f.last().map(String::as_str).or_else(|| arg(inner)),
            Arg::Pipe(p) => last_field(p),
            _ => None,
        }
    }
    pipe.cmds
        .iter()
        .rev()
        .flat_map(|c| c.args.iter().rev())
        .find_map(arg)
}
