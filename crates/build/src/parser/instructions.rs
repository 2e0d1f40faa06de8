//! Phase two, BuildKit's `instructions.Parse`: each raw node is checked
//! (argument counts, flags, stage names, HEALTHCHECK options) and typed, and
//! the instructions are grouped into stages, ARGs before the first FROM kept
//! apart.
//!
//! This module owns the per-instruction rules and their error messages
//! (BuildKit's wording). It must not read text (that is `lines.rs`) nor
//! expand words (the builder does, at build time).

use super::lines::{parse_heredoc_word, Ast, Node};
use super::{CmdLine, Command, Dockerfile, HealthcheckSpec, Instruction, ParseError, Stage};

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    /// `--link`, `--link=true|false`.
    Bool,
    /// `--from=x`, once.
    Str,
    /// `--mount=x`, any number of times.
    Strings,
}

use FlagKind::{Bool, Str, Strings};

const NO_FLAGS: &[(&str, FlagKind)] = &[];
const FROM_FLAGS: &[(&str, FlagKind)] = &[("platform", Str)];
const RUN_FLAGS: &[(&str, FlagKind)] = &[
    ("mount", Strings),
    ("network", Str),
    ("security", Str),
    ("device", Strings),
];
const COPY_FLAGS: &[(&str, FlagKind)] = &[
    ("from", Str),
    ("chown", Str),
    ("chmod", Str),
    ("link", Bool),
    ("parents", Bool),
    ("exclude", Strings),
];
const ADD_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", Str),
    ("chmod", Str),
    ("link", Bool),
    ("keep-git-dir", Bool),
    ("checksum", Str),
    ("unpack", Bool),
    ("exclude", Strings),
];
const HEALTHCHECK_FLAGS: &[(&str, FlagKind)] = &[
    ("interval", Str),
    ("timeout", Str),
    ("start-period", Str),
    ("start-interval", Str),
    ("retries", Str),
];

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

type Flags = Vec<(String, Option<String>)>;

/// Groups the nodes into stages.
pub(super) fn build(ast: Ast) -> Result<Dockerfile, ParseError> {
    if ast.nodes.is_empty() {
        return Err(ParseError::new(
            ast.lines.max(1),
            "file with no instructions",
        ));
    }
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in ast.nodes {
        let line = node.start_line;
        let ins = parse_instruction(node).map_err(|m| ParseError::new(line, m))?;
        if let Command::From {
            image,
            name,
            platform,
        } = ins.command
        {
            if let Some(n) = &name {
                if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                    return Err(ParseError::new(line, format!("duplicate stage name {n:?}")));
                }
            }
            stages.push(Stage {
                name,
                base: image,
                platform,
                line,
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None if matches!(ins.command, Command::Arg(_)) => meta_args.push(ins),
            None => {
                return Err(ParseError::new(line, "no build stage in current context"));
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError::new(
            ast.lines.max(1),
            "dockerfile contains no stages to build: add a FROM",
        ));
    }
    Ok(Dockerfile {
        directives: ast.directives,
        escape: ast.escape,
        meta_args,
        stages,
    })
}

/// One node to a typed instruction; the message of the error if it is not
/// a valid one.
fn parse_instruction(node: Node) -> Result<Instruction, String> {
    let name = node.cmd.to_ascii_lowercase();
    let args = &node.args;
    let (flags, command) = match name.as_str() {
        "from" => parse_from(&node)?,
        "env" | "label" => {
            let what = name.to_ascii_uppercase();
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            let pairs = key_values(args, &what)?;
            let command = if name == "env" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            };
            (flags, command)
        }
        "maintainer" => {
            let v = exactly_one(args, "MAINTAINER")?;
            (parse_flags(&node.flags, NO_FLAGS)?, Command::Maintainer(v))
        }
        "workdir" => {
            let v = exactly_one(args, "WORKDIR")?;
            (parse_flags(&node.flags, NO_FLAGS)?, Command::Workdir(v))
        }
        "user" => {
            let v = exactly_one(args, "USER")?;
            (parse_flags(&node.flags, NO_FLAGS)?, Command::User(v))
        }
        "stopsignal" => {
            let v = exactly_one(args, "STOPSIGNAL")?;
            (parse_flags(&node.flags, NO_FLAGS)?, Command::StopSignal(v))
        }
        "add" | "copy" => parse_copy(&node, &name)?,
        "run" => {
            let flags = parse_flags(&node.flags, RUN_FLAGS)?;
            let cmd = cmd_line(&node, "RUN")?;
            (flags, Command::Run { cmd })
        }
        "cmd" => {
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            (flags, Command::Cmd(cmd_line(&node, "CMD")?))
        }
        "entrypoint" => {
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            (flags, Command::Entrypoint(cmd_line(&node, "ENTRYPOINT")?))
        }
        "shell" => {
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(not_json("SHELL", &node.original));
            }
            (flags, Command::Shell(args.clone()))
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            (flags, Command::Expose(args.clone()))
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            let mut vols = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                vols.push(v.to_string());
            }
            (flags, Command::Volume(vols))
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let flags = parse_flags(&node.flags, NO_FLAGS)?;
            let mut list = Vec::new();
            for a in args {
                match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => list.push((k.to_string(), Some(v.to_string()))),
                    None => list.push((a.clone(), None)),
                }
            }
            (flags, Command::Arg(list))
        }
        "healthcheck" => parse_healthcheck(&node)?,
        "onbuild" => return parse_onbuild(node),
        _ => return Err(unknown_instruction(&node.cmd)),
    };
    Ok(Instruction {
        line: node.start_line,
        end_line: node.end_line,
        original: node.original,
        flags,
        heredocs: node.heredocs,
        command,
    })
}

fn at_least_one(what: &str) -> String {
    format!("{what} requires at least one argument")
}

fn exactly_one(args: &[String], what: &str) -> Result<String, String> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(format!("{what} requires exactly one argument")),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// BuildKit's `suggest.Search`: the closest option within 2 edits.
fn suggest<'a>(val: &str, options: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if val.chars().count() <= 1 {
        return None;
    }
    let val = val.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for opt in options {
        let d = distance(&val, &opt.to_ascii_lowercase());
        if d < 3 && !matches!(best, Some((bd, _)) if bd <= d) {
            best = Some((d, opt));
        }
    }
    best.map(|(_, o)| o)
}

fn unknown_instruction(cmd: &str) -> String {
    let upper = cmd.to_uppercase();
    match suggest(&upper, INSTRUCTIONS) {
        Some(s) => format!("unknown instruction: {upper} (did you mean {s}?)"),
        None => format!("unknown instruction: {upper}"),
    }
}

/// Checks the `--flags` against what the instruction takes (BuildKit's
/// `BFlags.Parse`).
fn parse_flags(raw: &[String], spec: &[(&str, FlagKind)]) -> Result<Flags, String> {
    let mut out: Flags = Vec::new();
    for arg in raw {
        let Some(a) = arg.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {arg}"));
        };
        if a.is_empty() {
            break;
        }
        let (name, value) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (a, None),
        };
        let Some(&(_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            let hint = suggest(name, spec.iter().map(|(n, _)| *n))
                .map(|s| format!(" (did you mean --{s}?)"))
                .unwrap_or_default();
            return Err(format!("unknown flag: --{name}{hint}"));
        };
        if kind != Strings && out.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate flag specified: --{name}"));
        }
        let value = match (kind, value) {
            (Bool, None) => None,
            (Bool, Some("")) => {
                return Err(format!("missing a value on flag: --{name}"));
            }
            (Bool, Some(v)) => {
                let l = v.to_ascii_lowercase();
                if l != "true" && l != "false" {
                    return Err(format!(
                        "expecting boolean value for flag --{name}, not: {v}"
                    ));
                }
                Some(l)
            }
            (_, None) => return Err(format!("missing a value on flag: --{name}")),
            (_, Some(v)) => Some(v.to_string()),
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

fn flag_value(flags: &Flags, name: &str) -> Option<String> {
    flags
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
}

/// `FROM [--platform=p] image [AS name]`.
fn parse_from(node: &Node) -> Result<(Flags, Command), String> {
    let args = &node.args;
    let name = match args.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !valid_stage_name(&lower) {
                return Err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let flags = parse_flags(&node.flags, FROM_FLAGS)?;
    let platform = flag_value(&flags, "platform");
    let image = args[0].clone();
    Ok((
        flags,
        Command::From {
            image,
            name,
            platform,
        },
    ))
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// ENV / LABEL pairs, from the key, value, key, value... of phase one.
fn key_values(args: &[String], what: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(at_least_one(what));
    }
    let mut out = Vec::new();
    for kv in args.chunks(2) {
        let [k, v] = kv else {
            return Err(format!("Bad input to {what}, too many arguments"));
        };
        if k.is_empty() {
            return Err(format!("{what} names can not be blank"));
        }
        out.push((k.clone(), v.clone()));
    }
    Ok(out)
}

/// The command of RUN, CMD, ENTRYPOINT. `CMD []` and `ENTRYPOINT []` are
/// allowed (they clear the inherited value); an empty RUN, or a bare CMD or
/// ENTRYPOINT, is not.
fn cmd_line(node: &Node, what: &str) -> Result<CmdLine, String> {
    if node.args.is_empty() && (what == "RUN" || !node.json) {
        return Err(at_least_one(what));
    }
    Ok(if node.json {
        CmdLine::Exec(node.args.clone())
    } else {
        CmdLine::Shell(node.args.join(" "))
    })
}

/// BuildKit's `errNotJSON`, with its hint for unescaped Windows paths.
fn not_json(what: &str, original: &str) -> String {
    let lower = original.to_lowercase();
    let drive_path = lower.match_indices('"').any(|(i, _)| {
        let b = lower.as_bytes();
        b.get(i + 1).is_some_and(u8::is_ascii_lowercase)
            && b.get(i + 2) == Some(&b':')
            && b.get(i + 3) == Some(&b'\\')
    });
    if drive_path && !lower.contains("\\\\") && lower.contains('[') && lower.contains(']') {
        return format!(
            "{what} requires the arguments to be in JSON form. It looks like '{lower}' includes a file path without an escaped back-slash. JSON requires back-slashes to be escaped such as [\"c:\\\\path\\\\to\\\\file.exe\", \"/action\"]."
        );
    }
    format!("{what} requires the arguments to be in JSON form")
}

/// `COPY|ADD [flags] src... dest`.
fn parse_copy(node: &Node, name: &str) -> Result<(Flags, Command), String> {
    let what = name.to_ascii_uppercase();
    let args = &node.args;
    let Some((dest, sources)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(format!(
            "{what} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    };
    let spec = if name == "copy" {
        COPY_FLAGS
    } else {
        ADD_FLAGS
    };
    let flags = parse_flags(&node.flags, spec)?;
    if matches!(parse_heredoc_word(dest), Ok(Some(_))) {
        return Err(format!("{what} cannot accept a heredoc as a destination"));
    }
    let sources = sources.to_vec();
    let dest = dest.clone();
    let command = if name == "copy" {
        Command::Copy { sources, dest }
    } else {
        Command::Add { sources, dest }
    };
    Ok((flags, command))
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`.
fn parse_healthcheck(node: &Node) -> Result<(Flags, Command), String> {
    let Some((typ, rest)) = node.args.split_first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    let flags = parse_flags(&node.flags, HEALTHCHECK_FLAGS)?;
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok((flags, Command::Healthcheck(None)));
    }
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = if node.json {
        std::iter::once("CMD".to_string())
            .chain(rest.iter().cloned())
            .collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    for name in ["interval", "timeout", "start-period", "start-interval"] {
        if let Some(v) = flag_value(&flags, name) {
            let flag = format!("--{name}");
            let ns = barge_engine::opts::parse_duration(&flag, &v).map_err(|e| e.to_string())?;
            if ns != 0 && ns < 1_000_000 {
                return Err(format!("{flag} cannot be less than 1ms"));
            }
        }
    }
    let retries = flag_value(&flags, "retries");
    if let Some(r) = &retries {
        let n: i32 = r
            .parse()
            .map_err(|_| format!("invalid --retries value {r:?}: not a number"))?;
        if n < 0 {
            return Err(format!("--retries cannot be negative ({n})"));
        }
    }
    let spec = HealthcheckSpec {
        test,
        interval: flag_value(&flags, "interval"),
        timeout: flag_value(&flags, "timeout"),
        start_period: flag_value(&flags, "start-period"),
        start_interval: flag_value(&flags, "start-interval"),
        retries,
    };
    Ok((flags, Command::Healthcheck(Some(spec))))
}

/// `ONBUILD INSTRUCTION ...`: any instruction but ONBUILD, FROM and
/// MAINTAINER, checked now (BuildKit only checks it when it triggers).
fn parse_onbuild(node: Node) -> Result<Instruction, String> {
    let Node {
        flags,
        original,
        heredocs,
        child,
        start_line,
        end_line,
        ..
    } = node;
    let Some(mut child) = child else {
        return Err(at_least_one("ONBUILD"));
    };
    let flags = parse_flags(&flags, NO_FLAGS)?;
    let trigger = child.cmd.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    // The trigger as the image stores it: the text after ONBUILD, then
    // each heredoc body and its delimiter.
    let mut expression = strip_onbuild(&original).to_string();
    for h in &heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    child.heredocs = heredocs;
    child.start_line = start_line;
    child.end_line = end_line;
    let mut inner = parse_instruction(*child)?;
    inner.original = expression;
    Ok(Instruction {
        line: start_line,
        end_line,
        original,
        flags,
        heredocs: Vec::new(),
        command: Command::Onbuild(Box::new(inner)),
    })
}

/// `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild(original: &str) -> &str {
    let re_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let t = original.trim_start_matches(re_space);
    match t.get(..7) {
        Some(head) if head.eq_ignore_ascii_case("onbuild") => t[7..].trim_start_matches(re_space),
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_instruction_names() {
        assert_eq!(
            unknown_instruction("FORM"),
            "unknown instruction: FORM (did you mean FROM?)"
        );
        assert_eq!(
            unknown_instruction("foo"),
            "unknown instruction: FOO (did you mean FROM?)"
        );
        assert_eq!(
            unknown_instruction("frobnicate"),
            "unknown instruction: FROBNICATE"
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn stage_names() {
        assert!(valid_stage_name("build-1.2_x"));
        assert!(!valid_stage_name("1build"));
        assert!(!valid_stage_name("a/b"));
        assert!(!valid_stage_name(""));
    }

    #[test]
    fn flags_follow_bflags() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_flags(&f(&["--link", "--from=a"]), COPY_FLAGS),
            Ok(vec![
                ("link".into(), None),
                ("from".into(), Some("a".into()))
            ])
        );
        assert_eq!(
            parse_flags(&f(&["--link=TRUE"]), COPY_FLAGS),
            Ok(vec![("link".into(), Some("true".into()))])
        );
        assert_eq!(
            parse_flags(&f(&["--link=yes"]), COPY_FLAGS),
            Err("expecting boolean value for flag --link, not: yes".into())
        );
        assert_eq!(
            parse_flags(&f(&["--from"]), COPY_FLAGS),
            Err("missing a value on flag: --from".into())
        );
        assert_eq!(
            parse_flags(&f(&["--from=a", "--from=b"]), COPY_FLAGS),
            Err("duplicate flag specified: --from".into())
        );
        assert_eq!(
            parse_flags(&f(&["--mount=a", "--mount=b"]), RUN_FLAGS).map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            parse_flags(&f(&["--form=a"]), COPY_FLAGS),
            Err("unknown flag: --form (did you mean --from?)".into())
        );
    }

    #[test]
    fn strips_onbuild_keyword() {
        assert_eq!(strip_onbuild("onbuild  RUN x"), "RUN x");
        assert_eq!(strip_onbuild("ONBUILD\tCOPY a b"), "COPY a b");
    }

    #[test]
    fn windows_path_hint() {
        assert!(not_json("SHELL", r#"SHELL ["c:\windows\cmd.exe"]"#).contains("back-slash"));
        assert_eq!(
            not_json("SHELL", "SHELL sh -c"),
            "SHELL requires the arguments to be in JSON form"
        );
    }
}
