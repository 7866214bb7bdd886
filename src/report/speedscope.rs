//! speedscope's file format (<https://www.speedscope.app/file-format-schema.json>),
//! as evented profiles: one profile per thread (of every process), each an
//! ordered list of open (`O`) and close (`C`) events on frames shared by all
//! profiles (`shared.frames`, one per distinct frame name).
//!
//! Values are nanoseconds from the start of the recording, so all threads
//! share one time line and values stay well inside a JavaScript number's
//! exact range. A frame is named as in [`super::folded`]: the name as
//! [`super::names`] writes it, marked when the import failed, never
//! finished (closed at the end of its time so far) or began before the
//! trace. `-X importtime=2` cached lines have no time and are left out.
//!
//! speedscope requires events in non-decreasing `at` order and balanced
//! open/close pairs; both hold by construction (pre-order, and times
//! clamped so that no event goes back in time).

use crate::events::forest::{Forest, ImportId, ImportState};
use serde::Serialize;
use std::collections::HashMap;

/// The `$schema` value speedscope recognises its files by.
pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Serialize)]
struct File {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: Shared,
    profiles: Vec<Profile>,
    name: String,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    exporter: &'static str,
}

#[derive(Serialize)]
struct Shared {
    frames: Vec<Frame>,
}

#[derive(Serialize)]
struct Frame {
    name: String,
}

#[derive(Serialize)]
struct Profile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: u64,
    #[serde(rename = "endValue")]
    end_value: u64,
    events: Vec<Event>,
}

#[derive(Serialize)]
struct Event {
    #[serde(rename = "type")]
    kind: &'static str,
    at: u64,
    frame: usize,
}

/// Frames by name, numbered in order of first use.
#[derive(Default)]
struct Frames {
    index: HashMap<String, usize>,
    list: Vec<Frame>,
}

impl Frames {
    fn get(&mut self, name: String) -> usize {
        if let Some(&i) = self.index.get(&name) {
            return i;
        }
        let i = self.list.len();
        self.index.insert(name.clone(), i);
        self.list.push(Frame { name });
        i
    }
}

/// One thread's events.
fn profile(forest: &Forest, pid: u32, tid: u32, frames: &mut Frames) -> Profile {
    enum Step {
        Open(ImportId),
        Close(ImportId, usize),
    }
    let rel = |ns: u64| ns.saturating_sub(forest.first_ns);
    let mut events = Vec::new();
    let mut last = 0u64;
    let mut todo: Vec<Step> = forest
        .roots
        .iter()
        .rev()
        .filter(|&&r| (forest.imports[r].pid, forest.imports[r].tid) == (pid, tid))
        .map(|&r| Step::Open(r))
        .collect();
    while let Some(step) = todo.pop() {
        match step {
            Step::Open(id) => {
                let imp = &forest.imports[id];
                if imp.state == ImportState::Cached {
                    continue;
                }
                let frame = frames.get(super::folded::frame(imp));
                last = last.max(rel(imp.start_ns));
                events.push(Event { kind: "O", at: last, frame });
                todo.push(Step::Close(id, frame));
                todo.extend(imp.children.iter().rev().map(|&c| Step::Open(c)));
            }
            Step::Close(id, frame) => {
                let imp = &forest.imports[id];
                last = last.max(rel(imp.start_ns) + forest.cumulative_ns(id));
                events.push(Event { kind: "C", at: last, frame });
            }
        }
    }
    let name = if forest.processes.len() > 1 {
        format!("{} {}", super::threads::process(forest, pid), super::threads::thread(pid, tid))
    } else {
        super::threads::thread(pid, tid)
    };
    Profile {
        kind: "evented",
        name,
        unit: "nanoseconds",
        start_value: 0,
        end_value: last.max(rel(forest.last_ns)),
        events,
    }
}

/// Renders the speedscope JSON.
pub fn render(forest: &Forest) -> String {
    let mut frames = Frames::default();
    let profiles: Vec<Profile> =
        forest.threads().into_iter().map(|(pid, tid)| profile(forest, pid, tid, &mut frames)).collect();
    let name = match forest.processes.as_slice() {
        [p] if !p.info.command.is_empty() => format!("imports of {}", crate::events::escape(&p.info.command)),
        _ => "imports".to_owned(),
    };
    let file = File {
        schema: SCHEMA,
        shared: Shared { frames: frames.list },
        profiles,
        name,
        active_profile_index: 0,
        exporter: concat!("importprobe@", env!("CARGO_PKG_VERSION")),
    };
    let mut out = serde_json::to_string(&file).expect("plain data serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s, two_threads};
    use serde_json::{json, Value};

    fn doc(f: &Forest) -> Value {
        serde_json::from_str(&render(f)).unwrap()
    }

    #[test]
    fn balanced_events_on_shared_frames() {
        let v = doc(&forest(package_and_failure()));
        assert_eq!(v["$schema"], SCHEMA);
        let names: Vec<&Value> = v["shared"]["frames"].as_array().unwrap().iter().map(|f| &f["name"]).collect();
        assert_eq!(names, [&json!("a.b"), &json!("a"), &json!("json"), &json!("nope [failed]")]);
        let p = &v["profiles"][0];
        assert_eq!((&p["type"], &p["unit"]), (&json!("evented"), &json!("nanoseconds")));
        let evs: Vec<(String, u64, u64)> = p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["type"].as_str().unwrap().to_owned(), e["at"].as_u64().unwrap(), e["frame"].as_u64().unwrap()))
            .collect();
        let t = |k: &str, at, f| (k.to_owned(), at, f);
        assert_eq!(
            evs,
            [
                t("O", 0, 0),
                t("O", 1000, 1),
                t("C", 4000, 1),
                t("O", 5000, 2),
                t("C", 8500, 2),
                t("C", 11000, 0),
                t("O", 19000, 3),
                t("C", 19400, 3)
            ]
        );
        assert_eq!(p["endValue"], 19400);
    }

    #[test]
    fn one_profile_per_thread_and_unfinished_closed_at_the_end() {
        let v = doc(&forest(two_threads()));
        assert_eq!(v["profiles"].as_array().unwrap().len(), 2);
        assert_eq!(v["profiles"][1]["name"], "thread 2");
        let v = doc(&forest(vec![s(100, 1, 0, "a"), s(200, 1, 1, "b"), s(900, 2, 0, "c")]));
        let evs = v["profiles"][0]["events"].as_array().unwrap();
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[3]["at"], 800, "closed at the end of the recording");
        assert_eq!(v["shared"]["frames"][0]["name"], "a [unfinished]");
    }
}
