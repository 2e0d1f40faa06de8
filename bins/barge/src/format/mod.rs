//! Docker's output shapes: `--format` templates and aligned tables.
//!
//! A template is Go-template-like, as the docker CLI takes it: literal text
//! with `{{.Field}}`, `{{.Field.Sub}}`, `{{json .}}`, `{{json .Field}}`,
//! `{{upper .F}}`, `{{lower .F}}`, `{{.}}`; `\t` and `\n` in the template are
//! a tab and a newline; a `table ` prefix prints a header row (the field
//! names' column titles) and aligns the columns. Rows are JSON objects whose
//! keys are the field names.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Part {
    Text(String),
    Field {
        func: Option<String>,
        path: Vec<String>,
    },
}

/// A parsed `--format`.
#[derive(Debug)]
pub struct Template {
    table: bool,
    parts: Vec<Part>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("template: unclosed action \"{{{{\" in {0:?}")]
    Unclosed(String),
    #[error("template: unsupported function {0:?} (use json, upper, lower)")]
    Function(String),
    #[error("template: can't evaluate field {0} (fields: {1})")]
    NoField(String, String),
}

impl Template {
    pub fn parse(format: &str) -> Result<Template, FormatError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, format),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let j = after
                .find("}}")
                .ok_or_else(|| FormatError::Unclosed(format.to_string()))?;
            let action = after[..j]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            parts.push(parse_action(action)?);
            rest = &after[j + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { table, parts })
    }

    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Render one row.
    pub fn render(&self, row: &Value) -> Result<String, FormatError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { func, path } => {
                    let v = lookup(row, path)?;
                    let s = match func.as_deref() {
                        Some("json") => serde_json::to_string(v).unwrap_or_default(),
                        Some("upper") => plain(v).to_uppercase(),
                        Some("lower") => plain(v).to_lowercase(),
                        _ => plain(v),
                    };
                    out.push_str(&s);
                }
            }
        }
        Ok(out)
    }

    /// The header row of a table template, with `title` naming each field.
    pub fn header(&self, title: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { path, .. } => out.push_str(&title(&path.join("."))),
            }
        }
        out
    }
}

fn parse_action(action: &str) -> Result<Part, FormatError> {
    let mut words = action.split_whitespace();
    let first = words.next().unwrap_or(".");
    let (func, arg) = if first.starts_with('.') {
        (None, first)
    } else {
        if !matches!(first, "json" | "upper" | "lower") {
            return Err(FormatError::Function(first.to_string()));
        }
        (Some(first.to_string()), words.next().unwrap_or("."))
    };
    let path = arg
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    Ok(Part::Field { func, path })
}

fn lookup<'a>(row: &'a Value, path: &[String]) -> Result<&'a Value, FormatError> {
    let mut v = row;
    for key in path {
        v = match v.get(key) {
            Some(x) => x,
            None => {
                let fields = v
                    .as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                return Err(FormatError::NoField(key.clone(), fields));
            }
        };
    }
    Ok(v)
}

/// A value as Go's text/template prints it.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(plain).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

/// Align tab-separated lines as docker does (tabwriter: min width 10,
/// padding 3, the last column not padded).
pub fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count() + 3).max(10);
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// Print rows with a template (table or not).
pub fn print_rows(
    tmpl: &Template,
    rows: &[Value],
    title: &dyn Fn(&str) -> String,
) -> Result<String, FormatError> {
    let mut lines = Vec::new();
    if tmpl.is_table() {
        lines.push(tmpl.header(title));
    }
    for r in rows {
        lines.push(tmpl.render(r)?);
    }
    if tmpl.is_table() {
        Ok(align(&lines))
    } else {
        Ok(lines.iter().map(|l| format!("{l}\n")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_functions_and_escapes() {
        let row =
            json!({"Repository": "busybox", "Tag": "latest", "Size": 42, "Labels": {"a": "b"}});
        let t =
            Template::parse("{{.Repository}}:{{.Tag}}\\t{{.Size}} {{json .Labels}} {{upper .Tag}}")
                .unwrap();
        assert_eq!(
            t.render(&row).unwrap(),
            "busybox:latest\t42 {\"a\":\"b\"} LATEST"
        );
        assert_eq!(
            Template::parse("{{.Labels.a}}")
                .unwrap()
                .render(&row)
                .unwrap(),
            "b"
        );
        assert_eq!(
            Template::parse("{{json .}}")
                .unwrap()
                .render(&json!({"x":1}))
                .unwrap(),
            "{\"x\":1}"
        );
    }

    #[test]
    fn reports_unknown_fields_and_functions() {
        let e = Template::parse("{{.Nope}}")
            .unwrap()
            .render(&json!({"ID": 1}))
            .unwrap_err();
        assert!(
            e.to_string().contains("Nope") && e.to_string().contains("ID"),
            "{e}"
        );
        assert!(Template::parse("{{printf .X}}").is_err());
        assert!(Template::parse("{{.X").is_err());
    }

    #[test]
    fn table_prints_titles_and_aligns() {
        let t = Template::parse("table {{.Repository}}\\t{{.Tag}}").unwrap();
        let rows = vec![
            json!({"Repository": "busybox", "Tag": "1"}),
            json!({"Repository": "a", "Tag": "latest"}),
        ];
        let title = |f: &str| f.to_uppercase();
        let out = print_rows(&t, &rows, &title).unwrap();
        assert_eq!(
            out,
            "REPOSITORY   TAG\nbusybox      1\na            latest\n"
        );
    }
}
