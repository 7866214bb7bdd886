//! Modules loaded without firing the probes, found and named.
//!
//! `importlib.import_module()` goes through importlib's pure-Python path:
//! the module it loads fires neither probe (nor a `-X importtime` line),
//! but the `import` statements in its body do. On Debian's python3.11,
//! `import pandas, scipy.stats, requests` loads `numexpr`, `bottleneck`,
//! `scipy.integrate` and `scipy.optimize` that way. Such a module leaves a
//! trace: its submodules fire with a parent package that never fired, and
//! its own body time lands in the self time of the import that was running
//! when it was loaded. That is what is found here, per process.

use super::forest::{Forest, ImportId, ImportState};
use super::NameState;
use std::collections::HashMap;

/// A package that was imported outside the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindSpot {
    pub pid: u32,
    /// The package that never fired.
    pub module: String,
    /// Its submodules that did, in start order.
    pub children: Vec<ImportId>,
    /// The import running when its first seen submodule was imported: its
    /// self time contains the package's own body. `None`: top-level code.
    pub enclosing: Option<ImportId>,
}

impl BlindSpot {
    /// One line for people.
    pub fn describe(&self, forest: &Forest) -> String {
        let kids: Vec<String> = self.children.iter().take(3).map(|&c| forest.imports[c].display_name()).collect();
        let more =
            if self.children.len() > 3 { format!(" and {} more", self.children.len() - 3) } else { String::new() };
        let inside = match self.enclosing {
            Some(e) => format!("its own time is in the self time of {}", forest.imports[e].display_name()),
            None => "its own time is outside every traced import (top-level code)".to_owned(),
        };
        format!(
            "pid {}: {} was imported outside the probes (probably importlib.import_module(), or before tracing began): \
             {} fired without it; {inside}",
            self.pid,
            super::escape(&self.module),
            kids.join(", ") + &more
        )
    }
}

/// Every package whose submodules fired while it never did, in the order
/// its first submodule started.
pub fn find(forest: &Forest) -> Vec<BlindSpot> {
    // Earliest start of each module name, per process.
    let mut first_start: HashMap<(u32, &str), u64> = HashMap::new();
    for imp in &forest.imports {
        if imp.state != ImportState::Cached && imp.name == NameState::Full {
            let e = first_start.entry((imp.pid, imp.module.as_str())).or_insert(imp.start_ns);
            *e = (*e).min(imp.start_ns);
        }
    }
    let mut spots: Vec<BlindSpot> = Vec::new();
    let mut index: HashMap<(u32, String), usize> = HashMap::new();
    for (id, imp) in forest.imports.iter().enumerate() {
        if imp.state == ImportState::Cached || imp.name != NameState::Full {
            continue;
        }
        let Some((parent, _)) = imp.module.rsplit_once('.') else { continue };
        let end = imp.end_ns.unwrap_or(forest.last_ns);
        // `import a.b` fires `a` nested inside `a.b`: a parent that starts
        // before the child ends was imported through the probes.
        if first_start.get(&(imp.pid, parent)).is_some_and(|&s| s <= end) {
            continue;
        }
        match index.get(&(imp.pid, parent.to_owned())) {
            Some(&k) => spots[k].children.push(id),
            None => {
                index.insert((imp.pid, parent.to_owned()), spots.len());
                spots.push(BlindSpot {
                    pid: imp.pid,
                    module: parent.to_owned(),
                    children: vec![id],
                    enclosing: imp.parent,
                });
            }
        }
    }
    spots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{d, forest, s};

    #[test]
    fn a_package_loaded_by_import_module_is_named_with_its_children_and_enclosing_import() {
        // pandas' body calls importlib.import_module("numexpr"), whose body
        // imports numexpr.expressions and numexpr.utils.
        let f = forest(vec![
            s(0, 1, 0, "pandas"),
            s(10, 1, 1, "numexpr.expressions"),
            d(20, 1, 1, "numexpr.expressions", true),
            s(30, 1, 1, "numexpr.utils"),
            d(40, 1, 1, "numexpr.utils", true),
            d(100, 1, 0, "pandas", true),
        ]);
        let spots = find(&f);
        assert_eq!(spots.len(), 1);
        assert_eq!(spots[0].module, "numexpr");
        assert_eq!(spots[0].children.len(), 2);
        assert_eq!(spots[0].enclosing, Some(0));
        let line = spots[0].describe(&f);
        assert!(
            line.contains("numexpr was imported outside the probes") && line.contains("self time of pandas"),
            "{line}"
        );
    }

    #[test]
    fn parents_nested_in_their_child_or_imported_before_are_not_blind_spots() {
        let f = forest(vec![
            s(0, 1, 0, "a.b"),
            s(1, 1, 1, "a"),
            d(2, 1, 1, "a", true),
            d(3, 1, 0, "a.b", true),
            s(4, 1, 0, "a.c"),
            d(5, 1, 0, "a.c", true),
        ]);
        assert!(find(&f).is_empty());
        // The parent imported only after the child ended was not there in time.
        let late = forest(vec![s(0, 1, 0, "x.y"), d(1, 1, 0, "x.y", true), s(2, 1, 0, "x"), d(3, 1, 0, "x", true)]);
        assert_eq!(find(&late)[0].module, "x");
        assert_eq!(find(&late)[0].enclosing, None);
    }
}
