//! Two recordings compared module by module (`importprobe diff`).
//!
//! Modules are matched by name (see [`super::profile`] for why, and how a
//! module imported several times or in several processes counts). Every
//! module whose cost or import count changed is listed, sorted by impact:
//! the size of the change in self time (the time that module itself is
//! responsible for), then in cumulative time, then by name. A module
//! "started failing" when it failed in NEW but had no failed import in
//! BASE, and "stopped failing" the other way round; failures are only
//! compared when both recordings know them (an `-X importtime` log does
//! not say which imports failed).

use super::profile::{ModuleCost, ModuleKey, Profile};
use serde::Serialize;

/// How a module's presence changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Only in NEW.
    Added,
    /// Only in BASE.
    Removed,
    /// In both.
    Changed,
}

/// One module's change.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleChange {
    #[serde(flatten)]
    pub key: ModuleKey,
    pub status: Status,
    pub base: Option<ModuleCost>,
    pub new: Option<ModuleCost>,
    pub delta_self_ns: i64,
    pub delta_cumulative_ns: i64,
    pub started_failing: bool,
    pub stopped_failing: bool,
}

/// Two profiles compared.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub base_total_ns: u64,
    pub new_total_ns: u64,
    pub delta_total_ns: i64,
    /// Relative change of the total, `null` from a zero base.
    pub delta_total_percent: Option<f64>,
    pub base_imports: u64,
    pub new_imports: u64,
    /// False when a side is an `-X importtime` log, which does not record
    /// failures: then nothing "started" or "stopped failing".
    pub failures_compared: bool,
    /// Sorted by impact.
    pub modules: Vec<ModuleChange>,
}

impl Diff {
    pub fn added(&self) -> impl Iterator<Item = &ModuleChange> {
        self.modules.iter().filter(|m| m.status == Status::Added)
    }

    pub fn removed(&self) -> impl Iterator<Item = &ModuleChange> {
        self.modules.iter().filter(|m| m.status == Status::Removed)
    }

    pub fn started_failing(&self) -> impl Iterator<Item = &ModuleChange> {
        self.modules.iter().filter(|m| m.started_failing)
    }
}

fn delta(base: u64, new: u64) -> i64 {
    i64::try_from(new).unwrap_or(i64::MAX).saturating_sub(i64::try_from(base).unwrap_or(i64::MAX))
}

/// Compares BASE with NEW.
pub fn diff(base: &Profile, new: &Profile) -> Diff {
    let zero = ModuleCost::default();
    let failures_compared = !base.laid_out && !new.laid_out;
    let mut modules: Vec<ModuleChange> = Vec::new();
    let keys: std::collections::BTreeSet<&ModuleKey> = base.modules.keys().chain(new.modules.keys()).collect();
    for key in keys {
        let (b, n) = (base.modules.get(key), new.modules.get(key));
        let (bc, nc) = (b.unwrap_or(&zero), n.unwrap_or(&zero));
        let status = match (b, n) {
            (None, _) => Status::Added,
            (_, None) => Status::Removed,
            _ => Status::Changed,
        };
        let change = ModuleChange {
            key: key.clone(),
            status,
            base: b.cloned(),
            new: n.cloned(),
            delta_self_ns: delta(bc.self_ns, nc.self_ns),
            delta_cumulative_ns: delta(bc.cumulative_ns, nc.cumulative_ns),
            started_failing: failures_compared && b.is_some() && bc.failed == 0 && nc.failed > 0,
            stopped_failing: failures_compared && n.is_some() && bc.failed > 0 && nc.failed == 0,
        };
        let same = status == Status::Changed
            && change.delta_self_ns == 0
            && change.delta_cumulative_ns == 0
            && bc.imports == nc.imports
            && (bc.failed == nc.failed || !failures_compared)
            && bc.cached == nc.cached;
        if !same {
            modules.push(change);
        }
    }
    modules.sort_by(|a, b| {
        b.delta_self_ns
            .unsigned_abs()
            .cmp(&a.delta_self_ns.unsigned_abs())
            .then(b.delta_cumulative_ns.unsigned_abs().cmp(&a.delta_cumulative_ns.unsigned_abs()))
            .then_with(|| a.key.cmp(&b.key))
    });
    Diff {
        base_total_ns: base.total_ns,
        new_total_ns: new.total_ns,
        delta_total_ns: delta(base.total_ns, new.total_ns),
        delta_total_percent: super::duration::percent(base.total_ns, new.total_ns),
        base_imports: base.imports,
        new_imports: new.imports,
        failures_compared,
        modules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(modules: &[(&str, u64, u64, u64)]) -> Profile {
        let mut p = Profile::default();
        for &(name, self_ns, cum, failed) in modules {
            p.modules.insert(
                ModuleKey::full(name),
                ModuleCost { imports: 1, failed, self_ns, cumulative_ns: cum, ..Default::default() },
            );
            p.imports += 1;
        }
        p.total_ns = modules.iter().map(|m| m.1).sum();
        p
    }

    #[test]
    fn lists_changes_by_impact_with_added_removed_and_new_failures() {
        let base = profile(&[("a", 100, 500, 0), ("b", 300, 300, 0), ("c", 50, 50, 0), ("same", 7, 7, 0)]);
        let new = profile(&[
            ("a", 150, 2_000, 0),
            ("b", 100, 100, 0),
            ("c", 50, 50, 1),
            ("d", 1_000, 1_000, 0),
            ("same", 7, 7, 0),
        ]);
        let d = diff(&base, &new);
        let order: Vec<&str> = d.modules.iter().map(|m| m.key.module.as_str()).collect();
        assert_eq!(order, ["d", "b", "a", "c"], "by |self change|; unchanged left out");
        assert_eq!(d.modules[0].status, Status::Added);
        assert_eq!(d.modules[1].delta_self_ns, -200);
        assert_eq!(d.modules[2].delta_cumulative_ns, 1_500);
        assert_eq!(d.started_failing().map(|m| m.key.module.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(d.delta_total_ns, 1_307 - 457);
        let back = diff(&new, &base);
        assert_eq!(back.removed().count(), 1);
        assert!(back.modules.iter().any(|m| m.stopped_failing));
        assert_eq!(back.started_failing().count(), 0);
        let log = Profile { laid_out: true, ..base.clone() };
        let across = diff(&log, &new);
        assert!(!across.failures_compared && across.started_failing().count() == 0, "a log does not know failures");
    }
}
