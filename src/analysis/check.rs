//! Gates a build fails on (`importprobe check`), evaluated on the medians
//! of one or more runs ([`super::median`]).
//!
//! - `max-total-ms`: the median import time (see [`super::summary`]) must
//!   not exceed the limit;
//! - `max-ms MODULE=MS`: the median cumulative time of MODULE (all its
//!   imports in a run added up) must not exceed the limit; a module no run
//!   imported passes, and says so;
//! - `max-regression PCT` (with a baseline): the median import time may
//!   exceed the baseline's median by at most PCT percent;
//! - `forbid MODULE`: MODULE, or any submodule of it, must not be loaded in
//!   any run (a failed attempt is not a load, but a cached line is; an
//!   `-X importtime` log does not say which imports failed, so there every
//!   import counts as a load);
//! - `forbid-blind-spots`: no run may have a package imported outside the
//!   probes ([`crate::events::blind_spots`]), whose cost then hides in
//!   another import's self time; packages can be allowed by name.
//!
//! A value equal to its limit passes. Gates that need "any run" (forbid,
//! blind spots) look at every run, never at the medians.

use super::duration::{human, ms, percent};
use super::median;
use super::profile::Profile;
use serde::Serialize;

/// The gates asked for.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    pub max_total_ms: Option<f64>,
    /// (module, limit in ms), in the order given.
    pub max_ms: Vec<(String, f64)>,
    /// The baseline's runs and the regression allowed against their median.
    pub baseline: Option<(Vec<Profile>, f64)>,
    pub forbid: Vec<String>,
    pub forbid_blind_spots: bool,
    /// Packages accepted as blind spots (a known `importlib.import_module`).
    pub allow_blind_spots: Vec<String>,
}

impl Gates {
    pub fn is_empty(&self) -> bool {
        self.max_total_ms.is_none()
            && self.max_ms.is_empty()
            && self.baseline.is_none()
            && self.forbid.is_empty()
            && !self.forbid_blind_spots
    }
}

/// Which gate a result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    MaxTotalMs,
    MaxMs,
    MaxRegression,
    Forbid,
    ForbidBlindSpots,
}

impl GateKind {
    pub fn flag(self) -> &'static str {
        match self {
            GateKind::MaxTotalMs => "--max-total-ms",
            GateKind::MaxMs => "--max-ms",
            GateKind::MaxRegression => "--max-regression",
            GateKind::Forbid => "--forbid",
            GateKind::ForbidBlindSpots => "--forbid-blind-spots",
        }
    }
}

/// One gate's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub gate: GateKind,
    /// What was measured: `total`, a module, a package.
    pub subject: String,
    pub passed: bool,
    /// The measured value (ms, or percent for a regression), if any.
    pub value: Option<f64>,
    /// The limit it was held against (ms, or percent).
    pub limit: Option<f64>,
    /// One line for people: which module, how much, against what.
    pub message: String,
}

/// All gates' outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// How many runs the medians came from.
    pub runs: usize,
    pub baseline_runs: usize,
    pub median_total_ms: f64,
    pub median_imports: u64,
    pub results: Vec<GateResult>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &GateResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

fn limit_ms(ms: f64) -> String {
    human((ms * 1e6).round().max(0.0) as u64)
}

/// "median of 3 runs", "1 run".
fn runs_said(n: usize) -> String {
    if n == 1 {
        "1 run".to_owned()
    } else {
        format!("median of {n} runs")
    }
}

/// Evaluates the gates on runs (at least one) of the program.
pub fn evaluate(gates: &Gates, runs: &[Profile]) -> Verdict {
    let med = median::of_runs(runs);
    let said = runs_said(runs.len());
    let mut results = Vec::new();
    if let Some(limit) = gates.max_total_ms {
        let value = ms(med.total_ns);
        let passed = value <= limit;
        let cmp = if passed { "<=" } else { ">" };
        results.push(GateResult {
            gate: GateKind::MaxTotalMs,
            subject: "total".into(),
            passed,
            value: Some(value),
            limit: Some(limit),
            message: format!("total import time {} ({said}) {cmp} limit {}", human(med.total_ns), limit_ms(limit)),
        });
    }
    for (module, limit) in &gates.max_ms {
        let cost = med.module(module);
        let ns = cost.map_or(0, |c| c.cumulative_ns);
        let value = ms(ns);
        let passed = value <= *limit;
        let message = match cost {
            None => format!("{module}: not imported in any run, within its limit {}", limit_ms(*limit)),
            Some(_) => format!(
                "{module}: {} cumulative ({said}) {} limit {}",
                human(ns),
                if passed { "<=" } else { ">" },
                limit_ms(*limit)
            ),
        };
        results.push(GateResult {
            gate: GateKind::MaxMs,
            subject: module.clone(),
            passed,
            value: Some(value),
            limit: Some(*limit),
            message,
        });
    }
    if let Some((base_runs, limit)) = &gates.baseline {
        let base = median::of_runs(base_runs);
        let change = percent(base.total_ns, med.total_ns);
        let passed = change.is_none_or(|c| c <= *limit);
        let pct = change.map_or_else(|| "n/a (the baseline has no import time)".to_owned(), |c| format!("{c:+.1}%"));
        results.push(GateResult {
            gate: GateKind::MaxRegression,
            subject: "total".into(),
            passed,
            value: change,
            limit: Some(*limit),
            message: format!(
                "total import time {} ({said}) against baseline {} ({}): {pct} {} limit +{limit}%",
                human(med.total_ns),
                human(base.total_ns),
                runs_said(base_runs.len()),
                if passed { "<=" } else { ">" },
            ),
        });
    }
    for package in &gates.forbid {
        results.push(forbid(package, runs, &med));
    }
    if gates.forbid_blind_spots {
        results.extend(blind_spots(gates, runs));
    }
    Verdict {
        runs: runs.len(),
        baseline_runs: gates.baseline.as_ref().map_or(0, |(b, _)| b.len()),
        median_total_ms: ms(med.total_ns),
        median_imports: med.imports,
        results,
    }
}

fn forbid(package: &str, runs: &[Profile], med: &Profile) -> GateResult {
    let loaded_in = |r: &Profile| r.modules.iter().any(|(k, c)| k.is_within(package) && c.loaded());
    let hits = runs.iter().filter(|r| loaded_in(r)).count();
    let mut result = GateResult {
        gate: GateKind::Forbid,
        subject: package.to_owned(),
        passed: hits == 0,
        value: None,
        limit: None,
        message: format!("{package}: not imported in any of {} run(s), as required", runs.len()),
    };
    if hits > 0 {
        // The outermost forbidden module loaded, with who imported it.
        let (key, cost) = med
            .modules
            .iter()
            .filter(|(k, _)| k.is_within(package))
            .max_by_key(|(k, c)| (c.cumulative_ns, std::cmp::Reverse(k.module.len())))
            .expect("a run loaded it, so the medians list it");
        let by = match &cost.first_importer {
            Some(k) => format!("imported by {}", k.shown()),
            None => "imported by top-level code".to_owned(),
        };
        result.value = Some(ms(cost.cumulative_ns));
        result.message = format!(
            "{package}: forbidden, but {} was imported in {hits} of {} run(s) ({by}; {} cumulative, median)",
            key.shown(),
            runs.len(),
            human(cost.cumulative_ns)
        );
    }
    result
}

fn blind_spots(gates: &Gates, runs: &[Profile]) -> Vec<GateResult> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in runs {
        for b in &r.blind_spots {
            if gates.allow_blind_spots.iter().any(|a| a == b) {
                continue;
            }
            match seen.iter_mut().find(|(m, _)| m == b) {
                Some((_, n)) => *n += 1,
                None => seen.push((b.clone(), 1)),
            }
        }
    }
    if seen.is_empty() {
        return vec![GateResult {
            gate: GateKind::ForbidBlindSpots,
            subject: "blind spots".into(),
            passed: true,
            value: Some(0.0),
            limit: Some(0.0),
            message: format!("no package imported outside the probes in {} run(s)", runs.len()),
        }];
    }
    seen.into_iter()
        .map(|(module, n)| GateResult {
            gate: GateKind::ForbidBlindSpots,
            message: format!(
                "{}: imported outside the probes (probably importlib.import_module) in {n} of {} run(s): \
                 its own time is hidden in another import's self time",
                crate::report::names::shown(&module, crate::events::NameState::Full),
                runs.len()
            ),
            subject: module,
            passed: false,
            value: Some(n as f64),
            limit: Some(0.0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::profile::{ModuleCost, ModuleKey};

    fn run(total_ms: u64, modules: &[(&str, u64)]) -> Profile {
        let mut p = Profile { total_ns: total_ms * 1_000_000, imports: modules.len() as u64, ..Default::default() };
        for &(m, cum_ms) in modules {
            let cost = ModuleCost {
                imports: 1,
                cumulative_ns: cum_ms * 1_000_000,
                first_importer: Some(ModuleKey::full("app")),
                ..Default::default()
            };
            p.modules.insert(ModuleKey::full(m), cost);
        }
        p
    }

    #[test]
    fn total_gate_on_the_median() {
        let runs = [run(10, &[]), run(50, &[]), run(12, &[])];
        let gates = Gates { max_total_ms: Some(12.0), ..Default::default() };
        let v = evaluate(&gates, &runs);
        assert!(v.passed(), "median 12 <= 12: {:?}", v.results);
        assert_eq!(v.runs, 3);
        let v = evaluate(&Gates { max_total_ms: Some(11.5), ..Default::default() }, &runs);
        assert!(!v.passed());
        assert_eq!(v.results[0].message, "total import time 12.00 ms (median of 3 runs) > limit 11.50 ms");
    }

    #[test]
    fn module_gate_passes_an_absent_module_and_fails_a_slow_one() {
        let runs = [run(10, &[("json", 4)])];
        let gates = Gates { max_ms: vec![("json".into(), 3.0), ("yaml".into(), 1.0)], ..Default::default() };
        let v = evaluate(&gates, &runs);
        assert_eq!(v.failures().count(), 1);
        assert_eq!(v.results[0].message, "json: 4.00 ms cumulative (1 run) > limit 3.00 ms");
        assert!(v.results[1].passed && v.results[1].message.contains("not imported"));
    }

    #[test]
    fn regression_against_the_baseline_median() {
        let base = vec![run(100, &[]), run(100, &[])];
        let gates = Gates { baseline: Some((base, 10.0)), ..Default::default() };
        assert!(evaluate(&gates, &[run(110, &[])]).passed());
        let v = evaluate(&gates, &[run(111, &[])]);
        assert!(!v.passed());
        assert!(v.results[0].message.contains("+11.0% > limit +10%"), "{}", v.results[0].message);
        assert_eq!(v.baseline_runs, 2);
    }

    #[test]
    fn forbidden_packages_and_their_submodules() {
        let runs = [run(1, &[("pandas.core", 3), ("pandas", 9)]), run(1, &[])];
        let gates = Gates { forbid: vec!["pandas".into(), "numpy".into()], ..Default::default() };
        let v = evaluate(&gates, &runs);
        assert_eq!(
            v.results[0].message,
            "pandas: forbidden, but pandas was imported in 1 of 2 run(s) (imported by app; 4.50 ms cumulative, median)"
        );
        assert!(v.results[1].passed);
        // A failed attempt is not a load.
        let mut failed = run(1, &[("pandas", 1)]);
        failed.modules.values_mut().for_each(|c| c.failed = 1);
        assert!(evaluate(&gates, &[failed]).passed());
    }

    #[test]
    fn blind_spots_fail_unless_allowed() {
        let mut r = run(1, &[]);
        r.blind_spots = vec!["numexpr".into(), "scipy.optimize".into()];
        let gates = Gates { forbid_blind_spots: true, ..Default::default() };
        let v = evaluate(&gates, &[r.clone()]);
        assert_eq!(v.failures().count(), 2);
        assert!(v.results[0].message.starts_with("numexpr: imported outside the probes"));
        let allowed = Gates { allow_blind_spots: vec!["numexpr".into(), "scipy.optimize".into()], ..gates };
        assert!(evaluate(&allowed, &[r]).passed());
    }
}
