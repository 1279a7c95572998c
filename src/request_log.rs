//! One line per request, and its count and latency in the metrics: the
//! request is timed and its route template named once for both. The line
//! carries the request id, method, route template, status, latency and,
//! once a token was accepted (the access-token guard notes it), the user id.

use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};
use uuid::Uuid;

use crate::request_id::RequestId;

/// The authenticated user, for the request's log line (set by the guard).
#[derive(Debug, Clone, Copy)]
pub struct LoggedUser(pub Option<Uuid>);

/// Notes who made the request, for its log line.
pub fn note_user(request: &Request<'_>, user_id: Uuid) {
    request.local_cache(|| LoggedUser(Some(user_id)));
}

#[derive(Clone, Copy)]
struct Started(Option<Instant>);

/// The fairing.
pub struct RequestLog;

#[rocket::async_trait]
impl Fairing for RequestLog {
    fn info(&self) -> Info {
        Info { name: "Request log and metrics", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        request.local_cache(|| Started(Some(Instant::now())));
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let elapsed = match request.local_cache(|| Started(None)) {
            Started(Some(started)) => started.elapsed(),
            Started(None) => std::time::Duration::ZERO,
        };
        let route = request.route().map_or("unmatched", |route| route.uri.as_str());
        let status = response.status().code;
        crate::metrics::record_request(request.method().as_str(), route, status, elapsed);
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        // Every field a string slice or a number, none formatted through
        // `Display`: the JSON line writes them as they are, with no
        // allocation or `core::fmt` on the request's thread (issue 20: a
        // line's cost).
        let mut user_text = [0; uuid::fmt::Hyphenated::LENGTH];
        let user_id = match request.local_cache(|| LoggedUser(None)).0 {
            Some(id) => &*id.hyphenated().encode_lower(&mut user_text),
            None => "-",
        };
        tracing::info!(
            target: "jwt_blocklist::request",
            request_id = RequestId::of(request).0.as_str(),
            method = request.method().as_str(),
            route,
            status,
            latency_ms = (latency_ms * 1000.0).round() / 1000.0,
            user_id,
            "request"
        );
    }
}
