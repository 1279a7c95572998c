//! All SQL lives below this module. Handlers, guards and the purge speak to
//! [`Store`], one backend-neutral interface; `postgres.rs` and `sqlite.rs`
//! implement it, and the URL scheme picks one at run time.
//!
//! `Store` is a rocket_db_pools [`Pool`](rocket_db_pools::Pool), so the
//! `databases.main` configuration (url, max_connections, connect_timeout, ...)
//! works the Rocket way. rocket_db_pools 0.2 pins sqlx 0.7; that pin is
//! confined to this folder.
//!
//! Every call is bounded by `connect_timeout`: when the database is gone the
//! caller gets [`DbError::Unavailable`] or [`DbError::Timeout`] within seconds
//! rather than hanging, and the HTTP layer answers 503 (fail closed).
//!
//! The revocation check is answered from memory ([`cache`]) while a follower
//! keeps that copy current (Postgres LISTEN/NOTIFY, the SQLite event log), and
//! from the database whenever the follower is not sure it is.

pub use cache::CacheStatus;
use cache::RevocationCache;

mod cache;
mod postgres;
mod sqlite;

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;
use uuid::Uuid;

/// The application's database, configured under `databases.main`.
#[derive(Database)]
#[database("main")]
pub struct Db(Store);

/// A connection pool for whichever backend the URL named.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    timeout: Duration,
    cache: Arc<RevocationCache>,
}

/// A row a write put on the blocklist: its id and until when.
type Listed = (Uuid, DateTime<Utc>);

#[derive(Clone)]
enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database cannot be reached: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database did not answer in time")]
    Timeout,
    #[error("a unique constraint was violated")]
    UniqueViolation,
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                DbError::Unavailable(error)
            }
            E::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                DbError::UniqueViolation
            }
            E::Database(db) if is_unavailable_code(db.code().as_deref()) => DbError::Unavailable(error),
            _ => DbError::Other(error),
        }
    }
}

/// Database error codes that mean "not reachable right now" rather than "this
/// statement is wrong": Postgres connection exceptions (class 08), shutdown and
/// start-up (57P01-57P03), too many connections (53300); SQLite BUSY, LOCKED,
/// IOERR and CANTOPEN with all their extended codes.
fn is_unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300") {
        return true;
    }
    code.parse::<i32>().is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 10 | 14))
}

/// A registered account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A login session: every token of one login carries its id as `sid`.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub refresh_jti: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Why a row was added to `revoked_tokens`; stored in its `reason` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Logout,
    LogoutAll,
    RefreshRotated,
    RefreshReuse,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Logout => "logout",
            Reason::LogoutAll => "logout_all",
            Reason::RefreshRotated => "refresh_rotated",
            Reason::RefreshReuse => "refresh_reuse",
        }
    }
}

/// One revoked token (or session, when `jti` is a session id).
#[derive(Debug, Clone)]
pub struct Revocation {
    pub jti: Uuid,
    pub expires_at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
    pub reason: Reason,
}

/// A refresh-token rotation: `presented` is used up, `next` becomes the
/// session's one usable refresh token.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub sid: Uuid,
    pub user_id: Uuid,
    pub presented_jti: Uuid,
    pub presented_expires_at: DateTime<Utc>,
    pub next_jti: Uuid,
    pub next_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The presented token was the session's current one; it is now revoked.
    Rotated,
    /// The presented token was already used up (or its session revoked): the
    /// whole session has been revoked.
    Reused,
}

/// Rows removed by one purge run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub revoked_tokens: u64,
    pub sessions: u64,
}

impl std::fmt::Display for PurgeCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} revoked tokens and {} sessions", self.revoked_tokens, self.sessions)
    }
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
        Ok(Store { backend, timeout, cache: Arc::default() })
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

    /// Fails with [`DbError::UniqueViolation`] when the name is taken (in any case).
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

    pub async fn insert_session(&self, session: &NewSession) -> Result<(), DbError> {
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
        let listed = dispatch!(self.revoke_token_and_session(token, sid, session_fallback_expiry)).await?;
        self.remember(&listed);
        Ok(())
    }

    /// Revokes every session of the user not yet expired at `cutoff`;
    /// returns how many of them were live (not yet revoked nor expired at `now`).
    pub async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let (live, listed) = dispatch!(self.revoke_user_sessions(user_id, now, cutoff)).await?;
        self.remember(&listed);
        Ok(live)
    }

    /// Whether the token's `jti` or its session `sid` is on the blocklist:
    /// from memory while the cache is trusted, else from the database.
    pub async fn is_revoked(&self, jti: Uuid, sid: Uuid) -> Result<bool, DbError> {
        match self.cache.check(jti, sid) {
            Some(revoked) => Ok(revoked),
            None => dispatch!(self.is_revoked(jti, sid)).await,
        }
    }

    /// This instance's own revocations reach its cache at once, on commit.
    fn remember(&self, listed: &[Listed]) {
        self.cache.insert_many(listed.iter().map(|(id, until)| (*id, until.timestamp() + 1)));
    }

    /// What the revocation cache holds right now.
    pub fn revocation_cache(&self) -> CacheStatus {
        self.cache.status()
    }

    /// Deletes revoked-token and session rows that expired before `cutoff`,
    /// `batch_size` rows per statement so no statement holds locks for long.
    /// `None` means another instance is purging right now (Postgres only).
    pub async fn purge_expired(
        &self,
        cutoff: DateTime<Utc>,
        batch_size: i64,
    ) -> Result<Option<PurgeCounts>, DbError> {
        // Not bounded by the store's timeout: a run over a million rows takes
        // seconds. Each batch is one short statement, and a connection that
        // dies mid-run ends it with an error (releasing the advisory lock).
        match &self.backend {
            Backend::Postgres(pool) => postgres::purge_expired(pool, cutoff, batch_size).await,
            Backend::Sqlite(pool) => sqlite::purge_expired(pool, cutoff, batch_size).await,
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

#[rocket::async_trait]
impl rocket_db_pools::Pool for Store {
    type Connection = Store;
    type Error = DbError;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let config: rocket_db_pools::Config =
            figment.extract().map_err(|e| DbError::Config(e.to_string()))?;
        Store::connect(&config).await
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        Ok(self.clone())
    }

    async fn close(&self) {
        Store::close(self).await
    }
}

/// The database subsystem: the pool, then the migrations, at ignite; the
/// revocation cache's follower from liftoff to shutdown.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Database", |rocket| async {
        rocket.attach(Db::init()).attach(AdHoc::try_on_ignite("Database migrations", run_migrations)).attach(
            AdHoc::on_liftoff("Revocation cache", |rocket| {
                Box::pin(async move {
                    let leeway = rocket.state::<crate::config::AppConfig>().map_or(0, |c| c.leeway);
                    let Some(db) = Db::fetch(rocket) else { return };
                    let store: Store = (**db).clone();
                    let shutdown = rocket.shutdown();
                    rocket::tokio::spawn(async move {
                        rocket::tokio::select! {
                            _ = store.follow_revocations(Duration::from_secs(leeway)) => {}
                            _ = shutdown => {}
                        }
                    });
                })
            }),
        )
    })
}

/// How often the Postgres watchdog pings itself through the channel, and how
/// long a ping may take to come back before the listener is presumed dead.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_DEADLINE_MS: i64 = 3_000;

impl Store {
    /// Keeps the revocation cache current, for ever: follows, and when the
    /// follower stops (connection lost, error, watchdog), distrusts the cache,
    /// waits a little and starts again, reloading. Also evicts expired entries.
    async fn follow_revocations(&self, leeway: Duration) {
        let leeway = chrono::Duration::from_std(leeway).unwrap_or(chrono::Duration::zero());
        let cache = self.cache.clone();
        let _evictor = AbortOnDrop(rocket::tokio::spawn(async move {
            let mut ticker = rocket::tokio::time::interval(Duration::from_secs(5));
            loop {
                ticker.tick().await;
                cache.evict_expired((Utc::now() - leeway).timestamp());
            }
        }));
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            let cutoff = Utc::now() - leeway;
            let result = match &self.backend {
                Backend::Postgres(pool) => self.follow_postgres(pool, cutoff).await,
                Backend::Sqlite(pool) => sqlite::follow(pool, &self.cache, cutoff).await,
            };
            self.cache.distrust();
            match result {
                Ok(()) => log::warn!(
                    "revocation follower lost its connection; checking the database until reloaded"
                ),
                Err(e) => {
                    log::warn!("revocation follower stopped ({e}); checking the database until reloaded")
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(100);
            }
            rocket::tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// The Postgres follower, watched: a ping goes round the channel every
    /// second, and if none has come back for three seconds the connection is
    /// presumed dead (even with no error to say so) and the session ends.
    async fn follow_postgres(&self, pool: &sqlx::PgPool, cutoff: DateTime<Utc>) -> Result<(), DbError> {
        let nonce = Uuid::new_v4().to_string();
        let pinged = AtomicI64::new(i64::MAX);
        let side = postgres::side_pool(pool);
        let follower = postgres::follow(&side, &self.cache, cutoff, &nonce, &pinged);
        let watchdog = async {
            let mut ticker = rocket::tokio::time::interval(PING_EVERY);
            loop {
                ticker.tick().await;
                let last = pinged.load(Ordering::Acquire);
                if last != i64::MAX && Utc::now().timestamp_millis() - last > PING_DEADLINE_MS {
                    self.cache.distrust();
                    return Err(DbError::Timeout);
                }
                if self.cache.status().trusted {
                    // A failed ping shows up as a ping that never comes back.
                    let _ = self.bounded(postgres::send_ping(&side, &nonce)).await;
                }
            }
        };
        let result = rocket::tokio::select! {
            result = follower => result,
            result = watchdog => result,
        };
        side.close().await;
        result
    }
}

/// Paces a purge: after a batch, waits as long as the batch took, so a purge
/// uses at most about half of the database's time however loaded it is, and
/// requests keep their share while a million rows go.
async fn pace_after(batch_started: std::time::Instant) {
    rocket::tokio::time::sleep(batch_started.elapsed().min(Duration::from_secs(1))).await;
}

/// Ends a background task when its owner is dropped (shutdown included).
struct AbortOnDrop(rocket::tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_migrations(rocket: Rocket<Build>) -> rocket::fairing::Result {
    let Some(db) = Db::fetch(&rocket) else {
        // The pool fairing has already failed and said why; launch aborts.
        return Ok(rocket);
    };
    match db.migrate().await {
        Ok(()) => {
            log::info!("{} database migrated", db.backend_name());
            Ok(rocket)
        }
        Err(e) => {
            log::error!("cannot migrate the database: {e}");
            Err(rocket)
        }
    }
}
