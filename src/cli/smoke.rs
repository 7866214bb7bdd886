//! `importprobe smoke`: PLACEHOLDER, replaced by its own work package.

use clap::Args;
use std::process::ExitCode;

/// (not implemented yet)
#[derive(Debug, Args)]
pub struct SmokeArgs {}

pub fn run(_args: SmokeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`importprobe smoke` is not implemented yet")
}
