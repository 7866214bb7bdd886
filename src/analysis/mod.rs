//! What the reports, `diff` and `check` compute from import forests, kept
//! apart from how it is written out ([`crate::report`]).
//!
//! - [`summary`]: one recording at a glance (totals per process, counts,
//!   the slowest imports, what the recording lacks);
//! - [`profile`]: the cost of each module, the unit runs are compared in;
//! - [`median`]: several runs of one program reduced to one profile;
//! - [`diff`]: two profiles compared module by module;
//! - [`check`]: gates a build fails on;
//! - [`duration`]: times written for people.

pub mod check;
pub mod diff;
pub mod duration;
pub mod median;
pub mod profile;
pub mod summary;
