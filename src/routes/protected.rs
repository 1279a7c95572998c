//! `GET /protected`: answered from the verified claims and the revocation
//! check alone, the reference route for benchmarks.

use rocket::serde::json::Json;
use rocket::{get, routes, Route};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::responses::AccessErrors;

#[cfg(not(feature = "bench-no-revocation-check"))]
type ProtectedToken = crate::auth::guard::AccessToken;
/// Benchmark-only build: the same route without the revocation step.
#[cfg(feature = "bench-no-revocation-check")]
type ProtectedToken = crate::auth::guard::VerifiedAccessToken;

pub fn routes() -> Vec<Route> {
    routes![protected]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(protected))]
pub(crate) struct Doc;

#[derive(Serialize, ToSchema)]
struct Granted {
    /// Always "Access granted".
    message: &'static str,
    user_id: Uuid,
    username: Option<String>,
}

#[utoipa::path(
    summary = "A protected resource",
    description = "Answered from the verified token and the revocation check alone.",
    tag = "tokens",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The token is valid and not revoked", body = Granted),
        AccessErrors,
    )
)]
#[get("/protected")]
fn protected(token: ProtectedToken) -> Json<Granted> {
    let claims = token.0;
    Json(Granted { message: "Access granted", user_id: claims.user_id.0, username: claims.username })
}
