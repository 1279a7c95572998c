//! Refresh-token rotations on Postgres: the rotations of a whole batch in
//! one statement.
//!
//! Each is a compare-and-set: swap the session's refresh token if the
//! presented one is current; otherwise end the session and list it
//! (`refresh_reuse`). Concurrent rotations of one session in different
//! batches queue on the row lock and re-check after the winner commits, so
//! one matches; two in one batch are never in one statement (`batch.rs`
//! runs a session's second rotation after the first), so the second sees
//! the first's swap. A rotation lists nothing: the session row's new
//! `refresh_jti` is what refuses the used-up token. The same statement
//! reads the user's name for the new tokens (a refresh is one round trip);
//! a rotation of a user who is gone changes nothing.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::revoke::{list_wanted, listed};
use crate::db::model::Rotation;
use crate::db::writer::Written;
use crate::db::DbError;

static ROTATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH batch (sid, presented, next, next_expires_at, presented_expires_at, now, user_id) AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[],
                                  $6::timestamptz[], $7::uuid[])),
         rotated AS (
             UPDATE sessions s SET refresh_jti = b.next, expires_at = b.next_expires_at, refreshed_at = b.now
             FROM batch b
             WHERE s.id = b.sid AND s.refresh_jti = b.presented AND s.revoked_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (b.sid, b.presented))
             RETURNING s.id),
         reused AS (
             SELECT * FROM batch b
             WHERE b.sid NOT IN (SELECT id FROM rotated) AND EXISTS (SELECT 1 FROM users WHERE id = b.user_id)),
         ended AS (
             UPDATE sessions s SET revoked_at = COALESCE(s.revoked_at, b.now), refresh_jti = NULL
             FROM reused b WHERE s.id = b.sid
             RETURNING s.id, s.expires_at),
         wanted (jti, expires_at, reason, user_id, now) AS (
             SELECT b.sid, GREATEST(e.expires_at, b.presented_expires_at), 'refresh_reuse', b.user_id, b.now
             FROM reused b LEFT JOIN ended e ON e.id = b.sid),
         listed AS ({})
         SELECT b.sid, b.sid IN (SELECT id FROM rotated), u.username, l.*
         FROM batch b LEFT JOIN users u ON u.id = b.user_id LEFT JOIN listed l ON l.jti = b.sid",
        list_wanted("w.user_id", "w.now", "NULL::boolean")
    )
});

/// The session, whether it rotated, the user's name (if the user exists),
/// then a listed row (if any).
type RotatedRow = (Uuid, bool, Option<String>, Option<Uuid>, Option<i64>, Option<String>, Option<bool>);

/// Runs `rotations` (of distinct sessions) in one statement; returns what
/// each did, in their order.
pub(super) async fn rotate_refresh(
    conn: &mut PgConnection,
    rotations: &[&Rotation],
) -> Result<Vec<Written>, DbError> {
    if rotations.is_empty() {
        return Ok(Vec::new());
    }
    let column =
        |field: fn(&Rotation) -> Uuid| rotations.iter().map(|rotation| field(rotation)).collect::<Vec<_>>();
    let time = |field: fn(&Rotation) -> DateTime<Utc>| {
        rotations.iter().map(|rotation| field(rotation)).collect::<Vec<_>>()
    };
    let rows: Vec<RotatedRow> = sqlx::query_as(ROTATE.as_str())
        .bind(column(|rotation| rotation.sid.0))
        .bind(column(|rotation| rotation.presented_jti.0))
        .bind(column(|rotation| rotation.next_jti.0))
        .bind(time(|rotation| rotation.next_expires_at))
        .bind(time(|rotation| rotation.presented_expires_at))
        .bind(time(|rotation| rotation.now))
        .bind(column(|rotation| rotation.user_id.0))
        .fetch_all(conn)
        .await?;
    Ok(rotations
        .iter()
        .map(|rotation| {
            let mine = rows.iter().filter(|row| row.0 == rotation.sid.0);
            let mut written = Written::default();
            for (_, rotated, username, jti, until_ms, reason, new) in mine {
                written.rotated |= *rotated;
                written.username.clone_from(username);
                written.listed.extend(listed((*jti, *until_ms, reason.clone(), *new)));
            }
            written
        })
        .collect())
}
