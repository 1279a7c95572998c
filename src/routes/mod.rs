//! HTTP routes, one module per resource, each with its `routes()`:
//!
//! - `auth.rs`: `/auth/register`, `/auth/login`, `/auth/refresh`, `/auth/me`
//! - `logout.rs`: `/auth/logout`, `/auth/logout-all`, `/auth/revoke` (RFC 7009)
//! - `sessions.rs`: `/auth/sessions`, `/auth/sessions/{id}`, `/auth/password`
//! - `page.rs`: `/`, the demo page (`demo.html`)
//! - this file: `/protected`, `/health`
//!
//! Request bodies go through `json.rs` (JSON) and `form.rs` (forms); the
//! client's address and user agent through `device.rs`; login and refresh
//! answer through `issue.rs` (Bearer pair or cookies).

pub mod auth;
pub mod device;
pub mod form;
pub mod issue;
pub mod json;
pub mod logout;
pub mod page;
pub mod sessions;

use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, routes, Route};

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
    routes![page::demo, protected, health]
}

/// Answered from the verified claims and the revocation check alone: the
/// reference route for benchmarks.
#[get("/protected")]
fn protected(token: ProtectedToken) -> Json<Value> {
    let claims = token.0;
    Json(json!({
        "message": "Access granted",
        "user_id": claims.user_id,
        "username": claims.username,
    }))
}

#[get("/health")]
async fn health(db: &Db) -> (Status, Json<Value>) {
    match db.ping().await {
        Ok(()) => {
            // "live": answered from memory, confirmed current within
            // `max_staleness_ms`; "fallback": from the database (loading,
            // reconnecting, stalled, or over capacity).
            let cache = db.revocation_cache();
            let body = json!({
                "status": "ok",
                "revocation_cache": {
                    "mode": if cache.trusted { "live" } else { "fallback" },
                    "entries": cache.entries,
                    "staleness_ms": cache.staleness_ms,
                    "max_staleness_ms": MAX_STALENESS.as_millis() as u64,
                    "over_capacity": cache.overflowed,
                },
            });
            (Status::Ok, Json(body))
        }
        Err(error) => {
            log::warn!("health check failed: {error}");
            (Status::ServiceUnavailable, Json(json!({ "status": "unavailable" })))
        }
    }
}
