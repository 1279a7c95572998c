//! CORS for the origins in `cors_allowed_origins`, exactly as the contract
//! says, as a small fairing of our own: `rocket_cors` is unmaintained since
//! 2023, and what is needed here is twenty lines.
//!
//! - A request whose `Origin` is listed gets `Access-Control-Allow-Origin`
//!   (that origin), `Access-Control-Allow-Credentials: true` and
//!   `Vary: Origin` on its answer, whatever the answer is.
//! - A preflight (`OPTIONS` on any route) is answered 204 by [`preflight`]
//!   with `Allow`; for a listed origin the fairing adds the route's methods,
//!   the headers a client may send (`X-CSRF-Token` included) and a max-age.
//! - Any other origin gets no `Access-Control-*` header, ever.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Header, Method, Status};
use rocket::{options, Request, Response, Route};

use crate::config::AppConfig;
use crate::error::ApiError;

/// How long a browser may cache a preflight answer, seconds.
const MAX_AGE: u64 = 600;
/// Request headers a cross-origin client may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-CSRF-Token, X-Request-Id";
/// Response headers its scripts may read.
const EXPOSE_HEADERS: &str = "Retry-After, WWW-Authenticate, X-Request-Id";

pub struct Cors;

#[rocket::async_trait]
impl Fairing for Cors {
    fn info(&self) -> Info {
        Info { name: "CORS (cors_allowed_origins)", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let Some(origin) = request.headers().get_one("Origin") else { return };
        let Some(config) = request.rocket().state::<AppConfig>() else { return };
        if !config.cors_allowed_origins.iter().any(|allowed| allowed == origin) {
            return;
        }
        response.set_header(Header::new("Access-Control-Allow-Origin", origin.to_owned()));
        response.set_header(Header::new("Access-Control-Allow-Credentials", "true"));
        response.adjoin_raw_header("Vary", "Origin");
        let is_preflight = request.method() == Method::Options
            && request.headers().contains("Access-Control-Request-Method")
            && response.status() == Status::NoContent;
        if is_preflight {
            let methods = response.headers().get_one("Allow").unwrap_or_default().to_owned();
            response.set_header(Header::new("Access-Control-Allow-Methods", methods));
            response.set_header(Header::new("Access-Control-Allow-Headers", ALLOW_HEADERS));
            response.set_header(Header::new("Access-Control-Max-Age", MAX_AGE.to_string()));
        } else {
            response.set_header(Header::new("Access-Control-Expose-Headers", EXPOSE_HEADERS));
        }
    }
}

/// `OPTIONS` on any path: 204 with `Allow` naming the methods of the routes
/// that serve it, or 404 if none does.
#[options("/<_..>")]
pub fn preflight(path: RequestPath) -> Result<Preflight, ApiError> {
    if path.methods.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Preflight { status: Status::NoContent, allow: Header::new("Allow", path.methods.join(", ")) })
}

#[derive(rocket::Responder)]
pub struct Preflight {
    status: Status,
    allow: Header<'static>,
}

/// The methods served at the request's path (a guard, so the route can see
/// the application's routes).
pub struct RequestPath {
    methods: Vec<&'static str>,
}

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for RequestPath {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        let methods = methods_for(request.rocket().routes(), request.uri().path().as_str());
        rocket::outcome::Outcome::Success(RequestPath { methods })
    }
}

/// The methods of `routes` whose path template matches `path` (plus HEAD
/// where GET is, and OPTIONS), in a stable order.
fn methods_for<'a>(routes: impl Iterator<Item = &'a Route>, path: &str) -> Vec<&'static str> {
    let mut methods: Vec<Method> = routes
        .filter(|route| route.method != Method::Options && matches(route.uri.path(), path))
        .map(|route| route.method)
        .collect();
    if methods.is_empty() {
        return Vec::new();
    }
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.push(Method::Options);
    let order = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ];
    order.iter().filter(|method| methods.contains(method)).map(|method| method.as_str()).collect()
}

/// Whether a route template (`/auth/sessions/<id>`) matches a request path.
fn matches(template: &str, path: &str) -> bool {
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    for part in template.split('/').filter(|part| !part.is_empty()) {
        if part.starts_with('<') && part.ends_with("..>") {
            return true;
        }
        match segments.next() {
            Some(segment) if part.starts_with('<') || part == segment => {}
            _ => return false,
        }
    }
    segments.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn templates_match_paths_segment_by_segment() {
        assert!(matches("/auth/sessions/<id>", "/auth/sessions/123"));
        assert!(!matches("/auth/sessions/<id>", "/auth/sessions"));
        assert!(!matches("/auth/sessions", "/auth/sessions/123"));
        assert!(matches("/", "/"));
        assert!(matches("/auth/logout", "/auth/logout/"));
        assert!(matches("/<path..>", "/anything/at/all"));
    }
}
