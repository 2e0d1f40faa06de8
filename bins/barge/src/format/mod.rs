//! Docker's output shapes: `--format` templates and aligned tables.
//!
//! A template is Go's text/template as the docker CLI runs it, on a JSON
//! value: literal text and actions, `{{- x -}}` trimming, `{{/* comments */}}`,
//! `{{.}}`, field chains `.A.B`, `$` and variables (`{{$v := .X}}`,
//! `{{$v = .Y}}`), `{{if}}`/`{{else if}}`/`{{else}}`, `{{with}}`,
//! `{{range}}` over arrays, maps (in key order), integers and nil with
//! `{{else}}`, `{{break}}` and `{{continue}}`, `{{define}}`, `{{template}}`
//! and `{{block}}`, pipelines and parenthesised sub-expressions, and the
//! functions of Go (and, or, not, eq, ne, lt, le, gt, ge, index, slice,
//! len, print, printf, println, html, js, urlquery) and of the docker CLI
//! (json, split, join, title, lower, upper, pad, truncate). Values print as
//! Go's fmt prints them (`1234`, `true`, `[a b]`, `map[a:b]`, `<no value>`
//! for nil).
//!
//! As the docker CLI does, `\t` and `\n` in the template's text are a tab
//! and a newline, and a `table ` prefix prints a header row (each field's
//! column title) and aligns the columns. Rows are JSON objects whose keys
//! are the field names. A field the rendered value lacks is an error (it is
//! a Go struct in docker); a key missing from an object inside it prints
//! `<no value>` (those are maps), and `index` on a string map gives `""`.

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;

use std::collections::BTreeMap;

use serde_json::Value;

/// A parsed `--format`.
#[derive(Debug)]
pub struct Template {
    table: bool,
    root: Vec<parse::Node>,
    defines: BTreeMap<String, Vec<parse::Node>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("template: unclosed action \"{{{{\" in {0:?}")]
    Unclosed(String),
    #[error("template: function {0:?} not defined")]
    Function(String),
    #[error("template: can't evaluate field {0} (fields: {1})")]
    NoField(String, String),
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Exec(String),
}

impl Template {
    pub fn parse(format: &str) -> Result<Template, FormatError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, format),
        };
        let parsed = parse::parse(body).map_err(|e| match e {
            FormatError::Parse(m) if m.ends_with("unclosed action") => {
                FormatError::Unclosed(format.to_string())
            }
            other => other,
        })?;
        Ok(Template {
            table,
            root: parsed.root,
            defines: parsed.defines,
        })
    }

    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Render one value. The value is a Go struct in the docker CLI (a ps
    /// or images row, inspect's object, an event), so a field it lacks is
    /// an error ([`FormatError::NoField`]), as docker's is; objects inside
    /// it are maps, where a missing key prints `<no value>`.
    pub fn render(&self, row: &Value) -> Result<String, FormatError> {
        let mut e = exec::Exec::new(self, row, None);
        e.run()?;
        Ok(e.out)
    }

    /// The header row of a table template, with `title` naming each field:
    /// the template runs with each field chain giving the title of its last
    /// field and docker's header functions (json, upper, split...) leaving
    /// titles alone; an action that fails or makes no string, and any
    /// `if`/`with`/`range` block, shows the title of its last field.
    pub fn header(&self, title: &dyn Fn(&str) -> String) -> String {
        let dot = Value::String(String::new());
        let mut e = exec::Exec::new(self, &dot, Some(title));
        let _ = e.run();
        e.out
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

/// What every `inspect` prints: a JSON array of `values`, or each value
/// through `--format`.
pub fn print_inspect(values: &[Value], format: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match format {
        Some(f) => {
            let t = Template::parse(f)?;
            for v in values {
                writeln!(out, "{}", t.render(v)?)?;
            }
        }
        None => writeln!(out, "{}", serde_json::to_string_pretty(values)?)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests;
