//! Reports computed from import events, in the formats the Python ecosystem
//! already reads. [`tree`] pairs the events into imports; every other
//! module renders one format.

pub mod chrome;
pub mod folded;
pub mod importtime;
pub mod input;
pub mod json;
pub mod outline;
pub mod tree;
