//! The feed's two wire formats, read as their bytes arrive, with bounded
//! buffers: server-sent events, and the snapshot's JSON entry by entry.

use chrono::DateTime;
use serde::Deserialize;
use uuid::Uuid;

/// The longest line of the event stream, and the longest snapshot entry.
const MAX_LINE: usize = 64 * 1024;
/// The most the snapshot's closing members may take (its revoked keys).
const MAX_TAIL: usize = 1024 * 1024;

/// An RFC 3339 time as unix milliseconds.
pub(crate) fn unix_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_millis())
}

/// A revoked or unrevoked entry as the feed writes it.
#[derive(Deserialize)]
pub(crate) struct WireEntry {
    pub id: Uuid,
    pub until: String,
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
