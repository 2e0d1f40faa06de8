//! The OCI runtime, run as a separate binary with runc's command line
//! (barge-runc by default; runc, crun or youki work the same way).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::error::{EngineError, Result};

/// Finds a helper binary (`barge-runc`, `barge-monitor`, `runc`...): a path
/// as given, else next to the running executable, else on `$PATH`.
pub fn find_binary(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(EngineError::InvalidArgument(format!(
                "runtime binary {name} not found"
            )))
        };
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(EngineError::InvalidArgument(format!(
        "{name} not found next to this program nor in $PATH; install it or give a path"
    )))
}

/// One OCI runtime binary with its state directory.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub root: PathBuf,
}

/// How a runtime error reads to the user, classified as Docker does (126
/// cannot execute, 127 not found).
pub fn classify(msg: &str) -> EngineError {
    let m = msg.trim();
    let lower = m.to_ascii_lowercase();
    if lower.contains("executable file not found")
        || (lower.contains("exec") && lower.contains("no such file or directory"))
    {
        EngineError::CommandNotFound(format!("failed to create task for container: {m}: unknown"))
    } else if lower.contains("permission denied") && lower.contains("exec") {
        EngineError::CannotExecute(format!("failed to create task for container: {m}: unknown"))
    } else {
        EngineError::Runtime(m.to_string())
    }
}

impl Runtime {
    pub fn new(path: PathBuf, root: PathBuf) -> Runtime {
        Runtime { path, root }
    }

    /// A command with the global flags.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--root").arg(&self.root);
        c
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| EngineError::Runtime(format!("run {}: {e}", self.path.display())))?;
        Ok(out)
    }

    fn run_ok(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self.run(args)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(classify(&error_text(&out.stderr)))
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run_ok(&["start", id]).map(|_| ())
    }

    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let mut a = vec!["kill"];
        if all {
            a.push("--all");
        }
        a.extend([id, signal]);
        self.run_ok(&a).map(|_| ())
    }

    /// `delete --force`; a container the runtime does not know is fine.
    pub fn delete(&self, id: &str) -> Result<()> {
        let out = self.run(&["delete", "--force", id])?;
        let err = error_text(&out.stderr);
        if out.status.success() || err.contains("does not exist") || err.contains("not exist") {
            Ok(())
        } else {
            Err(EngineError::Runtime(err))
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.run_ok(&["pause", id]).map(|_| ())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.run_ok(&["resume", id]).map(|_| ())
    }

    /// `state` as JSON, or `None` if the runtime does not know the id.
    pub fn state(&self, id: &str) -> Option<serde_json::Value> {
        let out = self.run(&["state", id]).ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Host pids of the container's processes.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let out = self.run_ok(&["ps", "--format", "json", id])?;
        serde_json::from_slice(&out).map_err(|source| EngineError::Json {
            what: "parse the runtime's ps output".into(),
            source,
        })
    }

    /// One `events --stats` sample (runc's stats JSON: `{"type":"stats","data":{...}}`).
    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let out = self.run_ok(&["events", "--stats", id])?;
        serde_json::from_slice(&out).map_err(|source| EngineError::Json {
            what: "parse the runtime's stats".into(),
            source,
        })
    }

    /// `update --resources -` with an OCI resources object.
    pub fn update(&self, id: &str, resources: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        let mut child = self
            .command()
            .args(["update", "--resources", "-", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Runtime(format!("run {}: {e}", self.path.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(resources.to_string().as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| EngineError::Runtime(format!("wait for the runtime: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(EngineError::Runtime(error_text(&out.stderr)))
        }
    }
}

/// The useful part of a runtime's stderr: the last non-empty line, without
/// the `barge-runc: `/`runc: ` prefixes, or JSON log `msg`.
pub fn error_text(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the OCI runtime failed without a message")
        .trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    line.to_string()
}

/// The last error the runtime wrote to its `--log` (runc's JSON lines).
pub fn last_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        if matches!(v.get("level")?.as_str()?, "error" | "fatal") {
            Some(v.get("msg")?.as_str()?.to_string())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_exec_errors() {
        assert_eq!(
            classify("exec: \"nope\": executable file not found in $PATH").exit_code(),
            127
        );
        assert_eq!(
            classify("exec /etc/passwd: permission denied").exit_code(),
            126
        );
        assert_eq!(classify("cgroup: no such controller").exit_code(), 125);
        assert_eq!(
            error_text(b"noise\nbarge-runc: boom\n\n"),
            "barge-runc: boom"
        );
        assert_eq!(error_text(br#"{"level":"error","msg":"x"}"#), "x");
    }
}
