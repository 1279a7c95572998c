//! The revocation feed's reads on Postgres (`db/feed.rs` says what they
//! mean). Positions are `pg_snapshot`s: the changes between two are the
//! events of transactions visible in the second and not in the first (the
//! follower's own rule, `follow/postgres.rs`), and a snapshot is read in one
//! REPEATABLE READ transaction whose first statement names its position.

use std::sync::LazyLock;

use rocket::futures::TryStreamExt;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::until_ms;
use crate::db::feed::{change, Change, Position, SnapshotRows};
use crate::db::DbError;

/// The ids with events between snapshots `$1` and `$2` (after `$3`, if
/// given), each with its row now, whether it names a session, and the
/// expiry its last departing event recorded; and whether the purge has
/// pruned events the range needs.
/// The ids and their last departing event come from one grouping pass over
/// the range's events (a subquery over them per id was quadratic: 14.5 s
/// for 20,000 events, against 25 ms now).
static CHANGES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH c AS (SELECT $1::text::pg_snapshot AS before, $2::text::pg_snapshot AS upto),
         ev AS (
             SELECT e.seq, e.jti, e.old_expires_at FROM revocation_events e, c
             WHERE e.xid >= pg_snapshot_xmin(c.before) AND e.xid < pg_snapshot_xmax(c.upto)
               AND pg_visible_in_snapshot(e.xid, c.upto) AND NOT pg_visible_in_snapshot(e.xid, c.before)),
         ids AS (
             SELECT jti, max(CASE WHEN old_expires_at IS NOT NULL THEN seq END) AS departed
             FROM ev WHERE $3::uuid IS NULL OR jti > $3::uuid GROUP BY jti)
         SELECT (SELECT through FROM revocation_events_pruned) >= pg_snapshot_xmin(c.before),
                i.jti,
                EXISTS (SELECT 1 FROM sessions s WHERE s.id = i.jti),
                r.until_ms, r.revoked_ms, r.reason, {}
         FROM c LEFT JOIN ids i ON true
         LEFT JOIN revocation_events d ON d.seq = i.departed
         LEFT JOIN LATERAL (
             SELECT {} AS until_ms, {} AS revoked_ms, reason FROM revoked_tokens WHERE jti = i.jti LIMIT 1
         ) r ON true
         ORDER BY i.jti",
        until_ms("d.old_expires_at"),
        until_ms("expires_at"),
        until_ms("revoked_at"),
    )
});

/// Whether events were pruned, the id, and the rest of a `ChangedRow`.
type ChangeRow = (bool, Option<Uuid>, bool, Option<i64>, Option<i64>, Option<String>, Option<i64>);

pub(in crate::db) async fn changes(
    pool: &PgPool,
    from: &str,
    to: &str,
    after: Option<Uuid>,
    tail_ms: i64,
) -> Result<Vec<Change>, DbError> {
    let rows: Vec<ChangeRow> =
        sqlx::query_as(CHANGES.as_str()).bind(from).bind(to).bind(after).fetch_all(pool).await?;
    let mut changes = Vec::with_capacity(rows.len());
    for (gap, id, is_session, until, revoked, reason, old_until) in rows {
        if gap {
            return Err(DbError::EventGap);
        }
        let Some(id) = id else { continue };
        changes.extend(change(id, (is_session, until, revoked, reason, old_until), tail_ms));
    }
    Ok(changes)
}

/// Every row whose entry lasts until `$1` or later, with what it names.
static SNAPSHOT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.jti, EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.jti), {}, {}
         FROM revoked_tokens r
         WHERE r.reason <> 'refresh_rotated' AND {} >= $1",
        until_ms("r.expires_at"),
        until_ms("r.revoked_at"),
        until_ms("r.expires_at"),
    )
});

pub(in crate::db) async fn snapshot(
    pool: &PgPool,
    cutoff_ms: i64,
) -> Result<(Position, SnapshotRows), DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    // The transaction's snapshot is taken by its first query: this one.
    let position: String =
        sqlx::query_scalar("SELECT pg_current_snapshot()::text").fetch_one(&mut *tx).await?;
    let rows = rocket::response::stream::stream! {
        let mut tx = tx;
        let mut rows = sqlx::query_as::<_, (Uuid, bool, i64, i64)>(SNAPSHOT.as_str()).bind(cutoff_ms).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.transpose() {
            yield row.map_err(DbError::from);
        }
    };
    Ok((Position::Postgres(position), Box::pin(rows)))
}
