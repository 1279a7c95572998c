//! The checks of a token that do not depend on where its keys come from,
//! written once for jwt-blocklist itself and for this library (the service
//! depends on this crate without its `client` feature for them): exact
//! expiry, canonical ids, the wording of jsonwebtoken's refusals, and the
//! cache of verified tokens.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::digest::{digest, SHA256};
use uuid::Uuid;

use crate::VerifyError;

/// The most verified tokens a [`VerifiedCache`] keeps.
pub const CACHE_CAPACITY: usize = 65_536;

/// RFC 7519 times, never rounded: expired from the instant `now_micros`
/// (unix microseconds) reaches `exp + leeway`; not yet valid while it is
/// before `nbf - leeway` (seconds).
pub fn check_times(exp: i64, nbf: Option<i64>, now_micros: i64, leeway: i64) -> Result<(), VerifyError> {
    let micros = |seconds: i64| seconds.saturating_mul(1_000_000);
    if now_micros >= micros(exp.saturating_add(leeway)) {
        return Err(VerifyError::TokenExpired);
    }
    if nbf.is_some_and(|nbf| now_micros < micros(nbf.saturating_sub(leeway))) {
        return Err(VerifyError::invalid("Token is not yet valid"));
    }
    Ok(())
}

/// `value` as a UUID, only in its canonical lowercase hyphenated form.
pub fn canonical_uuid(value: &str, claim: &str) -> Result<Uuid, VerifyError> {
    Uuid::parse_str(value)
        .ok()
        .filter(|id| id.hyphenated().to_string() == value)
        .ok_or_else(|| VerifyError::invalid(format!("The {claim} claim is not a canonical UUID")))
}

/// Every way jsonwebtoken can refuse a token, as the contract words it.
pub fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => VerifyError::invalid("Signature verification failed"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            VerifyError::invalid("Token algorithm is not accepted")
        }
        ErrorKind::InvalidIssuer => VerifyError::invalid("Token issuer is not accepted"),
        ErrorKind::MissingRequiredClaim(claim) => {
            VerifyError::invalid(format!("Token is missing the {claim} claim"))
        }
        ErrorKind::Json(_) => VerifyError::invalid("Token claims are missing or malformed"),
        _ => VerifyError::invalid("Token is malformed"),
    }
}

/// Tokens whose signature checked out, so that an ES256 or EdDSA signature
/// (tens of microseconds) is checked once, not once per request, as
/// Envoy's `jwt_authn` caches them. Keyed by the SHA-256 of the whole token
/// (a token that differs in any byte is another entry, and no one can make
/// two tokens share a hash); a hit must still be checked against the clock
/// and the revocations by the caller. Tied to one version of the key set:
/// a change empties it. At most [`CACHE_CAPACITY`] entries: past it, an
/// arbitrary one makes room, whatever is inserted.
pub struct VerifiedCache<T> {
    entries: RwLock<(i64, HashMap<[u8; 32], T>)>,
}

impl<T> Default for VerifiedCache<T> {
    fn default() -> Self {
        VerifiedCache { entries: RwLock::new((i64::MIN, HashMap::new())) }
    }
}

fn cache_key(token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

impl<T: Clone> VerifiedCache<T> {
    /// The verification of `token` under key-set `version`, if kept.
    pub fn get(&self, token: &str, version: i64) -> Option<T> {
        let entries = self.entries.read().ok()?;
        (entries.0 == version).then(|| entries.1.get(&cache_key(token)).cloned()).flatten()
    }

    /// Keeps `verified` for `token` under key-set `version`.
    pub fn insert(&self, token: &str, version: i64, verified: &T) {
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.0 != version {
            entries.1.clear();
            entries.0 = version;
        }
        if entries.1.len() >= CACHE_CAPACITY {
            if let Some(evicted) = entries.1.keys().next().copied() {
                entries.1.remove(&evicted);
            }
        }
        entries.1.insert(cache_key(token), verified.clone());
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.entries.read().map(|entries| entries.1.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_at_most_its_capacity_and_forgets_a_key_change() {
        let cache = VerifiedCache::default();
        for n in 0..CACHE_CAPACITY + 10 {
            cache.insert(&format!("token {n}"), 1, &n);
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        let newest = format!("token {}", CACHE_CAPACITY + 9);
        assert_eq!(cache.get(&newest, 1), Some(CACHE_CAPACITY + 9), "the newest is kept");
        assert!(cache.get(&newest, 2).is_none(), "another key set");
        cache.insert("new", 2, &0);
        assert_eq!(cache.len(), 1, "emptied for the new key set");
    }

    #[test]
    fn expiry_is_exact_to_the_microsecond_with_leeway() {
        assert_eq!(check_times(60, Some(10), 60_000_000 - 1, 0), Ok(()));
        assert_eq!(check_times(60, Some(10), 60_000_000, 0), Err(VerifyError::TokenExpired));
        assert_eq!(check_times(60, Some(10), 64_999_999, 5), Ok(()));
        assert!(matches!(check_times(60, Some(10), 9_999_999, 0), Err(VerifyError::InvalidToken(_))));
        assert_eq!(check_times(60, Some(10), 9_000_000, 1), Ok(()));
    }

    #[test]
    fn only_canonical_ids_are_read() {
        let id = Uuid::new_v4();
        assert_eq!(canonical_uuid(&id.to_string(), "sid"), Ok(id));
        assert!(canonical_uuid(&id.to_string().to_uppercase(), "sid").is_err());
        assert!(canonical_uuid(&id.simple().to_string(), "sid").is_err());
    }
}
