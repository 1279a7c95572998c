//! The SQLite implementation of [`Store`](super::Store): the embedded default.
//!
//! Ids are stored as canonical lowercase UUID text and times as RFC 3339 UTC
//! text, so a DBA reads and writes them as plain strings. Time comparisons go
//! through `julianday()`, which also reads the other forms a DBA may type
//! (`2030-01-01 00:00:00`), and which the expiry indexes are built on. WAL mode
//! lets readers (the revocation check) run while a write is in progress. Every
//! write transaction starts with a write, so it takes the write lock up front
//! and waits under `busy_timeout` instead of failing on a lock upgrade.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rocket::futures::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqliteConnection};
use uuid::Uuid;

use super::cache::RevocationCache;
use super::{DbError, Listed, NewSession, PurgeCounts, Reason, Revocation, Rotation, RotationOutcome, User};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

type UserRow = (String, String, String, String);

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn decode_error(what: &str, value: &str) -> DbError {
    DbError::Other(sqlx::Error::Decode(format!("bad {what} in the database: {value:?}").into()))
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, DbError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
        .ok_or_else(|| decode_error("time", value))
}

fn parse_uuid(value: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(value).map_err(|_| decode_error("uuid", value))
}

fn user_from_row((id, username, password_hash, created_at): UserRow) -> Result<User, DbError> {
    Ok(User { id: parse_uuid(&id)?, username, password_hash, created_at: parse_time(&created_at)? })
}

pub(super) async fn connect(
    config: &rocket_db_pools::Config,
    timeout: Duration,
) -> Result<SqlitePool, DbError> {
    let options = SqliteConnectOptions::from_str(&config.url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(timeout)
        .disable_statement_logging();
    if let Some(folder) = options.clone().get_filename().parent() {
        if !folder.as_os_str().is_empty() {
            std::fs::create_dir_all(folder)
                .map_err(|e| DbError::Config(format!("cannot create {}: {e}", folder.display())))?;
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections as u32)
        .min_connections(config.min_connections.unwrap_or(0))
        .acquire_timeout(timeout)
        .idle_timeout(config.idle_timeout.map(Duration::from_secs))
        .connect_with(options)
        .await?;
    Ok(pool)
}

pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
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
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, password_hash, created_at FROM users WHERE username = ?1")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    row.map(user_from_row).transpose()
}

pub(super) async fn user_by_id(pool: &SqlitePool, id: Uuid) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, password_hash, created_at FROM users WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?;
    row.map(user_from_row).transpose()
}

pub(super) async fn insert_session(pool: &SqlitePool, session: &NewSession) -> Result<(), DbError> {
    sqlx::query("INSERT INTO sessions (id, user_id, refresh_jti, expires_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.refresh_jti.to_string())
        .bind(text(session.expires_at))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn rotate_refresh(
    pool: &SqlitePool,
    rotation: &Rotation,
) -> Result<(RotationOutcome, Vec<Listed>), DbError> {
    let mut listed = Vec::new();
    let mut tx = pool.begin().await?;
    // Compare-and-set under SQLite's single writer lock: one rotation matches.
    let rotated = sqlx::query(
        "UPDATE sessions SET refresh_jti = ?3, expires_at = ?4
         WHERE id = ?1 AND refresh_jti = ?2 AND revoked_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?1, ?2))",
    )
    .bind(rotation.sid.to_string())
    .bind(rotation.presented_jti.to_string())
    .bind(rotation.next_jti.to_string())
    .bind(text(rotation.next_expires_at))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;

    let outcome = if rotated {
        let used = Revocation {
            jti: rotation.presented_jti,
            expires_at: rotation.presented_expires_at,
            user_id: Some(rotation.user_id),
            reason: Reason::RefreshRotated,
        };
        upsert_revocation(&mut tx, &used, rotation.now, &mut listed).await?;
        RotationOutcome::Rotated
    } else {
        revoke_session(
            &mut tx,
            rotation.sid,
            Some(rotation.user_id),
            rotation.presented_expires_at,
            Reason::RefreshReuse,
            rotation.now,
            &mut listed,
        )
        .await?;
        RotationOutcome::Reused
    };
    tx.commit().await?;
    Ok((outcome, listed))
}

pub(super) async fn revoke_token_and_session(
    pool: &SqlitePool,
    token: &Revocation,
    sid: Uuid,
    session_fallback_expiry: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let now = Utc::now();
    let mut listed = Vec::new();
    let mut tx = pool.begin().await?;
    upsert_revocation(&mut tx, token, now, &mut listed).await?;
    revoke_session(&mut tx, sid, token.user_id, session_fallback_expiry, token.reason, now, &mut listed)
        .await?;
    tx.commit().await?;
    Ok(listed)
}

pub(super) async fn revoke_user_sessions(
    pool: &SqlitePool,
    user_id: Uuid,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<(u64, Vec<Listed>), DbError> {
    let mut listed = Vec::new();
    let mut tx = pool.begin().await?;
    let sessions: Vec<(String, String)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = ?2, refresh_jti = NULL
         WHERE user_id = ?1 AND revoked_at IS NULL AND julianday(expires_at) > julianday(?3)
         RETURNING id, expires_at",
    )
    .bind(user_id.to_string())
    .bind(text(now))
    .bind(text(cutoff))
    .fetch_all(&mut *tx)
    .await?;

    let mut live = 0;
    for (sid, expires_at) in sessions {
        let expires_at = parse_time(&expires_at)?;
        let revocation = Revocation {
            jti: parse_uuid(&sid)?,
            expires_at,
            user_id: Some(user_id),
            reason: Reason::LogoutAll,
        };
        // A session a DBA had already revoked by hand was not live.
        if upsert_revocation(&mut tx, &revocation, now, &mut listed).await? && expires_at > now {
            live += 1;
        }
    }
    tx.commit().await?;
    Ok((live, listed))
}

pub(super) async fn is_revoked(pool: &SqlitePool, jti: Uuid, sid: Uuid) -> Result<bool, DbError> {
    let revoked = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?1, ?2))")
        .bind(jti.to_string())
        .bind(sid.to_string())
        .fetch_one(pool)
        .await?;
    Ok(revoked)
}

pub(super) async fn purge_expired(
    pool: &SqlitePool,
    cutoff: DateTime<Utc>,
    batch_size: i64,
) -> Result<Option<PurgeCounts>, DbError> {
    // SQLite serialises writers itself; instances sharing one file simply
    // take turns, and a row is deleted once.
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
    // The event log only has to outlive the watchers' next look (milliseconds;
    // a reloading watcher starts from the newest event): keep ten minutes.
    let events = "DELETE FROM revocation_events WHERE seq IN (
                      SELECT seq FROM revocation_events ORDER BY seq LIMIT ?2)
                    AND julianday(happened_at) < julianday(?1)";
    let events_cutoff = text(Utc::now() - chrono::Duration::minutes(10));
    delete_in_batches(pool, events, &events_cutoff, batch_size).await?;
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
        super::pace_after(batch_started).await;
    }
}

/// Marks the session revoked and lists its id on the blocklist until its
/// newest refresh token would expire.
async fn revoke_session(
    conn: &mut SqliteConnection,
    sid: Uuid,
    user_id: Option<Uuid>,
    fallback_expiry: DateTime<Utc>,
    reason: Reason,
    now: DateTime<Utc>,
    listed: &mut Vec<Listed>,
) -> Result<(), DbError> {
    let expires_at: Option<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2), refresh_jti = NULL
         WHERE id = ?1 RETURNING expires_at",
    )
    .bind(sid.to_string())
    .bind(text(now))
    .fetch_optional(&mut *conn)
    .await?;
    let expires_at = match expires_at {
        Some(value) => parse_time(&value)?.max(fallback_expiry),
        None => fallback_expiry,
    };
    let revocation = Revocation { jti: sid, expires_at, user_id, reason };
    upsert_revocation(conn, &revocation, now, listed).await?;
    Ok(())
}

/// Adds a blocklist row; if one exists, only ever extends its expiry.
/// Returns whether the row is new.
async fn upsert_revocation(
    conn: &mut SqliteConnection,
    revocation: &Revocation,
    now: DateTime<Utc>,
    listed: &mut Vec<Listed>,
) -> Result<bool, DbError> {
    listed.push((revocation.jti, revocation.expires_at));
    let inserted = sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at, user_id, revoked_at, reason)
         VALUES (?1, ?2, (SELECT id FROM users WHERE id = ?3), ?4, ?5)
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(revocation.jti.to_string())
    .bind(text(revocation.expires_at))
    .bind(revocation.user_id.map(|id| id.to_string()))
    .bind(text(now))
    .bind(revocation.reason.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        sqlx::query(
            "UPDATE revoked_tokens SET expires_at = ?2
             WHERE jti = ?1 AND julianday(expires_at) < julianday(?2)",
        )
        .bind(revocation.jti.to_string())
        .bind(text(revocation.expires_at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(inserted)
}

/// How often the watcher looks for commits by other connections. Each look
/// is one `PRAGMA data_version` on the watcher's own connection (no disk
/// read); the event log is read only when it moved.
const WATCH_INTERVAL: Duration = Duration::from_millis(2);

/// One follow session on a connection of its own, outside the request pool:
/// `data_version` is per connection, and while the cache is distrusted the
/// request pool is busy answering every check, which the follower must not
/// queue behind. Notes the newest event, loads every live revocation, applies
/// the events since, trusts the cache, then applies new events whenever
/// another connection has committed.
pub(super) async fn follow(
    pool: &SqlitePool,
    cache: &RevocationCache,
    cutoff: DateTime<Utc>,
) -> Result<(), DbError> {
    let started = std::time::Instant::now();
    let mut conn = pool.connect_options().connect().await?;
    let mut version: i64 = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut conn).await?;
    let mut seen: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM revocation_events")
        .fetch_one(&mut conn)
        .await?;

    let mut loaded = 0usize;
    {
        let mut rows = sqlx::query_as::<_, (String, i64)>(
            "SELECT jti, CAST(strftime('%s', expires_at) AS INTEGER) + 1 FROM revoked_tokens
             WHERE julianday(expires_at) > julianday(?1)",
        )
        .bind(text(cutoff))
        .fetch(&mut conn);
        let mut batch = Vec::with_capacity(10_000);
        while let Some((id, until)) = rows.try_next().await? {
            batch.push((parse_uuid(&id)?, until));
            if batch.len() == batch.capacity() {
                loaded += batch.len();
                cache.insert_many(batch.drain(..));
            }
        }
        loaded += batch.len();
        cache.insert_many(batch);
    }
    seen = apply_events(&mut conn, cache, seen).await?;
    cache.trust();
    log::info!("revocation cache loaded {loaded} live revocations in {:?}", started.elapsed());

    let mut ticker = rocket::tokio::time::interval(WATCH_INTERVAL);
    ticker.set_missed_tick_behavior(rocket::tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now: i64 = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut conn).await?;
        if now != version {
            version = now;
            seen = apply_events(&mut conn, cache, seen).await?;
        }
    }
}

/// Applies the events after `after`; returns the last one applied.
async fn apply_events(
    conn: &mut SqliteConnection,
    cache: &RevocationCache,
    after: i64,
) -> Result<i64, DbError> {
    let events: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT seq, jti, CAST(strftime('%s', expires_at) AS INTEGER) + 1
         FROM revocation_events WHERE seq > ?1 ORDER BY seq",
    )
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    let mut last = after;
    for (seq, id, until) in events {
        match until {
            Some(until) => cache.insert(parse_uuid(&id)?, until),
            None => cache.remove(parse_uuid(&id)?),
        }
        last = seq;
    }
    Ok(last)
}
