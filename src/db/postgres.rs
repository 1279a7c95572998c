//! The Postgres implementation of [`Store`](super::Store): native `uuid` and
//! `timestamptz` columns, `FOR UPDATE SKIP LOCKED` batches and an advisory lock
//! so that only one instance purges at a time.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, FromRow, Row};
use uuid::Uuid;

use super::model::Listed;
use super::model::{Device, SessionInfo, SessionSweep};
use super::{DbError, NewSession, Reason, Revocation, Rotation, RotationOutcome, User};

mod purge;
pub(super) use purge::purge_expired;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

type UserRow = (Uuid, String, String, DateTime<Utc>, i64);

fn user_from_row((id, username, password_hash, created_at, session_generation): UserRow) -> User {
    User { id, username, password_hash, created_at, session_generation }
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
        "SELECT id, username, password_hash, created_at, session_generation FROM users
         WHERE lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(user_from_row))
}

pub(super) async fn user_by_id(pool: &PgPool, id: Uuid) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at, session_generation FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(user_from_row))
}

/// Inserts the session if the user's `session_generation` is still the one
/// the login read. The user row is locked FOR KEY SHARE in the same
/// statement: a sweep holding it FOR UPDATE makes this wait for its commit,
/// after which the row is checked again (READ COMMITTED re-reads a locked
/// row) and the new generation refuses the insert; a sweep that comes later
/// waits for this commit and ends the session it sees.
pub(super) async fn insert_session(pool: &PgPool, session: &NewSession) -> Result<bool, DbError> {
    let inserted = sqlx::query(
        "WITH owner AS (
             SELECT id FROM users WHERE id = $2 AND session_generation = $7 FOR KEY SHARE)
         INSERT INTO sessions (id, user_id, refresh_jti, expires_at, user_agent, ip)
         SELECT $1, owner.id, $3, $4, $5, $6::inet FROM owner",
    )
    .bind(session.id)
    .bind(session.user_id)
    .bind(session.refresh_jti)
    .bind(session.expires_at)
    .bind(session.device.user_agent.as_deref())
    .bind(session.device.ip.map(|ip| ip.to_string()))
    .bind(session.generation)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

type SessionRow = (Uuid, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>, Option<String>, Option<String>);

/// The user's live sessions (neither revoked, by the service or by hand, nor
/// expired at `now`), newest first.
pub(super) async fn sessions_of(
    pool: &PgPool,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<SessionInfo>, DbError> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT s.id, s.created_at, s.expires_at, s.refreshed_at, s.user_agent, host(s.ip)
         FROM sessions s
         WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = s.id)
         ORDER BY s.created_at DESC, s.id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, created_at, expires_at, refreshed_at, user_agent, ip)| SessionInfo {
            id,
            created_at,
            expires_at,
            refreshed_at,
            device: Device { user_agent, ip: ip.and_then(|ip| ip.parse().ok()) },
        })
        .collect())
}

/// `column` (a timestamptz) as the unix millisecond from which a token
/// expiring then is expired, rounded up, computed by Postgres for any value
/// the column holds: `infinity` (revoked until a DBA deletes the row) is
/// `i64::MAX`, `-infinity` `i64::MIN`, and every finite timestamp, up to the
/// year 294276, fits. (Decoding such values into a chrono time panics.)
pub(super) fn until_ms(column: &str) -> String {
    format!(
        "(CASE WHEN isfinite({column}) THEN ceil(extract(epoch FROM {column}) * 1000)::bigint
               WHEN {column} > 'epoch' THEN 9223372036854775807
               ELSE -9223372036854775808 END)"
    )
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
         RETURNING r.jti, {}, r.reason, r.revoked_at = {now} AS new",
        until_ms("r.expires_at")
    )
}

/// A listed row as the statements return it (see [`list_wanted`]): id,
/// [`until_ms`], reason, whether new. The columns are NULL when a statement
/// listed nothing.
type ListedRow = (Option<Uuid>, Option<i64>, Option<String>, Option<bool>);

fn listed((jti, until_ms, reason, _): ListedRow) -> Option<Listed> {
    Some(Listed { id: jti?, until_ms: until_ms?, reason: reason? })
}

/// Refresh, in one statement: swap the session's refresh token if the
/// presented one is current (a compare-and-set: concurrent rotations queue on
/// the row lock and re-check after the winner commits, so one matches);
/// otherwise end the session and list it. A rotation lists nothing: the
/// session row's new `refresh_jti` is what refuses the used-up token.
static ROTATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH rotated AS (
             UPDATE sessions SET refresh_jti = $3, expires_at = $4, refreshed_at = $6
             WHERE id = $1 AND refresh_jti = $2 AND revoked_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN ($1, $2))
             RETURNING id),
         ended AS (
             UPDATE sessions SET revoked_at = COALESCE(revoked_at, $6), refresh_jti = NULL
             WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM rotated)
             RETURNING expires_at),
         wanted (jti, expires_at, reason) AS (
             SELECT $1::uuid, GREATEST((SELECT expires_at FROM ended), $5::timestamptz), 'refresh_reuse'
             WHERE NOT EXISTS (SELECT 1 FROM rotated)),
         listed AS ({})
         SELECT EXISTS (SELECT 1 FROM rotated), l.* FROM (SELECT 1) AS one LEFT JOIN listed AS l ON true",
        list_wanted("$7", "$6")
    )
});

/// Whether the session rotated, then a [`ListedRow`].
type RotatedRow = (bool, Option<Uuid>, Option<i64>, Option<String>, Option<bool>);

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

/// Ends one live session of `$2` (a DBA's revocation counts as ended), if
/// `$4` is null or its current refresh token, and lists it: one statement.
static END_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ended AS (
             UPDATE sessions s SET revoked_at = $3, refresh_jti = NULL
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
               AND ($4::uuid IS NULL OR s.refresh_jti = $4)
               AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = s.id)
             RETURNING s.id, s.expires_at),
         wanted (jti, expires_at, reason) AS (SELECT id, expires_at, $5::text FROM ended)
         {}",
        list_wanted("$2", "$3")
    )
});

pub(super) async fn end_session(
    pool: &PgPool,
    sid: Uuid,
    user_id: Uuid,
    refresh_jti: Option<Uuid>,
    reason: Reason,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let rows: Vec<ListedRow> = sqlx::query_as(END_SESSION.as_str())
        .bind(sid)
        .bind(user_id)
        .bind(now)
        .bind(refresh_jti)
        .bind(reason.as_str())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().filter_map(listed).collect())
}

/// Lists one token unless it or its session is listed already: one statement.
static LIST_UNLESS_LISTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH wanted (jti, expires_at, reason) AS (
             SELECT $1::uuid, $2::timestamptz, $6::text
             WHERE NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN ($1, $3)))
         {}",
        list_wanted("$4", "$5")
    )
});

/// Lists `token` unless it or its session `sid` is listed already.
pub(super) async fn list_unless_listed(
    pool: &PgPool,
    token: &Revocation,
    sid: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let rows: Vec<ListedRow> = sqlx::query_as(LIST_UNLESS_LISTED.as_str())
        .bind(token.jti)
        .bind(token.expires_at)
        .bind(sid)
        .bind(token.user_id)
        .bind(now)
        .bind(token.reason.as_str())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().filter_map(listed).collect())
}

/// The owner of a session, if the session exists.
pub(super) async fn session_owner(pool: &PgPool, sid: Uuid) -> Result<Option<Uuid>, DbError> {
    Ok(sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1")
        .bind(sid)
        .fetch_optional(pool)
        .await?)
}

/// A session sweep (logout-all, scope=others, password change) in one round
/// trip: lock the user's row, count the sweep in its `session_generation`
/// (which refuses the sessions of logins still checking the password: see
/// [`insert_session`]) and change the password if asked, then end every
/// live session of the user but the one kept, and list them all. Several
/// statements in one simple query, which Postgres runs as one transaction with
/// a snapshot per statement: the lock waits for any login whose session insert
/// (holding a key-share lock on the user row until it commits) is in flight,
/// and only the statements after the wait see that session. A login that comes
/// after waits for this commit instead, and signs its tokens only once its own
/// session row has committed. The simple protocol takes no parameters, so the
/// values are inlined as quoted literals.
fn sweep_sql(sweep: &SessionSweep, now: DateTime<Utc>, cutoff: DateTime<Utc>) -> String {
    let timestamp = |time: DateTime<Utc>| {
        format!("'{}'::timestamptz", time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };
    let user = format!("'{}'::uuid", sweep.user_id);
    let (now, cutoff) = (timestamp(now), timestamp(cutoff));
    let password = match &sweep.new_password_hash {
        Some(hash) => format!(", password_hash = {}", literal(hash)),
        None => String::new(),
    };
    let keep = sweep.keep.map(|sid| format!("AND id <> '{sid}'::uuid")).unwrap_or_default();
    format!(
        "SELECT 1 FROM users WHERE id = {user} FOR UPDATE;
         UPDATE users SET session_generation = session_generation + 1 {password} WHERE id = {user};
         WITH ended AS (
             UPDATE sessions SET revoked_at = {now}, refresh_jti = NULL
             WHERE user_id = {user} AND revoked_at IS NULL AND expires_at > {cutoff} {keep}
             RETURNING id, expires_at),
         wanted (jti, expires_at, reason) AS (SELECT id, expires_at, {} FROM ended)
         {}",
        literal(sweep.reason.as_str()),
        list_wanted(&user, &now)
    )
}

/// A string as a Postgres literal (standard_conforming_strings, the default
/// since 9.1: only the quote itself is doubled).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

pub(super) async fn sweep_sessions(
    pool: &PgPool,
    sweep: &SessionSweep,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<(u64, Vec<Listed>), DbError> {
    let rows = sqlx::raw_sql(&sweep_sql(sweep, now, cutoff)).fetch_all(pool).await?;
    let mut listed_rows = Vec::with_capacity(rows.len());
    // The lock's one-column row first, then the listed rows.
    for row in rows.iter().filter(|row| row.len() == 4) {
        listed_rows.push(ListedRow::from_row(row)?);
    }
    // A session a DBA had already revoked by hand was not live.
    let now_ms = now.timestamp_millis();
    let live = listed_rows
        .iter()
        .filter(|row| row.3 == Some(true) && row.1.is_some_and(|until| until > now_ms))
        .count();
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
