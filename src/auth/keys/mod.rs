//! The signing keys as this instance uses them: a [`KeyRing`] built from the
//! store's rows of `signing_keys` (every instance's shared set), rebuilt
//! whenever the store's `credentials_version` moves. It knows which key
//! signs now, which keys verify which tokens, what the JWKS publishes, and
//! since when HS256 tokens of an upgraded deployment are no longer ours.
//!
//! A key's life (dates in its row): published from `created_at`; signing
//! from `signs_from` until `retired_at` (its successor's `signs_from`);
//! published, and accepting the access tokens it signed, until
//! `published_until`; accepting the refresh tokens it signed until
//! `retired_at + refresh_token_ttl + leeway`; refused from `revoked_at`.

pub mod lifecycle;
pub mod material;

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::Value;

use super::jwt::TokenType;
use crate::config::JwtAlgorithm;
use crate::db::{Credentials, SigningKeyRow, Store};
use crate::logging::warn_repeated;
use material::{KeyMaterialError, SealingKey};

/// One key of the ring: its row (whose dates say what it does when) and
/// what is made of it.
struct RingKey {
    row: SigningKeyRow,
    public_jwk: Value,
    decoding: DecodingKey,
    /// `None` when revoked (it never signs again).
    encoding: Option<EncodingKey>,
}

/// Every key of the configured algorithm, as of one `credentials_version`.
pub struct KeyRing {
    pub version: i64,
    keys: Vec<RingKey>,
    /// HS256 tokens issued (`iat`, whole seconds) before this are the
    /// deployment's own from before its first asymmetric key.
    legacy_before: Option<i64>,
    /// `refresh_token_ttl + leeway`.
    refresh_lifetime: Duration,
}

impl KeyRing {
    /// Builds the ring from `credentials`; the private keys of the keys that
    /// may still sign are opened with `sealing`. A key whose private key
    /// does not open (sealed under another `jwt_secret`) still verifies but
    /// never signs here; the errors say which.
    pub fn build(
        credentials: &Credentials,
        algorithm: JwtAlgorithm,
        sealing: &SealingKey,
        refresh_lifetime: Duration,
    ) -> (KeyRing, Vec<KeyMaterialError>) {
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        for row in credentials.keys.iter().filter(|row| row.alg == algorithm.as_str()) {
            match ring_key(row, algorithm, sealing) {
                Ok((key, unsealed)) => {
                    keys.push(key);
                    errors.extend(unsealed);
                }
                Err(error) => errors.push(error),
            }
        }
        let ring = KeyRing {
            version: credentials.version,
            keys,
            legacy_before: credentials.keys.iter().map(|row| row.created_at.timestamp()).min(),
            refresh_lifetime,
        };
        (ring, errors)
    }

    /// The key that signs at `now`, with its id.
    pub fn signing(&self, now: DateTime<Utc>) -> Option<(&str, &EncodingKey)> {
        self.keys
            .iter()
            .filter(|key| key.row.signs_at(now))
            .max_by_key(|key| key.row.signs_from)
            .and_then(|key| Some((key.row.kid.as_str(), key.encoding.as_ref()?)))
    }

    /// The key `kid` names, if it verifies tokens of some type at `now`
    /// (before the token's type is known).
    pub fn verifying(&self, kid: &str, now: DateTime<Utc>) -> Option<&DecodingKey> {
        self.key(kid, now, TokenType::Refresh).map(|key| &key.decoding)
    }

    /// Whether `kid` accepts a token of `token_type` at `now`: an access
    /// token while the key is published, a refresh token until every
    /// refresh token it signed has expired.
    pub fn accepts(&self, kid: &str, token_type: TokenType, now: DateTime<Utc>) -> bool {
        self.key(kid, now, token_type).is_some()
    }

    fn key(&self, kid: &str, now: DateTime<Utc>, token_type: TokenType) -> Option<&RingKey> {
        let key = self.keys.iter().find(|key| key.row.kid == kid && key.row.revoked_at.is_none())?;
        let until = match token_type {
            TokenType::Access => key.row.published_until,
            TokenType::Refresh => key.row.retired_at.map(|at| at + self.refresh_lifetime),
        };
        until.is_none_or(|until| until > now).then_some(key)
    }

    /// The JWKS at `now`: every key that is next, active, or retired but
    /// still published; never a revoked one, never a private member.
    pub fn published(&self, now: DateTime<Utc>) -> Vec<&Value> {
        self.keys
            .iter()
            .filter(|key| {
                key.row.revoked_at.is_none() && key.row.published_until.is_none_or(|until| until > now)
            })
            .map(|key| &key.public_jwk)
            .collect()
    }

    /// HS256 tokens with an `iat` before this are accepted (until they
    /// expire): the ones issued before the first asymmetric key was made.
    pub fn legacy_before(&self) -> Option<i64> {
        self.legacy_before
    }
}

/// The ring's key for `row`, and the error if its private key did not open.
fn ring_key(
    row: &SigningKeyRow,
    algorithm: JwtAlgorithm,
    sealing: &SealingKey,
) -> Result<(RingKey, Option<KeyMaterialError>), KeyMaterialError> {
    let public_jwk: Value =
        serde_json::from_str(&row.public_jwk).map_err(|_| KeyMaterialError::PublicKey(row.kid.clone()))?;
    let member =
        |name: &str| public_jwk[name].as_str().ok_or_else(|| KeyMaterialError::PublicKey(row.kid.clone()));
    let decoding = match algorithm {
        JwtAlgorithm::ES256 => DecodingKey::from_ec_components(member("x")?, member("y")?),
        _ => DecodingKey::from_ed_components(member("x")?),
    }
    .map_err(|_| KeyMaterialError::PublicKey(row.kid.clone()))?;
    let (encoding, unsealed) = match row.revoked_at.is_some() {
        true => (None, None),
        false => match sealing.open(&row.kid, &row.sealed_private) {
            Ok(pkcs8) => (
                Some(match algorithm {
                    JwtAlgorithm::ES256 => EncodingKey::from_ec_der(&pkcs8),
                    _ => EncodingKey::from_ed_der(&pkcs8),
                }),
                None,
            ),
            Err(error) => (None, Some(error)),
        },
    };
    let key = RingKey { row: row.clone(), public_jwk, decoding, encoding };
    Ok((key, unsealed))
}

/// The ring, kept current with the store.
pub struct Keys {
    store: Store,
    algorithm: JwtAlgorithm,
    sealing: SealingKey,
    refresh_lifetime: Duration,
    ring: RwLock<Arc<KeyRing>>,
}

impl Keys {
    /// Builds the ring from the store's keys now; fails if a key that may
    /// still sign does not open with this `jwt_secret` (the instance must
    /// not start: it would sign with nothing, or make a second key set).
    pub fn new(
        store: Store,
        algorithm: JwtAlgorithm,
        sealing: SealingKey,
        refresh_lifetime: Duration,
    ) -> Result<Keys, KeyMaterialError> {
        let (ring, mut errors) = KeyRing::build(&store.credentials(), algorithm, &sealing, refresh_lifetime);
        if let Some(error) = errors.pop() {
            return Err(error);
        }
        Ok(Keys { store, algorithm, sealing, refresh_lifetime, ring: RwLock::new(Arc::new(ring)) })
    }

    /// The ring for the store's keys now, rebuilt first if they changed.
    pub fn ring(&self) -> Arc<KeyRing> {
        let current = self.ring.read().map(|ring| ring.clone());
        match current {
            Ok(ring) if ring.version == self.store.credentials_version() => ring,
            _ => self.rebuild(),
        }
    }

    fn rebuild(&self) -> Arc<KeyRing> {
        let credentials = self.store.credentials();
        let (ring, errors) =
            KeyRing::build(&credentials, self.algorithm, &self.sealing, self.refresh_lifetime);
        for error in errors {
            // Another instance sealed a key under another jwt_secret: it
            // verifies here but never signs.
            warn_repeated!("signing key not usable here: {error}");
        }
        let ring = Arc::new(ring);
        if let Ok(mut held) = self.ring.write() {
            *held = ring.clone();
        }
        ring
    }

    /// The sealing key, for making new keys.
    pub fn sealing(&self) -> &SealingKey {
        &self.sealing
    }
}
