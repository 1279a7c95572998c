//! Verified tokens, so that an ES256 or EdDSA signature (tens of
//! microseconds) is checked once per instance, not once per request, as
//! Envoy's `jwt_authn` caches them. Keyed by the SHA-256 of the whole token
//! (a token that differs in any byte is another entry, and no one can make
//! two tokens share a hash); a hit is still checked against the clock, its
//! type and, by the caller, the revocation list. Tied to one version of the
//! signing keys: when the keys change (a rotation, a revoked key) the cache
//! is emptied. Only tokens whose signature checked out go in, and at most
//! [`CAPACITY`] of them: past it, an arbitrary entry makes room.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::digest::{digest, SHA256};

use super::claims::Verified;

/// The most verified tokens kept: about 20 MB.
pub const CAPACITY: usize = 65_536;

type Digest = [u8; 32];

#[derive(Default)]
struct Entries {
    /// The key-set version the entries were verified under.
    version: i64,
    map: HashMap<Digest, Verified>,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<Entries>,
}

fn key(token: &str) -> Digest {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

impl VerifiedTokens {
    /// The cached verification of `token` under key-set `version`.
    pub fn get(&self, token: &str, version: i64) -> Option<Verified> {
        let entries = self.entries.read().ok()?;
        if entries.version != version {
            return None;
        }
        entries.map.get(&key(token)).cloned()
    }

    /// Keeps `verified` for `token` under key-set `version`.
    pub fn insert(&self, token: &str, version: i64, verified: &Verified) {
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.version != version {
            entries.map.clear();
            entries.version = version;
        }
        if entries.map.len() >= CAPACITY {
            if let Some(evicted) = entries.map.keys().next().copied() {
                entries.map.remove(&evicted);
            }
        }
        entries.map.insert(key(token), verified.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::{Claims, TokenType};
    use crate::db::{SessionId, TokenId, UserId};

    fn verified() -> Verified {
        let now = chrono::Utc::now();
        let claims = Claims {
            user_id: UserId::new_v4(),
            sid: SessionId::new_v4(),
            jti: TokenId::new_v4(),
            token_type: TokenType::Access,
            issued_at: now,
            expires_at: now,
            username: Some("alice".into()),
            csrf: None,
            kid: Some("kid".into()),
        };
        Verified { claims, exp: now.timestamp(), nbf: None }
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_forgets_a_key_change() {
        let cache = VerifiedTokens::default();
        let one = verified();
        for n in 0..CAPACITY + 1_000 {
            cache.insert(&format!("token {n}"), 1, &one);
        }
        assert_eq!(cache.entries.read().unwrap().map.len(), CAPACITY);
        let last = format!("token {}", CAPACITY + 999);
        assert!(cache.get(&last, 1).is_some(), "the newest is kept");
        assert!(cache.get(&last, 2).is_none(), "another key version misses");

        cache.insert("after the change", 2, &one);

        assert_eq!(cache.entries.read().unwrap().map.len(), 1, "emptied for the new version");
        assert!(cache.get(&last, 1).is_none());
    }
}
