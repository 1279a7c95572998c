//! The purge: deletes blocklist and session rows whose tokens can no longer
//! be accepted anyway (`expires_at` + `leeway` in the past), so a purge never
//! un-revokes anything. [`purge_expired`] does one run and is what tests and
//! the command line (`jwt-blocklist purge`) call; the fairing runs it every
//! `purge_interval` seconds until shutdown.

use std::time::{Duration, Instant};

use rocket::fairing::AdHoc;
use rocket::tokio::time::{interval, MissedTickBehavior};

use crate::config::AppConfig;
use crate::db::{DbError, PurgeCounts, Store};
use crate::metrics::{self, PurgeResult};

/// What a purge run reports when another instance holds the purge lock.
pub const SKIPPED: &str = "purge skipped: another instance is purging";

/// Rows per DELETE: small enough that no statement holds locks for long.
/// Between batches the purge pauses as long as the last batch took.
pub const BATCH_SIZE: i64 = 1_000;

/// One purge run, with the store's configured leeway. `Ok(None)` when
/// another instance holds the purge lock.
pub async fn purge_expired(store: &Store) -> Result<Option<PurgeCounts>, DbError> {
    let started = Instant::now();
    log::info!("purge started");
    let result = store.purge_expired(chrono::Utc::now(), BATCH_SIZE).await;
    match &result {
        Ok(Some(counts)) => {
            log::info!("purged {counts} in {:?}", started.elapsed());
            metrics::purge_run(PurgeResult::Ok, counts.revoked_tokens, counts.sessions);
        }
        Ok(None) => {
            log::info!("{SKIPPED}");
            metrics::purge_run(PurgeResult::Skipped, 0, 0);
        }
        Err(error) => {
            log::warn!("purge failed after {:?}: {error}", started.elapsed());
            metrics::purge_run(PurgeResult::Error, 0, 0);
        }
    }
    result
}

/// Runs [`purge_expired`] every `purge_interval` seconds (0 turns it off) and
/// stops on shutdown, even in the middle of a run.
pub fn stage() -> AdHoc {
    AdHoc::on_liftoff("Purge of expired revocations", |rocket| {
        Box::pin(async move {
            let (Some(config), Some(store)) = (rocket.state::<AppConfig>(), rocket.state::<Store>()) else {
                return;
            };
            if config.purge_interval == 0 {
                log::info!("purge timer off (purge_interval = 0)");
                return;
            }
            let store = store.clone();
            let period = Duration::from_secs(config.purge_interval);
            let mut shutdown = rocket.shutdown();
            rocket::tokio::spawn(async move {
                let mut ticker = interval(period);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    rocket::tokio::select! {
                        _ = ticker.tick() => {}
                        _ = &mut shutdown => break,
                    }
                    rocket::tokio::select! {
                        _ = purge_expired(&store) => {}
                        _ = &mut shutdown => break,
                    }
                }
                log::info!("purge timer stopped");
            });
        })
    })
}
