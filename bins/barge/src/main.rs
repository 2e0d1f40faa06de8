//! barge: the user's CLI, with Docker's verbs, flags and output shapes.
//! Daemonless: every command works on the store directly (file locks make
//! concurrent commands safe).
//!
//! Today: the image commands: import, save, load, images, tag, rmi, image
//! inspect, history, image mount, image prune, system df, system check.

mod format;
mod human;
mod images;

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
    /// Manage Barge
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ListArgs),
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
    /// Unmount an image mounted with `image mount`
    #[command(alias = "umount")]
    Unmount { image: String },
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show disk usage
    Df,
    /// Verify every blob's digest and every image's references
    Check,
}

fn main() {
    let cli = Cli::parse();
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    let store = || images::open_store(&cli.root);
    match &cli.command {
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
        Command::Inspect(a)
        | Command::Image {
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
        Command::System {
            command: SystemCommand::Df,
        } => images::system_df(&store()?),
        Command::System {
            command: SystemCommand::Check,
        } => images::system_check(&store()?),
    }
}
