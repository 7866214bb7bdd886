//! SystemTap SDT v3 notes (`.note.stapsdt`, type 3, owner `stapsdt`).
//!
//! Each note holds the probe address, the link-time address of
//! `.stapsdt.base`, the semaphore address (0 when there is none), then the
//! NUL-terminated provider, name and argument spec. The base lets tools
//! correct addresses in prelinked objects: the real probe address is
//! `pc + (actual .stapsdt.base address - recorded base)`.

use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::{ElfFile, FileHeader, SectionHeader};
use object::{Endianness, FileKind, Object, ObjectSection, ObjectSegment};
use serde::Serialize;
use std::path::Path;
use thiserror::Error;

/// Note type of SystemTap SDT v3 probe descriptors.
const NT_STAPSDT: u32 = 3;

/// One probe descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SdtProbe {
    pub provider: String,
    pub name: String,
    /// Probe address, corrected by `.stapsdt.base` as SystemTap does.
    pub address: u64,
    /// The raw probe address recorded in the note (readelf's `Location`);
    /// equal to `address` unless the object was prelinked.
    pub pc: u64,
    /// The `.stapsdt.base` address recorded in the note.
    pub base: u64,
    /// Link-time address of the semaphore, if the probe has one.
    pub semaphore: Option<u64>,
    /// File offset of the semaphore (what the kernel's `ref_ctr_offset` wants).
    pub semaphore_offset: Option<u64>,
    /// The raw argument string, e.g. `8@%rax -4@%edx`.
    pub args_raw: String,
    pub args: Vec<ArgSpec>,
}

/// One decoded argument: `-4@%edx` is a signed 4-byte value in `%edx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgSpec {
    /// Size in bytes; `None` for old-style specs without a size.
    pub size: Option<u8>,
    pub signed: bool,
    /// Where the value lives: a register, a memory operand or a constant.
    pub location: String,
}

impl ArgSpec {
    /// The C-ish type of the value: `u64`, `s32`, or `untyped` for old
    /// specs that carry no size (tools then assume a machine word).
    pub fn type_name(&self) -> String {
        match self.size {
            Some(size) => format!("{}{}", if self.signed { 's' } else { 'u' }, u32::from(size) * 8),
            None => "untyped".to_owned(),
        }
    }

    /// Compact form for tables: `u64 %rax`.
    pub fn short(&self) -> String {
        format!("{} {}", self.type_name(), self.location)
    }
}

impl std::fmt::Display for ArgSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.size {
            Some(size) => {
                write!(f, "{}{} bytes in {}", if self.signed { "signed " } else { "unsigned " }, size, self.location)
            }
            None => write!(f, "untyped in {}", self.location),
        }
    }
}

/// Why a file's probes could not be read.
#[derive(Debug, Error)]
pub enum ElfError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is a directory, not an ELF file")]
    Directory { path: String },
    #[error("{path} is not an ELF file")]
    NotElf { path: String },
    #[error("{path}: malformed ELF: {reason}")]
    Malformed { path: String, reason: String },
    #[error("{path}: malformed SDT note #{index}: {reason}")]
    BadNote { path: String, index: usize, reason: String },
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: u32 },
}

/// Reads every SDT probe of the ELF file at `path`.
pub fn read_probes(path: &Path) -> Result<Vec<SdtProbe>, ElfError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(ElfError::Directory { path: shown });
    }
    let data = std::fs::read(path).map_err(|source| ElfError::Io { path: shown.clone(), source })?;
    parse_probes(&data).map_err(|e| e.with_path(&shown))
}

/// An [`ElfError`] before the path is known.
#[derive(Debug)]
pub enum ParseError {
    NotElf,
    Malformed(String),
    BadNote { index: usize, reason: String },
}

impl ParseError {
    fn with_path(self, path: &str) -> ElfError {
        let path = path.to_owned();
        match self {
            ParseError::NotElf => ElfError::NotElf { path },
            ParseError::Malformed(reason) => ElfError::Malformed { path, reason },
            ParseError::BadNote { index, reason } => ElfError::BadNote { path, index, reason },
        }
    }
}

/// Parses the SDT probes of an in-memory ELF image. Never panics, whatever
/// the bytes.
pub fn parse_probes(data: &[u8]) -> Result<Vec<SdtProbe>, ParseError> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => parse_elf::<FileHeader64<Endianness>>(data),
        Ok(FileKind::Elf32) => parse_elf::<FileHeader32<Endianness>>(data),
        _ => Err(ParseError::NotElf),
    }
}

fn parse_elf<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Vec<SdtProbe>, ParseError> {
    let file = ElfFile::<H>::parse(data).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let endian = file.endian();
    let word = if file.is_64() { 8 } else { 4 };
    let actual_base = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let segments: Vec<(u64, u64, u64)> = file.segments().map(|s| (s.address(), s.size(), s.file_range().0)).collect();
    let vaddr_to_offset = |addr: u64| {
        segments
            .iter()
            .find(|(va, size, _)| addr >= *va && addr < va.saturating_add(*size))
            .and_then(|(va, _, off)| (addr - va).checked_add(*off))
    };
    let mut probes = Vec::new();
    let sections = file.elf_section_table();
    let mut index = 0;
    for section in sections.iter() {
        let notes = section.notes(endian, data).map_err(|e| ParseError::Malformed(format!("note section: {e}")))?;
        let Some(mut notes) = notes else { continue };
        loop {
            let note = match notes.next() {
                Ok(Some(note)) => note,
                Ok(None) => break,
                Err(e) => return Err(ParseError::BadNote { index, reason: e.to_string() }),
            };
            if note.name() != b"stapsdt" || note.n_type(endian) != NT_STAPSDT {
                continue;
            }
            let mut probe =
                decode_desc(note.desc(), word, endian).map_err(|reason| ParseError::BadNote { index, reason })?;
            if let Some(actual) = actual_base {
                if probe.base != 0 {
                    probe.address = probe.address.wrapping_add(actual.wrapping_sub(probe.base));
                }
            }
            probe.semaphore_offset = probe.semaphore.and_then(vaddr_to_offset);
            probes.push(probe);
            index += 1;
        }
    }
    Ok(probes)
}

fn decode_desc(desc: &[u8], word: usize, endian: Endianness) -> Result<SdtProbe, String> {
    if desc.len() < 3 * word {
        return Err(format!("descriptor is {} bytes, shorter than its three addresses", desc.len()));
    }
    let read = |i: usize| {
        let b = &desc[i * word..(i + 1) * word];
        match (word, endian) {
            (8, Endianness::Little) => u64::from_le_bytes(b.try_into().unwrap()),
            (8, Endianness::Big) => u64::from_be_bytes(b.try_into().unwrap()),
            (_, Endianness::Little) => u32::from_le_bytes(b.try_into().unwrap()) as u64,
            (_, Endianness::Big) => u32::from_be_bytes(b.try_into().unwrap()) as u64,
        }
    };
    let (pc, base, sem) = (read(0), read(1), read(2));
    if desc[3 * word..].iter().filter(|&&b| b == 0).nth(2).is_none() {
        return Err("provider, name and arguments are not all NUL-terminated".into());
    }
    let mut strings = desc[3 * word..].split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
    // Three NULs were counted above, so there are at least three pieces.
    let (provider, name, args_raw) =
        (strings.next().unwrap_or_default(), strings.next().unwrap_or_default(), strings.next().unwrap_or_default());
    if provider.is_empty() || name.is_empty() {
        return Err("empty provider or probe name".into());
    }
    let args = parse_args(&args_raw)?;
    Ok(SdtProbe {
        provider,
        name,
        address: pc,
        pc,
        base,
        semaphore: (sem != 0).then_some(sem),
        semaphore_offset: None,
        args_raw,
        args,
    })
}

/// Decodes an SDT argument string (`8@%rax -4@%edx`, `-4@-20(%rbp)`, `%rdi`).
pub fn parse_args(raw: &str) -> Result<Vec<ArgSpec>, String> {
    raw.split_whitespace()
        .map(|arg| {
            let Some((size, location)) = arg.split_once('@') else {
                return Ok(ArgSpec { size: None, signed: false, location: arg.to_owned() });
            };
            let (signed, digits) = match size.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, size),
            };
            let size: u8 = digits.parse().map_err(|_| format!("bad argument size in {arg:?}"))?;
            if ![1, 2, 4, 8].contains(&size) || location.is_empty() {
                return Err(format!("bad argument {arg:?}"));
            }
            Ok(ArgSpec { size: Some(size), signed, location: location.to_owned() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_cpython_argument_specs() {
        let args = parse_args("8@%rax -4@%edx").unwrap();
        assert_eq!(args[0], ArgSpec { size: Some(8), signed: false, location: "%rax".into() });
        assert_eq!(args[1], ArgSpec { size: Some(4), signed: true, location: "%edx".into() });
        assert_eq!(parse_args("-4@-20(%rbp) %rdi").unwrap()[1].size, None);
        assert!(parse_args("3@%rax").is_err());
        assert!(parse_args("x@%rax").is_err());
    }

    #[test]
    fn garbage_is_not_elf() {
        assert!(matches!(parse_probes(b"hello"), Err(ParseError::NotElf)));
        assert!(matches!(parse_probes(b""), Err(ParseError::NotElf)));
    }

    #[test]
    fn truncated_elf_is_an_error_not_a_panic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for len in [4, 16, 63, 64, 200, 4096] {
            let _ = parse_probes(&me[..len.min(me.len())]);
        }
    }
}
