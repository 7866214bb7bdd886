//! Reports computed from import events, in the formats the Python ecosystem
//! already reads.

pub mod importtime;
