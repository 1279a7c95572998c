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

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rocket::futures::TryStreamExt;
use rocket::tokio::sync::Notify;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use uuid::Uuid;

use super::{load_rows, wanted, AbortOnDrop, Change};
use crate::db::cache::RevocationCache;
use crate::db::postgres::until_ms;
use crate::db::DbError;

/// The channel the triggers wake followers on. Its payloads are never read.
const CHANNEL: &str = "revoked_tokens";

/// The changes since snapshot `$1`, and whether the purge has pruned events
/// this cursor may still need (a follower frozen for minutes): one row per
/// event, with its `seq`, applied in that order. An event carries the state
/// its row was left in (migration 11): no de-duplication and no lookup per
/// id, so a DBA's bulk revocation of a million rows is one index range scan.
/// Only events written before migration 11 (no state, not a departure) have
/// their row looked up (LATERAL, gated on that, so no other event pays for
/// it). Expiry is read as [`until_ms`], computed by Postgres, whatever a DBA
/// stored.
static POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH cursor AS (SELECT pg_current_snapshot() AS now, $1::text::pg_snapshot AS before)
         SELECT c.now::text,
                (SELECT through FROM revocation_events_pruned) >= pg_snapshot_xmin(c.before),
                (SELECT version FROM credentials_version),
                e.seq, e.jti,
                CASE WHEN e.expires_at IS NOT NULL THEN {} ELSE r.until_ms END,
                CASE WHEN e.expires_at IS NOT NULL THEN e.reason ELSE r.reason END
         FROM cursor c
         LEFT JOIN revocation_events e
             ON e.xid >= pg_snapshot_xmin(c.before) AND e.xid < pg_snapshot_xmax(c.now)
            AND pg_visible_in_snapshot(e.xid, c.now) AND NOT pg_visible_in_snapshot(e.xid, c.before)
         LEFT JOIN LATERAL (
             SELECT {} AS until_ms, reason FROM revoked_tokens
             WHERE jti = e.jti AND e.expires_at IS NULL AND e.old_expires_at IS NULL LIMIT 1) r ON true",
        until_ms("e.expires_at"),
        until_ms("expires_at")
    )
});

type PollRow = (String, bool, i64, Option<i64>, Option<Uuid>, Option<i64>, Option<String>);

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
        let pool = side_pool(requests, "jwt-blocklist-listener", 2);
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
        let load = format!(
            "SELECT jti, {}, reason FROM revoked_tokens WHERE expires_at >= $1",
            until_ms("expires_at")
        );
        let rows = sqlx::query_as::<_, (Uuid, i64, String)>(&load)
            .bind(cutoff)
            .fetch(&self.pool)
            .map_ok(Some)
            .map_err(DbError::from);
        load_rows(cache, rows).await
    }

    /// The snapshot memory stands at.
    pub(super) fn snapshot(&self) -> &str {
        &self.snapshot
    }

    pub(super) async fn poll(&mut self) -> Result<(Vec<Change>, Option<i64>), DbError> {
        self.polled_at = rocket::tokio::time::Instant::now();
        let mut rows: Vec<PollRow> =
            sqlx::query_as(POLL.as_str()).bind(&self.snapshot).fetch_all(&self.pool).await?;
        // In the order the events were written: for one id, that is the
        // order its row's changes committed in (migration 11).
        rows.sort_unstable_by_key(|row| row.3);
        let mut changes = Vec::with_capacity(rows.len());
        let mut credentials = None;
        for (snapshot, gap, version, _, jti, until_ms, reason) in rows {
            if gap {
                return Err(DbError::EventGap);
            }
            if credentials.is_none() {
                self.snapshot = snapshot;
                credentials = Some(version);
            }
            if let Some(jti) = jti {
                let until = until_ms.zip(reason).and_then(|(until, reason)| wanted(until, &reason));
                changes.push((jti, until));
            }
        }
        Ok((changes, credentials))
    }

    /// Until a notification or the heartbeat, and at least [`MIN_POLL_GAP`]
    /// after the last poll began.
    pub(super) async fn wait(&self, heartbeat: Duration) {
        let _ = rocket::tokio::time::timeout(heartbeat, self.wake.notified()).await;
        rocket::tokio::time::sleep_until(self.polled_at + MIN_POLL_GAP).await;
    }
}

/// A pool of `size` connections apart from the request pool, named `name`
/// (`application_name`) so operators and tests can tell them apart.
pub(super) fn side_pool(requests: &PgPool, name: &str, size: u32) -> PgPool {
    // No JIT: compiling a poll took 30-80 ms of a poll that runs in a
    // fraction of one (measured with a million rows in the table).
    let options = (*requests.connect_options()).clone().application_name(name).options([("jit", "off")]);
    PgPoolOptions::new()
        .max_connections(size)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(requests.options().get_acquire_timeout())
        .connect_lazy_with(options)
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
