//! Does an object carry CPython's two import probes, as CPython declares them?
//!
//! The bundled bpftrace scripts read `arg0` as the module name pointer and
//! `arg1` as `found`, and rely on one semaphore per probe name (bpftrace
//! raises one). This check says, one line each, what would break them.

use super::{ArgSpec, SdtProbe};
use serde::Serialize;

/// The outcome of a check: `problems` make it fail, `notes` are harmless
/// differences worth knowing about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// What CPython passes, in order.
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// `const char *`: 8 bytes; the sign does not matter to a pointer.
    Pointer,
    /// `int`: signed, 4 bytes on CPython, 8 accepted (bpftrace widens both).
    Int,
}

struct ExpectedProbe {
    name: &'static str,
    c_args: &'static str,
    cpython_spec: &'static str,
    args: &'static [Expected],
}

const PROVIDER: &str = "python";

const IMPORT_PROBES: [ExpectedProbe; 2] = [
    ExpectedProbe {
        name: "import__find__load__start",
        c_args: "const char *modulename",
        cpython_spec: "8@%rax",
        args: &[Expected::Pointer],
    },
    ExpectedProbe {
        name: "import__find__load__done",
        c_args: "const char *modulename, int found",
        cpython_spec: "8@%rax -4@%edx",
        args: &[Expected::Pointer, Expected::Int],
    },
];

/// Checks `probes` (the notes of one object) for
/// `python:import__find__load__start(const char *)` and
/// `python:import__find__load__done(const char *, int)`, each with exactly
/// one semaphore shared by all its call sites.
pub fn check_python_import(probes: &[SdtProbe]) -> CheckReport {
    let mut report = CheckReport::default();
    for expected in &IMPORT_PROBES {
        check_probe(probes, expected, &mut report);
    }
    report.ok = report.problems.is_empty();
    report
}

fn check_probe(probes: &[SdtProbe], expected: &ExpectedProbe, report: &mut CheckReport) {
    let full = format!("{PROVIDER}:{}", expected.name);
    let sites: Vec<&SdtProbe> = probes.iter().filter(|p| p.provider == PROVIDER && p.name == expected.name).collect();
    if sites.is_empty() {
        let elsewhere: Vec<String> =
            probes.iter().filter(|p| p.name == expected.name).map(|p| format!("{}:{}", p.provider, p.name)).collect();
        let hint = match elsewhere.first() {
            Some(other) => format!(" (found {other}: wrong provider)"),
            None => String::new(),
        };
        report.problems.push(format!("missing probe {full}({}){hint}", expected.c_args));
        return;
    }
    for site in &sites {
        let label = if sites.len() > 1 { format!("{full} at {:#x}", site.address) } else { full.clone() };
        check_args(site, expected, &label, &full, report);
        if site.semaphore.is_none() {
            report.problems.push(format!(
                "{label} has no semaphore: CPython's import probes are semaphore-guarded (is-enabled probes)"
            ));
        }
    }
    let mut semaphores: Vec<u64> = sites.iter().filter_map(|s| s.semaphore).collect();
    semaphores.sort_unstable();
    semaphores.dedup();
    let listed = semaphores.iter().map(|s| format!("{s:#x}")).collect::<Vec<_>>().join(", ");
    if semaphores.len() > 1 {
        report.problems.push(format!(
            "{full} has {} call sites with {} different semaphores ({listed}): a tracer raises only one, \
             so the other sites never fire",
            sites.len(),
            semaphores.len()
        ));
    } else if sites.len() > 1 && semaphores.len() == 1 {
        report.notes.push(format!("{full} has {} call sites sharing semaphore {listed}", sites.len()));
    }
}

fn check_args(site: &SdtProbe, expected: &ExpectedProbe, label: &str, full: &str, report: &mut CheckReport) {
    if site.args.len() != expected.args.len() {
        report.problems.push(format!(
            "{label} has {} argument(s) (`{}`), CPython's has {} ({}: `{}`)",
            site.args.len(),
            site.args_raw,
            expected.args.len(),
            expected.c_args,
            expected.cpython_spec
        ));
        return;
    }
    let cpython: Vec<&str> = expected.cpython_spec.split_whitespace().collect();
    for (i, (arg, want)) in site.args.iter().zip(expected.args).enumerate() {
        let n = i + 1;
        let theirs = cpython[i];
        let ours = format!("`{}` ({})", arg.spec(), arg.type_name());
        let Some(size) = arg.size else {
            report.problems.push(format!("{label} argument {n} is {ours}: no size given, CPython's is `{theirs}`"));
            continue;
        };
        let mut push_note = |text: String| {
            if !report.notes.contains(&text) {
                report.notes.push(text);
            }
        };
        match want {
            Expected::Pointer if size != 8 => report
                .problems
                .push(format!("{label} argument {n} is {ours}, CPython's is an 8-byte pointer `{theirs}` (u64)")),
            Expected::Pointer if arg.signed => push_note(format!(
                "{full} argument {n} is {ours}, CPython's is `{theirs}` (u64): a pointer either way, \
                 bpftrace reads both as 64-bit"
            )),
            Expected::Int if !arg.signed || !(size == 4 || size == 8) => report.problems.push(format!(
                "{label} argument {n} is {ours}, CPython's is a signed int `{theirs}` (s32; s64 also works)"
            )),
            Expected::Int if size == 8 => push_note(format!(
                "{full} argument {n} is {ours}, CPython's is `{theirs}` (s32): same values, \
                 bpftrace reads both as 64-bit"
            )),
            _ => {}
        }
    }
}

/// `ArgSpec` back in SDT notation, for messages.
trait Spec {
    fn spec(&self) -> String;
}

impl Spec for ArgSpec {
    fn spec(&self) -> String {
        match self.size {
            Some(size) => format!("{}{size}@{}", if self.signed { "-" } else { "" }, self.location),
            None => self.location.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::sdt::parse_args;

    fn probe(name: &str, args: &str, address: u64, semaphore: Option<u64>) -> SdtProbe {
        SdtProbe {
            provider: "python".into(),
            name: name.into(),
            address,
            pc: address,
            base: 0x1000,
            semaphore,
            semaphore_offset: semaphore,
            args_raw: args.into(),
            args: parse_args(args).unwrap(),
        }
    }

    fn cpython() -> Vec<SdtProbe> {
        vec![
            probe("function__entry", "8@%rbp 8@%r12 -4@%eax", 0x10, Some(0x90)),
            probe("import__find__load__start", "8@%rax", 0x20, Some(0xa0)),
            probe("import__find__load__done", "8@%rax -4@%edx", 0x30, Some(0xa2)),
        ]
    }

    #[test]
    fn cpython_itself_passes_without_notes() {
        let report = check_python_import(&cpython());
        assert_eq!(report, CheckReport { ok: true, problems: vec![], notes: vec![] });
    }

    #[test]
    fn probe_crate_specs_pass_with_one_note_per_difference() {
        let probes = vec![
            probe("import__find__load__start", "-8@%rax", 0x20, Some(0xa0)),
            probe("import__find__load__done", "-8@%rax -8@%rcx", 0x30, Some(0xa2)),
        ];
        let report = check_python_import(&probes);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.notes.len(), 3, "{:#?}", report.notes);
        assert!(report.notes[0].starts_with("python:import__find__load__start argument 1 is `-8@%rax` (s64)"));
        assert!(report.notes[2].contains("argument 2 is `-8@%rcx` (s64), CPython's is `-4@%edx` (s32)"));
    }

    #[test]
    fn missing_probes_are_named() {
        let report = check_python_import(&cpython()[..2]);
        assert!(!report.ok);
        assert_eq!(
            report.problems,
            ["missing probe python:import__find__load__done(const char *modulename, int found)"]
        );
        let report = check_python_import(&[]);
        assert_eq!(report.problems.len(), 2);
    }

    #[test]
    fn wrong_provider_is_hinted() {
        let mut probes = cpython();
        probes[1].provider = "Python".into();
        let report = check_python_import(&probes);
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].ends_with("(found Python:import__find__load__start: wrong provider)"));
    }

    #[test]
    fn argument_count_and_types_are_checked() {
        let probes = vec![
            probe("import__find__load__start", "8@%rax 8@%rdx", 0x20, Some(0xa0)),
            probe("import__find__load__done", "4@%eax 4@%edx", 0x30, Some(0xa2)),
        ];
        let report = check_python_import(&probes);
        assert_eq!(
            report.problems,
            [
                "python:import__find__load__start has 2 argument(s) (`8@%rax 8@%rdx`), CPython's has 1 \
                 (const char *modulename: `8@%rax`)",
                "python:import__find__load__done argument 1 is `4@%eax` (u32), CPython's is an 8-byte pointer \
                 `8@%rax` (u64)",
                "python:import__find__load__done argument 2 is `4@%edx` (u32), CPython's is a signed int `-4@%edx` \
                 (s32; s64 also works)",
            ]
        );
        let untyped = vec![probe("import__find__load__start", "%rdi", 0x20, Some(0xa0))];
        assert!(check_python_import(&untyped).problems[0].contains("argument 1 is `%rdi` (untyped): no size given"));
        let short_int = vec![probe("import__find__load__done", "8@%rax -2@%dx", 0x20, Some(0xa0))];
        let problems = check_python_import(&short_int).problems;
        assert!(problems.iter().any(|p| p.contains("argument 2 is `-2@%dx` (s16)")), "{problems:?}");
    }

    #[test]
    fn semaphores_one_per_name() {
        let mut probes = cpython();
        probes.push(probe("import__find__load__start", "8@%rbx", 0x40, Some(0xa0)));
        let report = check_python_import(&probes);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.notes, ["python:import__find__load__start has 2 call sites sharing semaphore 0xa0"]);

        probes.push(probe("import__find__load__start", "8@%rcx", 0x50, Some(0xb0)));
        probes.push(probe("import__find__load__done", "8@%rax -4@%edx", 0x60, None));
        let report = check_python_import(&probes);
        assert_eq!(
            report.problems,
            [
                "python:import__find__load__start has 3 call sites with 2 different semaphores (0xa0, 0xb0): \
                 a tracer raises only one, so the other sites never fire",
                "python:import__find__load__done at 0x60 has no semaphore: CPython's import probes are \
                 semaphore-guarded (is-enabled probes)",
            ]
        );
    }
}
