//! Login throttling: failed password checks counted per (client address,
//! username), for logins and password changes alike.
//!
//! A pair's window opens at its first failure and lasts
//! `login_failure_window`; once `login_max_failures` failures fall in it, the
//! pair's attempts are refused (429 with `Retry-After`) before any hashing
//! until the window has passed. A success clears its own pair's failures
//! only. Counts are kept per instance: with N instances a guesser gets at
//! most N times the budget.
//!
//! Attempts still being checked count against the budget, so that 200
//! guesses sent at once cost 5 hashes, not 200. But they have not failed: an
//! attempt that finds the budget taken by attempts in flight waits (at most
//! [`SETTLE_WAIT`], [`WAIT_CAPACITY`] of them at once) until one settles,
//! then asks again. So a 429 means that many attempts have failed, never
//! that a user's own parallel logins were counted as guesses; a wait that
//! runs out is a 503 (busy), not a 429.
//!
//! A refused attempt is answered after the [`Tarpit`]'s second.
//!
//! Why not governor: its keyed limiter (GCRA) counts every request and
//! cannot peek without spending, while this counts failures only and must be
//! asked before the password is checked; a fixed window per pair is a few
//! lines and keeps each entry at a constant size.
//!
//! Memory is bounded whatever clients send: a pair is an address and a keyed
//! 64-bit hash of the lowercased username (never the name itself, whatever its
//! length), an IPv6 client counts by its /64 (one subscriber's block), and a
//! timer drops pairs whose window has passed. At [`MAX_PAIRS`] a new pair is
//! refused as busy (503): the throttle never lets an attempt through
//! uncounted. (Each pair costs its sender a full password hash, so filling
//! the table takes longer than a window at any real hashing rate.)

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rocket::tokio::sync::{Notify, Semaphore};

mod attempt;

pub use attempt::Attempt;

use super::client::client_block;
use super::tarpit::Tarpit;
use crate::logging::warn_repeated;

/// The most pairs tracked at once, about 6 MB.
pub const MAX_PAIRS: usize = 100_000;

/// The longest an attempt waits for attempts in flight to settle.
pub const SETTLE_WAIT: Duration = Duration::from_secs(5);
/// The most attempts waiting for others to settle at once (a few KiB each).
pub const WAIT_CAPACITY: usize = 1_024;

/// (address or IPv6 /64, hash of the lowercased username)
type Pair = (IpAddr, u64);

/// A pair's failures in its window, and its logins being checked right now.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// When the window opened: the first failure (none yet: `None`).
    opened: Option<Instant>,
    failures: u32,
    /// Attempts let through and not yet settled: they count against the
    /// budget, so concurrent guesses cannot all slip in before the first
    /// failure is recorded.
    pending: u32,
}

/// Why an attempt is not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The pair's budget of failures is spent: retry after this many
    /// seconds (429).
    Throttled(u64),
    /// Attempts in flight did not settle in time, or the throttle cannot
    /// count one more (503, busy): never let through uncounted.
    Busy,
}

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    /// [`MAX_PAIRS`]; smaller in unit tests.
    max_pairs: usize,
    pairs: Mutex<HashMap<Pair, Entry>>,
    /// Told whenever an attempt settles, so waiting attempts ask again.
    settled: Notify,
    waiting_places: Semaphore,
    names: RandomState,
    /// When a full map was last swept by a login (not the timer).
    full_sweep: Mutex<Option<Instant>>,
    /// Milliseconds added to the clock (tests move time forward with it).
    skew_ms: AtomicU64,
    /// Where refused attempts wait for their answer.
    pub tarpit: Tarpit,
}

impl Throttle {
    /// `max_failures = 0` turns throttling off.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Throttle {
            max_failures,
            window,
            max_pairs: MAX_PAIRS,
            pairs: Mutex::default(),
            settled: Notify::new(),
            waiting_places: Semaphore::new(WAIT_CAPACITY),
            names: RandomState::new(),
            full_sweep: Mutex::default(),
            skew_ms: AtomicU64::new(0),
            tarpit: Tarpit::default(),
        }
    }

    /// One look at the pair: let through, refuse, or `None` (wait: attempts
    /// in flight fill the budget).
    fn try_attempt(&self, pair: Pair) -> Option<Result<Attempt<'_>, Refused>> {
        let now = self.now();
        let mut pairs = self.lock();
        if pairs.len() >= self.max_pairs && !pairs.contains_key(&pair) {
            // The timer sweeps too; this is for a map filled faster than that,
            // at most once a second so a full map costs no scan per login.
            let mut swept = self.full_sweep.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if swept.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1)) {
                pairs.retain(|_, entry| self.live(entry, now));
                *swept = Some(now);
            }
            if pairs.len() >= self.max_pairs {
                warn_repeated!(
                    "login throttle full ({} pairs): a new pair is refused as busy",
                    self.max_pairs
                );
                return Some(Err(Refused::Busy));
            }
        }
        let entry = pairs.entry(pair).or_default();
        let failures = if self.open(entry, now) { entry.failures } else { 0 };
        if failures >= self.max_failures {
            let opened = entry.opened.unwrap_or(now);
            let left = (opened + self.window).saturating_duration_since(now);
            return Some(Err(Refused::Throttled(left.as_secs() + u64::from(left.subsec_nanos() > 0))));
        }
        if failures.saturating_add(entry.pending) >= self.max_failures {
            return None;
        }
        entry.pending += 1;
        Some(Ok(Attempt { throttle: self, pair: Some(pair) }))
    }

    /// An attempt of `pair` settles: `change` its entry, drop it if it no
    /// longer means anything, and let waiting attempts ask again.
    fn settle(&self, pair: Pair, change: impl FnOnce(&mut Entry)) {
        let now = self.now();
        {
            let mut pairs = self.lock();
            if let Some(entry) = pairs.get_mut(&pair) {
                entry.pending = entry.pending.saturating_sub(1);
                change(entry);
                if !self.live(entry, now) {
                    pairs.remove(&pair);
                }
            }
        }
        self.settled.notify_waiters();
    }

    /// Drops the pairs whose window has passed; returns how many remain.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        let mut pairs = self.lock();
        pairs.retain(|_, entry| self.live(entry, now));
        pairs.len()
    }

    /// How often the timer should sweep.
    pub fn sweep_period(&self) -> Duration {
        self.window.clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Test hook: moves this throttle's clock forward.
    #[cfg(feature = "test-hooks")]
    pub fn advance_clock(&self, by: Duration) {
        self.skew_ms.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.skew_ms.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Pair, Entry>> {
        self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the entry's window is open at `now`.
    fn open(&self, entry: &Entry, now: Instant) -> bool {
        entry.opened.is_some_and(|opened| now < opened + self.window)
    }

    /// Whether the entry still means anything at `now`.
    fn live(&self, entry: &Entry, now: Instant) -> bool {
        entry.pending > 0 || self.open(entry, now)
    }

    fn pair(&self, client: Option<IpAddr>, username: &str) -> Pair {
        let address = client_block(client);
        let mut name = self.names.build_hasher();
        for chunk in username.as_bytes().chunks(64) {
            let mut lower = [0u8; 64];
            lower[..chunk.len()].copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            name.write(&lower[..chunk.len()]);
        }
        (address, name.finish())
    }
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
