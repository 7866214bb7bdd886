//! Simulated process trees (`importprobe run` with fork and fork+exec
//! children) against their ground truth: every process, its parent, its own
//! imports, and a truth file that several processes wrote at once.

use importprobe::events::forest::Forest;
use importprobe::events::{truth, EventKind, ImportEvent, ProcessInfo, Recording};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

fn importprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_importprobe")).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `importprobe run ARGS --truth FILE` and reads the truth back.
fn run_truth(args: &[&str]) -> (Output, Recording) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truth.jsonl");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--truth", path.to_str().unwrap()]);
    let o = importprobe(&all);
    let rec = truth::read(&path).unwrap_or_else(|e| panic!("{e:#}\n{}", stderr(&o)));
    (o, rec)
}

/// Each process's events in firing order, as `<depth> start|done <module>`.
fn per_process(rec: &Recording) -> HashMap<u32, Vec<String>> {
    let mut out: HashMap<u32, Vec<String>> = HashMap::new();
    for e in &rec.events {
        let line = match e.kind {
            EventKind::Start => format!("{} start {}", e.depth, e.module),
            _ => format!("{} done {} {}", e.depth, e.module, e.found.unwrap() as u8),
        };
        out.entry(e.pid).or_default().push(line);
    }
    out
}

/// The processes whose first fired import is `module`.
fn first_importing<'a>(rec: &'a Recording, module: &str) -> Vec<&'a ProcessInfo> {
    let lines = per_process(rec);
    rec.processes.iter().filter(|p| lines[&p.pid][0] == format!("0 start {module}")).collect()
}

fn assert_clean(rec: &Recording) {
    let f = Forest::build(rec);
    assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
    let pids: Vec<u32> = rec.events.iter().map(|e| e.pid).collect();
    for p in &pids {
        assert!(rec.processes.iter().any(|q| q.pid == *p), "pid {p} has events but no process line");
    }
}

#[test]
fn a_fork_pool_records_every_process_with_its_parent_and_its_own_imports() {
    let (o, rec) = run_truth(&["--workload", "fork", "--scale", "0.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clean(&rec);
    assert_eq!(rec.processes.len(), 4, "root, 2 workers, 1 grandchild: {:?}", rec.processes);
    let root = &rec.processes[0];
    assert_eq!(root.ppid, None);
    let lines = per_process(&rec);
    assert_eq!(
        lines[&root.pid],
        [
            "0 start encodings",
            "1 start codecs",
            "1 done codecs 1",
            "1 start encodings.aliases",
            "1 done encodings.aliases 1",
            "0 done encodings 1",
            "0 start pool",
            "0 done pool 1",
            "0 start parent_after",
            "0 done parent_after 1",
        ]
    );
    // Workers continue with the parent's sys.modules: `import pool` fires
    // nothing; their first import is pool.task.
    let workers = first_importing(&rec, "pool.task");
    assert_eq!(workers.len(), 2);
    for w in &workers {
        assert_eq!(w.ppid, Some(root.pid));
        assert_eq!(w.command, root.command, "a forked child keeps its parent's command line");
        assert_eq!(
            lines[&w.pid],
            [
                "0 start pool.task",
                "1 start pool.helpers",
                "1 done pool.helpers 1",
                "0 done pool.task 1",
                "0 start fractions",
                "0 done fractions 1"
            ]
        );
    }
    let grandchild = first_importing(&rec, "grandchild_job");
    assert_eq!(grandchild.len(), 1);
    assert!(workers.iter().any(|w| Some(w.pid) == grandchild[0].ppid), "a child of a worker");
    let tids: Vec<(u32, u32)> = rec.events.iter().map(|e| (e.pid, e.tid)).collect();
    assert!(tids.iter().all(|(p, t)| p == t), "each process imports on its main thread");
}

#[test]
fn a_spawn_chain_execs_fresh_processes_that_each_start_with_encodings() {
    let (o, rec) = run_truth(&["--workload", "spawn", "--scale", "0.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clean(&rec);
    assert_eq!(rec.processes.len(), 3, "{:?}", rec.processes);
    let lines = per_process(&rec);
    let (a, b, c) = (&rec.processes[0], &rec.processes[1], &rec.processes[2]);
    assert_eq!((a.ppid, b.ppid, c.ppid), (None, Some(a.pid), Some(b.pid)), "a chain: {:?}", rec.processes);
    for (p, level) in [(a, 3), (b, 2), (c, 1)] {
        let l = &lines[&p.pid];
        assert_eq!(l[0], "0 start encodings", "a fresh process imports encodings first");
        assert!(l.contains(&format!("0 start spawned.level_{level}")), "{l:?}");
        assert_eq!(l.last().unwrap(), &format!("0 done spawned.after_{level} 1"));
    }
    assert!(b.command.contains("--workload spawn") && b.command.contains("--count 2"), "{}", b.command);
    assert!(b.command.contains("--scale 0.2"), "the parent's scale is passed on: {}", b.command);
    // subprocess.run waits: the child's imports come between the parent's.
    let ts = |pid: u32, module: &str| {
        rec.events.iter().find(|e| e.pid == pid && e.module == module && e.kind == EventKind::Start).unwrap().ts_ns
    };
    assert!(ts(a.pid, "spawned.level_3") < ts(b.pid, "encodings"));
    assert!(ts(c.pid, "spawned.after_1") < ts(b.pid, "spawned.after_2"));
    assert!(ts(b.pid, "spawned.after_2") < ts(a.pid, "spawned.after_3"));
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn a_manifest_mixes_forks_and_execs_and_children_of_children() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "child.toml", "[main]\nimports = [\"json_sim\"]\n[[module]]\nname = \"json_sim\"\n");
    let parent = write(
        dir.path(),
        "app.toml",
        r#"
        [defaults]
        find_us = 2
        exec_us = 5
        [[module]]
        name = "app"
        [[module]]
        name = "worker_job"
        [[module]]
        name = "late"
        [main]
        imports = ["app", { fork = "worker" }, { exec = "child.toml", wait = true }, "late"]
        [[fork]]
        name = "worker"
        imports = ["app", "worker_job", { exec = "child.toml" }]
        "#,
    );
    let (o, rec) = run_truth(&["--workload", &parent]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clean(&rec);
    assert_eq!(rec.processes.len(), 4, "root, its exec'd child, the worker and the worker's exec'd child");
    let root = rec.processes[0].pid;
    let lines = per_process(&rec);
    assert_eq!(lines[&root], ["0 start app", "0 done app 1", "0 start late", "0 done late 1"]);
    let worker = first_importing(&rec, "worker_job");
    assert_eq!(worker.len(), 1, "app was loaded before the fork: the worker fires only worker_job");
    let execd = first_importing(&rec, "json_sim");
    assert_eq!(execd.len(), 2);
    let mut parents: Vec<u32> = execd.iter().map(|p| p.ppid.unwrap()).collect();
    parents.sort_unstable();
    let mut expected = vec![root, worker[0].pid];
    expected.sort_unstable();
    assert_eq!(parents, expected);
}

#[test]
fn a_child_that_fails_fails_its_parent_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.toml", "[main]\nimports = [\"gone\"]\n[[module]]\nname = \"gone\"\nmissing = true\n");
    let parent = write(dir.path(), "app.toml", "[main]\nimports = [{ exec = \"bad.toml\" }]\n");
    let o = importprobe(&["run", "--workload", &parent]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("uncaught import error"), "the child says why: {err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("importprobe: child process ")
            && last.contains("bad.toml")
            && last.ends_with("exited with status 1"),
        "{err}"
    );
}

#[test]
fn processes_writing_one_truth_file_at_once_never_mix_their_lines() {
    // Four forked workers import 3,000 modules each as fast as they can,
    // all at the same time, into one truth file.
    let mut m = String::from("[defaults]\nfind_us = 0\nexec_us = 0\n[main]\nimports = [");
    m.push_str(&(0..4).map(|_| "{ fork = \"w\" }").collect::<Vec<_>>().join(", "));
    m.push_str("]\n[[fork]]\nname = \"w\"\nimports = [");
    let names: Vec<String> = (0..3000).map(|i| format!("\"module_with_a_longish_name_{i:05}\"")).collect();
    m.push_str(&names.join(", "));
    m.push_str("]\n");
    for i in 0..3000 {
        m.push_str(&format!("[[module]]\nname = \"module_with_a_longish_name_{i:05}\"\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "many.toml", &m);
    let (o, rec) = run_truth(&["--workload", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rec.processes.len(), 5);
    let mut per_pid: HashMap<u32, Vec<&ImportEvent>> = HashMap::new();
    for e in &rec.events {
        per_pid.entry(e.pid).or_default().push(e);
    }
    let root = rec.processes[0].pid;
    assert!(!per_pid.contains_key(&root), "the root itself imports nothing");
    assert_eq!(per_pid.len(), 4);
    for (pid, evs) in &per_pid {
        assert_eq!(evs.len(), 6000, "pid {pid}: every event, once");
        assert!(evs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "pid {pid}: in firing order");
    }
    assert_clean(&rec);
}

#[test]
fn the_root_truncates_the_truth_file_and_its_children_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let p = path.to_str().unwrap();
    for _ in 0..2 {
        let o = importprobe(&["run", "--workload", "spawn", "--count", "2", "--scale", "0", "--truth", p]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let rec = truth::read(&path).unwrap();
    assert_eq!(rec.processes.len(), 2, "only the last run's tree: {:?}", rec.processes);
}
