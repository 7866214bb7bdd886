//! The ELF objects a running process has mapped, from `/proc/PID/maps`.
//!
//! A CPython built with `--enable-shared` keeps its probes in
//! `libpython3.X.so`, not in the `python3.X` executable, so tools that look
//! for the import probes of a process must look at every object it maps.

use super::ElfError;
use std::io::Read;
use std::path::PathBuf;

/// One line of `/proc/PID/maps` that is backed by a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    pub path: String,
}

/// The distinct ELF files mapped into process `pid`, in order of first
/// mapping (the executable usually comes first).
///
/// Pseudo mappings (`[vdso]`, `[heap]`, anonymous memory) and files deleted
/// since they were mapped are skipped; so are files that are not ELF (locale
/// archives, mmap'd data). A file that cannot be opened is kept, so that
/// reading its probes reports why.
pub fn mapped_objects(pid: u32) -> Result<Vec<PathBuf>, ElfError> {
    let maps_path = format!("/proc/{pid}/maps");
    let text = match std::fs::read_to_string(&maps_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ElfError::NoSuchProcess { pid }),
        Err(source) => return Err(ElfError::Io { path: maps_path, source }),
    };
    let mut objects: Vec<PathBuf> = Vec::new();
    for mapping in parse_maps(&text) {
        if mapping.path.ends_with(" (deleted)") {
            tracing::info!("pid {pid}: skipping {}", mapping.path);
            continue;
        }
        let path = PathBuf::from(&mapping.path);
        if objects.contains(&path) {
            continue;
        }
        if is_elf(&path) == Some(false) {
            tracing::debug!("pid {pid}: {} is not ELF", path.display());
            continue;
        }
        objects.push(path);
    }
    Ok(objects)
}

/// `Some(true)` if the file starts with the ELF magic, `None` if it cannot
/// be read at all.
fn is_elf(path: &std::path::Path) -> Option<bool> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).ok()?;
    Some(file.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF")
}

/// Parses the text of `/proc/PID/maps`, keeping the file-backed lines
/// (those whose path is absolute). Malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<FileMapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<FileMapping> {
    // address perms offset dev inode path; the path is the rest of the line
    // after the padding and may itself contain spaces.
    let mut rest = line;
    let mut fields = [""; 5];
    for field in &mut fields {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.trim_start_matches(' ');
    if !path.starts_with('/') {
        return None;
    }
    let (start, end) = fields[0].split_once('-')?;
    Some(FileMapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms: fields[1].to_owned(),
        offset: u64::from_str_radix(fields[2], 16).ok()?,
        inode: fields[4].parse().ok()?,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d4c2a00000-55d4c2a6e000 r--p 00000000 08:01 1311  /usr/bin/python3.11
55d4c2a6e000-55d4c2d2f000 r-xp 0006e000 08:01 1311  /usr/bin/python3.11
55d4c3b1f000-55d4c3c1e000 rw-p 00000000 00:00 0     [heap]
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 
7f1e30a00000-7f1e30a28000 r--p 00000000 08:01 2040  /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e30b00000-7f1e30b01000 r--p 00000000 08:01 4242  /tmp/a dir/lib with spaces.so
7f1e30c00000-7f1e30c01000 r--p 00000000 08:01 4243  /tmp/gone.so (deleted)
7ffd6d5f2000-7ffd6d5f6000 r--p 00000000 00:00 0     [vvar]
7ffd6d5f6000-7ffd6d5f8000 r-xp 00000000 00:00 0     [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";

    #[test]
    fn keeps_only_file_backed_lines_with_their_full_path() {
        let paths: Vec<String> = parse_maps(MAPS).into_iter().map(|m| m.path).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/python3.11",
                "/usr/bin/python3.11",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/tmp/a dir/lib with spaces.so",
                "/tmp/gone.so (deleted)",
            ]
        );
        let second = &parse_maps(MAPS)[1];
        assert_eq!((second.start, second.offset, second.inode), (0x55d4c2a6e000, 0x6e000, 1311));
        assert_eq!(second.perms, "r-xp");
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse_maps("nonsense\n\n   \nzz-yy r--p 0 0 0 /x\n").is_empty());
    }

    #[test]
    fn own_process_maps_this_test_binary_once() {
        let me = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
        let objects = mapped_objects(std::process::id()).unwrap();
        assert_eq!(objects.iter().filter(|p| **p == me).count(), 1, "{objects:?}");
        assert!(objects.iter().all(|p| p.is_absolute()));
    }

    #[test]
    fn missing_process_is_a_typed_error() {
        // pid_max is at most 2^22, so this pid cannot exist.
        assert!(matches!(mapped_objects(u32::MAX - 1), Err(ElfError::NoSuchProcess { .. })));
    }
}
