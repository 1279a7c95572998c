//! `GET /metrics`: Prometheus text format, through the `metrics` facade and
//! `metrics-exporter-prometheus`'s renderer (no listener of its own).
//!
//! Families (all prefixed `jwt_blocklist_`):
//! - `http_requests_total{method,route,status}` and
//!   `http_request_duration_seconds{method,route}` (a histogram), by route
//!   template (`/auth/sessions/<id>`), never by raw path, so clients cannot
//!   mint label values;
//! - `revocation_checks_total{outcome}`: `memory` and `database` (where a
//!   valid token's check was answered), `revoked`;
//! - `revocation_memory_entries`, `revocation_follower_trusted` (1 or 0),
//!   `revocation_follower_staleness_seconds`, `revocation_follower_polls_total`,
//!   read at each scrape;
//! - `revocation_rows_skipped_total`: rows no token can match (on SQLite,
//!   a `jti` that is not a UUID), left out of memory;
//! - `purge_runs_total{result}` and `purge_rows_removed_total{table}`;
//! - `logins_total{outcome}`: `success`, `failure`, `throttled`, `shed`;
//! - `database_errors_total{kind}`: `unavailable`, `timeout`, `other`.
//!
//! The recorder is process-wide and installed once, before the first count.
//! Counting on the hot path (the revocation check) uses handles resolved once,
//! not a registry lookup per request.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::get;
use rocket::http::ContentType;

use crate::db::Db;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, seconds: from the memory path to a slow hash.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Installs the recorder (once per process) and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &LATENCY_BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            log::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        "jwt_blocklist_http_requests_total",
        "HTTP requests, by method, route template and status"
    );
    describe_histogram!(
        "jwt_blocklist_http_request_duration_seconds",
        "HTTP request latency, by route template"
    );
    describe_counter!("jwt_blocklist_revocation_checks_total", "Revocation checks, by outcome");
    describe_gauge!("jwt_blocklist_revocation_memory_entries", "Revocations held in memory");
    describe_gauge!(
        "jwt_blocklist_revocation_follower_trusted",
        "1 while memory answers checks, 0 while the database does"
    );
    describe_gauge!(
        "jwt_blocklist_revocation_follower_staleness_seconds",
        "Time since memory was last confirmed current"
    );
    describe_counter!(
        "jwt_blocklist_revocation_rows_skipped_total",
        "revoked_tokens rows left out of memory because no token can match them"
    );
    describe_counter!(
        "jwt_blocklist_revocation_follower_polls_total",
        "Polls of the revocation follower (each confirms memory current)"
    );
    describe_counter!("jwt_blocklist_purge_runs_total", "Purge runs, by result");
    describe_counter!("jwt_blocklist_purge_rows_removed_total", "Rows removed by purges, by table");
    describe_counter!("jwt_blocklist_logins_total", "Logins, by outcome");
    describe_counter!("jwt_blocklist_database_errors_total", "Database errors seen by requests, by kind");
}

/// Where a revocation check was answered; counted on the hot path.
#[derive(Debug, Clone, Copy)]
pub enum CheckOutcome {
    Memory,
    Database,
    Revoked,
}

/// Counts one revocation check.
pub fn revocation_check(outcome: CheckOutcome) {
    static COUNTERS: OnceLock<[Counter; 3]> = OnceLock::new();
    let [memory, database, revoked] = COUNTERS.get_or_init(|| {
        let named =
            |outcome: &'static str| counter!("jwt_blocklist_revocation_checks_total", "outcome" => outcome);
        [named("memory"), named("database"), named("revoked")]
    });
    match outcome {
        CheckOutcome::Memory => memory.increment(1),
        CheckOutcome::Database => database.increment(1),
        CheckOutcome::Revoked => revoked.increment(1),
    }
}

/// Counts a `revoked_tokens` row the follower left out of memory because no
/// token can ever match it.
pub fn revocation_row_skipped() {
    counter!("jwt_blocklist_revocation_rows_skipped_total").increment(1);
}

/// Counts a login by outcome: `success`, `failure`, `throttled` or `shed`.
pub fn login(outcome: &'static str) {
    counter!("jwt_blocklist_logins_total", "outcome" => outcome).increment(1);
}

/// Counts a database error seen by a request.
pub fn database_error(kind: &'static str) {
    counter!("jwt_blocklist_database_errors_total", "kind" => kind).increment(1);
}

/// Counts a purge run and what it removed.
pub fn purge_run(result: &'static str, revoked_tokens: u64, sessions: u64) {
    counter!("jwt_blocklist_purge_runs_total", "result" => result).increment(1);
    counter!("jwt_blocklist_purge_rows_removed_total", "table" => "revoked_tokens").increment(revoked_tokens);
    counter!("jwt_blocklist_purge_rows_removed_total", "table" => "sessions").increment(sessions);
}

/// Counts one answered request and its latency (called by the request log
/// fairing, `logging.rs`, which times each request once for both).
pub fn record_request(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    counter!("jwt_blocklist_http_requests_total", "method" => method, "route" => route.to_owned(), "status" => status.to_string())
        .increment(1);
    histogram!("jwt_blocklist_http_request_duration_seconds", "method" => method, "route" => route.to_owned())
        .record(elapsed.as_secs_f64());
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

/// The scrape: request counts and latencies as they are, plus the revocation
/// memory's state read now.
#[utoipa::path(
    summary = "Metrics (Prometheus)",
    tag = "operators",
    responses((status = 200, description = "Prometheus text format 0.0.4 (see README: Operators)",
        content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub fn scrape(db: &Db) -> (ContentType, String) {
    let handle = install();
    let cache = db.revocation_cache();
    gauge!("jwt_blocklist_revocation_memory_entries").set(cache.entries as f64);
    gauge!("jwt_blocklist_revocation_follower_trusted").set(if cache.trusted { 1.0 } else { 0.0 });
    gauge!("jwt_blocklist_revocation_follower_staleness_seconds").set(cache.staleness_ms as f64 / 1000.0);
    counter!("jwt_blocklist_revocation_follower_polls_total").absolute(cache.polls);
    handle.run_upkeep();
    (
        ContentType::new("text", "plain").with_params([("version", "0.0.4"), ("charset", "utf-8")]),
        handle.render(),
    )
}
