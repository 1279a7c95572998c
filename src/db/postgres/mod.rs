//! The Postgres implementation of [`Store`](super::Store): native `uuid` and
//! `timestamptz` columns, `FOR UPDATE SKIP LOCKED` batches and an advisory lock
//! so that only one instance purges at a time. This file: connecting,
//! migrating, accounts and sessions; `revoke.rs`: the revoking writes,
//! `batch.rs`: a batch of them (group commit), `sweep.rs` and `rotate.rs`:
//! its sweeps and its refresh rotations;
//! `purge.rs`: the purge; `credentials.rs`: signing keys and clients;
//! `feed.rs`: the revocation feed's reads.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

use super::model::{Device, SessionInfo};
use super::{DbError, NewSession, SessionId, TokenId, User, UserId};
use crate::config::DbConfig;

mod batch;
pub(super) mod credentials;
pub(super) mod feed;
mod purge;
mod revoke;
mod rotate;
mod sweep;
pub(super) use batch::write_batch;
pub(super) use credentials::{add_client, credentials, remove_client};
pub(super) use purge::purge_expired;
pub(super) use revoke::{is_revoked, until_ms, UntilMs};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

type UserRow = (UserId, String, String, DateTime<Utc>, i64);

fn user_from_row((id, username, password_hash, created_at, session_generation): UserRow) -> User {
    User { id, username, password_hash, created_at, session_generation }
}

pub(super) async fn connect(url: &str, database: &DbConfig, timeout: Duration) -> Result<PgPool, DbError> {
    let options =
        PgConnectOptions::from_str(url)?.application_name("jwt-blocklist").disable_statement_logging();
    Ok(super::pool_options(database, timeout).connect_with(options).await?)
}

/// The writer's connection (group commit, `db/writer.rs`): one, since the
/// writer runs one batch at a time, under the request pool's name (so the
/// triggers leave the followers' wake-up to the service, as for any of its
/// writes). Its statements run generic plans: a batch's statements take
/// arrays, whose custom plans Postgres kept preferring and so planned each
/// execution anew, about 0.14 ms of a lone logout's 0.5 ms (measured with
/// and without, pinned, 1M rows). Their generic plans are the custom ones:
/// each row of a batch is looked up by primary key.
pub(super) fn writer_pool(requests: &PgPool) -> PgPool {
    side_pool(requests, None, &[("plan_cache_mode", "force_generic_plan")], 1, false)
}

/// A pool of `size` connections apart from the request pool (the writer's,
/// the follower's, the waker's), so that they never queue behind requests:
/// the request pool's connection options and acquire timeout, connections
/// kept for good, Postgres `settings` of its own, and `name` as
/// `application_name` so operators and tests can tell them apart (`None`:
/// the request pool's, which the triggers read as the service's own
/// writes). `ping`: test a connection before each use. The writer does
/// not (a round trip per commit, as the request pool per request); the
/// follower does, as a poll abandoned at its timeout leaves its connection
/// mid-answer, and the ping is what replaces it.
pub(in crate::db) fn side_pool(
    requests: &PgPool,
    name: Option<&str>,
    settings: &[(&str, &str)],
    size: u32,
    ping: bool,
) -> PgPool {
    let mut options = (*requests.connect_options()).clone().options(settings.iter().copied());
    if let Some(name) = name {
        options = options.application_name(name);
    }
    PgPoolOptions::new()
        .max_connections(size)
        .test_before_acquire(ping)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(requests.options().get_acquire_timeout())
        .connect_lazy_with(options)
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

pub(super) async fn user_by_id(pool: &PgPool, user_id: UserId) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at, session_generation FROM users WHERE id = $1",
    )
    .bind(user_id)
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

type SessionRow =
    (SessionId, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>, Option<String>, Option<String>);

/// The user's live sessions (neither revoked, by the service or by hand, nor
/// expired at `now`), newest first.
pub(super) async fn sessions_of(
    pool: &PgPool,
    user_id: UserId,
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

pub(super) async fn current_refresh(
    pool: &PgPool,
    sid: SessionId,
    jti: TokenId,
) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT u.username FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = $1 AND s.refresh_jti = $2 AND s.revoked_at IS NULL",
    )
    .bind(sid)
    .bind(jti)
    .fetch_optional(pool)
    .await?)
}

/// The owner of a session, if the session exists.
pub(super) async fn session_owner(pool: &PgPool, sid: SessionId) -> Result<Option<UserId>, DbError> {
    Ok(sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1")
        .bind(sid)
        .fetch_optional(pool)
        .await?)
}
