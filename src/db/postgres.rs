//! The Postgres implementation of [`Store`](super::Store): native `uuid` and
//! `timestamptz` columns, `FOR UPDATE SKIP LOCKED` batches and an advisory lock
//! so that only one instance purges at a time.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, FromRow, PgConnection, Row};
use uuid::Uuid;

use super::model::Listed;
use super::{DbError, NewSession, PurgeCounts, Revocation, Rotation, RotationOutcome, User};

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
    Ok(super::pool_options(config, timeout).connect_with(options).await?)
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

/// The tail every revoking statement shares: list the `wanted` rows (jti,
/// expires_at, reason) for user `user` at `now` (the statement's parameter
/// names), extending an existing row's expiry but never shortening it; return
/// the rows listed, their reasons, and whether each is new.
fn list_wanted(user: &str, now: &str) -> String {
    format!(
        "INSERT INTO revoked_tokens AS r (jti, expires_at, user_id, revoked_at, reason)
         SELECT w.jti, w.expires_at, (SELECT id FROM users WHERE id = {user}), {now}, w.reason FROM wanted w
         ON CONFLICT (jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
             WHERE r.expires_at < EXCLUDED.expires_at
         RETURNING r.jti, r.expires_at, r.reason, r.revoked_at = {now} AS new"
    )
}

/// A listed row as the statements return it (see [`list_wanted`]); the
/// columns are NULL when a statement listed nothing.
type ListedRow = (Option<Uuid>, Option<DateTime<Utc>>, Option<String>, Option<bool>);

fn listed((jti, expires_at, reason, _): ListedRow) -> Option<Listed> {
    Some((jti?, expires_at?, reason?))
}

/// Refresh, in one statement: swap the session's refresh token if the
/// presented one is current (a compare-and-set: concurrent rotations queue on
/// the row lock and re-check after the winner commits, so one matches) and
/// list the used-up token; otherwise end the session and list it.
static ROTATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH rotated AS (
             UPDATE sessions SET refresh_jti = $3, expires_at = $4
             WHERE id = $1 AND refresh_jti = $2 AND revoked_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN ($1, $2))
             RETURNING id),
         ended AS (
             UPDATE sessions SET revoked_at = COALESCE(revoked_at, $6), refresh_jti = NULL
             WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM rotated)
             RETURNING expires_at),
         wanted (jti, expires_at, reason) AS (
             SELECT $2::uuid, $5::timestamptz, 'refresh_rotated' FROM rotated
             UNION ALL
             SELECT $1, GREATEST((SELECT expires_at FROM ended), $5), 'refresh_reuse'
             WHERE NOT EXISTS (SELECT 1 FROM rotated)),
         listed AS ({})
         SELECT EXISTS (SELECT 1 FROM rotated), l.* FROM (SELECT 1) AS one LEFT JOIN listed AS l ON true",
        list_wanted("$7", "$6")
    )
});

/// Whether the session rotated, then a [`ListedRow`].
type RotatedRow = (bool, Option<Uuid>, Option<DateTime<Utc>>, Option<String>, Option<bool>);

pub(super) async fn rotate_refresh(
    pool: &PgPool,
    rotation: &Rotation,
) -> Result<(RotationOutcome, Vec<Listed>), DbError> {
    let rows: Vec<RotatedRow> = sqlx::query_as(ROTATE.as_str())
        .bind(rotation.sid)
        .bind(rotation.presented_jti)
        .bind(rotation.next_jti)
        .bind(rotation.next_expires_at)
        .bind(rotation.presented_expires_at)
        .bind(rotation.now)
        .bind(rotation.user_id)
        .fetch_all(pool)
        .await?;
    let rotated = rows.first().is_some_and(|row| row.0);
    let listed = rows.into_iter().filter_map(|(_, a, b, c, d)| listed((a, b, c, d))).collect();
    Ok((if rotated { RotationOutcome::Rotated } else { RotationOutcome::Reused }, listed))
}

/// Logout, in one statement: end the session (kept listed until its newest
/// refresh token would expire, or `$4` if its row is gone) and list the token.
static REVOKE_TOKEN_AND_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ended AS (
             UPDATE sessions SET revoked_at = COALESCE(revoked_at, $5), refresh_jti = NULL
             WHERE id = $3 RETURNING expires_at),
         wanted (jti, expires_at, reason) AS (
             VALUES ($1::uuid, $2::timestamptz, $7::text),
                    ($3, GREATEST((SELECT expires_at FROM ended), $4), $7))
         {}",
        list_wanted("$6", "$5")
    )
});

pub(super) async fn revoke_token_and_session(
    pool: &PgPool,
    token: &Revocation,
    sid: Uuid,
    session_fallback_expiry: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let rows: Vec<ListedRow> = sqlx::query_as(REVOKE_TOKEN_AND_SESSION.as_str())
        .bind(token.jti)
        .bind(token.expires_at)
        .bind(sid)
        .bind(session_fallback_expiry)
        .bind(now)
        .bind(token.user_id)
        .bind(token.reason.as_str())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().filter_map(listed).collect())
}

/// Logout-all, in one round trip: lock the user's row, then end every live
/// session of the user and list them all. Two statements in one simple
/// query, which Postgres runs as one transaction with a snapshot per
/// statement: the lock waits for any login whose session insert (holding a
/// key-share lock on the user row until it commits) is in flight, and only
/// the statement after the wait sees that session. A login that comes after
/// waits for this commit instead, and signs its tokens only once its own
/// session row has committed. The simple protocol takes no parameters, so the
/// values are inlined: a UUID and two timestamps, formatted here.
fn revoke_user_sessions_sql(user_id: Uuid, now: DateTime<Utc>, cutoff: DateTime<Utc>) -> String {
    let timestamp = |time: DateTime<Utc>| {
        format!("'{}'::timestamptz", time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };
    let (user, now, cutoff) = (format!("'{user_id}'::uuid"), timestamp(now), timestamp(cutoff));
    format!(
        "SELECT 1 FROM users WHERE id = {user} FOR UPDATE;
         WITH ended AS (
             UPDATE sessions SET revoked_at = {now}, refresh_jti = NULL
             WHERE user_id = {user} AND revoked_at IS NULL AND expires_at > {cutoff}
             RETURNING id, expires_at),
         wanted (jti, expires_at, reason) AS (SELECT id, expires_at, 'logout_all' FROM ended)
         {}",
        list_wanted(&user, &now)
    )
}

pub(super) async fn revoke_user_sessions(
    pool: &PgPool,
    user_id: Uuid,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<(u64, Vec<Listed>), DbError> {
    let rows = sqlx::raw_sql(&revoke_user_sessions_sql(user_id, now, cutoff)).fetch_all(pool).await?;
    let mut listed_rows = Vec::with_capacity(rows.len());
    // The lock's one-column row first, then the listed rows.
    for row in rows.iter().filter(|row| row.len() == 4) {
        listed_rows.push(ListedRow::from_row(row)?);
    }
    // A session a DBA had already revoked by hand was not live.
    let live =
        listed_rows.iter().filter(|row| row.3 == Some(true) && row.1.is_some_and(|at| at > now)).count();
    Ok((live as u64, listed_rows.into_iter().filter_map(listed).collect()))
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
