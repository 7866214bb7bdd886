//! The simulated import system: runs a [`Workload`] on real threads (and
//! processes), firing CPython's two import probes around every module it
//! finds and loads.

pub mod clock;
pub mod cost;
pub mod import_system;
pub mod interpreter;
pub mod outputs;
pub mod probes;
pub mod process;
pub mod whole_lines;

use crate::events::ProcessInfo;
use crate::workload::{ThreadStart, Workload};
use import_system::ImportSystem;
use interpreter::{Failure, Outcome, ThreadRun};
use outputs::Outputs;
use process::{Context, Driver, Family};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How far ahead of the moment every thread is up a replay's time line
/// starts, when threads start with the main thread.
const START_LEAD_NS: u64 = 200_000;

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    pub threads: usize,
    pub elapsed: Duration,
    /// Threads that ended on an import error nobody caught, with the error.
    pub uncaught: Vec<(String, Failure)>,
    /// Child processes started directly by this process.
    pub children: usize,
    /// Children that could not be started or did not exit with status 0,
    /// one line each.
    pub child_errors: Vec<String>,
}

/// Runs the workload as the root of its process tree, with no way to exec
/// children (`importprobe run` gives one: [`run_with`]).
pub fn run(w: &Workload, outputs: &Outputs) -> RunSummary {
    run_with(w, outputs, &Context::root())
}

/// Runs the workload: the main thread's imports on the calling thread (so its
/// tid is the pid, as in CPython), starting child processes between them;
/// threads that start with the main thread run alongside it, the others
/// start at once after it. Returns once every thread and child has ended.
pub fn run_with(w: &Workload, outputs: &Outputs, ctx: &Context) -> RunSummary {
    probes::register();
    let started = Instant::now();
    outputs.process(ProcessInfo { pid: outputs.pid(), ppid: ctx.parent, command: ctx.command.clone() });
    let sys = ImportSystem::new(w.module_count(), 1 + w.threads().len());
    // Timing offsets (replays) count from one origin, set once the threads
    // that start with the main thread are up (spawning them takes time that
    // must not make the main thread late), a little ahead so that none is
    // late to begin. Nobody blocks meanwhile (they poll, yielding): a
    // blocked thread's wake-up can take a millisecond on a busy VM.
    let with_main = w.threads().iter().filter(|p| p.start == ThreadStart::WithMain).count();
    let lead = if with_main > 0 { START_LEAD_NS } else { 0 };
    let origin = OnceLock::new();
    let arrived = AtomicUsize::new(0);
    let mut family = Family::default();
    let mut child_errors = Vec::new();
    let mut uncaught = Vec::new();
    std::thread::scope(|scope| {
        let (sys, origin, arrived) = (&sys, &origin, &arrived);
        let start = |which: ThreadStart| {
            w.threads()
                .iter()
                .enumerate()
                .filter(|(_, plan)| plan.start == which)
                .map(|(i, plan)| {
                    let h = std::thread::Builder::new()
                        .name(plan.name.clone())
                        .spawn_scoped(scope, move || {
                            arrived.fetch_add(1, Ordering::SeqCst);
                            let origin = loop {
                                match origin.get() {
                                    Some(&o) => break o,
                                    None => std::thread::yield_now(),
                                }
                            };
                            ThreadRun::new(w, sys, outputs, i as u32 + 1)
                                .with_origin(origin)
                                .run_timed(w.plan_stmts(plan), w.plan_offsets(plan))
                        })
                        .expect("spawning a simulator thread");
                    (plan.name.clone(), h)
                })
                .collect::<Vec<_>>()
        };
        let mut handles = start(ThreadStart::WithMain);
        while arrived.load(Ordering::SeqCst) < with_main {
            std::thread::yield_now();
        }
        let now = *origin.get_or_init(|| clock::monotonic_ns() + lead);
        let driver = Driver { w, sys, out: outputs, ctx: ctx.clone(), origin: now };
        let main: Outcome = driver.run_main(w.main_process(), &mut family, &mut child_errors);
        match main {
            // Like an uncaught exception in a Python script: the program ends.
            Err(e) => uncaught.push((w.main_thread().name.clone(), e)),
            Ok(()) => handles.extend(start(ThreadStart::AfterMain)),
        }
        for (name, h) in handles {
            if let Err(e) = h.join().expect("simulator threads do not panic") {
                uncaught.push((name, e));
            }
        }
    });
    family.wait_all(&mut child_errors);
    RunSummary {
        threads: 1 + w.threads().len(),
        elapsed: started.elapsed(),
        uncaught,
        children: family.count,
        child_errors,
    }
}
