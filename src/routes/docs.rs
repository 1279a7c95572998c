//! `GET /openapi.json` and `GET /docs`, the API reference rendered by Swagger
//! UI from files compiled into the binary (utoipa-swagger-ui's vendored copy):
//! nothing is fetched from a CDN.
//!
//! The OpenAPI 3.1 document is assembled here from the code: each route
//! module's `Doc` lists its handlers (their `#[utoipa::path]` sits on the
//! handler, next to the Rocket attribute it is derived from), the bodies are
//! the very types the handlers take and return, and the error answers are
//! `responses.rs`'s, all with [`ErrorBody`]. `tests/api/openapi.rs` checks
//! that it names every mounted route and nothing else.
//!
//! `/docs` itself answers the page (not a redirect to `/docs/`), with a
//! `<base href="/docs/">` so that its relative links reach `/docs/<file>`,
//! which serves the UI's scripts and styles.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use rocket::http::uri::{fmt::Path, Segments};
use rocket::http::{ContentType, Header};
use rocket::serde::json::Json;
use rocket::{get, routes, Responder, Route};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{openapi, Modify, OpenApi};
use utoipa_swagger_ui::Config;

use super::responses::{
    BadRequest, ClientUnauthorized, Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge,
    TooManyRequests, Unauthorized, Unavailable,
};
use crate::auth::cookies;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![openapi_json, index, file]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(openapi_json, index, file))]
pub(crate) struct Doc;

/// The document, built once from every route module's part.
pub fn document() -> &'static openapi::OpenApi {
    static DOCUMENT: LazyLock<openapi::OpenApi> = LazyLock::new(|| {
        let mut document = Root::openapi();
        for part in [
            super::accounts::Doc::openapi(),
            super::tokens::Doc::openapi(),
            super::logout::Doc::openapi(),
            super::sessions::Doc::openapi(),
            super::protected::Doc::openapi(),
            super::page::Doc::openapi(),
            super::operators::Doc::openapi(),
            super::discovery::Doc::openapi(),
            super::introspect::Doc::openapi(),
            super::feed::Doc::openapi(),
            Doc::openapi(),
        ] {
            document.merge(part);
        }
        document
    });
    &DOCUMENT
}

/// The UI's configuration: one document, ours.
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new(["/openapi.json"]).try_it_out_enabled(true).validator_url("none")));

/// The page: Swagger UI's `index.html`, its relative links resolved under
/// `/docs/`.
static INDEX: LazyLock<Option<String>> = LazyLock::new(|| {
    let file = utoipa_swagger_ui::serve("index.html", CONFIG.clone()).ok()??;
    let html = String::from_utf8(file.bytes.into_owned()).ok()?;
    Some(html.replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1))
});

/// Everything the UI loads comes from this origin (Rocket's Shield adds
/// `X-Content-Type-Options: nosniff`); the UI's one call
/// elsewhere (the validator badge) is turned off in [`CONFIG`] as well.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'self'; frame-ancestors 'none'";

#[derive(Responder)]
pub struct Asset {
    body: (ContentType, Cow<'static, [u8]>),
    policy: Header<'static>,
}

impl Asset {
    /// `body` is borrowed from the binary for every file but the
    /// initializer (which carries the configuration): nothing is copied.
    fn new(content_type: ContentType, body: Cow<'static, [u8]>) -> Self {
        Asset { body: (content_type, body), policy: Header::new("Content-Security-Policy", POLICY) }
    }
}

/// The OpenAPI 3.1 document of this service.
#[utoipa::path(
    summary = "This document",
    tag = "operators",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
#[get("/openapi.json")]
fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

/// The API reference, rendered from `/openapi.json` in the browser.
#[utoipa::path(
    summary = "The API reference (Swagger UI)",
    tag = "operators",
    responses((status = 200, description = "Swagger UI's page", content_type = "text/html", body = String))
)]
#[get("/docs")]
fn index() -> Result<Asset, ApiError> {
    let html = INDEX.as_ref().ok_or(ApiError::Internal)?;
    Ok(Asset::new(ContentType::HTML, Cow::Borrowed(html.as_bytes())))
}

/// The page's scripts, styles and images.
#[utoipa::path(
    summary = "The API reference's files",
    tag = "operators",
    params(("file" = String, Path, description = "A file of Swagger UI", example = "swagger-ui.css")),
    responses(
        (status = 200, description = "The file", content(
            ("text/css"), ("text/javascript"), ("application/javascript"), ("image/png"), ("text/html")
        )),
        (status = 404, response = NotFound),
    )
)]
#[get("/docs/<file..>")]
fn file(file: Segments<'_, Path>) -> Result<Asset, ApiError> {
    // Looked up among the files compiled in, never on disk; any segments
    // (even ones a `PathBuf` refuses) are just a name that is not there.
    let name = file.collect::<Vec<_>>().join("/");
    if name.is_empty() {
        return index();
    }
    let found = utoipa_swagger_ui::serve(&name, CONFIG.clone()).map_err(|error| {
        log::error!("Swagger UI's {name} could not be served: {error}");
        ApiError::Internal
    })?;
    let found = found.ok_or(ApiError::NotFound)?;
    let content_type = ContentType::parse_flexible(&found.content_type).unwrap_or(ContentType::Binary);
    Ok(Asset::new(content_type, found.bytes))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jwt-blocklist",
        description = "Issues JWTs and revokes them for real: a persisted blocklist checked on every \
            authenticated request. Access routes take a Bearer access token, or the `jbl_access` cookie \
            (Browser transport), where unsafe methods also need `X-CSRF-Token`. Every error is \
            `{\"error\": CODE, \"description\": TEXT}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            ClientUnauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            InvalidInput,
            TooManyRequests,
            Unavailable
        )
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "tokens", description = "Register, log in, refresh, who am I"),
        (name = "revocation", description = "Log out, log out everywhere, RFC 7009"),
        (name = "sessions", description = "The caller's sessions and password"),
        (name = "browser", description = "The demo page"),
        (name = "operators", description = "Health, metrics, this document"),
        (name = "discovery", description = "Public keys and metadata for the services that accept our tokens"),
    )
)]
struct Root;

/// `bearer`: the access token in `Authorization`. `cookie`: the access
/// cookie; with it, unsafe methods need `csrf` as well. `refresh_cookie`:
/// the refresh cookie, which `POST /auth/refresh` takes instead of a body.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("An access token from /auth/login or /auth/refresh"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let client = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some("A resource server's client_id and client_secret (clients add)"))
            .build();
        components.add_security_scheme("client", SecurityScheme::Http(client));
        let cookie = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(name, description)))
        };
        components.add_security_scheme(
            "cookie",
            cookie(cookies::ACCESS, "The access cookie set by a cookie-transport login"),
        );
        components.add_security_scheme(
            "refresh_cookie",
            cookie(cookies::REFRESH, "The refresh cookie set by a cookie-transport login"),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token (`csrf_token`, also in the readable `jbl_csrf` cookie); \
                 required with cookies on POST, PUT, PATCH and DELETE",
            ))),
        );
    }
}
