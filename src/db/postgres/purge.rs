//! The Postgres purge: batches of `FOR UPDATE SKIP LOCKED` deletes, paced,
//! under a session-level advisory lock so that one instance purges at a time;
//! then the follower events past their retention. "Expired" and "past its
//! retention" are by the database's clock (`now()`), the one its triggers
//! use, never by the purging host's.

use sqlx::postgres::PgPool;
use sqlx::PgConnection;

use crate::db::{DbError, PurgeCounts};

/// Key of the session-level advisory lock held by the instance that purges
/// ("jwtblprg" in ASCII).
const PURGE_LOCK_KEY: i64 = 0x6a77_7462_6c70_7267;

pub(in crate::db) async fn purge_expired(
    pool: &PgPool,
    leeway: chrono::Duration,
    batch_size: i64,
) -> Result<Option<PurgeCounts>, DbError> {
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PURGE_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(None);
    }

    let result = purge_batches(&mut conn, leeway.num_seconds(), batch_size).await;

    let unlocked =
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(PURGE_LOCK_KEY).execute(&mut *conn).await;
    if unlocked.is_err() {
        // Closing the connection is what releases a session lock for sure.
        drop(conn.detach());
    }
    result.map(Some)
}

async fn purge_batches(
    conn: &mut PgConnection,
    leeway_seconds: i64,
    batch_size: i64,
) -> Result<PurgeCounts, DbError> {
    let mut counts = PurgeCounts::default();
    for (table, key, counter) in
        [("revoked_tokens", "jti", &mut counts.revoked_tokens), ("sessions", "id", &mut counts.sessions)]
    {
        let statement = format!(
            "DELETE FROM {table} WHERE {key} IN (
                 SELECT {key} FROM {table} WHERE expires_at < now() - $1 * interval '1 second'
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        );
        loop {
            let batch_started = std::time::Instant::now();
            let removed = sqlx::query(&statement)
                .bind(leeway_seconds)
                .bind(batch_size)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            *counter += removed;
            if removed < batch_size as u64 {
                break;
            }
            crate::db::pace_after(batch_started).await;
        }
    }
    prune_events(conn, batch_size).await?;
    Ok(counts)
}

/// Deletes follower events older than [`crate::db::EVENT_RETENTION`] whose
/// transaction every snapshot already sees, and records the newest pruned
/// transaction id, so a follower whose cursor is older reloads (see
/// `follow/postgres.rs`) instead of missing them.
async fn prune_events(conn: &mut PgConnection, batch_size: i64) -> Result<u64, DbError> {
    let retention = crate::db::EVENT_RETENTION.as_secs() as i64;
    let mut removed = 0;
    loop {
        let pruned: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM revocation_events WHERE seq IN (
                     SELECT seq FROM revocation_events
                     WHERE happened_at < now() - $1 * interval '1 second'
                       AND xid < pg_snapshot_xmin(pg_current_snapshot())
                     ORDER BY seq LIMIT $2)
                 RETURNING xid),
             newest AS (SELECT xid FROM gone ORDER BY xid DESC LIMIT 1),
             noted AS (
                 UPDATE revocation_events_pruned SET through = greatest(through, (SELECT xid FROM newest))
                 WHERE EXISTS (SELECT 1 FROM newest))
             SELECT count(*) FROM gone",
        )
        .bind(retention)
        .bind(batch_size)
        .fetch_one(&mut *conn)
        .await?;
        removed += pruned as u64;
        if pruned < batch_size {
            return Ok(removed);
        }
    }
}
