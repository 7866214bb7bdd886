//! `importprobe probes`: list or check the SystemTap SDT probes of ELF files
//! or of a running process, read from the notes without root and without
//! running anything.
//!
//! Exit status: 0 listed / check passed, 1 check failed, 2 unreadable input
//! (each bad file gets its own `importprobe: ...` line on stderr).

use crate::elf::{self, CheckReport, SdtProbe};
use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  importprobe probes                                   # importprobe's own probes
  importprobe probes /usr/bin/python3.11               # CPython's probes (Debian builds have them)
  importprobe probes --pid \"$(pgrep -n python3)\"       # every object a running process maps
  importprobe probes --check python-import /usr/bin/python3.11
  importprobe probes --json /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0 | jq '.[].name'

Exit status: 0 ok, 1 a --check failed, 2 a file or process could not be read.";

/// List the USDT (SystemTap SDT) probes of ELF executables and shared
/// libraries, or check that they carry CPython's import probes.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ProbesArgs {
    /// ELF executables or shared libraries (default: importprobe itself).
    #[arg(value_name = "PATH", conflicts_with = "pid")]
    pub paths: Vec<PathBuf>,
    /// Look at every ELF object mapped into this running process instead
    /// (e.g. a CPython whose probes live in libpython3.X.so).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Check for a probe set instead of listing; exit 1 if it is not there.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub check: Option<CheckKind>,
    /// Print JSON (an array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Probe sets `--check` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckKind {
    /// `python:import__find__load__{start,done}` with CPython's arguments and
    /// one semaphore per probe name.
    PythonImport,
}

/// The probes of one object.
struct Object {
    path: PathBuf,
    probes: Vec<SdtProbe>,
}

/// A probe with the object it is in, for `--json`.
#[derive(Serialize)]
struct ProbeRow<'a> {
    object: String,
    #[serde(flatten)]
    probe: &'a SdtProbe,
}

/// A check result with the object it is about, for `--json`.
#[derive(Serialize)]
struct CheckRow<'a> {
    object: String,
    check: &'static str,
    #[serde(flatten)]
    report: &'a CheckReport,
}

pub fn run(args: ProbesArgs) -> anyhow::Result<ExitCode> {
    let (objects, unreadable) = match read_objects(&args)? {
        Ok(read) => read,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::stdout().lock();
    let written = match args.check {
        Some(CheckKind::PythonImport) => write_checks(&mut out, &args, &objects),
        None => write_listing(&mut out, &args, &objects).map(|()| true),
    };
    let passed = match written {
        Ok(passed) => passed,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => return Err(e).context("cannot write to stdout"),
    };
    Ok(if unreadable {
        ExitCode::from(2)
    } else if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Reads the probes of the objects asked for. Returns whether some given
/// file could not be read (already reported), or the exit code if nothing
/// can be done at all.
fn read_objects(args: &ProbesArgs) -> anyhow::Result<Result<(Vec<Object>, bool), ExitCode>> {
    if let Some(pid) = args.pid {
        let paths = match elf::mapped_objects(pid) {
            Ok(paths) => paths,
            Err(e) => {
                eprintln!("importprobe: {e}");
                return Ok(Err(ExitCode::from(2)));
            }
        };
        let mut objects = Vec::new();
        for path in paths {
            // A mapped file may be out of reach (another mount namespace,
            // replaced on disk): the process is still worth listing.
            match elf::read_probes(&path) {
                Ok(probes) => objects.push(Object { path, probes }),
                Err(e) => tracing::warn!("pid {pid}: skipping {e}"),
            }
        }
        let with_probes = objects.iter().filter(|o| !o.probes.is_empty()).count();
        tracing::info!("pid {pid} maps {} ELF objects, {with_probes} with SDT probes", objects.len());
        if with_probes == 0 && args.check.is_none() {
            tracing::warn!("no object mapped by pid {pid} has SDT probes");
        }
        return Ok(Ok((objects, false)));
    }
    let paths = if args.paths.is_empty() {
        vec![std::env::current_exe().context("cannot find importprobe's own executable")?]
    } else {
        args.paths.clone()
    };
    let mut objects = Vec::new();
    let mut unreadable = false;
    for path in paths {
        match elf::read_probes(&path) {
            Ok(probes) => {
                if probes.is_empty() && args.check.is_none() {
                    tracing::warn!("{} has no SDT probes", path.display());
                }
                objects.push(Object { path, probes });
            }
            Err(e) => {
                eprintln!("importprobe: {e}");
                unreadable = true;
            }
        }
    }
    Ok(Ok((objects, unreadable)))
}

fn write_listing(out: &mut impl Write, args: &ProbesArgs, objects: &[Object]) -> std::io::Result<()> {
    if args.json {
        let rows: Vec<ProbeRow> = objects
            .iter()
            .flat_map(|o| o.probes.iter().map(|probe| ProbeRow { object: o.path.display().to_string(), probe }))
            .collect();
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        return writeln!(out);
    }
    let show_object = args.pid.is_some() || objects.len() > 1;
    let mut header = vec!["PROVIDER", "NAME", "ADDRESS", "SEMAPHORE", "ARGS"];
    if show_object {
        header.insert(0, "OBJECT");
    }
    let mut rows = Vec::new();
    for object in objects {
        for p in &object.probes {
            let mut row = vec![
                p.provider.clone(),
                p.name.clone(),
                format!("{:#x}", p.address),
                p.semaphore.map_or_else(|| "none".to_owned(), |s| format!("{s:#x}")),
                if p.args.is_empty() {
                    "-".to_owned()
                } else {
                    p.args.iter().map(|a| a.short()).collect::<Vec<_>>().join(", ")
                },
            ];
            if show_object {
                row.insert(0, object.path.display().to_string());
            }
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    write_table(out, &header, &rows)
}

/// Left-aligned columns two spaces apart; the last one is not padded.
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Checks each object (with `--pid`, each mapped object that has `python`
/// probes, or the whole process if none has); true if all pass.
fn write_checks(out: &mut impl Write, args: &ProbesArgs, objects: &[Object]) -> std::io::Result<bool> {
    let mut checked: Vec<(String, CheckReport)> = Vec::new();
    if let Some(pid) = args.pid {
        for o in objects.iter().filter(|o| o.probes.iter().any(|p| p.provider == "python")) {
            checked.push((o.path.display().to_string(), elf::check_python_import(&o.probes)));
        }
        if checked.is_empty() {
            let all: Vec<SdtProbe> = objects.iter().flat_map(|o| o.probes.iter().cloned()).collect();
            checked.push((format!("pid {pid}"), elf::check_python_import(&all)));
        }
    } else {
        for o in objects {
            checked.push((o.path.display().to_string(), elf::check_python_import(&o.probes)));
        }
    }
    let passed = checked.iter().all(|(_, r)| r.ok);
    if args.json {
        let rows: Vec<CheckRow> = checked
            .iter()
            .map(|(object, report)| CheckRow { object: object.clone(), check: "python-import", report })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        writeln!(out)?;
        return Ok(passed);
    }
    for (object, report) in &checked {
        if report.ok {
            writeln!(out, "{object}: python-import ok")?;
        } else {
            writeln!(out, "{object}: python-import FAILED ({} problem(s))", report.problems.len())?;
        }
        for problem in &report.problems {
            writeln!(out, "  problem: {problem}")?;
        }
        for note in &report.notes {
            writeln!(out, "  note: {note}")?;
        }
    }
    Ok(passed)
}
