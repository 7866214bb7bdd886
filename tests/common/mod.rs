//! Helpers shared by the integration tests (each test crate uses a part):
//! the binary under test, the interpreters, scratch directories; ELF note
//! surgery (`elf`); tracing the simulator and CPython with every tracer of
//! the compatibility matrix, and the ground truth as import pairs
//! (`tracing`).
#![allow(dead_code, unused_imports)]

pub mod elf;
pub mod outputs;
pub mod tracing;

pub use self::elf::*;
pub use self::tracing::*;

use std::path::PathBuf;
use std::process::Output;

/// Debian 12's CPython 3.11, built with the probes: the ELF tests check
/// its notes byte for byte (`readelf -n`).
pub const PYTHON: &str = importprobe::testing::DEFAULT_PYTHON;
pub const LIBPYTHON: &str = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0";

pub use importprobe::testing::python;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_importprobe"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("importprobe-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
