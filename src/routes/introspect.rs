//! `POST /oauth/introspect` (RFC 7662), for the resource servers registered
//! with `clients add`: whether a token would be accepted here now, and its
//! claims if so. Client credentials come first (401 `invalid_client`, a
//! Basic challenge); then anything this service would not accept now is
//! `{"active": false}` and nothing else: malformed, badly signed, an
//! unknown or revoked key, expired, a revoked `jti` or `sid`, a used-up
//! refresh token. An access token is answered from the verified-token cache
//! and the revocation memory, as `/protected` is; a refresh token also asks
//! the database whether it is still its session's current one.

use rocket::http::Header;
use rocket::request::{self, FromRequest, Request};
use rocket::serde::json::Json;
use rocket::{post, routes, Responder, Route, State};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::guards::form::FormBody;
use super::responses::{BadRequest, ClientUnauthorized, PayloadTooLarge, Unavailable};
use crate::auth::guard::Client;
use crate::auth::jwt::{Claims, TokenType};
use crate::auth::Auth;
use crate::config::AppConfig;
use crate::db::{ClientRow, Store};
use crate::error::ApiError;
use crate::metrics::{self, IntrospectionOutcome};

pub fn routes() -> Vec<Route> {
    routes![introspect]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(introspect))]
pub(crate) struct Doc;

/// RFC 7662 §2.1's request.
#[derive(ToSchema)]
#[allow(dead_code)]
struct IntrospectionRequest {
    /// An access or a refresh token of this service.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; only a hint.
    token_type_hint: Option<String>,
}

/// RFC 7662 §2.2's answer: `{"active": false}` alone, or every member.
#[derive(Serialize, ToSchema, Default)]
struct Introspection {
    active: bool,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    /// The calling client's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
}

/// [`Client`], counting a refusal among the introspections
/// (`invalid_client`): the shared guard knows no route's metric.
struct Introspecting(ClientRow);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Introspecting {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let outcome = Client::from_request(request).await;
        if outcome.is_error() {
            metrics::introspection(IntrospectionOutcome::InvalidClient);
        }
        outcome.map(|client| Introspecting(client.0))
    }
}

/// Introspection answers must not be cached (RFC 7662 §4).
#[derive(Responder)]
struct Answer {
    body: Json<Introspection>,
    cache_control: Header<'static>,
}

#[utoipa::path(
    summary = "Introspect a token (RFC 7662)",
    description = "For registered resource servers (HTTP Basic: client_id and client_secret). \
        `{\"active\": false}` alone for any token this service would not accept now; otherwise its \
        claims. Follows revocations within the same bound as `/protected`.",
    context_path = "/oauth",
    tag = "discovery",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    security(("client" = [])),
    responses(
        (status = 200, description = "Whether the token is active, and its claims if so",
            body = Introspection, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, response = BadRequest),
        (status = 401, response = ClientUnauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
#[post("/introspect", data = "<form>")]
async fn introspect(
    client: Introspecting,
    form: FormBody,
    store: &State<Store>,
    auth: &State<Auth>,
    config: &State<AppConfig>,
) -> Result<Answer, ApiError> {
    let token = form.required("token")?;
    form.optional("token_type_hint")?;
    let body = match active(token, store, auth).await? {
        Some((claims, username)) => {
            metrics::introspection(IntrospectionOutcome::Active);
            Introspection {
                active: true,
                token_type: Some(match claims.token_type {
                    TokenType::Access => "access_token",
                    TokenType::Refresh => "refresh_token",
                }),
                iss: Some(config.issuer.clone()),
                sub: Some(claims.user_id.0),
                username: Some(username),
                exp: Some(claims.expires_at.timestamp()),
                iat: Some(claims.issued_at.timestamp()),
                jti: Some(claims.jti.0),
                sid: Some(claims.sid.0),
                client_id: Some(client.0.name),
            }
        }
        None => {
            metrics::introspection(IntrospectionOutcome::Inactive);
            Introspection::default()
        }
    };
    Ok(Answer { body: Json(body), cache_control: Header::new("Cache-Control", "no-store") })
}

/// The token's claims and owner's name if this service would accept it now.
/// A database that cannot answer is an error (503), never an answer.
async fn active(token: &str, store: &Store, auth: &Auth) -> Result<Option<(Claims, String)>, ApiError> {
    let Ok(claims) = auth.jwt.verify_any(token) else { return Ok(None) };
    if store.is_revoked(claims.sid, claims.jti, claims.kid.as_deref()).await? {
        return Ok(None);
    }
    let username = match (claims.token_type, claims.username.clone()) {
        (TokenType::Access, Some(username)) => Some(username),
        _ => store.current_refresh(claims.sid, claims.jti).await?,
    };
    Ok(username.map(|username| (claims, username)))
}
