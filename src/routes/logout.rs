//! Ending tokens and sessions from the client's side: `POST /auth/logout`
//! (with `scope=local|others|global`), `POST /auth/logout-all`, and
//! `POST /auth/revoke` (RFC 7009, by possession of the token).

use rocket::form::{self, error::ErrorKind, Strict};
use rocket::http::CookieJar;
use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use super::bodies::{LoggedOut, LOGGED_OUT};
use super::guards::form::FormBody;
use super::responses::{BadRequest, InvalidInput, PayloadTooLarge, Unavailable, UnsafeAccessErrors};
use crate::auth::guard::{AccessToken, Via};
use crate::auth::jwt::{Claims, TokenType};
use crate::auth::{cookies, Auth};
use crate::config::AppConfig;
use crate::db::{Presented, Reason, SessionId, SessionSweep, Store};
use crate::error::ApiError;

pub fn routes() -> Vec<Route> {
    routes![logout, logout_all, revoke]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(logout, logout_all, revoke), components(schemas(Scope)))]
pub(crate) struct Doc;

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Scope {
    /// This token and its session (the default).
    Local,
    /// Every other session of the user; this one stays.
    Others,
    /// Every session of the user, as logout-all.
    Global,
}

impl Scope {
    /// Left out: `local`. Given twice, even with one value, or with any
    /// other value: 422 (Rocket's `Option` would quietly make it `local`).
    fn parse(scope: form::Result<'_, Strict<&str>>) -> Result<Scope, ApiError> {
        let scope = match scope {
            Ok(scope) => scope.into_inner(),
            Err(errors) if errors.iter().all(|error| matches!(error.kind, ErrorKind::Missing)) => "local",
            Err(_) => "",
        };
        match scope {
            "local" => Ok(Scope::Local),
            "others" => Ok(Scope::Others),
            "global" => Ok(Scope::Global),
            _ => Err(ApiError::InvalidInput("scope must be given once: local, others or global".into())),
        }
    }
}

/// `local` (the default): this token and its session. `others`: every other
/// session of the user. `global`: every session, as logout-all. An unknown
/// scope is 422 and revokes nothing. When the caller's own session ends and
/// it came by cookie, the cookies are cleared.
#[utoipa::path(
    summary = "Log out",
    description = "`local` (the default): this token and its session. `others`: every other session of the user; this one stays. `global`: every session, as logout-all. An unknown scope is 422 and revokes nothing. By cookie (except `others`), the cookies are cleared.",
    context_path = "/auth",
    tag = "revocation",
    params(("scope" = Option<Scope>, Query, description = "Which sessions to end (default `local`)")),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Logged out; by cookie (except `others`) the cookies are cleared", body = LoggedOut),
        UnsafeAccessErrors,
        (status = 422, response = InvalidInput),
    )
)]
#[post("/logout?<scope>")]
async fn logout(
    token: AccessToken,
    scope: form::Result<'_, Strict<&str>>,
    jar: &CookieJar<'_>,
    store: &State<Store>,
    config: &State<AppConfig>,
) -> Result<Json<LoggedOut>, ApiError> {
    let AccessToken(claims, via) = token;
    let scope = Scope::parse(scope)?;
    let answer = logout_scoped(scope, &claims, store).await?;
    if via == Via::Cookie && scope != Scope::Others {
        cookies::clear(jar, config);
    }
    Ok(answer)
}

async fn logout_scoped(scope: Scope, claims: &Claims, store: &Store) -> Result<Json<LoggedOut>, ApiError> {
    match scope {
        Scope::Local => {
            store.log_out(claims.sid, claims.user_id, claims.expires_at).await?;
            Ok(Json(LoggedOut::new(LOGGED_OUT, None)))
        }
        Scope::Others => {
            let revoked = sweep(store, claims, Some(claims.sid), Reason::LogoutOthers).await?;
            Ok(Json(LoggedOut::new(LOGGED_OUT, Some(revoked))))
        }
        Scope::Global => logout_everywhere(store, claims).await,
    }
}

#[utoipa::path(
    summary = "Log out everywhere",
    description = "Revokes every session of the user: every token issued to them before this moment is rejected, including tokens of a login still in flight.",
    context_path = "/auth",
    tag = "revocation",
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Every session of the user revoked; by cookie the cookies are cleared",
            body = LoggedOut),
        UnsafeAccessErrors,
    )
)]
#[post("/logout-all")]
async fn logout_all(
    token: AccessToken,
    jar: &CookieJar<'_>,
    store: &State<Store>,
    config: &State<AppConfig>,
) -> Result<Json<LoggedOut>, ApiError> {
    let answer = logout_everywhere(store, &token.0).await?;
    if token.1 == Via::Cookie {
        cookies::clear(jar, config);
    }
    Ok(answer)
}

async fn logout_everywhere(store: &Store, claims: &Claims) -> Result<Json<LoggedOut>, ApiError> {
    let revoked = sweep(store, claims, None, Reason::LogoutAll).await?;
    Ok(Json(LoggedOut::new(LOGGED_OUT, Some(revoked))))
}

/// Ends every live session of the token's user but `keep`; returns how many.
async fn sweep(
    store: &Store,
    claims: &Claims,
    keep: Option<SessionId>,
    reason: Reason,
) -> Result<u64, ApiError> {
    let sweep = SessionSweep { user_id: claims.user_id, keep, reason, new_password_hash: None };
    Ok(store.sweep_sessions(&sweep).await?)
}

/// RFC 7009 token revocation. Whoever holds a token may revoke it: an access
/// token's `jti`, or a refresh token's whole session. A token that is not a
/// valid live one (malformed, badly signed, expired, already revoked or used
/// up) is answered 200 as well and changes nothing, as §2.2 asks, so the
/// answer tells nothing about the token. `token_type_hint` is only a hint
/// (§2.1): the token's own `type` claim decides, and an unknown hint is
/// ignored.
#[utoipa::path(
    summary = "Revoke a token (RFC 7009)",
    description = "Whoever holds a token may revoke it: an access token revokes its `jti`, a refresh token its whole session. A token that is not a valid live one (malformed, badly signed, expired, already revoked, used up) is also 200 and changes nothing. `token_type_hint` is only a hint.",
    context_path = "/auth",
    tag = "revocation",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or there was nothing valid to revoke (RFC 7009 §2.2)"),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
#[post("/revoke", data = "<form>")]
async fn revoke(form: FormBody, store: &State<Store>, auth: &State<Auth>) -> Result<(), ApiError> {
    let request = RevokeRequest::try_from(&form)?;
    let Ok(claims) = auth.jwt.verify_any(&request.token) else {
        return Ok(());
    };
    let (user_id, sid, jti) = (claims.user_id, claims.sid, claims.jti);
    let presented = match claims.token_type {
        TokenType::Access => Presented::Access { user_id, sid, jti, expires_at: claims.expires_at },
        TokenType::Refresh => Presented::Refresh { user_id, sid, jti },
    };
    store.revoke_presented(&presented).await?;
    Ok(())
}

/// RFC 7009 §2.1's request.
#[derive(ToSchema)]
struct RevokeRequest {
    /// An access or a refresh token of this service.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; only a hint (the token's own type
    /// decides), and any other value is ignored.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

impl TryFrom<&FormBody> for RevokeRequest {
    type Error = ApiError;

    fn try_from(form: &FormBody) -> Result<Self, ApiError> {
        Ok(RevokeRequest {
            token: form.required("token")?.to_owned(),
            token_type_hint: form.optional("token_type_hint")?.map(str::to_owned),
        })
    }
}
