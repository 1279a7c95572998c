//! Following the service's revocation feed: the snapshot, then the event
//! stream from its cursor; after a disconnect, the stream again from the
//! last event's id (no gap, no repeat), with backoff; after a `reset` (or a
//! cursor the service refuses), a new snapshot.
//!
//! Both are read as they arrive, with bounded buffers: a snapshot of a
//! million entries is parsed entry by entry, never held as one document.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

use crate::client::Shared;

/// The longest line of the event stream, and the longest snapshot entry.
const MAX_LINE: usize = 64 * 1024;
/// The most the snapshot's closing members may take (its revoked keys).
const MAX_TAIL: usize = 1024 * 1024;
/// Reconnection delays: from the first, doubling, to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));
/// How long the set may stay over capacity before a new snapshot is tried.
const OVERFLOW_RETRY: Duration = Duration::from_secs(30);

/// An RFC 3339 time as unix milliseconds.
pub(crate) fn unix_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_millis())
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Deserialize)]
struct WireEntry {
    id: Uuid,
    until: String,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Server-sent events from a byte stream, as they complete.
#[derive(Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl SseParser {
    /// The events `bytes` completes; `Err` for a line over [`MAX_LINE`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                if self.line.len() >= MAX_LINE {
                    return Err("an event stream line is too long".into());
                }
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line)).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    events.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        id: self.id.take(),
                        data: std::mem::take(&mut self.data),
                    });
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "id" => self.id = Some(value.to_owned()),
                "data" => {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                _ => {}
            }
        }
        Ok(events)
    }
}

/// A snapshot's closing members.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct SnapshotTail {
    pub revoked_keys: Vec<String>,
    pub cursor: String,
    pub as_of: String,
}

/// The snapshot's entries as its bytes arrive. The service writes
/// `{"revocations":[…],…}` with `revocations` first, so entries are parsed
/// one by one and only the closing members are kept whole.
#[derive(Default)]
pub(crate) struct SnapshotParser {
    pending: Vec<u8>,
    started: bool,
    in_tail: bool,
}

const OPENING: &[u8] = br#"{"revocations":["#;

impl SnapshotParser {
    /// The entries (id, until in unix ms) `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<(Uuid, i64)>, String> {
        self.pending.extend_from_slice(bytes);
        let mut entries = Vec::new();
        if !self.started {
            if self.pending.len() < OPENING.len() {
                return Ok(entries);
            }
            if !self.pending.starts_with(OPENING) {
                return Err("the snapshot does not begin with its revocations".into());
            }
            self.pending.drain(..OPENING.len());
            self.started = true;
        }
        if self.in_tail {
            return self.check_tail().map(|()| entries);
        }
        let mut at = 0;
        loop {
            while at < self.pending.len() && matches!(self.pending[at], b',' | b' ' | b'\n' | b'\r' | b'\t') {
                at += 1;
            }
            match self.pending.get(at) {
                None => break,
                Some(b']') => {
                    self.in_tail = true;
                    self.pending.drain(..at + 1);
                    return self.check_tail().map(|()| entries);
                }
                Some(b'{') => {
                    let Some(end) = self.pending[at..].iter().position(|&b| b == b'}') else { break };
                    let entry: WireEntry = serde_json::from_slice(&self.pending[at..at + end + 1])
                        .map_err(|e| format!("a snapshot entry: {e}"))?;
                    let until = unix_ms(&entry.until).ok_or("a snapshot entry's until is not RFC 3339")?;
                    entries.push((entry.id, until));
                    at += end + 1;
                }
                Some(_) => return Err("the snapshot's revocations are malformed".into()),
            }
        }
        self.pending.drain(..at);
        if self.pending.len() > MAX_LINE {
            return Err("a snapshot entry is too long".into());
        }
        Ok(entries)
    }

    fn check_tail(&self) -> Result<(), String> {
        match self.pending.len() > MAX_TAIL {
            true => Err("the snapshot's closing members are too long".into()),
            false => Ok(()),
        }
    }

    /// The closing members, once the body has ended.
    pub fn finish(self) -> Result<SnapshotTail, String> {
        if !self.in_tail {
            return Err("the snapshot ended early".into());
        }
        let text = String::from_utf8(self.pending).map_err(|_| "the snapshot is not UTF-8")?;
        let members =
            text.trim_start().strip_prefix(',').ok_or("the snapshot's closing members are malformed")?;
        serde_json::from_str(&format!("{{{members}"))
            .map_err(|e| format!("the snapshot's closing members: {e}"))
    }
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
    let response = shared
        .http
        .get(&shared.endpoints.feed)
        .basic_auth(&shared.config.client_id, Some(&shared.config.client_secret))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{} answered {}", shared.endpoints.feed, response.status()));
    }
    let mut parser = SnapshotParser::default();
    let mut entries = HashMap::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
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
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            log::debug!("revocation stream: cannot connect: {error}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_any_split_of_the_bytes() {
        let text = "id:c1\nevent:revoked\ndata:{\"id\":\"x\"}\n\n: a comment\n\nid: c2\r\nevent: heartbeat\r\ndata: {}\r\n\r\n";
        for split in 0..text.len() {
            let mut parser = SseParser::default();
            let mut events = parser.push(&text.as_bytes()[..split]).unwrap();
            events.extend(parser.push(&text.as_bytes()[split..]).unwrap());
            assert_eq!(
                events,
                [
                    SseEvent {
                        event: "revoked".into(),
                        id: Some("c1".into()),
                        data: "{\"id\":\"x\"}".into()
                    },
                    SseEvent { event: "heartbeat".into(), id: Some("c2".into()), data: "{}".into() },
                ],
                "split at {split}"
            );
        }
        let mut parser = SseParser::default();
        assert!(parser.push(&vec![b'x'; MAX_LINE + 1]).is_err(), "a line is bounded");
    }

    #[test]
    fn a_snapshot_is_read_entry_by_entry_across_any_split() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let text = format!(
            r#"{{"revocations":[{{"id":"{a}","kind":"token","until":"2030-01-01T00:00:00.000Z"}},{{"id":"{b}","kind":"session","until":"2030-01-01T00:00:01.500Z"}}],"as_of":"2026-12-05T12:00:00.000Z","cursor":"c","revoked_keys":["k"]}}"#
        );
        for split in 0..text.len() {
            let mut parser = SnapshotParser::default();
            let mut entries = parser.push(&text.as_bytes()[..split]).unwrap();
            entries.extend(parser.push(&text.as_bytes()[split..]).unwrap());
            assert_eq!(entries, [(a, 1_893_456_000_000), (b, 1_893_456_001_500)], "split at {split}");
            let tail = parser.finish().unwrap();
            assert_eq!((tail.cursor.as_str(), tail.revoked_keys), ("c", vec!["k".to_owned()]));
        }
        let mut cut = SnapshotParser::default();
        cut.push(&text.as_bytes()[..text.len() / 2]).unwrap();
        assert!(cut.finish().is_err(), "a snapshot cut short is refused, never taken as complete");
        assert!(SnapshotParser::default().push(br#"{"cursor":"c","revocations":[]}"#).is_err());
    }
}
