//! Token issuing and verification: HS256 only, the contract's claims, and the
//! mapping of every way a token can be wrong to `invalid_token` or
//! `token_expired`.

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{AppConfig, Secret};
use crate::db::{SessionId, TokenId, UserId};
use crate::error::ApiError;

/// The one algorithm the service signs with and accepts.
pub const ALGORITHM: Algorithm = Algorithm::HS256;

/// Keeps access and refresh tokens apart (the `type` claim, as
/// Flask-JWT-Extended names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims as they travel. Ids stay strings here so that a non-canonical
/// one can be refused even when correctly signed.
#[derive(Debug, Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    jti: String,
    sid: String,
    #[serde(rename = "type")]
    token_type: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Cookie sessions: the binding to the CSRF token (see `csrf.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
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
}

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

/// Signing and verification keys plus the validation rules, built once.
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: i64,
}

/// Why the signing keys could not be built (the service refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no crypto backend for jsonwebtoken: this build enables none, or more than one")]
    NoCryptoBackend,
    #[error("the signing key is unusable: {0}")]
    Unusable(#[from] jsonwebtoken::errors::Error),
}

impl Jwt {
    /// Fails, rather than panicking at the first token, when jsonwebtoken
    /// has no crypto backend (it needs exactly one; see Cargo.toml).
    pub fn new(secret: &Secret, config: &AppConfig) -> Result<Self, KeyError> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(KeyError::NoCryptoBackend);
        }
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        // `exp` and `nbf` are checked below, to the microsecond: the library
        // compares whole seconds, which accepts a token for up to a second
        // past `exp + leeway`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Ok(Jwt {
            encoding: EncodingKey::from_secret(secret.expose())?,
            decoding: DecodingKey::from_secret(secret.expose())?,
            validation,
            issuer: config.issuer.clone(),
            leeway: config.leeway as i64,
        })
    }

    /// Signs `token`.
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
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.encoding).map_err(|e| {
            log::error!("cannot sign a token: {e}");
            ApiError::Internal
        })?;
        Ok(SignedToken { token, jti, expires_at: timestamp(exp)? })
    }

    /// Verifies signature (first), algorithm, `iss`, `exp`/`nbf` with leeway,
    /// the required claims and the token type. Says nothing about revocation.
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
    /// revocation takes both).
    pub fn verify_any(&self, token: &str) -> Result<Claims, ApiError> {
        self.verify_any_at(token, Utc::now())
    }

    fn verify_any_at(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, ApiError> {
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| describe(e.kind()))?;
        let wire = data.claims;
        self.check_times(&wire, now)?;
        if wire.token_type == TokenType::Access && wire.username.is_none() {
            return Err(ApiError::invalid_token("Token is missing the username claim"));
        }
        Ok(Claims {
            user_id: UserId(canonical_uuid(&wire.sub, "sub")?),
            sid: SessionId(canonical_uuid(&wire.sid, "sid")?),
            jti: TokenId(canonical_uuid(&wire.jti, "jti")?),
            token_type: wire.token_type,
            issued_at: timestamp(wire.iat)?,
            expires_at: timestamp(wire.exp)?,
            username: wire.username,
            csrf: wire.csrf,
        })
    }
}

impl Jwt {
    /// RFC 7519: expired from the instant `now` reaches `exp + leeway`; not
    /// yet valid while `now` is before `nbf - leeway`. Never rounded.
    fn check_times(&self, wire: &WireClaims, now: DateTime<Utc>) -> Result<(), ApiError> {
        let micros = |seconds: i64| seconds.saturating_mul(1_000_000);
        let now = now.timestamp_micros();
        if now >= micros(wire.exp.saturating_add(self.leeway)) {
            return Err(ApiError::TokenExpired);
        }
        if wire.nbf.is_some_and(|nbf| now < micros(nbf.saturating_sub(self.leeway))) {
            return Err(ApiError::invalid_token("Token is not yet valid"));
        }
        Ok(())
    }
}

fn describe(kind: &ErrorKind) -> ApiError {
    match kind {
        ErrorKind::InvalidSignature => ApiError::invalid_token("Signature verification failed"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            ApiError::invalid_token("Token algorithm is not accepted")
        }
        ErrorKind::InvalidIssuer => ApiError::invalid_token("Token issuer is not accepted"),
        ErrorKind::MissingRequiredClaim(claim) => {
            ApiError::invalid_token(format!("Token is missing the {claim} claim"))
        }
        ErrorKind::Json(_) => ApiError::invalid_token("Token claims are missing or malformed"),
        _ => ApiError::invalid_token("Token is malformed"),
    }
}

/// Accepts only the canonical lowercase hyphenated form.
fn canonical_uuid(value: &str, claim: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .ok()
        .filter(|id| id.hyphenated().to_string() == value)
        .ok_or_else(|| ApiError::invalid_token(format!("The {claim} claim is not a canonical UUID")))
}

fn timestamp(seconds: i64) -> Result<DateTime<Utc>, ApiError> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .ok_or_else(|| ApiError::invalid_token("Token times are out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> Jwt {
        let figment = rocket::figment::Figment::from(rocket::Config::default())
            .merge(("jwt_secret", "a test secret that is long enough, 32+"));
        let config = AppConfig::from_figment(&figment).expect("valid");
        Jwt::new(&config.resolve_secret().expect("secret"), &config).expect("a crypto backend")
    }

    /// jsonwebtoken 10+ compiles without a crypto backend and panics at the
    /// first token: this build must sign and verify.
    #[test]
    fn a_token_signed_here_verifies_and_a_changed_one_does_not() {
        let jwt = jwt();
        let (user_id, sid, jti) = (UserId::new_v4(), SessionId::new_v4(), TokenId::new_v4());
        let issued = jwt
            .issue(NewToken {
                token_type: TokenType::Access,
                user_id,
                username: Some("alice"),
                sid,
                jti,
                now: Utc::now(),
                ttl_seconds: 60,
                csrf: None,
            })
            .expect("signed");

        let claims = jwt.verify(&issued.token, TokenType::Access).expect("verified");
        assert_eq!((claims.user_id, claims.sid, claims.jti), (user_id, sid, jti));

        let mut tampered = issued.token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(jwt.verify(&tampered, TokenType::Access), Err(ApiError::InvalidToken(_))));
    }
}
