//! The API's table of contents: every route, by file. `lib.rs` mounts
//! [`auth_routes`] at `/auth`, [`oauth_routes`] at `/oauth` and [`routes`]
//! at `/`.
//!
//! - `accounts.rs`: `POST /auth/register`, `GET /auth/me`
//! - `tokens.rs`: `POST /auth/login`, `/auth/refresh`
//! - `logout.rs`: `POST /auth/logout`, `/auth/logout-all`, `/auth/revoke` (RFC 7009)
//! - `sessions.rs`: `GET /auth/sessions`, `DELETE /auth/sessions/{id}`, `POST /auth/password`
//! - `protected.rs`: `GET /protected`
//! - `operators.rs`: `GET /health`, `GET /metrics`
//! - `discovery.rs`: `GET /.well-known/jwks.json`, `/.well-known/oauth-authorization-server`
//! - `introspect.rs`: `POST /oauth/introspect` (RFC 7662)
//! - `feed.rs`: `GET /revocations`, `/revocations/stream` (the revocation feed)
//! - `page.rs`: `GET /`, the demo page (`demo.html`)
//! - `docs.rs`: `GET /openapi.json` (assembled there from every file's `Doc`),
//!   `GET /docs` and its files (Swagger UI)
//! - `crate::cors`: `OPTIONS /<any path>`, the CORS preflight
//!
//! What the route files share: `guards/` (the JSON and form body guards, the
//! client's address and user agent), `bodies.rs` (bodies and rules more than
//! one route uses), `issue.rs` (login and refresh answers: a Bearer pair or
//! cookies) and `responses.rs` (the error answers each route names in its
//! OpenAPI entry). They import no route file.
//!
//! A new endpoint: a handler with its `#[utoipa::path]` in the file of its
//! resource (or a new file, listed here and in `docs.rs`), added to that
//! file's `routes()` and `Doc`.

pub mod accounts;
pub mod bodies;
pub mod discovery;
pub mod docs;
pub mod feed;
pub mod guards;
pub mod introspect;
pub mod issue;
pub mod logout;
pub mod operators;
pub mod page;
pub mod protected;
pub mod responses;
pub mod sessions;
pub mod tokens;

use rocket::Route;

/// Routes mounted at `/auth`.
pub fn auth_routes() -> Vec<Route> {
    [accounts::routes(), tokens::routes(), logout::routes(), sessions::routes()].concat()
}

/// Routes mounted at `/oauth`.
pub fn oauth_routes() -> Vec<Route> {
    introspect::routes()
}

/// Routes mounted at `/`.
pub fn routes() -> Vec<Route> {
    [
        protected::routes(),
        operators::routes(),
        discovery::routes(),
        feed::routes(),
        page::routes(),
        docs::routes(),
        rocket::routes![crate::cors::preflight],
    ]
    .concat()
}
