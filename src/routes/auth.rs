//! `/auth/*` for accounts and tokens: register, login (throttled, and shed
//! when the hashing queue is full), refresh (with rotation and reuse
//! detection, from the body or the refresh cookie) and me. Tokens are issued
//! in `issue.rs`, logout is in `logout.rs`, sessions in `sessions.rs`.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::device::ClientDevice;
use super::issue::{issue, Grant, Issued, TokenResponse, Transport};
use super::json::{JsonBody, OptionalJsonBody, RequestBody};
use super::openapi::{
    AccessErrors, BodyErrors, Conflict, TooManyRequests, Unauthorized, Unavailable, UnsafeAccessErrors,
};
use crate::auth::guard::{check_csrf, AccessToken, CsrfHeader};
use crate::auth::jwt::TokenType;
use crate::auth::{cookies, Auth};
use crate::db::{Db, Device, NewSession, Rotation, RotationOutcome, User};
use crate::error::ApiError;
use crate::metrics;

pub fn routes() -> Vec<Route> {
    routes![register, login, refresh, me]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(register, login, refresh, me))]
pub(crate) struct Doc;

#[derive(Deserialize, ToSchema)]
struct Credentials {
    /// Unique case-insensitively.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    username: String,
    /// 8 to 1024 bytes of UTF-8.
    #[schema(min_length = 8, max_length = 1024, example = "correct horse battery staple")]
    password: String,
}

impl RequestBody for Credentials {
    const FIELDS: &'static [&'static str] = &["username", "password"];
}

/// A name that breaks the register rules is just a failed login (401).
#[derive(Deserialize, ToSchema)]
struct LoginRequest {
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
    #[serde(default)]
    transport: Transport,
}

impl RequestBody for LoginRequest {
    const FIELDS: &'static [&'static str] = &["username", "password"];
}

/// Without `refresh_token` (or without a body), the refresh cookie is used;
/// the document describes the Bearer way, where the field is required.
#[derive(Deserialize, ToSchema)]
struct RefreshRequest {
    #[schema(value_type = String, required = true)]
    refresh_token: Option<String>,
}

impl RequestBody for RefreshRequest {
    const FIELDS: &'static [&'static str] = &[];
}

#[derive(Serialize, ToSchema)]
struct UserView {
    id: Uuid,
    username: String,
    #[schema(format = DateTime)]
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

#[utoipa::path(
    summary = "Register a user",
    context_path = "/auth",
    tag = "tokens",
    request_body = Credentials,
    responses(
        (status = 201, description = "Registered", body = UserView),
        BodyErrors,
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
#[post("/register", data = "<body>")]
async fn register(
    body: JsonBody<Credentials>,
    device: ClientDevice,
    db: &Db,
    auth: &State<Auth>,
) -> Result<(Status, Json<UserView>), ApiError> {
    let Credentials { username, password } = body.0;
    validate_registration(&username, &password)?;
    let ticket = auth.passwords.ticket(device.0.ip)?;
    // Cheap early answer; the unique index still decides races.
    if db.user_by_username(&username).await?.is_some() {
        return Err(ApiError::UsernameTaken);
    }
    let user = User {
        id: Uuid::new_v4(),
        username,
        password_hash: ticket.hash(password).await?,
        created_at: Utc::now().trunc_subsecs(6),
        session_generation: 0,
    };
    drop(ticket);
    db.insert_user(&user).await?;
    Ok((Status::Created, Json(UserView::from(&user))))
}

/// Throttled per (client address, username) before anything else (429 after
/// the tarpit), then shed (503, at once) if the hashing queue is full; only
/// then is a hash spent.
#[utoipa::path(
    summary = "Log in: start a session",
    description = "Checks the password and starts a session: a Bearer pair, or with `\"transport\": \"cookie\"` HttpOnly cookies and a CSRF token. An unknown user and a wrong password get the same 401 in about the same time. After `login_max_failures` failures for one client address and username within `login_failure_window`, 429 with `Retry-After`; when too many logins wait for password hashing, 503 with `Retry-After` at once.",
    context_path = "/auth",
    tag = "tokens",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session: a Bearer pair, or (transport cookie) the cookies \
            `jbl_access`, `jbl_refresh`, `jbl_csrf` and the CSRF token", body = Issued,
            headers(("Cache-Control" = String, description = "no-store"),
                ("Set-Cookie" = String, description = "With transport cookie: the three cookies"))),
        BodyErrors,
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
#[post("/login", data = "<body>")]
async fn login(
    body: JsonBody<LoginRequest>,
    device: ClientDevice,
    jar: &CookieJar<'_>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<TokenResponse, ApiError> {
    let LoginRequest { username, password, transport } = body.0;
    let attempt = auth.throttle.admit(device.0.ip, &username).await.inspect_err(|refused| {
        metrics::login(if *refused == ApiError::Busy { "shed" } else { "throttled" })
    })?;
    let ticket = auth.passwords.ticket(device.0.ip).inspect_err(|_| metrics::login("shed"))?;
    // A name that could never have registered is just an unknown user: same
    // answer, same argon2 work.
    let user = if is_valid_username(&username) { db.user_by_username(&username).await? } else { None };
    let hash = user.as_ref().map(|user| user.password_hash.as_str());
    let verified = ticket.verify(password, hash).await?;
    drop(ticket);
    match (verified, user) {
        (true, Some(user)) => {
            attempt.succeeded();
            let started = start_session(db, auth, jar, &user, device.0, transport).await;
            match &started {
                Ok(_) => metrics::login("success"),
                Err(ApiError::InvalidCredentials) => metrics::login("failure"),
                Err(_) => {}
            }
            started
        }
        _ => {
            attempt.failed();
            metrics::login("failure");
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

/// Commits the session, then signs its tokens. `user` was read before the
/// password was checked: if a sweep of the user's sessions (logout-all, a
/// password change, ...) committed since, the session does not start and
/// the login fails as if the password were wrong (it may be, after a
/// change); a sweep that commits later ends the session it finds. So no
/// token of a login in flight when a sweep committed ever works (see
/// `Store::insert_session`).
async fn start_session(
    db: &Db,
    auth: &Auth,
    jar: &CookieJar<'_>,
    user: &User,
    device: Device,
    transport: Transport,
) -> Result<TokenResponse, ApiError> {
    let sid = Uuid::new_v4();
    let now = Utc::now();
    let (refresh_jti, expires_at) = (Uuid::new_v4(), session_expiry(auth, now));
    let session = NewSession {
        id: sid,
        user_id: user.id,
        refresh_jti,
        expires_at,
        device,
        generation: user.session_generation,
    };
    if !db.insert_session(&session).await? {
        log::info!("a login of user {} lost the race with a sweep of their sessions", user.id);
        return Err(ApiError::InvalidCredentials);
    }
    issue(auth, jar, Grant { user, sid, refresh_jti, now, transport })
}

/// The refresh token comes from the body or, failing that, from the refresh
/// cookie, which needs the CSRF header like any cookie-authenticated POST.
/// The answer has the shape of the login that started the session.
#[utoipa::path(
    summary = "Refresh: rotate the session's tokens",
    description = "Uses up the presented refresh token and answers the session's next pair, in the shape of its login. Presenting a used-up refresh token again is `token_revoked` and revokes the whole session.",
    context_path = "/auth",
    tag = "tokens",
    request_body(content = RefreshRequest, description = "A cookie session leaves the body out (or sends \
        `{}`) and presents the refresh cookie and `X-CSRF-Token` instead"),
    security((), ("refresh_cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The session's next pair, in the shape of its login; the presented \
            refresh token is used up", body = Issued,
            headers(("Cache-Control" = String, description = "no-store"),
                ("Set-Cookie" = String, description = "For a cookie session: the three cookies"))),
        BodyErrors,
        UnsafeAccessErrors,
    )
)]
#[post("/refresh", data = "<body>")]
async fn refresh(
    body: OptionalJsonBody<RefreshRequest>,
    csrf: CsrfHeader<'_>,
    jar: &CookieJar<'_>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<TokenResponse, ApiError> {
    let in_body = body.0.and_then(|body| body.refresh_token);
    let claims = match (in_body, jar.get(cookies::REFRESH)) {
        (Some(token), _) => auth.jwt.verify(&token, TokenType::Refresh)?,
        (None, Some(cookie)) => {
            let claims = auth.jwt.verify(cookie.value(), TokenType::Refresh)?;
            check_csrf(&claims, csrf.0)?;
            claims
        }
        (None, None) => {
            return Err(ApiError::InvalidRequest(
                "Missing field `refresh_token` (and no refresh cookie)".into(),
            ))
        }
    };
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
        RotationOutcome::Rotated => {
            let transport = if claims.csrf.is_some() { Transport::Cookie } else { Transport::Bearer };
            issue(auth, jar, Grant { user: &user, sid: claims.sid, refresh_jti: next_jti, now, transport })
        }
        RotationOutcome::Reused => {
            log::warn!("refresh token reuse: session {} of user {} revoked", claims.sid, user.id);
            Err(ApiError::TokenRevoked)
        }
    }
}

#[utoipa::path(
    summary = "Who am I",
    context_path = "/auth",
    tag = "tokens",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        AccessErrors,
    )
)]
#[get("/me")]
async fn me(token: AccessToken, db: &Db) -> Result<Json<UserView>, ApiError> {
    let user = db
        .user_by_id(token.0.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists"))?;
    Ok(Json(UserView::from(&user)))
}
