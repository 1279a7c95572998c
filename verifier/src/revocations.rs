//! The revocation set: every revoked `jti` and `sid` an access token may
//! still present, and the revoked keys, as the feed reported them, with
//! the instant the service last confirmed them current.
//!
//! It fails closed. A check is answered only while the set is loaded, within
//! its capacity, and confirmed (by a heartbeat, or the snapshot) no longer
//! than `max_staleness` ago; otherwise every token is refused with
//! [`VerifyError::NotCurrent`]. A confirmation counts from when the service
//! vouched for it (`as_of`), not from when it arrived, if that is earlier
//! by this machine's clock: a feed that lags behind is stale, however
//! regularly its heartbeats arrive. Every method takes the time, so the
//! rules are tested with a clock, not with sleeps.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::VerifyError;

#[derive(Default)]
struct State {
    /// id → unix millisecond until which a token may present it.
    entries: HashMap<Uuid, i64>,
    revoked_keys: HashSet<String>,
    /// When the service last vouched for the set (local clock).
    confirmed: Option<Instant>,
    loaded: bool,
    overflowed: bool,
    snapshots: u64,
}

/// How current the set is, for `/health` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Whether tokens are being checked (the set is current).
    pub current: bool,
    pub entries: usize,
    /// Since the last confirmation (`None`: never confirmed).
    pub staleness: Option<Duration>,
    pub over_capacity: bool,
    /// Snapshots taken so far (1 after start; one more per `reset`, refused
    /// cursor, or reload over capacity).
    pub snapshots: u64,
}

pub(crate) struct Revocations {
    capacity: usize,
    max_staleness: Duration,
    state: RwLock<State>,
    /// Counts the changes applied (events and snapshots).
    changes: tokio::sync::watch::Sender<u64>,
}

/// When a confirmation made at wall time `as_of_ms`, received at `now` (wall
/// time `now_ms`), counts from: its arrival, or earlier by however much
/// older than the local clock `as_of` is.
fn confirmed_at(now: Instant, now_ms: i64, as_of_ms: i64) -> Instant {
    let lag = Duration::from_millis(now_ms.saturating_sub(as_of_ms).max(0) as u64);
    now.checked_sub(lag).unwrap_or(now)
}

impl Revocations {
    pub fn new(capacity: usize, max_staleness: Duration) -> Self {
        Revocations {
            capacity,
            max_staleness,
            state: RwLock::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// A counter that moves with every change applied to the set.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|count| *count += 1);
    }

    /// Replaces the set with a snapshot's, confirmed as of `as_of_ms`.
    pub fn load(
        &self,
        entries: HashMap<Uuid, i64>,
        revoked_keys: HashSet<String>,
        as_of_ms: i64,
        now: Instant,
        now_ms: i64,
    ) {
        let Ok(mut state) = self.state.write() else { return };
        state.overflowed = entries.len() > self.capacity;
        state.entries = entries;
        state.revoked_keys = revoked_keys;
        state.loaded = true;
        state.snapshots += 1;
        state.confirmed = Some(confirmed_at(now, now_ms, as_of_ms));
        drop(state);
        self.changed();
    }

    /// A `revoked` event.
    pub fn revoke(&self, id: Uuid, until_ms: i64) {
        let Ok(mut state) = self.state.write() else { return };
        if !state.entries.contains_key(&id) && state.entries.len() >= self.capacity {
            state.overflowed = true;
            return;
        }
        state.entries.insert(id, until_ms);
        drop(state);
        self.changed();
    }

    /// An `unrevoked` event.
    pub fn unrevoke(&self, id: Uuid) {
        if let Ok(mut state) = self.state.write() {
            state.entries.remove(&id);
        }
        self.changed();
    }

    /// A `key_revoked` event.
    pub fn revoke_key(&self, kid: String) {
        if let Ok(mut state) = self.state.write() {
            state.revoked_keys.insert(kid);
        }
        self.changed();
    }

    /// A heartbeat: current as of `as_of_ms`.
    pub fn confirm(&self, as_of_ms: i64, now: Instant, now_ms: i64) {
        if let Ok(mut state) = self.state.write() {
            let at = confirmed_at(now, now_ms, as_of_ms);
            state.confirmed = Some(state.confirmed.map_or(at, |before| before.max(at)));
        }
    }

    /// A `reset`: nothing is vouched for until the next snapshot.
    pub fn unload(&self) {
        if let Ok(mut state) = self.state.write() {
            state.loaded = false;
        }
    }

    /// Drops entries no token can present at `now_ms` any more (their
    /// `until` plus `leeway_ms` passed). Returns how many.
    pub fn evict(&self, now_ms: i64, leeway_ms: i64) -> usize {
        let Ok(mut state) = self.state.write() else { return 0 };
        let before = state.entries.len();
        state.entries.retain(|_, until| until.saturating_add(leeway_ms) >= now_ms);
        before - state.entries.len()
    }

    /// Whether a token (`jti`, `sid`, signed by `kid`) is refused at `now`.
    pub fn check(&self, jti: Uuid, sid: Uuid, kid: &str, now: Instant) -> Result<(), VerifyError> {
        let state = self.state.read().map_err(|_| VerifyError::NotCurrent)?;
        let fresh = state.confirmed.is_some_and(|at| now.saturating_duration_since(at) <= self.max_staleness);
        if !state.loaded || state.overflowed || !fresh {
            return Err(VerifyError::NotCurrent);
        }
        if state.revoked_keys.contains(kid) {
            return Err(VerifyError::invalid("Token key no longer accepts this token"));
        }
        if state.entries.contains_key(&jti) || state.entries.contains_key(&sid) {
            return Err(VerifyError::TokenRevoked);
        }
        Ok(())
    }

    pub fn status(&self, now: Instant) -> Status {
        let Ok(state) = self.state.read() else {
            return Status {
                current: false,
                entries: 0,
                staleness: None,
                over_capacity: false,
                snapshots: 0,
            };
        };
        let staleness = state.confirmed.map(|at| now.saturating_duration_since(at));
        Status {
            current: state.loaded && !state.overflowed && staleness.is_some_and(|s| s <= self.max_staleness),
            entries: state.entries.len(),
            staleness,
            over_capacity: state.overflowed,
            snapshots: state.snapshots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn loaded(now: Instant, now_ms: i64) -> (Revocations, Uuid) {
        let set = Revocations::new(10, SECOND);
        let revoked = Uuid::new_v4();
        set.load(
            HashMap::from([(revoked, now_ms + 60_000)]),
            HashSet::from(["old".into()]),
            now_ms,
            now,
            now_ms,
        );
        (set, revoked)
    }

    #[test]
    fn nothing_is_answered_before_the_snapshot() {
        let set = Revocations::new(10, SECOND);
        let now = Instant::now();
        set.confirm(1_000, now, 1_000);
        assert_eq!(set.check(Uuid::new_v4(), Uuid::new_v4(), "k", now), Err(VerifyError::NotCurrent));
    }

    #[test]
    fn a_set_unconfirmed_for_longer_than_max_staleness_refuses_everything() {
        let (start, start_ms) = (Instant::now(), 1_700_000_000_000);
        let (set, revoked) = loaded(start, start_ms);
        let fine = Uuid::new_v4();

        assert_eq!(set.check(fine, fine, "k", start + SECOND), Ok(()));
        assert_eq!(set.check(revoked, fine, "k", start + SECOND), Err(VerifyError::TokenRevoked));
        assert_eq!(set.check(fine, revoked, "k", start), Err(VerifyError::TokenRevoked), "by sid");
        assert!(
            matches!(set.check(fine, fine, "old", start), Err(VerifyError::InvalidToken(_))),
            "revoked key"
        );
        let late = start + SECOND + Duration::from_millis(1);
        assert_eq!(set.check(fine, fine, "k", late), Err(VerifyError::NotCurrent), "fails closed");

        set.confirm(start_ms + 900, start + Duration::from_millis(900), start_ms + 900);

        assert_eq!(set.check(fine, fine, "k", late), Ok(()), "recovers with the next heartbeat");
    }

    #[test]
    fn a_heartbeat_counts_from_when_the_service_vouched_not_when_it_arrived() {
        let (start, start_ms) = (Instant::now(), 1_700_000_000_000);
        let (set, _) = loaded(start, start_ms);
        let arrival = start + Duration::from_millis(500);
        // Vouched for 800 ms before it arrived (a lagging feed).
        set.confirm(start_ms - 300, arrival, start_ms + 500);
        let fine = Uuid::new_v4();
        assert_eq!(set.check(fine, fine, "k", start + Duration::from_millis(1_000)), Ok(()));
        assert_eq!(
            set.check(fine, fine, "k", start + Duration::from_millis(1_001)),
            Err(VerifyError::NotCurrent)
        );
        // A service clock ahead of ours never makes a confirmation younger
        // than its arrival.
        set.confirm(start_ms + 10_000, arrival, start_ms + 500);
        assert_eq!(
            set.check(fine, fine, "k", arrival + SECOND + Duration::from_millis(1)),
            Err(VerifyError::NotCurrent)
        );
    }

    #[test]
    fn events_change_the_set_and_a_reset_unloads_it() {
        let (start, start_ms) = (Instant::now(), 1_700_000_000_000);
        let (set, revoked) = loaded(start, start_ms);
        let (fresh, other) = (Uuid::new_v4(), Uuid::new_v4());

        set.revoke(fresh, start_ms + 1_000);
        set.unrevoke(revoked);
        set.revoke_key("new".into());

        assert_eq!(set.check(fresh, other, "k", start), Err(VerifyError::TokenRevoked));
        assert_eq!(set.check(revoked, other, "k", start), Ok(()));
        assert!(set.check(other, other, "new", start).is_err());
        assert_eq!(set.evict(start_ms + 1_001, 0), 1, "past its until");
        assert_eq!(set.check(fresh, other, "k", start), Ok(()));
        set.unload();
        assert_eq!(set.check(other, other, "k", start), Err(VerifyError::NotCurrent));
    }

    #[test]
    fn past_its_capacity_the_set_refuses_everything() {
        let (start, start_ms) = (Instant::now(), 1_700_000_000_000);
        let (set, _) = loaded(start, start_ms);
        for _ in 0..9 {
            set.revoke(Uuid::new_v4(), start_ms + 60_000);
        }
        let fine = Uuid::new_v4();
        assert_eq!(set.check(fine, fine, "k", start), Ok(()), "ten entries: full, not over");

        set.revoke(Uuid::new_v4(), start_ms + 60_000);

        assert_eq!(set.check(fine, fine, "k", start), Err(VerifyError::NotCurrent));
        assert!(set.status(start).over_capacity);
    }
}
