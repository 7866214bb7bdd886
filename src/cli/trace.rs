//! `importprobe trace`: trace a command it starts, or a running process.
//!
//! By default every probe firing is kept in kernel maps by the bundled
//! `import-capture` script (one map update per event, printed at the end:
//! the cheapest collection bpftrace allows), read into the event model and
//! rendered here, so module names can never break the output. `--script`
//! runs a bundled script instead and prints what it prints.

use crate::events::forest::Forest;
use crate::events::stream;
use crate::report::{self, Format};
use crate::tracer::bpftrace::Bpftrace;
use crate::tracer::collect::{self, DEFAULT_MAX_IMPORTS};
use crate::tracer::preflight::{self, Problem};
use crate::tracer::runner::{self, Target, TraceOutcome, TraceRequest};
use crate::tracer::scripts;
use crate::UsageError;
use anyhow::Context;
use clap::Args;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe trace -- /usr/bin/python3.11 -c 'import json'      # import tree of a command
  importprobe trace --format chrome -o imports.json -- /usr/bin/python3.11 app.py
  importprobe trace --save-events ev.txt -- /usr/bin/python3.11 app.py
  importprobe trace --pid 1234                                   # a running process; Ctrl-C ends it
  importprobe trace --follow-children -- /usr/bin/python3.11 app.py   # and every process it starts
  importprobe trace --script import-slowest --param 5 -- /usr/bin/python3.11 -m json.tool --help
  importprobe trace --binary /opt/py/lib/libpython3.11.so.1.0 -- ./embedding-app
  importprobe trace --list

The command follows `--`. It is started directly (no shell, arguments as
given), held stopped after the dynamic loader until bpftrace is attached, so
even the interpreter's first import is seen; a libpython it is linked
against is found by itself. Ctrl-C stops tracing and prints the report so
far; a --pid target keeps running. Needs root and bpftrace.";

/// Trace the imports of a command (started by importprobe) or of a running
/// process, and print the import tree (or any report format).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TraceArgs {
    /// Run a bundled script (see --list) and print its own output, instead
    /// of collecting events and rendering a report.
    #[arg(short, long, value_name = "NAME", conflicts_with_all = ["script_file", "format", "save_events"])]
    pub script: Option<String>,
    /// Run your own bpftrace script and print its output.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["format", "save_events"])]
    pub script_file: Option<PathBuf>,
    /// A parameter for the script, repeatable, e.g. N for import-slowest.
    /// Bundled scripts get them as $2, $3, ... ($1 is --binary); your own
    /// script as $1, $2, ...
    #[arg(long = "param", value_name = "VALUE")]
    pub params: Vec<String>,
    /// The report to render from the collected events.
    #[arg(short, long, value_enum, default_value_t = Format::Tree)]
    pub format: Format,
    /// Also keep the raw events (an importprobe-events stream) in FILE,
    /// for `importprobe report` later.
    #[arg(long, value_name = "FILE")]
    pub save_events: Option<PathBuf>,
    /// How many imports the kernel maps can hold, for the collection and
    /// for a bundled script; the collection reports more as dropped (a
    /// script only on bpftrace 0.24+, older ones drop them silently).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_IMPORTS)]
    pub max_imports: usize,
    /// The object carrying the probes, when importprobe does not find it by
    /// itself (a libpython in an unusual place). It must be mapped when the
    /// program starts (linked, not dlopened). Bundled scripts get it as $1;
    /// in your own script it replaces `usdt:*:`. With --follow-children,
    /// repeatable: every interpreter the tree may run.
    #[arg(long, value_name = "PATH")]
    pub binary: Vec<PathBuf>,
    /// Also trace every process that descends from the command (or pid):
    /// forks, fork-based pools, fork+exec, children of children; one import
    /// tree per process. No process outside the tree is traced.
    #[arg(long)]
    pub follow_children: bool,
    /// Trace this running process (it keeps running afterwards).
    #[arg(short, long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Write the report to FILE instead of stdout (keeps the traced
    /// program's own output out of it).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// List the bundled scripts and exit.
    #[arg(long, exclusive = true)]
    pub list: bool,
    /// The command to start and trace, with its arguments, after `--`
    /// (passed as they are, never through a shell).
    #[arg(value_name = "COMMAND", last = true)]
    pub command: Vec<OsString>,
}

/// `importprobe trace`.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        return list();
    }
    if args.max_imports == 0 {
        return Err(UsageError("--max-imports must be at least 1".into()).into());
    }
    let target = match (args.pid, args.command.is_empty()) {
        (Some(pid), _) => Target::Pid(pid),
        (None, false) => Target::Command(args.command.clone()),
        (None, true) => {
            return Err(UsageError("nothing to trace: give --pid PID or a command after `--`".into()).into())
        }
    };
    if args.binary.len() > 1 && !args.follow_children {
        return Err(UsageError("--binary can be given several times only with --follow-children".into()).into());
    }
    let collecting = args.script.is_none() && args.script_file.is_none();
    let (script_name, source, script_args) = script_source(&args)?;
    let mut problems = preflight::check_environment();
    if !runner::probes_used(&source).is_empty() {
        let binary = args.binary.first().map(PathBuf::as_path);
        problems.extend(match &target {
            Target::Pid(pid) => preflight::check_pid(*pid, binary),
            Target::Command(argv) => preflight::check_command(&argv[0], binary),
        });
    }
    if !problems.is_empty() {
        print_problems(&problems);
        return Ok(ExitCode::from(2));
    }
    let bpftrace = Bpftrace::locate().map_err(|e| UsageError(e.to_string()))?;
    let objects = preflight::probe_objects(&target, &args.binary);
    let mut req = if collecting {
        collect::request(target, bpftrace, args.max_imports)
    } else {
        let mut req = TraceRequest::new(script_name, source, target, bpftrace);
        req.args = script_args;
        // Scripts keep one map entry per import too: bpftrace's default of
        // 4096 keys would drop the rest (silently before 0.24).
        req.max_map_keys = Some(args.max_imports);
        req
    };
    req.echo_stderr = true;
    req.forward_signals = true;
    if args.follow_children {
        req.follow_children = true;
        req.objects = objects;
    }
    let mut out = open_output(args.output.as_deref())?;
    if !collecting {
        let outcome = runner::trace(req, &mut *out)?;
        report_command(&outcome);
        return Ok(ExitCode::SUCCESS);
    }
    let (forest, outcome) = collect_events(req, args.save_events.as_deref())?;
    let opts = report::Options { colour: args.output.is_none() && report::colour::for_stdout(), ..Default::default() };
    let rendered = report::render(&forest, args.format, &opts)?;
    write_report(&mut *out, &rendered.text)?;
    for line in rendered.notes {
        eprintln!("importprobe: {line}");
    }
    report_command(&outcome);
    Ok(ExitCode::SUCCESS)
}

/// Collects with the default collector, keeps the raw events if asked,
/// and pairs them.
pub fn collect_events(req: TraceRequest, save: Option<&Path>) -> anyhow::Result<(Forest, TraceOutcome)> {
    let (rec, outcome) = collect::collect(req)?;
    if let Some(path) = save {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| UsageError(format!("cannot create {}: {e}", path.display())))?,
        );
        stream::write(&rec, &mut f).and_then(|_| f.flush()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((Forest::build(&rec), outcome))
}

fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| UsageError(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdout()),
    })
}

/// Writes a report; a closed pipe (`| head`) is not an error.
pub fn write_report(out: &mut dyn Write, text: &str) -> anyhow::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the report"),
        _ => Ok(()),
    }
}

fn report_command(outcome: &TraceOutcome) {
    if let Some(status) = outcome.command.filter(|s| !s.success()) {
        eprintln!("importprobe: the traced command exited with {status}");
    }
}

/// One line per problem on stderr, each with its fix.
pub fn print_problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("importprobe: {p}");
    }
}

/// The script's name, its source and its positional parameters.
fn script_source(args: &TraceArgs) -> anyhow::Result<(String, String, Vec<String>)> {
    if let Some(path) = &args.script_file {
        let source = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("cannot read script {}: {e}", path.display())))?;
        let source = match args.binary.first() {
            Some(b) => runner::pin_binary(&source, b),
            None => source,
        };
        return Ok((path.display().to_string(), source, args.params.clone()));
    }
    let name = args.script.as_deref().unwrap_or(scripts::COLLECTOR);
    let script = scripts::find(name).ok_or_else(|| {
        UsageError(format!(
            "no bundled script {name:?} (bundled: {}; or --script-file FILE)",
            scripts::names().join(", ")
        ))
    })?;
    let script_args = script.positional_args(args.binary.first().map(PathBuf::as_path), &args.params);
    Ok((script.name.to_owned(), script.bpftrace.to_owned(), script_args))
}

fn list() -> anyhow::Result<ExitCode> {
    let width = scripts::BUNDLED.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for s in scripts::BUNDLED {
        writeln!(out, "{:width$}  {}", s.name, s.summary)?;
    }
    Ok(ExitCode::SUCCESS)
}
