//! Issuing a session's tokens in the transport the session uses: a Bearer
//! pair in the body, or (`"transport": "cookie"`) the three cookies with only
//! the CSRF token in the body. Login and refresh both answer through here.

use chrono::{DateTime, Utc};
use rocket::http::{CookieJar, Header};
use rocket::serde::json::Json;
use rocket::Responder;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::cookies::{self, SessionCookies};
use crate::auth::csrf::CsrfToken;
use crate::auth::jwt::{NewToken, TokenType};
use crate::auth::Auth;
use crate::config::AppConfig;
use crate::db::{SessionId, TokenId, UserId};
use crate::error::ApiError;

/// How a client wants its tokens: in the body (`bearer`, the default) or
/// in HttpOnly cookies (`cookie`, see Browser transport).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Bearer,
    Cookie,
}

/// A Bearer session's answer.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    access_token: String,
    refresh_token: String,
    /// Always "Bearer".
    #[schema(value_type = String, pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    /// Seconds the refresh token lives.
    refresh_expires_in: u64,
}

/// A cookie session's answer: the tokens are in the cookies.
#[derive(Serialize, ToSchema)]
pub struct CookieSession {
    /// Always "cookie".
    #[schema(value_type = String, pattern = "^cookie$")]
    token_type: &'static str,
    expires_in: u64,
    refresh_expires_in: u64,
    /// Send it back in `X-CSRF-Token` on unsafe requests.
    csrf_token: String,
}

/// What login and refresh answer, in the session's transport.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TokenAnswer {
    Bearer(TokenPair),
    Cookie(CookieSession),
}

/// Token responses must not be cached (RFC 6749 §5.1).
#[derive(Responder)]
pub struct TokenResponse {
    body: Json<TokenAnswer>,
    cache_control: Header<'static>,
    pragma: Header<'static>,
}

/// What a session's new pair of tokens is made of.
pub struct Grant<'a> {
    pub user_id: UserId,
    pub username: &'a str,
    pub sid: SessionId,
    pub refresh_jti: TokenId,
    pub now: DateTime<Utc>,
    pub transport: Transport,
}

/// Signs the pair and answers in the grant's transport. Cookie sessions get a
/// new CSRF token each time, bound into both tokens.
pub fn issue(
    auth: &Auth,
    config: &AppConfig,
    jar: &CookieJar<'_>,
    grant: Grant<'_>,
) -> Result<TokenResponse, ApiError> {
    let csrf = (grant.transport == Transport::Cookie).then(CsrfToken::generate);
    let binding = csrf.as_ref().map(|token| token.binding.as_str());
    let token = |token_type, username, jti, ttl_seconds| NewToken {
        token_type,
        user_id: grant.user_id,
        username,
        sid: grant.sid,
        jti,
        now: grant.now,
        ttl_seconds,
        csrf: binding,
    };
    let username = Some(grant.username);
    let access =
        auth.jwt.issue(token(TokenType::Access, username, TokenId::new_v4(), config.access_token_ttl))?;
    let refresh =
        auth.jwt.issue(token(TokenType::Refresh, None, grant.refresh_jti, config.refresh_token_ttl))?;
    let (expires_in, refresh_expires_in) = (config.access_token_ttl, config.refresh_token_ttl);
    let issued = match csrf {
        None => TokenAnswer::Bearer(TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            token_type: "Bearer",
            expires_in,
            refresh_expires_in,
        }),
        Some(csrf) => {
            let session = SessionCookies {
                access: &access.token,
                refresh: &refresh.token,
                csrf: &csrf.value,
                expires_in,
                refresh_expires_in,
            };
            cookies::set(jar, config, &session);
            TokenAnswer::Cookie(CookieSession {
                token_type: "cookie",
                expires_in,
                refresh_expires_in,
                csrf_token: csrf.value,
            })
        }
    };
    Ok(TokenResponse {
        body: Json(issued),
        cache_control: Header::new("Cache-Control", "no-store"),
        pragma: Header::new("Pragma", "no-cache"),
    })
}
