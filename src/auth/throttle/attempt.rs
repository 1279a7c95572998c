//! One password check let through the throttle ([`Attempt`]), how it
//! settles, and how an attempt waits for its pair's checks in flight.

use std::net::IpAddr;

use super::{Entry, Refused, Throttle, SETTLE_WAIT};
use crate::error::ApiError;

/// A login attempt let through: settle it with [`failed`](Self::failed) or
/// [`succeeded`](Self::succeeded); dropped unsettled (the request failed for
/// another reason), it simply stops counting.
pub struct Attempt<'a> {
    pub(super) throttle: &'a Throttle,
    pub(super) pair: Option<super::Pair>,
}

impl Attempt<'_> {
    /// Counts a failed password check of the pair.
    pub fn failed(mut self) {
        let Some(pair) = self.pair.take() else { return };
        let now = self.throttle.now();
        {
            let mut pairs = self.throttle.lock();
            let entry = pairs.entry(pair).or_default();
            entry.pending = entry.pending.saturating_sub(1);
            if !self.throttle.open(entry, now) {
                *entry = Entry { opened: Some(now), failures: 0, pending: entry.pending };
            }
            entry.failures = entry.failures.saturating_add(1);
        }
        self.throttle.settled.notify_waiters();
    }

    /// A successful check clears its own pair's failures (attempts of the
    /// pair still in flight keep counting).
    pub fn succeeded(mut self) {
        let Some(pair) = self.pair.take() else { return };
        self.throttle.settle(pair, |entry| {
            entry.opened = None;
            entry.failures = 0;
        });
    }
}

impl Drop for Attempt<'_> {
    /// Unsettled (the request failed for another reason): it stops counting.
    fn drop(&mut self) {
        if let Some(pair) = self.pair.take() {
            self.throttle.settle(pair, |_| {});
        }
    }
}

impl Throttle {
    /// Lets a password check of the pair through, waiting (bounded) while
    /// the budget is taken by checks still in flight; refused when the
    /// budget is spent by failures ([`Refused::Throttled`], with the seconds
    /// until its window has passed, rounded up) or when it cannot be
    /// counted ([`Refused::Busy`]).
    pub async fn attempt(&self, client: Option<IpAddr>, username: &str) -> Result<Attempt<'_>, Refused> {
        if self.max_failures == 0 {
            return Ok(Attempt { throttle: self, pair: None });
        }
        let pair = self.pair(client, username);
        let deadline = rocket::tokio::time::Instant::now() + SETTLE_WAIT;
        let mut place = None;
        loop {
            let settled = self.settled.notified();
            let mut settled = std::pin::pin!(settled);
            // Registered before the state is read: a settle after the read
            // wakes this attempt.
            settled.as_mut().enable();
            match self.try_attempt(pair) {
                Some(decided) => return decided,
                None if place.is_none() => {
                    place = Some(self.waiting_places.try_acquire().map_err(|_| Refused::Busy)?);
                }
                None => {}
            }
            if rocket::tokio::time::timeout_at(deadline, settled).await.is_err() {
                return Err(Refused::Busy);
            }
        }
    }

    /// [`attempt`](Self::attempt), refused the way the API answers: a
    /// throttled pair with 429 after the [`Tarpit`], a busy throttle with
    /// 503 at once.
    pub async fn admit(&self, client: Option<IpAddr>, username: &str) -> Result<Attempt<'_>, ApiError> {
        match self.attempt(client, username).await {
            Ok(attempt) => Ok(attempt),
            Err(Refused::Throttled(retry_after)) => {
                self.tarpit.hold().await;
                Err(ApiError::TooManyRequests(retry_after))
            }
            Err(Refused::Busy) => Err(ApiError::Busy),
        }
    }
}
