//! The SQLite revoking writes: a batch of the writer's (group commit) is one
//! transaction that takes the write lock first (SQLite has one writer at a
//! time) and one fsync at its commit; each write in it ends in one multi-row
//! upsert into `revoked_tokens` ([`list_wanted`]) that returns the rows
//! listed, with their expiry computed by SQLite, for this instance's memory.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqlitePool;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::{parse_time, parse_uuid, text, until_ms};
use crate::db::model::{Listed, SessionSweep};
use crate::db::writer::{Write, Written};
use crate::db::{DbError, Reason, Revocation, Rotation, SessionId, TokenId, UserId};

/// A batch of the writer's, in one transaction that takes the write lock
/// first: each write in turn, one commit for all.
pub(in crate::db) async fn write_batch(pool: &SqlitePool, writes: &[Write]) -> Result<Vec<Written>, DbError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut written = Vec::with_capacity(writes.len());
    for write in writes {
        written.push(match write {
            Write::Logout { sid, user_id, token_expires_at, now } => {
                Written::listed(log_out(&mut tx, *sid, *user_id, *token_expires_at, *now).await?)
            }
            Write::Token { sid, token, now } => {
                Written::listed(list_unless_listed(&mut tx, *sid, token, *now).await?)
            }
            Write::EndSession { user_id, sid, refresh_jti, reason, now } => {
                Written::listed(end_session(&mut tx, *user_id, *sid, *refresh_jti, *reason, *now).await?)
            }
            Write::Sweep { sweep, now, cutoff } => sweep_sessions(&mut tx, sweep, *now, *cutoff).await?,
            Write::Rotate(rotation) => rotate_refresh(&mut tx, rotation).await?,
        });
    }
    tx.commit().await?;
    Ok(written)
}

/// A rotation, and the user's name for the new tokens; a rotation of a user
/// who is gone changes nothing.
async fn rotate_refresh(conn: &mut SqliteConnection, rotation: &Rotation) -> Result<Written, DbError> {
    let username: Option<String> = sqlx::query_scalar("SELECT username FROM users WHERE id = ?1")
        .bind(rotation.user_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if username.is_none() {
        return Ok(Written::default());
    }
    // Compare-and-set under SQLite's single writer lock: one rotation matches.
    let rotated = sqlx::query(
        "UPDATE sessions SET refresh_jti = ?3, expires_at = ?4, refreshed_at = ?5
         WHERE id = ?1 AND refresh_jti = ?2 AND revoked_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?1, ?2))",
    )
    .bind(rotation.sid.to_string())
    .bind(rotation.presented_jti.to_string())
    .bind(rotation.next_jti.to_string())
    .bind(text(rotation.next_expires_at))
    .bind(text(rotation.now))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    // A rotation lists nothing: the session's new refresh_jti refuses the
    // used-up token. Anything else ends the session.
    if rotated {
        return Ok(Written { rotated: true, username, ..Written::default() });
    }
    let ended = mark_session_revoked(conn, rotation.sid, rotation.now).await?;
    let wanted = (rotation.sid.0, later(ended, rotation.presented_expires_at), Reason::RefreshReuse);
    let listed = list_wanted(conn, &[wanted], Some(rotation.user_id), rotation.now).await?;
    let listed = listed.into_iter().map(|(row, _)| row).collect();
    Ok(Written { listed, username, ..Written::default() })
}

/// Ends the session and lists it until the later of its newest refresh
/// token's expiry and the logged-out token's (`Store::log_out`).
async fn log_out(
    conn: &mut SqliteConnection,
    sid: SessionId,
    user_id: UserId,
    token_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let ended = mark_session_revoked(conn, sid, now).await?;
    let wanted = [(sid.0, later(ended, token_expires_at), Reason::Logout)];
    let listed = list_wanted(conn, &wanted, Some(user_id), now).await?;
    Ok(listed.into_iter().map(|(row, _)| row).collect())
}

/// A session sweep (logout-all, scope=others, password change) in its
/// batch's transaction. One writer at a time: a login's session insert
/// commits before the batch takes the write lock or waits until it ends.
async fn sweep_sessions(
    conn: &mut SqliteConnection,
    sweep: &SessionSweep,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<Written, DbError> {
    let user = sweep.user_id.to_string();
    // Counting the sweep refuses the sessions of logins still checking the
    // password (see insert_session).
    sqlx::query(
        "UPDATE users SET session_generation = session_generation + 1,
                          password_hash = coalesce(?2, password_hash)
         WHERE id = ?1",
    )
    .bind(&user)
    .bind(sweep.new_password_hash.as_deref())
    .execute(&mut *conn)
    .await?;
    let ended: Vec<(String, String)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = ?2, refresh_jti = NULL
         WHERE user_id = ?1 AND revoked_at IS NULL AND julianday(expires_at) > julianday(?3)
           AND id IS NOT ?4
         RETURNING id, strftime('%Y-%m-%dT%H:%M:%fZ', expires_at)",
    )
    .bind(&user)
    .bind(text(now))
    .bind(text(cutoff))
    .bind(sweep.keep.map(|sid| sid.to_string()))
    .fetch_all(&mut *conn)
    .await?;
    let mut wanted = Vec::with_capacity(ended.len());
    for (sid, expires_at) in ended {
        wanted.push((parse_uuid(&sid)?, parse_time(&expires_at)?, sweep.reason));
    }
    let listed = list_wanted(conn, &wanted, Some(sweep.user_id), now).await?;
    // A session a DBA had already revoked by hand was not live.
    let now_ms = now.timestamp_millis();
    let live = listed.iter().filter(|(row, new)| *new && row.until_ms > now_ms).count();
    Ok(Written {
        live: live as u64,
        listed: listed.into_iter().map(|(row, _)| row).collect(),
        ..Written::default()
    })
}

/// Ends one live session of the user (a DBA's revocation counts as ended),
/// if `refresh_jti` is `None` or its current refresh token, and lists it.
async fn end_session(
    conn: &mut SqliteConnection,
    user_id: UserId,
    sid: SessionId,
    refresh_jti: Option<TokenId>,
    reason: Reason,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let ended: Option<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ?4, refresh_jti = NULL
         WHERE id = ?2 AND user_id = ?1 AND revoked_at IS NULL
           AND julianday(expires_at) > julianday(?4)
           AND (?3 IS NULL OR refresh_jti = ?3)
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = sessions.id)
         RETURNING strftime('%Y-%m-%dT%H:%M:%fZ', expires_at)",
    )
    .bind(user_id.to_string())
    .bind(sid.to_string())
    .bind(refresh_jti.map(|jti| jti.to_string()))
    .bind(text(now))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(expires_at) = ended else {
        return Ok(Vec::new());
    };
    let wanted = [(sid.0, parse_time(&expires_at)?, reason)];
    let listed = list_wanted(conn, &wanted, Some(user_id), now).await?;
    Ok(listed.into_iter().map(|(row, _)| row).collect())
}

/// Lists `token` unless it or its session `sid` (when known) is listed
/// already (the batch holds the write lock: the check and the insert see
/// one state).
async fn list_unless_listed(
    conn: &mut SqliteConnection,
    sid: Option<SessionId>,
    token: &Revocation,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    if is_listed(conn, sid.map(|sid| sid.0), token.jti.0).await? {
        return Ok(Vec::new());
    }
    let wanted = [(token.jti.0, token.expires_at, token.reason)];
    let listed = list_wanted(conn, &wanted, token.user_id, now).await?;
    Ok(listed.into_iter().map(|(row, _)| row).collect())
}

/// Marks the session revoked; returns when its newest refresh token expires
/// (`None` if its row is gone). Session expiries are read back through
/// `strftime` here and in the sweeps, so whatever form the column holds
/// (any the CHECK accepts), a revocation never fails to parse it.
async fn mark_session_revoked(
    conn: &mut SqliteConnection,
    sid: SessionId,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let expires_at: Option<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?2), refresh_jti = NULL
         WHERE id = ?1 RETURNING strftime('%Y-%m-%dT%H:%M:%fZ', expires_at)",
    )
    .bind(sid.to_string())
    .bind(text(now))
    .fetch_optional(&mut *conn)
    .await?;
    expires_at.as_deref().map(parse_time).transpose()
}

fn later(time: Option<DateTime<Utc>>, floor: DateTime<Utc>) -> DateTime<Utc> {
    time.map_or(floor, |time| time.max(floor))
}

/// Rows per INSERT: five parameters each, far inside SQLite's limit.
const LIST_CHUNK: usize = 500;

/// Lists `wanted` (jti, expires_at, reason) for `user` at `now` in one
/// statement per chunk, extending an existing row's expiry but never
/// shortening it; returns the rows listed, each with whether it is new.
async fn list_wanted(
    conn: &mut SqliteConnection,
    wanted: &[(Uuid, DateTime<Utc>, Reason)],
    user: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<Vec<(Listed, bool)>, DbError> {
    let mut listed = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(LIST_CHUNK) {
        let rows = vec!["(?, ?, (SELECT id FROM users WHERE id = ?), ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO revoked_tokens (jti, expires_at, user_id, revoked_at, reason) VALUES {rows}
             ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE julianday(revoked_tokens.expires_at) < julianday(excluded.expires_at)
             RETURNING jti, {}, reason, revoked_at = ?",
            until_ms("expires_at")
        );
        let mut query = sqlx::query_as::<_, (String, i64, String, bool)>(&sql);
        for (jti, expires_at, reason) in chunk {
            query = query
                .bind(jti.to_string())
                .bind(text(*expires_at))
                .bind(user.map(|id| id.to_string()))
                .bind(text(now))
                .bind(reason.as_str());
        }
        for (jti, until_ms, reason, new) in query.bind(text(now)).fetch_all(&mut *conn).await? {
            listed.push((Listed { id: parse_uuid(&jti)?, until_ms, reason }, new));
        }
    }
    Ok(listed)
}

pub(in crate::db) async fn is_revoked(
    pool: &SqlitePool,
    sid: SessionId,
    jti: TokenId,
    kid: Option<&str>,
) -> Result<bool, DbError> {
    let revoked = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?1, ?2))
             OR EXISTS (SELECT 1 FROM signing_keys WHERE kid = ?3 AND revoked_at IS NOT NULL)",
    )
    .bind(sid.to_string())
    .bind(jti.to_string())
    .bind(kid)
    .fetch_one(pool)
    .await?;
    Ok(revoked)
}

/// Whether `jti` or `sid` (when known) has a row.
async fn is_listed(conn: &mut SqliteConnection, sid: Option<Uuid>, jti: Uuid) -> Result<bool, DbError> {
    let revoked = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?1, ?2))")
        .bind(sid.map(|sid| sid.to_string()))
        .bind(jti.to_string())
        .fetch_one(conn)
        .await?;
    Ok(revoked)
}
