//! Reading USDT probes out of ELF files: SystemTap SDT notes.
//!
//! This is what `readelf -n` shows under `NT_STAPSDT`, decoded into typed
//! records, so importprobe can list probes, check that an object carries
//! CPython's import probes, and find its own semaphores at run time.

pub mod check;
pub mod process;
pub mod sdt;

pub use check::{check_python_import, CheckReport};
pub use process::mapped_objects;
pub use sdt::{read_probes, ArgSpec, ElfError, SdtProbe};
