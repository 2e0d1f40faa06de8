//! Go's fmt (`%v` and printf verbs) and encoding/json output for JSON
//! values, as text/template prints them.

use serde_json::{Number, Value};

/// The Go type docker's JSON value has, for messages (`%!d(string=x)`).
pub(super) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A value printed by an action: `%v`, with `<no value>` for nil.
pub(super) fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        v => sprint(std::slice::from_ref(v)),
    }
}

/// fmt.Sprint: spaces between operands when neither is a string.
pub(super) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = a.is_string();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_arg(&mut out, a, 'v', &Spec::default(), true);
        prev_string = is_string;
    }
    out
}

/// fmt.Sprintln: spaces between all operands and a newline.
pub(super) fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_arg(&mut out, a, 'v', &Spec::default(), true);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// fmt.Sprintf.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argn = 0;
    let mut reordered = false;
    let mut cs = format.chars().peekable();
    while let Some(c) = cs.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = cs.peek() {
            match f {
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                '+' => spec.plus = true,
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                ' ' => spec.space = true,
                _ => break,
            }
            cs.next();
        }
        // An explicit argument index: %[2]d.
        let mut arg_index = |cs: &mut std::iter::Peekable<std::str::Chars>, argn: &mut usize| {
            if cs.peek() == Some(&'[') {
                cs.next();
                let n: String = std::iter::from_fn(|| cs.next_if(char::is_ascii_digit)).collect();
                if cs.next_if_eq(&']').is_some() {
                    if let Ok(n) = n.parse::<usize>() {
                        if n >= 1 {
                            *argn = n - 1;
                            reordered = true;
                        }
                    }
                }
            }
        };
        arg_index(&mut cs, &mut argn);
        if cs.next_if_eq(&'*').is_some() {
            match args.get(argn).and_then(super::funcs::int) {
                Some(w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let w: String = std::iter::from_fn(|| cs.next_if(char::is_ascii_digit)).collect();
            spec.width = w.parse().ok();
        }
        if cs.next_if_eq(&'.').is_some() {
            arg_index(&mut cs, &mut argn);
            if cs.next_if_eq(&'*').is_some() {
                match args.get(argn).and_then(super::funcs::int) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let p: String = std::iter::from_fn(|| cs.next_if(char::is_ascii_digit)).collect();
                spec.prec = Some(p.parse().unwrap_or(0));
            }
        }
        arg_index(&mut cs, &mut argn);
        let Some(verb) = cs.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(argn) {
            Some(a) => print_arg(&mut out, a, verb, &spec, true),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        argn += 1;
    }
    if !reordered && argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argn..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if !a.is_null() {
                out.push_str(go_type(a));
                out.push('=');
            }
            print_arg(&mut out, a, 'v', &Spec::default(), true);
        }
        out.push(')');
    }
    out
}

/// Pad to the width in runes, as fmt does.
fn pad(out: &mut String, s: &str, spec: &Spec) {
    let n = s.chars().count();
    let fill = spec.width.unwrap_or(0).saturating_sub(n);
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(if spec.zero { '0' } else { ' ' }, fill));
        out.push_str(s);
    }
}

/// Pad a number: zeros go after the sign.
fn pad_number(out: &mut String, sign: &str, body: &str, spec: &Spec) {
    if spec.zero && !spec.minus {
        if let Some(w) = spec.width {
            let n = sign.chars().count() + body.chars().count();
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', w.saturating_sub(n)));
            out.push_str(body);
            return;
        }
    }
    let plain = Spec {
        zero: false,
        ..spec.clone()
    };
    pad(out, &format!("{sign}{body}"), &plain);
}

fn bad_verb(out: &mut String, v: &Value, verb: char, spec: &Spec) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if v.is_null() {
        out.push_str("<nil>");
    } else {
        out.push_str(go_type(v));
        out.push('=');
        print_arg(out, v, 'v', spec, false);
    }
    out.push(')');
}

fn print_arg(out: &mut String, v: &Value, verb: char, spec: &Spec, top: bool) {
    if verb == 'T' {
        return pad(out, go_type(v), spec);
    }
    match v {
        Value::Null if top && verb != 'v' => bad_verb(out, v, verb, spec),
        Value::Null => pad(out, "<nil>", spec),
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, v, verb, spec),
        },
        Value::Number(n) => number(out, v, n, verb, spec),
        Value::String(s) => string(out, v, s, verb, spec),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_arg(out, e, verb, spec, false);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                string(out, &Value::String(k.clone()), k, verb, spec);
                out.push(':');
                print_arg(out, &m[k], verb, spec, false);
            }
            out.push(']');
        }
    }
}

fn number(out: &mut String, v: &Value, n: &Number, verb: char, spec: &Spec) {
    let int = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from));
    match (int, verb) {
        (Some(i), 'e' | 'E' | 'f' | 'F' | 'g' | 'G') => float(out, v, i as f64, verb, spec),
        (Some(i), _) => integer(out, v, i, verb, spec),
        (None, 'd' | 'b' | 'o' | 'O' | 'x' | 'X' | 'c' | 'q' | 'U') => match super::funcs::int(v) {
            Some(i) => integer(out, v, i.into(), verb, spec),
            None => bad_verb(out, v, verb, spec),
        },
        (None, _) => float(out, v, n.as_f64().unwrap_or(f64::NAN), verb, spec),
    }
}

fn integer(out: &mut String, v: &Value, i: i128, verb: char, spec: &Spec) {
    let mag = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'v' | 'd' => (mag.to_string(), ""),
        'b' => (format!("{mag:b}"), if spec.sharp { "0b" } else { "" }),
        'o' => (format!("{mag:o}"), if spec.sharp { "0" } else { "" }),
        'O' => (format!("{mag:o}"), "0o"),
        'x' => (format!("{mag:x}"), if spec.sharp { "0x" } else { "" }),
        'X' => (format!("{mag:X}"), if spec.sharp { "0X" } else { "" }),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            return pad(out, &c.to_string(), spec);
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            return pad(out, &quote_with(&c.to_string(), '\'', spec.plus), spec);
        }
        'U' => {
            let mut s = format!("U+{mag:04X}");
            if spec.sharp {
                if let Some(c) = u32::try_from(i).ok().and_then(char::from_u32) {
                    if is_print(c) {
                        s.push_str(&format!(" '{c}'"));
                    }
                }
            }
            return pad(out, &s, spec);
        }
        _ => return bad_verb(out, v, verb, spec),
    };
    let sign = if i < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let mut digits = digits;
    if let Some(p) = spec.prec {
        if p == 0 && i == 0 {
            digits.clear();
        }
        if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    } else if spec.zero && !spec.minus {
        if let Some(w) = spec.width {
            let room = w.saturating_sub(sign.len());
            if digits.len() < room {
                digits = format!("{}{digits}", "0".repeat(room - digits.len()));
            }
        }
    }
    if prefix == "0" && digits.starts_with('0') {
        pad_plain(out, &format!("{sign}{digits}"), spec);
    } else {
        pad_plain(out, &format!("{sign}{prefix}{digits}"), spec);
    }
}

fn pad_plain(out: &mut String, s: &str, spec: &Spec) {
    let plain = Spec {
        zero: false,
        ..spec.clone()
    };
    pad(out, s, &plain);
}

fn float(out: &mut String, v: &Value, f: f64, verb: char, spec: &Spec) {
    let a = f.abs();
    let body = match verb {
        'v' | 'g' | 'G' => {
            let s = match spec.prec {
                None => format_g(a, None),
                Some(p) => format_g(a, Some(p.max(1))),
            };
            if verb == 'G' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'e' | 'E' => {
            let p = spec.prec.unwrap_or(6);
            let (d, dp) = digits(a, Some(p + 1));
            let s = fmt_e(&d, dp, p);
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'f' | 'F' => format!("{a:.*}", spec.prec.unwrap_or(6)),
        _ => return bad_verb(out, v, verb, spec),
    };
    let sign = if f.is_sign_negative() {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    pad_number(out, sign, &body, spec);
}

/// The significant decimal digits of a non-negative float (no trailing
/// zeros; empty for zero) and the decimal point's position, shortest or
/// rounded to `sig` digits.
fn digits(a: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if a == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        None => format!("{a:e}"),
        Some(n) => format!("{a:.*e}", n.max(1) - 1),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    if d == b"0" {
        return (Vec::new(), 0);
    }
    (d, exp + 1)
}

/// Go's %e from digits: d.ddddde±XX with `prec` digits after the point.
fn fmt_e(d: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    s.push(d.first().map(|&b| b as char).unwrap_or('0'));
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            s.push(d.get(i).map(|&b| b as char).unwrap_or('0'));
        }
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.unsigned_abs()));
    s
}

/// Go's %f from digits with `prec` digits after the point.
fn fmt_f(d: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            s.push(d.get(i).map(|&b| b as char).unwrap_or('0'));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            let c = if j >= 0 { d.get(j as usize) } else { None };
            s.push(c.map(|&b| b as char).unwrap_or('0'));
        }
    }
    s
}

/// Go's %g (and %v for floats): shortest, or `prec` significant digits.
fn format_g(a: f64, prec: Option<usize>) -> String {
    let (d, dp) = digits(a, prec);
    let nd = d.len() as i32;
    let shortest = prec.is_none();
    let mut p = prec.map(|p| p as i32).unwrap_or(nd);
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        if p > nd {
            p = nd;
        }
        return fmt_e(&d, dp, (p - 1).max(0) as usize);
    }
    if p > dp {
        p = nd;
    }
    fmt_f(&d, dp, (p - dp).max(0) as usize)
}

fn string(out: &mut String, v: &Value, s: &str, verb: char, spec: &Spec) {
    let s = match spec.prec {
        Some(p) if matches!(verb, 's' | 'v' | 'q') => match s.char_indices().nth(p) {
            Some((i, _)) => &s[..i],
            None => s,
        },
        _ => s,
    };
    match verb {
        's' | 'v' => pad(out, s, spec),
        'q' => {
            let q = if spec.sharp && can_backquote(s) {
                format!("`{s}`")
            } else {
                quote_with(s, '"', spec.plus)
            };
            pad(out, &q, spec)
        }
        'x' | 'X' => {
            let bytes = match spec.prec {
                Some(p) => &s.as_bytes()[..p.min(s.len())],
                None => s.as_bytes(),
            };
            let mut h = String::new();
            for (i, b) in bytes.iter().enumerate() {
                if spec.space && i > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                h.push_str(&if verb == 'x' {
                    format!("{b:02x}")
                } else {
                    format!("{b:02X}")
                });
            }
            pad(out, &h, spec)
        }
        _ => bad_verb(out, v, verb, spec),
    }
}

/// Go's unicode.IsPrint, near enough: letters, marks, numbers,
/// punctuation, symbols and the ASCII space.
pub(super) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
            | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..)
        || (c as u32) & 0xfffe == 0xfffe)
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{7f}' && c != '\u{feff}' && (c >= ' ' || c == '\t'))
}

/// strconv.Quote (or QuoteToASCII, or QuoteRune with `'`).
fn quote_with(s: &str, q: char, ascii: bool) -> String {
    let mut out = String::new();
    out.push(q);
    for c in s.chars() {
        match c {
            c if c == q || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c.is_ascii() || !ascii) && is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c < ' ' || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(q);
    out
}

/// strconv.Quote.
#[cfg(test)]
pub(super) fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// The docker CLI's `json` function: encoding/json without HTML escaping.
pub(super) fn json(v: &Value) -> String {
    let mut out = String::new();
    json_into(&mut out, v);
    out
}

fn json_into(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => out.push_str(&json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => json_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_into(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                json_into(out, e);
            }
            out.push('}');
        }
    }
}

/// encoding/json's float64: plain decimals, exponents outside [1e-6, 1e21).
fn json_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let (d, dp) = digits(a, None);
        let mut s = fmt_e(&d, dp, d.len().saturating_sub(1));
        // e-07 -> e-7, as Go cleans it.
        if let Some(i) = s.find("e-0") {
            s.remove(i + 2);
        }
        return if f < 0.0 { format!("-{s}") } else { s };
    }
    format!("{f}")
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}
