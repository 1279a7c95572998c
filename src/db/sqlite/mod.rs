//! The SQLite implementation of [`Store`](super::Store): the embedded default.
//! This file: accounts and sessions; `open.rs`: connecting and migrating;
//! `revoke.rs`: the revoking writes; `purge.rs`: the purge;
//! `credentials.rs`: signing keys and clients; `feed.rs`: the revocation
//! feed's reads.
//!
//! Ids are stored as canonical lowercase UUID text and times as RFC 3339 UTC
//! text, so a DBA reads and writes them as plain strings. Time comparisons go
//! through `julianday()`, which also reads the other forms a DBA may type
//! (`2030-01-01 00:00:00`), and which the expiry indexes are built on. WAL mode
//! lets readers (the revocation check) run while a write is in progress, and
//! `synchronous = FULL` syncs the log at every commit, so a revocation that was
//! answered 2xx survives a power loss, not just a crash of the process. Every
//! write transaction starts with a write (or `BEGIN IMMEDIATE`), so it takes
//! the write lock up front and waits under `busy_timeout` instead of failing
//! on a lock upgrade.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use super::model::{Device, SessionInfo};
use super::{DbError, NewSession, SessionId, TokenId, User, UserId};

pub(super) mod credentials;
pub(super) mod feed;
mod open;
mod purge;
mod revoke;
pub(super) use credentials::{add_client, credentials, remove_client};
pub(super) use open::open;
pub(super) use purge::purge_expired;
pub(super) use revoke::{is_revoked, write_batch};

type UserRow = (String, String, String, String, i64);

pub(in crate::db) fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(in crate::db) fn parse_time(value: &str) -> Result<DateTime<Utc>, DbError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
        .ok_or_else(|| DbError::decode("time", value))
}

/// `column` (an expiry, in any form SQLite's date functions read) as the
/// unix millisecond from which a token expiring then is expired, computed by
/// SQLite itself, so that every value the schema's CHECK accepts (a bare
/// date, a Julian day number, a time without seconds) is read exactly the
/// way the purge and the views read it: SQLite holds times as whole
/// milliseconds, which `julianday()` divides and this multiplies back.
pub(in crate::db) fn until_ms(column: &str) -> String {
    format!("CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)")
}

pub(in crate::db) fn parse_uuid(value: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(value).map_err(|_| DbError::decode("uuid", value))
}

fn user_from_row(
    (id, username, password_hash, created_at, session_generation): UserRow,
) -> Result<User, DbError> {
    let (id, created_at) = (UserId(parse_uuid(&id)?), parse_time(&created_at)?);
    Ok(User { id, username, password_hash, created_at, session_generation })
}

pub(super) async fn ping(pool: &SqlitePool) -> Result<(), DbError> {
    // Touch the schema, not just the connection: a locked file must show here.
    sqlx::query("SELECT count(*) FROM sqlite_schema").execute(pool).await?;
    Ok(())
}

pub(super) async fn insert_user(pool: &SqlitePool, user: &User) -> Result<(), DbError> {
    sqlx::query("INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(text(user.created_at))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn user_by_username(pool: &SqlitePool, username: &str) -> Result<Option<User>, DbError> {
    // The column is COLLATE NOCASE: this compares case-insensitively, by index.
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at, session_generation FROM users WHERE username = ?1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    row.map(user_from_row).transpose()
}

pub(super) async fn user_by_id(pool: &SqlitePool, user_id: UserId) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at, session_generation FROM users WHERE id = ?1",
    )
    .bind(user_id.to_string())
    .fetch_optional(pool)
    .await?;
    row.map(user_from_row).transpose()
}

/// Inserts the session if the user's `session_generation` is still the one
/// the login read (one writer at a time: the check and the insert see one
/// state).
pub(super) async fn insert_session(pool: &SqlitePool, session: &NewSession) -> Result<bool, DbError> {
    let inserted = sqlx::query(
        "INSERT INTO sessions (id, user_id, refresh_jti, expires_at, user_agent, ip)
         SELECT ?1, id, ?3, ?4, ?5, ?6 FROM users WHERE id = ?2 AND session_generation = ?7",
    )
    .bind(session.id.to_string())
    .bind(session.user_id.to_string())
    .bind(session.refresh_jti.to_string())
    .bind(text(session.expires_at))
    .bind(session.device.user_agent.as_deref())
    .bind(session.device.ip.map(|ip| ip.to_string()))
    .bind(session.generation)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

type SessionRow = (String, String, String, Option<String>, Option<String>, Option<String>);

/// The user's live sessions (neither revoked, by the service or by hand, nor
/// expired at `now`), newest first.
pub(super) async fn sessions_of(
    pool: &SqlitePool,
    user_id: UserId,
    now: DateTime<Utc>,
) -> Result<Vec<SessionInfo>, DbError> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT s.id, s.created_at, s.expires_at, s.refreshed_at, s.user_agent, s.ip
         FROM sessions s
         WHERE s.user_id = ?1 AND s.revoked_at IS NULL AND julianday(s.expires_at) > julianday(?2)
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = s.id)
         ORDER BY julianday(s.created_at) DESC, s.id",
    )
    .bind(user_id.to_string())
    .bind(text(now))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(id, created_at, expires_at, refreshed_at, user_agent, ip)| {
            Ok(SessionInfo {
                id: SessionId(parse_uuid(&id)?),
                created_at: parse_time(&created_at)?,
                expires_at: parse_time(&expires_at)?,
                refreshed_at: refreshed_at.as_deref().map(parse_time).transpose()?,
                device: Device { user_agent, ip: ip.and_then(|ip| ip.parse().ok()) },
            })
        })
        .collect()
}

pub(super) async fn current_refresh(
    pool: &SqlitePool,
    sid: SessionId,
    jti: TokenId,
) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT u.username FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = ?1 AND s.refresh_jti = ?2 AND s.revoked_at IS NULL",
    )
    .bind(sid.to_string())
    .bind(jti.to_string())
    .fetch_optional(pool)
    .await?)
}

/// The owner of a session, if the session exists.
pub(super) async fn session_owner(pool: &SqlitePool, sid: SessionId) -> Result<Option<UserId>, DbError> {
    let owner: Option<String> = sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = ?1")
        .bind(sid.to_string())
        .fetch_optional(pool)
        .await?;
    Ok(owner.as_deref().map(parse_uuid).transpose()?.map(UserId))
}
