//! All SQL lives below this module. Handlers, guards and the purge speak to
//! [`Store`], one backend-neutral interface; `postgres/` and `sqlite/`
//! implement it, and the URL's scheme picks one at run time.
//!
//! A store is built one way, by [`open`]: connect, migrate, and fix the
//! service's leeway and revocation memory capacity. The server's stage
//! (`stage.rs`, which manages the store as Rocket state) and the command
//! line both call it.
//!
//! `Store`'s methods live with what they touch: accounts and sessions
//! (`accounts.rs`), revocations and the purge (`revocations.rs`), signing
//! keys and clients (`credentials.rs`), the revocation feed (`feed.rs`); the
//! revoking writes are committed in batches by one writer (`writer.rs`: group
//! commit). Each write is written once per backend, with the parameters in the order of
//! the `Store` method that calls it (user, session, token), and the shared
//! API suite runs every test on both backends, which keeps them equal.
//!
//! Every call is bounded by `connect_timeout`: when the database is gone the
//! caller gets [`DbError::Unavailable`] or [`DbError::Timeout`] within seconds
//! rather than hanging, and the HTTP layer answers 503 (fail closed).
//!
//! The revocation check is answered from memory ([`cache`]) while the
//! follower ([`follow`]) confirms that memory current, and from the database
//! whenever it cannot.

pub use cache::{CacheStatus, MAX_STALENESS};
pub use credentials::{ClientRow, Credentials, KeyTimes, NewSigningKey, Revoked, Rotated, SigningKeyRow};
pub use error::DbError;
pub use ids::{SessionId, TokenId, UserId};
pub use model::{
    Device, NewSession, Presented, PurgeCounts, Reason, Revocation, Rotation, RotationOutcome, SessionInfo,
    SessionSweep, User, USER_AGENT_MAX_CHARS,
};
pub use stage::stage;
pub use writer::{WriterStatus, MAX_BATCH as MAX_WRITE_BATCH};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cache::RevocationCache;
use chrono::{DateTime, Utc};

use crate::config::{AppConfig, DbConfig};

/// Runs `$method` of the configured backend, bounded by the store's timeout.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        $self.bounded(async {
            match &$self.backend {
                $crate::db::Backend::Postgres(pool) => $crate::db::postgres::$method(pool, $($arg),*).await,
                $crate::db::Backend::Sqlite(pool) => $crate::db::sqlite::$method(pool, $($arg),*).await,
            }
        })
    };
}

mod accounts;
mod cache;
mod credentials;
mod error;
pub mod feed;
mod follow;
mod ids;
mod model;
mod postgres;
mod revocations;
mod sqlite;
mod stage;
mod writer;

/// How long follower events are kept before the purge prunes them. A
/// follower paused longer than this finds a gap and reloads.
const EVENT_RETENTION: Duration = Duration::from_secs(600);

/// A connection pool for whichever backend the URL named, with the
/// revocation memory in front of it.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    timeout: Duration,
    cache: Arc<RevocationCache>,
    /// The configured `leeway`: what the purge and eviction allow.
    leeway: chrono::Duration,
    /// Rung at each own revocation; the waker task (`follow/`) then wakes
    /// every instance's follower once for however many there were.
    wake: Arc<rocket::tokio::sync::Notify>,
    /// The signing keys and clients (`credentials.rs`).
    credentials: Arc<credentials::Held>,
    /// The follower's ticks and the feed's batches (`feed.rs`).
    feed: Arc<feed::Feed>,
    /// The configured `access_token_ttl`: how long a revoked session
    /// matters to access tokens (`feed.rs`).
    access_token_ttl: chrono::Duration,
    /// Every revoking write goes through it: group commit (`writer.rs`).
    writer: Arc<writer::Writer>,
}

#[derive(Clone)]
enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Backend {
    async fn close(&self) {
        match self {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Opens the store: connects to the database `database` names (or the SQLite
/// file in `data_dir`), applies the migrations (idempotent), and takes the
/// service's `leeway` and `revocation_cache_capacity` from `config`.
pub async fn open(database: &DbConfig, config: &AppConfig) -> Result<Store, DbError> {
    let timeout = Duration::from_secs(database.connect_timeout.max(1));
    let url = database.url.clone().unwrap_or_else(|| crate::config::default_database_url(&config.data_dir));
    let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = postgres::connect(&url, database, timeout).await?;
        postgres::migrate(&pool).await?;
        Backend::Postgres(pool)
    } else if url.starts_with("sqlite:") {
        Backend::Sqlite(sqlite::open(&url, database, timeout).await?)
    } else {
        return Err(DbError::Config("databases.main.url must start with postgres:// or sqlite://".into()));
    };
    let leeway = chrono::Duration::seconds(config.leeway as i64);
    let cache = Arc::new(RevocationCache::with_capacity(config.revocation_cache_capacity));
    let access_token_ttl = chrono::Duration::seconds(config.access_token_ttl as i64);
    let writes = match &backend {
        Backend::Postgres(pool) => Backend::Postgres(postgres::writer_pool(pool)),
        Backend::Sqlite(pool) => Backend::Sqlite(pool.clone()),
    };
    let writer = Arc::new(writer::Writer::start(writes, timeout));
    let store = Store {
        writer,
        backend,
        timeout,
        cache,
        leeway,
        wake: Arc::default(),
        credentials: Arc::default(),
        feed: Arc::default(),
        access_token_ttl,
    };
    store.reload_credentials().await?;
    Ok(store)
}

impl Store {
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

    pub async fn ping(&self) -> Result<(), DbError> {
        dispatch!(self.ping()).await
    }

    /// What the revocation memory holds right now.
    pub fn revocation_cache(&self) -> CacheStatus {
        self.cache.status()
    }

    /// Drops from memory the entries whose tokens can no longer be accepted
    /// at `now` (expiry plus the configured leeway in the past): the purge's
    /// rule. The follower calls it every second; tests call it with a clock.
    pub fn evict_expired_revocations(&self, now: DateTime<Utc>) -> usize {
        self.cache.evict_expired(follow::until_ms(now - self.leeway))
    }

    /// Test hook: stops the follower (no polls, no confirmations) while
    /// `paused`, as a silent stall would.
    #[cfg(feature = "test-hooks")]
    pub fn pause_follower(&self, paused: bool) {
        self.cache.pause(paused);
    }

    /// Closes the pools: every later call fails with [`DbError::Unavailable`].
    pub async fn close(&self) {
        self.writer.close().await;
        self.backend.close().await;
    }
}

/// The request pool's options, for either backend, from `databases.main`.
/// No ping before each acquire (sqlx's default): it doubled the round trips
/// of every call. A connection that died is found by the call that uses it,
/// which fails (503) and drops it; the next call connects anew. (sqlx 0.8
/// still pings a connection when it goes back to the pool, off the request's
/// path, as its check against cancelled calls; that cannot be turned off.)
fn pool_options<DB: sqlx::Database>(database: &DbConfig, timeout: Duration) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .test_before_acquire(false)
        .max_connections(database.max_connections)
        .min_connections(database.min_connections.unwrap_or(0))
        .acquire_timeout(timeout)
        .idle_timeout(database.idle_timeout.map(Duration::from_secs))
}

/// Paces a purge: after a batch, waits as long as the batch took, so a purge
/// uses at most about half of the database's time however loaded it is, and
/// requests keep their share while a million rows go.
async fn pace_after(batch_started: std::time::Instant) {
    rocket::tokio::time::sleep(batch_started.elapsed().min(Duration::from_secs(1))).await;
}
