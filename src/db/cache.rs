//! The in-process copy of the blocklist: the revoked `jti`s and `sid`s the
//! access check can still be asked about, each with the instant (unix
//! milliseconds) its token expires.
//!
//! It answers only while it is *trusted* and *fresh*: loaded from the
//! database, and confirmed current by the follower no longer than
//! [`MAX_STALENESS`] ago. The check itself compares the confirmation with the
//! clock, so a follower that stalls silently (no error, no closed socket)
//! stops the cache from answering within that bound, with nobody having to
//! notice: [`check`] returns `None` and the caller asks the database.
//!
//! What goes in comes from the table only: the follower's load and its reads
//! of changed rows ([`set`]), and this instance's own commits ([`insert`]).
//! Entries leave memory when their token can no longer be accepted (expiry
//! plus leeway, the purge's rule), filed in per-second buckets so eviction
//! never scans the whole set. Past `capacity` entries the cache stops taking
//! more and stops answering until a reload fits again (memory stays bounded
//! whatever clients do).
//!
//! [`check`]: RevocationCache::check
//! [`set`]: RevocationCache::set
//! [`insert`]: RevocationCache::insert

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// The longest a memory answer may lag the database. The contract promises
/// that a revocation made anywhere is in force everywhere within 1 s; the
/// margin covers the time between a confirmation and the answer it allows.
pub const MAX_STALENESS: Duration = Duration::from_millis(900);

/// Entries changed per write-lock hold during bulk work, so readers never
/// wait long behind a load or an eviction.
const CHUNK: usize = 10_000;

pub struct RevocationCache {
    trusted: AtomicBool,
    overflowed: AtomicBool,
    /// Milliseconds after `epoch` of the last confirmation.
    confirmed: AtomicU64,
    epoch: Instant,
    loads: AtomicU64,
    /// Confirmations so far: one per poll of the follower.
    polls: AtomicU64,
    /// `revocation_cache_capacity`: the most entries held.
    capacity: usize,
    /// Test hook: while set, the follower neither polls nor confirms.
    paused: AtomicBool,
    inner: RwLock<Inner>,
}

impl RevocationCache {
    /// An empty, untrusted cache that holds at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        RevocationCache {
            trusted: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            // Never confirmed: the epoch lies an hour back, so 0 is stale.
            confirmed: AtomicU64::new(0),
            epoch: Instant::now().checked_sub(Duration::from_secs(3600)).unwrap_or_else(Instant::now),
            loads: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            capacity,
            paused: AtomicBool::new(false),
            inner: RwLock::default(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// id → unix millisecond at which its token expires.
    until: HashMap<Uuid, i64>,
    /// unix second → ids that may expire in it.
    buckets: BTreeMap<i64, Vec<Uuid>>,
}

impl Inner {
    /// Files `id` until `until`; `extend_only` keeps a later expiry already held.
    fn put(&mut self, id: Uuid, until: i64, extend_only: bool) {
        let current = self.until.entry(id).or_insert(i64::MIN);
        if until > *current || (!extend_only && until != *current) {
            *current = until;
            self.buckets.entry(until.div_euclid(1000)).or_default().push(id);
        }
    }
}

/// What the cache holds, for `/health`, logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStatus {
    /// Whether the access check is answered from memory right now.
    pub trusted: bool,
    /// Milliseconds since the follower last confirmed memory current.
    pub staleness_ms: u64,
    pub entries: usize,
    /// Completed loads from the database (1 after start-up, +1 per reload).
    pub loads: u64,
    /// The follower's polls so far (each one confirms memory current).
    pub polls: u64,
    /// More live revocations than `capacity`: answered from the database.
    pub overflowed: bool,
}

impl RevocationCache {
    /// `Some(revoked)` when memory may answer, `None` to ask the database.
    pub fn check(&self, jti: Uuid, sid: Uuid) -> Option<bool> {
        if !self.answering() {
            return None;
        }
        let revoked = {
            let inner = self.inner.read().ok()?;
            inner.until.contains_key(&jti) || inner.until.contains_key(&sid)
        };
        // A distrust or overflow that raced with the lookup wins: ask the
        // database. (The clock was read once, before the lookup.)
        self.flags_allow().then_some(revoked)
    }

    fn answering(&self) -> bool {
        self.flags_allow() && self.staleness() <= MAX_STALENESS
    }

    fn flags_allow(&self) -> bool {
        self.trusted.load(Ordering::Acquire) && !self.overflowed.load(Ordering::Acquire)
    }

    /// How long since the follower last confirmed memory current.
    pub fn staleness(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.confirmed.load(Ordering::Acquire)))
    }

    /// This instance's own revocation, at commit: extends, never shortens.
    pub fn insert(&self, id: Uuid, until_ms: i64) {
        if let Ok(mut inner) = self.write() {
            if self.has_room(&inner, &id) {
                inner.put(id, until_ms, true);
            }
        }
    }

    /// The rows' states as the database holds them, in order: `Some(until)`
    /// while listed, `None` once deleted (or no longer wanted in memory). A
    /// chunk per lock hold (a bulk revocation of a million rows takes the
    /// lock a hundred times, not a million).
    pub fn set_many(&self, changes: impl IntoIterator<Item = (Uuid, Option<i64>)>) {
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let Ok(mut inner) = self.write() else { return };
            for (id, until_ms) in changes.by_ref().take(CHUNK) {
                match until_ms {
                    Some(until) if self.has_room(&inner, &id) => inner.put(id, until, false),
                    Some(_) => {}
                    None => {
                        inner.until.remove(&id);
                    }
                }
            }
        }
    }

    /// Loads many rows, a chunk per lock hold.
    pub fn load(&self, entries: impl IntoIterator<Item = (Uuid, i64)>) {
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let Ok(mut inner) = self.write() else { return };
            for (id, until) in entries.by_ref().take(CHUNK) {
                if self.has_room(&inner, &id) {
                    inner.put(id, until, false);
                }
            }
        }
    }

    fn has_room(&self, inner: &Inner, id: &Uuid) -> bool {
        let room = inner.until.len() < self.capacity || inner.until.contains_key(id);
        if !room && !self.overflowed.swap(true, Ordering::AcqRel) {
            log::warn!(
                "revocation cache is full ({} entries, revocation_cache_capacity): checking the database",
                inner.until.len()
            );
        }
        room
    }

    /// Drops entries whose tokens expired before `cutoff_ms` (expiry plus
    /// leeway in the past: the purge's rule). Returns how many left memory.
    pub fn evict_expired(&self, cutoff_ms: i64) -> usize {
        let mut evicted = 0;
        loop {
            let Ok(mut inner) = self.write() else { return evicted };
            let Some((&second, _)) = inner.buckets.first_key_value() else { return evicted };
            if second.saturating_mul(1000) >= cutoff_ms {
                return evicted;
            }
            let ids = inner.buckets.remove(&second).unwrap_or_default();
            // The cutoff may fall inside this second: its later entries stay filed here.
            let mut stays = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                for id in chunk {
                    match inner.until.get(id) {
                        Some(&until) if until < cutoff_ms => {
                            inner.until.remove(id);
                            evicted += 1;
                        }
                        // An entry moved since is filed in its new second too.
                        Some(&until) if until.div_euclid(1000) == second => stays.push(*id),
                        _ => {}
                    }
                }
                drop(inner);
                inner = match self.write() {
                    Ok(inner) => inner,
                    Err(_) => return evicted,
                };
            }
            if !stays.is_empty() {
                inner.buckets.insert(second, stays);
                return evicted;
            }
            if inner.until.is_empty() {
                inner.until.shrink_to_fit();
            }
        }
    }

    /// Empties memory before a reload, so it holds exactly what the table does.
    pub fn clear(&self) {
        if let Ok(mut inner) = self.write() {
            *inner = Inner::default();
        }
        self.overflowed.store(false, Ordering::Release);
    }

    /// The follower has read everything committed before `at`.
    pub fn confirm(&self, at: Instant) {
        let millis = at.saturating_duration_since(self.epoch).as_millis() as u64;
        self.confirmed.fetch_max(millis, Ordering::AcqRel);
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    /// A load has completed and been confirmed: memory may answer.
    pub fn trust(&self) {
        self.loads.fetch_add(1, Ordering::AcqRel);
        self.trusted.store(true, Ordering::Release);
    }

    /// The follower may have missed changes: answer from the database.
    pub fn distrust(&self) {
        self.trusted.store(false, Ordering::Release);
    }

    pub fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    #[cfg(feature = "test-hooks")]
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Always false in a build without the `test-hooks` feature.
    pub fn is_paused(&self) -> bool {
        cfg!(feature = "test-hooks") && self.paused.load(Ordering::Acquire)
    }

    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            trusted: self.answering(),
            staleness_ms: self.staleness().as_millis() as u64,
            entries: self.inner.read().map_or(0, |inner| inner.until.len()),
            loads: self.loads.load(Ordering::Acquire),
            polls: self.polls.load(Ordering::Relaxed),
            overflowed: self.is_overflowed(),
        }
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>, ()> {
        // A poisoned lock means a panic mid-update: stop trusting the contents.
        self.inner.write().map_err(|_| self.distrust())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> RevocationCache {
        let cache = RevocationCache::with_capacity(1_000);
        cache.confirm(Instant::now());
        cache.trust();
        cache
    }

    #[test]
    fn an_untrusted_cache_never_answers() {
        let cache = RevocationCache::with_capacity(1_000);
        cache.insert(Uuid::nil(), i64::MAX);
        cache.confirm(Instant::now());
        assert_eq!(cache.check(Uuid::nil(), Uuid::nil()), None);
        cache.trust();
        assert_eq!(cache.check(Uuid::nil(), Uuid::new_v4()), Some(true));
        cache.distrust();
        assert_eq!(cache.check(Uuid::nil(), Uuid::nil()), None);
    }

    #[test]
    fn a_cache_not_confirmed_within_the_bound_stops_answering() {
        let cache = RevocationCache::with_capacity(1_000);
        cache.trust();
        cache.confirm(Instant::now() - MAX_STALENESS - Duration::from_millis(1));
        assert_eq!(cache.check(Uuid::nil(), Uuid::nil()), None, "stale");
        cache.confirm(Instant::now());
        assert_eq!(cache.check(Uuid::nil(), Uuid::nil()), Some(false), "fresh again");
    }

    #[test]
    fn a_session_id_revokes_every_token_of_the_session() {
        let cache = live();
        let (jti, sid) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(cache.check(jti, sid), Some(false));
        cache.insert(sid, 2_000_000_000_000);
        assert_eq!(cache.check(jti, sid), Some(true));
    }

    #[test]
    fn entries_leave_memory_exactly_after_their_cutoff() {
        let cache = live();
        let (early, moved, late) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        cache.load([(early, 1_000_500), (moved, 1_000_500), (late, 10_000_000)]);
        cache.insert(moved, 20_000_000);

        assert_eq!(cache.evict_expired(1_000_500), 0, "not before the instant itself");
        assert_eq!(cache.evict_expired(1_000_501), 1);
        assert_eq!(cache.check(early, early), Some(false));
        assert_eq!(cache.check(moved, moved), Some(true));
        assert_eq!(cache.evict_expired(15_000_000), 1);
        assert_eq!(cache.status().entries, 1);
    }

    #[test]
    fn own_inserts_never_shorten_but_the_table_decides() {
        let cache = live();
        let id = Uuid::new_v4();
        cache.insert(id, 50_000_000);
        cache.insert(id, 100);
        cache.evict_expired(10_000_000);
        assert_eq!(cache.check(id, id), Some(true));
        cache.set_many([(id, None)]);
        assert_eq!(cache.check(id, id), Some(false), "a row deleted from the table");
    }

    #[test]
    fn past_its_capacity_the_cache_refuses_entries_and_stops_answering() {
        let cache = RevocationCache::with_capacity(2);
        cache.confirm(Instant::now());
        cache.trust();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            cache.insert(*id, i64::MAX);
        }
        assert_eq!(cache.status().entries, 2);
        assert!(cache.is_overflowed());
        assert_eq!(cache.check(ids[0], ids[0]), None);
        cache.clear();
        assert!(!cache.is_overflowed());
    }
}
