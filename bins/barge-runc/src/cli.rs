//! The command line, defined once: runc's global flags and commands, with
//! runc's flag names so that podman, conmon, containerd's shim and dockerd
//! can call barge-runc exactly as they call runc.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version` output shaped like runc's (managers show its first lines).
const VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\nspec: 1.2.0\nlibseccomp: 2.5 (linked statically)"
);

#[derive(Parser, Debug)]
#[command(
    name = "barge-runc",
    version = VERSION,
    about = "A runc-compatible OCI runtime (part of Barge)"
)]
pub struct Cli {
    /// Root directory for container state (tmpfs recommended)
    #[arg(long, global = true, default_value = "/run/barge-runc")]
    pub root: PathBuf,
    /// Write logs to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: LogFormat,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: barge-runc manages cgroupfs directly)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (`spec --rootless` writes a rootless config)
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path to criu (accepted for compatibility; checkpoint is not implemented)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to (when process.terminal is true)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket to send a pidfd of the init to
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// File to write the container init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (use MS_MOVE and chroot)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N more file descriptors (3 .. 3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (it waits for `start`)
    Create(CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Create and start a container, wait for it and delete it
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// Do not delete the container after it exits
        #[arg(long)]
        keep: bool,
        /// Do not become a subreaper (accepted for compatibility)
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Send a signal to the container's init process
    Kill {
        /// Send the signal to all processes in the container
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything the runtime made for it
    Delete {
        /// Kill the container first if it is running
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// List containers
    #[command(alias = "ls")]
    List {
        #[arg(short = 'f', long, default_value = "table")]
        format: ListFormat,
        /// Print only the ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// List the processes of a container
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: ListFormat,
        id: String,
        /// Options passed to ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process in a running container
    Exec(Box<ExecArgs>),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Show resource usage and OOM events of a container
    Events {
        /// Interval between stats reports (e.g. 5s, 500ms)
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Print the stats once and exit
        #[arg(long)]
        stats: bool,
        id: String,
    },
    /// Change a container's resource limits
    Update(Box<UpdateArgs>),
    /// Write a default config.json
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print what this runtime supports, as JSON
    Features,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=value)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID[:GID] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// A process.json describing the process (replaces args and flags)
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Detach from the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the process's sets
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Sub-cgroup to join (accepted; the container's cgroup is joined)
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Resources JSON (linux.resources) from a file, or - for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "l3-cache-schema", hide = true)]
    pub l3_cache_schema: Option<String>,
    #[arg(long = "mem-bw-schema", hide = true)]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}
