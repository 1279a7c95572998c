//! Logs: one stream, text for people or JSON lines for log shippers
//! (`log_format`), through `tracing`; Rocket's own `log` records are bridged
//! into it. Rocket's `log_level` sets the filter (`critical` shows warnings
//! and errors, `normal` adds one line per request and the lifecycle events,
//! `debug` everything).
//!
//! One line per request comes from `request_log.rs`. What is never logged:
//! tokens, passwords, secrets, CSRF values. Nothing here formats a header, a
//! body or a query string; route templates stand for paths.
//!
//! A warning that any client can cause on every request (the hashing queue
//! full, say) is written with [`warn_repeated!`], and Rocket's own warnings
//! about single requests and connections are limited too, so a flood of
//! requests cannot become a flood of log lines.
//!
//! Lines are written off the request path: a request formats its line and
//! hands it to a writer thread (tracing-appender's non-blocking writer).
//! When standard output is slower than the lines come (a stalled pipe, a
//! log shipper that stopped reading), at most [`BUFFERED_LINES`] wait; the
//! rest are dropped and counted ([`dropped_lines`], in `/metrics`), never
//! waited for: a request never blocks on the log.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rocket::config::LogLevel;
use rocket::figment::Figment;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing_log::LogTracer;
use tracing_subscriber::filter::{DynFilterFn, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::config::LogFormat;

mod json_lines;

/// Lines that may wait for the writer thread (a few MB at most).
pub const BUFFERED_LINES: usize = 8192;

/// The writer thread's guard (dropping it writes what waits: [`flush`]).
static WRITER: Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> = Mutex::new(None);
/// How many lines the writer dropped because its buffer was full.
static DROPPED: OnceLock<tracing_appender::non_blocking::ErrorCounter> = OnceLock::new();

/// Lines dropped so far because standard output did not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Writes out the lines still waiting (at exit), waiting at most about a
/// second for a slow sink.
pub fn flush() {
    drop(WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
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
    // (Authorization and Cookie included): never below info for it. At
    // normal it writes four lines of its own per request (the request, the
    // route matched, the outcome, "Response succeeded"): this service writes
    // one line per request itself (request_log.rs), so Rocket's are kept
    // only at debug; its warnings pass at every level (within their quota).
    let rocket_server =
        if level >= LevelFilter::DEBUG { LevelFilter::INFO } else { level.min(LevelFilter::WARN) };
    let targets = Targets::new().with_default(level).with_target("rocket::server", rocket_server);
    // It counts, so it is asked per line where it may apply: Rocket's lines
    // (bridged from `log`, whose call sites all have the target "log"); our
    // own call sites, the request log's included, keep their cached answer.
    let noise = DynFilterFn::new(|metadata, _| rocket_request_noise_passes(metadata)).with_callsite_filter(
        |metadata| match metadata.target() {
            target if target == "log" || is_rocket_request_target(target) => Interest::sometimes(),
            _ => Interest::always(),
        },
    );
    let filter = targets.and(noise);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        // Buffered: the writer thread writes what has come in one system
        // call, and flushes whenever it has nothing more to write.
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let dropped = writer.error_counter();
    let layer = tracing_subscriber::fmt::layer().with_target(true).with_ansi(colours).with_writer(writer);
    let installed = match format {
        LogFormat::Text => tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(layer.with_filter(filter)),
        ),
        LogFormat::Json => {
            let json = layer.json().flatten_event(true).with_current_span(false);
            let format =
                tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false);
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(json.event_format(json_lines::JsonLines(format)).with_filter(filter)),
            )
        }
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed");
        return;
    }
    let bridge = Bridge { tracer: LogTracer::new(), rocket_server_info: rocket_server >= LevelFilter::INFO };
    if log::set_boxed_logger(Box::new(bridge)).is_err() {
        tracing::debug!("a log bridge was already installed");
    }
    // `log` builds a record only below its max level (Off until set): the
    // configured one, so a record the filter would drop anyway (Rocket's
    // debug lines, say) is never even built.
    log::set_max_level(match level {
        LevelFilter::OFF => log::LevelFilter::Off,
        LevelFilter::ERROR => log::LevelFilter::Error,
        LevelFilter::WARN => log::LevelFilter::Warn,
        LevelFilter::INFO => log::LevelFilter::Info,
        LevelFilter::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    let _ = DROPPED.set(dropped);
    *WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(guard);
}

/// The bridge from `log` (Rocket's records, and this service's `log::`
/// lines) into `tracing`: tracing-log's, behind one test of the target.
/// Rocket writes four info records per request under `rocket::server` (the
/// request, the route matched, the outcome, "Response succeeded"), which
/// the filter drops below debug: dropped here, each costs a comparison, not
/// about 500 instructions through the subscriber's filters (callgrind; issue
/// 20: a request line's cost).
struct Bridge {
    tracer: LogTracer,
    /// Whether Rocket's server writes below warnings (`debug` only).
    rocket_server_info: bool,
}

impl Bridge {
    fn passes(&self, metadata: &log::Metadata<'_>) -> bool {
        self.rocket_server_info
            || metadata.level() <= log::Level::Warn
            || !metadata.target().starts_with("rocket::server")
    }
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.passes(metadata) && self.tracer.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.passes(record.metadata()) {
            self.tracer.log(record);
        }
    }

    fn flush(&self) {
        self.tracer.flush();
    }
}

/// At most a number of log lines a second: the first ones of each second
/// pass at once, the rest are held back and counted. A login storm
/// shedding 15,000 requests a second writes one warning a second, not
/// 15,000 (the metrics count every one).
pub struct LineQuota {
    lines: u32,
    state: Mutex<QuotaState>,
}

struct QuotaState {
    /// When the current second began (at the first line of it).
    second: Option<Instant>,
    used: u32,
    held_back: u64,
}

impl LineQuota {
    pub const fn per_second(lines: u32) -> Self {
        LineQuota { lines, state: Mutex::new(QuotaState { second: None, used: 0, held_back: 0 }) }
    }

    /// Logs `message` as a warning under `target`, unless this second's
    /// lines are used up; says how many were held back since the last one.
    pub fn warn(&self, target: &str, message: std::fmt::Arguments<'_>) {
        match self.admit(Instant::now()) {
            Some(0) => log::warn!(target: target, "{message}"),
            Some(n) => log::warn!(target: target, "{message} (and {n} more since the last such line)"),
            None => {}
        }
    }

    /// Whether a line may go out at `now`: `Some(how many were held back
    /// since the last one that did)`, or `None` when this one is held back.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.second.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1)) {
            state.second = Some(now);
            state.used = 0;
        }
        if state.used >= self.lines {
            state.held_back += 1;
            return None;
        }
        state.used += 1;
        Some(std::mem::take(&mut state.held_back))
    }
}

/// `warn_repeated!("format", args...)`: a warning any client can cause on
/// every request, written at most once a second (with how many were held
/// back) under the caller's module, by a [`LineQuota`] of the call site's
/// own.
macro_rules! warn_repeated {
    ($($message:tt)+) => {{
        static QUOTA: $crate::logging::LineQuota = $crate::logging::LineQuota::per_second(1);
        QUOTA.warn(module_path!(), format_args!($($message)+))
    }};
}
pub(crate) use warn_repeated;

/// Rocket's own warnings about one request or one connection (a guard that
/// failed, the catcher that answered, a connection that broke off or sent
/// something that is not HTTP) are lines any client can cause at will, and
/// this service writes its own line per request (with the status) anyway:
/// ten of them a second pass, the rest are dropped. Everything else passes.
fn rocket_request_noise_passes(metadata: &tracing::Metadata<'_>) -> bool {
    static QUOTA: LineQuota = LineQuota::per_second(10);
    if !is_rocket_request_target(metadata.target()) || *metadata.level() > tracing::Level::WARN {
        return true;
    }
    QUOTA.admit(Instant::now()).is_some()
}

/// Rocket's server, and its indented detail lines (target `<module>::_`).
fn is_rocket_request_target(target: &str) -> bool {
    target == "rocket::server" || target.ends_with("::_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_passes_its_lines_each_second_and_counts_what_it_held_back() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let once = LineQuota::per_second(1);
        assert_eq!(once.admit(at(0)), Some(0), "the first is written at once");
        assert_eq!(once.admit(at(1)), None);
        assert_eq!(once.admit(at(999)), None);
        assert_eq!(once.admit(at(1000)), Some(2), "then one, counting the two held back");
        assert_eq!(once.admit(at(1500)), None);
        assert_eq!(once.admit(at(5000)), Some(1));
        assert_eq!(once.admit(at(9000)), Some(0), "a quiet second holds nothing back");

        let ten = LineQuota::per_second(10);
        assert!((0..10).all(|ms| ten.admit(at(ms)) == Some(0)), "ten at once");
        assert_eq!(ten.admit(at(10)), None);
        assert_eq!(ten.admit(at(1010)), Some(1), "the next second");
    }
}
