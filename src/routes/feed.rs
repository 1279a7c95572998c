//! The revocation feed, for registered resource servers (HTTP Basic):
//! `GET /revocations`, a snapshot of what an access-token check needs,
//! streamed; `GET /revocations/stream`, the changes since a cursor as
//! server-sent events (`crate::feed` decides what each stream is sent).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rocket::futures::StreamExt;
use rocket::http::ContentType;
use rocket::request::{self, FromRequest, Request};
use rocket::response::stream::{ByteStream, Event as Sse, EventStream};
use rocket::response::{self, Responder, Response};
use rocket::{get, routes, Route, Shutdown, State};
use serde_json::json;
use utoipa::OpenApi;

use super::responses::{BadRequest, ClientUnauthorized, Unavailable};
use crate::auth::guard::Client;
use crate::auth::Auth;
use crate::db::feed::Entry;
use crate::db::Store;
use crate::error::ApiError;
use crate::feed::cursor::Cursor;
use crate::feed::{self, Event, Follower};
use crate::metrics::{self, FeedEvent};

pub fn routes() -> Vec<Route> {
    routes![snapshot, stream]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(snapshot, stream))]
pub(crate) struct Doc;

/// Bytes of the snapshot written at a time.
const CHUNK: usize = 32 * 1024;

/// `time` as RFC 3339 UTC, to the millisecond (a time past the year 9999,
/// such as a row revoked until `infinity`, is written as its last instant).
fn rfc3339_ms(unix_ms: i64) -> String {
    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::milliseconds(999);
    let time = Utc.timestamp_millis_opt(unix_ms).single().filter(|time| *time <= last).unwrap_or(last);
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    json!({ "id": entry.id, "kind": entry.kind.as_str(), "until": rfc3339_ms(entry.until_ms) })
}

fn time_json(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `GET /revocations`'s answer, for the OpenAPI document (it is written
/// as a stream).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RevocationSnapshot {
    revocations: Vec<RevocationEntry>,
    /// The `kid`s of revoked signing keys whose tokens may still be presented.
    revoked_keys: Vec<String>,
    /// Follow `/revocations/stream` from here.
    cursor: String,
    /// RFC 3339: the instant up to which the snapshot is complete.
    as_of: String,
}

/// A revoked token (`kind: token`, its `jti`) or session (`kind: session`,
/// its `sid`), and until when an access token may present it (RFC 3339).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RevocationEntry {
    id: uuid::Uuid,
    #[schema(pattern = "^(token|session)$")]
    kind: String,
    until: String,
}

/// One server-sent event of `GET /revocations/stream`, as written.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ServerSentEvent {
    #[schema(pattern = "^(revoked|unrevoked|key_revoked|heartbeat|reset)$")]
    event: String,
    /// Its cursor (every event but `reset`).
    id: Option<String>,
    /// JSON: `{"id", "kind", "until"}`, `{"kid"}`, `{"as_of"}` or `{}`.
    data: String,
}

/// Feed answers are not to be cached.
struct NoStore<R>(R);

impl<'r, 'o: 'r, R: Responder<'r, 'o>> Responder<'r, 'o> for NoStore<R> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        Response::build_from(self.0.respond_to(request)?).raw_header("Cache-Control", "no-store").ok()
    }
}

#[utoipa::path(
    summary = "Revocations: a snapshot",
    description = "Every revoked access token and session an access-token check still needs (a revoked \
        session until its last access token has expired), each `{\"id\", \"kind\": \"token\" | \"session\", \
        \"until\"}`; the `kid`s of revoked signing keys whose tokens may still be presented; the `cursor` the \
        snapshot is consistent with (follow `/revocations/stream` from it) and `as_of`, the instant up to \
        which it is complete. Streamed. For registered resource servers (HTTP Basic).",
    tag = "feed",
    security(("client" = [])),
    responses(
        (status = 200, description = "The snapshot", content_type = "application/json",
            body = RevocationSnapshot, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, response = ClientUnauthorized),
        (status = 503, response = Unavailable),
    )
)]
#[get("/revocations")]
async fn snapshot(
    _client: Client,
    store: &State<Store>,
    auth: &State<Auth>,
) -> Result<NoStore<(ContentType, ByteStream![Vec<u8>])>, ApiError> {
    // Taken before the transaction begins: the snapshot is complete up to
    // at least this instant, never less.
    let as_of = Utc::now();
    let snapshot = store.feed_snapshot().await?;
    let cursor = auth.cursors.encode(&Cursor::at(snapshot.position));
    let keys: Vec<String> = feed::revoked_keys(store).into_iter().collect();
    let body = ByteStream! {
        let mut entries = snapshot.entries;
        let mut chunk = br#"{"revocations":["#.to_vec();
        let mut first = true;
        while let Some(entry) = entries.next().await {
            match entry {
                Ok(entry) => {
                    if !first {
                        chunk.push(b',');
                    }
                    first = false;
                    chunk.extend_from_slice(entry_json(&entry).to_string().as_bytes());
                    if chunk.len() >= CHUNK {
                        yield std::mem::take(&mut chunk);
                    }
                }
                Err(error) => {
                    // Cut short: the client finds the JSON unfinished and
                    // asks again. Never a snapshot that looks complete.
                    log::warn!("revocation snapshot cut short: {error}");
                    return;
                }
            }
        }
        let tail = json!({ "revoked_keys": keys, "cursor": cursor, "as_of": time_json(as_of) }).to_string();
        chunk.extend_from_slice(b"],");
        chunk.extend_from_slice(&tail.as_bytes()[1..]);
        yield chunk;
    };
    Ok(NoStore((ContentType::JSON, body)))
}

/// The `Last-Event-ID` header, if any (not empty).
struct LastEventId(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventId {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let value = request.headers().get_one("Last-Event-ID").filter(|value| !value.is_empty());
        request::Outcome::Success(LastEventId(value.map(str::to_owned)))
    }
}

/// The server-sent event of `event`, counted.
fn sse(event: Event) -> Sse {
    let (kind, event) = match event {
        Event::Revoked { cursor, entry } => {
            (FeedEvent::Revoked, Sse::data(entry_json(&entry).to_string()).event("revoked").id(cursor))
        }
        Event::Unrevoked { cursor, entry } => {
            (FeedEvent::Unrevoked, Sse::data(entry_json(&entry).to_string()).event("unrevoked").id(cursor))
        }
        Event::KeyRevoked { cursor, kid } => (
            FeedEvent::KeyRevoked,
            Sse::data(json!({ "kid": kid }).to_string()).event("key_revoked").id(cursor),
        ),
        Event::Heartbeat { cursor, as_of } => (
            FeedEvent::Heartbeat,
            Sse::data(json!({ "as_of": time_json(as_of) }).to_string()).event("heartbeat").id(cursor),
        ),
        Event::Reset => (FeedEvent::Reset, Sse::data("{}").event("reset")),
    };
    metrics::feed_event(kind);
    event
}

#[utoipa::path(
    summary = "Revocations: the stream",
    description = "Server-sent events from a cursor (`Last-Event-ID`, which wins, or `after`; without either, \
        from now): `revoked` and `unrevoked` (data `{\"id\", \"kind\", \"until\"}`), `key_revoked` \
        (`{\"kid\"}`), `heartbeat` (`{\"as_of\"}`) at least every 250 ms while this instance is current, and \
        `reset` when the cursor is too old to resume (take a new snapshot). Every event but `reset` carries \
        its cursor as its id. A cursor this service never issued is 400 (client credentials are checked \
        first). The stream ends when the client is removed. For registered resource servers (HTTP Basic).",
    tag = "feed",
    security(("client" = [])),
    params(("after" = Option<String>, Query, description = "A cursor (a snapshot's, or an event's id)"),
        ("Last-Event-ID" = Option<String>, Header, description = "A cursor; wins over `after`")),
    responses(
        (status = 200, description = "The events, as they come", content_type = "text/event-stream",
            body = ServerSentEvent, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, response = BadRequest),
        (status = 401, response = ClientUnauthorized),
    )
)]
#[get("/revocations/stream?<after>")]
async fn stream(
    client: Client,
    last_event_id: LastEventId,
    after: Option<String>,
    store: &State<Store>,
    auth: &State<Auth>,
    shutdown: Shutdown,
) -> Result<NoStore<EventStream![Sse + 'static]>, ApiError> {
    let start =
        match last_event_id.0.or(after) {
            Some(text) => Some(auth.cursors.decode(&text).ok_or_else(|| {
                ApiError::InvalidRequest("The cursor was not issued by this service".into())
            })?),
            None => None,
        };
    let follower = Follower { client: client.0.name, secret_hash: client.0.secret_hash };
    let events = feed::events(store.inner().clone(), auth.cursors.clone(), follower, start, shutdown);
    Ok(NoStore(EventStream::from(events.map(sse)).heartbeat(None)))
}
