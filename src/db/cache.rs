//! The in-process copy of the blocklist: the revoked `jti`s and `sid`s whose
//! tokens could still be accepted, each with the time it stops mattering.
//!
//! It answers only while it is *trusted*: loaded from the database and kept
//! current by a follower (LISTEN/NOTIFY on Postgres, the event log on SQLite).
//! Whenever the follower is not sure it has seen every change (not yet loaded,
//! connection lost, reloading), the cache is distrusted and [`check`] returns
//! `None`, which sends the caller to the database: a stale cache never lets a
//! revoked token through.
//!
//! Entries are only ever added or extended by revocations; a reload merges into
//! what is there. Entries leave memory once they expire (plus leeway), filed
//! in per-second buckets so eviction never scans the whole set.
//!
//! [`check`]: RevocationCache::check

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};

use uuid::Uuid;

/// Eviction granularity, seconds.
const BUCKET_SECONDS: i64 = 1;
/// Entries changed per write-lock hold during bulk work, so readers never
/// wait long behind a load or an eviction.
const CHUNK: usize = 10_000;

#[derive(Default)]
pub struct RevocationCache {
    trusted: AtomicBool,
    loads: AtomicU64,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// id → unix second until which it is revoked.
    until: HashMap<Uuid, i64>,
    /// bucket (until / 60) → ids that may expire in it.
    buckets: BTreeMap<i64, Vec<Uuid>>,
}

impl Inner {
    fn insert(&mut self, id: Uuid, until: i64) {
        let current = self.until.entry(id).or_insert(i64::MIN);
        if until > *current {
            *current = until;
            self.buckets.entry(until.div_euclid(BUCKET_SECONDS)).or_default().push(id);
        }
    }
}

/// What the cache holds, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStatus {
    pub trusted: bool,
    pub entries: usize,
    /// Completed loads from the database (1 after start-up, +1 per reconnect).
    pub loads: u64,
}

impl RevocationCache {
    /// `Some(revoked)` when the cache is trusted, `None` to ask the database.
    pub fn check(&self, jti: Uuid, sid: Uuid) -> Option<bool> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let revoked = {
            let inner = self.inner.read().ok()?;
            inner.until.contains_key(&jti) || inner.until.contains_key(&sid)
        };
        // A distrust that raced with the lookup wins: ask the database.
        self.trusted.load(Ordering::Acquire).then_some(revoked)
    }

    /// Records a revocation valid until `until` (unix seconds); extends, never shortens.
    pub fn insert(&self, id: Uuid, until: i64) {
        if let Ok(mut inner) = self.write() {
            inner.insert(id, until);
        }
    }

    /// Records many revocations, a chunk per lock hold.
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (Uuid, i64)>) {
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let Ok(mut inner) = self.write() else { return };
            for (id, until) in entries.by_ref().take(CHUNK) {
                inner.insert(id, until);
            }
        }
    }

    /// A row deleted by hand while its token was live: un-revoked.
    pub fn remove(&self, id: Uuid) {
        if let Ok(mut inner) = self.write() {
            inner.until.remove(&id);
        }
    }

    /// Drops entries revoked until before `cutoff` (unix seconds): their
    /// tokens are rejected as expired before the cache is ever asked.
    /// Returns how many left memory.
    pub fn evict_expired(&self, cutoff: i64) -> usize {
        let mut evicted = 0;
        loop {
            let Ok(mut inner) = self.write() else { return evicted };
            let Some((&bucket, _)) = inner.buckets.first_key_value() else { return evicted };
            if (bucket + 1) * BUCKET_SECONDS > cutoff {
                return evicted;
            }
            let ids = inner.buckets.remove(&bucket).unwrap_or_default();
            for chunk in ids.chunks(CHUNK) {
                for id in chunk {
                    // An entry extended since is filed in a later bucket too.
                    if inner.until.get(id).is_some_and(|&until| until < cutoff) {
                        inner.until.remove(id);
                        evicted += 1;
                    }
                }
                drop(inner);
                inner = match self.write() {
                    Ok(inner) => inner,
                    Err(_) => return evicted,
                };
            }
            if inner.until.is_empty() {
                inner.until.shrink_to_fit();
            }
        }
    }

    /// The follower has seen every change up to now.
    pub fn trust(&self) {
        self.loads.fetch_add(1, Ordering::AcqRel);
        self.trusted.store(true, Ordering::Release);
    }

    /// The follower may have missed changes: answer from the database.
    pub fn distrust(&self) {
        self.trusted.store(false, Ordering::Release);
    }

    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            trusted: self.trusted.load(Ordering::Acquire),
            entries: self.inner.read().map_or(0, |inner| inner.until.len()),
            loads: self.loads.load(Ordering::Acquire),
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

    #[test]
    fn an_untrusted_cache_never_answers() {
        let cache = RevocationCache::default();
        cache.insert(Uuid::nil(), i64::MAX);
        assert_eq!(cache.check(Uuid::nil(), Uuid::nil()), None);
        cache.trust();
        assert_eq!(cache.check(Uuid::nil(), Uuid::new_v4()), Some(true));
        cache.distrust();
        assert_eq!(cache.check(Uuid::nil(), Uuid::nil()), None);
    }

    #[test]
    fn a_session_id_revokes_every_token_of_the_session() {
        let cache = RevocationCache::default();
        let (jti, sid) = (Uuid::new_v4(), Uuid::new_v4());
        cache.trust();
        assert_eq!(cache.check(jti, sid), Some(false));
        cache.insert(sid, 2_000_000_000);
        assert_eq!(cache.check(jti, sid), Some(true));
    }

    #[test]
    fn expired_entries_leave_memory_and_extended_ones_stay() {
        let cache = RevocationCache::default();
        let (old, extended, live) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        cache.insert_many([(old, 1_000), (extended, 1_000), (live, 10_000)]);
        cache.insert(extended, 20_000);

        assert_eq!(cache.evict_expired(5_000), 1);

        cache.trust();
        assert_eq!(cache.check(old, old), Some(false));
        assert_eq!(cache.check(extended, extended), Some(true));
        assert_eq!(cache.check(live, live), Some(true));
        assert_eq!(cache.evict_expired(15_000), 1);
        assert_eq!(cache.status().entries, 1);
    }

    #[test]
    fn an_insert_never_shortens_a_revocation() {
        let cache = RevocationCache::default();
        let id = Uuid::new_v4();
        cache.insert(id, 50_000);
        cache.insert(id, 100);
        cache.evict_expired(10_000);
        cache.trust();
        assert_eq!(cache.check(id, id), Some(true));
    }
}
