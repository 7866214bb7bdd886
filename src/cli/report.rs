//! `importprobe report`: render any recording (an importprobe-events
//! stream, a capture dump, the simulator's ground truth, a CPython
//! `-X importtime` log) in any report format.

use crate::events::{forest::Forest, source};
use crate::report::{self, render, Format};
use crate::UsageError;
use anyhow::Context;
use clap::Args;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe trace --save-events ev.txt -- /usr/bin/python3.11 -c 'import json'
  python3 -X importtime -c 'import json' 2> importtime.log
  importprobe report ev.txt                          # summary, then the tree
  importprobe report --format top --top 20 importtime.log
  importprobe report --format importtime ev.txt      # exactly like python -X importtime
  importprobe report --format flamegraph ev.txt > imports.svg
  importprobe report --format chrome ev.txt > imports.json   # Perfetto, chrome://tracing
  importprobe report --format speedscope ev.txt > imports.speedscope.json
  importprobe report --format folded ev.txt | flamegraph.pl > imports.svg
  importprobe report --format json ev.txt | jq 'select(.found == false)'

The input kind is detected. Lost events, anomalies (events that do not pair
up) and modules imported outside the probes are said in the tree and top
summaries, and on stderr for the other formats; never guessed, never left
out. Exit status 1 when the recording is missing events, 2 when the input
cannot be read.";

/// Render a recording (a saved trace, ground truth, or an -X importtime log)
/// as a report.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ReportArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Tree)]
    pub format: Format,
    /// How many imports `--format top` lists of each kind.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The recording; stdin when absent or `-`.
    #[arg(value_name = "INPUT")]
    pub file: Option<PathBuf>,
}

/// A recording read and paired, with the name messages call it by.
pub struct Input {
    pub name: String,
    pub forest: Forest,
}

/// Reads any recording (`-` or no path: stdin) into a forest. A file that
/// cannot be read is the user's mistake ([`UsageError`]); one that cannot
/// be parsed is an error naming the input.
pub fn load_input(path: Option<&Path>) -> anyhow::Result<Input> {
    let (name, data) = match path {
        None => ("stdin".to_owned(), read_stdin()?),
        Some(p) if p.as_os_str() == "-" => ("stdin".to_owned(), read_stdin()?),
        Some(p) => (
            p.display().to_string(),
            std::fs::read(p).map_err(|e| UsageError(format!("cannot read {}: {e}", p.display())))?,
        ),
    };
    let rec = source::load(&data).with_context(|| format!("in {name}"))?;
    tracing::info!(origin = ?rec.origin, events = rec.events.len(), "read events");
    Ok(Input { name, forest: Forest::build(&rec) })
}

/// `importprobe report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let input = load_input(args.file.as_deref())?;
    let opts = report::Options { top: args.top, colour: args.output.is_none() && report::colour::for_stdout() };
    let rendered = render(&input.forest, args.format, &opts)?;
    for line in &rendered.notes {
        eprintln!("importprobe: {}: {line}", input.name);
    }
    write_out(args.output.as_deref(), &rendered.text)?;
    Ok(if input.forest.is_corrupt() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Writes text to a file, or to stdout (a closed pipe, as with `| head`,
/// is not an error).
pub fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        return std::fs::write(path, text)
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())).into());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the report"),
        _ => Ok(()),
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).context("reading stdin")?;
    Ok(data)
}
