//! Dockerfile syntax as BuildKit parses it, into typed instructions.
//!
//! Parsing runs in BuildKit's two phases: `lines` reads the text
//! (parser directives, comments, continuations, heredoc bodies) into one raw
//! node per instruction, split the way each instruction splits its
//! arguments; `instructions` checks each node (argument counts, flags,
//! names) and groups them into build stages. `lex` is the shell-word
//! lexer both the parser and the builder use.
//!
//! Nothing here expands variables or touches files: words are stored as
//! written (quotes and escapes included) and the builder expands them with
//! [`expand`] / [`expand_words`] when it runs the instruction, with the ARG
//! and ENV values in scope at that point.
//!
//! # What the values hold
//!
//! - ENV / LABEL / ARG values are the raw words (`k="v 2"` gives the value
//!   `"v 2"` with its quotes); [`expand`] removes quotes and escapes. The
//!   legacy `ENV k v w` gives the value `v w` as written.
//! - COPY / ADD sources and dest, VOLUME, EXPOSE are split on blanks (or
//!   taken from the JSON array) and not expanded. A heredoc source (`<<EOF`)
//!   stays in `sources` as written; [`Instruction::heredoc_for_source`]
//!   finds its body.
//! - RUN in shell form is `CmdLine::Shell` of the text after the flags, as
//!   written (`<<EOF bash` for a heredoc); the bodies are in
//!   [`Instruction::heredocs`], raw (tabs not stripped; see
//!   [`Heredoc::body`]). [`Instruction::heredoc_script`] gives the script
//!   BuildKit would hand to the shell.
//! - FROM is not in [`Stage::instructions`]: the stage's `base`, `name` and
//!   `platform` describe it. [`Command::From`] never appears in a parse.

mod instructions;
mod lex;
mod lines;

pub use lex::{expand, expand_words, ExpandError};

/// A Dockerfile larger than this is refused before it is read.
pub const MAX_DOCKERFILE_BYTES: usize = 10 << 20;
/// A line longer than this is refused.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives (`syntax`, `escape`, `check`): lowercase key, value.
    pub directives: Vec<(String, String)>,
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// The ARG instructions before the first FROM.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// One build stage: a FROM and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS` name, lowercased (as BuildKit).
    pub name: Option<String>,
    /// The image after FROM, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The line of the FROM.
    pub line: usize,
    /// The instructions after the FROM (the FROM itself is not one).
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The first line of the instruction (1-based).
    pub line: usize,
    /// Its last line, heredoc bodies included.
    pub end_line: usize,
    /// The instruction as written, continuation lines joined and comments
    /// dropped (BuildKit's `Original`). For the instruction inside ONBUILD:
    /// the text after `ONBUILD`, with each heredoc body and terminator
    /// appended on new lines, ready to be stored as the image's trigger.
    pub original: String,
    /// `--name[=value]` flags in order, the name without `--`. Boolean
    /// flags given as `--link` have `None`; a value given to one is
    /// lowercased (`true`/`false`).
    pub flags: Vec<(String, Option<String>)>,
    pub heredocs: Vec<Heredoc>,
    pub command: Command,
}

/// A here-document body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, unquoted.
    pub name: String,
    /// The lines between the instruction and the delimiter, each with its
    /// line ending as in the file.
    pub content: String,
    /// Expand variables in the body (false when any part of the delimiter
    /// was quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body (and the delimiter).
    pub chomp: bool,
}

/// What an instruction does, with its arguments unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Not produced by [`parse`]: a FROM starts a [`Stage`].
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `--mount`, `--network`, `--security`, `--device` are in the flags.
    Run {
        cmd: CmdLine,
    },
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    /// Keys and raw values.
    Env(Vec<(String, String)>),
    /// Names and raw default values.
    Arg(Vec<(String, Option<String>)>),
    /// Keys and raw values.
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    /// `--from`, `--chown`, `--chmod`, `--link`, `--parents`, `--exclude`
    /// are in the flags.
    Copy {
        sources: Vec<String>,
        dest: String,
    },
    /// `--chown`, `--chmod`, `--checksum`, `--keep-git-dir`, `--link`,
    /// `--unpack`, `--exclude` are in the flags.
    Add {
        sources: Vec<String>,
        dest: String,
    },
    Workdir(String),
    User(String),
    StopSignal(String),
    /// Always from a JSON array.
    Shell(Vec<String>),
    /// `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<HealthcheckSpec>),
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

/// A command line in exec (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdLine {
    Exec(Vec<String>),
    /// The text as written; for a RUN with heredocs, the line with the
    /// `<<EOF` words (the bodies are in [`Instruction::heredocs`]).
    Shell(String),
}

/// `HEALTHCHECK [options] CMD ...`. The options are as written and already
/// checked (durations parse, retries is a number ≥ 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckSpec {
    /// `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

/// A Dockerfile that does not parse, and the line where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    /// 1-based; the first line of the instruction at fault.
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// Parses a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    if src.len() > MAX_DOCKERFILE_BYTES {
        return Err(too_large());
    }
    let ast = lines::parse(src)?;
    instructions::build(ast)
}

/// Parses a Dockerfile read as bytes: the size is checked before anything
/// else, then the text must be UTF-8.
pub fn parse_bytes(src: &[u8]) -> Result<Dockerfile, ParseError> {
    if src.len() > MAX_DOCKERFILE_BYTES {
        return Err(too_large());
    }
    match std::str::from_utf8(src) {
        Ok(s) => parse(s),
        Err(e) => {
            let line = 1 + src[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            Err(ParseError::new(
                line,
                "dockerfile is not valid UTF-8; save it as UTF-8",
            ))
        }
    }
}

fn too_large() -> ParseError {
    ParseError::new(
        1,
        format!("dockerfile is larger than the max allowed size of {MAX_DOCKERFILE_BYTES} bytes"),
    )
}

impl Heredoc {
    /// The body as the instruction uses it: with `<<-`, leading tabs
    /// stripped from every line.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

impl Instruction {
    /// The heredoc a COPY/ADD source word (`<<EOF`, `<<-"EOF"`) stands
    /// for; `None` when the source is a path.
    pub fn heredoc_for_source(&self, src: &str) -> Option<&Heredoc> {
        let h = lines::parse_heredoc_word(src).ok().flatten()?;
        self.heredocs.iter().find(|d| d.name == h.name)
    }

    /// For a shell-form RUN with heredocs, the script BuildKit gives the
    /// shell: the body alone when the command is just `<<EOF` (a body
    /// starting with `#!` is meant to be run as a file instead), else the
    /// line with each body and delimiter appended so the shell reads them
    /// as here-documents. `None` without heredocs.
    pub fn heredoc_script(&self) -> Option<String> {
        let Command::Run {
            cmd: CmdLine::Shell(line),
        } = &self.command
        else {
            return None;
        };
        let first = self.heredocs.first()?;
        if matches!(lines::parse_heredoc_word(line), Ok(Some(_))) {
            return Some(first.content.clone());
        }
        let mut full = line.clone();
        for h in &self.heredocs {
            full.push('\n');
            full.push_str(&h.content);
            full.push_str(&h.name);
        }
        Some(full)
    }
}
