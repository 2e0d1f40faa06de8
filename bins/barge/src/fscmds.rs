//! (being written)

use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct CpArgs {
    pub args: Vec<String>,
}

pub fn cp(_root: &Path, _a: &CpArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    pub args: Vec<String>,
}

pub fn diff(_root: &Path, _a: &DiffArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    pub args: Vec<String>,
}

pub fn commit(_root: &Path, _a: &CommitArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    pub args: Vec<String>,
}

pub fn export(_root: &Path, _a: &ExportArgs) -> anyhow::Result<i32> {
    anyhow::bail!("being written")
}
