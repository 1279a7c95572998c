//! The signing keys and the resource-server clients, as every instance holds
//! them: the rows of `signing_keys` and `clients`, read at start and again
//! whenever `credentials_version` moves (the follower watches it with every
//! poll), so a rotation, a revoked key or a removed client is in force on
//! every instance within the follower's bound.
//!
//! The keys' lifecycle is decided here, once for both backends, inside a
//! transaction that holds the keys' lock (Postgres: an advisory lock;
//! SQLite: its one writer): instances started together make exactly one
//! first key between them, and one rotation at a time. The sealing and
//! unsealing of private keys is the caller's (`auth/keys/`): this module
//! moves opaque bytes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};

use super::{Backend, DbError, Store};
pub use crate::metrics::KeyState;

/// A row of `signing_keys` (read as is on Postgres; SQLite's text times
/// are parsed by its module).
#[derive(Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    /// `ES256` or `EdDSA`.
    pub alg: String,
    /// The public JWK, JSON text.
    pub public_jwk: String,
    /// The private key, sealed by the caller.
    pub sealed_private: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub published_until: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("signs_from", &self.signs_from)
            .field("retired_at", &self.retired_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl SigningKeyRow {
    /// Signing at `now`: begun, not retired, not revoked.
    pub fn signs_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.signs_from <= now && self.retired_at.is_none_or(|at| at > now)
    }

    /// Published, not signing yet, at `now`.
    pub fn is_next_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.signs_from > now
    }

    /// Its state at `now`, as `keys list` and the metrics name it.
    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        match () {
            _ if self.revoked_at.is_some() => KeyState::Revoked,
            _ if self.is_next_at(now) => KeyState::Next,
            _ if self.signs_at(now) => KeyState::Active,
            _ => KeyState::Retired,
        }
    }
}

/// A row of `clients`.
#[derive(Debug, Clone)]
pub struct ClientRow {
    pub name: String,
    /// The caller's keyed hash of the secret.
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// Every signing key and client, as of one read of `credentials_version`.
#[derive(Debug, Default)]
pub struct Credentials {
    pub version: i64,
    pub keys: Vec<SigningKeyRow>,
    pub clients: Vec<ClientRow>,
}

/// The instance's copy of [`Credentials`], and its version for a cheap
/// look on every token.
#[derive(Default)]
pub(super) struct Held {
    rows: RwLock<Arc<Credentials>>,
    version: AtomicI64,
}

/// A key to insert: made and sealed by the caller.
#[derive(Clone)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub sealed_private: Vec<u8>,
}

/// The lifetimes a key's dates follow.
#[derive(Debug, Clone, Copy)]
pub struct KeyTimes {
    pub now: DateTime<Utc>,
    /// How long a new key is published before it signs: `jwks_max_age +
    /// leeway`.
    pub publish_lead: Duration,
    /// How long a retired key stays published: `access_token_ttl + leeway`.
    pub access_lifetime: Duration,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// The new key, and when it begins to sign.
    Next { kid: String, signs_from: DateTime<Utc> },
    /// A rotation was already pending: this key signs from then.
    AlreadyPending { kid: String, signs_from: DateTime<Utc> },
}

/// What revoking a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// It was the signing key: `replacement` signs from now.
    Active {
        replacement: String,
    },
    /// It was published, next or retired; the signing key is unchanged.
    Published,
    NotFound,
}

/// The primitive steps, per backend, inside the keys' lock.
pub(super) enum KeysTx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

macro_rules! keys_tx {
    ($tx:ident . $method:ident ( $($arg:expr),* )) => {
        match $tx {
            KeysTx::Postgres(tx) => super::postgres::credentials::$method(tx, $($arg),*).await,
            KeysTx::Sqlite(tx) => super::sqlite::credentials::$method(tx, $($arg),*).await,
        }
    };
}

impl KeysTx {
    async fn keys(&mut self) -> Result<Vec<SigningKeyRow>, DbError> {
        keys_tx!(self.keys())
    }

    async fn insert(&mut self, key: &NewSigningKey, signs_from: DateTime<Utc>) -> Result<(), DbError> {
        keys_tx!(self.insert_key(key, signs_from))
    }

    /// Sets (or, with `None`, clears) when `kid` retires and leaves the JWKS.
    async fn retire(&mut self, kid: &str, at: Option<(DateTime<Utc>, DateTime<Utc>)>) -> Result<(), DbError> {
        keys_tx!(self.retire_key(kid, at))
    }

    async fn revoke(&mut self, kid: &str, at: DateTime<Utc>) -> Result<(), DbError> {
        keys_tx!(self.revoke_key(kid, at))
    }

    async fn commit(self) -> Result<(), DbError> {
        match self {
            KeysTx::Postgres(tx) => tx.commit().await?,
            KeysTx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

impl Store {
    /// The signing keys and clients as this instance holds them now.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials.rows.read().map(|held| held.clone()).unwrap_or_default()
    }

    /// The `credentials_version` of [`credentials`](Self::credentials): a
    /// holder of something built from them rebuilds when it moves.
    pub fn credentials_version(&self) -> i64 {
        self.credentials.version.load(Ordering::Acquire)
    }

    /// Reads both tables again (at start, and whenever the follower sees
    /// `credentials_version` move).
    pub async fn reload_credentials(&self) -> Result<(), DbError> {
        let fresh = dispatch!(self.credentials()).await?;
        let version = fresh.version;
        if let Ok(mut held) = self.credentials.rows.write() {
            *held = Arc::new(fresh);
            self.credentials.version.store(version, Ordering::Release);
        }
        Ok(())
    }

    async fn keys_locked(&self) -> Result<KeysTx, DbError> {
        Ok(match &self.backend {
            Backend::Postgres(pool) => KeysTx::Postgres(super::postgres::credentials::lock(pool).await?),
            Backend::Sqlite(pool) => KeysTx::Sqlite(super::sqlite::credentials::lock(pool).await?),
        })
    }

    /// Inserts `candidate` to sign from now, unless a key of its algorithm
    /// signs now or will: of instances started together, exactly one key
    /// is made. Returns whether it was.
    pub async fn add_first_signing_key(
        &self,
        candidate: &NewSigningKey,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let mut tx = self.keys_locked().await?;
        let keys = tx.keys().await?;
        let usable =
            keys.iter().any(|key| key.alg == candidate.alg && (key.signs_at(now) || key.is_next_at(now)));
        if !usable {
            tx.insert(candidate, now).await?;
        }
        tx.commit().await?;
        self.reload_credentials().await?;
        Ok(!usable)
    }

    /// Publishes `candidate` now; it signs `publish_lead` later, when the key
    /// signing now retires (and leaves the JWKS once its access tokens have
    /// expired). One rotation at a time: if a key is already waiting to
    /// sign, nothing changes.
    pub async fn rotate_signing_key(
        &self,
        candidate: &NewSigningKey,
        times: KeyTimes,
    ) -> Result<Rotated, DbError> {
        let mut tx = self.keys_locked().await?;
        let keys: Vec<SigningKeyRow> =
            tx.keys().await?.into_iter().filter(|key| key.alg == candidate.alg).collect();
        if let Some(next) = keys.iter().find(|key| key.is_next_at(times.now)) {
            return Ok(Rotated::AlreadyPending { kid: next.kid.clone(), signs_from: next.signs_from });
        }
        let current = keys.iter().find(|key| key.signs_at(times.now));
        let signs_from = if current.is_some() { times.now + times.publish_lead } else { times.now };
        tx.insert(candidate, signs_from).await?;
        if let Some(current) = current {
            tx.retire(&current.kid, Some((signs_from, signs_from + times.access_lifetime))).await?;
        }
        tx.commit().await?;
        self.reload_credentials().await?;
        Ok(Rotated::Next { kid: candidate.kid.clone(), signs_from })
    }

    /// Withdraws `kid`: its tokens are refused from now on. If it was the
    /// signing key, `replacement` signs from now (until a pending rotation,
    /// if any, takes over); if it was the next one, the signing key stays.
    pub async fn revoke_signing_key(
        &self,
        kid: &str,
        replacement: &NewSigningKey,
        times: KeyTimes,
    ) -> Result<Revoked, DbError> {
        let mut tx = self.keys_locked().await?;
        let keys = tx.keys().await?;
        let Some(target) = keys.iter().find(|key| key.kid == kid && key.revoked_at.is_none()) else {
            return Ok(Revoked::NotFound);
        };
        let now = times.now;
        let same_alg = |key: &&SigningKeyRow| key.alg == target.alg && key.kid != target.kid;
        let pending = keys.iter().filter(same_alg).find(|key| key.is_next_at(now));
        tx.revoke(kid, now).await?;
        let revoked = if target.signs_at(now) {
            tx.insert(replacement, now).await?;
            let retires = pending.map(|next| (next.signs_from, next.signs_from + times.access_lifetime));
            tx.retire(&replacement.kid, retires).await?;
            Revoked::Active { replacement: replacement.kid.clone() }
        } else {
            if target.is_next_at(now) {
                if let Some(current) = keys.iter().filter(same_alg).find(|key| key.signs_at(now)) {
                    tx.retire(&current.kid, None).await?;
                }
            }
            Revoked::Published
        };
        tx.commit().await?;
        self.reload_credentials().await?;
        Ok(revoked)
    }

    /// Registers a client; fails with a unique violation if the name is
    /// taken.
    pub async fn add_client(&self, name: &str, secret_hash: &[u8]) -> Result<(), DbError> {
        dispatch!(self.add_client(name, secret_hash)).await?;
        self.reload_credentials().await
    }

    /// Removes a client; false if there was none of that name.
    pub async fn remove_client(&self, name: &str) -> Result<bool, DbError> {
        let removed = dispatch!(self.remove_client(name)).await?;
        self.reload_credentials().await?;
        Ok(removed)
    }
}
