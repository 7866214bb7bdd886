//! `importprobe trace`: run a bundled (or your own) bpftrace script on a
//! command it starts, or on a running process, and print the report.

use crate::tracer::preflight::{self, Problem};
use crate::tracer::runner::{self, Target, TraceRequest};
use crate::tracer::scripts;
use crate::UsageError;
use clap::Args;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe trace -- /usr/bin/python3.11 -c 'import json'      # import tree of a command
  importprobe trace --script import-slowest --param 5 -- /usr/bin/python3.11 -m json.tool --help
  importprobe trace --script import-failed -- /usr/bin/python3.11 -S app.py
  importprobe trace --pid 1234                                   # a running process; Ctrl-C ends it
  importprobe trace --script import-events -o ev.txt -- /usr/bin/python3.11 app.py
  importprobe report --format importtime ev.txt
  importprobe trace --binary /opt/py/lib/libpython3.11.so.1.0 -- ./embedding-app
  importprobe trace --list

The command is started directly (no shell, arguments as given), held stopped
after the dynamic loader until bpftrace is attached, so even the interpreter's
first import is seen; a libpython it is linked against is found by itself.
Ctrl-C stops tracing and prints the report so far; a --pid target keeps
running. Needs root and bpftrace.";

/// Trace the imports of a command (started by importprobe) or of a running
/// process with a bundled bpftrace script, and print its report.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TraceArgs {
    /// A bundled script (see --list).
    #[arg(short, long, value_name = "NAME", conflicts_with = "script_file")]
    pub script: Option<String>,
    /// Your own bpftrace script instead of a bundled one.
    #[arg(long, value_name = "FILE")]
    pub script_file: Option<PathBuf>,
    /// A parameter for the script, repeatable, e.g. N for import-slowest.
    /// Bundled scripts get them as $2, $3, ... ($1 is --binary); your own
    /// script as $1, $2, ...
    #[arg(long = "param", value_name = "VALUE")]
    pub params: Vec<String>,
    /// The object carrying the probes, when importprobe does not find it by
    /// itself (a libpython in an unusual place). It must be mapped when the
    /// program starts (linked, not dlopened). Bundled scripts get it as $1;
    /// in your own script it replaces `usdt:*:`.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
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
    /// The command to start and trace, with its arguments (passed as they
    /// are, never through a shell).
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// `importprobe trace`.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        return list();
    }
    let (script_name, source, script_args) = script_source(&args)?;
    let target = match (args.pid, args.command.is_empty()) {
        (Some(pid), _) => Target::Pid(pid),
        (None, false) => Target::Command(args.command.clone()),
        (None, true) => {
            return Err(UsageError("nothing to trace: give --pid PID or a command after `--`".into()).into())
        }
    };
    let mut problems = preflight::check_environment();
    if !runner::probes_used(&source).is_empty() {
        let binary = args.binary.as_deref();
        problems.extend(match &target {
            Target::Pid(pid) => preflight::check_pid(*pid, binary),
            Target::Command(argv) => preflight::check_command(&argv[0], binary),
        });
    }
    if !problems.is_empty() {
        print_problems(&problems);
        return Ok(ExitCode::from(2));
    }
    let mut req = TraceRequest::new(script_name, source, target);
    req.args = script_args;
    req.bpftrace = preflight::bpftrace_path().unwrap_or_else(|| "bpftrace".into());
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| UsageError(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let outcome = runner::trace(&req, &mut *out)?;
    if let Some(status) = outcome.command.filter(|s| !s.success()) {
        eprintln!("importprobe: the traced command exited with {status}");
    }
    Ok(ExitCode::SUCCESS)
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
        let source = match &args.binary {
            Some(b) => runner::pin_binary(&source, b),
            None => source,
        };
        return Ok((path.display().to_string(), source, args.params.clone()));
    }
    let name = args.script.as_deref().unwrap_or(scripts::DEFAULT);
    let script = scripts::find(name).ok_or_else(|| {
        UsageError(format!(
            "no bundled script {name:?} (bundled: {}; or --script-file FILE)",
            scripts::names().join(", ")
        ))
    })?;
    let script_args = scripts::positional_args(args.binary.as_deref(), &args.params);
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
