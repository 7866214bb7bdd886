//! `importprobe report`: PLACEHOLDER, replaced by its own work package.

use clap::Args;
use std::process::ExitCode;

/// (not implemented yet)
#[derive(Debug, Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`importprobe report` is not implemented yet")
}
