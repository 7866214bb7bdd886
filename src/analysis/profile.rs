//! The cost of each module in one recording: the unit in which runs are
//! compared (`diff`) and gated (`check`).
//!
//! Runs are matched by module name, never by position, pid or thread: pids
//! differ from run to run, and which thread happens to import a module
//! shared by several threads is timing. So a module's cost in a recording
//! is the sum over all its imports, in every process and thread: a module
//! imported twice (a body that raised is imported again; two processes both
//! import it; two threads raced for it) costs both imports, and `imports`
//! says how many there were. A cut name is matched as the prefix it is
//! (it may stand for several modules: it is marked so wherever shown); all
//! unencodable names are one key. `-X importtime=2` cached lines cost
//! nothing and are counted apart.

use crate::events::forest::{Forest, ImportState};
use crate::events::NameState;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A module's identity across recordings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ModuleKey {
    pub module: String,
    #[serde(skip_serializing_if = "NameState::is_full")]
    pub name: NameState,
}

/// By name, then full before cut before missing.
impl Ord for ModuleKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.module.cmp(&other.module).then(self.name.flag().cmp(&other.name.flag()))
    }
}

impl PartialOrd for ModuleKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ModuleKey {
    pub fn full(module: impl Into<String>) -> Self {
        ModuleKey { module: module.into(), name: NameState::Full }
    }

    /// As reports show it (see [`crate::report::names`]).
    pub fn shown(&self) -> Cow<'_, str> {
        crate::report::names::shown(&self.module, self.name)
    }

    /// Whether this is `package` or one of its submodules.
    pub fn is_within(&self, package: &str) -> bool {
        self.name == NameState::Full
            && self.module.strip_prefix(package).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }
}

/// What one module cost in one recording (or the medians over several).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleCost {
    /// Imports with a probe pair.
    pub imports: u64,
    /// Of those, how many ended with found = 0.
    pub failed: u64,
    /// Of those, how many were not seen whole (unfinished, or begun before
    /// the trace): their times are lower bounds.
    pub partial: u64,
    /// `-X importtime=2` lines saying it was already loaded.
    pub cached: u64,
    pub self_ns: u64,
    pub cumulative_ns: u64,
    /// The module that imported it first; `None` for top-level code.
    #[serde(skip)]
    pub first_importer: Option<ModuleKey>,
}

impl ModuleCost {
    /// Whether it was loaded at least once (an import that did not fail, or
    /// a cached line).
    pub fn loaded(&self) -> bool {
        self.imports > self.failed || self.cached > 0
    }
}

/// The costs of all modules of one recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profile {
    /// Import time (see [`super::summary`]).
    pub total_ns: u64,
    pub imports: u64,
    pub modules: BTreeMap<ModuleKey, ModuleCost>,
    /// Packages found imported outside the probes ([`crate::events::blind_spots`]).
    pub blind_spots: Vec<String>,
    /// Events the tracer lost plus anomalies that mean lost or corrupt
    /// events: such a profile is missing imports.
    pub damage: u64,
    /// Times laid out from an `-X importtime` log (microsecond resolution).
    pub laid_out: bool,
}

impl Profile {
    pub fn of(forest: &Forest) -> Profile {
        let mut p = Profile {
            laid_out: forest.is_laid_out(),
            damage: forest.lost_events + forest.anomalies.iter().filter(|a| a.is_corruption()).count() as u64,
            blind_spots: crate::events::blind_spots::find(forest).into_iter().map(|b| b.module).collect(),
            ..Profile::default()
        };
        for (id, imp) in forest.imports.iter().enumerate() {
            let cost = p.modules.entry(ModuleKey { module: imp.module.clone(), name: imp.name }).or_default();
            if cost.imports == 0 && cost.cached == 0 {
                cost.first_importer = imp.parent.map(|q| {
                    let parent = &forest.imports[q];
                    ModuleKey { module: parent.module.clone(), name: parent.name }
                });
            }
            if imp.state == ImportState::Cached {
                cost.cached += 1;
                continue;
            }
            let cumulative = forest.cumulative_ns(id);
            cost.imports += 1;
            cost.failed += u64::from(imp.failed());
            cost.partial += u64::from(!imp.is_complete());
            cost.self_ns += forest.self_ns(id);
            cost.cumulative_ns += cumulative;
            p.imports += 1;
            if imp.parent.is_none() {
                p.total_ns += cumulative;
            }
        }
        p
    }

    /// The cost of a module by its full name.
    pub fn module(&self, name: &str) -> Option<&ModuleCost> {
        self.modules.get(&ModuleKey::full(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{d, forest, package_and_failure, s};

    #[test]
    fn sums_every_import_of_a_module() {
        let mut evs = package_and_failure();
        evs.extend([s(30_000, 7, 0, "nope"), d(30_600, 7, 0, "nope", false)]);
        let p = Profile::of(&forest(evs));
        let nope = p.module("nope").unwrap();
        assert_eq!((nope.imports, nope.failed, nope.cumulative_ns), (2, 2, 1_000));
        assert!(!nope.loaded());
        let json = p.module("json").unwrap();
        assert_eq!(json.first_importer, Some(ModuleKey::full("a.b")));
        assert_eq!(p.total_ns, 11_000 + 1_000);
        assert_eq!(p.imports, 5);
        assert_eq!(p.damage, 0);
    }

    #[test]
    fn packages_contain_their_submodules_only() {
        assert!(ModuleKey::full("numpy").is_within("numpy"));
        assert!(ModuleKey::full("numpy.core").is_within("numpy"));
        assert!(!ModuleKey::full("numpyx").is_within("numpy"));
        assert!(!ModuleKey { module: "numpy".into(), name: NameState::Cut }.is_within("numpy"));
    }
}
