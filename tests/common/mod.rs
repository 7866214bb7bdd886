//! Helpers shared by the integration tests (each test crate uses a part).
#![allow(dead_code, unused_imports)]

pub mod elf;
pub mod tracing;

pub use self::elf::*;
pub use self::tracing::*;
