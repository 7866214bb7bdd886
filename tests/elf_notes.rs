//! The built binary must carry CPython's import probes exactly as CPython
//! declares them: provider `python`, the double-underscore names, 1 and 2
//! arguments, and one note with one semaphore per probe name (the simulator
//! fires each probe from one call site, and bpftrace raises one semaphore).
//!
//! Not tested here: that a `--no-default-features` build has no notes; that
//! needs a second cargo build of the crate from inside a test.

use importprobe::elf::{check_python_import, read_probes};
use std::path::Path;

#[test]
fn built_binary_has_cpythons_import_probes() {
    let probes = read_probes(Path::new(env!("CARGO_BIN_EXE_importprobe"))).unwrap();
    for (name, arg_count) in [("import__find__load__start", 1), ("import__find__load__done", 2)] {
        let sites: Vec<_> = probes.iter().filter(|p| p.name == name).collect();
        assert_eq!(sites.len(), 1, "{name}: expected one note (one call site), got {sites:#?}");
        let site = sites[0];
        assert_eq!(site.provider, "python", "{name}: provider must be CPython's");
        assert_eq!(site.args.len(), arg_count, "{name}: args `{}`", site.args_raw);
        assert!(site.args.iter().all(|a| a.size == Some(8)), "{name}: args `{}`", site.args_raw);
        assert!(site.semaphore.is_some(), "{name}: must be semaphore-guarded like CPython's");
        assert!(site.semaphore_offset.is_some(), "{name}: semaphore must be in a loaded segment");
    }
    assert_eq!(probes.len(), 2, "no other probes: {probes:#?}");
    let semaphores: Vec<_> = probes.iter().map(|p| p.semaphore).collect();
    assert_ne!(semaphores[0], semaphores[1], "each probe name has its own semaphore");
    let report = check_python_import(&probes);
    assert!(report.ok, "{report:#?}");
}
