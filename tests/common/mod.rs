//! Helpers shared by the ELF/probes integration tests: the binary under
//! test, the real CPython files, and surgery on `.note.stapsdt`.
#![allow(dead_code)]

pub mod tracing;

use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PYTHON: &str = "/usr/bin/python3.11";
pub const LIBPYTHON: &str = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_importprobe"))
}

/// Runs `importprobe probes ARGS...`.
pub fn probes(args: &[&str]) -> Output {
    Command::new(bin()).arg("probes").args(args).output().expect("cannot run importprobe")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A real CPython file, or `None` with the reason printed (the test then
/// skips).
pub fn python_file(path: &str) -> Option<PathBuf> {
    if Path::new(path).is_file() {
        Some(PathBuf::from(path))
    } else {
        eprintln!("SKIP: {path} is not installed");
        None
    }
}

/// File offset range of `.note.stapsdt` in an ELF image.
pub fn stapsdt_range(data: &[u8]) -> std::ops::Range<usize> {
    let file = object::File::parse(data).expect("test input is ELF");
    let section = file.section_by_name(".note.stapsdt").expect("test input has .note.stapsdt");
    let (offset, size) = section.file_range().expect("note section is in the file");
    offset as usize..(offset + size) as usize
}

/// One note inside `.note.stapsdt`, as file offsets.
#[derive(Debug, Clone, Copy)]
pub struct NoteAt {
    /// Offset of the 12-byte note header (namesz, descsz, type).
    pub header: usize,
    /// Offset and length of the descriptor.
    pub desc: usize,
    pub desc_len: usize,
}

/// Walks the notes of `.note.stapsdt` by hand (little-endian, 4-byte
/// alignment), independently of the code under test.
pub fn notes(data: &[u8]) -> Vec<NoteAt> {
    let range = stapsdt_range(data);
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let align = |n: usize| (n + 3) & !3;
    let mut at = range.start;
    let mut found = Vec::new();
    while at + 12 <= range.end {
        let (namesz, descsz) = (word(at), word(at + 4));
        let desc = at + 12 + align(namesz);
        found.push(NoteAt { header: at, desc, desc_len: descsz });
        at = desc + align(descsz);
    }
    found
}

/// The descriptor's addresses and strings: (pc, base, semaphore, [provider, name, args]).
pub fn decode(data: &[u8], note: NoteAt) -> (u64, u64, u64, Vec<String>) {
    let d = &data[note.desc..note.desc + note.desc_len];
    let u = |i: usize| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap());
    let strings = d[24..].split(|&b| b == 0).take(3).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
    (u(0), u(1), u(2), strings)
}

/// Rewrites a note's descriptor in place, keeping its size: addresses,
/// then provider, name and args NUL-terminated, then NUL padding.
pub fn rewrite(data: &mut [u8], note: NoteAt, pc: u64, base: u64, sem: u64, strings: [&str; 3]) {
    let mut desc = Vec::new();
    for v in [pc, base, sem] {
        desc.extend_from_slice(&v.to_le_bytes());
    }
    for s in strings {
        desc.extend_from_slice(s.as_bytes());
        desc.push(0);
    }
    assert!(desc.len() <= note.desc_len, "new descriptor does not fit");
    desc.resize(note.desc_len, 0);
    data[note.desc..note.desc + note.desc_len].copy_from_slice(&desc);
}

/// Replaces the only occurrence of `from` inside `.note.stapsdt` by `to`
/// (same length).
pub fn replace_in_notes(data: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let range = stapsdt_range(data);
    let hits: Vec<usize> =
        data[range.clone()].windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    assert_eq!(hits.len(), 1, "{:?} occurs {} times in the notes", String::from_utf8_lossy(from), hits.len());
    let at = range.start + hits[0];
    data[at..at + to.len()].copy_from_slice(to);
}

/// Writes `data` as an executable file in `dir`.
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// The note for probe `name` and its index among the notes (the order
/// differs between debug and release builds).
pub fn note_named(data: &[u8], name: &str) -> (usize, NoteAt) {
    notes(data)
        .into_iter()
        .enumerate()
        .find(|(_, n)| decode(data, *n).3.get(1).map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no note for {name}"))
}
