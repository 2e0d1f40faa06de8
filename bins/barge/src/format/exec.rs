//! Executing a parsed template on a JSON value, as Go's text/template
//! executes one on the docker CLI's data.

use serde_json::Value;

use super::funcs::{self, truth};
use super::gofmt;
use super::parse::{last_field, literal, Arg, Block, Cmd, Node, Pipe};
use super::{FormatError, Template};

static NULL: Value = Value::Null;

/// Deepest nesting of `{{template}}` calls.
const MAX_DEPTH: usize = 1000;

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'t> {
    tmpl: &'t Template,
    /// The value rendered. The docker CLI renders Go structs (ps and images
    /// rows, inspect's ContainerJSON, events' Message), so a field this
    /// lacks is an error; objects inside it are maps in docker (Labels,
    /// Attributes, Networks), where a missing key is `<no value>`.
    root: &'t Value,
    vars: Vec<(String, Value)>,
    /// Rendering a table's header: fields evaluate to their column titles.
    header: Option<&'t dyn Fn(&str) -> String>,
    depth: usize,
    pub out: String,
}

fn exec_err(msg: impl Into<String>) -> FormatError {
    FormatError::Exec(msg.into())
}

/// Give an execution error its place in the template, as Go does.
fn locate(pipe: &Pipe, e: FormatError) -> FormatError {
    match e {
        FormatError::Exec(m) if !m.starts_with("template:") => FormatError::Exec(format!(
            "template: :{}:{}: executing \"\" at <{}>: {m}",
            pipe.line, pipe.col, pipe.src
        )),
        other => other,
    }
}

impl<'t> Exec<'t> {
    pub fn new(
        tmpl: &'t Template,
        root: &'t Value,
        header: Option<&'t dyn Fn(&str) -> String>,
    ) -> Self {
        Exec {
            tmpl,
            root,
            vars: vec![("$".to_string(), root.clone())],
            header,
            depth: 0,
            out: String::new(),
        }
    }

    pub fn run(&mut self) -> Result<(), FormatError> {
        self.walk(self.root, &self.tmpl.root).map(drop)
    }

    fn walk(&mut self, dot: &Value, list: &'t [Node]) -> Result<Flow, FormatError> {
        for node in list {
            let flow = match node {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    if self.header.is_some() {
                        self.header_action(dot, pipe);
                    } else {
                        let v = self.eval_pipe(dot, pipe).map_err(|e| locate(pipe, e))?;
                        if pipe.decl.is_empty() {
                            self.out.push_str(&gofmt::print_value(&v));
                        }
                    }
                    Flow::Normal
                }
                Node::If(b) | Node::With(b) | Node::Range(b) if self.header.is_some() => {
                    self.header_title(&b.pipe);
                    Flow::Normal
                }
                Node::If(b) => self.if_with(dot, b, false)?,
                Node::With(b) => self.if_with(dot, b, true)?,
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
                Node::Template { name, pipe } => {
                    self.template(dot, name, pipe.as_ref())?;
                    Flow::Normal
                }
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    /// A table header's cell for an action: the action run on column
    /// titles where it makes a string, else the title of its last field.
    fn header_action(&mut self, dot: &Value, pipe: &Pipe) {
        let mark = self.vars.len();
        match self.eval_pipe(dot, pipe) {
            Ok(_) if !pipe.decl.is_empty() => {}
            Ok(Value::String(s)) => self.out.push_str(&s),
            Ok(_) => self.header_title(pipe),
            Err(_) => {
                self.vars.truncate(mark);
                let title = self.title_of(pipe);
                for name in &pipe.decl {
                    let v = Value::String(title.clone());
                    if pipe.assign {
                        let _ = self.set_var(name, v);
                    } else {
                        self.vars.push((name.clone(), v));
                    }
                }
                if pipe.decl.is_empty() {
                    self.out.push_str(&title);
                }
            }
        }
    }

    fn title_of(&self, pipe: &Pipe) -> String {
        match (self.header, last_field(pipe)) {
            (Some(title), Some(f)) => title(f),
            _ => String::new(),
        }
    }

    fn header_title(&mut self, pipe: &Pipe) {
        let t = self.title_of(pipe);
        self.out.push_str(&t);
    }

    fn if_with(&mut self, dot: &Value, b: &'t Block, with: bool) -> Result<Flow, FormatError> {
        let mark = self.vars.len();
        let v = self
            .eval_pipe(dot, &b.pipe)
            .map_err(|e| locate(&b.pipe, e))?;
        let flow = if truth(&v) {
            self.walk(if with { &v } else { dot }, &b.list)?
        } else if let Some(e) = &b.else_list {
            self.walk(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, dot: &Value, b: &'t Block) -> Result<Flow, FormatError> {
        let outer = self.vars.len();
        let v = self
            .eval_pipe(dot, &b.pipe)
            .map_err(|e| locate(&b.pipe, e))?;
        let items: Vec<(Value, Value)> = match v {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e))
                .collect(),
            Value::Object(m) => {
                let mut kv: Vec<_> = m.into_iter().collect();
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                kv.into_iter().map(|(k, e)| (Value::String(k), e)).collect()
            }
            Value::Null => Vec::new(),
            Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => {
                if b.pipe.decl.len() > 1 {
                    return Err(locate(
                        &b.pipe,
                        exec_err("can't use two variables to range over an integer"),
                    ));
                }
                let n = n.as_i64().unwrap_or(i64::MAX).max(0);
                (0..n).map(|i| (Value::from(i), Value::from(i))).collect()
            }
            other => {
                return Err(locate(
                    &b.pipe,
                    exec_err(format!(
                        "range can't iterate over {}",
                        gofmt::print_value(&other)
                    )),
                ))
            }
        };
        let mark = self.vars.len();
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                let flow = self.walk(dot, e)?;
                self.vars.truncate(outer);
                return Ok(flow);
            }
        }
        let decl = &b.pipe.decl;
        for (k, e) in items {
            self.vars.truncate(mark);
            match (decl.len(), b.pipe.assign) {
                (0, _) => {}
                (1, true) => self.set_var(&decl[0], e.clone())?,
                (_, true) => {
                    self.set_var(&decl[0], k)?;
                    self.set_var(&decl[1], e.clone())?;
                }
                (1, false) => self.vars[mark - 1].1 = e.clone(),
                (_, false) => {
                    self.vars[mark - 1].1 = e.clone();
                    self.vars[mark - 2].1 = k;
                }
            }
            if self.walk(&e, &b.list)? == Flow::Break {
                break;
            }
        }
        self.vars.truncate(outer);
        Ok(Flow::Normal)
    }

    fn template(
        &mut self,
        dot: &Value,
        name: &str,
        pipe: Option<&Pipe>,
    ) -> Result<(), FormatError> {
        let tmpl = self.tmpl;
        let body = tmpl
            .defines
            .get(name)
            .ok_or_else(|| exec_err(format!("template: template {name:?} not defined")))?;
        let v = match pipe {
            Some(p) => self.eval_pipe(dot, p).map_err(|e| locate(p, e))?,
            None => Value::Null,
        };
        if self.depth >= MAX_DEPTH {
            return Err(exec_err(format!(
                "template: exceeded maximum template depth ({MAX_DEPTH})"
            )));
        }
        let vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), v.clone())]);
        self.depth += 1;
        let r = self.walk(&v, body);
        self.depth -= 1;
        self.vars = vars;
        r.map(drop)
    }

    fn var(&self, name: &str) -> Result<&Value, FormatError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| exec_err(format!("undefined variable: {name}")))
    }

    fn set_var(&mut self, name: &str, v: Value) -> Result<(), FormatError> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(exec_err(format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipe(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, FormatError> {
        let mut val = None;
        for cmd in &pipe.cmds {
            val = Some(self.eval_cmd(dot, cmd, val)?);
        }
        let v = val.unwrap_or(Value::Null);
        for name in &pipe.decl {
            if pipe.assign {
                self.set_var(name, v.clone())?;
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_cmd(
        &mut self,
        dot: &Value,
        cmd: &Cmd,
        fin: Option<Value>,
    ) -> Result<Value, FormatError> {
        let first = &cmd.args[0];
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match first {
            Arg::Ident(name) => self.call(dot, name, &cmd.args[1..], fin),
            Arg::Field(f) | Arg::Var(_, f) | Arg::Chain(_, f) if has_args && !f.is_empty() => {
                Err(exec_err(format!(
                    "{} is not a method but has arguments",
                    f.last().map(String::as_str).unwrap_or_default()
                )))
            }
            Arg::Nil => Err(exec_err("nil is not a command")),
            _ if has_args => Err(exec_err(format!(
                "can't give argument to non-function {}",
                describe(first)
            ))),
            _ => self.eval_arg(dot, first),
        }
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> Result<Value, FormatError> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(f) => self.fields(dot, f),
            Arg::Var(name, f) => {
                if f.is_empty() {
                    self.var(name).cloned()
                } else {
                    self.fields(self.var(name)?, f)
                }
            }
            Arg::Chain(inner, f) => {
                let v = self.eval_arg(dot, inner)?;
                self.fields(&v, f)
            }
            Arg::Pipe(p) => self.eval_pipe(dot, p),
            Arg::Ident(name) => self.call(dot, name, &[], None),
            lit => Ok(literal(lit).unwrap_or(Value::Null)),
        }
    }

    /// `.A.B` on a value.
    fn fields(&self, v: &Value, names: &[String]) -> Result<Value, FormatError> {
        if let Some(title) = self.header {
            return Ok(Value::String(title(
                names.last().map(String::as_str).unwrap_or_default(),
            )));
        }
        let mut cur = v;
        for name in names {
            cur = match cur {
                Value::Object(m) => match m.get(name) {
                    Some(x) => x,
                    // Compared only on a miss: the root is the struct.
                    None if std::ptr::eq(cur, self.root) || cur == self.root => {
                        let fields = m.keys().cloned().collect::<Vec<_>>().join(", ");
                        return Err(FormatError::NoField(name.clone(), fields));
                    }
                    None => &NULL,
                },
                Value::Null => &NULL,
                other => {
                    return Err(exec_err(format!(
                        "can't evaluate field {name} in type {}",
                        gofmt::go_type(other)
                    )))
                }
            };
        }
        Ok(cur.clone())
    }

    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
    ) -> Result<Value, FormatError> {
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(fin.is_some());
            if n == 0 {
                return Err(exec_err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                )));
            }
            // Short-circuit: the first falsy (and) or truthy (or) value,
            // else the last.
            let mut last = Value::Null;
            for a in args {
                let v = self.eval_arg(dot, a)?;
                if truth(&v) == (name == "or") {
                    return Ok(v);
                }
                last = v;
            }
            return Ok(fin.unwrap_or(last));
        }
        let mut vals = args
            .iter()
            .map(|a| self.eval_arg(dot, a))
            .collect::<Result<Vec<_>, _>>()?;
        vals.extend(fin);
        if self.header.is_some() && funcs::HEADER_IDENTITY.contains(&name) {
            // docker's HeaderFunctions leave a column title as it is.
            return vals
                .into_iter()
                .next()
                .ok_or_else(|| exec_err(format!("wrong number of args for {name}")));
        }
        funcs::call(name, vals).map_err(exec_err)
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".into(),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Pipe(p) => format!("({})", p.src),
        Arg::Var(v, _) => v.clone(),
        other => literal(other)
            .map(|v| gofmt::print_value(&v))
            .unwrap_or_default(),
    }
}
