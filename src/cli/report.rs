//! `importprobe report`: render an import-events stream or a ground-truth
//! file as an import tree, CPython's `-X importtime` lines, folded stacks,
//! JSON lines or a Chrome trace.

use crate::events::{forest::Forest, source};
use crate::report::{render, Format};
use crate::UsageError;
use anyhow::Context;
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe trace --script import-events -o ev.txt -- /usr/bin/python3.11 -c 'import json'
  importprobe report ev.txt                          # indented tree with times
  importprobe report --format importtime ev.txt      # exactly like python -X importtime
  importprobe report --format folded ev.txt | flamegraph.pl > imports.svg
  importprobe report --format json ev.txt | jq 'select(.found == false)'
  importprobe report --format chrome ev.txt > imports.json   # chrome://tracing, Perfetto
  importprobe run --workload refpkg --truth t.jsonl && importprobe report --format importtime t.jsonl

Input is detected: an importprobe-events v1 stream, or JSON lines from
`importprobe run --truth`. Events that do not pair up (lost or corrupt) are
reported on stderr and left out, never guessed; exit status 1 then.";

/// Render recorded import events (a stream from the import-events script,
/// or a ground-truth file) as a report.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ReportArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Tree)]
    pub format: Format,
    /// The events file; stdin when absent or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `importprobe report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let (name, data) = match args.file.as_deref() {
        None => ("stdin".to_owned(), read_stdin()?),
        Some(p) if p.as_os_str() == "-" => ("stdin".to_owned(), read_stdin()?),
        Some(p) => (
            p.display().to_string(),
            std::fs::read(p).map_err(|e| UsageError(format!("cannot read {}: {e}", p.display())))?,
        ),
    };
    let rec = source::load(&data).with_context(|| format!("in {name}"))?;
    tracing::info!(origin = ?rec.origin, events = rec.events.len(), "read events");
    let forest = Forest::build(&rec);
    for line in forest.diagnostics() {
        eprintln!("importprobe: {name}: {line}");
    }
    let text = render(&forest, args.format);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e).context("writing the report"),
        _ => {}
    }
    Ok(if forest.is_corrupt() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).context("reading stdin")?;
    Ok(data)
}
