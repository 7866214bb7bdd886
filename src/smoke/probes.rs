//! Step 2: importprobe's own SDT notes, as `importprobe probes --check
//! python-import` sees them. The live check traces this very binary, so
//! broken notes here would make every later check meaningless.

use super::check::Check;
use crate::elf::{check_python_import, read_probes};
use std::path::Path;
use std::time::Instant;

/// Checks the import probes of `exe` (importprobe itself).
pub fn check(exe: &Path) -> Check {
    let t = Instant::now();
    let name = "probes/self";
    let fix = "rebuild importprobe with its default `probes` feature (cargo build --release)";
    let check = match read_probes(exe) {
        Err(e) => Check::impossible(name, format!("cannot read the SDT notes of {}: {e}", exe.display()), fix),
        Ok(probes) => {
            let report = check_python_import(&probes);
            if report.ok {
                Check::pass(
                    name,
                    format!(
                        "{} carries python:import__find__load__{{start,done}} as CPython declares them ({} SDT notes)",
                        exe.display(),
                        probes.len()
                    ),
                )
                .with_details(report.notes)
            } else {
                Check::impossible(
                    name,
                    format!("{} does not carry CPython's import probes correctly", exe.display()),
                    fix,
                )
                .with_details(report.problems)
            }
        }
    };
    check.timed(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::check::Status;

    #[test]
    fn a_binary_without_notes_is_impossible() {
        let c = check(Path::new("/bin/true"));
        assert_eq!(c.status, Status::Impossible, "{c:?}");
        assert!(!c.details.is_empty() || c.summary.contains("cannot read"), "{c:?}");
    }
}
