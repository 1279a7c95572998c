//! Login throttling: failed logins counted per (client address, username).
//!
//! A pair's window opens at its first failure and lasts
//! `login_failure_window`; once `login_max_failures` failures fall in it, the
//! pair's logins are refused (429 with `Retry-After`) before any hashing until
//! the window has passed. A success clears its own pair only. Counts are kept
//! per instance: with N instances a guesser gets at most N times the budget.
//!
//! A refused login is answered after [`TARPIT`] (1 s), at most
//! [`TARPIT_CAPACITY`] of them held at once (beyond that, at once): a
//! connection that keeps guessing gets one answer a second instead of tens of
//! thousands, which would otherwise take the CPU from everyone else (measured:
//! 33k 429s a second on 2 cores raised `/protected`'s p99 5.7-fold). Holding
//! one costs a timer and the request, a few KiB.
//!
//! Why not governor: its keyed limiter (GCRA) counts every request and
//! cannot peek without spending, while this counts failures only and must be
//! asked before the password is checked; a fixed window per pair is a few
//! lines and keeps each entry at a constant size.
//!
//! Memory is bounded whatever clients send: a pair is an address and a keyed
//! 64-bit hash of the lowercased username (never the name itself, whatever its
//! length), an IPv6 client counts by its /64 (one subscriber's block), a timer
//! drops pairs whose window has passed, and at [`MAX_PAIRS`] new pairs are not
//! tracked (each one costs the sender a full password hash, so filling it
//! takes longer than a window at any real hashing rate).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::logging::warn_repeated;

/// The most pairs tracked at once, about 6 MB.
pub const MAX_PAIRS: usize = 100_000;

/// How long a refused login waits for its 429.
pub const TARPIT: Duration = Duration::from_secs(1);
/// The most refused logins waiting at once.
pub const TARPIT_CAPACITY: usize = 1_024;

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

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    pairs: Mutex<HashMap<Pair, Entry>>,
    names: RandomState,
    /// When a full map was last swept by a login (not the timer).
    full_sweep: Mutex<Option<Instant>>,
    /// Milliseconds added to the clock (tests move time forward with it).
    skew_ms: AtomicU64,
    /// The tarpit's length in milliseconds ([`TARPIT`]; tests may shorten it).
    tarpit_ms: AtomicU64,
    tarpit_places: rocket::tokio::sync::Semaphore,
}

/// A login attempt let through: settle it with [`failed`](Self::failed) or
/// [`succeeded`](Self::succeeded); dropped unsettled (the request failed for
/// another reason), it simply stops counting.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    pair: Option<Pair>,
}

impl Attempt<'_> {
    /// Counts a failed login of the pair.
    pub fn failed(mut self) {
        let Some(pair) = self.pair.take() else { return };
        let now = self.throttle.now();
        let mut pairs = self.throttle.lock();
        let entry = pairs.entry(pair).or_default();
        entry.pending = entry.pending.saturating_sub(1);
        if !self.throttle.open(entry, now) {
            *entry = Entry { opened: Some(now), failures: 0, pending: entry.pending };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// A successful login clears its own pair's count.
    pub fn succeeded(mut self) {
        if let Some(pair) = self.pair.take() {
            self.throttle.lock().remove(&pair);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let Some(pair) = self.pair.take() else { return };
        let now = self.throttle.now();
        let mut pairs = self.throttle.lock();
        if let Some(entry) = pairs.get_mut(&pair) {
            entry.pending = entry.pending.saturating_sub(1);
            if !self.throttle.live(entry, now) {
                pairs.remove(&pair);
            }
        }
    }
}

impl Throttle {
    /// `max_failures = 0` turns throttling off.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Throttle {
            max_failures,
            window,
            pairs: Mutex::default(),
            names: RandomState::new(),
            full_sweep: Mutex::default(),
            skew_ms: AtomicU64::new(0),
            tarpit_ms: AtomicU64::new(TARPIT.as_millis() as u64),
            tarpit_places: rocket::tokio::sync::Semaphore::new(TARPIT_CAPACITY),
        }
    }

    /// Holds a refused login for [`TARPIT`] before it is answered, unless
    /// [`TARPIT_CAPACITY`] are held already.
    pub async fn tarpit(&self) {
        if let Ok(_place) = self.tarpit_places.try_acquire() {
            let length = Duration::from_millis(self.tarpit_ms.load(Ordering::Relaxed));
            rocket::tokio::time::sleep(length).await;
        }
    }

    /// Test hook: sets the tarpit's length.
    #[doc(hidden)]
    pub fn set_tarpit(&self, length: Duration) {
        self.tarpit_ms.store(length.as_millis() as u64, Ordering::Relaxed);
    }

    /// Lets a login of the pair through, or `Err(seconds)` when its budget
    /// is spent: the time until its window has passed, rounded up (1 when
    /// only attempts still being checked fill the budget).
    pub fn attempt(&self, client: Option<IpAddr>, username: &str) -> Result<Attempt<'_>, u64> {
        let untracked = Attempt { throttle: self, pair: None };
        if self.max_failures == 0 {
            return Ok(untracked);
        }
        let now = self.now();
        let pair = self.pair(client, username);
        let mut pairs = self.lock();
        if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&pair) {
            // The timer sweeps too; this is for a map filled faster than that,
            // at most once a second so a full map costs no scan per login.
            let mut swept = self.full_sweep.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if swept.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1)) {
                pairs.retain(|_, entry| self.live(entry, now));
                *swept = Some(now);
            }
            if pairs.len() >= MAX_PAIRS {
                warn_repeated!("login throttle full ({MAX_PAIRS} pairs): a new pair goes uncounted");
                return Ok(untracked);
            }
        }
        let entry = pairs.entry(pair).or_default();
        let failures = if self.open(entry, now) { entry.failures } else { 0 };
        if failures.saturating_add(entry.pending) >= self.max_failures {
            if failures < self.max_failures {
                return Err(1);
            }
            let opened = entry.opened.unwrap_or(now);
            let left = (opened + self.window).saturating_duration_since(now);
            return Err(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        }
        entry.pending += 1;
        Ok(Attempt { throttle: self, pair: Some(pair) })
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
    #[doc(hidden)]
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
        let address = match client.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
            Some(v4) => v4,
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
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
mod tests {
    use super::*;

    fn client(address: &str) -> Option<IpAddr> {
        Some(address.parse().unwrap())
    }

    fn fail(throttle: &Throttle, client: Option<IpAddr>, name: &str) {
        throttle.attempt(client, name).expect("let through").failed();
    }

    #[test]
    fn a_pair_is_refused_after_its_budget_until_the_window_passes() {
        let throttle = Throttle::new(2, Duration::from_secs(10));
        let alice = client("192.0.2.1");
        fail(&throttle, alice, "alice");
        fail(&throttle, alice, "ALICE");
        assert_eq!(throttle.attempt(alice, "Alice").err(), Some(10), "names are case-insensitive");
        assert!(throttle.attempt(client("192.0.2.2"), "alice").is_ok(), "another address may log in");
        throttle.advance_clock(Duration::from_millis(9_500));
        assert_eq!(throttle.attempt(alice, "alice").err(), Some(1));
        throttle.advance_clock(Duration::from_millis(500));
        assert!(throttle.attempt(alice, "alice").is_ok());
        assert_eq!(throttle.sweep(), 0, "the passed window is dropped");
    }

    #[test]
    fn concurrent_attempts_cannot_exceed_the_budget() {
        let throttle = Throttle::new(3, Duration::from_secs(10));
        let bob = client("192.0.2.3");
        let in_flight: Vec<_> =
            (0..3).map(|_| throttle.attempt(bob, "bob").expect("within budget")).collect();
        assert_eq!(throttle.attempt(bob, "bob").err(), Some(1), "three are being checked");
        drop(in_flight);
        assert!(throttle.attempt(bob, "bob").is_ok(), "unsettled attempts stop counting");
        let winner = throttle.attempt(bob, "bob").unwrap();
        fail(&throttle, bob, "bob");
        winner.succeeded();
        assert_eq!(throttle.sweep(), 0, "a success clears the pair");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64() {
        let throttle = Throttle::new(1, Duration::from_secs(10));
        fail(&throttle, client("2001:db8:1:2::1"), "bob");
        assert!(throttle.attempt(client("2001:db8:1:2:ffff::9"), "bob").is_err());
        assert!(throttle.attempt(client("2001:db8:1:3::1"), "bob").is_ok());
    }

    #[test]
    fn memory_stays_bounded_whatever_is_sent() {
        let throttle = Throttle::new(5, Duration::from_secs(300));
        let long_name = "x".repeat(1_000);
        for i in 0..(MAX_PAIRS as u32 + 1_000) {
            if let Ok(attempt) = throttle.attempt(Some(IpAddr::from(i.to_be_bytes())), &long_name) {
                attempt.failed();
            }
        }
        assert_eq!(throttle.sweep(), MAX_PAIRS);
    }
}
