//! HTTP routes, one module per resource, each with its `routes()`:
//!
//! - `auth.rs`: `/auth/register`, `/auth/login`, `/auth/refresh`, `/auth/me`
//! - `logout.rs`: `/auth/logout`, `/auth/logout-all`, `/auth/revoke` (RFC 7009)
//! - `sessions.rs`: `/auth/sessions`, `/auth/sessions/{id}`, `/auth/password`
//! - `page.rs`: `/`, the demo page (`demo.html`)
//! - `docs.rs`: `/openapi.json` and `/docs` (Swagger UI); the document
//!   itself is assembled in `openapi.rs` from every module's `Doc`
//! - this file: `/protected`, `/health`
//!
//! Request bodies go through `json.rs` (JSON) and `form.rs` (forms); the
//! client's address and user agent through `device.rs`; login and refresh
//! answer through `issue.rs` (Bearer pair or cookies).

pub mod auth;
pub mod device;
pub mod docs;
pub mod form;
pub mod issue;
pub mod json;
pub mod logout;
pub mod openapi;
pub mod page;
pub mod sessions;

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, routes, Route};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::db::{Db, MAX_STALENESS};

#[cfg(not(feature = "bench-no-revocation-check"))]
type ProtectedToken = crate::auth::guard::AccessToken;
/// Benchmark-only build: the same route without the revocation step.
#[cfg(feature = "bench-no-revocation-check")]
type ProtectedToken = crate::auth::guard::VerifiedAccessToken;

/// Routes mounted at `/auth`.
pub fn auth_routes() -> Vec<Route> {
    [auth::routes(), logout::routes(), sessions::routes()].concat()
}

/// Routes mounted at `/`.
pub fn routes() -> Vec<Route> {
    [routes![page::demo, protected, health], docs::routes()].concat()
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(protected, health, page::demo))]
pub(crate) struct Doc;

#[derive(Serialize, ToSchema)]
struct Granted {
    /// Always "Access granted".
    message: &'static str,
    user_id: Uuid,
    username: Option<String>,
}

/// Answered from the verified claims and the revocation check alone: the
/// reference route for benchmarks.
#[utoipa::path(
    summary = "A protected resource",
    description = "Answered from the verified token and the revocation check alone.",
    tag = "tokens",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The token is valid and not revoked", body = Granted),
        openapi::AccessErrors,
    )
)]
#[get("/protected")]
fn protected(token: ProtectedToken) -> Json<Granted> {
    let claims = token.0;
    Json(Granted { message: "Access granted", user_id: claims.user_id, username: claims.username })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum HealthStatus {
    Ok,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: HealthStatus,
    /// Present when the database answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_cache: Option<RevocationCache>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum CacheMode {
    /// Answered from memory, confirmed current within `max_staleness_ms`.
    Live,
    /// Answered by the database (loading, reconnecting, stalled, or over capacity).
    Fallback,
}

#[derive(Serialize, ToSchema)]
struct RevocationCache {
    mode: CacheMode,
    entries: usize,
    staleness_ms: u64,
    max_staleness_ms: u64,
    over_capacity: bool,
}

#[utoipa::path(
    summary = "Health",
    description = "Whether the database answers, and the state of the revocation memory (`live`: answered from memory, confirmed current within `max_staleness_ms`; `fallback`: the database answers).",
    tag = "operators",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database cannot be reached", body = Health,
            example = json!({ "status": "unavailable" })),
    )
)]
#[get("/health")]
async fn health(db: &Db) -> (Status, Json<Health>) {
    match db.ping().await {
        Ok(()) => {
            let cache = db.revocation_cache();
            let revocation_cache = RevocationCache {
                mode: if cache.trusted { CacheMode::Live } else { CacheMode::Fallback },
                entries: cache.entries,
                staleness_ms: cache.staleness_ms,
                max_staleness_ms: MAX_STALENESS.as_millis() as u64,
                over_capacity: cache.overflowed,
            };
            (Status::Ok, Json(Health { status: HealthStatus::Ok, revocation_cache: Some(revocation_cache) }))
        }
        Err(error) => {
            log::warn!("health check failed: {error}");
            (
                Status::ServiceUnavailable,
                Json(Health { status: HealthStatus::Unavailable, revocation_cache: None }),
            )
        }
    }
}
