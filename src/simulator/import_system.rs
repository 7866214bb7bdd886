//! The state CPython's import system shares between threads: `sys.modules`
//! and the per-module locks of `importlib._bootstrap` (`_ModuleLock`), with
//! their deadlock detection (`_blocking_on`).
//!
//! `sys.modules` entries are atomics: reading or setting one is a single
//! load or store, as it was a single assignment under the mutex. The module
//! locks and `_blocking_on` sit behind one mutex; threads blocked on a
//! module lock wait on one condition variable, which is signalled only when
//! somebody waits (a notify is a system call even with no waiter). Costs
//! are never spent while holding the mutex.

use crate::workload::ModId;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Index of a simulated thread (0 is the main thread).
pub type ThreadIdx = u32;

/// A module's entry in `sys.modules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Absent,
    /// In `sys.modules` with `__spec__._initializing` set: its body is running
    /// in that thread.
    Initializing(ThreadIdx),
    Loaded,
}

impl Entry {
    /// One word: 0 absent, 1 loaded, 2 + thread initialising.
    fn encode(self) -> u32 {
        match self {
            Entry::Absent => 0,
            Entry::Loaded => 1,
            Entry::Initializing(t) => t + 2,
        }
    }

    fn decode(word: u32) -> Self {
        match word {
            0 => Entry::Absent,
            1 => Entry::Loaded,
            t => Entry::Initializing(t - 2),
        }
    }
}

/// A `_ModuleLock`: `owner` 0 is free, else the owning thread + 1 (8 bytes
/// a module rather than 12 for an `Option`).
#[derive(Debug, Clone, Copy, Default)]
struct ModuleLock {
    owner: u32,
    count: u32,
}

impl ModuleLock {
    fn owner(&self) -> Option<ThreadIdx> {
        self.owner.checked_sub(1)
    }
}

/// `_ModuleLock.acquire` found that waiting would deadlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlock;

#[derive(Debug)]
struct State {
    locks: Vec<ModuleLock>,
    /// `_blocking_on`: the module lock each thread waits for.
    blocking_on: Vec<Option<ModId>>,
    /// Threads waiting on `released`.
    waiters: u32,
}

/// Shared `sys.modules` and module locks.
#[derive(Debug)]
pub struct ImportSystem {
    modules: Vec<AtomicU32>,
    state: Mutex<State>,
    released: Condvar,
}

impl ImportSystem {
    pub fn new(modules: usize, threads: usize) -> Self {
        ImportSystem {
            modules: (0..modules).map(|_| AtomicU32::new(Entry::Absent.encode())).collect(),
            state: Mutex::new(State {
                locks: vec![ModuleLock::default(); modules],
                blocking_on: vec![None; threads],
                waiters: 0,
            }),
            released: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking simulator thread poisons the mutex; the state itself
        // stays consistent (every update is a single assignment).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn entry(&self, m: ModId) -> Entry {
        Entry::decode(self.modules[m as usize].load(Ordering::SeqCst))
    }

    pub fn set(&self, m: ModId, e: Entry) {
        self.modules[m as usize].store(e.encode(), Ordering::SeqCst);
    }

    /// `_ModuleLock.acquire()`: blocks while another thread owns the lock,
    /// unless waiting would deadlock.
    pub fn acquire(&self, me: ThreadIdx, m: ModId) -> Result<(), Deadlock> {
        let mut st = self.lock();
        loop {
            let lock = &mut st.locks[m as usize];
            if lock.owner().is_none() || lock.owner() == Some(me) {
                lock.owner = me + 1;
                lock.count += 1;
                return Ok(());
            }
            if has_deadlock(&st, me, m) {
                return Err(Deadlock);
            }
            st.blocking_on[me as usize] = Some(m);
            st.waiters += 1;
            st = self.released.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiters -= 1;
            st.blocking_on[me as usize] = None;
        }
    }

    /// `_ModuleLock.release()`.
    pub fn release(&self, me: ThreadIdx, m: ModId) {
        let mut st = self.lock();
        let lock = &mut st.locks[m as usize];
        debug_assert_eq!(lock.owner(), Some(me), "releasing a module lock we do not own");
        lock.count -= 1;
        if lock.count == 0 {
            lock.owner = 0;
            // Read under the mutex: a thread that starts waiting later sees
            // the lock free and does not wait.
            let waiting = st.waiters > 0;
            drop(st);
            if waiting {
                self.released.notify_all();
            }
        }
    }

    /// `_lock_unlock_module()`: waits until the module's lock is free (its
    /// import finished in another thread), or gives up at once on deadlock,
    /// handing back the partially initialised module.
    pub fn lock_unlock(&self, me: ThreadIdx, m: ModId) {
        if self.acquire(me, m).is_ok() {
            self.release(me, m);
        }
    }
}

/// `_ModuleLock.has_deadlock()`: follows owner -> lock it waits for -> owner,
/// and reports a deadlock if the chain comes back to `me`.
fn has_deadlock(st: &State, me: ThreadIdx, m: ModId) -> bool {
    let mut owner = st.locks[m as usize].owner();
    let mut seen = Vec::new();
    while let Some(tid) = owner {
        if tid == me {
            return true;
        }
        if seen.contains(&tid) {
            return false;
        }
        seen.push(tid);
        match st.blocking_on[tid as usize] {
            Some(next) => owner = st.locks[next as usize].owner(),
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn locks_are_reentrant_for_their_owner() {
        let s = ImportSystem::new(1, 1);
        s.acquire(0, 0).unwrap();
        s.acquire(0, 0).unwrap();
        s.release(0, 0);
        s.release(0, 0);
        s.acquire(0, 0).unwrap();
    }

    #[test]
    fn a_second_thread_waits_for_the_owner() {
        let s = Arc::new(ImportSystem::new(1, 2));
        s.acquire(0, 0).unwrap();
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            s2.lock_unlock(1, 0);
            t0.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        s.release(0, 0);
        assert!(t.join().unwrap() >= Duration::from_millis(40));
    }

    #[test]
    fn cross_waiting_is_detected_as_deadlock() {
        let s = Arc::new(ImportSystem::new(2, 2));
        s.acquire(0, 0).unwrap();
        s.acquire(1, 1).unwrap();
        let s2 = s.clone();
        // Thread 1 blocks on module 0 (owned by thread 0)...
        let t = std::thread::spawn(move || s2.acquire(1, 0));
        while s.lock().blocking_on[1].is_none() {
            std::thread::yield_now();
        }
        // ...so thread 0 waiting on module 1 would deadlock.
        assert_eq!(s.acquire(0, 1), Err(Deadlock));
        s.release(0, 0);
        assert_eq!(t.join().unwrap(), Ok(()));
    }
}
