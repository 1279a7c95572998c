//! Verifying an access token exactly as jwt-blocklist does, with its public
//! keys: the algorithm pinned to the key's (ES256 or EdDSA; HS256 and
//! `none` refused), `kid` required and known, signature, `iss`, `typ`
//! `at+jwt` and `type` `access`, canonical ids, `username`, and `exp` /
//! `nbf` with leeway to the microsecond. Revocation is checked by the
//! caller, after this.
//!
//! A signature is checked once per token: verified tokens are kept in a
//! [`VerifiedCache`](crate::checks::VerifiedCache), forgotten when the key
//! set changes. Expiry is checked on every call.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::checks::{canonical_uuid, describe};
use crate::VerifyError;

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
