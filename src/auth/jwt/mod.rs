//! Token issuing and verification under the one configured algorithm.
//!
//! - HS256: signed and verified with `jwt_secret`.
//! - ES256, EdDSA: signed with the key that signs now ([`Keys`]), every
//!   header naming its `kid` and its `typ` (`at+jwt`, `refresh+jwt`);
//!   verified with the key the `kid` names, once per token and instance
//!   ([`cache`]). An HS256 token is accepted only if it was issued before
//!   the deployment's first asymmetric key (an upgrade logs nobody out),
//!   verified with `jwt_secret` alone, until it expires.
//!
//! Every other `alg` (`none`, HS256 signed with a public key, HS384, an
//! EdDSA token at an ES256 instance), a missing or unknown `kid`, or another
//! key's `kid` is `invalid_token`. The signature is checked before the
//! times: a badly signed token is `invalid_token` even when expired.

mod claims;

pub use claims::{Claims, TokenType};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::keys::Keys;
use crate::config::{AppConfig, JwtAlgorithm, Secret};
use crate::db::{SessionId, TokenId, UserId};
use crate::error::ApiError;
use claims::{describe, timestamp, Verified, WireClaims};
use jwt_blocklist_verifier::checks::VerifiedCache;

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct SignedToken {
    pub token: String,
    pub jti: TokenId,
    pub expires_at: DateTime<Utc>,
}

/// What a token is issued for: its type, owner, session, id and lifetime.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub token_type: TokenType,
    pub user_id: UserId,
    /// Carried by access tokens.
    pub username: Option<&'a str>,
    pub sid: SessionId,
    pub jti: TokenId,
    pub now: DateTime<Utc>,
    pub ttl_seconds: u64,
    /// For cookie sessions: the binding of the session's CSRF token.
    pub csrf: Option<&'a str>,
}

/// Why the signing keys could not be built (the service refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no crypto backend for jsonwebtoken: this build enables none, or more than one")]
    NoCryptoBackend,
    #[error("the signing key is unusable: {0}")]
    Unusable(#[from] jsonwebtoken::errors::Error),
}

/// The verified-token cache's one version (see `Jwt::verified`).
const CACHE_VERSION: i64 = 0;

/// The keys and the validation rules, built once.
pub struct Jwt {
    algorithm: JwtAlgorithm,
    /// HS256 with `jwt_secret`: every token under HS256, and an upgraded
    /// deployment's earlier tokens.
    secret: (EncodingKey, DecodingKey),
    hs256: Validation,
    /// ES256 or EdDSA: the shared keys, and the rules for their tokens.
    asymmetric: Option<(Keys, Validation)>,
    /// Tokens whose signature checked out (the verifier library's
    /// `VerifiedCache`, as resource servers keep theirs). A hit is still
    /// checked against its key's state (revoked, past its publication) on
    /// every request, so a change of the keys, let alone of the clients,
    /// needs no flush: the cache is never emptied for it.
    verified: VerifiedCache<Verified>,
    issuer: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: i64,
}

fn validation(algorithm: Algorithm, config: &AppConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.algorithms = vec![algorithm];
    // `exp` and `nbf` are checked by Verified::check_times, to the
    // microsecond: the library compares whole seconds, which accepts a token
    // for up to a second past `exp + leeway`.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_issuer(&[config.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation
}

fn jws_algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::HS256 => Algorithm::HS256,
    }
}

impl Jwt {
    /// `keys` are the shared keys under ES256 and EdDSA (`None` under
    /// HS256). Fails, rather than panicking at the first token, when
    /// jsonwebtoken has no crypto backend (it needs exactly one; see
    /// Cargo.toml).
    pub fn new(secret: &Secret, config: &AppConfig, keys: Option<Keys>) -> Result<Self, KeyError> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(KeyError::NoCryptoBackend);
        }
        let algorithm = config.jwt_algorithm;
        let asymmetric = keys.map(|keys| (keys, validation(jws_algorithm(algorithm), config)));
        Ok(Jwt {
            algorithm,
            secret: (EncodingKey::from_secret(secret.expose())?, DecodingKey::from_secret(secret.expose())?),
            hs256: validation(Algorithm::HS256, config),
            asymmetric,
            verified: VerifiedCache::default(),
            issuer: config.issuer.clone(),
            leeway: config.leeway as i64,
        })
    }

    /// The shared keys, under ES256 and EdDSA.
    pub fn keys(&self) -> Option<&Keys> {
        self.asymmetric.as_ref().map(|(keys, _)| keys)
    }

    /// Signs `token` with the key that signs now.
    pub fn issue(&self, token: NewToken<'_>) -> Result<SignedToken, ApiError> {
        let NewToken { token_type, user_id, username, sid, jti, now, ttl_seconds, csrf } = token;
        let exp = now.timestamp() + ttl_seconds as i64;
        let claims = WireClaims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            iat: now.timestamp(),
            exp,
            nbf: None,
            jti: jti.to_string(),
            sid: sid.to_string(),
            token_type,
            username: username.map(str::to_owned),
            csrf: csrf.map(str::to_owned),
        };
        let mut header = Header::new(jws_algorithm(self.algorithm));
        header.typ = Some(token_type.typ().to_owned());
        let signed = match &self.asymmetric {
            None => jsonwebtoken::encode(&header, &claims, &self.secret.0),
            Some((keys, _)) => {
                let ring = keys.ring();
                let Some((kid, key)) = ring.signing(Utc::now()) else {
                    log::error!("no signing key signs now: every key is revoked or unusable here");
                    return Err(ApiError::Internal);
                };
                header.kid = Some(kid.to_owned());
                jsonwebtoken::encode(&header, &claims, key)
            }
        };
        let token = signed.map_err(|e| {
            log::error!("cannot sign a token: {e}");
            ApiError::Internal
        })?;
        Ok(SignedToken { token, jti, expires_at: timestamp(exp)? })
    }

    /// Verifies signature (first), algorithm, key, `iss`, `exp`/`nbf` with
    /// leeway, the required claims and the token type. Says nothing about
    /// revocation.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, ApiError> {
        self.verify_at(token, expected, Utc::now())
    }

    /// [`verify`](Self::verify) as if the clock read `now` (tests of exact
    /// expiry use it rather than sleeping until `exp`).
    pub fn verify_at(
        &self,
        token: &str,
        expected: TokenType,
        now: DateTime<Utc>,
    ) -> Result<Claims, ApiError> {
        let claims = self.verify_any_at(token, now)?;
        if claims.token_type != expected {
            return Err(ApiError::invalid_token(match expected {
                TokenType::Access => "An access token is required",
                TokenType::Refresh => "A refresh token is required",
            }));
        }
        Ok(claims)
    }

    /// [`verify`](Self::verify) for a token of either type (RFC 7009
    /// revocation and introspection take both).
    pub fn verify_any(&self, token: &str) -> Result<Claims, ApiError> {
        self.verify_any_at(token, Utc::now())
    }

    fn verify_any_at(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, ApiError> {
        let verified = match &self.asymmetric {
            None => self.verify_with_secret(token)?,
            Some((keys, validation)) => self.verify_with_keys(keys, validation, token, now)?,
        };
        verified.check_times(now, self.leeway)?;
        Ok(verified.claims)
    }

    fn verify_with_secret(&self, token: &str) -> Result<Verified, ApiError> {
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.secret.1, &self.hs256)
            .map_err(|e| describe(e.kind()))?;
        data.claims.into_verified(None)
    }

    fn verify_with_keys(
        &self,
        keys: &Keys,
        validation: &Validation,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Verified, ApiError> {
        let ring = keys.ring();
        let accepted = |verified: &Verified| {
            let kid = verified.claims.kid.as_deref().unwrap_or_default();
            if ring.accepts(kid, verified.claims.token_type, now) {
                Ok(())
            } else {
                Err(ApiError::invalid_token("Token key no longer accepts this token"))
            }
        };
        if let Some(verified) = self.verified.get(token, CACHE_VERSION) {
            accepted(&verified)?;
            return Ok(verified);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| describe(e.kind()))?;
        if header.alg == Algorithm::HS256 {
            // An upgraded deployment's own earlier token, or nothing.
            let legacy = self.verify_with_secret(token)?;
            return match ring.legacy_before() {
                Some(before) if legacy.claims.issued_at.timestamp() < before => Ok(legacy),
                _ => Err(ApiError::invalid_token("Token algorithm is not accepted")),
            };
        }
        if header.alg != jws_algorithm(self.algorithm) {
            return Err(ApiError::invalid_token("Token algorithm is not accepted"));
        }
        let kid = header.kid.ok_or_else(|| ApiError::invalid_token("Token has no key id (kid)"))?;
        let key =
            ring.verifying(&kid, now).ok_or_else(|| ApiError::invalid_token("Token key is not known"))?;
        let data =
            jsonwebtoken::decode::<WireClaims>(token, key, validation).map_err(|e| describe(e.kind()))?;
        if header.typ.as_deref() != Some(data.claims.token_type.typ()) {
            return Err(ApiError::invalid_token("Token type header does not match its type"));
        }
        let verified = data.claims.into_verified(Some(kid))?;
        accepted(&verified)?;
        self.verified.insert(token, CACHE_VERSION, &verified);
        Ok(verified)
    }
}

#[cfg(test)]
mod tests;
