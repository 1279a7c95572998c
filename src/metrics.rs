//! Metrics, through the `metrics` facade and `metrics-exporter-prometheus`'s
//! renderer (no listener of its own; `routes/operators.rs` serves
//! `GET /metrics`). This module knows nothing of the rest of the service:
//! callers hand it what to count.
//!
//! Each metric is defined once, in [`FAMILIES`] (name, kind, help text), and
//! counted through one function here that names its labels; label values
//! from a closed set are enums ([`CheckOutcome`], [`LoginOutcome`], ...).
//! Adding a metric: a `Family` constant, its place in `FAMILIES`, and the
//! function that records it. Route templates label requests (never raw
//! paths), so clients cannot mint label values.
//!
//! The recorder is process-wide and installed once, before the first count.
//! Counting on the hot path (the revocation check) uses handles resolved once,
//! not a registry lookup per request.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rocket::fairing::{Fairing, Info, Kind};

/// What a family is, for its `# TYPE` line.
#[derive(Clone, Copy)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its name (every name starts `jwt_blocklist_`), type and help.
struct Family {
    name: &'static str,
    kind: Type,
    help: &'static str,
}

macro_rules! families {
    ($($constant:ident = $name:literal, $kind:ident, $help:literal;)*) => {
        $(const $constant: Family = Family { name: $name, kind: Type::$kind, help: $help };)*
        /// Every metric of the service.
        const FAMILIES: &[Family] = &[$($constant),*];
    };
}

families! {
    HTTP_REQUESTS = "jwt_blocklist_http_requests_total", Counter,
        "HTTP requests, by method, route template and status";
    HTTP_DURATION = "jwt_blocklist_http_request_duration_seconds", Histogram,
        "HTTP request latency, by route template";
    REVOCATION_CHECKS = "jwt_blocklist_revocation_checks_total", Counter,
        "Revocation checks, by outcome";
    MEMORY_ENTRIES = "jwt_blocklist_revocation_memory_entries", Gauge,
        "Revocations held in memory";
    FOLLOWER_TRUSTED = "jwt_blocklist_revocation_follower_trusted", Gauge,
        "1 while memory answers checks, 0 while the database does";
    FOLLOWER_STALENESS = "jwt_blocklist_revocation_follower_staleness_seconds", Gauge,
        "Time since memory was last confirmed current";
    FOLLOWER_POLLS = "jwt_blocklist_revocation_follower_polls_total", Counter,
        "Polls of the revocation follower (each confirms memory current)";
    ROWS_SKIPPED = "jwt_blocklist_revocation_rows_skipped_total", Counter,
        "revoked_tokens rows left out of memory because no token can match them";
    PURGE_RUNS = "jwt_blocklist_purge_runs_total", Counter, "Purge runs, by result";
    PURGE_ROWS = "jwt_blocklist_purge_rows_removed_total", Counter, "Rows removed by purges, by table";
    LOGINS = "jwt_blocklist_logins_total", Counter, "Logins, by outcome";
    DATABASE_ERRORS = "jwt_blocklist_database_errors_total", Counter,
        "Database errors seen by requests, by kind";
    INTROSPECTIONS = "jwt_blocklist_introspections_total", Counter,
        "Introspection requests, by outcome";
    FEED_STREAMS = "jwt_blocklist_feed_streams", Gauge, "Revocation streams open now";
    FEED_EVENTS = "jwt_blocklist_feed_events_total", Counter, "Revocation stream events sent, by event";
    WRITE_BATCHES = "jwt_blocklist_write_batches_total", Counter,
        "Batches of revoking writes committed together (group commit)";
    WRITES = "jwt_blocklist_writes_total", Counter, "Revoking writes, counted with their batches";
    LOG_LINES_DROPPED = "jwt_blocklist_log_lines_dropped_total", Counter,
        "Log lines dropped because standard output did not keep up";
}

/// An enum of label values with their text.
macro_rules! label_values {
    ($($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
    )*};
}

label_values! {
    /// Where a revocation check was answered (`outcome`).
    CheckOutcome { Memory => "memory", Database => "database", Revoked => "revoked" }
    /// How a login ended (`outcome`).
    LoginOutcome { Success => "success", Failure => "failure", Throttled => "throttled", Shed => "shed" }
    /// Why a request's database call failed (`kind`).
    DatabaseErrorKind { Unavailable => "unavailable", Timeout => "timeout", Other => "other" }
    /// How a purge run ended (`result`).
    PurgeResult { Ok => "ok", Skipped => "skipped", Error => "error" }
    /// How an introspection ended (`outcome`).
    IntrospectionOutcome { Active => "active", Inactive => "inactive", InvalidClient => "invalid_client" }
    /// A revocation stream's event (`event`).
    FeedEvent {
        Revoked => "revoked", Unrevoked => "unrevoked", KeyRevoked => "key_revoked",
        Heartbeat => "heartbeat", Reset => "reset",
    }
    /// A signing key's state (`state`), as `keys list` shows it.
    KeyState { Next => "next", Active => "active", Retired => "retired", Revoked => "revoked" }
}

/// The signing keys by state, counted at each scrape. Rendered by
/// [`render`] itself rather than through the process-wide registry: two
/// applications in one process (the tests) would otherwise overwrite each
/// other's counts between a scrape's setting and its rendering.
const SIGNING_KEYS: Family =
    Family { name: "jwt_blocklist_signing_keys", kind: Type::Gauge, help: "Signing keys, by state" };

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, seconds: from the memory path to a slow hash.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Installs the recorder (once per process) and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.name.into()), &LATENCY_BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            log::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        for family in FAMILIES {
            match family.kind {
                Type::Counter => describe_counter!(family.name, family.help),
                Type::Gauge => describe_gauge!(family.name, family.help),
                Type::Histogram => describe_histogram!(family.name, family.help),
            }
        }
        handle
    })
}

/// Counts one revocation check.
pub fn revocation_check(outcome: CheckOutcome) {
    static COUNTERS: OnceLock<[Counter; 3]> = OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        [CheckOutcome::Memory, CheckOutcome::Database, CheckOutcome::Revoked]
            .map(|outcome| counter!(REVOCATION_CHECKS.name, "outcome" => outcome.as_str()))
    });
    counters[outcome as usize].increment(1);
}

/// Counts a `revoked_tokens` row the follower left out of memory because no
/// token can ever match it.
pub fn revocation_row_skipped() {
    counter!(ROWS_SKIPPED.name).increment(1);
}

/// Counts a login by how it ended.
pub fn login(outcome: LoginOutcome) {
    counter!(LOGINS.name, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a database error seen by a request.
pub fn database_error(kind: DatabaseErrorKind) {
    counter!(DATABASE_ERRORS.name, "kind" => kind.as_str()).increment(1);
}

/// Counts an introspection by how it ended.
pub fn introspection(outcome: IntrospectionOutcome) {
    counter!(INTROSPECTIONS.name, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a revocation stream's event.
pub fn feed_event(event: FeedEvent) {
    counter!(FEED_EVENTS.name, "event" => event.as_str()).increment(1);
}

/// Counts an open revocation stream while it lives.
pub struct OpenStream(());

impl OpenStream {
    #[allow(clippy::new_without_default)]
    pub fn new() -> OpenStream {
        gauge!(FEED_STREAMS.name).increment(1.0);
        OpenStream(())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!(FEED_STREAMS.name).decrement(1.0);
    }
}

/// Counts a purge run and what it removed.
pub fn purge_run(result: PurgeResult, revoked_tokens: u64, sessions: u64) {
    counter!(PURGE_RUNS.name, "result" => result.as_str()).increment(1);
    counter!(PURGE_ROWS.name, "table" => "revoked_tokens").increment(revoked_tokens);
    counter!(PURGE_ROWS.name, "table" => "sessions").increment(sessions);
}

/// Counts one answered request and its latency (called by the request log
/// fairing, which times each request once for both). The handles of each
/// (method, route template, status) are made once and kept: a request
/// allocates nothing and looks nothing up in the registry. Route templates
/// and statuses are a closed set, so the map stays small.
pub fn record_request(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    type Handles = HashMap<Box<str>, Vec<(&'static str, u16, Counter, Histogram)>>;
    static HANDLES: OnceLock<RwLock<Handles>> = OnceLock::new();
    let handles = HANDLES.get_or_init(RwLock::default);
    let find = |handles: &Handles| {
        handles
            .get(route)?
            .iter()
            .find(|(m, s, _, _)| *m == method && *s == status)
            .map(|(_, _, c, h)| (c.clone(), h.clone()))
    };
    let found = find(&handles.read().unwrap_or_else(PoisonError::into_inner));
    let (requests, duration) = found.unwrap_or_else(|| {
        let mut handles = handles.write().unwrap_or_else(PoisonError::into_inner);
        find(&handles).unwrap_or_else(|| {
            let requests = counter!(HTTP_REQUESTS.name, "method" => method, "route" => route.to_owned(), "status" => status.to_string());
            let duration = histogram!(HTTP_DURATION.name, "method" => method, "route" => route.to_owned());
            let made = (requests.clone(), duration.clone());
            handles.entry(route.into()).or_default().push((method, status, requests, duration));
            made
        })
    });
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
}

/// Counts a batch of revoking writes committed together (group commit).
pub fn write_batch(writes: usize) {
    static HANDLES: OnceLock<(Counter, Counter)> = OnceLock::new();
    let (batches, written) = HANDLES.get_or_init(|| (counter!(WRITE_BATCHES.name), counter!(WRITES.name)));
    batches.increment(1);
    written.increment(writes as u64);
}

/// Log lines dropped so far because standard output did not keep up (read
/// from the log's writer at each scrape).
pub fn log_lines_dropped(total: u64) {
    counter!(LOG_LINES_DROPPED.name).absolute(total);
}

/// The revocation memory's state, read at each scrape.
#[derive(Debug, Clone, Copy)]
pub struct MemoryState {
    pub entries: usize,
    pub trusted: bool,
    pub staleness: Duration,
    pub polls: u64,
}

/// The Prometheus text: every count so far, the memory's state now, and
/// the signing keys by state (`keys`: how many are in each, by `KeyState`).
pub fn render(memory: MemoryState, keys: [usize; 4]) -> String {
    let handle = install();
    gauge!(MEMORY_ENTRIES.name).set(memory.entries as f64);
    gauge!(FOLLOWER_TRUSTED.name).set(if memory.trusted { 1.0 } else { 0.0 });
    gauge!(FOLLOWER_STALENESS.name).set(memory.staleness.as_secs_f64());
    counter!(FOLLOWER_POLLS.name).absolute(memory.polls);
    handle.run_upkeep();
    let mut text = handle.render();
    text.push_str(&format!(
        "# HELP {} {}\n# TYPE {} gauge\n",
        SIGNING_KEYS.name, SIGNING_KEYS.help, SIGNING_KEYS.name
    ));
    for (state, count) in
        [KeyState::Next, KeyState::Active, KeyState::Retired, KeyState::Revoked].iter().zip(keys)
    {
        text.push_str(&format!("{}{{state=\"{}\"}} {count}\n", SIGNING_KEYS.name, state.as_str()));
    }
    text
}

/// Installs the recorder at ignite, before anything is counted.
pub struct Recorder;

#[rocket::async_trait]
impl Fairing for Recorder {
    fn info(&self) -> Info {
        Info { name: "Metrics recorder", kind: Kind::Ignite }
    }

    async fn on_ignite(&self, rocket: rocket::Rocket<rocket::Build>) -> rocket::fairing::Result {
        install();
        Ok(rocket)
    }
}
