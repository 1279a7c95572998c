//! Following the service's revocation feed: the snapshot, then the event
//! stream from its cursor; after a disconnect, the stream again from the
//! last event's id (no gap, no repeat), with backoff; after a `reset` (or a
//! cursor the service refuses), a new snapshot.
//!
//! Both are read as they arrive, with bounded buffers (`wire.rs`): a
//! snapshot of a million entries is parsed entry by entry, never held as
//! one document.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Deserialize;

use crate::client::Shared;
use crate::wire::{unix_ms, SnapshotParser, SseEvent, SseParser, WireEntry};

/// Reconnection delays: from the first, doubling, to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));
/// The longest a response's head, or any chunk of its body, may take: a
/// service that stops answering mid-way (a frozen connection) is given up
/// on, and tried again, rather than waited for for ever.
const QUIET: Duration = Duration::from_secs(10);
/// How long the set may stay over capacity before a new snapshot is tried.
const OVERFLOW_RETRY: Duration = Duration::from_secs(30);

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How a stream connection ended.
enum Ended {
    /// The service sent `reset`, or refused the cursor: take a snapshot.
    Resnapshot,
    /// The connection dropped, failed or went quiet; `progressed` if any
    /// event came first.
    Dropped { progressed: bool },
}

/// Follows the feed for as long as the verifier lives.
pub(crate) async fn follow(shared: Arc<Shared>) {
    let mut cursor: Option<String> = None;
    let mut backoff = BACKOFF.0;
    let mut overflowed_since: Option<Instant> = None;
    loop {
        if cursor.is_none() {
            match snapshot(&shared).await {
                Ok(taken) => cursor = Some(taken),
                Err(error) => {
                    log::warn!("revocation snapshot failed: {error}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            }
        }
        match stream(&shared, &mut cursor).await {
            Ended::Resnapshot => {
                shared.revocations.unload();
                cursor = None;
            }
            Ended::Dropped { progressed } => {
                if progressed {
                    backoff = BACKOFF.0;
                }
            }
        }
        match (shared.revocations.status(Instant::now()).over_capacity, overflowed_since) {
            (true, None) => overflowed_since = Some(Instant::now()),
            (true, Some(since)) if since.elapsed() > OVERFLOW_RETRY => {
                overflowed_since = None;
                cursor = None;
            }
            (false, _) => overflowed_since = None,
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// Takes a snapshot into the set; returns its cursor.
async fn snapshot(shared: &Shared) -> Result<String, String> {
    let request = shared
        .http
        .get(&shared.endpoints.feed)
        .basic_auth(&shared.config.client_id, Some(&shared.config.client_secret));
    let response = tokio::time::timeout(QUIET, request.send())
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{} answered {}", shared.endpoints.feed, response.status()));
    }
    let mut parser = SnapshotParser::default();
    let mut entries = HashMap::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) =
        tokio::time::timeout(QUIET, body.next()).await.map_err(|_| "the snapshot stalled")?
    {
        let chunk = chunk.map_err(|e| e.to_string())?;
        entries.extend(parser.push(&chunk)?);
    }
    let tail = parser.finish()?;
    let as_of = unix_ms(&tail.as_of).ok_or("the snapshot's as_of is not RFC 3339")?;
    let keys: HashSet<String> = tail.revoked_keys.into_iter().collect();
    log::info!("revocation snapshot: {} entries, {} revoked keys", entries.len(), keys.len());
    shared.revocations.load(entries, keys, as_of, Instant::now(), now_ms());
    Ok(tail.cursor)
}

/// Follows the stream from `cursor`, moving it with every event.
async fn stream(shared: &Shared, cursor: &mut Option<String>) -> Ended {
    let mut request = shared
        .http
        .get(&shared.endpoints.stream)
        .basic_auth(&shared.config.client_id, Some(&shared.config.client_secret));
    if let Some(cursor) = cursor.as_deref() {
        request = request.header("Last-Event-ID", cursor);
    }
    let response = match tokio::time::timeout(QUIET, request.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            log::debug!("revocation stream: cannot connect: {error}");
            return Ended::Dropped { progressed: false };
        }
        Err(_) => {
            log::debug!("revocation stream: no answer within {QUIET:?}");
            return Ended::Dropped { progressed: false };
        }
    };
    if response.status() == reqwest::StatusCode::BAD_REQUEST {
        log::warn!("revocation stream: the cursor was refused; taking a new snapshot");
        return Ended::Resnapshot;
    }
    if !response.status().is_success() {
        log::warn!("revocation stream: {} answered {}", shared.endpoints.stream, response.status());
        return Ended::Dropped { progressed: false };
    }
    let mut parser = SseParser::default();
    let mut body = response.bytes_stream();
    let mut progressed = false;
    // Quiet for this long, the connection is presumed dead: the set went
    // stale (and refuses tokens) well before.
    let idle = shared.config.max_staleness * 2;
    let mut evicted_at = Instant::now();
    loop {
        let chunk = match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) | Ok(None) | Err(_) => return Ended::Dropped { progressed },
        };
        let events = match parser.push(&chunk) {
            Ok(events) => events,
            Err(error) => {
                log::warn!("revocation stream: {error}");
                return Ended::Dropped { progressed };
            }
        };
        for event in events {
            if event.event == "reset" {
                return Ended::Resnapshot;
            }
            if apply(shared, &event) {
                progressed = true;
                if let Some(id) = event.id {
                    *cursor = Some(id);
                }
            }
        }
        if evicted_at.elapsed() >= Duration::from_secs(1) {
            evicted_at = Instant::now();
            shared.revocations.evict(now_ms(), shared.config.leeway.as_millis() as i64);
        }
    }
}

/// Applies one event to the set; false for one it does not understand
/// (whose cursor is then not taken: nothing it said was applied).
fn apply(shared: &Shared, event: &SseEvent) -> bool {
    #[derive(Deserialize)]
    struct Kid {
        kid: String,
    }
    #[derive(Deserialize)]
    struct AsOf {
        as_of: String,
    }
    let revocations = &shared.revocations;
    match event.event.as_str() {
        "revoked" => match serde_json::from_str::<WireEntry>(&event.data)
            .ok()
            .and_then(|e| Some((e.id, unix_ms(&e.until)?)))
        {
            Some((id, until)) => revocations.revoke(id, until),
            None => return false,
        },
        "unrevoked" => match serde_json::from_str::<WireEntry>(&event.data) {
            Ok(entry) => revocations.unrevoke(entry.id),
            Err(_) => return false,
        },
        "key_revoked" => match serde_json::from_str::<Kid>(&event.data) {
            Ok(key) => revocations.revoke_key(key.kid),
            Err(_) => return false,
        },
        "heartbeat" => match serde_json::from_str::<AsOf>(&event.data).ok().and_then(|a| unix_ms(&a.as_of)) {
            Some(as_of) => revocations.confirm(as_of, Instant::now(), now_ms()),
            None => return false,
        },
        _ => return false,
    }
    true
}
