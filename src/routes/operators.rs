//! What operators poll: `GET /health` (the database, the revocation
//! memory's state and the writer's) and `GET /metrics` (Prometheus text, from `metrics.rs`).

use std::time::Duration;

use rocket::http::{ContentType, Status};
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::db::{Store, MAX_STALENESS, MAX_WRITE_BATCH};
use crate::metrics::{self, MemoryState};

pub fn routes() -> Vec<Route> {
    routes![health, scrape]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(health, scrape))]
pub(crate) struct Doc;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum HealthStatus {
    Ok,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: HealthStatus,
    /// Present when the database answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_cache: Option<RevocationCache>,
    /// Present when the database answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    writes: Option<Writes>,
}

/// The revoking writes of this instance (group commit: one writer commits
/// them in batches).
#[derive(Serialize, ToSchema)]
struct Writes {
    /// Writes waiting for the next batch.
    queued: usize,
    /// Writes in the batch being committed now.
    in_flight: usize,
    /// Batches committed since start.
    batches: u64,
    /// Writes those batches held.
    writes: u64,
    /// The most one batch has held (at most `max_batch`).
    largest_batch: usize,
    max_batch: usize,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum CacheMode {
    /// Answered from memory, confirmed current within `max_staleness_ms`.
    Live,
    /// Answered by the database (loading, reconnecting, stalled, or over capacity).
    Fallback,
}

#[derive(Serialize, ToSchema)]
struct RevocationCache {
    mode: CacheMode,
    entries: usize,
    staleness_ms: u64,
    max_staleness_ms: u64,
    over_capacity: bool,
    /// Loads from the database since start (1 once live; each reload adds one).
    loads: u64,
}

#[utoipa::path(
    summary = "Health",
    description = "Whether the database answers, and the state of the revocation memory (`live`: answered from memory, confirmed current within `max_staleness_ms`; `fallback`: the database answers).",
    tag = "operators",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database cannot be reached", body = Health,
            example = json!({ "status": "unavailable" })),
    )
)]
#[get("/health")]
async fn health(store: &State<Store>) -> (Status, Json<Health>) {
    match store.ping().await {
        Ok(()) => {
            let cache = store.revocation_cache();
            let revocation_cache = RevocationCache {
                mode: if cache.trusted { CacheMode::Live } else { CacheMode::Fallback },
                entries: cache.entries,
                staleness_ms: cache.staleness_ms,
                max_staleness_ms: MAX_STALENESS.as_millis() as u64,
                over_capacity: cache.overflowed,
                loads: cache.loads,
            };
            let writer = store.writer_status();
            let writes = Writes {
                queued: writer.queued,
                in_flight: writer.in_flight,
                batches: writer.batches,
                writes: writer.writes,
                largest_batch: writer.largest_batch,
                max_batch: MAX_WRITE_BATCH,
            };
            let health = Health {
                status: HealthStatus::Ok,
                revocation_cache: Some(revocation_cache),
                writes: Some(writes),
            };
            (Status::Ok, Json(health))
        }
        Err(error) => {
            log::warn!("health check failed: {error}");
            (
                Status::ServiceUnavailable,
                Json(Health { status: HealthStatus::Unavailable, revocation_cache: None, writes: None }),
            )
        }
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
fn scrape(store: &State<Store>) -> (ContentType, String) {
    let cache = store.revocation_cache();
    let memory = MemoryState {
        entries: cache.entries,
        trusted: cache.trusted,
        staleness: Duration::from_millis(cache.staleness_ms),
        polls: cache.polls,
    };
    metrics::log_lines_dropped(crate::logging::dropped_lines());
    (
        ContentType::new("text", "plain").with_params([("version", "0.0.4"), ("charset", "utf-8")]),
        metrics::render(memory, signing_keys(store)),
    )
}

/// How many signing keys are in each state now (by [`metrics::KeyState`]'s order).
fn signing_keys(store: &Store) -> [usize; 4] {
    let now = chrono::Utc::now();
    let mut counts = [0; 4];
    for key in &store.credentials().keys {
        counts[key.state(now) as usize] += 1;
    }
    counts
}
