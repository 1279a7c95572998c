//! The Postgres revoking writes: each one statement (a data-modifying CTE),
//! or one simple query for a sweep, so each is one round trip (a batch's
//! logouts and RFC 7009 revocations are one statement each: `batch.rs`).
//! Every statement returns the rows it listed, with their expiry computed by
//! Postgres ([`until_ms`]), for this instance's memory.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::{FromRow, PgConnection, Row};

use crate::db::model::{Listed, SessionSweep};
use crate::db::writer::Written;
use crate::db::{DbError, Reason, Rotation, SessionId, TokenId, UserId};

/// `column` (a timestamptz) as the unix millisecond from which a token
/// expiring then is expired, rounded up, computed by Postgres for any value
/// the column holds: `infinity` (revoked until a DBA deletes the row) is
/// `i64::MAX`, `-infinity` `i64::MIN`, and every finite timestamp, up to the
/// year 294276, fits. (Decoding such values into a chrono time panics.)
pub(in crate::db) fn until_ms(column: &str) -> String {
    format!(
        "(CASE WHEN isfinite({column}) THEN ceil(extract(epoch FROM {column}) * 1000)::bigint
               WHEN {column} > 'epoch' THEN 9223372036854775807
               ELSE -9223372036854775808 END)"
    )
}

/// The tail every revoking statement shares: list the `wanted` rows (jti,
/// expires_at, reason) for user `user` at `now` (the statement's parameter
/// names, or columns of `wanted w`), extending an existing row's expiry but
/// never shortening it; return the rows listed, their reasons, and whether
/// each is new (`new`: an expression of the listed row `r`).
pub(super) fn list_wanted(user: &str, now: &str, new: &str) -> String {
    format!(
        "INSERT INTO revoked_tokens AS r (jti, expires_at, user_id, revoked_at, reason)
         SELECT w.jti, w.expires_at, (SELECT id FROM users WHERE id = {user}), {now}, w.reason FROM wanted w
         ON CONFLICT (jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
             WHERE r.expires_at < EXCLUDED.expires_at
         RETURNING r.jti, {}, r.reason, {new} AS new",
        until_ms("r.expires_at")
    )
}

/// A listed row as the statements return it (see [`list_wanted`]): id,
/// [`until_ms`], reason, whether new. The columns are NULL when a statement
/// listed nothing.
pub(super) type ListedRow = (Option<uuid::Uuid>, Option<i64>, Option<String>, Option<bool>);

pub(super) fn listed((jti, until_ms, reason, _): ListedRow) -> Option<Listed> {
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
        list_wanted("$7", "$6", "r.revoked_at = $6")
    )
});

/// Whether the session rotated, then a [`ListedRow`].
type RotatedRow = (bool, Option<uuid::Uuid>, Option<i64>, Option<String>, Option<bool>);

pub(super) async fn rotate_refresh(conn: &mut PgConnection, rotation: &Rotation) -> Result<Written, DbError> {
    let rows: Vec<RotatedRow> = sqlx::query_as(ROTATE.as_str())
        .bind(rotation.sid)
        .bind(rotation.presented_jti)
        .bind(rotation.next_jti)
        .bind(rotation.next_expires_at)
        .bind(rotation.presented_expires_at)
        .bind(rotation.now)
        .bind(rotation.user_id)
        .fetch_all(conn)
        .await?;
    let rotated = rows.first().is_some_and(|row| row.0);
    let listed = rows.into_iter().filter_map(|(_, a, b, c, d)| listed((a, b, c, d))).collect();
    Ok(Written { listed, rotated, ..Written::default() })
}

/// Ends live session `$2` of user `$1` (a DBA's revocation counts as
/// ended), if `$3` is null or its current refresh token, and lists it: one
/// statement.
static END_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ended AS (
             UPDATE sessions s SET revoked_at = $5, refresh_jti = NULL
             WHERE s.id = $2 AND s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $5
               AND ($3::uuid IS NULL OR s.refresh_jti = $3)
               AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = s.id)
             RETURNING s.id, s.expires_at),
         wanted (jti, expires_at, reason) AS (SELECT id, expires_at, $4::text FROM ended)
         {}",
        list_wanted("$1", "$5", "r.revoked_at = $5")
    )
});

pub(super) async fn end_session(
    conn: &mut PgConnection,
    user_id: UserId,
    sid: SessionId,
    refresh_jti: Option<TokenId>,
    reason: Reason,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let rows: Vec<ListedRow> = sqlx::query_as(END_SESSION.as_str())
        .bind(user_id)
        .bind(sid)
        .bind(refresh_jti)
        .bind(reason.as_str())
        .bind(now)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().filter_map(listed).collect())
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
        list_wanted(&user, &now, &format!("r.revoked_at = {now}"))
    )
}

/// A string as a Postgres literal (standard_conforming_strings, the default
/// since 9.1: only the quote itself is doubled).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

pub(super) async fn sweep_sessions(
    conn: &mut PgConnection,
    sweep: &SessionSweep,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<Written, DbError> {
    let sql = sweep_sql(sweep, now, cutoff);
    // Several statements, so the simple protocol (no arguments).
    let rows = sqlx::Executor::fetch_all(conn, sql.as_str()).await?;
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
    Ok(Written {
        live: live as u64,
        listed: listed_rows.into_iter().filter_map(listed).collect(),
        rotated: false,
    })
}

pub(in crate::db) async fn is_revoked(
    pool: &PgPool,
    sid: SessionId,
    jti: TokenId,
    kid: Option<&str>,
) -> Result<bool, DbError> {
    let revoked = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1 OR jti = $2)
             OR EXISTS (SELECT 1 FROM signing_keys WHERE kid = $3 AND revoked_at IS NOT NULL)",
    )
    .bind(sid)
    .bind(jti)
    .bind(kid)
    .fetch_one(pool)
    .await?;
    Ok(revoked)
}
