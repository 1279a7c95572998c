//! The caller's sessions, the way a "devices" page shows them:
//! `GET /auth/sessions`, `DELETE /auth/sessions/{id}`, and
//! `POST /auth/password`, which ends every other session.

use rocket::serde::json::{json, Json, Value};
use rocket::{delete, get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::{rfc3339, validate_password};
use super::json::{JsonBody, RequestBody};
use crate::auth::guard::AccessToken;
use crate::auth::Auth;
use crate::db::{Db, Reason, SessionInfo, SessionSweep};
use crate::error::ApiError;

pub fn routes() -> Vec<Route> {
    routes![list, revoke_one, change_password]
}

#[derive(Serialize)]
struct SessionView {
    id: Uuid,
    created_at: String,
    expires_at: String,
    refreshed_at: Option<String>,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

impl SessionView {
    fn new(session: SessionInfo, current_sid: Uuid) -> Self {
        SessionView {
            id: session.id,
            created_at: rfc3339(session.created_at),
            expires_at: rfc3339(session.expires_at),
            refreshed_at: session.refreshed_at.map(rfc3339),
            user_agent: session.device.user_agent,
            ip: session.device.ip.map(|ip| ip.to_string()),
            current: session.id == current_sid,
        }
    }
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionView>,
}

/// The caller's live sessions (neither revoked nor expired), newest first.
#[get("/sessions")]
async fn list(token: AccessToken, db: &Db) -> Result<Json<SessionList>, ApiError> {
    let claims = token.0;
    let sessions = db.sessions_of(claims.user_id).await?;
    let sessions = sessions.into_iter().map(|session| SessionView::new(session, claims.sid)).collect();
    Ok(Json(SessionList { sessions }))
}

/// Ends one of the caller's live sessions (the calling one included). Any
/// other id, well-formed or not, is 404: nothing leaks about other users.
#[delete("/sessions/<id>")]
async fn revoke_one(token: AccessToken, id: &str, db: &Db) -> Result<Json<Value>, ApiError> {
    let sid = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    if db.revoke_session(token.0.user_id, sid, Reason::SessionRevoked).await? {
        Ok(Json(json!({ "message": "Session revoked" })))
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

impl RequestBody for PasswordChange {
    const FIELDS: &'static [&'static str] = &["current_password", "new_password"];
}

/// Checks the current password (403 if wrong, nothing changed), then stores
/// the new hash and ends every other session in one transaction; the
/// calling session stays.
#[post("/password", data = "<body>")]
async fn change_password(
    token: AccessToken,
    body: JsonBody<PasswordChange>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<Json<Value>, ApiError> {
    let claims = token.0;
    let PasswordChange { current_password, new_password } = body.0;
    validate_password(&new_password, "new_password")?;
    let ticket = auth.passwords.ticket()?;
    let user = db
        .user_by_id(claims.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists"))?;
    if !ticket.verify(current_password, Some(&user.password_hash)).await? {
        return Err(ApiError::WrongPassword);
    }
    let new_hash = ticket.hash(new_password).await?;
    drop(ticket);
    let sweep = SessionSweep {
        user_id: user.id,
        keep: Some(claims.sid),
        reason: Reason::PasswordChanged,
        new_password_hash: Some(new_hash),
    };
    let revoked = db.sweep_sessions(&sweep).await?;
    Ok(Json(json!({ "message": "Password changed", "revoked_sessions": revoked })))
}
