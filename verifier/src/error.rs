//! What a refused token is, as jwt-blocklist itself says it: the same
//! `error` codes, descriptions, statuses and RFC 6750 challenges, so a
//! resource server answers exactly as the service would.

/// The realm of every challenge (the service's).
pub const REALM: &str = "jwt-blocklist";

/// Why a request's token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Authorization: Bearer …` (or another scheme, or an empty token).
    #[error("Missing Bearer token in the Authorization header (or access cookie)")]
    MissingToken,
    /// Bad signature, algorithm, key, issuer, type or claims.
    #[error("{0}")]
    InvalidToken(String),
    /// The clock reached `exp` plus leeway.
    #[error("Token has expired")]
    TokenExpired,
    /// Its `jti` or its `sid` is revoked.
    #[error("Token has been revoked")]
    TokenRevoked,
    /// The verifier cannot vouch for its revocation set: no heartbeat or
    /// event for longer than `max_staleness` (or not loaded yet, or over
    /// capacity). Every token is refused until it is current again; a
    /// resource server answers 503.
    #[error("The revocation list is not current; try again shortly")]
    NotCurrent,
}

impl VerifyError {
    pub(crate) fn invalid(description: impl Into<String>) -> Self {
        VerifyError::InvalidToken(description.into())
    }

    /// The contract's `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingToken => "missing_token",
            VerifyError::InvalidToken(_) => "invalid_token",
            VerifyError::TokenExpired => "token_expired",
            VerifyError::TokenRevoked => "token_revoked",
            VerifyError::NotCurrent => "service_unavailable",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::NotCurrent => 503,
            _ => 401,
        }
    }

    /// `{"error": CODE, "description": TEXT}`, the service's error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.code(), description: self.to_string() }
    }

    /// The RFC 6750 challenge for `WWW-Authenticate`, where there is one.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            VerifyError::MissingToken => Some(format!("Bearer realm=\"{REALM}\"")),
            VerifyError::InvalidToken(_) | VerifyError::TokenExpired | VerifyError::TokenRevoked => {
                // RFC 6750 §3 forbids '"' and '\' in error_description.
                let description = self.to_string().replace(['"', '\\'], "'");
                Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{description}\""
                ))
            }
            VerifyError::NotCurrent => None,
        }
    }
}

/// The service's error body, members in its order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub description: String,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

/// Why [`Verifier::start`](crate::Verifier::start) failed.
#[cfg(feature = "client")]
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{0}")]
    Invalid(String),
}

/// The token of an `Authorization` header value (`Bearer <token>`, the
/// scheme matched case-insensitively), as the service reads it.
pub fn bearer(authorization: Option<&str>) -> Result<&str, VerifyError> {
    let (scheme, token) =
        authorization.and_then(|value| value.trim().split_once(' ')).ok_or(VerifyError::MissingToken)?;
    let token = token.trim();
    match scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        true => Ok(token),
        false => Err(VerifyError::MissingToken),
    }
}
