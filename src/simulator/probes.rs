//! The two USDT probes, fired exactly as CPython fires them.
//!
//! Linux: SystemTap SDT notes from the `probe` crate, provider `python`, names
//! with double underscores (`python:import__find__load__start`), each guarded
//! by its own semaphore (`probe_lazy!`: with no tracer attached a site costs a
//! load and a branch, and the arguments are never evaluated).
//!
//! DTrace platforms: the `usdt` crate compiles `probes/python.d` (see
//! `lib.rs`), so DTrace sees `python$target:::import-find-load-start`.
//!
//! Without the `probes` feature both compile to nothing.
//!
//! Each function below must be called from exactly one place in the
//! simulator: an SDT probe site gets its own note, and bpftrace raises only
//! one semaphore per probe name (the ELF tests check this).

use std::ffi::CStr;

/// Makes the probes known to the tracing framework, once per process. The
/// DTrace backend registers its DOF with the kernel here (the `usdt` crate
/// asks for this before the first probe); SDT notes on Linux need nothing.
pub fn register() {
    #[cfg(all(feature = "probes", not(target_os = "linux")))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if let Err(e) = usdt::register_probes() {
                tracing::warn!("cannot register the DTrace probes: {e}");
            }
        });
    }
}

/// `python:import__find__load__start(const char *modulename)`; `None`
/// passes a NULL pointer, as CPython does for a name it cannot encode.
#[inline(always)]
pub fn import_find_load_start(module: Option<&CStr>) {
    #[cfg(all(feature = "probes", target_os = "linux"))]
    {
        probe::probe_lazy!(python, import__find__load__start, c_ptr(module));
    }
    #[cfg(all(feature = "probes", not(target_os = "linux")))]
    {
        crate::python::import__find__load__start!(|| dtrace_str(module));
    }
    #[cfg(not(feature = "probes"))]
    let _ = module;
}

/// `python:import__find__load__done(const char *modulename, int found)`.
#[inline(always)]
pub fn import_find_load_done(module: Option<&CStr>, found: bool) {
    #[cfg(all(feature = "probes", target_os = "linux"))]
    {
        probe::probe_lazy!(python, import__find__load__done, c_ptr(module), found as i32);
    }
    #[cfg(all(feature = "probes", not(target_os = "linux")))]
    {
        crate::python::import__find__load__done!(|| (dtrace_str(module), found as i32));
    }
    #[cfg(not(feature = "probes"))]
    let _ = (module, found);
}

/// The probe argument: the name's address, or NULL. Only evaluated once a
/// tracer has raised the semaphore (`probe_lazy!`), so the untraced path
/// stays a load and a branch.
#[cfg(all(feature = "probes", target_os = "linux"))]
#[inline(always)]
fn c_ptr(module: Option<&CStr>) -> *const std::ffi::c_char {
    module.map_or(std::ptr::null(), CStr::as_ptr)
}

/// The `usdt` crate takes names as `&str` and cannot pass NULL: a NULL name
/// reaches DTrace as the empty string there.
#[cfg(all(feature = "probes", not(target_os = "linux")))]
fn dtrace_str(module: Option<&CStr>) -> &str {
    module.map_or("", |m| m.to_str().unwrap_or("<non-utf8>"))
}

/// Where a tracer's attachment shows in this process's memory: the start
/// probe's semaphore and the first instruction byte of both probe sites.
#[derive(Debug, Clone, Copy)]
pub struct Attachment {
    /// The start probe's semaphore (the kernel or the tracer raises it).
    pub semaphore: &'static std::sync::atomic::AtomicU16,
    /// The start and done probe sites (a uprobe turns them into `int3`).
    pub sites: [*const u8; 2],
}

/// `int3`, which the kernel writes over a probe site when a uprobe attaches.
pub const INT3: u8 = 0xcc;

impl Attachment {
    /// True once both probe sites carry a uprobe breakpoint. The semaphore
    /// alone is not enough: bpftrace 0.17 can raise it before its uprobes
    /// are in place, and a short workload then finishes unseen.
    pub fn sites_attached(&self) -> bool {
        // SAFETY: both addresses are probe sites inside our own mapped,
        // readable text segment; volatile because the kernel rewrites them.
        self.sites.iter().all(|&p| unsafe { std::ptr::read_volatile(p) } == INT3)
    }
}

/// Finds the start probe's semaphore and both probe sites through our own
/// ELF notes.
#[cfg(all(feature = "probes", target_os = "linux"))]
pub fn attachment() -> Result<Attachment, String> {
    use object::{Object, ObjectSegment};
    let exe = std::fs::read("/proc/self/exe").map_err(|e| format!("cannot read /proc/self/exe: {e}"))?;
    let probes = crate::elf::sdt::parse_probes(&exe).map_err(|e| format!("cannot parse my own ELF notes: {e:?}"))?;
    let find = |name: &str| {
        probes
            .iter()
            .find(|p| p.provider == "python" && p.name == name)
            .ok_or(format!("this binary has no probe python:{name}"))
    };
    let start = find("import__find__load__start")?;
    let done = find("import__find__load__done")?;
    let sem = start.semaphore.ok_or("this binary has no semaphore for python:import__find__load__start")?;
    let file = object::File::parse(&*exe).map_err(|e| e.to_string())?;
    // Load bias = where the program headers are mapped minus where the file
    // says they are (AT_PHDR is the runtime address of the headers).
    let phdr_runtime = unsafe { libc::getauxval(libc::AT_PHDR) };
    let phoff = match &file {
        object::File::Elf64(f) => f.elf_header().e_phoff.get(f.endian()),
        _ => return Err("expected a 64-bit ELF".into()),
    };
    let phdr_link = file
        .segments()
        .find(|s| s.file_range().0 == 0)
        .map(|s| s.address() + phoff)
        .ok_or("no segment maps the ELF header")?;
    let bias = phdr_runtime.wrapping_sub(phdr_link);
    // SAFETY: the address is our own semaphore (a u16 static in `.probes`),
    // live for the whole process; the kernel updates it, so it is read
    // atomically.
    let semaphore = unsafe { &*(bias.wrapping_add(sem) as *const std::sync::atomic::AtomicU16) };
    let sites = [start.address, done.address].map(|a| bias.wrapping_add(a) as *const u8);
    Ok(Attachment { semaphore, sites })
}

#[cfg(not(all(feature = "probes", target_os = "linux")))]
pub fn attachment() -> Result<Attachment, String> {
    Err("waiting for a tracer needs the Linux SDT probes (this build has none)".into())
}
