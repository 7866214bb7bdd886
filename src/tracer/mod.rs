//! Tracing real processes with bpftrace: which bpftrace and its
//! conventions, the checks before tracing, launching targets stopped,
//! following a process tree, the one runner, the default collection, and
//! the bundled scripts.

pub mod bpftrace;
pub mod collect;
pub mod dtrace;
pub mod follow;
pub mod follow_script;
pub mod interrupt;
pub mod launch;
pub mod preflight;
pub mod process;
pub mod runner;
pub mod script_file;
pub mod scripts;
pub mod semaphores;
pub mod simulated;

pub use preflight::{check_environment, Problem, ProblemKind};
pub use runner::{trace, Target, TraceError, TraceOutcome, TraceRequest};
