//! The Postgres side of the follower. The triggers of migration 3 append the
//! id of every changed `revoked_tokens` row to `revocation_events`, stamped
//! with the writing transaction's id. Wake-ups are empty `NOTIFY`s on channel
//! `revoked_tokens`: from the trigger for other writers (a DBA), and from
//! [`wake_followers`] after the service's own commits (migration 3).
//!
//! Transaction ids are not committed in order, so the cursor is a snapshot,
//! as in PgQ: a poll reads the events whose transaction is visible in the
//! statement's own snapshot and was not in the previous one, each with the
//! state its row was left in (migration 11). Nothing committed is ever
//! skipped, and a long transaction delays nothing but itself.
//!
//! The follower's two connections (one held by LISTEN, one for the load and
//! the polls) come from a pool of their own, named `jwt-blocklist-listener`,
//! so they never queue behind requests.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rocket::futures::TryStreamExt;
use rocket::tokio::sync::Notify;
use sqlx::postgres::{PgListener, PgPool};
use uuid::Uuid;

use super::{load_rows, AbortOnDrop, Change};
use crate::db::cache::RevocationCache;
use crate::db::model::REFRESH_ROTATED;
use crate::db::postgres::UntilMs;
use crate::db::DbError;

/// The channel the triggers wake followers on. Its payloads are never read.
const CHANNEL: &str = "revoked_tokens";

/// The changes since snapshot `$1`, in one row: the snapshot the poll read
/// at, whether the purge has pruned events this cursor may still need (a
/// follower frozen for minutes), `credentials_version`, and the events as
/// three arrays (`seq`, id, expiry; NULL when there are none). An event
/// carries the state its row was left in (migration 11): no de-duplication
/// and no lookup per id, so a DBA's bulk revocation of a million rows is one
/// index range scan. Only events written before migration 11 (no state, not
/// a departure) have their row looked up, by a subquery the CASE reaches
/// for them alone. The expiry is the timestamp, NULL when memory should not
/// hold the row (deleted, or a used-up refresh token: reason `$2`), read as
/// [`until_ms`](crate::db::postgres::until_ms) by [`UntilMs`].
///
/// Arrays, not a row per event: sqlx reads a row in about 0.7 µs, an array
/// element in a few nanoseconds, and a bulk revocation of a million rows
/// must reach memory well within [`MAX_STALENESS`](crate::db::cache::MAX_STALENESS).
/// (`pg_current_snapshot()` is the statement's snapshot wherever it is called
/// in it.)
const POLL: &str = "
    SELECT pg_current_snapshot()::text,
           (SELECT through FROM revocation_events_pruned) >= pg_snapshot_xmin($1::text::pg_snapshot),
           (SELECT version FROM credentials_version),
           array_agg(e.seq), array_agg(e.jti),
           array_agg(CASE WHEN e.expires_at IS NOT NULL THEN (CASE WHEN e.reason <> $2 THEN e.expires_at END)
                          WHEN e.old_expires_at IS NULL
                          THEN (SELECT expires_at FROM revoked_tokens WHERE jti = e.jti AND reason <> $2)
                     END)
    FROM (SELECT pg_current_snapshot() AS now, $1::text::pg_snapshot AS before) c
    JOIN revocation_events e
        ON e.xid >= pg_snapshot_xmin(c.before) AND e.xid < pg_snapshot_xmax(c.now)
       AND pg_visible_in_snapshot(e.xid, c.now) AND NOT pg_visible_in_snapshot(e.xid, c.before)";

type PollRow = (String, bool, i64, Option<Vec<i64>>, Option<Vec<Uuid>>, Option<Vec<Option<UntilMs>>>);

/// The shortest time between two polls. Any role that can connect may send
/// NOTIFY on the channel: a flood of them must not make every instance poll
/// back to back. Notifications that come closer together are served by one
/// poll (at most 100 a second), which costs a wake-up at most this much
/// latency.
pub(super) const MIN_POLL_GAP: Duration = Duration::from_millis(10);

pub(super) struct Source {
    pool: PgPool,
    wake: Arc<Notify>,
    snapshot: String,
    /// When the last poll began.
    polled_at: rocket::tokio::time::Instant,
    _listener: AbortOnDrop,
}

impl Source {
    pub(super) async fn open(requests: &PgPool) -> Result<Source, DbError> {
        let pool = follower_pool(requests, "jwt-blocklist-listener", 2);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let wake = Arc::new(Notify::new());
        let waker = wake.clone();
        let task = rocket::tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => waker.notify_one(),
                    // Lost: the listener reconnects and listens again by itself.
                    Ok(None) => waker.notify_one(),
                    Err(_) => rocket::tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let polled_at = rocket::tokio::time::Instant::now();
        Ok(Source { pool, wake, snapshot: String::new(), polled_at, _listener: AbortOnDrop(task) })
    }

    pub(super) async fn load(
        &mut self,
        cutoff: DateTime<Utc>,
        cache: &RevocationCache,
    ) -> Result<usize, DbError> {
        // The snapshot first: whatever commits after it, the first poll reads.
        self.snapshot =
            sqlx::query_scalar("SELECT pg_current_snapshot()::text").fetch_one(&self.pool).await?;
        let rows = sqlx::query_as::<_, (Uuid, UntilMs)>(
            "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= $1 AND reason <> $2",
        )
        .bind(cutoff)
        .bind(REFRESH_ROTATED)
        .fetch(&self.pool)
        .map_ok(|(jti, until)| Some((jti, until.0)))
        .map_err(DbError::from);
        load_rows(cache, rows).await
    }

    /// The snapshot memory stands at.
    pub(super) fn snapshot(&self) -> &str {
        &self.snapshot
    }

    pub(super) async fn poll(&mut self) -> Result<(Vec<Change>, Option<i64>), DbError> {
        self.polled_at = rocket::tokio::time::Instant::now();
        let (snapshot, pruned, version, seqs, ids, untils): PollRow =
            sqlx::query_as(POLL).bind(&self.snapshot).bind(REFRESH_ROTATED).fetch_one(&self.pool).await?;
        if pruned {
            return Err(DbError::EventGap);
        }
        let (seqs, ids, untils) =
            (seqs.unwrap_or_default(), ids.unwrap_or_default(), untils.unwrap_or_default());
        if seqs.len() != ids.len() || ids.len() != untils.len() {
            return Err(DbError::decode("poll", "arrays of unequal lengths"));
        }
        self.snapshot = snapshot;
        let mut events: Vec<(i64, Change)> = seqs
            .into_iter()
            .zip(ids.into_iter().zip(untils.into_iter().map(|until| until.map(|until| until.0))))
            .collect();
        // In the order the events were written: for one id, that is the
        // order its row's changes committed in (migration 11).
        events.sort_unstable_by_key(|&(seq, _)| seq);
        Ok((events.into_iter().map(|(_, change)| change).collect(), Some(version)))
    }

    /// Until a notification or the heartbeat, and at least [`MIN_POLL_GAP`]
    /// after the last poll began.
    pub(super) async fn wait(&self, heartbeat: Duration) {
        let _ = rocket::tokio::time::timeout(heartbeat, self.wake.notified()).await;
        rocket::tokio::time::sleep_until(self.polled_at + MIN_POLL_GAP).await;
    }
}

/// A pool of `size` connections of the follower's own (its listener's and
/// polls', or the waker's), named `name`: a
/// [`side_pool`](crate::db::postgres::side_pool) that pings, without JIT.
pub(super) fn follower_pool(requests: &PgPool, name: &str, size: u32) -> PgPool {
    // No JIT: compiling a poll took 30-80 ms of a poll that runs in a
    // fraction of one (measured with a million rows in the table).
    crate::db::postgres::side_pool(requests, Some(name), &[("jit", "off")], size, true)
}

/// One empty notification on the followers' channel.
pub(super) async fn wake_followers(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(pool).await?;
    Ok(())
}

impl Drop for Source {
    fn drop(&mut self) {
        let pool = self.pool.clone();
        rocket::tokio::spawn(async move { pool.close().await });
    }
}
