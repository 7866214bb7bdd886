//! Tracing real processes with bpftrace: which bpftrace and its
//! conventions, the checks before tracing, launching targets stopped, the
//! one runner, and the bundled scripts.

pub mod bpftrace;
pub mod collect;
pub mod dtrace;
pub mod interrupt;
pub mod launch;
pub mod preflight;
pub mod process;
pub mod runner;
pub mod script_file;
pub mod scripts;
pub mod simulated;

pub use preflight::{check_environment, Problem, ProblemKind};
pub use runner::{trace, Target, TraceError, TraceOutcome, TraceRequest};
