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
use crate::events::NameState;
use serde::Serialize;
use serde_json::json;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// One import's event (typed, not a `serde_json::Value`: a 100,000-import
/// trace renders in a fraction of the time and memory).
#[derive(Serialize)]
struct ImportEvent<'a> {
    name: String,
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    /// Instant events' scope (`t`: the thread).
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    pid: u32,
    tid: u32,
    args: Args<'a>,
}

#[derive(Serialize)]
struct Args<'a> {
    module: &'a str,
    #[serde(skip_serializing_if = "NameState::is_full")]
    name: NameState,
    found: Option<bool>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cumulative_us: Option<f64>,
}

/// Renders `{"traceEvents":[...], ...}`.
pub fn render(forest: &Forest) -> String {
    let mut meta = Vec::new();
    for (pi, p) in forest.processes.iter().enumerate() {
        let pid = p.info.pid;
        let name = if p.info.command.is_empty() { format!("pid {pid}") } else { p.info.command.clone() };
        meta.push(json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}}));
        meta.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pi}}));
        for (ti, &tid) in p.threads.iter().enumerate() {
            let tname = super::threads::thread(pid, tid);
            meta.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": tname}}));
            meta.push(
                json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": ti}}),
            );
        }
    }
    let other = json!({
        "exporter": concat!("importprobe ", env!("CARGO_PKG_VERSION")),
        "lost_events": forest.lost_events,
        "anomalies": forest.anomalies.len(),
        "blind_spots": crate::events::blind_spots::find(forest).len(),
        "laid_out_from_importtime_log": forest.is_laid_out(),
    });
    // Written piece by piece: the metadata, then one import at a time.
    let mut out = String::with_capacity(forest.imports.len() * 200 + 1024);
    out.push_str("{\"displayTimeUnit\":\"ms\",\"otherData\":");
    out.push_str(&other.to_string());
    out.push_str(",\"traceEvents\":[");
    let mut first = true;
    let mut push = |out: &mut String, text: String| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push_str(&text);
    };
    for m in meta {
        push(&mut out, m.to_string());
    }
    for (pid, tid) in forest.threads() {
        for id in forest.preorder(pid, tid) {
            let imp = &forest.imports[id];
            let timed = imp.state != ImportState::Cached;
            let ev = ImportEvent {
                name: super::folded::frame(imp),
                cat: "import",
                ph: match imp.state {
                    ImportState::Cached => "i",
                    ImportState::Unfinished => "B",
                    _ => "X",
                },
                ts: us(imp.start_ns),
                dur: matches!(imp.state, ImportState::Complete | ImportState::BegunBeforeTrace)
                    .then(|| us(forest.cumulative_ns(id))),
                s: (!timed).then_some("t"),
                pid,
                tid,
                args: Args {
                    module: &imp.module,
                    name: imp.name,
                    found: imp.found,
                    state: super::json::state_name(imp.state),
                    self_us: timed.then(|| us(forest.self_ns(id))),
                    cumulative_us: timed.then(|| us(forest.cumulative_ns(id))),
                },
            };
            push(&mut out, serde_json::to_string(&ev).expect("plain data serializes"));
        }
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s, two_threads};
    use serde_json::Value;

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
