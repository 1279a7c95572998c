//! The SQLite purge: paced batches of deletes by expiry, then the follower
//! events past their retention. SQLite serialises writers itself; instances
//! sharing one file simply take turns, and a row is deleted once.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqlitePool;

use super::text;
use crate::db::{DbError, PurgeCounts};

pub(in crate::db) async fn purge_expired(
    pool: &SqlitePool,
    cutoff: DateTime<Utc>,
    batch_size: i64,
) -> Result<Option<PurgeCounts>, DbError> {
    let cutoff = text(cutoff);
    let by_expiry = |table: &str| {
        format!(
            "DELETE FROM {table} WHERE rowid IN (
                 SELECT rowid FROM {table} WHERE julianday(expires_at) < julianday(?1) LIMIT ?2)"
        )
    };
    let counts = PurgeCounts {
        revoked_tokens: delete_in_batches(pool, &by_expiry("revoked_tokens"), &cutoff, batch_size).await?,
        sessions: delete_in_batches(pool, &by_expiry("sessions"), &cutoff, batch_size).await?,
    };
    // Followers reload when they find a gap, so pruning is safe at any age;
    // the retention only spares them that reload after a short pause.
    let events = "DELETE FROM revocation_events WHERE seq IN (
                      SELECT seq FROM revocation_events ORDER BY seq LIMIT ?2)
                    AND julianday(happened_at) < julianday(?1)";
    let retention = chrono::Duration::from_std(crate::db::EVENT_RETENTION).unwrap_or_default();
    delete_in_batches(pool, events, &text(Utc::now() - retention), batch_size).await?;
    Ok(Some(counts))
}

/// Runs a `DELETE … LIMIT ?2` statement (cutoff `?1`) until a batch comes
/// back short; returns the rows removed.
async fn delete_in_batches(
    pool: &SqlitePool,
    statement: &str,
    cutoff: &str,
    batch_size: i64,
) -> Result<u64, DbError> {
    let mut removed = 0;
    loop {
        let batch_started = std::time::Instant::now();
        let batch = sqlx::query(statement).bind(cutoff).bind(batch_size).execute(pool).await?.rows_affected();
        removed += batch;
        if batch < batch_size as u64 {
            return Ok(removed);
        }
        crate::db::pace_after(batch_started).await;
    }
}
