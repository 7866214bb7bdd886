//! Step 1: can this host trace USDT probes at all? Kernel uprobes and their
//! semaphore support, privileges, tracefs, bpftrace. The tool, privilege and
//! tracefs problems (and their fixes) come from [`crate::tracer::preflight`];
//! the kernel checks are added here.

use super::check::Check;
use crate::tracer::preflight::{self, Problem, ProblemKind};
use std::path::Path;
use std::time::Instant;

/// The kernel's uprobe PMU (`perf_event_open` type for uprobes, Linux 4.17).
pub const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe";

/// The kernel version that added `ref_ctr_offset` (USDT semaphores).
pub const REF_CTR_KERNEL: (u32, u32) = (4, 20);

/// Every environment check, in order.
pub fn checks() -> Vec<Check> {
    let problems = preflight::check_environment();
    let problem = |kind| problems.iter().find(|p: &&Problem| p.kind == kind);
    let mut out = vec![uprobe_pmu(Path::new(UPROBE_PMU)), semaphores(Path::new(UPROBE_PMU), &kernel_release())];
    out.push(privileges(problem(ProblemKind::NotPrivileged)));
    out.push(tracefs(problem(ProblemKind::NoTracefs)));
    out.push(bpftrace(problem(ProblemKind::NoBpftrace)));
    out
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// `(major, minor)` of a kernel release such as `6.1.0-13-amd64`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn uprobe_pmu(pmu: &Path) -> Check {
    let t = Instant::now();
    let name = "environment/uprobes";
    let check = if pmu.is_dir() {
        let ty = std::fs::read_to_string(pmu.join("type")).map(|s| s.trim().to_owned()).unwrap_or_default();
        Check::pass(name, format!("uprobe PMU present ({}, type {ty})", pmu.display()))
    } else if !Path::new("/sys/bus").is_dir() {
        Check::impossible(name, "/sys is not mounted", "mount -t sysfs sysfs /sys")
    } else {
        Check::impossible(
            name,
            format!("no uprobe PMU ({} is missing): this kernel cannot place uprobes", pmu.display()),
            "boot a kernel built with CONFIG_UPROBE_EVENTS=y, Linux >= 4.17 (e.g. apt-get install -y linux-image-amd64)",
        )
    };
    check.timed(t)
}

/// USDT semaphores need the kernel to bump a counter when it inserts a
/// uprobe: the uprobe PMU then has a `ref_ctr_offset` format field.
fn semaphores(pmu: &Path, release: &str) -> Check {
    let t = Instant::now();
    let name = "environment/semaphores";
    let field = pmu.join("format/ref_ctr_offset");
    let fix = "boot Linux >= 4.20 (uprobe ref_ctr_offset): without it the semaphore-guarded import probes never fire";
    let check = match std::fs::read_to_string(&field) {
        Ok(bits) => Check::pass(
            name,
            format!("kernel {release} raises USDT semaphores (uprobe format ref_ctr_offset = {})", bits.trim()),
        ),
        Err(_) => match parse_kernel_version(release) {
            Some(v) if v >= REF_CTR_KERNEL && pmu.is_dir() => {
                Check::impossible(name, format!("kernel {release} is >= 4.20 but {} is missing", field.display()), fix)
            }
            _ => Check::impossible(name, format!("kernel {release} has no uprobe ref_ctr_offset support"), fix),
        },
    };
    check.timed(t)
}

fn privileges(problem: Option<&Problem>) -> Check {
    let t = Instant::now();
    let name = "environment/privileges";
    let check = match problem {
        Some(p) => Check::impossible(name, &p.what, &p.fix),
        None => {
            let caps = preflight::effective_capabilities().map(|c| format!("CapEff {c:016x}")).unwrap_or_default();
            Check::pass(name, format!("root with CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN ({caps})"))
        }
    };
    check.timed(t)
}

fn tracefs(problem: Option<&Problem>) -> Check {
    let t = Instant::now();
    let name = "environment/tracefs";
    let check = match problem {
        Some(p) => Check::impossible(name, &p.what, &p.fix),
        None => {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            let at: Vec<&str> = mounts
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    // Bind mounts into chroots and containers are not the host's.
                    (matches!(f.get(2), Some(&("tracefs" | "debugfs"))) && f[1].starts_with("/sys/")).then(|| f[1])
                })
                .collect();
            Check::pass(name, format!("tracefs/debugfs mounted at {}", at.join(", ")))
        }
    };
    check.timed(t)
}

fn bpftrace(problem: Option<&Problem>) -> Check {
    let t = Instant::now();
    let name = "environment/bpftrace";
    let check = match (problem, crate::tracer::bpftrace::Bpftrace::locate()) {
        (Some(p), _) => Check::impossible(name, &p.what, &p.fix),
        (None, Ok(b)) => Check::pass(name, format!("bpftrace {} at {}", b.version, b.path.display())),
        (None, Err(e)) => Check::impossible(name, e.to_string(), "apt-get install --reinstall -y bpftrace"),
    };
    check.timed(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::check::Status;

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_kernel_version("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("4.19.0"), Some((4, 19)));
        assert!(parse_kernel_version("4.19.0") < Some(REF_CTR_KERNEL));
        assert_eq!(parse_kernel_version("weird"), None);
    }

    #[test]
    fn missing_pmu_and_semaphores_are_impossible_with_fixes() {
        let dir = tempfile::tempdir().unwrap();
        let pmu = dir.path().join("uprobe");
        let c = uprobe_pmu(&pmu);
        assert_eq!(c.status, Status::Impossible);
        assert!(c.fixes[0].contains("CONFIG_UPROBE_EVENTS"), "{c:?}");
        let c = semaphores(&pmu, "4.19.0-1");
        assert_eq!(c.status, Status::Impossible);
        assert!(c.fixes[0].contains("4.20"), "{c:?}");
        std::fs::create_dir_all(pmu.join("format")).unwrap();
        std::fs::write(pmu.join("format/ref_ctr_offset"), "config:32-63\n").unwrap();
        let c = semaphores(&pmu, "6.1.0");
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.summary.contains("config:32-63"));
    }

    #[test]
    fn preflight_problems_carry_their_fix() {
        let p = preflight::privilege_problem(1000, Some(0)).unwrap();
        let c = privileges(Some(&p));
        assert_eq!(c.status, Status::Impossible);
        assert!(c.fixes[0].contains("sudo"));
    }
}
