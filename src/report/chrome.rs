//! Chrome's trace event format (chrome://tracing, Perfetto, speedscope):
//! one complete event (`"ph":"X"`) per finished import, on its pid/tid
//! track, timestamps in microseconds. Nesting shows as stacked slices.

use super::tree::ImportTree;
use serde_json::json;

/// Renders `{"traceEvents":[...]}`.
pub fn render(tree: &ImportTree) -> String {
    let events: Vec<serde_json::Value> = tree
        .imports
        .iter()
        .enumerate()
        .filter_map(|(id, imp)| {
            let cum = imp.cumulative_ns()?;
            Some(json!({
                "name": imp.module,
                "cat": "import",
                "ph": "X",
                "ts": imp.start_ns as f64 / 1000.0,
                "dur": cum as f64 / 1000.0,
                "pid": imp.pid,
                "tid": imp.tid,
                "args": {"found": imp.found, "self_us": tree.self_ns(id).map(|s| s as f64 / 1000.0)},
            }))
        })
        .collect();
    let mut out =
        serde_json::to_string(&json!({"traceEvents": events, "displayTimeUnit": "ms"})).expect("plain data serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tree::tests::package_and_failure;

    #[test]
    fn one_complete_event_per_import() {
        let v: serde_json::Value = serde_json::from_str(&render(&ImportTree::build(&package_and_failure()))).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[0]["name"], "a.b");
        assert_eq!(evs[0]["ph"], "X");
        assert_eq!(evs[0]["ts"], 1.0);
        assert_eq!(evs[0]["dur"], 11.0);
        assert_eq!(evs[3]["args"]["found"], false);
    }
}
