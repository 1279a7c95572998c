//! Tokens: `POST /auth/login` (throttled, and shed when the hashing queue
//! is full) starts a session, `POST /auth/refresh` rotates it (with reuse
//! detection, from the body or the refresh cookie). Both answer through
//! `issue.rs`, in the session's transport.

use chrono::{DateTime, Utc};
use rocket::http::CookieJar;
use rocket::{post, routes, Route, State};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use super::bodies::is_valid_username;
use super::guards::device::ClientDevice;
use super::guards::json::{JsonBody, OptionalJsonBody, RequestBody};
use super::issue::{issue, Grant, TokenAnswer, TokenResponse, Transport};
use super::responses::{BodyErrors, TooManyRequests, Unauthorized, Unavailable, UnsafeAccessErrors};
use crate::auth::guard::{check_csrf, CsrfHeader};
use crate::auth::jwt::TokenType;
use crate::auth::{cookies, Auth};
use crate::config::AppConfig;
use crate::db::{Device, NewSession, Rotation, RotationOutcome, SessionId, Store, TokenId, User};
use crate::error::ApiError;
use crate::metrics::{self, LoginOutcome};

pub fn routes() -> Vec<Route> {
    routes![login, refresh]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(login, refresh))]
pub(crate) struct Doc;

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
            `jbl_access`, `jbl_refresh`, `jbl_csrf` and the CSRF token", body = TokenAnswer,
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
    store: &State<Store>,
    auth: &State<Auth>,
    config: &State<AppConfig>,
) -> Result<TokenResponse, ApiError> {
    let LoginRequest { username, password, transport } = body.0;
    let attempt = auth.throttle.admit(device.0.ip, &username).await.inspect_err(|refused| {
        metrics::login(if *refused == ApiError::Busy { LoginOutcome::Shed } else { LoginOutcome::Throttled })
    })?;
    let ticket = auth.passwords.ticket(device.0.ip).inspect_err(|_| metrics::login(LoginOutcome::Shed))?;
    // A name that could never have registered is just an unknown user: same
    // answer, same argon2 work.
    let user = if is_valid_username(&username) { store.user_by_username(&username).await? } else { None };
    let hash = user.as_ref().map(|user| user.password_hash.as_str());
    let verified = ticket.verify(password, hash).await?;
    drop(ticket);
    match (verified, user) {
        (true, Some(user)) => {
            attempt.succeeded();
            let started = start_session(store, auth, config, jar, &user, device.0, transport).await;
            match &started {
                Ok(_) => metrics::login(LoginOutcome::Success),
                Err(ApiError::InvalidCredentials) => metrics::login(LoginOutcome::Failure),
                Err(_) => {}
            }
            started
        }
        _ => {
            attempt.failed();
            metrics::login(LoginOutcome::Failure);
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// When a session started or refreshed `now` expires: its row must cover
/// every token of it.
fn session_expiry(config: &AppConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::seconds(config.session_ttl() as i64)
}

/// Commits the session, then signs its tokens. `user` was read before the
/// password was checked: if a sweep of the user's sessions (logout-all, a
/// password change, ...) committed since, the session does not start and
/// the login fails as if the password were wrong (it may be, after a
/// change); a sweep that commits later ends the session it finds. So no
/// token of a login in flight when a sweep committed ever works (see
/// `Store::insert_session`).
async fn start_session(
    store: &Store,
    auth: &Auth,
    config: &AppConfig,
    jar: &CookieJar<'_>,
    user: &User,
    device: Device,
    transport: Transport,
) -> Result<TokenResponse, ApiError> {
    let sid = SessionId::new_v4();
    let now = Utc::now();
    let (refresh_jti, expires_at) = (TokenId::new_v4(), session_expiry(config, now));
    let session = NewSession {
        user_id: user.id,
        id: sid,
        refresh_jti,
        expires_at,
        device,
        generation: user.session_generation,
    };
    if !store.insert_session(&session).await? {
        log::info!("a login of user {} lost the race with a sweep of their sessions", user.id);
        return Err(ApiError::InvalidCredentials);
    }
    let (user_id, username) = (user.id, user.username.as_str());
    issue(auth, config, jar, Grant { user_id, username, sid, refresh_jti, now, transport })
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
            refresh token is used up", body = TokenAnswer,
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
    store: &State<Store>,
    auth: &State<Auth>,
    config: &State<AppConfig>,
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
    let now = Utc::now();
    let (next_jti, next_expires_at) = (TokenId::new_v4(), session_expiry(config, now));
    let rotation = Rotation {
        user_id: claims.user_id,
        sid: claims.sid,
        presented_jti: claims.jti,
        presented_expires_at: claims.expires_at,
        next_jti,
        next_expires_at,
        now,
    };
    match store.rotate_refresh(&rotation).await? {
        RotationOutcome::Rotated { username } => {
            let transport = if claims.csrf.is_some() { Transport::Cookie } else { Transport::Bearer };
            let user_id = claims.user_id;
            let grant = Grant {
                user_id,
                username: &username,
                sid: claims.sid,
                refresh_jti: next_jti,
                now,
                transport,
            };
            issue(auth, config, jar, grant)
        }
        RotationOutcome::Reused => {
            log::warn!("refresh token reuse: session {} of user {} revoked", claims.sid, claims.user_id);
            Err(ApiError::TokenRevoked)
        }
        RotationOutcome::UserGone => Err(ApiError::invalid_token("The token's user no longer exists")),
    }
}
