//! The simulated import system: runs a [`Workload`] on real threads, firing
//! CPython's two import probes around every module it finds and loads.

pub mod clock;
pub mod cost;
pub mod import_system;
pub mod interpreter;
pub mod outputs;
pub mod probes;

use crate::workload::Workload;
use import_system::ImportSystem;
use interpreter::{Failure, ThreadRun};
use outputs::Outputs;
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    pub threads: usize,
    pub elapsed: Duration,
    /// Threads that ended on an import error nobody caught, with the error.
    pub uncaught: Vec<(String, Failure)>,
}

/// Runs the workload: the main thread's imports on the calling thread (so its
/// tid is the pid, as in CPython), then every other thread at once.
pub fn run(w: &Workload, outputs: &Outputs) -> RunSummary {
    probes::register();
    let started = Instant::now();
    let sys = ImportSystem::new(w.module_count(), 1 + w.threads().len());
    let mut uncaught = Vec::new();
    let main = w.main_thread();
    if let Err(e) = ThreadRun::new(w, &sys, outputs, 0).run(w.plan_stmts(main)) {
        // Like an uncaught exception in a Python script: the program ends.
        uncaught.push((main.name.clone(), e));
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = w
                .threads()
                .iter()
                .enumerate()
                .map(|(i, plan)| {
                    let sys = &sys;
                    std::thread::Builder::new()
                        .name(plan.name.clone())
                        .spawn_scoped(scope, move || {
                            ThreadRun::new(w, sys, outputs, i as u32 + 1).run(w.plan_stmts(plan))
                        })
                        .expect("spawning a simulator thread")
                })
                .collect();
            for (plan, h) in w.threads().iter().zip(handles) {
                if let Err(e) = h.join().expect("simulator threads do not panic") {
                    uncaught.push((plan.name.clone(), e));
                }
            }
        });
    }
    RunSummary { threads: 1 + w.threads().len(), elapsed: started.elapsed(), uncaught }
}
