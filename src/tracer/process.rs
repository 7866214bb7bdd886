//! CPython's import probes as a running process sees them: which mapped
//! objects carry them, and whether a tracer has raised their semaphores.
//!
//! The semaphores are the reliable sign that a tracer is attached: the kernel
//! raises them when it installs a uprobe with a `ref_ctr_offset`, so reading
//! them from `/proc/PID/mem` tells exactly when no event can be missed any
//! more, whatever the tracer prints.

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

/// One file-backed mapping of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: PathBuf,
}

/// The file-backed mappings of a process (pseudo entries like `[heap]` are
/// left out).
pub fn mappings(pid: u32) -> std::io::Result<Vec<Mapping>> {
    Ok(parse_maps(&std::fs::read_to_string(format!("/proc/{pid}/maps"))?))
}

/// Parses the text of `/proc/PID/maps`.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let _perms = fields.next()?;
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let _dev = fields.next()?;
            let _inode = fields.next()?;
            let path = fields.next()?.trim_start();
            if !path.starts_with('/') {
                return None;
            }
            let path = path.strip_suffix(" (deleted)").unwrap_or(path);
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The distinct objects a process has mapped, in map order. Paths are read
/// through `/proc/PID/root`, so they work for processes in other mount
/// namespaces too.
pub fn mapped_objects(pid: u32) -> std::io::Result<Vec<PathBuf>> {
    let mut seen = BTreeSet::new();
    Ok(mappings(pid)?.into_iter().filter(|m| seen.insert(m.path.clone())).map(|m| m.path).collect())
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
        let Ok(data) = std::fs::read(in_root(pid, &m.path)) else { continue };
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
            match out.iter_mut().find(|e| e.object == m.path && e.probe == p.name) {
                Some(e) => e.sites.extend(site),
                None => out.push(ProbeInProcess {
                    probe: p.name.clone(),
                    object: m.path.clone(),
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

/// Whether a tracer is fully in place on these probes: every semaphore
/// raised and every call site carrying a uprobe. Both are needed: bpftrace
/// 0.17 with `-p` raises a semaphore a moment before its uprobes exist.
pub fn attached(pid: u32, probes: &[ProbeInProcess]) -> std::io::Result<bool> {
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut read = |addr: u64, buf: &mut [u8]| -> std::io::Result<()> {
        mem.seek(SeekFrom::Start(addr))?;
        mem.read_exact(buf)
    };
    for p in probes {
        if let Some(addr) = p.semaphore {
            let mut buf = [0u8; 2];
            read(addr, &mut buf)?;
            if u16::from_ne_bytes(buf) == 0 {
                return Ok(false);
            }
        }
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
    fn parses_maps_lines() {
        let text = "\
00400000-0041f000 r--p 00000000 fd:01 123 /usr/bin/python3.11
00945000-00a85000 rw-p 00544000 fd:01 123 /usr/bin/python3.11
01000000-02000000 rw-p 00000000 00:00 0 [heap]
7f00-8f00 r-xp 00001000 fd:01 9 /tmp/a b (deleted)
7fff0000-7fff1000 r--p 00000000 00:00 0\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 3);
        assert_eq!(
            maps[1],
            Mapping { start: 0x945000, end: 0xa85000, offset: 0x544000, path: "/usr/bin/python3.11".into() }
        );
        assert_eq!(maps[2].path, PathBuf::from("/tmp/a b"));
    }

    #[test]
    fn finds_pythons_probes_unattached() {
        let python = "/usr/bin/python3.11";
        if !Path::new(python).exists() {
            eprintln!("SKIP: {python} is not installed");
            return;
        }
        let mut child = std::process::Command::new(python)
            .args(["-S", "-c", "import sys; sys.stdin.read()"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Wait until the interpreter is mapped (exec done).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let probes = loop {
            let p = import_probes_in(pid, &IMPORT_PROBES).unwrap();
            if p.len() == 2 || std::time::Instant::now() > deadline {
                break p;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(probes.len(), 2, "{probes:?}");
        assert!(probes.iter().all(|p| p.semaphore.is_some() && !p.sites.is_empty()), "{probes:?}");
        assert!(probes.iter().all(|p| p.object == Path::new(python)), "{probes:?}");
        // Nobody traces it: semaphores are 0, sites are not int3.
        assert!(!attached(pid, &probes).unwrap());
        drop(child.stdin.take());
        child.wait().unwrap();
    }
}
