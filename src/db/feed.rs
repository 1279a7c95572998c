//! The revocation feed's reads (contract v3, "Other services"): what other
//! services need to refuse revoked access tokens themselves.
//!
//! A [`Position`] is a place in the event log, as the follower keeps it
//! (Postgres: a snapshot, as in PgQ; SQLite: an event number). The changes
//! between two positions are the ids whose events lie between them, each
//! described by its row as it is now ([`Store::feed_changes`]), in id
//! order, so a client that saw some of them can resume after the last id
//! it saw. A snapshot ([`Store::feed_snapshot`]) is every live entry at one
//! position, read in one transaction and streamed.
//!
//! The follower publishes a [`Tick`] each time it confirms memory current;
//! the batcher (`batch`, started with the follower) turns ticks into
//! [`Batch`]es, reading the changes once for every open stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rocket::futures::{Stream, TryStreamExt};
use rocket::tokio::sync::watch;
use uuid::Uuid;

use super::{Backend, DbError, Store};

/// What a feed entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One token (its `jti`).
    Token,
    /// A session (its `sid`): every token of it.
    Session,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::Session => "session",
        }
    }
}

/// A revoked id and the unix millisecond until which an access token may
/// still present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Uuid,
    pub kind: Kind,
    pub until_ms: i64,
}

/// A change between two positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The row is there now (new, or its expiry changed).
    Revoked(Entry),
    /// A DBA deleted the row before its time (`until_ms`: the expiry it had).
    Unrevoked(Entry),
}

impl Change {
    pub fn entry(&self) -> &Entry {
        match self {
            Change::Revoked(entry) | Change::Unrevoked(entry) => entry,
        }
    }
}

/// A place in the event log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    /// A `pg_snapshot`, as text.
    Postgres(String),
    /// The newest event number seen.
    Sqlite(i64),
}

/// The follower's confirmation: memory holds every change up to `to`, as
/// of `as_of` (when the poll that read them began).
#[derive(Debug, Clone)]
pub struct Tick {
    pub from: Position,
    pub to: Position,
    /// Whether the poll found events (if not, nothing changed from `from`
    /// to `to`).
    pub changed: bool,
    pub as_of: DateTime<Utc>,
}

/// A tick with its changes read, for the open streams.
#[derive(Debug, Clone)]
pub struct Batch {
    pub from: Position,
    pub to: Position,
    /// `None` when they were not read (no stream was open, or the read
    /// failed): a stream at `from` reads them itself.
    pub changes: Option<Arc<Vec<Change>>>,
    pub as_of: DateTime<Utc>,
}

/// The longest the batcher holds back a batch with nothing in it: each
/// batch is a heartbeat on every open stream (the contract asks for one at
/// least every 250 ms).
const BATCH_GAP: Duration = Duration::from_millis(100);

/// The ticks and batches of one store.
pub(super) struct Feed {
    ticks: watch::Sender<Option<Tick>>,
    batches: watch::Sender<Option<Arc<Batch>>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { ticks: watch::channel(None).0, batches: watch::channel(None).0 }
    }
}

impl Feed {
    /// The follower's confirmation (see [`Tick`]).
    pub(super) fn tick(&self, tick: Tick) {
        self.ticks.send_replace(Some(tick));
    }
}

/// A snapshot: its position, and its entries as they are read.
pub struct Snapshot {
    pub position: Position,
    pub entries: std::pin::Pin<Box<dyn Stream<Item = Result<Entry, DbError>> + Send>>,
}

/// A snapshot's rows as a backend reads them: the id, whether it names a
/// session, `until_ms`, `revoked_ms` (ids no token can match left out).
pub(super) type SnapshotRows =
    std::pin::Pin<Box<dyn Stream<Item = Result<(Uuid, bool, i64, i64), DbError>> + Send>>;

impl Store {
    /// The batches, newest only (a stream that falls behind reads what it
    /// missed with [`feed_changes`](Self::feed_changes)).
    pub fn feed_batches(&self) -> watch::Receiver<Option<Arc<Batch>>> {
        self.feed.batches.subscribe()
    }

    /// The changes between `from` and `to`, in id order, after `after` if
    /// given. [`DbError::EventGap`] when the purge has pruned events between
    /// them (the client must take a new snapshot).
    pub async fn feed_changes(
        &self,
        from: &Position,
        to: &Position,
        after: Option<Uuid>,
    ) -> Result<Vec<Change>, DbError> {
        let tail = self.session_tail_ms();
        self.bounded(async {
            match (&self.backend, from, to) {
                (Backend::Postgres(pool), Position::Postgres(from), Position::Postgres(to)) => {
                    super::postgres::feed::changes(pool, from, to, after, tail).await
                }
                (Backend::Sqlite(pool), Position::Sqlite(from), Position::Sqlite(to)) => {
                    super::sqlite::feed::changes(pool, *from, *to, after, tail).await
                }
                _ => Err(DbError::EventGap),
            }
        })
        .await
    }

    /// Every entry an access-token check needs now (expiry plus leeway not
    /// past), with the position it is consistent with: one transaction,
    /// streamed row by row (a million entries need no million-entry buffer).
    pub async fn feed_snapshot(&self) -> Result<Snapshot, DbError> {
        let cutoff = super::follow::until_ms(Utc::now() - self.leeway);
        let tail = self.session_tail_ms();
        let (position, rows) = self
            .bounded(async {
                match &self.backend {
                    Backend::Postgres(pool) => super::postgres::feed::snapshot(pool, cutoff).await,
                    Backend::Sqlite(pool) => super::sqlite::feed::snapshot(pool, cutoff).await,
                }
            })
            .await?;
        let entries = rows.try_filter_map(move |(id, is_session, until, revoked)| {
            let entry = entry(id, is_session, until, revoked, tail);
            std::future::ready(Ok((entry.until_ms >= cutoff).then_some(entry)))
        });
        Ok(Snapshot { position, entries: Box::pin(entries) })
    }

    /// How long a revoked session or signing key matters to access tokens
    /// after it was revoked: the longest an access token lives, plus leeway.
    pub fn feed_tail(&self) -> chrono::Duration {
        self.access_token_ttl + self.leeway
    }

    fn session_tail_ms(&self) -> i64 {
        self.feed_tail().num_milliseconds()
    }

    /// Turns the follower's ticks into batches, until the store is dropped:
    /// reads the changes once for every open stream (only when a stream is
    /// open and a poll found events), and publishes a batch when there are
    /// changes or [`BATCH_GAP`] has passed since the last one. (SQLite's
    /// follower confirms every few milliseconds: each open stream would
    /// otherwise wake that often for nothing.)
    pub(super) async fn batch_feed(&self) {
        let mut ticks = self.feed.ticks.subscribe();
        // Where the last batch ended, and whether every tick seen since
        // began where the one before ended and found nothing.
        let mut at: Option<Position> = None;
        let mut seen: Option<Position> = None;
        let mut quiet = true;
        let mut published = Instant::now();
        while ticks.changed().await.is_ok() {
            let Some(tick) = ticks.borrow_and_update().clone() else { continue };
            let from = at.get_or_insert_with(|| tick.from.clone()).clone();
            let contiguous = seen.as_ref().is_none_or(|seen| *seen == tick.from);
            quiet = quiet && contiguous && !tick.changed;
            seen = Some(tick.to.clone());
            if quiet && published.elapsed() < BATCH_GAP {
                continue;
            }
            let changes = if quiet || from == tick.to {
                Some(Arc::new(Vec::new()))
            } else if self.feed.batches.receiver_count() == 0 {
                None
            } else {
                self.feed_changes(&from, &tick.to, None).await.ok().map(Arc::new)
            };
            at = Some(tick.to.clone());
            quiet = true;
            published = Instant::now();
            let batch = Batch { from, to: tick.to, changes, as_of: tick.as_of };
            self.feed.batches.send_replace(Some(Arc::new(batch)));
        }
    }
}

/// The entry of a row as the feed describes it: a session matters to access
/// tokens only until `revoked_at + tail` (its last access token has expired
/// by then), or its own expiry if sooner.
pub(super) fn entry(id: Uuid, is_session: bool, until_ms: i64, revoked_ms: i64, tail_ms: i64) -> Entry {
    match is_session {
        true => Entry { id, kind: Kind::Session, until_ms: until_ms.min(revoked_ms.saturating_add(tail_ms)) },
        false => Entry { id, kind: Kind::Token, until_ms },
    }
}

/// A changed id as a backend reads it: whether it names a session; its
/// row's `until_ms`, `revoked_ms` and reason (all `None` when the row is
/// gone); the expiry its last departing event recorded.
pub(super) type ChangedRow = (bool, Option<i64>, Option<i64>, Option<String>, Option<i64>);

/// What the feed says of a changed id; `None` for nothing (a used-up
/// refresh token, or a row the purge removed once expired).
pub(super) fn change(id: Uuid, row: ChangedRow, tail_ms: i64) -> Option<Change> {
    let (is_session, until, revoked, reason, old_until) = row;
    match (until.zip(revoked).zip(reason), old_until) {
        (Some(((until, revoked), reason)), _) => super::follow::wanted(until, &reason)
            .map(|until| Change::Revoked(entry(id, is_session, until, revoked, tail_ms))),
        (None, Some(old)) => Some(Change::Unrevoked(entry(id, is_session, old, i64::MAX, tail_ms))),
        (None, None) => None,
    }
}
