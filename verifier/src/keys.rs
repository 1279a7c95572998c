//! The service's public keys (its JWKS), kept as its `Cache-Control`
//! allows: fetched again once `max-age` has passed, and when a token names
//! a key the set does not have, at most once a second (a stream of tokens
//! with made-up `kid`s costs one fetch a second, not one per token).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::token::PublicKey;

/// The shortest time between two fetches for unknown keys.
pub const REFETCH_GAP: Duration = Duration::from_secs(1);

/// Without a `max-age`, the set is fetched again after this long.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// A key set as fetched.
pub(crate) struct KeySet {
    pub keys: HashMap<String, PublicKey>,
    /// Bumped by every fetch that changed the set's kids.
    pub version: i64,
    /// When the set must be fetched again.
    pub expires: Instant,
}

/// The keys and when they may be fetched again.
pub(crate) struct Keys {
    pub set: RwLock<KeySet>,
    /// When the last fetch began (for [`REFETCH_GAP`]).
    last_fetch: Mutex<Option<Instant>>,
}

/// The `max-age` of a `Cache-Control` value.
pub(crate) fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().parse().ok().map(Duration::from_secs))?
    })
}

/// The usable keys of a JWKS document: ES256 and EdDSA signing keys with a
/// `kid`; anything else is left out.
pub(crate) fn parse(document: &[u8]) -> Result<HashMap<String, PublicKey>, String> {
    let set: JwkSet = serde_json::from_slice(document).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let algorithm = match jwk.common.key_algorithm.map(|alg| alg.to_string()) {
            Some(name) if name == "ES256" => Algorithm::ES256,
            Some(name) if name == "EdDSA" => Algorithm::EdDSA,
            _ => continue,
        };
        let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) else { continue };
        keys.insert(kid, PublicKey { algorithm, key });
    }
    Ok(keys)
}

impl Keys {
    pub fn new(keys: HashMap<String, PublicKey>, max_age: Option<Duration>, now: Instant) -> Keys {
        let expires = now + max_age.unwrap_or(DEFAULT_MAX_AGE);
        Keys { set: RwLock::new(KeySet { keys, version: 1, expires }), last_fetch: Mutex::new(Some(now)) }
    }

    /// Whether a fetch may begin at `now`: the set has expired, or `unknown`
    /// (a token named a key it lacks) and the last fetch began at least
    /// [`REFETCH_GAP`] ago. Claims the fetch if so.
    pub fn claim_fetch(&self, now: Instant, unknown: bool) -> bool {
        let expired = self.is_expired(now);
        if !expired && !unknown {
            return false;
        }
        let Ok(mut last) = self.last_fetch.lock() else { return false };
        let gap_passed = last.is_none_or(|at| now.duration_since(at) >= REFETCH_GAP);
        let may = gap_passed && (expired || unknown);
        if may {
            *last = Some(now);
        }
        may
    }

    /// Takes a fetched set; the version moves if its kids changed.
    pub fn replace(&self, keys: HashMap<String, PublicKey>, max_age: Option<Duration>, now: Instant) {
        let Ok(mut set) = self.set.write() else { return };
        let same = set.keys.len() == keys.len() && keys.keys().all(|kid| set.keys.contains_key(kid));
        set.keys = keys;
        set.expires = now + max_age.unwrap_or(DEFAULT_MAX_AGE);
        if !same {
            set.version += 1;
        }
    }

    /// Whether the set's `max-age` has passed at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.set.read().map(|set| set.expires <= now).unwrap_or(true)
    }

    pub fn version(&self) -> i64 {
        self.set.read().map(|set| set.version).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age(Some("public, max-age=300")), Some(Duration::from_secs(300)));
        assert_eq!(max_age(Some("Max-Age = 5")), Some(Duration::from_secs(5)));
        assert_eq!(max_age(Some("no-store")), None);
        assert_eq!(max_age(None), None);
    }

    /// Unknown kids fetch at most once a second; an expired set fetches
    /// once, then waits for the gap too.
    #[test]
    fn fetches_are_limited_to_one_a_second() {
        let start = Instant::now();
        let keys = Keys::new(HashMap::new(), Some(Duration::from_secs(60)), start);
        let at = |millis| start + Duration::from_millis(millis);

        assert!(!keys.claim_fetch(at(10), true), "the first fetch just began");
        assert!(!keys.claim_fetch(at(999), true));
        assert!(keys.claim_fetch(at(1_000), true));
        assert!(!keys.claim_fetch(at(1_500), true), "one a second, however many tokens ask");
        assert!(!keys.claim_fetch(at(30_000), false), "not expired, nothing unknown");
        assert!(keys.claim_fetch(at(60_000), false), "max-age passed");
        assert!(!keys.claim_fetch(at(60_001), false));
    }
}
