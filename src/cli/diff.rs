//! `importprobe diff BASE NEW`: compare two recordings module by module.

use super::report::{load_input, write_out, Input};
use crate::analysis::diff::diff;
use crate::analysis::profile::Profile;
use crate::analysis::summary::Summary;
use crate::report::diff::{render, Side};
use crate::UsageError;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe trace --save-events before.txt -- /usr/bin/python3.11 app.py
  importprobe trace --save-events after.txt -- /usr/bin/python3.11 app.py
  importprobe diff before.txt after.txt
  importprobe diff --json old-importtime.log after.txt | jq '.modules[0]'

BASE and NEW can be any recordings `report` reads, of different kinds.
Modules are matched by name: a module's cost in a recording is the sum
over all its imports, in every process and thread (the import counts are
shown when they differ). Sorted by the change in self time, then in
cumulative time. Exit status 0; 1 when a recording is missing events (its
numbers are then too small; said at the top); 2 when an input cannot be
read.";

/// Compare two recordings: per-module and total change in self and
/// cumulative time, modules added and removed, imports that started failing.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct DiffArgs {
    /// The recording to compare against (`-`: stdin).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The recording compared (`-`: stdin).
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// How many changed modules the text lists (0: all).
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub limit: usize,
    /// Print the whole comparison as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// What a recording lacks, for the header of a comparison: each line a
/// reason its numbers may be off.
pub fn caveats(forest: &crate::events::forest::Forest) -> Vec<String> {
    let s = Summary::of(forest, 0);
    let mut out = Vec::new();
    if s.lost_events > 0 {
        out.push(format!("the tracer lost {} event(s): imports are missing", s.lost_events));
    }
    if s.corruption > 0 {
        out.push(format!("{} anomalies of lost or corrupt events (see `importprobe report`)", s.corruption));
    }
    out.extend(forest.warnings.iter().cloned());
    if s.unfinished + s.begun_before_trace > 0 {
        out.push(format!(
            "{} import(s) not seen whole (unfinished or begun before the trace): their times are lower bounds",
            s.unfinished + s.begun_before_trace
        ));
    }
    if !s.blind_spots.is_empty() {
        let names: Vec<String> = s.blind_spots.iter().map(|b| crate::events::escape(&b.module)).collect();
        out.push(format!("imported outside the probes (cost hidden in other imports): {}", names.join(", ")));
    }
    out
}

/// Loads one side; any failure is an unusable input (exit 2).
fn side(path: &std::path::Path) -> anyhow::Result<Input> {
    load_input(Some(path)).map_err(|e| UsageError(format!("{e:#}")).into())
}

/// `importprobe diff`.
pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    if args.base.as_os_str() == "-" && args.new.as_os_str() == "-" {
        return Err(UsageError("BASE and NEW cannot both be stdin".into()).into());
    }
    let (base, new) = (side(&args.base)?, side(&args.new)?);
    let (base_profile, new_profile) = (Profile::of(&base.forest), Profile::of(&new.forest));
    let d = diff(&base_profile, &new_profile);
    let (base_caveats, new_caveats) = (caveats(&base.forest), caveats(&new.forest));
    let text = if args.json {
        let doc = json!({
            "base": {"input": base.name, "caveats": base_caveats},
            "new": {"input": new.name, "caveats": new_caveats},
            "diff": d,
        });
        serde_json::to_string_pretty(&doc)? + "\n"
    } else {
        let colour = args.output.is_none() && crate::report::colour::for_stdout();
        render(
            &d,
            &Side { name: &base.name, warnings: base_caveats },
            &Side { name: &new.name, warnings: new_caveats },
            args.limit,
            colour,
        )
    };
    write_out(args.output.as_deref(), &text)?;
    let damaged = base_profile.damage > 0 || new_profile.damage > 0;
    Ok(if damaged { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
