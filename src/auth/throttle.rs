//! Login throttling: failed logins counted per (client address, username).
//!
//! A pair's window opens at its first failure and lasts
//! `login_failure_window`; once `login_max_failures` failures fall in it, the
//! pair's logins are refused (429 with `Retry-After`) before any hashing until
//! the window has passed. A success clears its own pair only. Counts are kept
//! per instance: with N instances a guesser gets at most N times the budget.
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

/// The most pairs tracked at once, about 6 MB.
pub const MAX_PAIRS: usize = 100_000;

/// (address or IPv6 /64, hash of the lowercased username)
type Pair = (IpAddr, u64);

#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    failures: u32,
}

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    pairs: Mutex<HashMap<Pair, Window>>,
    names: RandomState,
    created: Instant,
    full_sweep: Mutex<Option<Instant>>,
    /// Milliseconds added to the clock (tests move time forward with it).
    skew_ms: AtomicU64,
}

impl Throttle {
    /// `max_failures = 0` turns throttling off.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Throttle {
            max_failures,
            window,
            pairs: Mutex::default(),
            names: RandomState::new(),
            created: Instant::now(),
            full_sweep: Mutex::default(),
            skew_ms: AtomicU64::new(0),
        }
    }

    /// `Err(seconds)` when the pair is throttled: the time until its window
    /// has passed, rounded up.
    pub fn check(&self, client: Option<IpAddr>, username: &str) -> Result<(), u64> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let now = self.now();
        let pairs = self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match pairs.get(&self.pair(client, username)) {
            Some(window) if window.failures >= self.max_failures && self.open(window, now) => {
                let left = (window.opened + self.window).saturating_duration_since(now);
                Err(left.as_secs() + u64::from(left.subsec_nanos() > 0))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login of the pair.
    pub fn record_failure(&self, client: Option<IpAddr>, username: &str) {
        if self.max_failures == 0 {
            return;
        }
        let now = self.now();
        let pair = self.pair(client, username);
        let mut pairs = self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&pair) {
            // The timer sweeps too; this is for a map filled faster than that,
            // at most once a second so a full map costs no scan per login.
            if now.saturating_duration_since(self.swept_when_full(None)) >= Duration::from_secs(1) {
                pairs.retain(|_, window| self.open(window, now));
                self.swept_when_full(Some(now));
            }
            if pairs.len() >= MAX_PAIRS {
                log::warn!("login throttle full ({MAX_PAIRS} pairs): a new pair goes uncounted");
                return;
            }
        }
        let window = pairs.entry(pair).or_insert(Window { opened: now, failures: 0 });
        if !self.open(window, now) {
            *window = Window { opened: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// A successful login clears its own pair's count.
    pub fn record_success(&self, client: Option<IpAddr>, username: &str) {
        if self.max_failures > 0 {
            let pair = self.pair(client, username);
            self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&pair);
        }
    }

    /// Drops the pairs whose window has passed; returns how many remain.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        let mut pairs = self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pairs.retain(|_, window| self.open(window, now));
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

    /// When the map was last swept because it was full; sets it if `at`.
    fn swept_when_full(&self, at: Option<Instant>) -> Instant {
        let mut swept = self.full_sweep.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(at) = at {
            *swept = Some(at);
        }
        swept.unwrap_or(self.created)
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.skew_ms.load(Ordering::Relaxed))
    }

    fn open(&self, window: &Window, now: Instant) -> bool {
        now < window.opened + self.window
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

    #[test]
    fn a_pair_is_refused_after_its_budget_until_the_window_passes() {
        let throttle = Throttle::new(2, Duration::from_secs(10));
        let alice = client("192.0.2.1");
        throttle.record_failure(alice, "alice");
        assert_eq!(throttle.check(alice, "alice"), Ok(()));
        throttle.record_failure(alice, "ALICE");
        assert_eq!(throttle.check(alice, "Alice"), Err(10), "names are case-insensitive");
        assert_eq!(throttle.check(client("192.0.2.2"), "alice"), Ok(()), "another address may log in");
        throttle.advance_clock(Duration::from_millis(9_500));
        assert_eq!(throttle.check(alice, "alice"), Err(1));
        throttle.advance_clock(Duration::from_millis(500));
        assert_eq!(throttle.check(alice, "alice"), Ok(()));
        assert_eq!(throttle.sweep(), 0, "the passed window is dropped");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64() {
        let throttle = Throttle::new(1, Duration::from_secs(10));
        throttle.record_failure(client("2001:db8:1:2::1"), "bob");
        assert!(throttle.check(client("2001:db8:1:2:ffff::9"), "bob").is_err());
        assert!(throttle.check(client("2001:db8:1:3::1"), "bob").is_ok());
    }

    #[test]
    fn memory_stays_bounded_whatever_is_sent() {
        let throttle = Throttle::new(5, Duration::from_secs(300));
        let long_name = "x".repeat(1_000);
        for i in 0..(MAX_PAIRS as u32 + 1_000) {
            throttle.record_failure(Some(IpAddr::from(i.to_be_bytes())), &long_name);
        }
        assert_eq!(throttle.sweep(), MAX_PAIRS);
    }
}
