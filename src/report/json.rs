//! JSON lines, one object per import, in the order the forest holds them
//! (start order; an import begun before the trace comes after the imports
//! it encloses): everything the pairing knows, in nanoseconds, for jq or a
//! notebook.
//!
//! ```text
//! {"id":1,"parent":0,"module":"a","pid":1,"tid":7,"depth":1,"start_ns":2000,"end_ns":5000,
//!  "cumulative_ns":3000,"self_ns":3000,"found":true,"state":"complete","parents":["a.b"]}
//! ```
//!
//! `id` numbers the objects from 0; `parent` is the `id` of the enclosing
//! import (`null` at top level); `parents` names all enclosing imports,
//! outermost first. `module` is the raw name (any string `__import__` got).
//! `state` is `complete`, `unfinished` (no done seen: `end_ns` and `found`
//! are null, the times run to the end of the trace), `begun-before-trace`
//! (no start seen: `start_ns` is the beginning of the trace) or `cached`
//! (`-X importtime=2`). `name` is present when the name is not whole:
//! `cut` or `missing`.

use crate::events::forest::{Forest, ImportState};
use crate::events::NameState;
use serde::Serialize;

/// One import as written.
#[derive(Debug, Serialize)]
pub struct ImportRecord<'a> {
    pub id: usize,
    pub parent: Option<usize>,
    pub module: &'a str,
    #[serde(skip_serializing_if = "NameState::is_full")]
    pub name: NameState,
    pub pid: u32,
    pub tid: u32,
    pub depth: u32,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    pub cumulative_ns: u64,
    pub self_ns: u64,
    pub found: Option<bool>,
    pub state: &'static str,
    /// Enclosing imports, outermost first.
    pub parents: Vec<&'a str>,
}

/// The state's JSON spelling.
pub fn state_name(state: ImportState) -> &'static str {
    match state {
        ImportState::Complete => "complete",
        ImportState::Unfinished => "unfinished",
        ImportState::BegunBeforeTrace => "begun-before-trace",
        ImportState::Cached => "cached",
    }
}

/// The records of all imports, in start order.
pub fn records(forest: &Forest) -> Vec<ImportRecord<'_>> {
    forest
        .imports
        .iter()
        .enumerate()
        .map(|(id, imp)| ImportRecord {
            id,
            parent: imp.parent,
            module: &imp.module,
            name: imp.name,
            pid: imp.pid,
            tid: imp.tid,
            depth: imp.depth,
            start_ns: imp.start_ns,
            end_ns: imp.end_ns,
            cumulative_ns: forest.cumulative_ns(id),
            self_ns: forest.self_ns(id),
            found: imp.found,
            state: state_name(imp.state),
            parents: forest.parents(id),
        })
        .collect()
}

/// Renders JSON lines.
pub fn render(forest: &Forest) -> String {
    records(forest).iter().map(|r| serde_json::to_string(r).expect("plain data serializes") + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s, two_threads};
    use serde_json::{json, Value};

    fn parse(text: &str) -> Vec<Value> {
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn one_object_per_import_with_its_parents() {
        let v = parse(&render(&forest(package_and_failure())));
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[1],
            json!({"id":1,"parent":0,"module":"a","pid":1,"tid":7,"depth":1,"start_ns":2000,"end_ns":5000,
                   "cumulative_ns":3000,"self_ns":3000,"found":true,"state":"complete","parents":["a.b"]})
        );
        assert_eq!(v[0]["self_ns"], 4500);
        assert_eq!(v[3]["found"], false);
        assert_eq!(v[3]["parents"], json!([]));
    }

    #[test]
    fn threads_and_open_imports() {
        let v = parse(&render(&forest(two_threads())));
        let tids: Vec<u64> = v.iter().map(|o| o["tid"].as_u64().unwrap()).collect();
        assert_eq!(tids, [1, 2, 1, 2]);
        assert_eq!(v[3]["parents"], json!(["y"]));
        let open = parse(&render(&forest(vec![s(5, 1, 0, "slow")])));
        assert_eq!(open[0]["end_ns"], Value::Null);
        assert_eq!(open[0]["found"], Value::Null);
        assert_eq!(open[0]["state"], "unfinished");
    }
}
