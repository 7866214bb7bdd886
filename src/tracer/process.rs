//! CPython's import probes as a running process sees them: which mapped
//! objects carry them, and whether a tracer has raised their semaphores.
//!
//! The semaphores are the reliable sign that a tracer is attached: the kernel
//! raises them when it installs a uprobe with a `ref_ctr_offset`, so reading
//! them from `/proc/PID/mem` tells exactly when no event can be missed any
//! more, whatever the tracer prints.

use crate::elf::process::{parse_maps, FileMapping};
use crate::elf::SdtProbe;
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The probe names importprobe traces (Linux SDT spelling).
pub const IMPORT_PROBES: [&str; 2] = ["import__find__load__start", "import__find__load__done"];

/// True for `python:import__find__load__{start,done}`.
pub fn is_import_probe(p: &SdtProbe) -> bool {
    p.provider == "python" && IMPORT_PROBES.contains(&p.name.as_str())
}

/// The file-backed mappings of a process (files deleted since they were
/// mapped are left out: their probes cannot be read any more).
fn mappings(pid: u32) -> std::io::Result<Vec<FileMapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(parse_maps(&text).into_iter().filter(|m| !m.path.ends_with(" (deleted)")).collect())
}

/// Where one import probe shows in a process: its semaphore and its call
/// sites (a uprobe turns each site's first byte into `int3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeInProcess {
    pub probe: String,
    pub object: PathBuf,
    /// Runtime address of the shared semaphore, if the probe has one.
    pub semaphore: Option<u64>,
    /// Runtime addresses of every call site.
    pub sites: Vec<u64>,
}

/// `int3`, which the kernel writes over a probe site when a uprobe attaches.
pub const INT3: u8 = 0xcc;

/// The named import probes in every object `pid` has mapped, one entry per
/// object and probe name (call sites of one name share a semaphore).
pub fn import_probes_in(pid: u32, names: &[&str]) -> std::io::Result<Vec<ProbeInProcess>> {
    let maps = mappings(pid)?;
    let mut out: Vec<ProbeInProcess> = Vec::new();
    let mut seen = BTreeSet::new();
    for m in &maps {
        if !seen.insert(m.path.clone()) {
            continue;
        }
        let Ok(data) = std::fs::read(in_root(pid, Path::new(&m.path))) else { continue };
        let Ok(probes) = crate::elf::sdt::parse_probes(&data) else { continue };
        let wanted: Vec<&SdtProbe> =
            probes.iter().filter(|p| is_import_probe(p) && names.contains(&p.name.as_str())).collect();
        if wanted.is_empty() {
            continue;
        }
        let segments = file_segments(&data);
        let runtime = |file_off: u64| {
            maps.iter()
                .find(|c| c.path == m.path && file_off >= c.offset && file_off < c.offset + (c.end - c.start))
                .map(|c| c.start + (file_off - c.offset))
        };
        for p in wanted {
            let site = vaddr_to_offset(&segments, p.address).and_then(runtime);
            let semaphore = p.semaphore_offset.and_then(runtime);
            match out.iter_mut().find(|e| e.object == Path::new(&m.path) && e.probe == p.name) {
                Some(e) => e.sites.extend(site),
                None => out.push(ProbeInProcess {
                    probe: p.name.clone(),
                    object: PathBuf::from(&m.path),
                    semaphore,
                    sites: site.into_iter().collect(),
                }),
            }
        }
    }
    Ok(out)
}

/// (vaddr, memsz, file offset, filesz) of each loadable segment.
fn file_segments(data: &[u8]) -> Vec<(u64, u64, u64, u64)> {
    use object::{Object, ObjectSegment};
    let Ok(file) = object::File::parse(data) else { return Vec::new() };
    file.segments().map(|s| (s.address(), s.size(), s.file_range().0, s.file_range().1)).collect()
}

fn vaddr_to_offset(segments: &[(u64, u64, u64, u64)], vaddr: u64) -> Option<u64> {
    segments
        .iter()
        .find(|(va, _, _, filesz)| vaddr >= *va && vaddr < va.saturating_add(*filesz))
        .map(|(va, _, off, _)| vaddr - va + off)
}

/// The current value of each probe's semaphore (0 for a probe without
/// one), in the order of `probes`.
pub fn semaphore_values(pid: u32, probes: &[ProbeInProcess]) -> std::io::Result<Vec<u16>> {
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    probes
        .iter()
        .map(|p| match p.semaphore {
            Some(addr) => {
                let mut buf = [0u8; 2];
                mem.seek(SeekFrom::Start(addr))?;
                mem.read_exact(&mut buf)?;
                Ok(u16::from_ne_bytes(buf))
            }
            None => Ok(0),
        })
        .collect()
}

/// Whether a tracer is fully in place on these probes: every semaphore
/// raised and every call site carrying a uprobe. Both are needed: bpftrace
/// 0.17 with `-p` raises a semaphore a moment before its uprobes exist.
pub fn attached(pid: u32, probes: &[ProbeInProcess]) -> std::io::Result<bool> {
    let now = semaphore_values(pid, probes)?;
    Ok(raised_above(probes, &now, &vec![0; probes.len()]) && sites_trapped(pid, probes)?)
}

/// Whether every semaphore's value `now` is above its `baseline` (what it
/// was before our tracer started): another tracer already on the same
/// binary (a system-wide uprobe puts its `int3` in every process, and
/// bpftrace 0.23+ raises semaphores everywhere) must not pass for ours.
pub fn raised_above(probes: &[ProbeInProcess], now: &[u16], baseline: &[u16]) -> bool {
    probes.iter().zip(now).zip(baseline).all(|((p, &v), &before)| p.semaphore.is_none() || v > before)
}

/// Whether every call site of these probes carries a uprobe's `int3`.
pub fn sites_trapped(pid: u32, probes: &[ProbeInProcess]) -> std::io::Result<bool> {
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut read = |addr: u64, buf: &mut [u8]| -> std::io::Result<()> {
        mem.seek(SeekFrom::Start(addr))?;
        mem.read_exact(buf)
    };
    for p in probes {
        for &site in &p.sites {
            let mut byte = [0u8; 1];
            read(site, &mut byte)?;
            if byte[0] != INT3 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// `path` as seen from inside the process's root directory.
pub fn in_root(pid: u32, path: &Path) -> PathBuf {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    match path.strip_prefix("/") {
        Ok(rel) if root.exists() => root.join(rel),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pythons_probes_unattached() {
        let Some(python) = crate::testing::IdlePython::start() else { return };
        let probes = &python.probes;
        assert_eq!(probes.len(), 2, "{probes:?}");
        assert!(probes.iter().all(|p| p.semaphore.is_some() && !p.sites.is_empty()), "{probes:?}");
        assert!(probes.iter().all(|p| p.object == python.path), "{probes:?}");
        // Nobody traces it: semaphores are 0, sites are not int3.
        assert!(!attached(python.pid(), probes).unwrap());
    }
}
