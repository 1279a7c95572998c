//! Rocket: a request guard, the catchers that answer its refusals as the
//! service does, and the example resource server (`GET /protected`,
//! `GET /health`) built from them.
//!
//! ```no_run
//! use jwt_blocklist_verifier::rocket::{catchers, Authenticated};
//!
//! #[rocket::get("/invoices")]
//! fn invoices(user: Authenticated) -> String {
//!     format!("the invoices of {}", user.0.username)
//! }
//!
//! # async fn launch(verifier: jwt_blocklist_verifier::Verifier) {
//! let _ = rocket::build()
//!     .manage(verifier)
//!     .mount("/", rocket::routes![invoices])
//!     .register("/", catchers());
//! # }
//! ```

use ::rocket::http::{Header, Status};
use ::rocket::outcome::Outcome;
use ::rocket::request::{self, FromRequest, Request};
use ::rocket::response::{self, Responder, Response};
use ::rocket::serde::json::Json;
use ::rocket::{catch, catchers as rocket_catchers, get, routes, Build, Catcher, Rocket, State};

use crate::{Claims, Verifier, VerifyError};

/// A request whose Bearer access token the managed [`Verifier`] accepted.
pub struct Authenticated(pub Claims);

/// A refusal, answered with the service's body, status and challenge.
#[derive(Debug, Clone)]
pub struct Refused(pub VerifyError);

impl<'r> Responder<'r, 'static> for Refused {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let status = Status::from_code(self.0.status()).unwrap_or(Status::Unauthorized);
        let mut response =
            Response::build_from(Json(self.0.body()).respond_to(request)?).status(status).finalize();
        if let Some(challenge) = self.0.www_authenticate() {
            response.set_header(Header::new("WWW-Authenticate", challenge));
        }
        Ok(response)
    }
}

#[::rocket::async_trait]
impl<'r> FromRequest<'r> for Authenticated {
    type Error = VerifyError;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let Some(verifier) = request.rocket().state::<Verifier>() else {
            log::error!("no Verifier is managed: every token is refused");
            return refuse(request, VerifyError::NotCurrent);
        };
        match verifier.verify_header(request.headers().get_one("Authorization")).await {
            Ok(claims) => Outcome::Success(Authenticated(claims)),
            Err(error) => refuse(request, error),
        }
    }
}

/// Fails the guard, keeping the error for the catcher to answer with.
fn refuse<T>(request: &Request<'_>, error: VerifyError) -> request::Outcome<T, VerifyError> {
    let status = Status::from_code(error.status()).unwrap_or(Status::Unauthorized);
    request.local_cache(|| Some(error.clone()));
    Outcome::Error((status, error))
}

fn refusal(request: &Request<'_>, otherwise: VerifyError) -> Refused {
    Refused(request.local_cache(|| None::<VerifyError>).clone().unwrap_or(otherwise))
}

#[catch(401)]
fn unauthorized(request: &Request<'_>) -> Refused {
    refusal(request, VerifyError::MissingToken)
}

#[catch(503)]
fn unavailable(request: &Request<'_>) -> Refused {
    refusal(request, VerifyError::NotCurrent)
}

/// The catchers that answer [`Authenticated`]'s refusals (401, 503).
pub fn catchers() -> Vec<Catcher> {
    rocket_catchers![unauthorized, unavailable]
}

/// The service's answer to `GET /protected`, members in its order.
#[derive(serde::Serialize)]
struct Granted {
    message: &'static str,
    user_id: uuid::Uuid,
    username: String,
}

#[get("/protected")]
fn protected(user: Authenticated) -> Json<Granted> {
    Json(Granted { message: "Access granted", user_id: user.0.user_id, username: user.0.username })
}

/// The service's `GET /health` answer, members in its order.
#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_cache: Option<Memory>,
}

#[derive(serde::Serialize)]
struct Memory {
    mode: &'static str,
    entries: usize,
    staleness_ms: u64,
    max_staleness_ms: u64,
    over_capacity: bool,
}

/// 200 with the revocation set's state while it is current (tokens are
/// checked), 503 while it is not (every token is refused).
#[get("/health")]
fn health(verifier: &State<Verifier>) -> (Status, Json<Health>) {
    let status = verifier.status();
    if !status.current {
        return (Status::ServiceUnavailable, Json(Health { status: "unavailable", revocation_cache: None }));
    }
    let memory = Memory {
        mode: "live",
        entries: status.entries,
        staleness_ms: status.staleness.map_or(0, |s| s.as_millis() as u64),
        max_staleness_ms: verifier.config().max_staleness.as_millis() as u64,
        over_capacity: status.over_capacity,
    };
    (Status::Ok, Json(Health { status: "ok", revocation_cache: Some(memory) }))
}

/// The example resource server: `GET /protected` and `GET /health`, with
/// the service's answers, verifying locally with `verifier`.
pub fn resource_server(verifier: Verifier) -> Rocket<Build> {
    ::rocket::build().manage(verifier).mount("/", routes![protected, health]).register("/", catchers())
}
