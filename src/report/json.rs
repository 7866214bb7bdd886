//! JSON lines, one object per import, in start order: everything the
//! pairing knows, in nanoseconds, for jq or a notebook.
//!
//! ```text
//! {"module":"a","pid":1,"tid":7,"depth":1,"start_ns":2000,"end_ns":5000,
//!  "cumulative_ns":3000,"self_ns":3000,"found":true,"parents":["a.b"]}
//! ```
//!
//! An import still open when the trace ended has `end_ns`, `cumulative_ns`,
//! `self_ns` and `found` null.

use super::tree::ImportTree;
use serde::Serialize;

/// One import as written.
#[derive(Debug, Serialize)]
pub struct ImportRecord<'a> {
    pub module: &'a str,
    pub pid: u32,
    pub tid: u32,
    pub depth: u32,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    pub cumulative_ns: Option<u64>,
    pub self_ns: Option<u64>,
    pub found: Option<bool>,
    /// Enclosing imports, outermost first.
    pub parents: Vec<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The records of all imports, in start order.
pub fn records(tree: &ImportTree) -> Vec<ImportRecord<'_>> {
    tree.imports
        .iter()
        .enumerate()
        .map(|(id, imp)| ImportRecord {
            module: &imp.module,
            pid: imp.pid,
            tid: imp.tid,
            depth: imp.depth,
            start_ns: imp.start_ns,
            end_ns: imp.end_ns,
            cumulative_ns: imp.cumulative_ns(),
            self_ns: tree.self_ns(id),
            found: imp.found,
            parents: tree.parents(id),
            truncated: imp.truncated,
        })
        .collect()
}

/// Renders JSON lines.
pub fn render(tree: &ImportTree) -> String {
    records(tree).iter().map(|r| serde_json::to_string(r).expect("plain data serializes") + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tree::tests::{package_and_failure, s, two_threads};
    use serde_json::{json, Value};

    fn parse(text: &str) -> Vec<Value> {
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn one_object_per_import_with_its_parents() {
        let v = parse(&render(&ImportTree::build(&package_and_failure())));
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[1],
            json!({"module":"a","pid":1,"tid":7,"depth":1,"start_ns":2000,"end_ns":5000,
                   "cumulative_ns":3000,"self_ns":3000,"found":true,"parents":["a.b"]})
        );
        assert_eq!(v[0]["self_ns"], 4500);
        assert_eq!(v[3]["found"], false);
        assert_eq!(v[3]["parents"], json!([]));
    }

    #[test]
    fn threads_and_open_imports() {
        let v = parse(&render(&ImportTree::build(&two_threads())));
        let tids: Vec<u64> = v.iter().map(|o| o["tid"].as_u64().unwrap()).collect();
        assert_eq!(tids, [1, 2, 1, 2]);
        assert_eq!(v[3]["parents"], json!(["y"]));
        let open = parse(&render(&ImportTree::build(&[s(5, 1, 0, "slow")])));
        assert_eq!(open[0]["end_ns"], Value::Null);
        assert_eq!(open[0]["found"], Value::Null);
    }
}
