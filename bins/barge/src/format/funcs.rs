//! The functions: Go's text/template builtins and the docker CLI's
//! (`templates/templates.go`: json, split, join, title, lower, upper, pad,
//! truncate).

use serde_json::{Number, Value};

use super::gofmt::{self, go_type};

const FUNCS: &[&str] = &[
    // Go's builtins.
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery", // The docker CLI's.
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// The docker CLI's HeaderFunctions: in a table header these return their
/// first argument (the column title) unchanged.
pub(super) const HEADER_IDENTITY: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate",
];

pub(super) fn exists(name: &str) -> bool {
    FUNCS.contains(&name)
}

/// Go's truth: false, 0, "", nil and empty arrays and maps are false.
pub(super) fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn at_least(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string(v: &Value) -> Result<&str, String> {
    match v {
        Value::String(s) => Ok(s),
        Value::Null => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        )),
    }
}

/// An integer argument (a JSON number with no fraction).
pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

fn int_arg(v: &Value) -> Result<i64, String> {
    int(v).ok_or_else(|| match v {
        Value::Null => "invalid value; expected int".into(),
        other => format!("wrong type for value; expected int; got {}", go_type(other)),
    })
}

fn strings(v: &Value) -> Result<Vec<&str>, String> {
    let bad = || {
        format!(
            "wrong type for value; expected []string; got {}",
            go_type(v)
        )
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a.iter().map(|e| e.as_str().ok_or_else(bad)).collect(),
        _ => Err(bad()),
    }
}

pub(super) fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let s = |v: String| Ok(Value::String(v));
    match name {
        "json" => {
            arity(name, &args, 1)?;
            s(gofmt::json(&args[0]))
        }
        "split" => {
            arity(name, &args, 2)?;
            let (text, sep) = (string(&args[0])?, string(&args[1])?);
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep)
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        "join" => {
            arity(name, &args, 2)?;
            s(strings(&args[0])?.join(string(&args[1])?))
        }
        "title" => {
            arity(name, &args, 1)?;
            s(title(string(&args[0])?))
        }
        "lower" => {
            arity(name, &args, 1)?;
            s(string(&args[0])?.chars().map(lower).collect())
        }
        "upper" => {
            arity(name, &args, 1)?;
            s(string(&args[0])?.chars().map(upper).collect())
        }
        "pad" => {
            arity(name, &args, 3)?;
            let text = string(&args[0])?;
            let (pre, post) = (int_arg(&args[1])?, int_arg(&args[2])?);
            if pre < 0 || post < 0 {
                return Err("error calling pad: strings: negative Repeat count".into());
            }
            if text.is_empty() {
                return s(String::new());
            }
            s(format!(
                "{}{text}{}",
                " ".repeat(pre as usize),
                " ".repeat(post as usize)
            ))
        }
        "truncate" => {
            arity(name, &args, 2)?;
            let text = string(&args[0])?;
            let n = int_arg(&args[1])?;
            if n < 0 {
                return Err(format!(
                    "error calling truncate: slice bounds out of range [:{n}]"
                ));
            }
            let mut n = (n as usize).min(text.len());
            while !text.is_char_boundary(n) {
                n -= 1;
            }
            s(text[..n].to_string())
        }
        "index" => {
            at_least(name, &args, 1)?;
            index(&args[0], &args[1..]).map_err(|e| format!("error calling index: {e}"))
        }
        "slice" => {
            at_least(name, &args, 1)?;
            slice(&args[0], &args[1..]).map_err(|e| format!("error calling slice: {e}"))
        }
        "len" => {
            arity(name, &args, 1)?;
            Ok(Value::from(match &args[0] {
                Value::String(t) => t.len(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                // docker's typed nil slices and maps have length 0.
                Value::Null => 0,
                other => return Err(format!("error calling len: len of type {}", go_type(other))),
            }))
        }
        "printf" => {
            at_least(name, &args, 1)?;
            s(gofmt::sprintf(string(&args[0])?, &args[1..]))
        }
        "print" => s(gofmt::sprint(&args)),
        "println" => s(gofmt::sprintln(&args)),
        "not" => {
            arity(name, &args, 1)?;
            Ok(Value::Bool(!truth(&args[0])))
        }
        "eq" => {
            at_least(name, &args, 1)?;
            if args.len() == 1 {
                return Err("error calling eq: missing argument for comparison".into());
            }
            for b in &args[1..] {
                if eq(&args[0], b).map_err(|e| format!("error calling eq: {e}"))? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let (a, b) = (&args[0], &args[1]);
            let r = match name {
                "ne" => eq(a, b).map(|x| !x),
                "lt" => lt(a, b),
                "le" => le(a, b),
                "gt" => le(a, b).map(|x| !x),
                _ => lt(a, b).map(|x| !x),
            };
            r.map(Value::Bool)
                .map_err(|e| format!("error calling {name}: {e}"))
        }
        "html" => s(html(&eval_args(&args))),
        "js" => s(js(&eval_args(&args))),
        "urlquery" => s(urlquery(&eval_args(&args))),
        "call" => {
            at_least(name, &args, 1)?;
            Err(format!(
                "error calling call: non-function of type {}",
                go_type(&args[0])
            ))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's evalArgs for html, js and urlquery: one string as is, else Sprint.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.clone(),
        _ => gofmt::sprint(args),
    }
}

fn index(item: &Value, idx: &[Value]) -> Result<Value, String> {
    let mut cur = item;
    for i in idx {
        cur = match cur {
            Value::Array(a) => {
                let n = int(i)
                    .ok_or_else(|| format!("cannot index slice/array with type {}", go_type(i)))?;
                if n < 0 || n as usize >= a.len() {
                    return Err(format!("index out of range: {n}"));
                }
                &a[n as usize]
            }
            Value::Object(m) => {
                let Value::String(k) = i else {
                    return Err(format!("value has type {}; should be string", go_type(i)));
                };
                match m.get(k) {
                    Some(v) => v,
                    // docker's string maps (Labels, Options...) are
                    // map[string]string: a miss is the zero value "".
                    None if m.values().all(Value::is_string) => return Ok(Value::from("")),
                    None => return Ok(Value::Null),
                }
            }
            Value::String(s) => {
                let n = int(i)
                    .ok_or_else(|| format!("cannot index slice/array with type {}", go_type(i)))?;
                if n < 0 || n as usize >= s.len() {
                    return Err(format!("index out of range: {n}"));
                }
                return Ok(Value::from(s.as_bytes()[n as usize]));
            }
            // A nil map[string]string in docker (e.g. an image's Labels).
            Value::Null if i.is_string() => return Ok(Value::from("")),
            Value::Null => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", go_type(other))),
        };
    }
    Ok(cur.clone())
}

fn slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    let len = match item {
        Value::String(s) => {
            if idx.len() > 2 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Array(a) => a.len(),
        Value::Null => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", go_type(other))),
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let mut ix = Vec::new();
    for i in idx {
        let n =
            int(i).ok_or_else(|| format!("cannot index slice/array with type {}", go_type(i)))?;
        if n < 0 || n as usize > len {
            return Err(format!("index out of range: {n}"));
        }
        ix.push(n as usize);
    }
    let from = ix.first().copied().unwrap_or(0);
    let to = ix.get(1).copied().unwrap_or(len);
    if from > to {
        return Err(format!("invalid slice index: {from} > {to}"));
    }
    if let Some(&cap) = ix.get(2) {
        if to > cap {
            return Err(format!("invalid slice index: {to} > {cap}"));
        }
    }
    Ok(match item {
        Value::String(s) => {
            Value::String(String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned())
        }
        Value::Array(a) => Value::Array(a[from..to].to_vec()),
        _ => Value::Null,
    })
}

enum Basic<'a> {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Other,
}

fn basic(v: &Value) -> Basic<'_> {
    match v {
        Value::Null => Basic::Nil,
        Value::Bool(b) => Basic::Bool(*b),
        Value::Number(n) => num(n),
        Value::String(s) => Basic::Str(s),
        _ => Basic::Other,
    }
}

fn num(n: &Number) -> Basic<'static> {
    if let Some(i) = n.as_i64() {
        Basic::Int(i.into())
    } else if let Some(u) = n.as_u64() {
        Basic::Int(u.into())
    } else {
        Basic::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Numbers compare by value whether JSON gave them as integers or floats
/// (docker inspect falls back to float64 maps).
fn num_cmp(a: &Basic, b: &Basic) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Basic::Int(x), Basic::Int(y)) => Some(x.cmp(y)),
        (Basic::Int(x), Basic::Float(y)) => (*x as f64).partial_cmp(y),
        (Basic::Float(x), Basic::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Basic::Float(x), Basic::Float(y)) => x.partial_cmp(y),
        _ => None,
    }
}

fn is_num(b: &Basic) -> bool {
    matches!(b, Basic::Int(_) | Basic::Float(_))
}

fn eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (x, y) = (basic(a), basic(b));
    Ok(match (&x, &y) {
        (Basic::Nil, Basic::Nil) => true,
        (Basic::Nil, _) | (_, Basic::Nil) => false,
        (Basic::Bool(p), Basic::Bool(q)) => p == q,
        (Basic::Str(p), Basic::Str(q)) => p == q,
        _ if is_num(&x) && is_num(&y) => num_cmp(&x, &y) == Some(std::cmp::Ordering::Equal),
        (Basic::Other, Basic::Other) => {
            return Err(format!(
                "non-comparable types {}: {}",
                go_type(a),
                go_type(b)
            ))
        }
        _ => return Err("incompatible types for comparison".into()),
    })
}

fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (x, y) = (basic(a), basic(b));
    match (&x, &y) {
        (Basic::Str(p), Basic::Str(q)) => Ok(p < q),
        _ if is_num(&x) && is_num(&y) => Ok(num_cmp(&x, &y) == Some(std::cmp::Ordering::Less)),
        (Basic::Nil | Basic::Bool(_) | Basic::Other, _)
        | (_, Basic::Nil | Basic::Bool(_) | Basic::Other) => {
            Err("invalid type for comparison".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

fn le(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(lt(a, b)? || eq(a, b)?)
}

/// Go's unicode.ToUpper: one rune for one.
fn upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn lower(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's strings.Title: the first letter of each word in title case.
fn title(s: &str) -> String {
    let sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphabetic() || c.is_numeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let r = if sep(prev) { upper(c) } else { c };
            prev = c;
            r
        })
        .collect()
}

/// Go's template.HTMLEscapeString.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's template.JSEscapeString.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if !c.is_ascii() && !gofmt::is_print(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's url.QueryEscape.
fn urlquery(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
