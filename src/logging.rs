//! Logs: one stream, text for people or JSON lines for log shippers
//! (`log_format`), through `tracing`; Rocket's own `log` records are bridged
//! into it. Rocket's `log_level` sets the filter (`critical` shows warnings
//! and errors, `normal` adds one line per request and the lifecycle events,
//! `debug` everything).
//!
//! One line per request ([`RequestLog`]): request id, method, route template,
//! status, latency and, once a token was accepted, the user id. What is never
//! logged: tokens, passwords, secrets, CSRF values. Nothing here formats a
//! header, a body or a query string; route templates stand for paths.

use std::time::Instant;

use rocket::config::LogLevel;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{Data, Request, Response};
use serde::Deserialize;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use uuid::Uuid;

use crate::request_id::RequestId;

/// `log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the process's subscriber from the configuration (once; later
/// calls keep the first). Standard output, as Rocket writes.
pub fn init(figment: &Figment) {
    let format = figment.extract_inner::<LogFormat>("log_format").unwrap_or_default();
    let level = match figment.extract_inner::<LogLevel>("log_level").unwrap_or(LogLevel::Normal) {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Critical => LevelFilter::WARN,
        LogLevel::Normal => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Rocket's server logs each request with all its headers at debug level
    // (Authorization and Cookie included): never below info for it.
    let filter =
        Targets::new().with_default(level).with_target("rocket::server", level.min(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer().with_target(true).with_ansi(colours);
    let installed = match format {
        LogFormat::Text => tracing_subscriber::registry().with(layer.with_filter(filter)).try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_current_span(false).with_filter(filter))
            .try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}

/// The authenticated user, for the request's log line (set by the guard).
#[derive(Debug, Clone, Copy)]
pub struct LoggedUser(pub Option<Uuid>);

/// Notes who made the request, for its log line.
pub fn note_user(request: &Request<'_>, user_id: Uuid) {
    request.local_cache(|| LoggedUser(Some(user_id)));
}

#[derive(Clone, Copy)]
struct Started(Option<Instant>);

/// One line per request, and its count and latency in the metrics: the
/// request is timed and its route template named once for both.
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
        let user = request.local_cache(|| LoggedUser(None)).0;
        tracing::info!(
            target: "jwt_blocklist::request",
            request_id = %RequestId::of(request).0,
            method = %request.method(),
            route = %route,
            status,
            latency_ms = (latency_ms * 1000.0).round() / 1000.0,
            user_id = user.map(|id| id.to_string()).as_deref().unwrap_or("-"),
            "request"
        );
    }
}
