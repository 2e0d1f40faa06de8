//! Running OCI hooks: each gets the container's state JSON on stdin, its own
//! env and args, and is killed when its timeout passes.
//!
//! Who calls which kind, and where, is the lifecycle's business
//! (prestart/createRuntime/poststart/poststop from the runtime's namespaces,
//! createContainer/startContainer from the container's init).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Result, RuntimeError};

/// Run hooks of one kind in order; the first failure stops the rest.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).map_err(|e| RuntimeError::Other(e.to_string()))?;
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, &input).map_err(|m| {
            RuntimeError::Hook(format!("{kind} hook #{i} ({}) {m}", h.path().display()))
        })?;
    }
    Ok(())
}

fn run_one(h: &Hook, input: &[u8]) -> std::result::Result<(), String> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("could not start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE is ignored).
        let _ = stdin.write_all(input);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if out.trim().is_empty() {
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
    }
    let out = out.trim().replace('\n', "; ");
    Err(if out.is_empty() {
        format!("failed: {status}")
    } else {
        format!("failed: {status}: {out}")
    })
}
