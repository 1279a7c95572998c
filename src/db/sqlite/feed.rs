//! The revocation feed's reads on SQLite (`db/feed.rs` says what they
//! mean). Positions are event numbers, gap-free in commit order
//! (`follow/sqlite.rs`): the changes between two are the events numbered
//! after the first up to the second, all of which must still be there. A
//! snapshot is read in one transaction (WAL keeps its view fixed) whose
//! first read names its position.

use std::sync::LazyLock;

use rocket::futures::TryStreamExt;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use super::until_ms;
use crate::db::feed::{change, Change, Position, SnapshotRows};
use crate::db::DbError;

/// The ids with events numbered in (`?1`, `?2`] (after `?3`, if given),
/// each with its row now, whether it names a session, and the expiry its
/// last departing event recorded (found by one grouping pass, as on
/// Postgres: a subquery per id was quadratic in a bulk revocation).
static CHANGES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ev AS (SELECT seq, jti, old_expires_at FROM revocation_events WHERE seq > ?1 AND seq <= ?2),
         ids AS (
             SELECT jti, max(CASE WHEN old_expires_at IS NOT NULL THEN seq END) AS departed
             FROM ev WHERE ?3 IS NULL OR jti > ?3 GROUP BY jti)
         SELECT i.jti,
                EXISTS (SELECT 1 FROM sessions s WHERE s.id = i.jti),
                {}, {}, r.reason, {}
         FROM ids i LEFT JOIN revoked_tokens r ON r.jti = i.jti
         LEFT JOIN revocation_events d ON d.seq = i.departed
         ORDER BY i.jti",
        until_ms("r.expires_at"),
        until_ms("r.revoked_at"),
        until_ms("d.old_expires_at"),
    )
});

type ChangeRow = (String, bool, Option<i64>, Option<i64>, Option<String>, Option<i64>);

pub(in crate::db) async fn changes(
    pool: &SqlitePool,
    from: i64,
    to: i64,
    after: Option<Uuid>,
    tail_ms: i64,
) -> Result<Vec<Change>, DbError> {
    let mut tx = pool.begin().await?;
    let present: i64 =
        sqlx::query_scalar("SELECT count(*) FROM revocation_events WHERE seq > ?1 AND seq <= ?2")
            .bind(from)
            .bind(to)
            .fetch_one(&mut *tx)
            .await?;
    if present != to - from {
        return Err(DbError::EventGap);
    }
    let rows: Vec<ChangeRow> = sqlx::query_as(CHANGES.as_str())
        .bind(from)
        .bind(to)
        .bind(after.map(|id| id.to_string()))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut changes = Vec::with_capacity(rows.len());
    for (id, is_session, until, revoked, reason, old_until) in rows {
        // A jti no token can match (not a UUID): nothing to tell anyone.
        let Ok(id) = Uuid::parse_str(&id) else { continue };
        changes.extend(change(id, (is_session, until, revoked, reason, old_until), tail_ms));
    }
    Ok(changes)
}

/// Every row whose entry lasts until `?1` or later, with what it names.
static SNAPSHOT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.jti, EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.jti), {}, {}
         FROM revoked_tokens r
         WHERE r.reason <> 'refresh_rotated' AND {} >= ?1",
        until_ms("r.expires_at"),
        until_ms("r.revoked_at"),
        until_ms("r.expires_at"),
    )
});

pub(in crate::db) async fn snapshot(
    pool: &SqlitePool,
    cutoff_ms: i64,
) -> Result<(Position, SnapshotRows), DbError> {
    let mut tx = pool.begin().await?;
    // The first read fixes the transaction's view: this one.
    let position: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'revocation_events'), 0)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let rows = rocket::response::stream::stream! {
        let mut tx = tx;
        let mut rows = sqlx::query_as::<_, (String, bool, i64, i64)>(SNAPSHOT.as_str()).bind(cutoff_ms).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.transpose() {
            match row {
                // A jti no token can match (not a UUID): nothing to send.
                Ok((id, is_session, until, revoked)) => match Uuid::parse_str(&id) {
                    Ok(id) => yield Ok((id, is_session, until, revoked)),
                    Err(_) => continue,
                },
                Err(error) => yield Err(DbError::from(error)),
            }
        }
    };
    Ok((Position::Sqlite(position), Box::pin(rows)))
}
