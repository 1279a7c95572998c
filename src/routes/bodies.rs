//! What more than one route file speaks: the logout answer, the time format
//! of every body, and the rules for usernames and passwords.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// The message of every logout, whatever its scope, of logout-all and of a
/// password change's ending of the other sessions: the contract's words
/// (Flask-JWT-Extended's too); `revoked_sessions` says how far it went.
pub const LOGGED_OUT: &str = "Successfully logged out";

/// What a logout did.
#[derive(Serialize, ToSchema)]
pub struct LoggedOut {
    /// "Successfully logged out" for every logout and logout-all.
    message: &'static str,
    /// For `others`, `global` and logout-all: the live sessions this call
    /// revoked (the caller's included where it ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_sessions: Option<u64>,
}

impl LoggedOut {
    pub fn new(message: &'static str, revoked_sessions: Option<u64>) -> Self {
        LoggedOut { message, revoked_sessions }
    }
}

/// RFC 3339, UTC, to the microsecond: every time in every body.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// 3-32 characters of `[A-Za-z0-9_.-]`.
pub fn is_valid_username(username: &str) -> bool {
    (3..=32).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// 8-1024 bytes; `field` names it in the message.
pub fn validate_password(password: &str, field: &str) -> Result<(), ApiError> {
    if !(8..=1024).contains(&password.len()) {
        return Err(ApiError::InvalidInput(format!("{field} must be 8 to 1024 bytes long")));
    }
    Ok(())
}
