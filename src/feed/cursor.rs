//! Feed cursors: where a client stands in the event log, as the opaque
//! text it sends back in `Last-Event-ID` or `?after=`. A cursor names a
//! range of the log and the last id of it the client has seen (`from`,
//! `to`, `after`: resuming sends that range's changes after `after`, then
//! everything past `to`), or just a position (`from` = `to`, no `after`).
//!
//! Cursors are signed (HMAC-SHA256 under a key HKDF derives from
//! `jwt_secret`, so every instance reads every other's), and anything this
//! service did not issue is refused: a client cannot make an instance read
//! a made-up snapshot.

use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use crate::config::Secret;
use crate::db::feed::Position;

/// The longest cursor read: a Postgres snapshot lists the transactions in
/// progress, so it grows with them, but never near this.
const MAX_LEN: usize = 8192;

/// Bytes of the HMAC a cursor carries.
const TAG_LEN: usize = 16;

/// A place in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub from: Position,
    pub to: Position,
    /// The last id of `from`..`to` the client has seen.
    pub after: Option<Uuid>,
}

impl Cursor {
    /// Just `position`: everything up to it seen.
    pub fn at(position: Position) -> Cursor {
        Cursor { from: position.clone(), to: position, after: None }
    }

    /// Whether the client has seen all of `from`..`to`.
    pub fn is_at_position(&self) -> bool {
        self.from == self.to && self.after.is_none()
    }
}

/// The key that signs and checks cursors.
#[derive(Clone)]
pub struct CursorKey {
    key: hmac::Key,
}

fn position_text(position: &Position) -> (char, String) {
    match position {
        Position::Postgres(snapshot) => ('p', snapshot.clone()),
        Position::Sqlite(seq) => ('s', seq.to_string()),
    }
}

impl CursorKey {
    pub fn derive(secret: &Secret) -> CursorKey {
        let prk = Salt::new(HKDF_SHA256, b"jwt-blocklist").extract(secret.expose());
        let okm = prk.expand(&[b"feed cursors, HMAC-SHA256, v1"], hmac::HMAC_SHA256).expect("one HMAC key");
        CursorKey { key: hmac::Key::from(okm) }
    }

    /// The text of `cursor`.
    pub fn encode(&self, cursor: &Cursor) -> String {
        let ((backend, from), (_, to)) = (position_text(&cursor.from), position_text(&cursor.to));
        let after = cursor.after.map_or_else(String::new, |id| id.to_string());
        let payload = format!("{backend}|{from}|{to}|{after}");
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(&tag.as_ref()[..TAG_LEN]))
    }

    /// The cursor `text` names, if this service issued it.
    pub fn decode(&self, text: &str) -> Option<Cursor> {
        if text.len() > MAX_LEN {
            return None;
        }
        let (payload, tag) = text.split_once('.')?;
        let (payload, tag) = (URL_SAFE_NO_PAD.decode(payload).ok()?, URL_SAFE_NO_PAD.decode(tag).ok()?);
        let expected = hmac::sign(&self.key, &payload);
        if tag.len() != TAG_LEN || !constant_time_eq(&tag, &expected.as_ref()[..TAG_LEN]) {
            return None;
        }
        let payload = String::from_utf8(payload).ok()?;
        let mut fields = payload.split('|');
        let (backend, from, to, after) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        let position = |text: &str| match backend {
            "p" => Some(Position::Postgres(text.to_owned())),
            "s" => text.parse().ok().map(Position::Sqlite),
            _ => None,
        };
        let after = match after {
            "" => None,
            id => Some(Uuid::parse_str(id).ok()?),
        };
        Some(Cursor { from: position(from)?, to: position(to)?, after })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> CursorKey {
        CursorKey::derive(&serde_json::from_value(serde_json::json!(secret)).unwrap())
    }

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        let key = key("a secret of thirty-two bytes or more");
        let cursors = [
            Cursor::at(Position::Sqlite(42)),
            Cursor { from: Position::Sqlite(1), to: Position::Sqlite(9), after: Some(Uuid::new_v4()) },
            Cursor::at(Position::Postgres("1234:1240:1235,1237".into())),
        ];
        for cursor in cursors {
            let text = key.encode(&cursor);
            assert_eq!(key.decode(&text), Some(cursor));
            let mut forged = text.clone().into_bytes();
            forged[2] ^= 1;
            assert_eq!(key.decode(&String::from_utf8_lossy(&forged)), None, "a changed byte");
            assert_eq!(self::key("another secret of thirty-two bytes").decode(&text), None, "another secret");
        }
        let unsigned = URL_SAFE_NO_PAD.encode("s|1|1|");
        for text in [
            "",
            ".",
            "garbage",
            &format!("{unsigned}."),
            &format!("{unsigned}.AAAA"),
            &"A".repeat(MAX_LEN + 1),
        ] {
            assert_eq!(key.decode(text), None, "{text:?}");
        }
    }
}
