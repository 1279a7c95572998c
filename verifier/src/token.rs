//! Verifying an access token exactly as jwt-blocklist does, with its public
//! keys: the algorithm pinned to the key's (ES256 or EdDSA; HS256 and
//! `none` refused), `kid` required and known, signature, `iss`, `typ`
//! `at+jwt` and `type` `access`, canonical ids, `username`, and `exp` /
//! `nbf` with leeway to the microsecond. Revocation is checked by the
//! caller, after this.
//!
//! A signature is checked once per token: verified tokens are kept, keyed
//! by the SHA-256 of the whole token, at most [`CACHE_CAPACITY`] of them,
//! and forgotten when the key set changes. Expiry is checked on every call.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::digest::{digest, SHA256};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::VerifyError;

/// The most verified tokens kept (as the service keeps).
pub const CACHE_CAPACITY: usize = 65_536;

/// A verified access token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the user's id.
    pub user_id: Uuid,
    pub username: String,
    /// `sid`: the session (login) the token belongs to.
    pub sid: Uuid,
    pub jti: Uuid,
    /// `iat`, `exp`, `nbf` (unix seconds).
    pub issued_at: i64,
    pub expires_at: i64,
    pub not_before: Option<i64>,
    /// The key that signed it.
    pub kid: String,
}

#[derive(Deserialize)]
struct WireClaims {
    sub: String,
    iat: i64,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
    sid: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    username: Option<String>,
}

/// A public key of the set, and the algorithm it verifies.
pub(crate) struct PublicKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// What a lookup of the token's key found.
pub(crate) enum KeyLookup<'a> {
    Found(&'a PublicKey),
    /// Not in the set: the caller may fetch the set again and retry.
    Unknown,
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> VerifyError {
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

fn canonical_uuid(value: &str, claim: &str) -> Result<Uuid, VerifyError> {
    Uuid::parse_str(value)
        .ok()
        .filter(|id| id.hyphenated().to_string() == value)
        .ok_or_else(|| VerifyError::invalid(format!("The {claim} claim is not a canonical UUID")))
}

/// RFC 7519 times, as the service checks them: expired from the instant
/// `now_micros` reaches `exp + leeway`; not yet valid before `nbf - leeway`.
pub(crate) fn check_times(claims: &Claims, now_micros: i64, leeway: i64) -> Result<(), VerifyError> {
    let micros = |seconds: i64| seconds.saturating_mul(1_000_000);
    if now_micros >= micros(claims.expires_at.saturating_add(leeway)) {
        return Err(VerifyError::TokenExpired);
    }
    if claims.not_before.is_some_and(|nbf| now_micros < micros(nbf.saturating_sub(leeway))) {
        return Err(VerifyError::invalid("Token is not yet valid"));
    }
    Ok(())
}

/// Checks `token`'s signature and claims (not its times, not revocation).
pub(crate) fn verify_signed<'k>(
    token: &str,
    issuer: &str,
    lookup: impl FnOnce(&str) -> KeyLookup<'k>,
) -> Result<Option<Claims>, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| describe(e.kind()))?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::EdDSA) {
        // HS256 above all: our public keys are never an HMAC secret.
        return Err(VerifyError::invalid("Token algorithm is not accepted"));
    }
    let kid = header.kid.ok_or_else(|| VerifyError::invalid("Token has no key id (kid)"))?;
    let key = match lookup(&kid) {
        KeyLookup::Found(key) => key,
        KeyLookup::Unknown => return Ok(None),
    };
    if key.algorithm != header.alg {
        return Err(VerifyError::invalid("Token algorithm is not accepted"));
    }
    let mut validation = Validation::new(key.algorithm);
    validation.algorithms = vec![key.algorithm];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data =
        jsonwebtoken::decode::<WireClaims>(token, &key.key, &validation).map_err(|e| describe(e.kind()))?;
    if data.claims.token_type != "access" {
        return Err(VerifyError::invalid("An access token is required"));
    }
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(VerifyError::invalid("Token type header does not match its type"));
    }
    let wire = data.claims;
    let username =
        wire.username.ok_or_else(|| VerifyError::invalid("Token is missing the username claim"))?;
    Ok(Some(Claims {
        user_id: canonical_uuid(&wire.sub, "sub")?,
        username,
        sid: canonical_uuid(&wire.sid, "sid")?,
        jti: canonical_uuid(&wire.jti, "jti")?,
        issued_at: wire.iat,
        expires_at: wire.exp,
        not_before: wire.nbf,
        kid,
    }))
}

/// Tokens whose signature checked out, under one version of the key set.
#[derive(Default)]
pub(crate) struct Verified {
    entries: RwLock<(u64, HashMap<[u8; 32], Claims>)>,
}

fn cache_key(token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

impl Verified {
    pub fn get(&self, token: &str, version: u64) -> Option<Claims> {
        let entries = self.entries.read().ok()?;
        (entries.0 == version).then(|| entries.1.get(&cache_key(token)).cloned()).flatten()
    }

    pub fn insert(&self, token: &str, version: u64, claims: &Claims) {
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
        entries.1.insert(cache_key(token), claims.clone());
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.read().map(|entries| entries.1.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        let id = Uuid::nil();
        Claims {
            user_id: id,
            username: "alice".into(),
            sid: id,
            jti: id,
            issued_at: 0,
            expires_at: 60,
            not_before: None,
            kid: "k".into(),
        }
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity_and_forgets_a_key_change() {
        let cache = Verified::default();
        for n in 0..CACHE_CAPACITY + 10 {
            cache.insert(&format!("token {n}"), 1, &claims());
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        assert!(cache.get("token 5", 2).is_none(), "another key set");
        cache.insert("new", 2, &claims());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn expiry_is_exact_to_the_microsecond_with_leeway() {
        let claims = Claims { not_before: Some(10), ..claims() };
        assert_eq!(check_times(&claims, 60_000_000 - 1, 0), Ok(()));
        assert_eq!(check_times(&claims, 60_000_000, 0), Err(VerifyError::TokenExpired));
        assert_eq!(check_times(&claims, 64_999_999, 5), Ok(()));
        assert!(matches!(check_times(&claims, 9_999_999, 0), Err(VerifyError::InvalidToken(_))));
        assert_eq!(check_times(&claims, 9_000_000, 1), Ok(()));
    }
}
