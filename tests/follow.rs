//! Following a process tree (`importprobe::tracer::follow`) and tracing it
//! with one system-wide bpftrace restricted to the tree
//! (`importprobe::tracer::follow_script`), on a real CPython.
//!
//! Two kinds of tests:
//! - the follower alone (forks, execs, signals, job control, seizing,
//!   detaching, killing): needs ptrace only;
//! - real traces of CPython trees (a subprocess, a fork-based pool of 2, a
//!   fork+exec chain 3 levels deep through a shell and a venv, a program
//!   embedding libpython), with a bystander Python importing at the same
//!   time outside the tree: root and bpftrace, else `SKIP: reason` (a
//!   failure under IMPORTPROBE_REQUIRE_TRACING=1).
//!
//! Every process of the traced programs writes the modules it loaded
//! (`sys.modules`, less what it inherited at a fork) to `<pid>.json`; each
//! of those modules must have been traced with that very pid, and an
//! exec'd child's first traced import must be the interpreter's first.
//!
//! `IMPORTPROBE_PYTHON` selects the interpreter (default
//! `/usr/bin/python3.11`; in the trixie and sid chroots `/usr/bin/python3.13`
//! and `/usr/bin/python3.14`); bpftrace is the one on PATH.
//! `IMPORTPROBE_TEST_RAISE=0` leaves the semaphores of exec'd images to the
//! tracer: the traces then fail on bpftrace 0.17 and 0.23 (a control that
//! the follower's raising is what makes them work) and pass on 0.24+.

mod common;

use common::{can_trace, lossy, skip, tracing_lock, Scratch};
use importprobe::events::{EventKind, ImportEvent};
use importprobe::tracer::bpftrace::Bpftrace;
use importprobe::tracer::follow::{ExitState, FollowEnd, FollowEvent, FollowOptions, Follower, SemaphoreOutcome};
use importprobe::tracer::follow_script::Dialect;
use importprobe::tracer::process::{import_probes_in, IMPORT_PROBES};
use importprobe::tracer::runner::{self, Target, TraceRequest};
use importprobe::tracer::semaphores;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::python;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// `program` followed by `args`.
fn os_args(program: &Path, args: &[&str]) -> Vec<OsString> {
    std::iter::once(program.as_os_str().to_owned()).chain(args.iter().map(OsString::from)).collect()
}

/// Follows `argv` to the end without tracing; returns every event.
fn follow(argv: &[OsString], options: FollowOptions) -> Option<(Vec<FollowEvent>, FollowEnd)> {
    let (tx, rx) = mpsc::channel();
    let follower = match Follower::spawn(argv, options, tx) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("SKIP: cannot follow here: {e}");
            return None;
        }
    };
    follower.go().unwrap();
    let end = follower.wait().unwrap();
    Some((rx.try_iter().collect(), end))
}

fn forked(events: &[FollowEvent]) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter_map(|e| if let FollowEvent::Forked { pid, parent, .. } = e { Some((*pid, *parent)) } else { None })
        .collect()
}

fn exited(events: &[FollowEvent]) -> BTreeMap<u32, ExitState> {
    events
        .iter()
        .filter_map(|e| if let FollowEvent::Exited { pid, status, .. } = e { Some((*pid, *status)) } else { None })
        .collect()
}

fn execs(events: &[FollowEvent]) -> Vec<(u32, PathBuf, Vec<OsString>, SemaphoreOutcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            FollowEvent::Exec { pid, exe, argv, semaphores, .. } => {
                Some((*pid, exe.clone(), argv.clone(), semaphores.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn follows_forks_execs_and_exits_to_the_end_of_the_tree() {
    // A child that forks a grandchild; the grandchild is orphaned (its
    // parent exits first) and is still followed to its end.
    let script = "(/bin/sh -c 'sleep 0.2; exit 3' &) ; /bin/true; exit 5";
    let Some((events, end)) = follow(&os(&["/bin/sh", "-c", script]), FollowOptions::default()) else { return };
    let root = match &events[0] {
        FollowEvent::Joined { pid, parent: None, semaphores: SemaphoreOutcome::NoProbes, .. } => *pid,
        other => panic!("{other:?}"),
    };
    assert_eq!(end.root_status, Some(ExitState::Code(5)), "{events:#?}");
    assert!(matches!(events.last(), Some(FollowEvent::AllExited { .. })), "{events:#?}");
    let exits = exited(&events);
    assert_eq!(exits.len(), end.processes, "every process seen ended: {events:#?}");
    let by_exe: BTreeMap<String, u32> = execs(&events)
        .into_iter()
        .map(|(pid, _, argv, _)| (lossy(argv.join(std::ffi::OsStr::new(" ")).as_encoded_bytes()), pid))
        .collect();
    let grandchild = by_exe["/bin/sh -c sleep 0.2; exit 3"];
    assert_eq!(exits[&grandchild], ExitState::Code(3));
    assert_eq!(exits[&by_exe["/bin/true"]], ExitState::Code(0));
    // The grandchild's parent is the subshell, a child of the root.
    let parents: BTreeMap<u32, u32> = forked(&events).into_iter().collect();
    assert_eq!(parents[&parents[&grandchild]], root, "{events:#?}");
    // Each process appears before it does anything.
    let first_seen =
        |pid: u32| events.iter().position(|e| matches!(e, FollowEvent::Forked { pid: p, .. } if *p == pid));
    let first_exec = events.iter().position(|e| matches!(e, FollowEvent::Exec { pid, .. } if *pid == grandchild));
    assert!(first_seen(grandchild) < first_exec);
}

#[test]
fn an_exec_by_a_thread_other_than_the_leader_keeps_the_process() {
    let py = python();
    if !py.exists() {
        eprintln!("SKIP: {} is not installed", py.display());
        return;
    }
    // The exec'ing thread takes over the process's pid; its own thread id
    // disappears without a report.
    let code = "import os, threading, time\nthreading.Thread(target=lambda: os.execv('/bin/sh', ['/bin/sh', '-c', 'exit 6'])).start()\ntime.sleep(30)\n";
    let Some((events, end)) = follow(&[py.into(), "-c".into(), code.into()], FollowOptions::default()) else { return };
    assert_eq!(end.root_status, Some(ExitState::Code(6)), "{events:#?}");
    assert_eq!(end.processes, 1, "{events:#?}");
    let execs = execs(&events);
    assert_eq!(execs.len(), 1, "{events:#?}");
    assert_eq!(execs[0].2, os(&["/bin/sh", "-c", "exit 6"]));
    assert!(end.problems.is_empty(), "{:?}", end.problems);
}

#[test]
fn signals_reach_the_program_and_job_control_holds() {
    // SIGUSR1 is delivered (its trap sets the exit status to 7); SIGSTOP
    // stops the shell until the test sends SIGCONT.
    let argv = os(&["/bin/sh", "-c", "trap 'code=7' USR1; kill -USR1 $$; kill -STOP $$; exit $code"]);
    let (tx, rx) = mpsc::channel();
    let Ok(follower) = Follower::spawn(&argv, FollowOptions::default(), tx) else {
        eprintln!("SKIP: cannot follow here");
        return;
    };
    let root = follower.root();
    follower.go().unwrap();
    // It stops itself and stays stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state_of(root).is_some_and(|s| s == 't' || s == 'T') {
        assert!(Instant::now() < deadline, "never stopped: {:?}", state_of(root));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(state_of(root), Some('t' | 'T')), "resumed without SIGCONT: {:?}", state_of(root));
    assert!(!rx.try_iter().any(|e| matches!(e, FollowEvent::Exited { .. })));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(root as i32, libc::SIGCONT) };
    let end = follower.wait().unwrap();
    assert_eq!(end.root_status, Some(ExitState::Code(7)));
    assert!(end.problems.is_empty(), "{:?}", end.problems);
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T`, `t`, `Z`...).
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

fn tracer_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("TracerPid:")?.trim().parse().ok())
}

/// The tracer of every thread of `pid`.
fn thread_tracers(pid: u32) -> Vec<Option<u32>> {
    let tids = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tids.map(|t| t.unwrap().file_name().to_string_lossy().parse::<u32>().unwrap())
        .map(|tid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
            status.lines().find_map(|l| l.strip_prefix("TracerPid:")?.trim().parse().ok())
        })
        .collect()
}

#[test]
fn kill_ends_the_whole_tree_and_dropping_a_held_command_kills_it() {
    let argv = os(&["/bin/sh", "-c", "sleep 30 & sleep 30; wait"]);
    let (tx, rx) = mpsc::channel();
    let Ok(follower) = Follower::spawn(&argv, FollowOptions::default(), tx) else {
        eprintln!("SKIP: cannot follow here");
        return;
    };
    follower.go().unwrap();
    // Wait until both sleeps exist.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while execs(&events).len() < 2 {
        assert!(Instant::now() < deadline, "{events:#?}");
        events.extend(rx.recv_timeout(Duration::from_secs(10)));
    }
    let started = Instant::now();
    let end = follower.kill().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    events.extend(rx.try_iter());
    let exits = exited(&events);
    assert_eq!(exits.len(), 3, "{events:#?}");
    assert!(exits.values().all(|s| *s == ExitState::Signal { signal: libc::SIGKILL, core_dumped: false }), "{exits:?}");
    assert_eq!(end.processes, 3);

    let (tx, _rx) = mpsc::channel();
    let held = Follower::spawn(&os(&["/bin/sleep", "30"]), FollowOptions::default(), tx).unwrap();
    let pid = held.root();
    assert!(matches!(held.wait(), Err(importprobe::tracer::follow::FollowError::StillHeld)));
    // wait() consumed the follower: dropping it killed the held command.
    assert!(state_of(pid).is_none(), "{:?}", state_of(pid));
}

#[test]
fn detaching_a_held_command_lets_it_run_untraced() {
    let (tx, _rx) = mpsc::channel();
    let Ok(follower) = Follower::spawn(&os(&["/bin/sh", "-c", "sleep 0.3; exit 9"]), FollowOptions::default(), tx)
    else {
        eprintln!("SKIP: cannot follow here");
        return;
    };
    let pid = follower.root();
    let mut end = follower.detach().unwrap();
    assert!(end.problems.is_empty(), "{:?}", end.problems);
    assert_eq!(tracer_of(pid), Some(0));
    let mut child = end.root_child.take().expect("a detached command is handed back");
    assert_eq!(child.wait().unwrap().code(), Some(9));
}

#[test]
fn detaching_a_busy_tree_lets_every_process_go_on() {
    let py = python();
    if !py.exists() {
        eprintln!("SKIP: {} is not installed", py.display());
        return;
    }
    // Forks all the time, from two threads, while the follower lets go.
    let code = "import os, threading, time\ndef spawn():\n    for _ in range(150):\n        pid = os.fork()\n        if pid == 0:\n            time.sleep(0.002); os._exit(0)\n        os.waitpid(pid, 0)\nts = [threading.Thread(target=spawn) for _ in range(2)]\nfor t in ts: t.start()\nfor t in ts: t.join()\n";
    let (tx, rx) = mpsc::channel();
    let follower = Follower::spawn(
        &os_args(&py, &["-S", "-W", "ignore::DeprecationWarning", "-c", code]),
        FollowOptions::default(),
        tx,
    )
    .unwrap();
    let root = follower.root();
    follower.go().unwrap();
    // Detach in the thick of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while seen < 20 && Instant::now() < deadline {
        if let Ok(FollowEvent::Forked { .. }) = rx.recv_timeout(Duration::from_secs(10)) {
            seen += 1;
        }
    }
    let mut end = follower.detach().unwrap();
    assert!(end.problems.is_empty(), "{:?}", end.problems);
    assert_eq!(thread_tracers(root), vec![Some(0); thread_tracers(root).len()]);
    let status = end.root_child.take().expect("handed back").wait().unwrap();
    assert!(status.success(), "{status}");
}

/// A Python with two threads that prints its pid and its child's, then
/// waits for stdin.
fn sleeping_python_family() -> Option<(Child, u32, u32)> {
    let py = python();
    if !py.exists() {
        eprintln!("SKIP: {} is not installed", py.display());
        return None;
    }
    // Two threads beside the main one in the parent: each must be seized.
    let code = "import os, sys, threading\nstop = threading.Event()\nfor _ in range(2):\n    threading.Thread(target=stop.wait, daemon=True).start()\npid = os.fork()\nif pid == 0:\n    sys.stdin.read(); os._exit(0)\nprint(os.getpid(), pid, flush=True)\nsys.stdin.read()\nos.waitpid(pid, 0)\n";
    let mut child =
        // (3.12+ warns about forking with threads; it is the point here.)
        Command::new(&py)
            .args(["-S", "-W", "ignore::DeprecationWarning", "-c", code])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let pids: Vec<u32> = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids[0], child.id());
    Some((child, pids[0], pids[1]))
}

#[test]
fn seizes_a_running_tree_and_detaches_leaving_it_as_it_was() {
    let Some((mut family, parent, kid)) = sleeping_python_family() else { return };
    let probes: Vec<_> = [parent, kid].iter().map(|&p| import_probes_in(p, &IMPORT_PROBES).unwrap()).collect();
    let sems = |i: usize, pid: u32| semaphores::values(pid, &probes[i]).unwrap();
    // Relative to what they were: a system-wide tracer of someone else's
    // may hold them raised too.
    let before = [sems(0, parent), sems(1, kid)];
    let plus_one = |v: &[Option<u16>]| v.iter().map(|c| c.map(|c| c + 1)).collect::<Vec<_>>();
    let (tx, rx) = mpsc::channel();
    let follower = Follower::seize(parent, FollowOptions::default(), tx).unwrap();
    assert_eq!(follower.pids(), [parent, kid]);
    let joined: Vec<(u32, Option<u32>)> = rx
        .try_iter()
        .filter_map(|e| if let FollowEvent::Joined { pid, parent, .. } = e { Some((pid, parent)) } else { None })
        .collect();
    assert_eq!(joined, [(parent, None), (kid, Some(parent))]);
    // Raised in both, each its own copy.
    assert_eq!(sems(0, parent), plus_one(&before[0]));
    assert_eq!(sems(1, kid), plus_one(&before[1]));
    let tracer = tracer_of(parent);
    assert_ne!(tracer, Some(0));
    assert_eq!(thread_tracers(parent), [tracer; 3], "every thread is seized");
    assert_eq!(tracer_of(kid), tracer);
    let end = follower.detach().unwrap();
    assert!(end.problems.is_empty(), "{:?}", end.problems);
    assert!(end.root_status.is_none());
    assert_eq!(thread_tracers(parent), [Some(0); 3], "every thread is detached");
    for pid in [parent, kid] {
        assert_eq!(tracer_of(pid), Some(0), "pid {pid} still traced");
        assert!(matches!(state_of(pid), Some('S' | 'R')), "pid {pid}: {:?}", state_of(pid));
    }
    assert_eq!([sems(0, parent), sems(1, kid)], before);
    drop(family.stdin.take());
    assert!(family.wait().unwrap().success());
}

/// The import semaphores of every Python in a tree where the root forks a
/// child and execs a grandchild, each reading its own counters.
fn semaphores_seen_in_a_tree(raise_semaphores: bool) -> Option<BTreeMap<String, Vec<u16>>> {
    let py = python();
    if !py.exists() {
        eprintln!("SKIP: {} is not installed", py.display());
        return None;
    }
    // Where the semaphores are, relative to the executable's first mapping
    // (the same in every process running it).
    let mut probe =
        Command::new(&py).args(["-S", "-c", "import sys; sys.stdin.read()"]).stdin(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let probes = loop {
        let p = import_probes_in(probe.id(), &IMPORT_PROBES).unwrap();
        if p.len() == 2 || Instant::now() > deadline {
            break p;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", probe.id())).unwrap();
    let exe = std::fs::canonicalize(&py).unwrap();
    let base = maps
        .lines()
        .filter(|l| l.ends_with(&*exe.to_string_lossy()))
        .map(|l| u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap())
        .min()
        .unwrap();
    drop(probe.stdin.take());
    probe.wait().unwrap();
    let offsets: Vec<u64> = probes.iter().map(|p| p.semaphore.unwrap() - base).collect();
    let dir = Scratch::new("follow-semaphores");
    let read = format!(
        "import sys\nexe = {exe:?}\nbase = min(int(l.split('-')[0], 16) for l in open('/proc/self/maps') if l.rstrip().endswith(exe))\nm = open('/proc/self/mem', 'rb')\nvals = []\nfor off in {offsets:?}:\n    m.seek(base + off); vals.append(int.from_bytes(m.read(2), 'little'))\nopen(sys.argv[1], 'w').write(' '.join(map(str, vals)))\n",
        exe = exe.display().to_string()
    );
    let out = |name: &str| dir.path(name).display().to_string();
    let root = format!(
        "import os, sys\nREAD = {read:?}\npid = os.fork()\nif pid == 0:\n    exec(READ.replace('sys.argv[1]', repr({forked:?}))); os._exit(0)\nos.waitpid(pid, 0)\npid = os.fork()\nif pid == 0:\n    os.execv(sys.executable, [sys.executable, '-c', READ, {execd:?}])\nos.waitpid(pid, 0)\nexec(READ.replace('sys.argv[1]', repr({root:?})))\n",
        forked = out("forked"),
        execd = out("execd"),
        root = out("root")
    );
    follow(&[py.into(), "-c".into(), root.into()], FollowOptions { raise_semaphores })?;
    let mut seen = BTreeMap::new();
    for name in ["root", "forked", "execd"] {
        let text = std::fs::read_to_string(dir.path(name)).unwrap();
        seen.insert(name.to_owned(), text.split(' ').map(|v| v.parse().unwrap()).collect());
    }
    Some(seen)
}

#[test]
fn raises_the_semaphores_of_the_command_and_of_every_exec_d_image() {
    let Some(raised) = semaphores_seen_in_a_tree(true) else { return };
    let Some(untouched) = semaphores_seen_in_a_tree(false) else { return };
    eprintln!("semaphores raised {raised:?}, untouched {untouched:?}");
    // One more than whatever else raised them (a system-wide tracer of
    // someone else's may run meanwhile): in the command, in its forked
    // child (inherited), in its exec'd child (raised at the exec).
    for (who, values) in &raised {
        let base = &untouched[who];
        assert_eq!(values.len(), 2, "{who}: {values:?}");
        assert!(values.iter().zip(base).all(|(r, u)| *r == u + 1), "{who}: raised {values:?}, untouched {base:?}");
    }
}

#[test]
fn refuses_to_seize_what_it_must_not() {
    use importprobe::tracer::follow::FollowError;
    let (tx, _rx) = mpsc::channel();
    assert!(matches!(
        Follower::seize(std::process::id(), FollowOptions::default(), tx.clone()),
        Err(FollowError::Myself(_))
    ));
    assert!(matches!(
        Follower::seize(u32::MAX - 1, FollowOptions::default(), tx.clone()),
        Err(FollowError::NoSuchProcess(_))
    ));
    let missing = os(&["/nonexistent/importprobe-follow-test"]);
    assert!(matches!(Follower::spawn(&missing, FollowOptions::default(), tx), Err(FollowError::Launch(_))));
}

// ---------------------------------------------------------------------------
// Real traces.

/// Loads every module it is given as fast as it can, for as long as its
/// stdin is open, each name unique so that any of them in a trace is a
/// leak: a Python outside the traced tree, running the same interpreter.
const BYSTANDER: &str = "\
import sys, threading, time
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print('ready', flush=True)
i = 0
while not stop.is_set():
    try:
        __import__('importprobe_bystander_%d' % i)
    except ImportError:
        pass
    i += 1
    time.sleep(0.001)
";

/// Written next to the programs: each process that imports it writes the
/// modules it loaded itself to `<pid>.json` when it exits (or when asked).
/// Aliases, entries a module put in `sys.modules` under another name by
/// assignment (`os.path`, `collections.abc` on 3.13, `importlib._bootstrap`,
/// `__mp_main__`), were never imported under that name: their spec says
/// another name, and they are left out.
const TREEDUMP: &str = "\
import atexit, json, os, sys
_inherited = set()
def _forked():
    global _inherited
    _inherited = set(sys.modules)
os.register_at_fork(after_in_child=_forked)
def dump():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'dumps', '%d.json' % os.getpid())
    mine = [k for k, m in list(sys.modules.items()) if k not in _inherited and getattr(getattr(m, '__spec__', None), 'name', None) == k]
    with open(out, 'w') as f:
        json.dump({'argv': sys.argv, 'modules': sorted(mine)}, f)
atexit.register(dump)
";

/// One traced run of a tree.
struct TreeRun {
    /// What import-events.bt printed, parsed.
    events: Vec<ImportEvent>,
    tree: Vec<FollowEvent>,
    command: Option<std::process::ExitStatus>,
    problems: Vec<String>,
    processes: usize,
    /// pid -> (argv, modules loaded by that process itself).
    dumps: BTreeMap<u32, (Vec<String>, Vec<String>)>,
    bystander: u32,
    bpftrace_stderr: String,
    version: String,
}

fn bpftrace_version() -> String {
    let out = Command::new("bpftrace").arg("--version").output().expect("bpftrace --version");
    lossy(&out.stdout).trim().to_owned()
}

/// What a process of the interpreter imports first: the first top-level
/// line of `-X importtime` (lines come children first, so the first one at
/// depth 0 is the first import started).
fn first_import(py: &Path) -> String {
    let out = Command::new(py).args(["-X", "importtime", "-c", "pass"]).output().unwrap();
    let text = lossy(&out.stderr);
    text.lines()
        .skip(1)
        .filter_map(|l| l.rsplit_once('|').map(|(_, name)| name))
        .find(|name| !name.starts_with("  "))
        .map(|name| name.trim().to_owned())
        .expect("an importtime line at top level")
}

/// Whether the tests can trace real Python trees here; says why not.
fn can_trace_python() -> bool {
    if !can_trace() {
        return false;
    }
    let py = python();
    if !py.exists() {
        return skip(&format!("{} is not installed (set IMPORTPROBE_PYTHON)", py.display()));
    }
    if Dialect::for_version(&bpftrace_version()).is_err() {
        return skip(&format!("unknown bpftrace version {:?}", bpftrace_version()));
    }
    true
}

/// A child killed if the test panics before it ends it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether the follower raises semaphores in the traced runs
/// (`IMPORTPROBE_TEST_RAISE=0`: no).
fn raising() -> bool {
    std::env::var("IMPORTPROBE_TEST_RAISE").as_deref() != Ok("0")
}

/// Runs `argv` followed and traced by import-events.bt restricted to the
/// tree ([`trace_tree_with`]); parses the events and the processes' dumps.
fn trace_tree(dir: &Path, argv: &[OsString], objects: &[PathBuf]) -> TreeRun {
    let source = importprobe::tracer::scripts::find("import-events").unwrap().bpftrace;
    let raw = trace_tree_with(source, dir, argv, objects);
    let events = importprobe::events::stream::parse(&raw.out[..])
        .unwrap_or_else(|e| panic!("{e}\n{}\nstderr:\n{}", lossy(&raw.out), raw.bpftrace_stderr))
        .events;
    let mut dumps = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("dumps")).unwrap() {
        let path = entry.unwrap().path();
        let pid: u32 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let strings = |k: &str| json[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        dumps.insert(pid, (strings("argv"), strings("modules")));
    }
    TreeRun {
        events,
        tree: raw.tree,
        command: raw.command,
        problems: raw.problems,
        processes: raw.processes,
        dumps,
        bystander: raw.bystander,
        bpftrace_stderr: raw.bpftrace_stderr,
        version: raw.version,
    }
}

/// What one traced run of a tree gave, before parsing.
struct RawRun {
    /// bpftrace's stdout without the ready line.
    out: Vec<u8>,
    tree: Vec<FollowEvent>,
    /// How the started command ended.
    command: Option<std::process::ExitStatus>,
    /// What the follower could not do.
    problems: Vec<String>,
    /// Processes seen in the tree.
    processes: usize,
    bystander: u32,
    bpftrace_stderr: String,
    version: String,
}

/// Runs `argv` followed, traced by one bpftrace running `source`
/// restricted to the tree, through the one runner `importprobe trace
/// --follow-children` uses, with the bystander importing meanwhile.
fn trace_tree_with(source: &str, dir: &Path, argv: &[OsString], objects: &[PathBuf]) -> RawRun {
    let _serial = tracing_lock();
    std::fs::create_dir_all(dir.join("dumps")).unwrap();
    let bpftrace = Bpftrace::locate().unwrap();
    let py = python();

    // The bystander: started first, semaphores raised by the test itself
    // (as another tracer would), so that its probes really fire into the
    // system-wide uprobes on every bpftrace version, and the filter is what
    // keeps them out.
    let mut bystander = KillOnDrop(
        Command::new(&py).args(["-c", BYSTANDER]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut line = String::new();
    BufReader::new(bystander.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let bystander_probes = import_probes_in(bystander.0.id(), &IMPORT_PROBES).unwrap();
    let bystander_raised = semaphores::raise(bystander.0.id(), &bystander_probes).unwrap();

    let mut req = TraceRequest::new("tree-events", source, Target::Command(argv.to_vec()), bpftrace.clone());
    req.args = vec![String::new()];
    req.follow_children = true;
    req.objects = objects.to_vec();
    req.deadline = Some(Duration::from_secs(120));
    let mut out = Vec::new();
    let outcome = runner::trace(req, &mut out).unwrap_or_else(|e| panic!("tracing the tree: {e}"));
    semaphores::lower(bystander.0.id(), &bystander_raised).unwrap();
    let bystander_pid = bystander.0.id();
    drop(bystander.0.stdin.take());
    bystander.0.wait().unwrap();

    RawRun {
        out,
        processes: outcome.processes.len(),
        command: outcome.command,
        problems: outcome.problems,
        tree: outcome.tree,
        bystander: bystander_pid,
        bpftrace_stderr: outcome.stderr.join("\n"),
        version: bpftrace.version.to_string(),
    }
}

/// Modules in `sys.modules` that never pass through the probes: created in
/// C before the import system exists, and the script itself.
const NEVER_TRACED: &[&str] =
    &["__main__", "_frozen_importlib", "_imp", "_thread", "_warnings", "_weakref", "builtins", "sys"];

impl TreeRun {
    fn starts(&self, pid: u32) -> Vec<&ImportEvent> {
        self.events.iter().filter(|e| e.pid == pid && e.kind == EventKind::Start).collect()
    }

    fn tree_pids(&self) -> BTreeSet<u32> {
        self.tree
            .iter()
            .filter_map(|e| match e {
                FollowEvent::Joined { pid, .. } | FollowEvent::Forked { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect()
    }

    /// Everything every test checks: only the tree was traced, each
    /// process's own imports were all traced with its pid, and each
    /// exec'd Python's first import was seen.
    fn check_common(&self) {
        let context = format!("bpftrace {}; tree {:#?}", self.version, self.tree);
        assert!(self.problems.is_empty(), "{:?}", self.problems);
        assert!(!self.bpftrace_stderr.contains("Lost"), "{}", self.bpftrace_stderr);
        let tree = self.tree_pids();
        let traced: BTreeSet<u32> = self.events.iter().map(|e| e.pid).collect();
        assert!(traced.is_subset(&tree), "traced outside the tree: {:?}; {context}", traced.difference(&tree));
        assert!(!traced.contains(&self.bystander), "the bystander was traced");
        assert!(!self.events.iter().any(|e| e.module.contains("bystander")), "a bystander import was traced");
        assert!(!self.dumps.is_empty(), "no process wrote its modules");
        for (pid, (argv, modules)) in &self.dumps {
            assert!(tree.contains(pid), "pid {pid} ({argv:?}) not in the tree; {context}");
            let started: BTreeSet<&str> = self.starts(*pid).iter().map(|e| e.module.as_str()).collect();
            let missing: Vec<&String> = modules
                .iter()
                .filter(|m| !started.contains(m.as_str()) && !NEVER_TRACED.contains(&m.as_str()))
                .collect();
            assert!(missing.is_empty(), "pid {pid} ({argv:?}) loaded {missing:?} untraced; {context}");
        }
        let first = first_import(&python());
        let pythons = self.tree.iter().filter_map(|e| match e {
            FollowEvent::Exec { pid, exe, argv, .. } if self.dumps.contains_key(pid) || exe.ends_with("embed") => {
                Some((*pid, exe.clone(), argv.clone()))
            }
            _ => None,
        });
        for (pid, exe, argv) in pythons {
            let starts = self.starts(pid);
            assert_eq!(
                starts.first().map(|e| e.module.as_str()),
                Some(first.as_str()),
                "pid {pid} ({} {argv:?}): first traced import; {context}",
                exe.display()
            );
        }
    }

    /// One line per process, for the record (`--nocapture`).
    fn summary(&self, test: &str) {
        let mut per_pid: BTreeMap<u32, usize> = BTreeMap::new();
        for e in &self.events {
            *per_pid.entry(e.pid).or_default() += 1;
        }
        eprintln!(
            "{test}: bpftrace {}: {} events from {} processes {:?}; {} tree processes, bystander pid {} absent",
            self.version,
            self.events.len(),
            per_pid.len(),
            per_pid,
            self.processes,
            self.bystander
        );
    }

    /// The pids whose events include a successful import of `module`.
    fn importers_of(&self, module: &str) -> BTreeSet<u32> {
        self.events
            .iter()
            .filter(|e| e.kind == EventKind::Done && e.module == module && e.found == Some(true))
            .map(|e| e.pid)
            .collect()
    }
}

fn write_program(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::write(dir.join("treedump.py"), TREEDUMP).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn traces_a_subprocess_from_its_first_import() {
    if !can_trace_python() {
        return;
    }
    let dir = Scratch::new("follow-subprocess");
    let child = "import sys; sys.path.insert(0, sys.argv[1]); import treedump, json, decimal";
    let main = write_program(
        &dir.0,
        "main.py",
        &format!(
            "import os, subprocess, sys\nimport treedump\nsubprocess.run([sys.executable, '-c', {child:?}, os.path.dirname(os.path.abspath(__file__))], check=True)\n"
        ),
    );
    let py = python();
    let run = trace_tree(&dir.0, &[py.clone().into(), main.into()], std::slice::from_ref(&py));
    run.summary("subprocess");
    run.check_common();
    let execs = execs(&run.tree);
    assert_eq!(execs.len(), 1, "{:#?}", run.tree);
    let child_pid = execs[0].0;
    assert_eq!(run.importers_of("decimal"), BTreeSet::from([child_pid]), "{:?}", run.events.len());
    assert!(run.importers_of("json").contains(&child_pid));
    assert!(run.command.is_some_and(|s| s.success()), "{:?}", run.command);
}

#[test]
fn traces_both_workers_of_a_fork_based_pool() {
    if !can_trace_python() {
        return;
    }
    let dir = Scratch::new("follow-pool");
    let main = write_program(
        &dir.0,
        "pool.py",
        "\
import multiprocessing, os
import treedump
ctx = multiprocessing.get_context('fork')
barrier = ctx.Barrier(2)  # each of the 2 tasks runs in its own worker

def work(i):
    barrier.wait(30)
    import fractions
    treedump.dump()       # workers leave with os._exit: no atexit
    return os.getpid()

if __name__ == '__main__':
    with ctx.Pool(2) as pool:
        pids = pool.map(work, range(2), chunksize=1)
    assert len(set(pids)) == 2, pids
",
    );
    let py = python();
    let run = trace_tree(&dir.0, &[py.clone().into(), main.into()], std::slice::from_ref(&py));
    run.summary("pool");
    run.check_common();
    let root = match &run.tree[0] {
        FollowEvent::Joined { pid, .. } => *pid,
        other => panic!("{other:?}"),
    };
    let workers: BTreeSet<u32> = forked(&run.tree).into_iter().filter(|(_, p)| *p == root).map(|(c, _)| c).collect();
    assert_eq!(workers.len(), 2, "{:#?}", run.tree);
    assert!(execs(&run.tree).is_empty(), "a fork pool does not exec");
    assert_eq!(run.importers_of("fractions"), workers, "fractions is imported by both workers, by them only");
    for w in &workers {
        assert!(run.dumps.contains_key(w), "worker {w} wrote no dump");
    }
}

#[test]
fn traces_a_fork_exec_chain_three_levels_deep_through_a_shell_and_a_venv() {
    if !can_trace_python() {
        return;
    }
    let dir = Scratch::new("follow-chain");
    let py = python();
    let venv = dir.0.join("venv");
    let made = Command::new(&py).args(["-m", "venv", "--without-pip"]).arg(&venv).status().unwrap();
    assert!(made.success(), "python -m venv failed");
    let venv_python = venv.join("bin").join("python");
    assert!(std::fs::symlink_metadata(&venv_python).unwrap().file_type().is_symlink());
    let chain = write_program(
        &dir.0,
        "chain.py",
        &format!(
            "\
import os, subprocess, sys
import treedump
level = int(sys.argv[1])
__import__({{0: 'json', 1: 'decimal', 2: 'fractions', 3: 'statistics'}}[level])
if level == 1:
    # Level 2 through a shell (no probes: run to its entry point, then
    # exec'd again) and a venv's python, a symlink to the interpreter.
    subprocess.run(['/bin/sh', '-c', 'exec \"$0\" \"$1\" 2', {venv:?}, __file__], check=True)
elif level < 3:
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, __file__, str(level + 1)])
    assert os.waitpid(pid, 0)[1] == 0
",
            venv = venv_python.display().to_string()
        ),
    );
    let run = trace_tree(&dir.0, &[py.clone().into(), chain.into(), "0".into()], std::slice::from_ref(&py));
    run.summary("chain");
    run.check_common();
    // One process per level, each importing its own module.
    let mut by_level: BTreeMap<String, u32> = BTreeMap::new();
    for (pid, (argv, _)) in &run.dumps {
        by_level.insert(argv[1].clone(), *pid);
    }
    assert_eq!(by_level.keys().collect::<Vec<_>>(), ["0", "1", "2", "3"], "{:?}", run.dumps);
    for (level, module) in [("0", "json"), ("1", "decimal"), ("2", "fractions"), ("3", "statistics")] {
        assert!(run.importers_of(module).contains(&by_level[level]), "level {level} {module}");
    }
    // Level 2 ran as the venv's python; the shell carried no probes.
    let execs = execs(&run.tree);
    let level2 = execs.iter().rev().find(|(pid, ..)| *pid == by_level["2"]).unwrap();
    assert_eq!(level2.2[0], OsString::from(&venv_python), "{level2:?}");
    let shell = execs.iter().find(|(_, _, argv, _)| argv[0] == "/bin/sh").expect("the shell ran");
    if raising() {
        assert_eq!(shell.3, SemaphoreOutcome::NoProbes, "{shell:?}");
    }
    assert_eq!(shell.0, level2.0, "the shell exec'd the venv's python in place");
}

#[test]
fn traces_a_program_embedding_libpython() {
    if !can_trace_python() {
        return;
    }
    let py = python();
    let config = Command::new(&py)
        .args(["-c", "import sysconfig as s; print(s.get_paths()['include']); print(s.get_config_var('LIBDIR')); print(s.get_config_var('INSTSONAME'))"])
        .output()
        .unwrap();
    let config = lossy(&config.stdout);
    let mut lines = config.lines();
    let (include, libdir, soname) =
        (lines.next().unwrap_or(""), lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let libpython = Path::new(libdir).join(soname);
    if !Path::new(include).join("Python.h").exists() || !libpython.exists() || which("cc").is_none() {
        eprintln!("SKIP: no C compiler, Python.h or {} to build an embedding program", libpython.display());
        return;
    }
    let dir = Scratch::new("follow-embed");
    let source = dir.0.join("embed.c");
    std::fs::write(
        &source,
        "#include <Python.h>\nint main(void) {\n  Py_Initialize();\n  PyRun_SimpleString(\"import json, decimal\\n\");\n  return Py_FinalizeEx() < 0;\n}\n",
    )
    .unwrap();
    let embed = dir.0.join("embed");
    let built = Command::new("cc")
        .arg(format!("-I{include}"))
        .arg(&source)
        .arg("-o")
        .arg(&embed)
        .arg(&libpython)
        .status()
        .unwrap();
    assert!(built.success());
    let main = write_program(
        &dir.0,
        "main.py",
        &format!(
            "import subprocess\nimport treedump\nsubprocess.run([{:?}], check=True)\n",
            embed.display().to_string()
        ),
    );
    let run = trace_tree(&dir.0, &[py.clone().into(), main.into()], &[py.clone(), libpython.clone()]);
    run.summary("embed");
    run.check_common();
    let embedded = execs(&run.tree).into_iter().find(|(_, exe, ..)| *exe == embed).expect("the embedding program ran");
    // Its probes live in libpython, mapped by the loader: raised there.
    if raising() {
        assert_eq!(embedded.3, SemaphoreOutcome::Raised(vec![libpython.canonicalize().unwrap()]), "{embedded:?}");
    }
    assert!(run.importers_of("decimal").contains(&embedded.0));
}

#[test]
fn restricts_a_script_without_begin_or_end() {
    if !can_trace_python() {
        return;
    }
    // Counts per process, printed by bpftrace itself at exit.
    let source = "usdt:$1:python:import__find__load__start\n{\n\t@starts[pid] = count();\n}\n";
    let dir = Scratch::new("follow-nobegin");
    let main = write_program(
        &dir.0,
        "main.py",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import json'], check=True)\n",
    );
    let py = python();
    let run = trace_tree_with(source, &dir.0, &[py.clone().into(), main.into()], std::slice::from_ref(&py));
    let counted: BTreeMap<u32, u64> = lossy(&run.out)
        .lines()
        .filter_map(|l| l.strip_prefix("@starts[")?.split_once("]: "))
        .map(|(pid, n)| (pid.parse().unwrap(), n.parse().unwrap()))
        .collect();
    let tree: BTreeSet<u32> = run
        .tree
        .iter()
        .filter_map(|e| {
            if let FollowEvent::Joined { pid, .. } | FollowEvent::Forked { pid, .. } = e {
                Some(*pid)
            } else {
                None
            }
        })
        .collect();
    eprintln!("no BEGIN/END: bpftrace {}: counted {counted:?}, tree {tree:?}", run.version);
    assert_eq!(counted.keys().copied().collect::<BTreeSet<u32>>(), tree, "{}", lossy(&run.out));
    assert!(counted.values().all(|&n| n > 10), "{counted:?}");
    assert!(!lossy(&run.out).contains("importprobe_tree"), "the tree map is cleared at exit: {}", lossy(&run.out));
    // No diagnostic about the script (bpftrace's own complaints about the
    // environment, such as RLIMIT_MEMLOCK, name no file).
    assert!(!run.bpftrace_stderr.contains("tree-events.bt:"), "{}", run.bpftrace_stderr);
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// Costs (no tracer: what following itself costs).

/// Loops `fork` (+ `exec` of `/bin/true` or of the interpreter) N times and
/// writes the seconds the loop took to a file.
const FORK_LOOP: &str = "\
import os, sys, time
n, what, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
argv = {'fork': None, 'true': ['/bin/true'], 'python': [sys.executable, '-S', '-c', 'pass']}[what]
t = time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if argv:
            os.execv(argv[0], argv)
        os._exit(0)
    os.waitpid(pid, 0)
open(out, 'w').write(repr(time.perf_counter() - t))
";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `argv` plainly, or followed (raising semaphores or not); wall time.
fn timed_run(argv: &[OsString], how: Option<FollowOptions>) -> f64 {
    let t = Instant::now();
    match how {
        None => assert!(Command::new(&argv[0]).args(&argv[1..]).status().unwrap().success()),
        Some(options) => {
            let (tx, _rx) = mpsc::channel();
            let f = Follower::spawn(argv, options, tx).unwrap();
            f.go().unwrap();
            assert_eq!(f.wait().unwrap().root_status, Some(ExitState::Code(0)));
        }
    }
    t.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a measurement: cargo test --release --test follow -- --ignored --nocapture"]
fn cost_of_following() {
    let py = python();
    let runs = 9;
    let modes: [(&str, Option<FollowOptions>); 3] = [
        ("plain", None),
        ("followed", Some(FollowOptions { raise_semaphores: true })),
        ("followed, no raising", Some(FollowOptions { raise_semaphores: false })),
    ];
    // 1. Nothing forks: a CPython start-up with some imports.
    let argv: Vec<OsString> = vec![
        py.clone().into(),
        "-c".into(),
        "import json, decimal, fractions, email.message, http.client, argparse".into(),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..runs {
        for (i, (_, how)) in modes.iter().enumerate() {
            times[i].push(timed_run(&argv, *how));
        }
    }
    let plain = median(times[0].clone());
    eprintln!("no fork ({runs} runs each, median wall time of the whole run):");
    for (i, (name, _)) in modes.iter().enumerate() {
        let m = median(times[i].clone());
        eprintln!("  {name:<22} {:7.2} ms  ({:+.2} ms)", m * 1e3, (m - plain) * 1e3);
    }
    // 2. Loops of forks, fork+exec of a non-Python, fork+exec of Python.
    let dir = Scratch::new("follow-cost");
    let script = dir.path("loop.py");
    std::fs::write(&script, FORK_LOOP).unwrap();
    for (what, n) in [("fork", 200), ("true", 200), ("python", 40)] {
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        for _ in 0..runs.min(5) {
            for (i, (_, how)) in modes.iter().enumerate() {
                let out = dir.path("t");
                let argv: Vec<OsString> = vec![
                    py.clone().into(),
                    "-S".into(),
                    script.clone().into(),
                    n.to_string().into(),
                    what.into(),
                    out.clone().into(),
                ];
                timed_run(&argv, *how);
                let secs: f64 = std::fs::read_to_string(&out).unwrap().parse().unwrap();
                per[i].push(secs / n as f64);
            }
        }
        let plain = median(per[0].clone());
        let label = match what {
            "fork" => "fork + exit + wait",
            "true" => "fork + exec /bin/true",
            _ => "fork + exec python -S -c pass",
        };
        eprintln!("{label} (loops of {n}, median of {} runs, per iteration):", runs.min(5));
        for (i, (name, _)) in modes.iter().enumerate() {
            let m = median(per[i].clone());
            eprintln!("  {name:<22} {:8.1} us  ({:+.1} us)", m * 1e6, (m - plain) * 1e6);
        }
    }
}
