//! All SQL lives below this module. Handlers, guards and the purge speak to
//! [`Store`], one backend-neutral interface; `postgres.rs` and `sqlite.rs`
//! implement it, and the URL scheme picks one at run time.
//!
//! `Store` is a rocket_db_pools [`Pool`](rocket_db_pools::Pool) implemented by
//! hand (`stage.rs`), so the `databases.main` configuration (url,
//! max_connections, connect_timeout, ...) works the Rocket way while the sqlx
//! version stays ours to choose.
//!
//! Every call is bounded by `connect_timeout`: when the database is gone the
//! caller gets [`DbError::Unavailable`] or [`DbError::Timeout`] within seconds
//! rather than hanging, and the HTTP layer answers 503 (fail closed).
//!
//! The revocation check is answered from memory ([`cache`]) while the
//! follower ([`follow`]) confirms that memory current, and from the database
//! whenever it cannot.

pub use cache::{CacheStatus, DEFAULT_CAPACITY as DEFAULT_CACHE_CAPACITY, MAX_STALENESS};
pub use error::DbError;
pub use model::{
    Device, NewSession, Presented, PurgeCounts, Reason, Revocation, Rotation, RotationOutcome, SessionInfo,
    SessionSweep, User, USER_AGENT_MAX_CHARS,
};
pub use stage::{stage, Db};

mod cache;
mod error;
mod follow;
mod model;
mod postgres;
mod sqlite;
mod stage;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache::RevocationCache;
use chrono::{DateTime, Utc};
use model::Listed;
use uuid::Uuid;

/// How long follower events are kept before the purge prunes them. A
/// follower paused longer than this finds a gap and reloads.
const EVENT_RETENTION: Duration = Duration::from_secs(600);

/// A connection pool for whichever backend the URL named.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    timeout: Duration,
    cache: Arc<RevocationCache>,
    /// The configured `leeway`, seconds: what the purge and eviction allow.
    leeway: Arc<AtomicU64>,
    /// Rung at each own revocation; the waker task (`follow/`) then wakes
    /// every instance's follower once for however many there were.
    wake: Arc<rocket::tokio::sync::Notify>,
}

#[derive(Clone)]
enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Runs `$method` of the configured backend, bounded by the store's timeout.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        $self.bounded(async {
            match &$self.backend {
                Backend::Postgres(pool) => postgres::$method(pool, $($arg),*).await,
                Backend::Sqlite(pool) => sqlite::$method(pool, $($arg),*).await,
            }
        })
    };
}

impl Store {
    /// Connects to the database the configured URL names.
    pub async fn connect(config: &rocket_db_pools::Config) -> Result<Self, DbError> {
        let timeout = Duration::from_secs(config.connect_timeout.max(1));
        let url = config.url.as_str();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::connect(config, timeout).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(config, timeout).await?)
        } else {
            return Err(DbError::Config(
                "databases.main.url must start with postgres:// or sqlite://".into(),
            ));
        };
        Ok(Store { backend, timeout, cache: Arc::default(), leeway: Arc::default(), wake: Arc::default() })
    }

    /// Applies the service's `leeway` and `revocation_cache_capacity`.
    pub fn configure(&self, leeway: Duration, cache_capacity: usize) {
        self.leeway.store(leeway.as_secs(), Ordering::Relaxed);
        self.cache.set_capacity(cache_capacity);
    }

    fn leeway(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.leeway.load(Ordering::Relaxed) as i64)
    }

    /// "postgres" or "sqlite", for logs.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    async fn bounded<T>(&self, work: impl Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
        rocket::tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(DbError::Timeout))
    }

    /// Applies the backend's migrations; idempotent.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::migrate(pool).await,
            Backend::Sqlite(pool) => sqlite::migrate(pool).await,
        }
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        dispatch!(self.ping()).await
    }

    /// Fails with a unique violation ([`DbError::is_username_taken`]) when
    /// the name is taken (in any case).
    pub async fn insert_user(&self, user: &User) -> Result<(), DbError> {
        dispatch!(self.insert_user(user)).await
    }

    /// Case-insensitive lookup.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, DbError> {
        dispatch!(self.user_by_username(username)).await
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, DbError> {
        dispatch!(self.user_by_id(id)).await
    }

    /// Commits the session row, unless a sweep of the user's sessions
    /// (logout-all, a password change, ...) committed after the login read
    /// the user (`session.generation`): then `false`, and no session. Sign
    /// its tokens only after this returns `true`: that is what lets a sweep
    /// reject every token of a login that was in flight when it committed,
    /// hashing or inserting.
    pub async fn insert_session(&self, session: &NewSession) -> Result<bool, DbError> {
        dispatch!(self.insert_session(session)).await
    }

    /// Atomically swaps the session's refresh token; of concurrent rotations
    /// with one token exactly one sees `Rotated`.
    pub async fn rotate_refresh(&self, rotation: &Rotation) -> Result<RotationOutcome, DbError> {
        let (outcome, listed) = dispatch!(self.rotate_refresh(rotation)).await?;
        self.remember(&listed);
        Ok(outcome)
    }

    /// Revokes one token and its whole session in one transaction. The
    /// session row is kept until the session's newest refresh token would
    /// expire (`session_fallback_expiry` if the session row is gone).
    pub async fn revoke_token_and_session(
        &self,
        token: &Revocation,
        sid: Uuid,
        session_fallback_expiry: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let now = Utc::now();
        let listed =
            dispatch!(self.revoke_token_and_session(token, sid, session_fallback_expiry, now)).await?;
        self.remember(&listed);
        Ok(())
    }

    /// Ends every session of the user but `sweep.keep` that can still be
    /// used (not expired before now minus the configured leeway), including
    /// one whose login is committing concurrently, and changes the password if
    /// the sweep says so, in one transaction; returns how many of them were
    /// live (not yet revoked nor expired now).
    pub async fn sweep_sessions(&self, sweep: &SessionSweep) -> Result<u64, DbError> {
        let now = Utc::now();
        let cutoff = now - self.leeway();
        let (live, listed) = dispatch!(self.sweep_sessions(sweep, now, cutoff)).await?;
        self.remember(&listed);
        Ok(live)
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, DbError> {
        dispatch!(self.sessions_of(user_id, Utc::now())).await
    }

    /// Ends one live session of the user's; false if there is none such (an
    /// unknown id, another user's session, or one already revoked or expired).
    pub async fn revoke_session(&self, user_id: Uuid, sid: Uuid, reason: Reason) -> Result<bool, DbError> {
        self.end_session(user_id, sid, None, reason).await
    }

    /// Ends the session if it is the user's and live (and, given
    /// `refresh_jti`, if that is its current refresh token).
    async fn end_session(
        &self,
        user_id: Uuid,
        sid: Uuid,
        refresh_jti: Option<Uuid>,
        reason: Reason,
    ) -> Result<bool, DbError> {
        let now = Utc::now();
        let listed = dispatch!(self.end_session(sid, user_id, refresh_jti, reason, now)).await?;
        self.remember(&listed);
        Ok(!listed.is_empty())
    }

    /// The owner of a session, if the session exists (the command line).
    pub async fn session_owner(&self, sid: Uuid) -> Result<Option<Uuid>, DbError> {
        dispatch!(self.session_owner(sid)).await
    }

    /// Revokes one token unless it (or its session `sid`) is revoked
    /// already; returns whether it was listed now.
    pub async fn revoke_token(&self, token: &Revocation, sid: Uuid) -> Result<bool, DbError> {
        let now = Utc::now();
        let listed = dispatch!(self.list_unless_listed(token, sid, now)).await?;
        self.remember(&listed);
        Ok(!listed.is_empty())
    }

    /// RFC 7009: revokes a presented access token's `jti`, or a presented
    /// refresh token's session if it is the session's current one; a token
    /// already revoked changes nothing. Returns whether anything was revoked.
    pub async fn revoke_presented(&self, presented: &Presented) -> Result<bool, DbError> {
        match *presented {
            Presented::Access { jti, sid, user_id, expires_at } => {
                let reason = Reason::ClientRevoked;
                self.revoke_token(&Revocation { jti, expires_at, user_id: Some(user_id), reason }, sid).await
            }
            Presented::Refresh { jti, sid, user_id } => {
                self.end_session(user_id, sid, Some(jti), Reason::ClientRevoked).await
            }
        }
    }

    /// Whether the token's `jti` or its session `sid` is on the blocklist:
    /// from memory while it is confirmed current, else from the database.
    pub async fn is_revoked(&self, jti: Uuid, sid: Uuid) -> Result<bool, DbError> {
        use crate::metrics::{revocation_check, CheckOutcome};
        let (revoked, answered_by) = match self.cache.check(jti, sid) {
            Some(revoked) => (revoked, CheckOutcome::Memory),
            None => (dispatch!(self.is_revoked(jti, sid)).await?, CheckOutcome::Database),
        };
        revocation_check(if revoked { CheckOutcome::Revoked } else { answered_by });
        Ok(revoked)
    }

    /// This instance's own revocations are in force here before it answers,
    /// and the other instances are woken to read them. A used-up refresh
    /// token alone (every refresh) wakes nobody: no memory keeps it.
    fn remember(&self, listed: &[Listed]) {
        let mut kept = false;
        for row in listed {
            if let Some(until) = follow::wanted(row.until_ms, &row.reason) {
                self.cache.insert(row.id, until);
                kept = true;
            }
        }
        if kept {
            self.wake.notify_one();
        }
    }

    /// What the revocation memory holds right now.
    pub fn revocation_cache(&self) -> CacheStatus {
        self.cache.status()
    }

    /// Drops from memory the entries whose tokens can no longer be accepted
    /// at `now` (expiry plus the configured leeway in the past): the purge's
    /// rule. The follower calls it every second; tests call it with a clock.
    pub fn evict_expired_revocations(&self, now: DateTime<Utc>) -> usize {
        self.cache.evict_expired(follow::until_ms(now - self.leeway()))
    }

    /// Test hook: stops the follower (no polls, no confirmations) while
    /// `paused`, as a silent stall would.
    #[doc(hidden)]
    pub fn pause_follower(&self, paused: bool) {
        self.cache.pause(paused);
    }

    /// Deletes revoked-token and session rows whose tokens can no longer be
    /// accepted (expiry plus the configured leeway in the past), and follower
    /// events past their retention, `batch_size` rows per statement so no
    /// statement holds locks for long. `None` means another instance is
    /// purging right now (Postgres only).
    ///
    /// Whose clock says "in the past": on Postgres the database's, the one
    /// its triggers use, so an instance whose clock runs ahead can never
    /// delete (and so un-revoke, on every instance) the row of a token that
    /// the others still accept. On SQLite, which runs on this host,
    /// `host_now` (this host's clock).
    pub async fn purge_expired(
        &self,
        host_now: DateTime<Utc>,
        batch_size: i64,
    ) -> Result<Option<PurgeCounts>, DbError> {
        let leeway = self.leeway();
        // Not bounded by the store's timeout: a run over a million rows takes
        // seconds. Each batch is one short statement, and a connection that
        // dies mid-run ends it with an error (releasing the advisory lock).
        match &self.backend {
            Backend::Postgres(pool) => postgres::purge_expired(pool, leeway, batch_size).await,
            Backend::Sqlite(pool) => sqlite::purge_expired(pool, host_now - leeway, batch_size).await,
        }
    }

    /// Closes the pool: every later call fails with [`DbError::Unavailable`].
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }
}

/// The request pool's options, for either backend, from `databases.main`.
/// No ping before each acquire (sqlx's default): it doubled the round trips
/// of every call. A connection that died is found by the call that uses it,
/// which fails (503) and drops it; the next call connects anew. (sqlx 0.8
/// still pings a connection when it goes back to the pool, off the request's
/// path, as its check against cancelled calls; that cannot be turned off.)
fn pool_options<DB: sqlx::Database>(
    config: &rocket_db_pools::Config,
    timeout: Duration,
) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .test_before_acquire(false)
        .max_connections(config.max_connections as u32)
        .min_connections(config.min_connections.unwrap_or(0))
        .acquire_timeout(timeout)
        .idle_timeout(config.idle_timeout.map(Duration::from_secs))
}

/// Paces a purge: after a batch, waits as long as the batch took, so a purge
/// uses at most about half of the database's time however loaded it is, and
/// requests keep their share while a million rows go.
async fn pace_after(batch_started: std::time::Instant) {
    rocket::tokio::time::sleep(batch_started.elapsed().min(Duration::from_secs(1))).await;
}
