//! `importprobe trace`: PLACEHOLDER, replaced by its own work package.

use clap::Args;
use std::process::ExitCode;

/// (not implemented yet)
#[derive(Debug, Args)]
pub struct TraceArgs {}

pub fn run(_args: TraceArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`importprobe trace` is not implemented yet")
}
