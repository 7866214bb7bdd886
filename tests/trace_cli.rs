//! `importprobe trace` and `importprobe report` against real bpftrace, the
//! simulator and a CPython with probes (`IMPORTPROBE_PYTHON`, Debian 12's
//! python3.11 by default); and the no-argument demo.

mod common;

use common::*;
use importprobe::events::forest::Forest;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether tracing works and the CPython under test is there.
fn tracing_python() -> bool {
    can_trace() && (python().is_file() || skip(&format!("{} is not installed", python().display())))
}

/// `importprobe trace --format json ARGS...`: one object per import.
fn trace_json(args: &[&std::ffi::OsStr]) -> Vec<serde_json::Value> {
    let out = Command::new(bin()).args(["trace", "--format", "json"]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// (tid, depth, found, module) of each import of a trace's JSON, in done order.
fn json_lines(records: &[serde_json::Value]) -> Vec<(u32, u32, bool, String)> {
    let mut done: Vec<&serde_json::Value> = records.iter().filter(|r| !r["end_ns"].is_null()).collect();
    done.sort_by_key(|r| r["end_ns"].as_u64().unwrap());
    done.iter()
        .map(|r| {
            (
                r["tid"].as_u64().unwrap() as u32,
                r["depth"].as_u64().unwrap() as u32,
                r["found"] == true,
                r["module"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The same facts from a ground-truth file.
fn truth_lines(path: &std::path::Path) -> Vec<(u32, u32, bool, String)> {
    let forest = Forest::build(&importprobe::events::truth::read(path).unwrap());
    assert!(forest.anomalies.is_empty(), "{:?}", forest.anomalies);
    forest
        .in_done_order()
        .into_iter()
        .map(|id| {
            let i = &forest.imports[id];
            (i.tid, i.depth, i.found == Some(true), i.module.clone())
        })
        .collect()
}

/// Interpreter start-up of `python3.11 -S` as bpftrace sees it (the first
/// 30 lines of the reference trace cpython311-stdlib-and-missing.trace):
/// `depth start|done module [found]`.
const PYTHON_STARTUP: &str = "\
0 start _frozen_importlib_external
1 start _io
1 done _io 1
1 start marshal
1 done marshal 1
1 start posix
1 done posix 1
0 done _frozen_importlib_external 1
0 start zipimport
1 start time
1 done time 1
0 done zipimport 1
0 start encodings
1 start codecs
2 start _codecs
2 done _codecs 1
1 done codecs 1
1 start encodings.aliases
1 done encodings.aliases 1
0 done encodings 1
0 start encodings.utf_8
0 done encodings.utf_8 1
0 start _signal
0 done _signal 1
0 start io
1 start abc
2 start _abc
2 done _abc 1
1 done abc 1
0 done io 1";

#[test]
fn traces_a_started_simulator_exactly() {
    if !can_trace() {
        return;
    }
    let dir = Scratch::new("trace-sim");
    let truth = dir.path("truth.jsonl");
    let out = Command::new(bin())
        .args(["trace", "--format", "json", "--"])
        .arg(bin())
        .args(["run", "--workload", "refpkg", "--truth"])
        .arg(&truth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got = json_lines(&records);
    let want = truth_lines(&truth);
    assert_eq!(want.len(), 7, "refpkg has 7 import pairs: {want:?}");
    assert_eq!(got, want, "stdout:\n{}", stdout(&out));
    assert!(got.iter().any(|(_, d, f, m)| m == "pkg" && *d == 1 && *f), "{got:?}");
    assert!(got.iter().any(|(_, _, f, m)| m == "pkg.broken" && !*f), "{got:?}");
    assert!(stderr(&out).is_empty(), "nothing but the report: {}", stderr(&out));
}

#[test]
fn an_option_trace_does_not_know_is_named() {
    let out =
        Command::new(bin()).args(["trace", "--scirpt", "import-tree", "--", "python3", "app.py"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--scirpt"), "{}", stderr(&out));
    let out = Command::new(bin()).args(["trace", "python3", "app.py"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "the command must follow --: {}", stderr(&out));
}

#[test]
fn python_arguments_pass_intact_and_failures_are_reported() {
    if !tracing_python() {
        return;
    }
    // Spaces (two in a row), quotes and a semicolon: any re-parsing by a
    // shell or by bpftrace's -c would change what python prints or runs.
    let code = "print('a  b \"c\"'); import nonexistent_mod.sub";
    let out = Command::new(bin())
        .args(["trace", "--script", "import-failed", "--"])
        .arg(python())
        .args(["-S", "-c", code])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("a  b \"c\"\n"), "python did not get its argument intact:\n{text}");
    assert!(stderr(&out).contains("No module named 'nonexistent_mod'"), "{}", stderr(&out));
    let failed: Vec<&str> =
        text.lines().filter(|l| l.starts_with("FAILED")).filter_map(|l| l.split("module=").nth(1)).collect();
    assert_eq!(failed, ["nonexistent_mod", "nonexistent_mod.sub"], "{text}");
}

#[test]
fn nothing_is_missed_at_python_startup() {
    if !tracing_python() {
        return;
    }
    // The default collection sees the interpreter's very first import...
    let py = python();
    let records = trace_json(&["--".as_ref(), py.as_os_str(), "-S".as_ref(), "-c".as_ref(), "import json".as_ref()]);
    assert_eq!(records[0]["module"], "_frozen_importlib_external", "the first import started: {:?}", records[0]);
    let lines = json_lines(&records);
    assert!(lines.iter().any(|(_, d, f, m)| m == "_frozen_importlib_external" && *d == 0 && *f), "{lines:?}");
    assert!(lines.iter().any(|(_, d, _, m)| m == "json" && *d == 0), "{lines:?}");

    // ...and the raw events equal the reference trace's start-up (3.11), event by event.
    if !py.ends_with("python3.11") {
        return;
    }
    let dir = Scratch::new("trace-py");
    let ev = dir.path("ev.txt");
    let out = Command::new(bin())
        .args(["trace", "--script", "import-events", "-o"])
        .arg(&ev)
        .arg("--")
        .arg(&py)
        .args(["-S", "-c", "import json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let events = importprobe::events::stream::parse(&std::fs::read(&ev).unwrap()).unwrap().events;
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e.found {
            None => format!("{} start {}", e.depth, e.module),
            Some(f) => format!("{} done {} {}", e.depth, e.module, u8::from(f)),
        })
        .collect();
    let want: Vec<&str> = PYTHON_STARTUP.lines().collect();
    assert_eq!(seen[..want.len()], want[..]);
}

#[test]
fn report_of_a_python_trace_matches_pythons_own_importtime() {
    if !tracing_python() {
        return;
    }
    let dir = Scratch::new("trace-it");
    let ev = dir.path("ev.txt");
    let out = Command::new(bin())
        .args(["trace", "--save-events"])
        .arg(&ev)
        .arg("--")
        .arg(python())
        .args(["-S", "-X", "importtime", "-c", "import json, xml.etree.ElementTree"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let python: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("import time:"))
        .map(|l| l.rsplit(" | ").next().unwrap().to_owned())
        .collect();
    let rep = Command::new(bin()).args(["report", "--format", "importtime"]).arg(&ev).output().unwrap();
    assert!(rep.status.success(), "{}", stderr(&rep));
    let ours: Vec<String> = stdout(&rep)
        .lines()
        .filter(|l| l.starts_with("import time:"))
        .map(|l| l.rsplit(" | ").next().unwrap().to_owned())
        .collect();
    // -X importtime starts after the interpreter's own start-up imports, so
    // python's lines are the tail of ours, indentation included.
    assert!(python.len() > 10, "{python:?}");
    assert!(ours.ends_with(&python), "python:\n{python:#?}\nours:\n{ours:#?}");
}

/// Starts the simulator waiting for a tracer, reaped by a thread as soon as
/// it exits (bpftrace -p ends only when its pid is really gone).
fn simulator(args: &[&str]) -> (u32, std::thread::JoinHandle<std::process::ExitStatus>) {
    let mut child = Command::new(bin()).arg("run").args(args).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains(&format!("pid {pid} waiting")), "{line}");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut err, &mut std::io::sink());
    });
    (pid, std::thread::spawn(move || child.wait().unwrap()))
}

#[test]
fn traces_a_running_process_by_pid() {
    if !can_trace() {
        return;
    }
    let dir = Scratch::new("trace-pid");
    let truth = dir.path("truth.jsonl");
    let truth_arg = truth.to_str().unwrap();
    let (pid, waiter) = simulator(&["--workload", "refpkg", "--wait-for-tracer=60", "--truth", truth_arg]);
    let records = trace_json(&["--pid".as_ref(), pid.to_string().as_ref()]);
    assert!(waiter.join().unwrap().success());
    assert_eq!(json_lines(&records), truth_lines(&truth));
}

/// bpftrace's own default (4096 keys) would drop imports beyond it, and
/// before 0.24 without a word: `--max-imports` sizes a script's maps too.
#[test]
fn a_bundled_script_keeps_more_imports_than_bpftraces_default_map_size() {
    if !can_trace() {
        return;
    }
    let (pid, waiter) = simulator(&["--workload", "flat", "--count", "5000", "--scale", "0", "--wait-for-tracer=60"]);
    let pid = pid.to_string();
    let out = Command::new(bin()).args(["trace", "--script", "import-latency", "--pid", &pid]).output().unwrap();
    assert!(waiter.join().unwrap().success());
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = stdout(&out).lines().filter(|l| l.starts_with("@import_cumulative_us[")).count();
    assert_eq!(rows, 5000, "one row per import\n{}", stderr(&out));
    assert!(!stderr(&out).contains("dropped"), "{}", stderr(&out));
}
#[test]
fn ctrl_c_prints_the_report_so_far_and_leaves_the_target_running() {
    if !can_trace() {
        return;
    }
    let dir = Scratch::new("trace-int");
    let script = dir.path("count.bt");
    std::fs::write(
        &script,
        "usdt:*:python:import__find__load__start { @starts = @starts + 1; }\n\
         usdt:*:python:import__find__load__done { @dones = @dones + 1; }\n\
         END { printf(\"starts so far: %d\\n\", @starts); clear(@starts); clear(@dones); }\n",
    )
    .unwrap();
    // About 200 s of imports (0.7 ms each): still running when we interrupt,
    // however slow a loaded machine is; killed below.
    let mut sim = Command::new(bin())
        .args(["run", "--workload", "flat", "--count", "300000", "--scale", "10", "--wait-for-tracer=60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sim.id();
    // Building 300000 modules takes a while; the simulator says "waiting"
    // once it has, and imports as soon as it also sees the tracer.
    let (loaded_tx, loaded) = std::sync::mpsc::channel();
    let sim_err = sim.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(sim_err).lines().map_while(Result::ok) {
            if line.contains("waiting up to") {
                let _ = loaded_tx.send(());
            }
        }
    });
    let mut trace = Command::new(bin())
        .args(["trace", "--script-file"])
        .arg(&script)
        .args(["--pid", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt only once bpftrace is really in place in the target.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probes =
            importprobe::tracer::process::import_probes_in(pid, &importprobe::tracer::process::IMPORT_PROBES).unwrap();
        if importprobe::tracer::process::attached(pid, &probes).unwrap() {
            break;
        }
        assert!(Instant::now() < deadline, "bpftrace never attached");
        std::thread::sleep(Duration::from_millis(10));
    }
    loaded.recv_timeout(Duration::from_secs(60)).expect("the simulator never finished loading its workload");
    // The simulator starts importing once it sees the tracer; let it run a while.
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(trace.id() as i32, libc::SIGINT) };
    let mut text = String::new();
    trace.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    let mut err = String::new();
    trace.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = trace.wait().unwrap();
    let alive = sim.try_wait().unwrap().is_none();
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(status.success(), "{status}: {err}");
    let starts: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("starts so far: "))
        .unwrap_or_else(|| panic!("no END report:\n{text}\n{err}"))
        .parse()
        .unwrap();
    assert!(starts > 0, "{text}");
    assert!(alive, "the traced process died with the tracer: {text}\n{err}");
}

#[test]
fn missing_bpftrace_is_one_line_with_the_install_command() {
    let out = Command::new(bin())
        .args(["trace", "--", "/bin/true"])
        .env("PATH", "/nonexistent-importprobe-test")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.contains("bpftrace")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("apt-get install -y bpftrace"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_target_without_probes_is_named_with_what_it_has() {
    let out = Command::new(bin()).args(["trace", "--", "/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.contains("true has no python import probes (it has")), "{err}");
    assert!(err.contains("--binary"), "{err}");
}

#[test]
fn report_of_ground_truth_has_the_structure_of_importtime() {
    let dir = Scratch::new("report-rt");
    for workload in
        [&["--workload", "refpkg"][..], &["--workload", "random", "--count", "300", "--failure-rate", "0.1"]]
    {
        let truth = dir.path("t.jsonl");
        let run = Command::new(bin())
            .arg("run")
            .args(workload)
            .arg("--truth")
            .arg(&truth)
            .arg("--importtime")
            .output()
            .unwrap();
        let rep = Command::new(bin()).args(["report", "--format", "importtime"]).arg(&truth).output().unwrap();
        assert!(rep.status.success(), "{}", stderr(&rep));
        // Same lines in the same order, same indentation; only times differ.
        let structure = |text: &str| -> Vec<String> {
            text.lines().map(|l| l.rsplit_once(" | ").map_or(l.to_owned(), |(_, m)| m.to_owned())).collect()
        };
        let want = structure(&stderr(&run));
        assert!(want.len() > 5, "{workload:?}: {}", stderr(&run));
        assert_eq!(structure(&stdout(&rep)), want, "{workload:?}");
        assert_eq!(stdout(&rep).lines().next(), Some("import time: self [us] | cumulative | imported package"));
    }
}

#[test]
fn report_reads_stdin_and_rejects_garbage() {
    let mut child = Command::new(bin())
        .args(["report", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# importprobe-events v1\nE 10 1 2 0 0 start - 0 1 a\nE 30 1 2 1 0 done 0 0 1 a\n# end\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["module"], "a");
    assert_eq!(v["found"], false);
    assert_eq!(v["cumulative_ns"], 20);

    let dir = Scratch::new("report-bad");
    let bad = dir.path("bad.txt");
    std::fs::write(&bad, "hello\n").unwrap();
    let out = Command::new(bin()).arg("report").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not an importprobe event stream"), "{}", stderr(&out));
}

#[test]
fn no_arguments_traces_the_demo() {
    if !can_trace() {
        return;
    }
    let out = Command::new(bin()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().count() > 50, "{text}");
    assert!(text.lines().any(|l| l.contains("  shopapp")), "{text}");
    assert!(text.contains("[failed]"), "the demo has a missing optional dependency:\n{text}");
}

#[test]
fn no_arguments_without_bpftrace_falls_back_with_one_line() {
    let out = Command::new(bin()).env("PATH", "/nonexistent-importprobe-test").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("apt-get install -y bpftrace"), "{err}");
    assert!(stdout(&out).starts_with("import time: self [us] | cumulative | imported package\n"));
}

#[test]
fn a_program_embedding_libpython_is_traced_from_its_first_import() {
    if !tracing_python() {
        return;
    }
    let (header, lib) = ("/usr/include/python3.11/Python.h", "/usr/lib/x86_64-linux-gnu/libpython3.11.so");
    // Debian 12's libpython3.11-dev on the host; not in the matrix's chroots.
    if !std::path::Path::new(header).is_file() || !std::path::Path::new(lib).exists() {
        eprintln!("NOT APPLICABLE here: no python3.11 headers or libpython3.11.so to build an embedding program");
        return;
    }
    let dir = Scratch::new("trace-embed");
    let src = dir.path("embed.c");
    std::fs::write(
        &src,
        "#include <Python.h>\nint main(int argc, char **argv) {\n  Py_NoSiteFlag = 1;\n  Py_Initialize();\n  \
         int rc = PyRun_SimpleString(argv[1]);\n  Py_Finalize();\n  return rc ? 1 : 0;\n}\n",
    )
    .unwrap();
    let exe = dir.path("embed");
    match Command::new("cc").arg("-o").arg(&exe).arg(&src).args(["-I/usr/include/python3.11", "-lpython3.11"]).output()
    {
        Ok(o) if o.status.success() => {}
        other => {
            skip(&format!("cannot build an embedding program: {other:?}"));
            return;
        }
    }
    // The probes are in libpython, which the dynamic loader maps after exec:
    // found without --binary, and the first import is still seen.
    let lines = json_lines(&trace_json(&["--".as_ref(), exe.as_os_str(), "import json".as_ref()]));
    assert!(lines.iter().any(|(_, d, _, m)| m == "_frozen_importlib_external" && *d == 0), "{lines:?}");
    assert!(lines.iter().any(|(_, d, f, m)| m == "json" && *d == 0 && *f), "{lines:?}");
    // And with the library named explicitly.
    let out = Command::new(bin())
        .args(["trace", "--script", "import-failed", "--binary", lib, "--"])
        .arg(&exe)
        .arg("import nonexistent_mod")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("module=nonexistent_mod\n"), "{}", stdout(&out));
}

#[test]
fn follow_children_separates_every_process_of_a_python_tree() {
    if !tracing_python() {
        return;
    }
    let dir = Scratch::new("trace-tree");
    let app = dir.path("app.py");
    std::fs::write(
        &app,
        // The barrier makes each of the two tasks run in its own worker (a
        // fast worker could take them all).
        "import subprocess, sys, multiprocessing\n\
         subprocess.run([sys.executable, '-c', 'import json, wave'])\n\
         ctx = multiprocessing.get_context('fork')\n\
         barrier = ctx.Barrier(2)\n\
         def work(x):\n    barrier.wait(30)\n    import fractions\n    return x\n\
         if __name__ == '__main__':\n    with ctx.Pool(2) as p:\n        p.map(work, range(2), chunksize=1)\n",
    )
    .unwrap();
    let chrome = dir.path("tree.json");
    let out = Command::new(bin())
        .args(["trace", "--follow-children", "--format", "chrome", "-o"])
        .arg(&chrome)
        .arg("--")
        .arg(python())
        .arg(&app)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    let names: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| (e["pid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(names.len(), 4, "the script, its subprocess and two pool workers: {names:?}");
    assert!(names.iter().any(|(_, n)| n.ends_with("-c import json, wave")), "{names:?}");
    let importers = |module: &str| -> std::collections::BTreeSet<u64> {
        events
            .iter()
            .filter(|e| e["ph"] == "X" && e["args"]["module"] == module)
            .map(|e| e["pid"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(importers("wave").len(), 1, "wave in the subprocess only");
    assert!(importers("fractions").len() >= 2, "fractions in both workers: {:?}", importers("fractions"));
    assert_eq!(importers("multiprocessing.pool").len(), 1, "the pool in the parent only");
}
