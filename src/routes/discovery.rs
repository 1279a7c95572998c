//! What other services read to verify our tokens:
//! `GET /.well-known/jwks.json` (the public keys) and
//! `GET /.well-known/oauth-authorization-server` (RFC 8414 metadata), every
//! URL in it built from `public_url`.

use chrono::Utc;
use rocket::http::Header;
use rocket::serde::json::Json;
use rocket::{get, routes, Responder, Route, State};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use crate::auth::Auth;
use crate::config::AppConfig;

pub fn routes() -> Vec<Route> {
    routes![jwks, metadata]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(jwks, metadata))]
pub(crate) struct Doc;

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
struct KeySet {
    /// Each with `kty`, `crv`, `x` (and `y` for ES256), `kid`, `alg`,
    /// `use: "sig"`; never a private or symmetric key.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Value>,
}

#[derive(Responder)]
struct Published {
    body: Json<KeySet>,
    cache_control: Header<'static>,
}

/// The public keys of every key that is next, active or retired but still
/// published. Under HS256 it is empty: only this service can verify.
#[utoipa::path(
    summary = "The public keys (JWKS)",
    description = "Every key that is next (published before it signs), active, or retired but still accepted; \
        cacheable for `jwks_max_age` seconds. Empty under HS256.",
    tag = "discovery",
    responses((status = 200, description = "The key set", body = KeySet,
        headers(("Cache-Control" = String, description = "public, max-age=<jwks_max_age>"))))
)]
#[get("/.well-known/jwks.json")]
fn jwks(auth: &State<Auth>, config: &State<AppConfig>) -> Published {
    let keys = match auth.jwt.keys() {
        Some(keys) => keys.ring().published(Utc::now()).into_iter().cloned().collect(),
        None => Vec::new(),
    };
    Published {
        body: Json(KeySet { keys }),
        cache_control: Header::new("Cache-Control", format!("public, max-age={}", config.jwks_max_age)),
    }
}

/// RFC 8414 authorization server metadata, with this service's extension
/// members for the revocation feed.
#[derive(Serialize, ToSchema)]
struct Metadata {
    /// The `iss` of our tokens (set `issuer` to `public_url` in production,
    /// as RFC 8414 asks).
    issuer: String,
    jwks_uri: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    /// `["none"]`: RFC 7009 revocation by possession of the token.
    revocation_endpoint_auth_methods_supported: [&'static str; 1],
    /// `["client_secret_basic"]`.
    introspection_endpoint_auth_methods_supported: [&'static str; 1],
    /// Empty: there is no authorization endpoint.
    response_types_supported: [&'static str; 0],
    /// The snapshot of the revocations an access token check needs.
    revocation_feed_endpoint: String,
    /// The server-sent event stream of revocations.
    revocation_stream_endpoint: String,
}

#[utoipa::path(
    summary = "Authorization server metadata (RFC 8414)",
    tag = "discovery",
    responses((status = 200, description = "Where the keys, revocation, introspection and the revocation \
        feed are", body = Metadata))
)]
#[get("/.well-known/oauth-authorization-server")]
fn metadata(config: &State<AppConfig>, rocket: &rocket::Config) -> Json<Metadata> {
    let base = config.public_url(rocket);
    let url = |path: &str| format!("{base}{path}");
    Json(Metadata {
        issuer: config.issuer.clone(),
        jwks_uri: url("/.well-known/jwks.json"),
        revocation_endpoint: url("/auth/revoke"),
        introspection_endpoint: url("/oauth/introspect"),
        revocation_endpoint_auth_methods_supported: ["none"],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic"],
        response_types_supported: [],
        revocation_feed_endpoint: url("/revocations"),
        revocation_stream_endpoint: url("/revocations/stream"),
    })
}
