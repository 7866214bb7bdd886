//! `importprobe probes`: PLACEHOLDER, replaced by its own work package.

use clap::Args;
use std::process::ExitCode;

/// (not implemented yet)
#[derive(Debug, Args)]
pub struct ProbesArgs {}

pub fn run(_args: ProbesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`importprobe probes` is not implemented yet")
}
