//! The contract's claims: as they travel ([`WireClaims`]), as a verified
//! token carries them ([`Claims`]), and the checks of their values that do
//! not depend on the key (exact expiry, canonical ids, required claims).

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{SessionId, TokenId, UserId};
use crate::error::ApiError;
use jwt_blocklist_verifier::checks;

/// Keeps access and refresh tokens apart: the `type` claim (as
/// Flask-JWT-Extended names it), and under ES256 and EdDSA the `typ`
/// header too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    /// The header's `typ`: RFC 9068's for access tokens, another one for
    /// refresh tokens, so that no library can take one for the other.
    pub fn typ(self) -> &'static str {
        match self {
            TokenType::Access => "at+jwt",
            TokenType::Refresh => "refresh+jwt",
        }
    }
}

/// The claims as they travel. Ids stay strings here so that a non-canonical
/// one can be refused even when correctly signed.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireClaims {
    pub iss: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub sid: String,
    #[serde(rename = "type")]
    pub token_type: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Cookie sessions: the binding to the CSRF token (see `csrf.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
}

/// The claims of a token whose signature and claims all checked out.
#[derive(Debug, Clone)]
pub struct Claims {
    pub user_id: UserId,
    pub sid: SessionId,
    pub jti: TokenId,
    pub token_type: TokenType,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Present in access tokens.
    pub username: Option<String>,
    /// Present in both tokens of a cookie session: the CSRF binding.
    pub csrf: Option<String>,
    /// The key that signed it (ES256, EdDSA; `None` under HS256).
    pub kid: Option<String>,
}

/// A verified token's claims with the times its validity depends on, so
/// that a cached verification is checked against the clock again.
#[derive(Debug, Clone)]
pub(super) struct Verified {
    pub claims: Claims,
    pub exp: i64,
    pub nbf: Option<i64>,
}

impl WireClaims {
    /// The claims' values, once the signature has checked out.
    pub fn into_verified(self, kid: Option<String>) -> Result<Verified, ApiError> {
        if self.token_type == TokenType::Access && self.username.is_none() {
            return Err(ApiError::invalid_token("Token is missing the username claim"));
        }
        let claims = Claims {
            user_id: UserId(canonical_uuid(&self.sub, "sub")?),
            sid: SessionId(canonical_uuid(&self.sid, "sid")?),
            jti: TokenId(canonical_uuid(&self.jti, "jti")?),
            token_type: self.token_type,
            issued_at: timestamp(self.iat)?,
            expires_at: timestamp(self.exp)?,
            username: self.username,
            csrf: self.csrf,
            kid,
        };
        Ok(Verified { claims, exp: self.exp, nbf: self.nbf })
    }
}

impl Verified {
    /// RFC 7519: expired from the instant `now` reaches `exp + leeway`; not
    /// yet valid while `now` is before `nbf - leeway`. Never rounded. (The
    /// verifier library's check: resource servers expire tokens at the same
    /// instant.)
    pub fn check_times(&self, now: DateTime<Utc>, leeway: i64) -> Result<(), ApiError> {
        Ok(checks::check_times(self.exp, self.nbf, now.timestamp_micros(), leeway)?)
    }
}

/// Every way jsonwebtoken can refuse a token, as the contract words it.
pub(super) fn describe(kind: &ErrorKind) -> ApiError {
    checks::describe(kind).into()
}

/// Accepts only the canonical lowercase hyphenated form.
fn canonical_uuid(value: &str, claim: &str) -> Result<Uuid, ApiError> {
    Ok(checks::canonical_uuid(value, claim)?)
}

pub(super) fn timestamp(seconds: i64) -> Result<DateTime<Utc>, ApiError> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .ok_or_else(|| ApiError::invalid_token("Token times are out of range"))
}
