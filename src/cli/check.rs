//! `importprobe check`: gate a build on recorded runs, or on N traced runs
//! of a command, using the medians ([`crate::analysis::check`]).

use super::report::{load_input, Input};
use crate::analysis::check::{evaluate, Gates};
use crate::analysis::profile::Profile;
use crate::report::check as out;
use crate::UsageError;
use anyhow::Context;
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe check --max-total-ms 150 run1.txt run2.txt run3.txt
  importprobe check --max-ms pandas=80 --forbid matplotlib importtime.log
  importprobe check --baseline main.txt --max-regression 10 --runs 5 -- python3 -c 'import app'
  importprobe check --forbid-blind-spots --allow-blind-spot numexpr --junit gates.xml --runs 3 -- python3 app.py

Inputs are recordings `report` reads (several: several runs of the same
program); with --runs N the command after `--` is traced N times, as
`importprobe trace` does (root and bpftrace needed). Times are medians over
the runs; a module missing from a run counts 0 there. --forbid MODULE also
forbids its submodules, and fails when any run loaded one. Exit status 0:
every gate passed; 1: a gate failed (one line each); 2: an input cannot be
used (unreadable, no imports, lost events) or tracing is impossible.";

/// Fail a build when imports got slow: budgets, a baseline, banned
/// modules, blind spots.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct CheckArgs {
    /// Fail when the median import time exceeds MS milliseconds.
    #[arg(long, value_name = "MS", value_parser = parse_ms)]
    pub max_total_ms: Option<f64>,
    /// Fail when MODULE's median cumulative time exceeds MS milliseconds
    /// (repeatable).
    #[arg(long = "max-ms", value_name = "MODULE=MS", value_parser = parse_module_limit)]
    pub max_ms: Vec<(String, f64)>,
    /// A recording of the reference build (repeatable: several runs, their
    /// median is the baseline). Needs --max-regression.
    #[arg(long, value_name = "FILE", requires = "max_regression")]
    pub baseline: Vec<PathBuf>,
    /// Fail when the median import time exceeds the baseline's by more than
    /// PCT percent.
    #[arg(long, value_name = "PCT", requires = "baseline", value_parser = parse_ms)]
    pub max_regression: Option<f64>,
    /// Fail when MODULE or a submodule of it is imported in any run
    /// (repeatable).
    #[arg(long, value_name = "MODULE")]
    pub forbid: Vec<String>,
    /// Fail when a package was imported outside the probes (probably
    /// importlib.import_module): its cost is hidden in another import.
    #[arg(long)]
    pub forbid_blind_spots: bool,
    /// A package --forbid-blind-spots accepts (repeatable).
    #[arg(long = "allow-blind-spot", value_name = "PACKAGE", requires = "forbid_blind_spots")]
    pub allow_blind_spots: Vec<String>,
    /// Trace the command after `--` this many times.
    #[arg(long, value_name = "N", requires = "command")]
    pub runs: Option<usize>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the verdict as JUnit XML to FILE (one testcase per gate).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Recorded runs (`-`: stdin).
    #[arg(value_name = "INPUT", conflicts_with = "command")]
    pub inputs: Vec<PathBuf>,
    /// The command to trace, after `--` (with --runs).
    #[arg(value_name = "COMMAND", last = true)]
    pub command: Vec<OsString>,
}

/// A limit in milliseconds (or percent): a finite number, not negative.
fn parse_ms(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number of 0 or more")),
    }
}

/// `MODULE=MS`.
fn parse_module_limit(text: &str) -> Result<(String, f64), String> {
    let (module, ms) =
        text.rsplit_once('=').ok_or_else(|| format!("{text:?} is not MODULE=MS (for example json=5)"))?;
    if module.is_empty() {
        return Err(format!("{text:?} names no module (MODULE=MS, for example json=5)"));
    }
    Ok((module.to_owned(), parse_ms(ms)?))
}

/// An input a gate can be trusted on, or why not (exit 2).
fn usable(input: &Input) -> anyhow::Result<Profile> {
    let p = Profile::of(&input.forest);
    if p.imports == 0 {
        return Err(UsageError(format!(
            "{}: no imports recorded (was the program traced, and did it run?)",
            input.name
        ))
        .into());
    }
    if p.damage > 0 {
        let lost = input.forest.lost_events;
        return Err(UsageError(format!(
            "{}: the recording is missing events ({lost} lost, {} anomalies of lost or corrupt events): \
             gating on it would be wrong; record it again (`importprobe report {}` shows what is missing)",
            input.name,
            p.damage - lost,
            input.name
        ))
        .into());
    }
    Ok(p)
}

fn load(path: &Path) -> anyhow::Result<Input> {
    load_input(Some(path)).map_err(|e| UsageError(format!("{e:#}")).into())
}

/// `importprobe check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut gates = Gates {
        max_total_ms: args.max_total_ms,
        max_ms: args.max_ms.clone(),
        baseline: None,
        forbid: args.forbid.clone(),
        forbid_blind_spots: args.forbid_blind_spots,
        allow_blind_spots: args.allow_blind_spots.clone(),
    };
    if gates.is_empty() && args.baseline.is_empty() {
        return Err(UsageError(
            "no gate given: use --max-total-ms, --max-ms, --baseline with --max-regression, --forbid or --forbid-blind-spots"
                .into(),
        )
        .into());
    }
    let mut notes = Vec::new();
    let inputs: Vec<Input> = match (args.inputs.is_empty(), args.command.is_empty()) {
        (false, _) => args.inputs.iter().map(|p| load(p)).collect::<anyhow::Result<_>>()?,
        (true, false) => {
            let n = args.runs.unwrap_or(1);
            if n == 0 {
                return Err(UsageError("--runs must be at least 1".into()).into());
            }
            traced_runs(&args.command, n, &mut notes)?
        }
        (true, true) => {
            return Err(UsageError("nothing to check: give recorded INPUTs, or --runs N -- COMMAND".into()).into())
        }
    };
    let runs: Vec<Profile> = inputs.iter().map(usable).collect::<anyhow::Result<_>>()?;
    if let Some(pct) = args.max_regression {
        let base: Vec<Profile> =
            args.baseline.iter().map(|p| load(p).and_then(|i| usable(&i))).collect::<anyhow::Result<_>>()?;
        gates.baseline = Some((base, pct));
    }
    for input in &inputs {
        let s = crate::analysis::summary::Summary::of(&input.forest, 0);
        if s.unfinished + s.begun_before_trace > 0 {
            notes.push(format!(
                "{}: {} import(s) not seen whole; their times are lower bounds",
                input.name,
                s.unfinished + s.begun_before_trace
            ));
        }
    }
    if runs.iter().any(|r| r.laid_out) {
        notes.push("times from -X importtime logs are laid out from CPython's rounded microseconds".into());
    }
    let verdict = evaluate(&gates, &runs);
    let text = if args.json {
        out::json(&verdict, &notes)
    } else {
        out::text(&verdict, &notes, crate::report::colour::for_stdout())
    };
    super::report::write_out(None, &text)?;
    if let Some(path) = &args.junit {
        let xml = out::junit(&verdict).context("writing JUnit XML")?;
        std::fs::write(path, xml).map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(if verdict.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Traces the command `n` times the way `importprobe trace` does (the
/// import-capture collector, the command held until bpftrace is attached),
/// its output sent to our stderr so stdout holds only the verdict.
#[cfg(target_os = "linux")]
fn traced_runs(command: &[OsString], n: usize, notes: &mut Vec<String>) -> anyhow::Result<Vec<Input>> {
    use super::trace::collect_events;
    use crate::tracer::bpftrace::Bpftrace;
    use crate::tracer::collect::{self, DEFAULT_MAX_IMPORTS};
    use crate::tracer::preflight;
    use crate::tracer::runner::Target;
    use std::os::fd::AsFd;

    let mut problems = preflight::check_environment();
    problems.extend(preflight::check_command(&command[0], None));
    if !problems.is_empty() {
        let why: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(UsageError(format!("cannot trace here: {}", why.join("; "))).into());
    }
    let bpftrace = Bpftrace::locate().map_err(|e| UsageError(e.to_string()))?;
    let target = Target::Command(command.to_vec());
    let shown = command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let mut inputs = Vec::with_capacity(n);
    for i in 1..=n {
        let mut req = collect::request(target.clone(), bpftrace.clone(), DEFAULT_MAX_IMPORTS);
        req.echo_stderr = true;
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().context("duplicating stderr")?;
        req.command_output.stdout = Some(std::fs::File::from(stderr));
        let (forest, outcome) = collect_events(req, None)
            .with_context(|| format!("tracing run {i} of {n}"))
            .map_err(|e| UsageError(format!("{e:#}")))?;
        if let Some(status) = outcome.command.filter(|s| !s.success()) {
            notes.push(format!("run {i}: the traced command exited with {status}"));
        }
        eprintln!("importprobe check: run {i}/{n} traced: {} imports", forest.imports.len());
        inputs.push(Input { name: format!("run {i} of {shown}"), forest });
    }
    Ok(inputs)
}

#[cfg(not(target_os = "linux"))]
fn traced_runs(_: &[OsString], _: usize, _: &mut Vec<String>) -> anyhow::Result<Vec<Input>> {
    Err(UsageError("tracing a command needs Linux and bpftrace; check recorded inputs instead".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_or_say_why() {
        assert_eq!(parse_module_limit("json=5"), Ok(("json".into(), 5.0)));
        assert_eq!(parse_module_limit("a=b=0.5"), Ok(("a=b".into(), 0.5)));
        assert!(parse_module_limit("json").unwrap_err().contains("MODULE=MS"));
        assert!(parse_module_limit("=3").unwrap_err().contains("names no module"));
        assert!(parse_ms("-1").is_err() && parse_ms("nan").is_err() && parse_ms("inf").is_err());
    }
}
