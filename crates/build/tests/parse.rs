//! The parser's API beyond the corpus: size limits, errors, the helpers the
//! builder uses, and robustness on arbitrary input.

use barge_build::parser::{
    self, expand, CmdLine, Command, ParseError, MAX_DOCKERFILE_BYTES, MAX_LINE_BYTES,
};

fn parse_err(src: &str) -> ParseError {
    match parser::parse(src) {
        Ok(df) => panic!("{src:?} parsed: {df:?}"),
        Err(e) => e,
    }
}

#[test]
fn error_display_carries_the_line() {
    let e = parse_err("FROM alpine\n\nFOO bar\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.message, "unknown instruction: FOO (did you mean FROM?)");
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 3: unknown instruction: FOO (did you mean FROM?)"
    );
}

#[test]
fn refuses_a_line_over_the_limit() {
    let src = format!("FROM alpine\nRUN echo {}\n", "x".repeat(MAX_LINE_BYTES));
    let e = parse_err(&src);
    assert_eq!(e.line, 2);
    assert_eq!(
        e.message,
        format!("dockerfile line greater than max allowed size of {MAX_LINE_BYTES} bytes")
    );
}

#[test]
fn refuses_a_file_over_the_limit_before_reading_it() {
    let mut src = b"FROM alpine\n".to_vec();
    src.resize(MAX_DOCKERFILE_BYTES + 1, b'\n');
    let e = parser::parse_bytes(&src).err();
    assert_eq!(
        e.map(|e| e.message),
        Some(format!(
            "dockerfile is larger than the max allowed size of {MAX_DOCKERFILE_BYTES} bytes"
        ))
    );
}

#[test]
fn refuses_invalid_utf8_with_its_line() {
    let e = parser::parse_bytes(b"FROM alpine\nRUN echo \xff\n").err();
    assert_eq!(e.map(|e| e.line), Some(2));
}

#[test]
fn heredoc_helpers() {
    let df = parser::parse(
        "FROM alpine\nCOPY <<-EOF <<\"RAW\" /dst/\n\tline one\n\t\tline two\n\tEOF\n$NOT\nRAW\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ins = &df.stages[0].instructions[0];
    let Command::Copy { sources, dest } = &ins.command else {
        panic!("{:?}", ins.command);
    };
    assert_eq!(dest, "/dst/");
    let first = ins.heredoc_for_source(&sources[0]).map(|h| h.body());
    assert_eq!(first.as_deref(), Some("line one\nline two\n"));
    let second = ins.heredoc_for_source(&sources[1]);
    assert_eq!(
        second.map(|h| (h.body(), h.expand)),
        Some(("$NOT\n".to_string(), false))
    );
    assert!(ins.heredoc_for_source("/etc/passwd").is_none());
    assert_eq!(ins.end_line, 7);
}

#[test]
fn heredoc_script_for_run() {
    let df = parser::parse(
        "FROM a\nRUN <<EOF\necho hi\nEOF\nRUN python3 <<EOF\nprint(1)\nEOF\nRUN true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ins = &df.stages[0].instructions;
    assert_eq!(ins[0].heredoc_script().as_deref(), Some("echo hi\n"));
    assert_eq!(
        ins[1].heredoc_script().as_deref(),
        Some("python3 <<EOF\nprint(1)\nEOF")
    );
    assert_eq!(ins[2].heredoc_script(), None);
}

#[test]
fn onbuild_trigger_text_reparses() {
    let df = parser::parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let Command::Onbuild(inner) = &df.stages[0].instructions[0].command else {
        panic!("not ONBUILD");
    };
    // The builder stores `original` as the trigger and parses it again.
    let again = parser::parse(&format!("FROM scratch\n{}\n", inner.original))
        .unwrap_or_else(|e| panic!("{e}"));
    let ins = &again.stages[0].instructions[0];
    assert!(matches!(&ins.command, Command::Run { cmd: CmdLine::Shell(s) } if s == "<<EOF"));
    assert_eq!(ins.heredocs[0].content, "echo hi\n");
}

#[test]
fn values_are_raw_and_expand_later() {
    let df = parser::parse("FROM a\nENV A=\"x y\" B=$A\\ z\n").unwrap_or_else(|e| panic!("{e}"));
    let Command::Env(pairs) = &df.stages[0].instructions[0].command else {
        panic!("not ENV");
    };
    let lookup = |k: &str| (k == "A").then(|| "x y".to_string());
    let values: Vec<String> = pairs
        .iter()
        .map(|(_, v)| expand(v, df.escape, &lookup).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(values, ["x y", "x y z"]);
}

#[test]
fn deep_onbuild_chains_do_not_overflow() {
    let src = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(100_000));
    assert_eq!(
        parse_err(&src).message,
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
}

/// A small deterministic generator (no dev-dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn arbitrary_input_never_panics() {
    const PIECES: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ONBUILD ",
        "ENV ",
        "ARG ",
        "LABEL ",
        "HEALTHCHECK ",
        "SHELL ",
        "CMD ",
        "EXPOSE ",
        "VOLUME ",
        "a",
        "=",
        "\"",
        "'",
        "\\",
        "`",
        "$",
        "{",
        "}",
        ":",
        "-",
        "+",
        "?",
        "#",
        "%",
        "/",
        "*",
        "[",
        "]",
        ",",
        " ",
        "\t",
        "\n",
        "\r\n",
        "<<",
        "<<-",
        "EOF",
        "--",
        "--mount=",
        "--from=x",
        "AS ",
        "é",
        "한",
        "# escape=`\n",
        "# syntax=x\n",
        "NONE",
        "CMD",
    ];
    let mut rng = Lcg(42);
    for _ in 0..20_000 {
        let n = (rng.next() % 40) as usize;
        let src: String = (0..n)
            .map(|_| PIECES[(rng.next() as usize) % PIECES.len()])
            .collect();
        if let Ok(df) = parser::parse(&src) {
            for st in &df.stages {
                for ins in &st.instructions {
                    let _ = ins.heredoc_script();
                    if let Command::Env(pairs) = &ins.command {
                        for (k, v) in pairs {
                            let _ = expand(k, df.escape, &|_| None);
                            let _ = expand(v, df.escape, &|_| Some(v.clone()));
                        }
                    }
                }
            }
        }
        let _ = expand(&src, '\\', &|k| Some(k.repeat(2)));
        let _ = parser::expand_words(&src, '`', &|_| None);
    }
}
