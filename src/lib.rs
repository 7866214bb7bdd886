//! importprobe: trace Python module imports through CPython's USDT probes.
//!
//! The pipeline, one module each:
//!
//! - [`workload`]: the module graph a simulated program imports (manifest,
//!   built-in scenarios, the demo application, the random generator);
//! - [`simulator`]: CPython's import algorithm on real threads, firing the
//!   `python:import__find__load__{start,done}` probes and recording ground truth;
//! - `tracer`: running bpftrace with the bundled `scripts/` on a command or a
//!   pid (preflight checks, launching targets stopped, Ctrl-C); Linux only;
//! - [`events`]: the event model: every source read into one recording,
//!   paired into one import forest;
//! - [`analysis`]: what reports, `diff` and `check` compute from forests
//!   (summaries, per-module costs, medians, diffs, gates);
//! - [`report`]: reports rendered from the forest (tree, top, folded stacks,
//!   flame graph, Chrome trace, speedscope, JSON...), diffs and checks;
//! - [`elf`]: reading SDT probe notes out of any ELF file;
//! - `smoke`: `importprobe smoke`, the end-to-end check that tracing works here; Linux only;
//! - [`cli`]: the `importprobe` command line.

// On DTrace platforms the probes come from the D provider definition; the
// `usdt` crate wants this at the crate root.
#[cfg(all(feature = "probes", not(target_os = "linux")))]
usdt::dtrace_provider!("probes/python.d");

pub mod analysis;
pub mod cli;
pub mod elf;
pub mod events;
pub mod report;
pub mod simulator;
// bpftrace, /proc and ptrace: the tracer and the smoke test are Linux-only
// (on DTrace systems the scripts/*.d run under dtrace directly).
#[cfg(target_os = "linux")]
pub mod smoke;
#[doc(hidden)]
#[cfg(target_os = "linux")]
pub mod testing;
#[cfg(target_os = "linux")]
pub mod tracer;
pub mod workload;

/// A mistake of the user's (bad flag value, bad manifest, missing file):
/// reported in one line with exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
