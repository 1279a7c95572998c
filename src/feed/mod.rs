//! The revocation stream (`GET /revocations/stream`, contract v3): what one
//! open connection is sent, as [`Event`]s; `routes/feed.rs` writes them as
//! server-sent events.
//!
//! A stream follows the store's batches (`db/feed.rs`): each is what the
//! follower confirmed from the database, so a stream sends nothing that was
//! not, and each batch ends with a heartbeat whose `as_of` is the
//! confirmation's (the batcher publishes one at least every 100 ms, or
//! each 200 ms poll on Postgres). When the follower
//! stalls, batches stop and so do heartbeats: a client that goes a second
//! without one knows it is not current. A stream that is not where a batch
//! begins (it resumed from a cursor, or fell behind) reads what it missed
//! itself; when the log no longer has it, it sends `reset` and ends.
//!
//! It ends, too, when its client is removed, at shutdown, and when the
//! database fails it (the client resumes by cursor). Nothing in it grows
//! with what it sends: it holds a position and the set of revoked keys.

pub mod cursor;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rocket::futures::Stream;
use rocket::response::stream::stream;
use rocket::Shutdown;

use crate::db::feed::{Change, Entry, Position};
use crate::db::{DbError, Store};
use cursor::{Cursor, CursorKey};

/// One server-sent event; every one but `Reset` carries its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Revoked { cursor: String, entry: Entry },
    Unrevoked { cursor: String, entry: Entry },
    KeyRevoked { cursor: String, kid: String },
    Heartbeat { cursor: String, as_of: DateTime<Utc> },
    Reset,
}

/// Who is following.
pub struct Follower {
    pub client: String,
    /// The client's secret hash when the stream opened: a client removed
    /// (or added again under the same name) ends the stream.
    pub secret_hash: Vec<u8>,
}

/// The kids of keys revoked so recently that tokens they signed may still
/// be presented (within the store's `feed_tail`).
pub fn revoked_keys(store: &Store) -> BTreeSet<String> {
    let since = Utc::now() - store.feed_tail();
    let credentials = store.credentials();
    credentials
        .keys
        .iter()
        .filter(|key| key.revoked_at.is_some_and(|at| at > since))
        .map(|key| key.kid.clone())
        .collect()
}

/// Why a stream stops reading.
enum Stop {
    /// The log no longer covers the stream's position: send `reset`.
    Reset,
    /// The database failed it: end (the client resumes by cursor).
    Ended,
}

/// The changes between two positions, or why the stream must stop.
async fn changes(
    store: &Store,
    client: &str,
    from: &Position,
    to: &Position,
    after: Option<uuid::Uuid>,
) -> Result<Vec<Change>, Stop> {
    store.feed_changes(from, to, after).await.map_err(|error| match error {
        DbError::EventGap => Stop::Reset,
        error => {
            log::info!("revocation stream of {client}: ended ({error})");
            Stop::Ended
        }
    })
}

fn change_event(cursors: &CursorKey, from: &Position, to: &Position, change: &Change) -> Event {
    let cursor =
        cursors.encode(&Cursor { from: from.clone(), to: to.clone(), after: Some(change.entry().id) });
    match change {
        Change::Revoked(entry) => Event::Revoked { cursor, entry: entry.clone() },
        Change::Unrevoked(entry) => Event::Unrevoked { cursor, entry: entry.clone() },
    }
}

/// The events of one stream, from `start` (or from the next batch).
pub fn events(
    store: Store,
    cursors: CursorKey,
    follower: Follower,
    start: Option<Cursor>,
    mut shutdown: Shutdown,
) -> impl Stream<Item = Event> + Send {
    stream! {
        let _open = crate::metrics::OpenStream::new();
        let mut batches = store.feed_batches();
        let registered = || {
            store.credentials().clients.iter().any(|client| {
                client.name == follower.client && client.secret_hash == follower.secret_hash
            })
        };
        // Resuming: every key revoked while the client was away is sent
        // again (a repeat is harmless, a miss is not).
        let mut known_keys = match start {
            Some(_) => BTreeSet::new(),
            None => revoked_keys(&store),
        };
        let mut position = None;
        if let Some(cursor) = start {
            if !cursor.is_at_position() {
                match changes(&store, &follower.client, &cursor.from, &cursor.to, cursor.after).await {
                    Ok(changes) => {
                        for change in &changes {
                            yield change_event(&cursors, &cursor.from, &cursor.to, change);
                        }
                    }
                    Err(Stop::Reset) => {
                        yield Event::Reset;
                        return;
                    }
                    Err(Stop::Ended) => return,
                }
            }
            position = Some(cursor.to);
        }
        loop {
            let batch = rocket::tokio::select! {
                changed = batches.changed() => match changed {
                    Ok(()) => batches.borrow_and_update().clone(),
                    Err(_) => return,
                },
                _ = &mut shutdown => return,
            };
            let Some(batch) = batch else { continue };
            if !registered() {
                log::info!("revocation stream of {}: the client was removed", follower.client);
                return;
            }
            let at = match position.take() {
                // No cursor: the stream begins where this batch ends.
                None => batch.to.clone(),
                Some(at) if at == batch.to => at,
                Some(at) => {
                    let shared = (at == batch.from).then(|| batch.changes.clone()).flatten();
                    let changes = match shared {
                        Some(changes) => changes,
                        None => match changes(&store, &follower.client, &at, &batch.to, None).await {
                            Ok(changes) => Arc::new(changes),
                            Err(Stop::Reset) => {
                                yield Event::Reset;
                                return;
                            }
                            Err(Stop::Ended) => return,
                        },
                    };
                    for change in changes.iter() {
                        yield change_event(&cursors, &at, &batch.to, change);
                    }
                    batch.to.clone()
                }
            };
            let here = cursors.encode(&Cursor::at(at.clone()));
            for kid in revoked_keys(&store) {
                if known_keys.insert(kid.clone()) {
                    yield Event::KeyRevoked { cursor: here.clone(), kid };
                }
            }
            position = Some(at);
            yield Event::Heartbeat { cursor: here, as_of: batch.as_of };
        }
    }
}
