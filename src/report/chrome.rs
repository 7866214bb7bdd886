//! Chrome's Trace Event format (the JSON Object Format), which Perfetto and
//! chrome://tracing open:
//!
//! - `M` metadata events name each process (`process_name`: its command)
//!   and thread (`thread_name`: `thread 4321 (main)`), and keep them in the
//!   recording's order (`process_sort_index`, `thread_sort_index`);
//! - one complete event (`"ph":"X"`, `ts` and `dur`) per finished import,
//!   on its process and thread track, nested imports inside it;
//! - an unfinished import is a `B` event with no `E`: the viewers draw it to
//!   the end of the trace, marked as not ended; `-X importtime=2` cached
//!   lines are thread-scoped instant events (`"ph":"i"`);
//! - `ts` and `dur` are fractional microseconds, keeping the nanoseconds,
//!   so nested slices never falsely overlap;
//! - `args` hold the raw module name, `found`, `state`, self and cumulative
//!   µs (and `name` for a cut or missing name); the event's `name` is the
//!   name as [`super::names`] writes it, with a mark for failed, unfinished
//!   and begun-before-trace imports;
//! - `otherData` (shown by chrome://tracing as metadata) counts lost
//!   events, anomalies and blind spots.
//!
//! Events are written thread by thread, each in pre-order, so a parent
//! always precedes the imports nested in it, even at equal timestamps.

use crate::events::forest::{Forest, ImportState};
use serde_json::{json, Value};

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Renders `{"traceEvents":[...], ...}`.
pub fn render(forest: &Forest) -> String {
    let mut events: Vec<Value> = Vec::with_capacity(forest.imports.len() + 8);
    for (pi, p) in forest.processes.iter().enumerate() {
        let pid = p.info.pid;
        let name = if p.info.command.is_empty() { format!("pid {pid}") } else { p.info.command.clone() };
        events.push(json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}}));
        events.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pi}}));
        for (ti, &tid) in p.threads.iter().enumerate() {
            let tname = super::threads::thread(pid, tid);
            events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": tname}}));
            events.push(
                json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": ti}}),
            );
        }
    }
    for (pid, tid) in forest.threads() {
        for id in forest.preorder(pid, tid) {
            let imp = &forest.imports[id];
            let mut args = json!({
                "module": imp.module,
                "found": imp.found,
                "state": super::json::state_name(imp.state),
            });
            if !imp.name.is_full() {
                args["name"] = json!(imp.name);
            }
            let mut ev = json!({
                "name": super::folded::frame(imp),
                "cat": "import",
                "ts": us(imp.start_ns),
                "pid": pid,
                "tid": tid,
            });
            match imp.state {
                ImportState::Cached => {
                    ev["ph"] = json!("i");
                    ev["s"] = json!("t");
                }
                state => {
                    args["self_us"] = json!(us(forest.self_ns(id)));
                    args["cumulative_us"] = json!(us(forest.cumulative_ns(id)));
                    if state == ImportState::Unfinished {
                        ev["ph"] = json!("B");
                    } else {
                        ev["ph"] = json!("X");
                        ev["dur"] = json!(us(forest.cumulative_ns(id)));
                    }
                }
            }
            ev["args"] = args;
            events.push(ev);
        }
    }
    let other = json!({
        "exporter": concat!("importprobe ", env!("CARGO_PKG_VERSION")),
        "lost_events": forest.lost_events,
        "anomalies": forest.anomalies.len(),
        "blind_spots": crate::events::blind_spots::find(forest).len(),
        "laid_out_from_importtime_log": forest.is_laid_out(),
    });
    let doc = json!({"traceEvents": events, "displayTimeUnit": "ms", "otherData": other});
    let mut out = serde_json::to_string(&doc).expect("JSON values serialize");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s, two_threads};

    fn events(f: &Forest) -> Vec<Value> {
        let v: Value = serde_json::from_str(&render(f)).unwrap();
        v["traceEvents"].as_array().unwrap().clone()
    }

    #[test]
    fn one_complete_event_per_import_and_metadata() {
        let evs = events(&forest(package_and_failure()));
        let meta: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "M").collect();
        assert_eq!(meta.len(), 4, "process and thread names and sort indexes");
        let x: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 4);
        assert_eq!((&x[0]["name"], &x[0]["ts"], &x[0]["dur"]), (&json!("a.b"), &json!(1.0), &json!(11.0)));
        assert_eq!(x[3]["name"], "nope [failed]");
        assert_eq!(x[3]["args"]["found"], false);
        assert_eq!(x[3]["args"]["module"], "nope");
    }

    #[test]
    fn unfinished_imports_are_begin_events_and_threads_are_named() {
        let evs = events(&forest(vec![s(1_500, 1, 0, "slow")]));
        let b: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "B").collect();
        assert_eq!((b.len(), &b[0]["ts"], &b[0]["name"]), (1, &json!(1.5), &json!("slow [unfinished]")));
        assert!(evs.iter().all(|e| e["ph"] != "E"));
        let evs = events(&forest(two_threads()));
        let names: Vec<&Value> =
            evs.iter().filter(|e| e["name"] == "thread_name").map(|e| &e["args"]["name"]).collect();
        assert_eq!(names, [&json!("thread 1 (main)"), &json!("thread 2")]);
    }
}
