//! (being written)

use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    pub args: Vec<String>,
}

pub fn stats(_root: &Path, _a: &StatsArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    pub args: Vec<String>,
}

pub fn events(_root: &Path, _a: &EventsArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    pub args: Vec<String>,
}

pub fn prune(_root: &Path, _a: &PruneArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}
