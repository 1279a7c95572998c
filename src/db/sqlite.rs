//! The SQLite implementation of [`Store`](super::Store): the embedded default.
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

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection};
use uuid::Uuid;

use super::model::Listed;
use super::model::{Device, SessionInfo, SessionSweep};
use super::{DbError, NewSession, Reason, Revocation, Rotation, RotationOutcome, User};

mod purge;
pub(super) use purge::purge_expired;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

type UserRow = (String, String, String, String, i64);

pub(super) fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_time(value: &str) -> Result<DateTime<Utc>, DbError> {
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
pub(super) fn until_ms(column: &str) -> String {
    format!("CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)")
}

pub(super) fn parse_uuid(value: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(value).map_err(|_| DbError::decode("uuid", value))
}

fn user_from_row(
    (id, username, password_hash, created_at, session_generation): UserRow,
) -> Result<User, DbError> {
    let (id, created_at) = (parse_uuid(&id)?, parse_time(&created_at)?);
    Ok(User { id, username, password_hash, created_at, session_generation })
}

pub(super) async fn connect(
    config: &rocket_db_pools::Config,
    timeout: Duration,
) -> Result<SqlitePool, DbError> {
    let options = SqliteConnectOptions::from_str(&config.url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(timeout)
        .disable_statement_logging();
    let file = options.get_filename();
    if let Some(folder) = file.parent() {
        if !folder.as_os_str().is_empty() {
            std::fs::create_dir_all(folder)
                .map_err(|e| DbError::Config(format!("cannot create {}: {e}", folder.display())))?;
        }
    }
    let in_memory = config.url.contains(":memory:") || config.url.contains("mode=memory");
    if !in_memory {
        create_private(file)?;
    }
    Ok(super::pool_options(config, timeout).connect_with(options).await?)
}

/// Creates the database file, if it is not there yet, readable and writable
/// by this user alone (0600, like the secret): it holds password hashes. The
/// WAL and shared-memory files SQLite makes beside it take its mode.
fn create_private(file: &std::path::Path) -> Result<(), DbError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DbError::Config(format!("cannot create {}: {e}", file.display()))),
    }
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
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at, session_generation FROM users WHERE username = ?1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    row.map(user_from_row).transpose()
}

pub(super) async fn user_by_id(pool: &SqlitePool, id: Uuid) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, password_hash, created_at, session_generation FROM users WHERE id = ?1",
    )
    .bind(id.to_string())
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
    user_id: Uuid,
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
                id: parse_uuid(&id)?,
                created_at: parse_time(&created_at)?,
                expires_at: parse_time(&expires_at)?,
                refreshed_at: refreshed_at.as_deref().map(parse_time).transpose()?,
                device: Device { user_agent, ip: ip.and_then(|ip| ip.parse().ok()) },
            })
        })
        .collect()
}

pub(super) async fn rotate_refresh(
    pool: &SqlitePool,
    rotation: &Rotation,
) -> Result<(RotationOutcome, Vec<Listed>), DbError> {
    let mut tx = pool.begin().await?;
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
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    // A rotation lists nothing: the session's new refresh_jti refuses the
    // used-up token. Anything else ends the session.
    if rotated {
        tx.commit().await?;
        return Ok((RotationOutcome::Rotated, Vec::new()));
    }
    let ended = mark_session_revoked(&mut tx, rotation.sid, rotation.now).await?;
    let wanted = (rotation.sid, later(ended, rotation.presented_expires_at), Reason::RefreshReuse);
    let listed = list_wanted(&mut tx, &[wanted], Some(rotation.user_id), rotation.now).await?;
    tx.commit().await?;
    Ok((RotationOutcome::Reused, listed.into_iter().map(|(row, _)| row).collect()))
}

pub(super) async fn revoke_token_and_session(
    pool: &SqlitePool,
    token: &Revocation,
    sid: Uuid,
    session_fallback_expiry: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let mut tx = pool.begin().await?;
    let ended = mark_session_revoked(&mut tx, sid, now).await?;
    let wanted = [
        (token.jti, token.expires_at, token.reason),
        (sid, later(ended, session_fallback_expiry), token.reason),
    ];
    let listed = list_wanted(&mut tx, &wanted, token.user_id, now).await?;
    tx.commit().await?;
    Ok(listed.into_iter().map(|(row, _)| row).collect())
}

/// A session sweep (logout-all, scope=others, password change) in one
/// transaction. One writer at a time: a login's session insert commits before
/// this transaction's first write or waits until it ends.
pub(super) async fn sweep_sessions(
    pool: &SqlitePool,
    sweep: &SessionSweep,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<(u64, Vec<Listed>), DbError> {
    let user = sweep.user_id.to_string();
    let mut tx = pool.begin().await?;
    // Counting the sweep refuses the sessions of logins still checking the
    // password (see insert_session).
    sqlx::query(
        "UPDATE users SET session_generation = session_generation + 1,
                          password_hash = coalesce(?2, password_hash)
         WHERE id = ?1",
    )
    .bind(&user)
    .bind(sweep.new_password_hash.as_deref())
    .execute(&mut *tx)
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
    .fetch_all(&mut *tx)
    .await?;
    let mut wanted = Vec::with_capacity(ended.len());
    for (sid, expires_at) in ended {
        wanted.push((parse_uuid(&sid)?, parse_time(&expires_at)?, sweep.reason));
    }
    let listed = list_wanted(&mut tx, &wanted, Some(sweep.user_id), now).await?;
    tx.commit().await?;
    // A session a DBA had already revoked by hand was not live.
    let now_ms = now.timestamp_millis();
    let live = listed.iter().filter(|(row, new)| *new && row.until_ms > now_ms).count();
    Ok((live as u64, listed.into_iter().map(|(row, _)| row).collect()))
}

/// Ends one live session of the user (a DBA's revocation counts as ended),
/// if `refresh_jti` is `None` or its current refresh token, and lists it.
pub(super) async fn end_session(
    pool: &SqlitePool,
    sid: Uuid,
    user_id: Uuid,
    refresh_jti: Option<Uuid>,
    reason: Reason,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    let mut tx = pool.begin().await?;
    let ended: Option<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ?3, refresh_jti = NULL
         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL
           AND julianday(expires_at) > julianday(?3)
           AND (?4 IS NULL OR refresh_jti = ?4)
           AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = sessions.id)
         RETURNING strftime('%Y-%m-%dT%H:%M:%fZ', expires_at)",
    )
    .bind(sid.to_string())
    .bind(user_id.to_string())
    .bind(text(now))
    .bind(refresh_jti.map(|jti| jti.to_string()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(expires_at) = ended else {
        return Ok(Vec::new());
    };
    let wanted = [(sid, parse_time(&expires_at)?, reason)];
    let listed = list_wanted(&mut tx, &wanted, Some(user_id), now).await?;
    tx.commit().await?;
    Ok(listed.into_iter().map(|(row, _)| row).collect())
}

/// Lists `token` unless it or its session `sid` is listed already.
pub(super) async fn list_unless_listed(
    pool: &SqlitePool,
    token: &Revocation,
    sid: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, DbError> {
    // The write lock first, so the check and the insert see one state.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if is_listed(&mut tx, token.jti, sid).await? {
        return Ok(Vec::new());
    }
    let listed =
        list_wanted(&mut tx, &[(token.jti, token.expires_at, token.reason)], token.user_id, now).await?;
    tx.commit().await?;
    Ok(listed.into_iter().map(|(row, _)| row).collect())
}

/// The owner of a session, if the session exists.
pub(super) async fn session_owner(pool: &SqlitePool, sid: Uuid) -> Result<Option<Uuid>, DbError> {
    let owner: Option<String> = sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = ?1")
        .bind(sid.to_string())
        .fetch_optional(pool)
        .await?;
    owner.as_deref().map(parse_uuid).transpose()
}

/// Marks the session revoked; returns when its newest refresh token expires
/// (`None` if its row is gone). Session expiries are read back through
/// `strftime` here and in the sweeps, so whatever form the column holds
/// (any the CHECK accepts), a revocation never fails to parse it.
async fn mark_session_revoked(
    conn: &mut SqliteConnection,
    sid: Uuid,
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
    user: Option<Uuid>,
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

pub(super) async fn is_revoked(pool: &SqlitePool, jti: Uuid, sid: Uuid) -> Result<bool, DbError> {
    is_listed(&mut *pool.acquire().await?, jti, sid).await
}

async fn is_listed(conn: &mut SqliteConnection, jti: Uuid, sid: Uuid) -> Result<bool, DbError> {
    let revoked = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?1, ?2))")
        .bind(jti.to_string())
        .bind(sid.to_string())
        .fetch_one(conn)
        .await?;
    Ok(revoked)
}
