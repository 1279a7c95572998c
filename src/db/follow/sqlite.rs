//! The SQLite side of the follower. SQLite has no notifications: the triggers
//! (migrations 3, 10 and 11) append every changed `revoked_tokens` row, with
//! the state it was left in, to `revocation_events`, and the follower, on a
//! connection of its own, looks at
//! `PRAGMA data_version` (which moves when another connection commits) every
//! [`WATCH_INTERVAL`], reading the log past the last event it applied.
//!
//! SQLite has one writer at a time and `AUTOINCREMENT` is transactional, so
//! event numbers are gap-free in commit order: a missing number means events
//! were pruned (or deleted by hand) behind a stopped follower, and memory is
//! reloaded rather than trusted.

use std::time::Duration;

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rocket::futures::TryStreamExt;
use sqlx::sqlite::SqlitePool;
use sqlx::{ConnectOptions, SqliteConnection};
use uuid::Uuid;

use super::{load_rows, skip_unmatchable, wanted, Change};
use crate::db::cache::RevocationCache;
use crate::db::model::REFRESH_ROTATED;
use crate::db::sqlite::{text, until_ms};
use crate::db::DbError;

/// How often the follower looks for commits by other connections: one
/// `PRAGMA data_version` on its own connection (no disk read); the event log
/// is read only when it moved.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(2);

/// The newest event number ever handed out, the credentials' version, and
/// every event past `?1` with the state it left its row in (migration 11;
/// an older event's row is looked up), in one statement (one snapshot) and
/// one row: the events as three JSON arrays (seq, id, expiry as
/// [`until_ms`], null where memory holds nothing), because sqlx hands over
/// a row at a cost of microseconds and a DBA's bulk revocation brings
/// events by the hundred thousand. Used-up refresh tokens are left out here
/// with [`REFRESH_ROTATED`] bound, as [`wanted`] does for the load.
static POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'revocation_events'),
                (SELECT version FROM credentials_version),
                json_group_array(e.seq), json_group_array(e.jti),
                json_group_array(CASE
                    WHEN e.reason IS NOT NULL THEN (CASE WHEN e.reason <> ?2 THEN {} END)
                    WHEN e.old_expires_at IS NULL
                    THEN (SELECT {} FROM revoked_tokens r WHERE r.jti = e.jti AND r.reason <> ?2)
                END)
         FROM revocation_events e
         WHERE e.seq > ?1",
        until_ms("e.expires_at"),
        until_ms("r.expires_at")
    )
});

type PollRow = (Option<i64>, i64, String, String, String);

pub(super) struct Source {
    conn: SqliteConnection,
    version: i64,
    seen: i64,
}

impl Source {
    pub(super) async fn open(pool: &SqlitePool) -> Result<Source, DbError> {
        let mut conn = pool.connect_options().connect().await?;
        let version = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut conn).await?;
        Ok(Source { conn, version, seen: 0 })
    }

    pub(super) async fn load(
        &mut self,
        cutoff: DateTime<Utc>,
        cache: &RevocationCache,
    ) -> Result<usize, DbError> {
        // The newest event first: whatever commits after it, the first poll reads.
        self.seen = sqlx::query_scalar(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'revocation_events'), 0)",
        )
        .fetch_one(&mut self.conn)
        .await?;
        let load = format!(
            "SELECT jti, {}, reason FROM revoked_tokens WHERE julianday(expires_at) >= julianday(?1)",
            until_ms("expires_at")
        );
        let rows = sqlx::query_as::<_, (String, i64, String)>(&load)
            .bind(text(cutoff))
            .fetch(&mut self.conn)
            .map_err(DbError::from)
            .map_ok(|(jti, until_ms, reason)| match Uuid::parse_str(&jti) {
                Ok(id) => wanted(until_ms, &reason).map(|until| (id, until)),
                Err(_) => {
                    skip_unmatchable(&jti);
                    None
                }
            });
        load_rows(cache, rows).await
    }

    /// The newest event memory has applied.
    pub(super) fn seen(&self) -> i64 {
        self.seen
    }

    pub(super) async fn poll(&mut self) -> Result<(Vec<Change>, Option<i64>), DbError> {
        let version: i64 = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut self.conn).await?;
        if version == self.version {
            return Ok((Vec::new(), None));
        }
        let (handed_out, credentials, seqs, ids, untils): PollRow = sqlx::query_as(POLL.as_str())
            .bind(self.seen)
            .bind(REFRESH_ROTATED)
            .fetch_one(&mut self.conn)
            .await?;
        let (seqs, ids, untils): (Vec<i64>, Vec<String>, Vec<Option<i64>>) =
            match (serde_json::from_str(&seqs), serde_json::from_str(&ids), serde_json::from_str(&untils)) {
                (Ok(seqs), Ok(ids), Ok(untils)) => (seqs, ids, untils),
                _ => return Err(DbError::decode("poll", "arrays that are not JSON")),
            };
        if seqs.len() != ids.len() || ids.len() != untils.len() {
            return Err(DbError::decode("poll", "arrays of unequal lengths"));
        }
        let mut events: Vec<(i64, String, Option<i64>)> =
            seqs.into_iter().zip(ids).zip(untils).map(|((seq, id), until)| (seq, id, until)).collect();
        events.sort_unstable_by_key(|&(seq, _, _)| seq);
        let newest = handed_out.unwrap_or(0);
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let mut changes = Vec::with_capacity(events.len());
        for (next, (seq, jti, until)) in (self.seen + 1..).zip(events) {
            if seq != next {
                return Err(DbError::EventGap);
            }
            match Uuid::parse_str(&jti) {
                Ok(id) => changes.push((id, until)),
                Err(_) => skip_unmatchable(&jti),
            }
        }
        if newest != self.seen.saturating_add(count) {
            return Err(DbError::EventGap);
        }
        self.version = version;
        self.seen = newest;
        Ok((changes, Some(credentials)))
    }
}
