//! The follower: keeps an instance's revocation memory ([`RevocationCache`])
//! equal to the live part of `revoked_tokens`, and confirms it current at
//! least every [`HEARTBEAT`], so memory never answers more than
//! [`MAX_STALENESS`] behind the database.
//!
//! Only table rows decide what memory holds. Each backend keeps an app-owned,
//! trigger-fed event log of the rows that changed, each event with the
//! state the change left its row in (migration 11 of each backend; an older
//! event's row is looked up); the follower reads it past its cursor and
//! applies it in order ([`postgres`], [`sqlite`]). A
//! Postgres notification only wakes the follower early: its payload is never
//! read, so a forged `NOTIFY` costs one cheap poll and changes nothing.
//!
//! Each poll also reads `credentials_version`; when it moved, the signing
//! keys and clients are read again before the poll confirms memory.
//!
//! A session: connect, empty memory, load every live row, then poll, apply
//! and confirm until anything goes wrong (an error, a poll slower than the
//! staleness bound, a gap in the event log). Then memory is distrusted (the
//! check asks the database), and a new session reloads it.
//!
//! [`RevocationCache`]: super::cache::RevocationCache

mod postgres;
mod sqlite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rocket::futures::{Stream, TryStreamExt};
use rocket::tokio::sync::Notify;
use uuid::Uuid;

use super::cache::{RevocationCache, MAX_STALENESS};
use super::feed::{Position, Tick};
use super::model::REFRESH_ROTATED;
use super::{Backend, DbError, Store};

/// The longest the follower waits between polls when nothing wakes it.
pub const HEARTBEAT: Duration = Duration::from_millis(200);

/// How long one poll may take before its connection is presumed dead and the
/// session starts over. Memory stops answering after [`MAX_STALENESS`]
/// whatever the poll does (the check compares the last confirmation with the
/// clock); this only decides when to reconnect. A DBA's bulk insert of a
/// million rows is one poll of a million ids, which takes seconds.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a load may take (1M rows take under a second).
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// How long memory may stay over capacity before a reload is tried again.
const OVERFLOW_RETRY: Duration = Duration::from_secs(30);

/// A change the event log points at: the id, and the row's expiry in unix
/// milliseconds while the access check needs it (`None`: deleted, or a
/// used-up refresh token).
type Change = (Uuid, Option<i64>);

/// The unix millisecond at which a token expiring at `time` is expired,
/// rounded up so memory never lets go before the database does.
pub(super) fn until_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros().div_euclid(1000) + i64::from(!time.timestamp_subsec_micros().is_multiple_of(1000))
}

/// What memory should hold for a row whose token expires at `until_ms`
/// (as the database computed it) with this reason: used-up refresh tokens
/// stay out of memory. This instance's own writes and SQLite's load apply
/// it here; Postgres' load and poll and SQLite's poll in their statements,
/// with [`REFRESH_ROTATED`] bound (their rows come by the hundred thousand),
/// as do the triggers' WHEN clauses.
pub(super) fn wanted(until_ms: i64, reason: &str) -> Option<i64> {
    (reason != REFRESH_ROTATED).then_some(until_ms)
}

/// A row no token can ever match (on SQLite, a `jti` that is not a UUID: the
/// schema refuses new ones, older rows may hold them): left out of memory,
/// counted, and logged (at most once a second), so that it never stops the
/// follower.
pub(super) fn skip_unmatchable(jti: &str) {
    crate::metrics::revocation_row_skipped();
    crate::logging::warn_repeated!(
        "revoked_tokens row {jti:?} can never match a token (its jti is not a UUID): skipped"
    );
}

/// Loads `rows` (jti, until_ms of a row memory should hold; `None` for a
/// row left out) into `cache`, a batch per lock hold; returns how many.
async fn load_rows(
    cache: &RevocationCache,
    rows: impl Stream<Item = Result<Option<(Uuid, i64)>, DbError>>,
) -> Result<usize, DbError> {
    let mut rows = std::pin::pin!(rows);
    let mut batch = Vec::with_capacity(10_000);
    let mut loaded = 0;
    while let Some(row) = rows.try_next().await? {
        if let Some(entry) = row {
            batch.push(entry);
        }
        if batch.len() == batch.capacity() {
            loaded += batch.len();
            cache.load(batch.drain(..));
            // A fast stream never returns Pending: let requests run between
            // batches (without this, /health waited for a 1M-row load).
            rocket::tokio::task::yield_now().await;
        }
    }
    loaded += batch.len();
    cache.load(batch);
    Ok(loaded)
}

/// One backend's view of the event log.
enum Source {
    Postgres(postgres::Source),
    Sqlite(sqlite::Source),
}

impl Source {
    async fn open(backend: &Backend) -> Result<Source, DbError> {
        Ok(match backend {
            Backend::Postgres(pool) => Source::Postgres(postgres::Source::open(pool).await?),
            Backend::Sqlite(pool) => Source::Sqlite(sqlite::Source::open(pool).await?),
        })
    }

    /// Loads every row live at `cutoff` into `cache`; returns how many.
    async fn load(&mut self, cutoff: DateTime<Utc>, cache: &RevocationCache) -> Result<usize, DbError> {
        match self {
            Source::Postgres(source) => source.load(cutoff, cache).await,
            Source::Sqlite(source) => source.load(cutoff, cache).await,
        }
    }

    /// The changes committed since the last poll (or the load), and
    /// `credentials_version` as of the poll (`None`: nothing was committed
    /// since the last poll, so it cannot have moved).
    async fn poll(&mut self) -> Result<(Vec<Change>, Option<i64>), DbError> {
        match self {
            Source::Postgres(source) => source.poll().await,
            Source::Sqlite(source) => source.poll().await,
        }
    }

    /// Where in the event log memory stands.
    fn position(&self) -> Position {
        match self {
            Source::Postgres(source) => Position::Postgres(source.snapshot().to_owned()),
            Source::Sqlite(source) => Position::Sqlite(source.seen()),
        }
    }

    /// Until a notification wakes the follower, or the next heartbeat.
    async fn wait(&mut self) {
        match self {
            Source::Postgres(source) => source.wait(HEARTBEAT).await,
            Source::Sqlite(_) => rocket::tokio::time::sleep(sqlite::WATCH_INTERVAL).await,
        }
    }
}

impl Store {
    /// Keeps the revocation memory current, for ever: one session after
    /// another, distrusting memory between them, and evicting expired
    /// entries once a second.
    pub(super) async fn follow_revocations(&self) {
        let cache = self.cache.clone();
        let leeway = self.leeway;
        let _evictor = AbortOnDrop(rocket::tokio::spawn(async move {
            let mut ticker = rocket::tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                cache.evict_expired(until_ms(Utc::now() - leeway));
            }
        }));
        let batcher = self.clone();
        let _batcher = AbortOnDrop(rocket::tokio::spawn(async move { batcher.batch_feed().await }));
        let _waker = match &self.backend {
            Backend::Postgres(pool) => {
                let own = postgres::follower_pool(pool, "jwt-blocklist-waker", 1);
                Some(AbortOnDrop(rocket::tokio::spawn(wake_followers(own, self.wake.clone(), self.timeout))))
            }
            // SQLite followers see every commit through `PRAGMA data_version`.
            Backend::Sqlite(_) => None,
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let ended = self.follow_session().await;
            self.cache.distrust();
            match ended {
                Ok(()) => log::warn!("revocation cache over capacity for {OVERFLOW_RETRY:?}: reloading"),
                Err(DbError::EventGap) => log::warn!("revocation follower: {}", DbError::EventGap),
                Err(e) => {
                    log::warn!("revocation follower stopped ({e}); checking the database until reloaded")
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(100);
            }
            rocket::tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One session; `Ok` when memory stayed over capacity and should reload.
    async fn follow_session(&self) -> Result<(), DbError> {
        let cache = &self.cache;
        let mut source = self.bounded(Source::open(&self.backend)).await?;
        let loading = Instant::now();
        cache.distrust();
        cache.clear();
        let load = source.load(Utc::now() - self.leeway, cache);
        let loaded =
            rocket::tokio::time::timeout(LOAD_TIMEOUT, load).await.map_err(|_| DbError::Timeout)??;
        // The keys and clients too, read after the source began watching:
        // a change committed before that (while this instance started, or
        // while the follower was down) is not one a poll would report.
        self.bounded(self.reload_credentials()).await?;
        let mut live = false;
        let mut overflowed_at = None;
        loop {
            while cache.is_paused() {
                rocket::tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let polled_at = Instant::now();
            let from = source.position();
            let (changes, credentials) = rocket::tokio::time::timeout(POLL_TIMEOUT, source.poll())
                .await
                .map_err(|_| {
                log::warn!("revocation follower stalled: no answer within {POLL_TIMEOUT:?}; reconnecting");
                DbError::Timeout
            })??;
            // Keys and clients changed: read them again before confirming,
            // so a revoked key or client is gone within the same bound.
            if credentials.is_some_and(|version| version != self.credentials().version) {
                self.bounded(self.reload_credentials()).await?;
            }
            // A row whose token is already past expiry plus leeway is as good
            // as gone (a DBA's bulk insert of old rows adds nothing).
            let cutoff = until_ms(Utc::now() - self.leeway);
            let changed = changes.len();
            cache.set_many(
                changes.into_iter().map(|(id, until)| (id, until.filter(|&until| until >= cutoff))),
            );
            let behind = cache.staleness();
            cache.confirm(polled_at);
            if live && behind > MAX_STALENESS {
                // Memory stopped answering for a moment (the check saw the
                // lapse and asked the database): say why, once.
                crate::logging::warn_repeated!(
                    "revocation memory was {} ms behind the database until this poll ({changed} changes, \
                     read and applied in {} ms); checks asked the database meanwhile",
                    behind.as_millis(),
                    polled_at.elapsed().as_millis()
                );
            }
            let as_of = Utc::now() - polled_at.elapsed();
            self.feed.tick(Tick { from, to: source.position(), changed: changed > 0, as_of });
            if !live {
                live = true;
                cache.trust();
                log::info!(
                    "revocation cache live: {loaded} live revocations loaded in {:?}, \
                     memory answers at most {MAX_STALENESS:?} behind the database",
                    loading.elapsed()
                );
            }
            match (cache.is_overflowed(), overflowed_at) {
                (true, None) => overflowed_at = Some(Instant::now()),
                (true, Some(since)) if since.elapsed() > OVERFLOW_RETRY => return Ok(()),
                _ => {}
            }
            source.wait().await;
        }
    }
}

/// Sends one wake-up to every instance's follower after this instance's own
/// revocations commit, however many came since the last one (`Notify` keeps
/// one permit): outside the write transactions, so they never queue on the
/// lock a notifying commit takes. At most one per [`postgres::MIN_POLL_GAP`]:
/// no follower polls more often than that, and each wake-up costs Postgres a
/// transaction and a signal to every listening instance (under a stream of
/// logouts they were one per commit, about 600 a second, 5 % of the core
/// Postgres shared with the service). A lost wake-up costs at most one
/// heartbeat; the followers read the log, not the notification.
async fn wake_followers(pool: sqlx::PgPool, wake: Arc<Notify>, timeout: Duration) {
    loop {
        wake.notified().await;
        let began = rocket::tokio::time::Instant::now();
        let sent = rocket::tokio::time::timeout(timeout, postgres::wake_followers(&pool)).await;
        if !matches!(sent, Ok(Ok(()))) {
            log::debug!("could not wake the followers; they poll within {HEARTBEAT:?} anyway");
        }
        rocket::tokio::time::sleep_until(began + postgres::MIN_POLL_GAP).await;
    }
}

/// Ends a background task when its owner is dropped (shutdown included).
pub(super) struct AbortOnDrop(pub rocket::tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
