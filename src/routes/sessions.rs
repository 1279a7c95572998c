//! The caller's sessions, the way a "devices" page shows them:
//! `GET /auth/sessions`, `DELETE /auth/sessions/{id}`, and
//! `POST /auth/password`, which ends every other session.

use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::bodies::{rfc3339, validate_password, LoggedOut};
use super::guards::device::ClientDevice;
use super::guards::json::{JsonBody, RequestBody};
use super::responses::{AccessErrors, BodyErrors, NotFound, TooManyRequests, UnsafeAccessErrors};
use crate::auth::guard::AccessToken;
use crate::auth::Auth;
use crate::db::{Reason, SessionId, SessionInfo, SessionSweep, Store};
use crate::error::ApiError;

pub fn routes() -> Vec<Route> {
    routes![list, revoke_one, change_password]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list, revoke_one, change_password))]
pub(crate) struct Doc;

/// One live session of the caller's, as seen at login.
#[derive(Serialize, ToSchema)]
struct SessionView {
    id: Uuid,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// The last refresh, or null.
    #[schema(format = DateTime)]
    refreshed_at: Option<String>,
    /// At most 256 characters.
    user_agent: Option<String>,
    ip: Option<String>,
    /// Whether this is the calling session.
    current: bool,
}

impl SessionView {
    fn new(session: SessionInfo, current_sid: SessionId) -> Self {
        SessionView {
            id: session.id.0,
            created_at: rfc3339(session.created_at),
            expires_at: rfc3339(session.expires_at),
            refreshed_at: session.refreshed_at.map(rfc3339),
            user_agent: session.device.user_agent,
            ip: session.device.ip.map(|ip| ip.to_string()),
            current: session.id == current_sid,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct SessionList {
    /// Newest first.
    sessions: Vec<SessionView>,
}

/// The caller's live sessions (neither revoked nor expired), newest first.
#[utoipa::path(
    summary = "List my sessions",
    context_path = "/auth",
    tag = "sessions",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's live sessions", body = SessionList),
        AccessErrors,
    )
)]
#[get("/sessions")]
async fn list(token: AccessToken, store: &State<Store>) -> Result<Json<SessionList>, ApiError> {
    let claims = token.0;
    let sessions = store.sessions_of(claims.user_id).await?;
    let sessions = sessions.into_iter().map(|session| SessionView::new(session, claims.sid)).collect();
    Ok(Json(SessionList { sessions }))
}

/// Ends one of the caller's live sessions (the calling one included). Any
/// other id, well-formed or not, is 404: nothing leaks about other users.
#[utoipa::path(
    summary = "Revoke one of my sessions",
    description = "Any id that is not one of the caller's live sessions (another user's, revoked, expired, malformed) is 404, so nothing leaks about other users.",
    context_path = "/auth",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "A session id from GET /auth/sessions")),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The session is revoked", body = Revoked),
        UnsafeAccessErrors,
        (status = 404, response = NotFound),
    )
)]
#[delete("/sessions/<id>")]
async fn revoke_one(token: AccessToken, id: &str, store: &State<Store>) -> Result<Json<Revoked>, ApiError> {
    let sid: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    if store.revoke_session(token.0.user_id, sid, Reason::SessionRevoked).await? {
        Ok(Json(Revoked { message: "Session revoked" }))
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Serialize, ToSchema)]
struct Revoked {
    message: &'static str,
}

#[derive(Deserialize, ToSchema)]
struct PasswordChange {
    current_password: String,
    /// 8 to 1024 bytes of UTF-8.
    #[schema(min_length = 8, max_length = 1024)]
    new_password: String,
}

impl RequestBody for PasswordChange {
    const FIELDS: &'static [&'static str] = &["current_password", "new_password"];
}

/// Checks the current password (403 if wrong, nothing changed), then stores
/// the new hash and ends every other session in one transaction; the
/// calling session stays.
#[utoipa::path(
    summary = "Change my password",
    description = "Checks the current password (403 if wrong; nothing changes), stores the new one and revokes every other session of the user; the calling session stays. Wrong current passwords count like failed logins of the same client address and username: past `login_max_failures`, 429 with `Retry-After`.",
    context_path = "/auth",
    tag = "sessions",
    request_body = PasswordChange,
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Changed; every other session is revoked", body = LoggedOut),
        BodyErrors,
        UnsafeAccessErrors,
        (status = 429, response = TooManyRequests),
    )
)]
#[post("/password", data = "<body>")]
async fn change_password(
    token: AccessToken,
    body: JsonBody<PasswordChange>,
    device: ClientDevice,
    store: &State<Store>,
    auth: &State<Auth>,
) -> Result<Json<LoggedOut>, ApiError> {
    let claims = token.0;
    let PasswordChange { current_password, new_password } = body.0;
    validate_password(&new_password, "new_password")?;
    // A stolen access token must not buy unlimited guesses at the password:
    // its checks count like logins, for the same (address, username) pair.
    let username = claims.username.as_deref().unwrap_or_default();
    let attempt = auth.throttle.admit(device.0.ip, username).await?;
    let ticket = auth.passwords.ticket(device.0.ip)?;
    let user = store
        .user_by_id(claims.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists"))?;
    if !ticket.verify(current_password, Some(&user.password_hash)).await? {
        attempt.failed();
        return Err(ApiError::WrongPassword);
    }
    attempt.succeeded();
    let new_hash = ticket.hash(new_password).await?;
    drop(ticket);
    let sweep = SessionSweep {
        user_id: user.id,
        keep: Some(claims.sid),
        reason: Reason::PasswordChanged,
        new_password_hash: Some(new_hash),
    };
    let revoked = store.sweep_sessions(&sweep).await?;
    Ok(Json(LoggedOut::new("Password changed", Some(revoked))))
}
