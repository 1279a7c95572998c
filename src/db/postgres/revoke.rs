//! The Postgres revoking writes: each one statement (a data-modifying CTE),
//! or one simple query for a sweep, so each is one round trip (a batch's
//! logouts and RFC 7009 revocations are one statement each: `batch.rs`).
//! Every statement returns the rows it listed, with their expiry computed by
//! Postgres ([`until_ms`]), for this instance's memory.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgHasArrayType, PgPool, PgTypeInfo, PgValueRef, Postgres};
use sqlx::PgConnection;

use crate::db::model::Listed;
use crate::db::{DbError, Reason, SessionId, TokenId, UserId};

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

/// A `timestamptz` column read as [`until_ms`] computes it, by the decoder
/// instead of by Postgres: the same value for every timestamp the column can
/// hold (infinities included), without `extract`'s numeric arithmetic,
/// which took half the time of a follower's poll of a million events.
/// Results come in binary (sqlx's extended protocol): microseconds since
/// 2000-01-01 UTC, with `i64::MAX` and `i64::MIN` for the infinities.
pub(in crate::db) struct UntilMs(pub i64);

/// 2000-01-01T00:00:00Z, Postgres' epoch, in unix milliseconds.
const POSTGRES_EPOCH_MS: i64 = 946_684_800_000;

impl sqlx::Type<Postgres> for UntilMs {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}

impl PgHasArrayType for UntilMs {
    fn array_type_info() -> PgTypeInfo {
        <DateTime<Utc> as PgHasArrayType>::array_type_info()
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for UntilMs {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as sqlx::Decode<Postgres>>::decode(value)?;
        Ok(UntilMs(match micros {
            i64::MAX | i64::MIN => micros,
            // Rounded up, as `until_ms`; no overflow (the latest timestamp
            // Postgres holds is in the year 294276).
            _ => micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0) + POSTGRES_EPOCH_MS,
        }))
    }
}

/// The tail every revoking statement shares: list the `wanted` rows (jti,
/// expires_at, reason) for user `user` at `now` (the statement's parameter
/// names, or columns of `wanted w`), extending an existing row's expiry but
/// never shortening it; return the rows listed, their reasons, and whether
/// each is new (`new`: an expression of the listed row `r`).
pub(super) fn list_wanted(user: &str, now: &str, new: &str) -> String {
    listing(
        user,
        now,
        new,
        "ON CONFLICT (jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE r.expires_at < EXCLUDED.expires_at",
    )
}

/// As [`list_wanted`], for rows that are new but for a race: a row listed
/// already fails the statement (a unique violation) instead of being
/// extended. That saves the index probe `ON CONFLICT` makes for every row
/// before inserting it, about a tenth of a batch of logouts' cost in
/// Postgres. The writer runs the writes of a failed batch again alone,
/// where they extend (`batch.rs`).
pub(super) fn list_new(user: &str, now: &str) -> String {
    listing(user, now, "true", "")
}

fn listing(user: &str, now: &str, new: &str, on_conflict: &str) -> String {
    format!(
        "INSERT INTO revoked_tokens AS r (jti, expires_at, user_id, revoked_at, reason)
         SELECT w.jti, w.expires_at, (SELECT id FROM users WHERE id = {user}), {now}, w.reason FROM wanted w
         {on_conflict}
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
