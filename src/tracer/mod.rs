//! Tracing real processes with bpftrace: the bundled scripts, the checks
//! before tracing, and the runner that attaches without missing an event.

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

pub use preflight::{bpftrace_version, check_environment, Problem, ProblemKind};
pub use runner::{trace, Target, TraceError, TraceOutcome, TraceRequest};
