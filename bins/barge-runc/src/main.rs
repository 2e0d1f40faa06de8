//! barge-runc: a runc-compatible OCI runtime. The binary is thin: it parses
//! runc's command line ([`cli`]), calls `barge_runtime`, prints runc's output
//! shapes and reports errors on one line (and to `--log`, in runc's JSON
//! log format, which conmon and containerd's shim read).

mod cli;
mod output;

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use barge_runtime::container::{self, CreateOptions, Mode};
use barge_runtime::exec::{self, ExecOptions};
use clap::Parser;
use cli::{Cli, Command, CreateArgs, LogFormat};

fn main() {
    let cli = Cli::parse();
    if cli.debug {
        barge_runtime::log::enable();
    }
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            report(&cli, &e);
            1
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// One line on stderr, and a log record if `--log` was given.
fn report(cli: &Cli, e: &anyhow::Error) {
    let msg = format!("{e:#}").replace('\n', " ");
    if let Some(log) = &cli.log {
        let line = match cli.log_format {
            LogFormat::Json => format!(
                "{}\n",
                serde_json::json!({"level": "error", "msg": msg, "time": barge_runtime::utils::now_rfc3339()})
            ),
            LogFormat::Text => format!(
                "time=\"{}\" level=error msg={:?}\n",
                barge_runtime::utils::now_rfc3339(),
                msg
            ),
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
    eprintln!("barge-runc: {msg}");
}

fn create_options(cli: &Cli, a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        keep: false,
        pidfd_socket: a.pidfd_socket.clone(),
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: barge-runc manages cgroups through cgroupfs; \
             configure the caller for cgroupfs (podman: cgroup_manager = \"cgroupfs\"; containerd: SystemdCgroup = false)"
        );
    }
    let root = cli.root.as_path();
    match &cli.command {
        Command::Create(a) => {
            barge_runtime::reexec::ensure_sealed_self()?;
            container::create(&create_options(cli, a), Mode::Create)?;
            Ok(0)
        }
        Command::Run {
            create,
            detach,
            keep,
            no_subreaper: _,
        } => {
            barge_runtime::reexec::ensure_sealed_self()?;
            if *keep && *detach {
                bail!("--keep and --detach cannot be used together: a detached container is never deleted by run");
            }
            let mode = if *detach {
                Mode::RunDetached
            } else {
                Mode::Run
            };
            let mut opts = create_options(cli, create);
            opts.keep = *keep;
            Ok(container::create(&opts, mode)?)
        }
        Command::Start { id } => {
            container::start(root, id)?;
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = barge_runtime::utils::parse_signal(signal)?;
            container::kill(root, id, sig, *all)?;
            Ok(0)
        }
        Command::Delete { force, id } => {
            container::delete(root, id, *force)?;
            Ok(0)
        }
        Command::State { id } => {
            let c = barge_runtime::state::Container::load(root, id)?;
            println!("{}", serde_json::to_string_pretty(&c.runc_state())?);
            Ok(0)
        }
        Command::List { format, quiet } => {
            output::list(root, *format, *quiet)?;
            Ok(0)
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            output::ps(root, id, *format, ps_args)?;
            Ok(0)
        }
        Command::Exec(a) => {
            barge_runtime::reexec::ensure_sealed_self()?;
            let process = exec_process(root, a)?;
            Ok(exec::exec(ExecOptions {
                root: root.to_path_buf(),
                id: a.id.clone(),
                process,
                console_socket: a.console_socket.clone(),
                pid_file: a.pid_file.clone(),
                detach: a.detach,
                preserve_fds: a.preserve_fds,
                ignore_paused: a.ignore_paused,
                pidfd_socket: a.pidfd_socket.clone(),
            })?)
        }
        Command::Pause { id } => {
            container::pause(root, id)?;
            Ok(0)
        }
        Command::Resume { id } => {
            container::resume(root, id)?;
            Ok(0)
        }
        Command::Events {
            interval,
            stats,
            id,
        } => {
            output::events(root, id, interval, *stats)?;
            Ok(0)
        }
        Command::Update(a) => {
            let res = output::update_resources(a)?;
            container::update(root, &a.id, &res)?;
            Ok(0)
        }
        Command::Spec { bundle } => {
            let rootless = matches!(cli.rootless.as_deref(), Some("true" | "1"));
            output::write_spec(bundle, rootless)?;
            Ok(0)
        }
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&output::features())?);
            Ok(0)
        }
    }
}

/// The process for `exec`: `--process` replaces everything; otherwise the
/// container's own process with args and flags applied (runc's rules).
fn exec_process(root: &Path, a: &cli::ExecArgs) -> Result<oci_spec::runtime::Process> {
    if let Some(p) = &a.process {
        let raw = std::fs::read(p).with_context(|| format!("read process file {}", p.display()))?;
        return serde_json::from_slice(&raw)
            .map_err(|e| anyhow!("invalid process file {}: {e}", p.display()));
    }
    if a.command.is_empty() {
        bail!("exec needs a command after the container id (or --process FILE)");
    }
    let mut p = exec::base_process(root, &a.id)?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u.parse::<u32>()?, Some(g.parse::<u32>()?)),
            None => (
                u.parse::<u32>()
                    .with_context(|| format!("--user {u}: expected UID[:GID]"))?,
                None,
            ),
        };
        let mut user = p.user().clone();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| anyhow!("unknown capability \"{name}\""))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_inheritable(add(caps.inheritable()));
            caps.set_ambient(add(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
