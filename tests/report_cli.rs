//! `importprobe report` in every format, on the hard cases: hostile names,
//! cut and missing names, failures, unfinished and begun-before-trace
//! imports, several processes and threads, lost events. Each format must
//! stay valid, keep processes and threads apart, mark what is not a real
//! name, and say what the recording lacks.

mod report_support;

use report_support::{hostile, run, run_stdin, stderr, stdout, Stream};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

const FORMATS: &[&str] = &["tree", "top", "importtime", "folded", "flamegraph", "chrome", "speedscope", "json"];

fn report(format: &str, input: &[u8]) -> (i32, String, String) {
    let o = run_stdin(&["report", "--format", format, "-"], input);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

#[test]
fn every_format_says_lost_events_and_exits_1() {
    for f in FORMATS {
        let (code, out, err) = report(f, &hostile().bytes());
        assert_eq!(code, 1, "{f}: a recording missing events exits 1\n{err}");
        let said = if ["tree", "top"].contains(f) { &out } else { &err };
        assert!(said.contains("2 lost events") || said.contains("lost 2 event(s)"), "{f}: {said}");
        if !["tree", "top"].contains(f) {
            assert!(err.contains("never finished"), "{f}: anomalies on stderr: {err}");
        }
    }
}

#[test]
fn tree_summary_and_marks() {
    let (_, out, _) = report("tree", &hostile().bytes());
    assert!(
        out.starts_with(
            "importprobe: 8 imports (1 failed), 1 unfinished, 1 begun before the trace in 2 processes, 3 threads"
        ),
        "{out}"
    );
    for needle in [
        "pid 10: python3 app.py",
        "pid 20: python3 -c child",
        "thread 10 (main):",
        "thread 11:",
        "thread 20 (main):",
        "slowest by self time",
        "\"evil\\nname\"",
        "\"E 5 10 10 9 0 start - 0 1 x\"",
        "\"tab\\tname\"",
        "averyveryverylongname…",
        "<unencodable name> [failed]",
        "unfinished [unfinished: time so far]",
        "begun [begun before the trace: time is a lower bound]",
        "anomaly: pid 20 thread 20: import of unfinished started",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from\n{out}");
    }
    // No name split a line: every tree row starts with its two time columns.
    let rows = out.split("  cum [us]  self [us]  module\n").nth(1).unwrap();
    for line in rows.lines().filter(|l| !l.ends_with(':') && !l.starts_with("pid ") && !l.starts_with("anomaly")) {
        let cols: Vec<&str> = line.split_whitespace().take(2).collect();
        assert!(cols.iter().all(|c| c.parse::<u64>().is_ok()), "a broken row: {line:?}");
    }
}

#[test]
fn top_is_an_aligned_table() {
    let input =
        Stream::new().import(0, 1, 0, "a", 5_000_000, true).import(6_000_000, 1, 0, "bb", 1_000_000, true).bytes();
    let o = run_stdin(&["report", "--format", "top", "--top", "1", "-"], &input);
    let out = stdout(&o);
    assert!(out.contains("slowest 1 by self time (of 2 imports, import time 6.00 ms)\n   #  self [us]   cum [us]  self %  module\n   1       5000       5000   83.3%  a\n"), "{out}");
    assert!(!out.contains("  bb"), "--top 1 lists one: {out}");
}

#[test]
fn folded_lines_are_one_stack_and_a_weight() {
    let (_, out, _) = report("folded", &hostile().bytes());
    for line in out.lines() {
        let (stack, weight) = line.rsplit_once(' ').unwrap();
        assert!(weight.parse::<u64>().is_ok(), "{line:?}");
        assert!(stack.starts_with("pid 10 thread") || stack.starts_with("pid 20 thread"), "{line:?}");
    }
    assert!(out.contains("pid 10 thread 10 (main);\"evil\\nname\";\"E 5 10 10 9 0 start - 0 1 x\" 1\n"), "{out}");
    assert!(out.contains("pid 20 thread 20 (main);unfinished [unfinished];inner 2\n"), "{out}");
}

#[test]
fn chrome_has_the_trace_event_formats_required_fields_and_thread_names() {
    let (_, out, _) = report("chrome", &hostile().bytes());
    let doc: Value = serde_json::from_str(&out).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let mut tracks = HashSet::new();
    let mut named = HashSet::new();
    let mut processes = HashSet::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        match ph {
            "M" => {
                assert!(e["args"].is_object(), "{e}");
                match e["name"].as_str().unwrap() {
                    "thread_name" => {
                        named.insert((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()));
                        assert!(e["args"]["name"].as_str().unwrap().starts_with("thread "));
                    }
                    "process_name" => {
                        processes.insert(e["pid"].as_u64().unwrap());
                    }
                    _ => {}
                }
            }
            "X" | "B" | "i" => {
                assert!(e["ts"].is_f64() || e["ts"].is_u64(), "{e}");
                assert_eq!(e["cat"], "import");
                assert!(e["args"]["module"].is_string() && e["args"]["state"].is_string(), "{e}");
                tracks.insert((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()));
                if ph == "X" {
                    assert!(e["dur"].as_f64().unwrap() >= 0.0, "{e}");
                }
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    assert!(events.iter().all(|e| e["ph"] != "E"), "unfinished imports are B with no E");
    let begins: Vec<&str> = events.iter().filter(|e| e["ph"] == "B").map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(begins, ["unfinished [unfinished]"]);
    assert_eq!(tracks, HashSet::from([(10, 10), (10, 11), (20, 20)]));
    assert!(tracks.is_subset(&named), "every track is named");
    assert_eq!(processes, HashSet::from([10, 20]));
    assert_eq!(doc["otherData"]["lost_events"], 2);
    // Fractional microseconds keep nanoseconds.
    assert!(events.iter().any(|e| e["ts"] == 1.1), "{out}");
    let missing = events.iter().find(|e| e["args"]["name"] == "missing").unwrap();
    assert_eq!((&missing["name"], &missing["args"]["found"]), (&"<unencodable name> [failed]".into(), &false.into()));
}

/// The required fields of speedscope's file format schema (its
/// `file-format-schema.json`, generated from `FileFormat.File`): the file's
/// `$schema`, `shared.frames` (each with a `name`) and `profiles`; an
/// evented profile's `type`, `name`, `unit`, `startValue`, `endValue` and
/// `events`; an event's `type` (`O`/`C`), `at` and `frame`. Also what
/// speedscope checks when importing: `at` never decreases, and every close
/// matches the innermost open frame.
fn validate_speedscope(doc: &Value) -> usize {
    assert_eq!(doc["$schema"], "https://www.speedscope.app/file-format-schema.json");
    let frames = doc["shared"]["frames"].as_array().expect("shared.frames");
    assert!(frames.iter().all(|f| f["name"].is_string()), "every frame has a name");
    let units = ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"];
    let profiles = doc["profiles"].as_array().expect("profiles");
    for p in profiles {
        assert_eq!(p["type"], "evented");
        assert!(p["name"].is_string());
        assert!(units.contains(&p["unit"].as_str().unwrap()));
        let (start, end) = (p["startValue"].as_f64().unwrap(), p["endValue"].as_f64().unwrap());
        assert!(end >= start);
        let mut open: Vec<u64> = Vec::new();
        let mut last = start;
        for e in p["events"].as_array().expect("events") {
            let at = e["at"].as_f64().unwrap();
            assert!(at >= last && at <= end, "at goes back or past the end: {e}");
            last = at;
            let frame = e["frame"].as_u64().unwrap();
            assert!((frame as usize) < frames.len());
            match e["type"].as_str().unwrap() {
                "O" => open.push(frame),
                "C" => assert_eq!(open.pop(), Some(frame), "unbalanced close {e}"),
                t => panic!("event type {t}"),
            }
        }
        assert!(open.is_empty(), "frames left open in {}", p["name"]);
    }
    profiles.len()
}

#[test]
fn speedscope_validates_with_one_profile_per_thread() {
    let (_, out, _) = report("speedscope", &hostile().bytes());
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(validate_speedscope(&doc), 3);
    let names: BTreeSet<&str> =
        doc["shared"]["frames"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    for n in [
        "\"evil\\nname\"",
        "averyveryverylongname…",
        "<unencodable name> [failed]",
        "unfinished [unfinished]",
        "begun [begun before the trace]",
    ] {
        assert!(names.contains(n), "{n} not in {names:?}");
    }
}

/// Parses the whole document as XML, returning the `<title>` texts.
fn xml_titles(svg: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut titles = Vec::new();
    let mut in_title = false;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::End(e) if e.name().as_ref() == b"title" => in_title = false,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"title" => {
                in_title = true;
                titles.push(String::new());
            }
            quick_xml::events::Event::Text(t) if in_title => titles.last_mut().unwrap().push_str(&t.decode().unwrap()),
            // Entities (`&quot;`...) come apart from the text around them.
            quick_xml::events::Event::GeneralRef(r) if in_title => {
                let c = match r.decode().unwrap().as_ref() {
                    "quot" => '"',
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "apos" => '\'',
                    other => panic!("unexpected entity {other}"),
                };
                titles.last_mut().unwrap().push(c);
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    titles
}

#[test]
fn flamegraph_is_xml_and_frames_say_module_self_and_cumulative() {
    let (_, out, _) = report("flamegraph", &hostile().bytes());
    assert!(out.contains("<svg"), "{}", &out[..200.min(out.len())]);
    let titles = xml_titles(&out);
    assert!(titles.iter().any(|t| t.starts_with("\"tab\\tname\" (self 1.0 µs, cumulative 1.0 µs)")), "{titles:?}");
    assert!(
        titles.iter().any(|t| t.starts_with("pid 20 thread 20 (main) (self 0 ns, cumulative 2.0 µs)")),
        "{titles:?}"
    );
    assert!(out.contains("lost events: 2"), "the subtitle says it");
    // Nothing to draw is still a valid SVG.
    let (code, empty, _) = report("flamegraph", &Stream::new().bytes());
    assert_eq!(code, 0);
    xml_titles(&empty);
}

#[test]
fn json_lines_one_object_per_import() {
    let (_, out, _) = report("json", &hostile().bytes());
    let objs: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs.len(), 8);
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o["id"], i);
        for k in ["module", "pid", "tid", "depth", "start_ns", "cumulative_ns", "self_ns", "state", "parents"] {
            assert!(!o[k].is_null(), "{k} in {o}");
        }
    }
    let by = |m: &str| objs.iter().find(|o| o["module"] == m).unwrap();
    assert_eq!(by("evil\nname")["state"], "complete");
    assert_eq!(by("E 5 10 10 9 0 start - 0 1 x")["parents"], serde_json::json!(["evil\nname"]));
    assert_eq!(by("averyveryverylongname")["name"], "cut");
    assert_eq!(by("")["name"], "missing");
    assert_eq!((&by("unfinished")["state"], &by("unfinished")["end_ns"]), (&"unfinished".into(), &Value::Null));
    assert_eq!(by("unfinished")["cumulative_ns"], 2_000, "time so far");
    assert_eq!(by("begun")["state"], "begun-before-trace");
    assert_eq!(by("inner")["parent"], by("unfinished")["id"]);
}

#[test]
fn importtime_logs_round_trip_and_render_in_every_format() {
    let log = "noise from the program\r\n\
               import time: self [us] | cumulative | imported package\r\n\
               import time:       120 |        120 |   _io\r\n\
               import time: cached    | cached     |  sys\r\n\
               import time:        32 |         32 |     _codecs\r\n\
               import time:       373 |        405 |   codecs\r\n\
               import time:       300 |        825 | site\r\n";
    let (code, out, _) = report("importtime", log.as_bytes());
    assert_eq!(code, 0);
    assert_eq!(
        out,
        log.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>(),
        "byte for byte, minus CRLF and noise"
    );
    for f in FORMATS {
        let (code, out, err) = report(f, log.as_bytes());
        assert_eq!(code, 0, "{f}: {err}");
        assert!(!out.is_empty(), "{f}");
    }
    let (_, tree, _) = report("tree", log.as_bytes());
    assert!(tree.contains("laid out in order") && tree.contains("-X importtime log"), "{tree}");
    assert!(tree.contains("         -          -      sys [cached]"), "{tree}");
    assert!(!tree.contains("incomplete"), "{tree}");
}

#[test]
fn colour_only_on_request_or_terminals_and_never_with_no_color() {
    let input = hostile().bytes();
    let plain = run_stdin(&["report", "-"], &input);
    assert!(!stdout(&plain).contains('\u{1b}'), "a pipe gets no colour");
    let mut forced = report_support::importprobe();
    forced.args(["report", "-"]).env("CLICOLOR_FORCE", "1");
    let o = pipe(forced, &input);
    assert!(stdout(&o).contains("\u{1b}["), "CLICOLOR_FORCE colours");
    let mut no = report_support::importprobe();
    no.args(["report", "-"]).env("NO_COLOR", "1");
    assert!(!stdout(&pipe(no, &input)).contains('\u{1b}'));
}

fn pipe(mut c: std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn unreadable_input_is_one_line() {
    let o = run(&["report", "/nonexistent/ev.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let o = run_stdin(&["report", "-"], b"garbage\n");
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not an importprobe event stream"));
}

#[test]
fn output_file_for_any_format() {
    let dir = tempfile::tempdir().unwrap();
    let input = hostile().write(dir.path(), "ev.txt");
    let svg = dir.path().join("imports.svg");
    let o = run(&["report", "-f", "flamegraph", "-o", svg.to_str().unwrap(), input.to_str().unwrap()]);
    assert!(stdout(&o).is_empty());
    xml_titles(&std::fs::read_to_string(svg).unwrap());
}

/// `trace --format F` renders through the same code, on a real trace of the
/// simulator (root and bpftrace needed).
#[cfg(target_os = "linux")]
#[test]
fn trace_renders_every_format_from_one_run() {
    if !importprobe::testing::can_trace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_importprobe");
    let saved = dir.path().join("ev.txt");
    let sp = dir.path().join("t.speedscope.json");
    let o = run(&[
        "trace",
        "--format",
        "speedscope",
        "-o",
        sp.to_str().unwrap(),
        "--save-events",
        saved.to_str().unwrap(),
        "--",
        exe,
        "run",
        "--workload",
        "threads",
        "--scale",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&sp).unwrap()).unwrap();
    assert!(validate_speedscope(&doc) >= 2, "one profile per thread");
    for f in FORMATS {
        let o = run(&["report", "--format", f, saved.to_str().unwrap()]);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
    }
}
