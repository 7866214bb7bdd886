//! Chrome's Trace Event format, which Perfetto and chrome://tracing open:
//! one complete event (`"ph":"X"`, with `dur`) per finished import on its
//! process/thread track, `M` metadata events naming processes and threads,
//! and unfinished imports as a `B` event with no `E`. Timestamps are
//! fractional microseconds (nanosecond resolution), so nested slices never
//! falsely overlap.

use crate::events::forest::{Forest, ImportState};
use serde_json::{json, Value};

/// Renders `{"traceEvents":[...]}`.
pub fn render(forest: &Forest) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    let mut events: Vec<Value> = Vec::with_capacity(forest.imports.len() + 8);
    for p in &forest.processes {
        let name = if p.info.command.is_empty() { format!("pid {}", p.info.pid) } else { p.info.command.clone() };
        events.push(json!({"name": "process_name", "ph": "M", "pid": p.info.pid, "tid": 0, "args": {"name": name}}));
        for (i, &tid) in p.threads.iter().enumerate() {
            let tname = if i == 0 && tid == p.info.pid { "main".to_owned() } else { format!("thread {tid}") };
            events.push(
                json!({"name": "thread_name", "ph": "M", "pid": p.info.pid, "tid": tid, "args": {"name": tname}}),
            );
        }
    }
    for (id, imp) in forest.imports.iter().enumerate() {
        let args = json!({
            "found": imp.found,
            "self_us": us(forest.self_ns(id)),
            "state": crate::report::json::state_name(imp.state),
        });
        let mut ev = json!({
            "name": imp.display_name(),
            "cat": "import",
            "ts": us(imp.start_ns),
            "pid": imp.pid,
            "tid": imp.tid,
            "args": args,
        });
        match imp.state {
            ImportState::Unfinished => ev["ph"] = json!("B"),
            ImportState::Cached => {
                ev["ph"] = json!("i");
                ev["s"] = json!("t");
            }
            _ => {
                ev["ph"] = json!("X");
                ev["dur"] = json!(us(forest.cumulative_ns(id)));
            }
        }
        events.push(ev);
    }
    let mut out =
        serde_json::to_string(&json!({"traceEvents": events, "displayTimeUnit": "ms"})).expect("plain data serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s};

    #[test]
    fn one_complete_event_per_import_and_metadata() {
        let v: Value = serde_json::from_str(&render(&forest(package_and_failure()))).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        let meta: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "M").collect();
        assert_eq!(meta.len(), 2, "a process and a thread name");
        let x: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 4);
        assert_eq!(x[0]["name"], "a.b");
        assert_eq!(x[0]["ts"], 1.0);
        assert_eq!(x[0]["dur"], 11.0);
        assert_eq!(x[3]["args"]["found"], false);
    }

    #[test]
    fn unfinished_imports_are_begin_events() {
        let v: Value = serde_json::from_str(&render(&forest(vec![s(1_500, 1, 0, "slow")]))).unwrap();
        let b: Vec<&Value> = v["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "B").collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0]["ts"], 1.5);
    }
}
