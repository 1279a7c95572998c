//! `/auth/*` for accounts and tokens: register, login (throttled, and shed
//! when the hashing queue is full), refresh (with rotation and reuse
//! detection) and me. Logout is in `logout.rs`, sessions in `sessions.rs`.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rocket::http::{Header, Status};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Responder, Route, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::device::ClientDevice;
use super::json::{JsonBody, RequestBody};
use crate::auth::guard::AccessToken;
use crate::auth::jwt::{NewToken, TokenType};
use crate::auth::Auth;
use crate::db::{Db, Device, NewSession, Rotation, RotationOutcome, User};
use crate::error::ApiError;

pub fn routes() -> Vec<Route> {
    routes![register, login, refresh, me]
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

impl RequestBody for Credentials {
    const FIELDS: &'static [&'static str] = &["username", "password"];
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

impl RequestBody for RefreshRequest {
    const FIELDS: &'static [&'static str] = &["refresh_token"];
}

#[derive(Serialize)]
struct UserView {
    id: Uuid,
    username: String,
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView { id: user.id, username: user.username.clone(), created_at: rfc3339(user.created_at) }
    }
}

pub(super) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[derive(Serialize)]
struct TokenPair {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_expires_in: u64,
}

/// Token responses must not be cached (RFC 6749 §5.1).
#[derive(Responder)]
struct TokenResponse {
    body: Json<TokenPair>,
    cache_control: Header<'static>,
    pragma: Header<'static>,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        TokenResponse {
            body: Json(pair),
            cache_control: Header::new("Cache-Control", "no-store"),
            pragma: Header::new("Pragma", "no-cache"),
        }
    }
}

/// 3-32 characters of `[A-Za-z0-9_.-]`.
fn is_valid_username(username: &str) -> bool {
    (3..=32).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn validate_registration(username: &str, password: &str) -> Result<(), ApiError> {
    if !is_valid_username(username) {
        return Err(ApiError::InvalidInput(
            "username must be 3-32 characters of letters, digits, '_', '.' or '-'".into(),
        ));
    }
    validate_password(password, "password")
}

/// 8-1024 bytes; `field` names it in the message.
pub(super) fn validate_password(password: &str, field: &str) -> Result<(), ApiError> {
    if !(8..=1024).contains(&password.len()) {
        return Err(ApiError::InvalidInput(format!("{field} must be 8 to 1024 bytes long")));
    }
    Ok(())
}

#[post("/register", data = "<body>")]
async fn register(
    body: JsonBody<Credentials>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<(Status, Json<UserView>), ApiError> {
    let Credentials { username, password } = body.0;
    validate_registration(&username, &password)?;
    let ticket = auth.passwords.ticket()?;
    // Cheap early answer; the unique index still decides races.
    if db.user_by_username(&username).await?.is_some() {
        return Err(ApiError::UsernameTaken);
    }
    let user = User {
        id: Uuid::new_v4(),
        username,
        password_hash: ticket.hash(password).await?,
        created_at: Utc::now().trunc_subsecs(6),
    };
    drop(ticket);
    db.insert_user(&user).await?;
    Ok((Status::Created, Json(UserView::from(&user))))
}

/// Throttled per (client address, username) before anything else, then
/// shed (503) if the hashing queue is full; only then is a hash spent.
#[post("/login", data = "<body>")]
async fn login(
    body: JsonBody<Credentials>,
    device: ClientDevice,
    db: &Db,
    auth: &State<Auth>,
) -> Result<TokenResponse, ApiError> {
    let Credentials { username, password } = body.0;
    let attempt = auth.throttle.attempt(device.0.ip, &username).map_err(ApiError::TooManyRequests)?;
    let ticket = auth.passwords.ticket()?;
    // A name that could never have registered is just an unknown user: same
    // answer, same argon2 work.
    let user = if is_valid_username(&username) { db.user_by_username(&username).await? } else { None };
    let hash = user.as_ref().map(|user| user.password_hash.as_str());
    let verified = ticket.verify(password, hash).await?;
    drop(ticket);
    match (verified, user) {
        (true, Some(user)) => {
            attempt.succeeded();
            start_session(db, auth, &user, device.0).await
        }
        _ => {
            attempt.failed();
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// The lifetime of a session's blocklist row must cover every token of it.
pub(super) fn session_ttl(auth: &Auth) -> u64 {
    auth.config.access_token_ttl.max(auth.config.refresh_token_ttl)
}

fn session_expiry(auth: &Auth, now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::seconds(session_ttl(auth) as i64)
}

fn token_pair(
    auth: &Auth,
    user: &User,
    sid: Uuid,
    now: DateTime<Utc>,
    refresh_jti: Uuid,
) -> Result<TokenPair, ApiError> {
    let config = &auth.config;
    let token = |token_type, username, jti, ttl_seconds| NewToken {
        token_type,
        user_id: user.id,
        username,
        sid,
        jti,
        now,
        ttl_seconds,
    };
    let access = auth.jwt.issue(token(
        TokenType::Access,
        Some(&user.username),
        Uuid::new_v4(),
        config.access_token_ttl,
    ))?;
    let refresh = auth.jwt.issue(token(TokenType::Refresh, None, refresh_jti, config.refresh_token_ttl))?;
    Ok(TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        token_type: "Bearer",
        expires_in: config.access_token_ttl,
        refresh_expires_in: config.refresh_token_ttl,
    })
}

/// Commits the session, then signs its tokens: a logout-all that commits
/// before the session row is seen by nothing signed earlier (see
/// `Store::revoke_user_sessions`).
async fn start_session(db: &Db, auth: &Auth, user: &User, device: Device) -> Result<TokenResponse, ApiError> {
    let sid = Uuid::new_v4();
    let now = Utc::now();
    let (refresh_jti, expires_at) = (Uuid::new_v4(), session_expiry(auth, now));
    db.insert_session(&NewSession { id: sid, user_id: user.id, refresh_jti, expires_at, device }).await?;
    Ok(token_pair(auth, user, sid, now, refresh_jti)?.into())
}

#[post("/refresh", data = "<body>")]
async fn refresh(
    body: JsonBody<RefreshRequest>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<TokenResponse, ApiError> {
    let claims = auth.jwt.verify(&body.0.refresh_token, TokenType::Refresh)?;
    let user = db
        .user_by_id(claims.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists"))?;
    let now = Utc::now();
    let (next_jti, next_expires_at) = (Uuid::new_v4(), session_expiry(auth, now));
    let rotation = Rotation {
        sid: claims.sid,
        user_id: user.id,
        presented_jti: claims.jti,
        presented_expires_at: claims.expires_at,
        next_jti,
        next_expires_at,
        now,
    };
    match db.rotate_refresh(&rotation).await? {
        RotationOutcome::Rotated => Ok(token_pair(auth, &user, claims.sid, now, next_jti)?.into()),
        RotationOutcome::Reused => {
            log::warn!("refresh token reuse: session {} of user {} revoked", claims.sid, user.id);
            Err(ApiError::TokenRevoked)
        }
    }
}

#[get("/me")]
async fn me(token: AccessToken, db: &Db) -> Result<Json<UserView>, ApiError> {
    let user = db
        .user_by_id(token.0.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists"))?;
    Ok(Json(UserView::from(&user)))
}
