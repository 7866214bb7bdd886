//! Before tracing: is bpftrace there, may we use it, is tracefs mounted, and
//! does the target carry CPython's import probes? Each problem is one line
//! saying what is wrong and how to fix it; `importprobe smoke` reuses these.

use super::process::{in_root, is_import_probe};
use crate::elf::process::mapped_objects;
use crate::elf::read_probes;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Linux capability numbers (include/uapi/linux/capability.h).
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// What kind of obstacle a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    NoBpftrace,
    NotPrivileged,
    NoTracefs,
    NoTarget,
    NoProbes,
}

/// One reason tracing cannot work, with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; fix: {}", self.what, self.fix)
    }
}

impl Problem {
    fn new(kind: ProblemKind, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem { kind, what: what.into(), fix: fix.into() }
    }
}

/// Finds an executable in PATH (or checks a path containing a slash).
pub fn which(program: &OsStr) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.is_file() && p.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    };
    let as_path = Path::new(program);
    if as_path.components().count() > 1 || program.to_string_lossy().contains('/') {
        return is_exec(as_path).then(|| as_path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| is_exec(p))
}

/// The effective capability set of this process (`CapEff` in /proc/self/status).
pub fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

/// Parses the `CapEff:` line of a /proc/PID/status text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Whether `cap_eff` allows loading BPF programs and attaching uprobes:
/// CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON.
pub fn caps_allow_tracing(cap_eff: u64) -> bool {
    has_cap(cap_eff, CAP_SYS_ADMIN) || (has_cap(cap_eff, CAP_BPF) && has_cap(cap_eff, CAP_PERFMON))
}

/// The privilege problem, if any, for an effective uid and capability set
/// (bpftrace 0.17 insists on uid 0 as well).
pub fn privilege_problem(euid: u32, cap_eff: Option<u64>) -> Option<Problem> {
    if euid != 0 {
        return Some(Problem::new(
            ProblemKind::NotPrivileged,
            format!("not running as root (euid {euid}); bpftrace needs root"),
            "run it with sudo (sudo importprobe ...)",
        ));
    }
    match cap_eff {
        Some(caps) if !caps_allow_tracing(caps) => Some(Problem::new(
            ProblemKind::NotPrivileged,
            format!("root without CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN (CapEff {caps:016x})"),
            "run outside the restricted container, or with --cap-add SYS_ADMIN (docker) / --privileged",
        )),
        _ => None,
    }
}

/// Whether tracefs (or debugfs, which holds it on older kernels) is mounted,
/// from the text of /proc/mounts.
pub fn tracefs_mounted(mounts: &str) -> bool {
    mounts.lines().any(|l| matches!(l.split_whitespace().nth(2), Some("tracefs" | "debugfs")))
}

/// Checks the tools and privileges; empty when tracing can work.
pub fn check_environment() -> Vec<Problem> {
    let mut problems = Vec::new();
    match super::bpftrace::Bpftrace::locate() {
        Ok(_) => {}
        Err(e @ super::bpftrace::LocateError::Missing) => {
            problems.push(Problem::new(ProblemKind::NoBpftrace, e.to_string(), "apt-get install -y bpftrace"))
        }
        Err(e) => problems.push(Problem::new(
            ProblemKind::NoBpftrace,
            e.to_string(),
            "apt-get install --reinstall -y bpftrace",
        )),
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    problems.extend(privilege_problem(euid, effective_capabilities()));
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !tracefs_mounted(&mounts) {
        problems.push(Problem::new(
            ProblemKind::NoTracefs,
            "neither tracefs nor debugfs is mounted",
            "mount -t tracefs nodev /sys/kernel/tracing",
        ));
    }
    problems
}

/// The probes one object carries, as `provider:name`, sorted, deduplicated.
pub fn probe_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        read_probes(path).unwrap_or_default().iter().map(|p| format!("{}:{}", p.provider, p.name)).collect();
    names.sort();
    names.dedup();
    names
}

/// Whether the ELF file at `path` has both import probes.
pub fn has_import_probes(path: &Path) -> bool {
    let probes = read_probes(path).unwrap_or_default();
    super::process::IMPORT_PROBES.iter().all(|n| probes.iter().any(|p| is_import_probe(p) && p.name == *n))
}

/// The program a command really runs: its path in PATH, or for a `#!`
/// script its interpreter (`#!/usr/bin/env python3` resolved in PATH too).
pub fn resolve_program(program: &OsStr) -> Option<PathBuf> {
    let path = which(program)?;
    let head = std::fs::read(&path).ok().map(|mut b| {
        b.truncate(256);
        b
    })?;
    let Some(rest) = head.strip_prefix(b"#!") else { return Some(path) };
    let first = String::from_utf8_lossy(rest.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
    let mut words = first.split_whitespace();
    let interp = words.next()?;
    if interp.ends_with("/env") {
        return which(OsStr::new(words.find(|w| !w.starts_with('-'))?));
    }
    Some(PathBuf::from(interp))
}

/// The shared libraries an ELF file needs (`DT_NEEDED`) and its search path
/// (`DT_RUNPATH`/`DT_RPATH`, `$ORIGIN` expanded).
pub fn needed_libraries(path: &Path) -> (Vec<String>, Vec<PathBuf>) {
    use object::read::elf::{Dyn, FileHeader};
    let Ok(data) = std::fs::read(path) else { return Default::default() };
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(&*data) else { return Default::default() };
    let Ok(endian) = header.endian() else { return Default::default() };
    let Ok(sections) = header.sections(endian, &*data) else { return Default::default() };
    let Ok(Some((dynamic, link))) = sections.dynamic(endian, &*data) else { return Default::default() };
    let Ok(strings) = sections.strings(endian, &*data, link) else { return Default::default() };
    let origin = path.parent().map(|p| p.display().to_string()).unwrap_or_default();
    let (mut needed, mut search) = (Vec::new(), Vec::new());
    for d in dynamic {
        let Ok(value) = d.string(endian, strings) else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        match d.tag32(endian) {
            Some(object::elf::DT_NEEDED) => needed.push(value),
            Some(object::elf::DT_RUNPATH | object::elf::DT_RPATH) => search.extend(
                value
                    .split(':')
                    .map(|dir| PathBuf::from(dir.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))),
            ),
            _ => {}
        }
    }
    (needed, search)
}

/// The libpython a program is linked against, found as the dynamic loader
/// would (its run path, LD_LIBRARY_PATH, the usual directories).
pub fn linked_libpython(program: &Path) -> Option<PathBuf> {
    let (needed, mut search) = needed_libraries(program);
    let lib = needed.into_iter().find(|n| n.starts_with("libpython"))?;
    if let Some(env) = std::env::var_os("LD_LIBRARY_PATH") {
        search.extend(std::env::split_paths(&env));
    }
    let arch = format!("{}-linux-gnu", std::env::consts::ARCH);
    for dir in ["/lib", "/usr/lib", "/usr/local/lib", "/lib64", "/usr/lib64"] {
        search.push(Path::new(dir).join(&arch));
        search.push(PathBuf::from(dir));
    }
    search.into_iter().map(|d| d.join(&lib)).find(|p| p.is_file())
}

fn no_probes(object: &Path, others: &[String]) -> Problem {
    let has = if others.is_empty() {
        "it has no SDT probes at all".to_owned()
    } else {
        format!("it has {}", others.join(", "))
    };
    Problem::new(
        ProblemKind::NoProbes,
        format!("{} has no python import probes ({has})", object.display()),
        "trace a CPython built --with-dtrace (e.g. Debian's /usr/bin/python3.11), or name the object that has them with --binary PATH",
    )
}

/// Checks that a command to start carries the probes (in `binary` when
/// given, else in the program it runs).
pub fn check_command(program: &OsStr, binary: Option<&Path>) -> Option<Problem> {
    let object = match binary {
        Some(b) => b.to_path_buf(),
        None => match resolve_program(program) {
            Some(p) => p,
            None => {
                return Some(Problem::new(
                    ProblemKind::NoTarget,
                    format!("{} not found (not a file, not in PATH)", program.to_string_lossy()),
                    "give the full path of the program",
                ))
            }
        },
    };
    if !object.is_file() {
        return Some(Problem::new(ProblemKind::NoTarget, format!("{} not found", object.display()), "check the path"));
    }
    if has_import_probes(&object) {
        return None;
    }
    // A CPython built --enable-shared keeps its probes in libpython; the
    // runner stops the program after the loader has mapped it.
    if binary.is_none() && linked_libpython(&object).is_some_and(|lib| has_import_probes(&lib)) {
        return None;
    }
    Some(no_probes(&object, &probe_names(&object)))
}

/// Checks that a running process (or `binary`, when given) carries the probes
/// in one of the objects it has mapped.
pub fn check_pid(pid: u32, binary: Option<&Path>) -> Option<Problem> {
    if let Some(b) = binary {
        return check_command(b.as_os_str(), Some(b));
    }
    let objects = match mapped_objects(pid) {
        Ok(o) => o,
        Err(e) => {
            return Some(Problem::new(
                ProblemKind::NoTarget,
                format!("cannot read the mappings of pid {pid}: {e}"),
                "check the pid (ps -p PID) and run as root",
            ))
        }
    };
    if objects.iter().any(|o| has_import_probes(&in_root(pid, o))) {
        return None;
    }
    let others: Vec<String> = objects
        .iter()
        .flat_map(|o| {
            let names = probe_names(&in_root(pid, o));
            let file = o.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            names.into_iter().map(move |n| format!("{file}:{n}"))
        })
        .collect();
    let mut p = no_probes(Path::new(&format!("pid {pid}")), &others);
    p.what = p.what.replacen("has no", "has no object with", 1);
    Some(p)
}

/// The files carrying the import probes that a system-wide trace of a
/// process tree attaches to: those given with `--binary`, and the one the
/// command runs (its executable, or its linked libpython), or for a running
/// process every mapped object that carries them.
pub fn probe_objects(target: &super::runner::Target, binaries: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = binaries.to_vec();
    match target {
        super::runner::Target::Command(argv) => {
            if let Some(program) = argv.first().and_then(|p| resolve_program(p)) {
                if has_import_probes(&program) {
                    out.push(program);
                } else if let Some(lib) = linked_libpython(&program).filter(|l| has_import_probes(l)) {
                    out.push(lib);
                }
            }
        }
        super::runner::Target::Pid(pid) => out.extend(
            mapped_objects(*pid).unwrap_or_default().iter().map(|o| in_root(*pid, o)).filter(|o| has_import_probes(o)),
        ),
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_capabilities() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        let caps = parse_cap_eff(status).unwrap();
        assert!(caps_allow_tracing(caps));
        assert!(!caps_allow_tracing(0));
        assert!(caps_allow_tracing((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_allow_tracing(1 << CAP_BPF));
    }

    #[test]
    fn explains_privilege_problems() {
        let p = privilege_problem(1000, Some(0)).unwrap();
        assert_eq!(p.kind, ProblemKind::NotPrivileged);
        assert!(p.fix.contains("sudo"));
        assert!(privilege_problem(0, Some(1 << CAP_BPF)).is_some());
        assert!(privilege_problem(0, Some(u64::MAX)).is_none());
    }

    #[test]
    fn finds_tracefs_in_mounts() {
        assert!(tracefs_mounted("nodev /sys/kernel/tracing tracefs rw,relatime 0 0\n"));
        assert!(tracefs_mounted("debugfs /sys/kernel/debug debugfs rw 0 0\n"));
        assert!(!tracefs_mounted("proc /proc proc rw 0 0\n"));
    }

    #[test]
    fn a_program_without_probes_says_so() {
        let p = check_command(OsStr::new("true"), None).expect("/bin/true has no python probes");
        assert_eq!(p.kind, ProblemKind::NoProbes);
        assert!(p.what.contains("has no python import probes"), "{}", p.what);
        let p = check_command(OsStr::new("/nonexistent/x"), None).unwrap();
        assert_eq!(p.kind, ProblemKind::NoTarget);
    }

    #[test]
    fn reads_needed_libraries() {
        let (needed, _) = needed_libraries(&which(OsStr::new("sh")).unwrap());
        assert!(needed.iter().any(|n| n.starts_with("libc.so")), "{needed:?}");
        assert_eq!(linked_libpython(&which(OsStr::new("sh")).unwrap()), None);
    }

    #[test]
    fn resolves_shebang_interpreters() {
        let dir = std::env::temp_dir().join(format!("importprobe-shebang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, "#!/usr/bin/env -S sh -e\necho\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let got = resolve_program(script.as_os_str()).unwrap();
        assert!(got.ends_with("sh"), "{}", got.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
