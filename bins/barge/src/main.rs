//! barge: the user's CLI, with Docker's verbs, flags and output shapes.
//! Daemonless: every command works on the store directly (file locks make
//! concurrent commands safe).
//!
//! Containers (run, create, start, stop, kill, restart, pause, unpause, rm,
//! ps, logs, exec, attach, wait, inspect, rename, top...) and images
//! (import, save, load, images, tag, rmi, history, image mount, image
//! prune, system df, system check) and volumes (volume create, ls,
//! inspect, rm, prune).

#![recursion_limit = "256"]

mod build;
mod containers;
mod format;
mod fscmds;
mod human;
mod images;
mod monitoring;
mod networks;
mod registry;
mod volumes;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "barge",
    version,
    about = "Barge: containers with Docker's verbs, daemonless"
)]
pub struct Cli {
    /// Where images and containers are stored
    #[arg(
        long,
        global = true,
        env = "BARGE_ROOT",
        default_value = "/var/lib/barge"
    )]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and run a new container from an image
    Run(containers::RunArgs),
    /// Create a new container
    Create(containers::CreateFlags),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Pause all processes within one or more containers
    Pause(containers::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::NamesArgs),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// List containers
    Ps(containers::PsArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Execute a command in a running container
    Exec(containers::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(containers::AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::WaitArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Display the running processes of a container
    Top(containers::TopArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(fscmds::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(fscmds::DiffArgs),
    /// Create a new image from a container's changes
    Commit(fscmds::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(fscmds::ExportArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(monitoring::StatsArgs),
    /// Get real time events from the engine
    Events(monitoring::EventsArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Manage builds
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
    },
    /// Manage containers
    Container {
        #[command(subcommand)]
        command: ContainerCommand,
    },
    /// List images
    Images(images::ListArgs),
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Return low-level information on images, as JSON
    Inspect(images::InspectArgs),
    /// Import a root filesystem tarball (or - for stdin) as an image
    Import {
        /// The tarball (plain, gzip or zstd), or - for stdin
        file: String,
        /// REPOSITORY[:TAG] to tag it with
        reference: Option<String>,
        /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)
        #[arg(short, long = "change")]
        change: Vec<String>,
        /// Commit message for the imported image
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Save one or more images to a tar archive (streamed to stdout by default)
    Save {
        /// Write to a file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// docker-archive (what `docker load` reads) or oci-archive
        #[arg(long, default_value = "docker-archive")]
        format: String,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from a tar archive (docker-archive or oci-archive, plain or compressed)
    Load {
        /// Read from a file instead of stdin
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Suppress the progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Run a registry (the OCI distribution API)
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// List port mappings or a specific mapping for the container
    Port(networks::PortArgs),
    /// Manage Barge
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(build::BuilderPruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(containers::RunArgs),
    /// Create a new container
    Create(containers::CreateFlags),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Pause all processes within one or more containers
    Pause(containers::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::NamesArgs),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(containers::PsArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Execute a command in a running container
    Exec(containers::ExecArgs),
    /// Attach to a running container
    Attach(containers::AttachArgs),
    /// Block until one or more containers stop
    Wait(containers::WaitArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Display the running processes of a container
    Top(containers::TopArgs),
    /// Display detailed information on one or more containers
    Inspect(images::InspectArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(fscmds::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(fscmds::DiffArgs),
    /// Create a new image from a container's changes
    Commit(fscmds::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(fscmds::ExportArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(monitoring::StatsArgs),
    /// Get real time events from the engine
    Events(monitoring::EventsArgs),
    /// Remove all stopped containers
    Prune(monitoring::PruneArgs),
    /// List port mappings or a specific mapping for the container
    Port(networks::PortArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ListArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Display detailed information on one or more images
    Inspect(images::InspectArgs),
    /// Remove unused images
    Prune(images::PruneArgs),
    /// Remove one or more images
    Rm(images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Mount an image's root filesystem read-only and print where
    Mount { image: String },
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Unmount an image mounted with `image mount`
    #[command(alias = "umount")]
    Unmount { image: String },
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Serve the OCI distribution API (pull, push, discovery, deletion)
    Serve(registry::ServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(volumes::CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(volumes::ListArgs),
    /// Display detailed information on one or more volumes
    Inspect(volumes::InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(volumes::RmArgs),
    /// Remove unused local volumes
    Prune(volumes::PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(networks::CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(networks::ListArgs),
    /// Display detailed information on one or more networks
    Inspect(networks::InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(networks::RmArgs),
    /// Remove all unused networks
    Prune(networks::PruneArgs),
    /// Connect a container to a network
    Connect(networks::ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(networks::DisconnectArgs),
}

#[derive(clap::Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show disk usage
    Df,
    /// Remove unused data: stopped containers, unused networks, dangling (or with -a unused) images, build cache, and with --volumes anonymous volumes
    Prune(SystemPruneArgs),
    /// Reset the engine root: remove every container, network (the default bridge and Barge's nftables table too), volume, image and the build cache
    Reset {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Verify every blob's digest and every image's references
    Check,
}

fn main() {
    let cli = Cli::parse();
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(x) = e.downcast_ref::<containers::Exit>() {
                eprintln!("Error: {}", x.message.replace('\n', " "));
                x.code
            } else {
                eprintln!("Error: {}", format!("{e:#}").replace('\n', " "));
                1
            }
        }
    };
    std::process::exit(code);
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    let store = || images::open_store(&cli.root);
    let root = cli.root.as_path();
    if let Command::Container { command } = &cli.command {
        return container_command(root, command);
    }
    match &cli.command {
        Command::Run(a) => containers::run(root, a),
        Command::Build(a)
        | Command::Image {
            command: ImageCommand::Build(a),
        } => build::build(root, a),
        Command::Builder {
            command: BuilderCommand::Prune(a),
        } => build::prune(root, a),
        Command::Create(a) => containers::create(root, a),
        Command::Start(a) => containers::start(root, a),
        Command::Stop(a) => containers::stop(root, a),
        Command::Restart(a) => containers::restart(root, a),
        Command::Kill(a) => containers::kill(root, a),
        Command::Pause(a) => containers::pause(root, a, true),
        Command::Unpause(a) => containers::pause(root, a, false),
        Command::Rm(a) => containers::rm(root, a),
        Command::Ps(a) => containers::ps(root, a),
        Command::Logs(a) => containers::logs(root, a),
        Command::Exec(a) => containers::exec(root, a),
        Command::Attach(a) => containers::attach(root, a),
        Command::Wait(a) => containers::wait(root, a),
        Command::Rename(a) => containers::rename(root, a),
        Command::Top(a) => containers::top(root, a),
        Command::Cp(a) => fscmds::cp(root, a),
        Command::Diff(a) => fscmds::diff(root, a),
        Command::Commit(a) => fscmds::commit(root, a),
        Command::Export(a) => fscmds::export(root, a),
        Command::Stats(a) => monitoring::stats(root, a),
        Command::Events(a) => monitoring::events(root, a),
        Command::Container { .. } => unreachable!("handled above"),
        Command::Images(a)
        | Command::Image {
            command: ImageCommand::Ls(a),
        } => images::list(&store()?, a),
        Command::Tag { source, target }
        | Command::Image {
            command: ImageCommand::Tag { source, target },
        } => images::tag(&store()?, source, target),
        Command::Rmi(a)
        | Command::Image {
            command: ImageCommand::Rm(a),
        } => images::rmi(&store()?, a),
        Command::History(a)
        | Command::Image {
            command: ImageCommand::History(a),
        } => images::history(&store()?, a),
        Command::Inspect(a) => containers::inspect(root, a, false),
        Command::Image {
            command: ImageCommand::Inspect(a),
        } => images::inspect(&store()?, a),
        Command::Image {
            command: ImageCommand::Prune(a),
        } => images::prune(&store()?, a),
        Command::Image {
            command: ImageCommand::Mount { image },
        } => images::mount(&store()?, image),
        Command::Image {
            command: ImageCommand::Unmount { image },
        } => images::unmount(&store()?, image),
        Command::Import {
            file,
            reference,
            change,
            message,
        } => images::import(
            &store()?,
            file,
            reference.as_deref(),
            change,
            message.as_deref(),
        ),
        Command::Save {
            output,
            format,
            images,
        } => images::save(&store()?, output.as_deref(), format, images),
        Command::Load { input, quiet } => images::load(&store()?, input.as_deref(), *quiet),
        Command::Pull(a)
        | Command::Image {
            command: ImageCommand::Pull(a),
        } => registry::pull(root, a),
        Command::Push(a)
        | Command::Image {
            command: ImageCommand::Push(a),
        } => registry::push(root, a),
        Command::Login(a) => registry::login(a),
        Command::Logout(a) => registry::logout(a),
        Command::Registry {
            command: RegistryCommand::Serve(a),
        } => registry::serve(root, a),
        Command::Volume { command } => match command {
            VolumeCommand::Create(a) => volumes::create(root, a),
            VolumeCommand::Ls(a) => volumes::list(root, a),
            VolumeCommand::Inspect(a) => volumes::inspect(root, a),
            VolumeCommand::Rm(a) => volumes::rm(root, a),
            VolumeCommand::Prune(a) => volumes::prune(root, a),
        },
        Command::Network { command } => match command {
            NetworkCommand::Create(a) => networks::create(root, a),
            NetworkCommand::Ls(a) => networks::list(root, a),
            NetworkCommand::Inspect(a) => networks::inspect(root, a),
            NetworkCommand::Rm(a) => networks::rm(root, a),
            NetworkCommand::Prune(a) => networks::prune(root, a),
            NetworkCommand::Connect(a) => networks::connect(root, a),
            NetworkCommand::Disconnect(a) => networks::disconnect(root, a),
        },
        Command::Port(a) => networks::port(root, a),
        Command::System {
            command: SystemCommand::Prune(a),
        } => system_prune(root, a),
        Command::System {
            command: SystemCommand::Reset { force },
        } => system_reset(root, *force),
        Command::System {
            command: SystemCommand::Df,
        } => images::system_df(&store()?),
        Command::System {
            command: SystemCommand::Check,
        } => images::system_check(&store()?),
    }
}

/// `system prune`: each kind of unused thing in turn, as its own prune
/// command does it.
fn system_prune(root: &std::path::Path, a: &SystemPruneArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    if !a.force {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("system prune asks for confirmation and stdin is not a terminal: pass -f (--force) to remove without asking");
        }
        let mut text = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
        if a.volumes {
            text.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        text.push_str(if a.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        text.push_str("  - all build cache\n\nAre you sure you want to continue?");
        if !images::confirm(&text) {
            return Ok(0);
        }
    }
    monitoring::prune(
        root,
        &monitoring::PruneArgs {
            filter: Vec::new(),
            force: true,
        },
    )?;
    let gone = networks::prune_networks(root, &[])?;
    if !gone.is_empty() {
        println!("Deleted Networks:");
        for n in gone {
            println!("{n}");
        }
        println!();
    }
    if a.volumes {
        volumes::prune(
            root,
            &volumes::PruneArgs {
                all: false,
                filter: Vec::new(),
                force: true,
            },
        )?;
    }
    images::prune(
        &images::open_store(root)?,
        &images::PruneArgs {
            all: a.all,
            force: true,
        },
    )?;
    build::prune(
        root,
        &build::BuilderPruneArgs {
            force: true,
            all: true,
        },
    )
}

/// `system reset`: everything the engine root holds, as podman's.
fn system_reset(root: &std::path::Path, force: bool) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    if !force {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("system reset asks for confirmation and stdin is not a terminal: pass -f (--force) to remove everything without asking");
        }
        if !images::confirm(&format!(
            "WARNING! This will remove every container, network, volume, image and the build cache of {}, and take down its bridges and nftables table.\nAre you sure you want to continue?",
            root.display()
        )) {
            return Ok(0);
        }
    }
    let engine = barge_engine::store::Engine::open(root)?;
    for id in engine.ids()? {
        barge_engine::lifecycle::remove(&engine, &id, true, true)
            .map_err(|e| anyhow::anyhow!("remove container {id}: {e}"))?;
    }
    barge_engine::network::reset(root).map_err(|e| anyhow::anyhow!("{e}"))?;
    volumes::prune(
        root,
        &volumes::PruneArgs {
            all: true,
            filter: Vec::new(),
            force: true,
        },
    )?;
    build::prune(
        root,
        &build::BuilderPruneArgs {
            force: true,
            all: true,
        },
    )?;
    images::prune(
        &images::open_store(root)?,
        &images::PruneArgs {
            all: true,
            force: true,
        },
    )
}

fn container_command(root: &std::path::Path, c: &ContainerCommand) -> anyhow::Result<i32> {
    match c {
        ContainerCommand::Run(a) => containers::run(root, a),
        ContainerCommand::Create(a) => containers::create(root, a),
        ContainerCommand::Start(a) => containers::start(root, a),
        ContainerCommand::Stop(a) => containers::stop(root, a),
        ContainerCommand::Restart(a) => containers::restart(root, a),
        ContainerCommand::Kill(a) => containers::kill(root, a),
        ContainerCommand::Pause(a) => containers::pause(root, a, true),
        ContainerCommand::Unpause(a) => containers::pause(root, a, false),
        ContainerCommand::Rm(a) => containers::rm(root, a),
        ContainerCommand::Ls(a) => containers::ps(root, a),
        ContainerCommand::Logs(a) => containers::logs(root, a),
        ContainerCommand::Exec(a) => containers::exec(root, a),
        ContainerCommand::Attach(a) => containers::attach(root, a),
        ContainerCommand::Wait(a) => containers::wait(root, a),
        ContainerCommand::Rename(a) => containers::rename(root, a),
        ContainerCommand::Top(a) => containers::top(root, a),
        ContainerCommand::Inspect(a) => containers::inspect(root, a, true),
        ContainerCommand::Cp(a) => fscmds::cp(root, a),
        ContainerCommand::Diff(a) => fscmds::diff(root, a),
        ContainerCommand::Commit(a) => fscmds::commit(root, a),
        ContainerCommand::Export(a) => fscmds::export(root, a),
        ContainerCommand::Stats(a) => monitoring::stats(root, a),
        ContainerCommand::Events(a) => monitoring::events(root, a),
        ContainerCommand::Prune(a) => monitoring::prune(root, a),
        ContainerCommand::Port(a) => networks::port(root, a),
    }
}
