//! The threads that run argon2: fewer than the cores, each with its own
//! argon2 workspace (19 MiB, allocated on its first hash and kept), and at a
//! lower CPU priority (nice 10) than the threads that serve requests. A
//! login storm keeps them busy; at nice 10 they get what the request
//! threads leave, so `/protected`, logout and refresh keep the cores, while
//! on an idle machine a hash still runs at full speed.
//!
//! Measured before this (`bench/run.sh 15 storm`, `perf record` on the
//! service): the one hashing thread on the blocking pool took 29 % of all
//! the service's samples during an unthrottled storm, a whole core of two.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::Block;
use rocket::tokio::sync::oneshot;

/// The nice value of the hashing threads (0 is the default, 19 the lowest).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads; they end when this is dropped (with the app).
pub struct Hashers {
    jobs: Sender<Job>,
    /// How many there are (the test hook holds them all).
    #[cfg(feature = "test-hooks")]
    threads: usize,
    /// Jobs sent and not yet started.
    queued: Arc<AtomicUsize>,
}

/// Every hashing thread held busy until this is dropped (a test hook: see
/// `Hashers::hold`).
#[cfg(feature = "test-hooks")]
pub struct Held {
    _release: Sender<()>,
}

impl Hashers {
    /// Starts `threads` hashing threads whose workspaces hold `blocks`
    /// argon2 blocks.
    pub fn start(threads: usize, blocks: usize) -> std::io::Result<Hashers> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || work(&queue, blocks))?;
        }
        Ok(Hashers {
            jobs,
            #[cfg(feature = "test-hooks")]
            threads,
            queued: Arc::default(),
        })
    }

    /// Runs `job` on a hashing thread with its workspace; `None` if the job
    /// panicked or the threads are gone.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, answered) = oneshot::channel();
        let queued = self.queued.clone();
        let job: Job = Box::new(move |memory| {
            queued.fetch_sub(1, Ordering::AcqRel);
            let _ = answer.send(job(memory));
        });
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.jobs.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        answered.await.ok()
    }

    /// Jobs waiting for a hashing thread right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Test hook: occupies every hashing thread until the returned [`Held`]
    /// is dropped, so that hashes queue behind it (a login "still hashing").
    /// Returns once every thread is held.
    #[cfg(feature = "test-hooks")]
    pub async fn hold(&self) -> Held {
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let (started, mut all_started) = rocket::tokio::sync::mpsc::unbounded_channel();
        for _ in 0..self.threads {
            let (released, started) = (released.clone(), started.clone());
            let job: Job = Box::new(move |_| {
                let _ = started.send(());
                // Until the sender is dropped; the threads held after the
                // first wait for the lock instead, just as held.
                let _ = released.lock().unwrap_or_else(PoisonError::into_inner).recv();
            });
            let _ = self.jobs.send(job);
        }
        for _ in 0..self.threads {
            all_started.recv().await;
        }
        Held { _release: release }
    }
}

/// A hashing thread: lowers its own priority, then runs jobs until every
/// sender is gone.
fn work(queue: &Mutex<Receiver<Job>>, blocks: usize) {
    lower_priority();
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        if memory.len() < blocks {
            memory = vec![Block::default(); blocks];
        }
        if catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            log::error!("a password hashing job panicked");
        }
    }
}

/// Sets this thread's nice value to [`NICE`] (Linux: per thread), or leaves
/// it if it is already lower in priority. Hashing still works if the system
/// refuses; it just competes with requests on equal terms.
fn lower_priority() {
    use rustix::process::{getpriority_process, setpriority_process};
    let thread = Some(rustix::thread::gettid());
    let current = getpriority_process(thread).unwrap_or(0);
    if current < NICE {
        if let Err(error) = setpriority_process(thread, NICE) {
            log::warn!("password hashing threads keep their priority: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_threads_run_at_nice_10_with_a_workspace_of_their_own() {
        let hashers = Hashers::start(1, 8).unwrap();
        let runtime = rocket::tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (nice, blocks) = runtime
            .block_on(hashers.run(|memory| {
                let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
                (nice, memory.len())
            }))
            .unwrap();
        assert!(nice >= NICE, "nice {nice}: at least {NICE} (more if the process already was)");
        assert_eq!(blocks, 8);
        let panicked = runtime.block_on(hashers.run(|_| -> u8 { panic!("a job that panics") }));
        assert_eq!(panicked, None);
        let after = runtime.block_on(hashers.run(|memory| memory.len()));
        assert_eq!(after, Some(8), "the thread survives a panicking job");
    }
}
