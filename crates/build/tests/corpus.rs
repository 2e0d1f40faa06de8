//! The Dockerfile corpus: every `tests/corpus/ok/NAME.Dockerfile` parses to
//! the rendering in `NAME.expected`; every `tests/corpus/bad/NAME.Dockerfile`
//! fails with the message in `NAME.expected`.
//!
//! `BLESS=1 cargo test -p barge-build --test corpus` rewrites the
//! `.expected` files from the current parser; review the diff before
//! committing it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use barge_build::parser::{self, CmdLine, Command, Dockerfile, Instruction};

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "Dockerfile"))
        .collect();
    files.sort();
    files
}

fn bless() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the `.expected` file next to `input` (or writes
/// it under BLESS=1); returns a description of the mismatch.
fn check(input: &Path, actual: &str) -> Option<String> {
    let expected_path = input.with_extension("expected");
    if bless() {
        std::fs::write(&expected_path, actual)
            .unwrap_or_else(|e| panic!("write {}: {e}", expected_path.display()));
        return None;
    }
    let expected = match std::fs::read_to_string(&expected_path) {
        Ok(s) => s,
        Err(e) => {
            return Some(format!(
                "{}: {e} (run with BLESS=1 to create it)",
                expected_path.display()
            ))
        }
    };
    (expected != actual).then(|| {
        format!(
            "{}\n--- expected\n{expected}\n--- actual\n{actual}",
            input.display()
        )
    })
}

fn render_cmdline(c: &CmdLine) -> String {
    match c {
        CmdLine::Exec(v) => format!("exec={v:?}"),
        CmdLine::Shell(s) => format!("shell={s:?}"),
    }
}

fn render_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k:?}={v:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_command(c: &Command) -> String {
    match c {
        Command::From {
            image,
            name,
            platform,
        } => format!("FROM image={image:?} name={name:?} platform={platform:?}"),
        Command::Run { cmd } => format!("RUN {}", render_cmdline(cmd)),
        Command::Cmd(c) => format!("CMD {}", render_cmdline(c)),
        Command::Entrypoint(c) => format!("ENTRYPOINT {}", render_cmdline(c)),
        Command::Env(p) => format!("ENV {}", render_pairs(p)),
        Command::Label(p) => format!("LABEL {}", render_pairs(p)),
        Command::Arg(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k:?}={v:?}"),
                    None => format!("{k:?}"),
                })
                .collect();
            format!("ARG {}", items.join(" "))
        }
        Command::Expose(v) => format!("EXPOSE {v:?}"),
        Command::Volume(v) => format!("VOLUME {v:?}"),
        Command::Copy { sources, dest } => format!("COPY sources={sources:?} dest={dest:?}"),
        Command::Add { sources, dest } => format!("ADD sources={sources:?} dest={dest:?}"),
        Command::Workdir(s) => format!("WORKDIR {s:?}"),
        Command::User(s) => format!("USER {s:?}"),
        Command::StopSignal(s) => format!("STOPSIGNAL {s:?}"),
        Command::Shell(v) => format!("SHELL {v:?}"),
        Command::Maintainer(s) => format!("MAINTAINER {s:?}"),
        Command::Healthcheck(None) => "HEALTHCHECK NONE".into(),
        Command::Healthcheck(Some(h)) => {
            let mut s = format!("HEALTHCHECK test={:?}", h.test);
            for (name, v) in [
                ("interval", &h.interval),
                ("timeout", &h.timeout),
                ("start-period", &h.start_period),
                ("start-interval", &h.start_interval),
                ("retries", &h.retries),
            ] {
                if let Some(v) = v {
                    let _ = write!(s, " {name}={v:?}");
                }
            }
            s
        }
        Command::Onbuild(_) => "ONBUILD".into(),
    }
}

fn render_instruction(out: &mut String, ins: &Instruction, indent: &str) {
    let mut head = format!(
        "{indent}L{}-{} {}",
        ins.line,
        ins.end_line,
        render_command(&ins.command)
    );
    if !ins.flags.is_empty() {
        let flags: Vec<String> = ins
            .flags
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("--{k}={v}"),
                None => format!("--{k}"),
            })
            .collect();
        let _ = write!(head, " flags={flags:?}");
    }
    let _ = writeln!(out, "{head}");
    let _ = writeln!(out, "{indent}  original: {:?}", ins.original);
    for h in &ins.heredocs {
        let _ = writeln!(
            out,
            "{indent}  heredoc {:?} expand={} chomp={}: {:?}",
            h.name, h.expand, h.chomp, h.content
        );
    }
    if let Some(script) = ins.heredoc_script() {
        let _ = writeln!(out, "{indent}  script: {script:?}");
    }
    if let Command::Onbuild(inner) = &ins.command {
        render_instruction(out, inner, &format!("{indent}    "));
    }
}

/// A stable, readable text form of a parse.
fn render(df: &Dockerfile) -> String {
    let mut out = String::new();
    for (k, v) in &df.directives {
        let _ = writeln!(out, "directive {k}={v:?}");
    }
    let _ = writeln!(out, "escape {:?}", df.escape);
    for ins in &df.meta_args {
        render_instruction(&mut out, ins, "");
    }
    for (i, st) in df.stages.iter().enumerate() {
        let _ = writeln!(
            out,
            "stage {i} L{} base={:?} name={:?} platform={:?}",
            st.line, st.base, st.name, st.platform
        );
        for ins in &st.instructions {
            render_instruction(&mut out, ins, "  ");
        }
    }
    out
}

#[test]
fn ok_corpus_parses_as_expected() {
    let files = corpus("ok");
    assert!(files.len() >= 60, "only {} ok Dockerfiles", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let src = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        let actual = match parser::parse_bytes(&src) {
            Ok(df) => render(&df),
            Err(e) => {
                failures.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        if let Some(diff) = check(f, &actual) {
            failures.push(diff);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bad_corpus_fails_as_expected() {
    let files = corpus("bad");
    assert!(files.len() >= 15, "only {} bad Dockerfiles", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let src = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        let actual = match parser::parse_bytes(&src) {
            Ok(df) => {
                failures.push(format!("{}: parsed\n{}", f.display(), render(&df)));
                continue;
            }
            Err(e) => format!("{e}\n"),
        };
        if let Some(diff) = check(f, &actual) {
            failures.push(diff);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
