//! The Postgres implementation of [`Store`](super::Store): native `uuid` and
//! `timestamptz` columns, `FOR UPDATE SKIP LOCKED` batches and an advisory lock
//! so that only one instance purges at a time.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection};
use uuid::Uuid;

use super::model::Listed;
use super::{DbError, NewSession, PurgeCounts, Reason, Revocation, Rotation, RotationOutcome, User};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Key of the session-level advisory lock held by the instance that purges
/// ("jwtblprg" in ASCII).
const PURGE_LOCK_KEY: i64 = 0x6a77_7462_6c70_7267;

type UserRow = (Uuid, String, String, DateTime<Utc>);

fn user_from_row((id, username, password_hash, created_at): UserRow) -> User {
    User { id, username, password_hash, created_at }
}

pub(super) async fn connect(config: &rocket_db_pools::Config, timeout: Duration) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(&config.url)?
        .application_name("jwt-blocklist")
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections as u32)
        .min_connections(config.min_connections.unwrap_or(0))
        .acquire_timeout(timeout)
        .idle_timeout(config.idle_timeout.map(Duration::from_secs))
        .connect_with(options)
        .await?;
    Ok(pool)
}

pub(super) async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

pub(super) async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

pub(super) async fn insert_user(pool: &PgPool, user: &User) -> Result<(), DbError> {
    sqlx::query("INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn user_by_username(pool: &PgPool, username: &str) -> Result<Option<User>, DbError> {
    // lower(username) is what users_username_lower_key indexes.
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at FROM users WHERE lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(user_from_row))
}

pub(super) async fn user_by_id(pool: &PgPool, id: Uuid) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, password_hash, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(user_from_row))
}

pub(super) async fn insert_session(pool: &PgPool, session: &NewSession) -> Result<(), DbError> {
    sqlx::query("INSERT INTO sessions (id, user_id, refresh_jti, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(session.id)
        .bind(session.user_id)
        .bind(session.refresh_jti)
        .bind(session.expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn rotate_refresh(
    pool: &PgPool,
    rotation: &Rotation,
) -> Result<(RotationOutcome, Vec<Listed>), DbError> {
    let mut listed = Vec::new();
    let mut tx = pool.begin().await?;
    // Compare-and-set: concurrent rotations queue on the row lock, and each
    // re-checks refresh_jti after the winner commits, so only one matches.
    let rotated = sqlx::query(
        "UPDATE sessions SET refresh_jti = $3, expires_at = $4
         WHERE id = $1 AND refresh_jti = $2 AND revoked_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN ($1, $2))",
    )
    .bind(rotation.sid)
    .bind(rotation.presented_jti)
    .bind(rotation.next_jti)
    .bind(rotation.next_expires_at)
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
    pool: &PgPool,
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
    pool: &PgPool,
    user_id: Uuid,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<(u64, Vec<Listed>), DbError> {
    let mut listed = Vec::new();
    let mut tx = pool.begin().await?;
    // Waits for any login whose session insert (which holds a key-share lock
    // on the user row until it commits) is in flight, so its session is seen
    // below; a login that comes after waits for this commit instead, and
    // signs its tokens only once its own session row has committed.
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE").bind(user_id).execute(&mut *tx).await?;
    let sessions: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = $2, refresh_jti = NULL
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $3
         RETURNING id, expires_at",
    )
    .bind(user_id)
    .bind(now)
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;

    let mut live = 0;
    for (sid, expires_at) in sessions {
        let revocation =
            Revocation { jti: sid, expires_at, user_id: Some(user_id), reason: Reason::LogoutAll };
        // A session a DBA had already revoked by hand was not live.
        if upsert_revocation(&mut tx, &revocation, now, &mut listed).await? && expires_at > now {
            live += 1;
        }
    }
    tx.commit().await?;
    Ok((live, listed))
}

pub(super) async fn is_revoked(pool: &PgPool, jti: Uuid, sid: Uuid) -> Result<bool, DbError> {
    let revoked =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1 OR jti = $2)")
            .bind(jti)
            .bind(sid)
            .fetch_one(pool)
            .await?;
    Ok(revoked)
}

pub(super) async fn purge_expired(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
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

    let result = purge_batches(&mut conn, cutoff, batch_size).await;

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
    cutoff: DateTime<Utc>,
    batch_size: i64,
) -> Result<PurgeCounts, DbError> {
    let mut counts = PurgeCounts::default();
    for (table, key, counter) in
        [("revoked_tokens", "jti", &mut counts.revoked_tokens), ("sessions", "id", &mut counts.sessions)]
    {
        let statement = format!(
            "DELETE FROM {table} WHERE {key} IN (
                 SELECT {key} FROM {table} WHERE expires_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        );
        loop {
            let batch_started = std::time::Instant::now();
            let removed = sqlx::query(&statement)
                .bind(cutoff)
                .bind(batch_size)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            *counter += removed;
            if removed < batch_size as u64 {
                break;
            }
            super::pace_after(batch_started).await;
        }
    }
    prune_events(conn, batch_size).await?;
    Ok(counts)
}

/// Deletes follower events older than [`super::EVENT_RETENTION`] whose
/// transaction every snapshot already sees, and records the newest pruned
/// transaction id, so a follower whose cursor is older reloads (see
/// `follow/postgres.rs`) instead of missing them.
pub(super) async fn prune_events(conn: &mut PgConnection, batch_size: i64) -> Result<u64, DbError> {
    let retention = chrono::Duration::from_std(super::EVENT_RETENTION).unwrap_or_default();
    let mut removed = 0;
    loop {
        let pruned: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM revocation_events WHERE seq IN (
                     SELECT seq FROM revocation_events
                     WHERE happened_at < $1 AND xid < pg_snapshot_xmin(pg_current_snapshot())
                     ORDER BY seq LIMIT $2)
                 RETURNING xid),
             newest AS (SELECT xid FROM gone ORDER BY xid DESC LIMIT 1),
             noted AS (
                 UPDATE revocation_events_pruned SET through = greatest(through, (SELECT xid FROM newest))
                 WHERE EXISTS (SELECT 1 FROM newest))
             SELECT count(*) FROM gone",
        )
        .bind(Utc::now() - retention)
        .bind(batch_size)
        .fetch_one(&mut *conn)
        .await?;
        removed += pruned as u64;
        if pruned < batch_size {
            return Ok(removed);
        }
    }
}

/// Marks the session revoked and lists its id on the blocklist until its
/// newest refresh token would expire.
async fn revoke_session(
    conn: &mut PgConnection,
    sid: Uuid,
    user_id: Option<Uuid>,
    fallback_expiry: DateTime<Utc>,
    reason: Reason,
    now: DateTime<Utc>,
    listed: &mut Vec<Listed>,
) -> Result<(), DbError> {
    let expires_at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2), refresh_jti = NULL
         WHERE id = $1 RETURNING expires_at",
    )
    .bind(sid)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let revocation = Revocation {
        jti: sid,
        expires_at: expires_at.map_or(fallback_expiry, |e| e.max(fallback_expiry)),
        user_id,
        reason,
    };
    upsert_revocation(conn, &revocation, now, listed).await?;
    Ok(())
}

/// Adds a blocklist row; if one exists, only ever extends its expiry.
/// Returns whether the row is new.
async fn upsert_revocation(
    conn: &mut PgConnection,
    revocation: &Revocation,
    now: DateTime<Utc>,
    listed: &mut Vec<Listed>,
) -> Result<bool, DbError> {
    listed.push((revocation.jti, revocation.expires_at, revocation.reason));
    // The user may have been deleted meanwhile; the revocation must stand anyway.
    let inserted = sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at, user_id, revoked_at, reason)
         VALUES ($1, $2, (SELECT id FROM users WHERE id = $3), $4, $5)
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(revocation.jti)
    .bind(revocation.expires_at)
    .bind(revocation.user_id)
    .bind(now)
    .bind(revocation.reason.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        sqlx::query("UPDATE revoked_tokens SET expires_at = $2 WHERE jti = $1 AND expires_at < $2")
            .bind(revocation.jti)
            .bind(revocation.expires_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(inserted)
}
