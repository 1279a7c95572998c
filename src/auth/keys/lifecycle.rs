//! Making, rotating and revoking the shared signing keys: each makes and
//! seals a candidate key here, then lets the store decide, under the keys'
//! lock, whether it is needed (`db/credentials.rs`). The server's stages and
//! the command line (`keys rotate`, `keys revoke`) both call these.

use chrono::{DateTime, Duration, Utc};

use super::material::{self, KeyMaterialError, SealingKey};
use crate::config::{AppConfig, JwtAlgorithm};
use crate::db::{DbError, KeyTimes, NewSigningKey, Revoked, Rotated, Store};

/// Why a key change failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyChangeError {
    #[error(transparent)]
    Material(#[from] KeyMaterialError),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// A new key of `algorithm`, sealed for its row.
fn candidate(algorithm: JwtAlgorithm, sealing: &SealingKey) -> Result<NewSigningKey, KeyMaterialError> {
    let made = material::generate(algorithm)?;
    let sealed_private = sealing.seal(&made.kid, &made.pkcs8)?;
    Ok(NewSigningKey {
        kid: made.kid,
        alg: algorithm.as_str().to_owned(),
        public_jwk: made.public_jwk,
        sealed_private,
    })
}

/// The lifetimes a key's dates follow, from the configuration, at `now`.
pub fn times(config: &AppConfig, now: DateTime<Utc>) -> KeyTimes {
    let seconds = |seconds: u64| Duration::seconds(seconds as i64);
    KeyTimes {
        now,
        publish_lead: seconds(config.jwks_max_age + config.leeway),
        access_lifetime: seconds(config.access_token_ttl + config.leeway),
    }
}

/// Makes the first key of `algorithm` unless one signs now or will (of
/// instances started together, exactly one makes it). Returns its kid if
/// this call made it.
pub async fn make_first(
    store: &Store,
    sealing: &SealingKey,
    algorithm: JwtAlgorithm,
) -> Result<Option<String>, KeyChangeError> {
    let key = candidate(algorithm, sealing)?;
    Ok(store.add_first_signing_key(&key, Utc::now()).await?.then_some(key.kid))
}

/// Publishes a new key now, to sign `jwks_max_age + leeway` later.
pub async fn rotate(
    store: &Store,
    sealing: &SealingKey,
    config: &AppConfig,
) -> Result<Rotated, KeyChangeError> {
    let key = candidate(config.jwt_algorithm, sealing)?;
    Ok(store.rotate_signing_key(&key, times(config, Utc::now())).await?)
}

/// Withdraws `kid`; a fresh key of its algorithm signs at once if it was
/// the signing key.
pub async fn revoke(
    store: &Store,
    sealing: &SealingKey,
    config: &AppConfig,
    kid: &str,
) -> Result<Revoked, KeyChangeError> {
    let algorithm =
        match store.credentials().keys.iter().find(|key| key.kid == kid).map(|key| key.alg.clone()) {
            Some(alg) if alg == JwtAlgorithm::EdDSA.as_str() => JwtAlgorithm::EdDSA,
            Some(_) => JwtAlgorithm::ES256,
            None => return Ok(Revoked::NotFound),
        };
    let replacement = candidate(algorithm, sealing)?;
    Ok(store.revoke_signing_key(kid, &replacement, times(config, Utc::now())).await?)
}

/// Whether the key signing at `now` has signed for `interval` already, with
/// no successor waiting: then it is time to rotate.
pub fn rotation_due(store: &Store, algorithm: JwtAlgorithm, interval: Duration, now: DateTime<Utc>) -> bool {
    let credentials = store.credentials();
    let keys = || credentials.keys.iter().filter(|key| key.alg == algorithm.as_str());
    let pending = keys().any(|key| key.is_next_at(now));
    let signing_since = keys().filter(|key| key.signs_at(now)).map(|key| key.signs_from).max();
    !pending && signing_since.is_some_and(|since| since + interval <= now)
}
