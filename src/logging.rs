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
//!
//! A warning that any client can cause on every request (the hashing queue
//! full, say) is written with [`warn_repeated!`], so a flood of requests
//! cannot become a flood of log lines.

use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// A warning logged at most once per [`RepeatedWarning::EVERY`]: the first
/// at once, then the next one after the interval, saying how many were held
/// back in between. A login storm shedding 15,000 requests a second writes
/// one line a second, not 15,000 (metrics count every one).
pub struct RepeatedWarning {
    /// When the last line was written, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RepeatedWarning {
    pub const EVERY: Duration = Duration::from_secs(1);

    pub const fn new() -> Self {
        RepeatedWarning { state: Mutex::new((None, 0)) }
    }

    /// Logs `message` under `target` now, unless a line went out less
    /// than [`Self::EVERY`] ago.
    pub fn warn(&self, target: &str, message: std::fmt::Arguments<'_>) {
        if let Some(held_back) = self.due(Instant::now()) {
            match held_back {
                0 => log::warn!(target: target, "{message}"),
                n => log::warn!(target: target, "{message} (and {n} more since the last such line)"),
            }
        }
    }

    /// Whether a line is due at `now`: `Some(how many were held back)`, or
    /// `None` when this one is held back.
    fn due(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, held_back) = &mut *state;
        if last.is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY) {
            *held_back += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held_back))
    }
}

/// `warn_repeated!("format", args...)`: a warning with a
/// [`RepeatedWarning`] of its own at the call site, logged under the
/// caller's module.
macro_rules! warn_repeated {
    ($($message:tt)+) => {{
        static WARNING: $crate::logging::RepeatedWarning = $crate::logging::RepeatedWarning::new();
        WARNING.warn(module_path!(), format_args!($($message)+))
    }};
}
pub(crate) use warn_repeated;

impl Default for RepeatedWarning {
    fn default() -> Self {
        Self::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_is_written_once_per_interval_with_the_count_held_back() {
        let warning = RepeatedWarning::new();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(warning.due(at(0)), Some(0), "the first is written at once");
        assert_eq!(warning.due(at(1)), None);
        assert_eq!(warning.due(at(999)), None);
        assert_eq!(warning.due(at(1000)), Some(2), "then one, counting the two held back");
        assert_eq!(warning.due(at(1500)), None);
        assert_eq!(warning.due(at(5000)), Some(1));
        assert_eq!(warning.due(at(9000)), Some(0), "a quiet interval holds nothing back");
    }
}
