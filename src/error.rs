//! The one error type of the HTTP layer, its mapping to status, code and
//! `WWW-Authenticate` header, and the JSON catchers that replace Rocket's HTML
//! pages.
//!
//! Policy: every error leaves as `{"error": CODE, "description": TEXT}`. Text
//! sent to clients is written for clients; causes from the database or the
//! hasher are logged where they are converted (see the `From` impls) and never
//! sent. Guards and data guards cannot hand their error to a catcher directly,
//! so they park it in the request-local cache with [`fail`], and the catcher
//! renders it.

use rocket::http::{Header, Status};
use rocket::request::{self, Request};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Catcher};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::logging::warn_repeated;
use crate::metrics::{self, DatabaseErrorKind};

/// The realm named in every `WWW-Authenticate` challenge.
pub const REALM: &str = "jwt-blocklist";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Missing Bearer token in the Authorization header (or access cookie)")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(String),
    #[error("Token has expired")]
    TokenExpired,
    #[error("Token has been revoked")]
    TokenRevoked,
    #[error("Invalid username or password")]
    InvalidCredentials,
    /// A resource server's credentials (HTTP Basic) are missing or wrong;
    /// nothing says which.
    #[error("Client authentication failed")]
    InvalidClient,
    #[error("The current password is wrong")]
    WrongPassword,
    #[error("Missing or mismatched X-CSRF-Token header")]
    CsrfFailed,
    #[error("No such resource")]
    NotFound,
    #[error("Username is already taken")]
    UsernameTaken,
    #[error("Request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    InvalidInput(String),
    /// Carries the seconds until the client may try again (`Retry-After`).
    #[error("Too many failed logins; try again later")]
    TooManyRequests(u64),
    #[error("The database cannot be reached; try again shortly")]
    ServiceUnavailable,
    /// The password hashing queue is full (load shedding).
    #[error("The server is busy; try again shortly")]
    Busy,
    #[error("Internal server error")]
    Internal,
}

/// The body of every error answer (the shape Flask-JWT-Extended's callbacks
/// use), and the schema the OpenAPI document gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// For people; clients branch on `error`.
    pub description: String,
}

/// The contract's error codes, the stable part of every error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    MissingToken,
    InvalidToken,
    TokenExpired,
    TokenRevoked,
    InvalidCredentials,
    InvalidClient,
    CsrfFailed,
    NotFound,
    UsernameTaken,
    PayloadTooLarge,
    InvalidInput,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
}

impl ApiError {
    pub fn invalid_token(description: impl Into<String>) -> Self {
        ApiError::InvalidToken(description.into())
    }

    pub fn status(&self) -> Status {
        match self {
            ApiError::InvalidRequest(_) => Status::BadRequest,
            ApiError::MissingToken
            | ApiError::InvalidToken(_)
            | ApiError::TokenExpired
            | ApiError::TokenRevoked
            | ApiError::InvalidCredentials
            | ApiError::InvalidClient => Status::Unauthorized,
            ApiError::WrongPassword | ApiError::CsrfFailed => Status::Forbidden,
            ApiError::NotFound => Status::NotFound,
            ApiError::UsernameTaken => Status::Conflict,
            ApiError::PayloadTooLarge => Status::PayloadTooLarge,
            ApiError::InvalidInput(_) => Status::UnprocessableEntity,
            ApiError::TooManyRequests(_) => Status::TooManyRequests,
            ApiError::ServiceUnavailable | ApiError::Busy => Status::ServiceUnavailable,
            ApiError::Internal => Status::InternalServerError,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ApiError::MissingToken => ErrorCode::MissingToken,
            ApiError::InvalidToken(_) => ErrorCode::InvalidToken,
            ApiError::TokenExpired => ErrorCode::TokenExpired,
            ApiError::TokenRevoked => ErrorCode::TokenRevoked,
            ApiError::InvalidCredentials | ApiError::WrongPassword => ErrorCode::InvalidCredentials,
            ApiError::InvalidClient => ErrorCode::InvalidClient,
            ApiError::CsrfFailed => ErrorCode::CsrfFailed,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::UsernameTaken => ErrorCode::UsernameTaken,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::InvalidInput(_) => ErrorCode::InvalidInput,
            ApiError::TooManyRequests(_) => ErrorCode::TooManyRequests,
            ApiError::ServiceUnavailable | ApiError::Busy => ErrorCode::ServiceUnavailable,
            ApiError::Internal => ErrorCode::InternalError,
        }
    }

    /// The RFC 6750 challenge for errors about the Bearer token itself,
    /// and the Basic challenge for a client's credentials.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            ApiError::MissingToken => Some(format!("Bearer realm=\"{REALM}\"")),
            ApiError::InvalidClient => Some(format!("Basic realm=\"{REALM}\"")),
            ApiError::InvalidToken(_) | ApiError::TokenExpired | ApiError::TokenRevoked => {
                // RFC 6750 §3 forbids '"' and '\' in error_description.
                let description = self.to_string().replace(['"', '\\'], "'");
                Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{description}\""
                ))
            }
            _ => None,
        }
    }

    /// Seconds for the `Retry-After` header, where the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests(seconds) => Some(*seconds),
            ApiError::Busy => Some(1),
            _ => None,
        }
    }

    /// One error of each kind: the OpenAPI document lists, for each status,
    /// the codes it can carry ([`ApiError::codes_for`]).
    pub fn every_kind() -> [ApiError; 17] {
        let text = String::new;
        [
            ApiError::InvalidRequest(text()),
            ApiError::MissingToken,
            ApiError::InvalidToken(text()),
            ApiError::TokenExpired,
            ApiError::TokenRevoked,
            ApiError::InvalidCredentials,
            ApiError::InvalidClient,
            ApiError::WrongPassword,
            ApiError::CsrfFailed,
            ApiError::NotFound,
            ApiError::UsernameTaken,
            ApiError::PayloadTooLarge,
            ApiError::InvalidInput(text()),
            ApiError::TooManyRequests(0),
            ApiError::ServiceUnavailable,
            ApiError::Busy,
            ApiError::Internal,
        ]
    }

    /// The codes an answer with `status` can carry.
    pub fn codes_for(status: u16) -> Vec<ErrorCode> {
        let mut codes: Vec<ErrorCode> = Vec::new();
        for error in Self::every_kind().iter().filter(|error| error.status().code == status) {
            if !codes.contains(&error.code()) {
                codes.push(error.code());
            }
        }
        codes
    }

    /// The error a catcher reports when nothing more specific was recorded.
    fn for_status(status: Status) -> Self {
        match status.code {
            400 => ApiError::InvalidRequest("The request could not be understood".into()),
            401 => ApiError::MissingToken,
            404 => ApiError::NotFound,
            413 => ApiError::PayloadTooLarge,
            422 => ApiError::InvalidInput("The request body breaks the rules".into()),
            503 => ApiError::ServiceUnavailable,
            402..=499 => ApiError::InvalidRequest(status.reason().unwrap_or("Request refused").to_owned()),
            _ => ApiError::Internal,
        }
    }
}

/// The verifier library's refusals (its checks are the service's own).
impl From<jwt_blocklist_verifier::VerifyError> for ApiError {
    fn from(error: jwt_blocklist_verifier::VerifyError) -> Self {
        use jwt_blocklist_verifier::VerifyError;
        match error {
            VerifyError::MissingToken => ApiError::MissingToken,
            VerifyError::InvalidToken(description) => ApiError::InvalidToken(description),
            VerifyError::TokenExpired => ApiError::TokenExpired,
            VerifyError::TokenRevoked => ApiError::TokenRevoked,
            VerifyError::NotCurrent => ApiError::ServiceUnavailable,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            _ if error.is_username_taken() => ApiError::UsernameTaken,
            DbError::Unavailable(_) | DbError::Timeout => {
                warn_repeated!("database unavailable: {error}");
                let kind = match error {
                    DbError::Timeout => DatabaseErrorKind::Timeout,
                    _ => DatabaseErrorKind::Unavailable,
                };
                metrics::database_error(kind);
                ApiError::ServiceUnavailable
            }
            DbError::UniqueViolation(_)
            | DbError::Other(_)
            | DbError::Migrate(_)
            | DbError::Config(_)
            | DbError::EventGap => {
                log::error!("database error: {error:?}");
                metrics::database_error(DatabaseErrorKind::Other);
                ApiError::Internal
            }
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        if self == ApiError::Internal {
            log::error!("{} {} answered 500", request.method(), request.uri());
        }
        let body = ErrorBody { error: self.code(), description: self.to_string() };
        let mut response =
            Response::build_from(Json(body).respond_to(request)?).status(self.status()).finalize();
        if let Some(challenge) = self.www_authenticate() {
            response.set_header(Header::new("WWW-Authenticate", challenge));
        }
        if let Some(seconds) = self.retry_after() {
            response.set_header(Header::new("Retry-After", seconds.to_string()));
        }
        if self == ApiError::Busy {
            // A shed request also ends its connection (as proxies do when
            // shedding): a flood must reconnect, through the one accept
            // loop, before it can send the next, rather than keep the
            // workers busy with requests that will be shed too.
            response.set_header(Header::new("Connection", "close"));
        }
        Ok(response)
    }
}

/// What a failed guard leaves for the catcher.
struct Recorded(Option<ApiError>);

/// Records `error` for the catcher and returns the failing outcome; used by
/// request guards and data guards alike.
pub fn fail<S, F>(
    request: &Request<'_>,
    error: ApiError,
) -> rocket::outcome::Outcome<S, (Status, ApiError), F> {
    request.local_cache(|| Recorded(Some(error.clone())));
    rocket::outcome::Outcome::Error((error.status(), error))
}

#[catch(default)]
fn json_catcher(status: Status, request: &Request<'_>) -> ApiError {
    match &request.local_cache(|| Recorded(None)).0 {
        Some(error) if error.status() == status => error.clone(),
        _ => ApiError::for_status(status),
    }
}

pub fn catchers() -> Vec<Catcher> {
    catchers![json_catcher]
}

/// Convenience for request guards.
pub type GuardOutcome<T> = request::Outcome<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile when a kind is added (the match), and fails when
    /// [`ApiError::every_kind`] leaves one out.
    #[test]
    fn every_kind_lists_each_kind_once() {
        fn index(error: &ApiError) -> usize {
            match error {
                ApiError::InvalidRequest(_) => 0,
                ApiError::MissingToken => 1,
                ApiError::InvalidToken(_) => 2,
                ApiError::TokenExpired => 3,
                ApiError::TokenRevoked => 4,
                ApiError::InvalidCredentials => 5,
                ApiError::WrongPassword => 6,
                ApiError::CsrfFailed => 7,
                ApiError::NotFound => 8,
                ApiError::UsernameTaken => 9,
                ApiError::PayloadTooLarge => 10,
                ApiError::InvalidInput(_) => 11,
                ApiError::TooManyRequests(_) => 12,
                ApiError::ServiceUnavailable => 13,
                ApiError::Busy => 14,
                ApiError::Internal => 15,
                ApiError::InvalidClient => 16,
            }
        }
        let mut seen: Vec<usize> = ApiError::every_kind().iter().map(index).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..17).collect::<Vec<_>>());
        let codes = ApiError::codes_for(401);
        assert_eq!(codes.len(), 6, "{codes:?}");
        assert_eq!(ApiError::codes_for(403), [ErrorCode::InvalidCredentials, ErrorCode::CsrfFailed]);
    }
}
