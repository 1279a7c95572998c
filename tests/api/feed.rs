//! The revocation feed (contract v3): `GET /revocations` and
//! `GET /revocations/stream` for registered clients. Credentials before
//! cursors; a snapshot of exactly what an access check needs; changes on
//! an open stream within the bound, with heartbeats; resuming by cursor on
//! any instance with no gap and no repeat; `unrevoked` for a DBA's delete
//! and nothing for the purge; `key_revoked`; `reset` for a pruned cursor;
//! a removed client's streams closed; a stalled instance silent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rocket::http::{Header, Status};
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::feed::{snapshot, EventReader, SseEvent};
use crate::helpers::{claim, wait_until, wait_until_trusted, Backend, TestApp, PROPAGATION_BOUND};

/// The contract: a heartbeat at least every 250 ms.
const HEARTBEAT_BOUND: Duration = Duration::from_millis(250);

fn ids(events: &[SseEvent], name: &str) -> BTreeSet<String> {
    events.iter().filter(|e| e.event == name).map(|e| e.data["id"].as_str().unwrap().to_owned()).collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time")).expect("RFC 3339").with_timezone(&Utc)
}

async fn credentials_first_then_only_cursors_this_service_issued(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    let stranger = "Basic YmlsbGluZzpub3QtdGhlLXNlY3JldA==";
    let forged = {
        use base64::Engine;
        format!(
            "{}.AAAAAAAAAAAAAAAAAAAAAA",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s|1|1|")
        )
    };

    for path in ["/revocations", "/revocations/stream", "/revocations/stream?after=garbage"] {
        app.send(app.client.get(path)).await.assert_error(401, "invalid_client");
        let with = app.client.get(path).header(Header::new("Authorization", stranger));
        let answer = app.send(with).await;
        answer.assert_error(401, "invalid_client");
        assert_eq!(answer.header("WWW-Authenticate"), Some(r#"Basic realm="jwt-blocklist""#));
    }
    for bad in [format!("?after={forged}"), "?after=garbage".to_owned()] {
        let request = app.client.get(format!("/revocations/stream{bad}"));
        app.send(request.header(Header::new("Authorization", basic.clone())))
            .await
            .assert_error(400, "invalid_request");
    }
    let header = app
        .client
        .get("/revocations/stream?after=also-ignored")
        .header(Header::new("Authorization", basic.clone()))
        .header(Header::new("Last-Event-ID", forged));
    app.send(header).await.assert_error(400, "invalid_request");
    assert_eq!(snapshot(&app, &basic).await.status, Status::Ok);
}

async fn a_snapshot_holds_what_an_access_check_needs_and_no_more(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    let config = app.config();
    let logged_out = app.signup("alice").await;
    let refreshed = app.login_ok("alice").await;
    let live = app.login_ok("alice").await;
    let revoked = app.login_ok("alice").await;
    assert_eq!(app.caller(&logged_out).logout().await.status, Status::Ok);
    assert_eq!(app.revoke_form(&format!("token={}", revoked.access)).await.status, Status::Ok);
    assert_eq!(app.refresh(&refreshed.refresh).await.status, Status::Ok, "a used-up refresh token");
    let manual = uuid::Uuid::new_v4();
    app.db.revoke_by_hand(manual, "2099-01-01T00:00:00Z").await;
    app.db.revoke_by_hand(uuid::Uuid::new_v4(), "2001-01-01T00:00:00Z").await;
    let started = Utc::now();

    let answer = snapshot(&app, &basic).await;

    assert_eq!(answer.header("Cache-Control"), Some("no-store"));
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    let body = answer.body;
    let entries = body["revocations"].as_array().expect("revocations");
    let by_id = |id: &str| entries.iter().find(|e| e["id"] == id).cloned();
    assert_eq!(entries.len(), 3, "the revoked token, the logged-out session, the DBA's row: {body}");
    assert!(by_id(&claim(&logged_out.access, "jti")).is_none(), "its session's entry refuses it");
    let token = by_id(&claim(&revoked.access, "jti")).expect("the revoked token");
    assert_eq!(token["kind"], "token");
    assert!(by_id(&claim(&revoked.access, "sid")).is_none(), "RFC 7009 revoked the access token alone");
    let exp = crate::helpers::claims_of(&revoked.access)["exp"].as_i64().unwrap();
    assert_eq!(time(&token["until"]).timestamp(), exp);
    let session = by_id(&claim(&logged_out.access, "sid")).expect("its session");
    assert_eq!(session["kind"], "session");
    let session_until = time(&session["until"]);
    let tail = chrono::Duration::seconds((config.access_token_ttl + config.leeway) as i64);
    assert!(
        session_until >= started - chrono::Duration::seconds(5) + tail && session_until <= Utc::now() + tail
    );
    assert_eq!(by_id(&manual.to_string()).expect("the DBA's row")["kind"], "token");
    assert!(by_id(&claim(&refreshed.refresh, "jti")).is_none(), "used-up refresh tokens never appear");
    assert!(by_id(&claim(&live.access, "sid")).is_none());
    assert_eq!(body["revoked_keys"], serde_json::json!([]));
    let as_of = time(&body["as_of"]);
    // Written to the millisecond, rounded down (never ahead).
    let started_ms = DateTime::from_timestamp_millis(started.timestamp_millis()).unwrap();
    assert!(as_of >= started_ms && as_of <= Utc::now(), "{as_of} in the request, from {started}");
    assert!(body["cursor"].is_string());
}

/// A stream from a snapshot's cursor: a logout-all's two entries (one
/// commit), heartbeats at least every 250 ms; a client that hangs up after
/// the first entry resumes from its id and gets the second and not the
/// first again.
async fn changes_reach_an_open_stream_and_resume_without_gap_or_repeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    wait_until_trusted(&app).await;
    let tokens = app.signup("alice").await;
    let elsewhere = app.login_ok("alice").await;
    let cursor = snapshot(&app, &basic).await.body["cursor"].as_str().unwrap().to_owned();
    let mut stream = EventReader::open(&app, &basic, Some(&cursor)).await;
    let first = stream.until("heartbeat", PROPAGATION_BOUND).await;
    assert_eq!(first.len(), 1, "nothing happened since the snapshot: {first:?}");

    let revoked_at = Instant::now();
    assert_eq!(app.caller(&tokens).logout_all().await.status, Status::Ok);
    let revoked = stream.until("revoked", PROPAGATION_BOUND).await;
    assert!(revoked_at.elapsed() < PROPAGATION_BOUND);
    let one = revoked.last().unwrap().clone();
    drop(stream);

    let mut resumed = EventReader::open(&app, &basic, one.id.as_deref()).await;
    let rest = resumed.until("heartbeat", PROPAGATION_BOUND).await;

    let expected: BTreeSet<String> = [claim(&tokens.access, "sid"), claim(&elsewhere.access, "sid")].into();
    let mut seen = ids(&rest, "revoked");
    assert!(!seen.contains(one.data["id"].as_str().unwrap()), "no repeat: {rest:?}");
    seen.insert(one.data["id"].as_str().unwrap().to_owned());
    assert_eq!(seen, expected, "no gap");
    let mut last = Instant::now();
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        let next = resumed.next_within(HEARTBEAT_BOUND).await.expect("a heartbeat within 250 ms");
        assert_eq!(next.event, "heartbeat", "{next:?}");
        assert!(last.elapsed() <= HEARTBEAT_BOUND);
        last = Instant::now();
        let as_of = time(&next.data["as_of"]);
        assert!(as_of <= Utc::now() && Utc::now() - as_of < chrono::Duration::milliseconds(500));
    }
}

/// A snapshot taken on one instance, its stream followed on another.
async fn a_stream_resumes_on_another_instance(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let basic = a.add_client("billing").await.basic;
    let tokens = a.signup("alice").await;
    let cursor = snapshot(&a, &basic).await.body["cursor"].as_str().unwrap().to_owned();
    assert_eq!(a.caller(&tokens).logout().await.status, Status::Ok);
    wait_until_trusted(&b).await;
    wait_until("b knows the client", PROPAGATION_BOUND, || async {
        snapshot(&b, &basic).await.status == Status::Ok
    })
    .await;

    let mut stream = EventReader::open(&b, &basic, Some(&cursor)).await;
    let events = stream.until("heartbeat", PROPAGATION_BOUND).await;

    let expected: BTreeSet<String> = [claim(&tokens.access, "sid")].into();
    assert_eq!(ids(&events, "revoked"), expected, "the logged-out session: {events:?}");
}

async fn a_dba_unrevocation_is_sent_and_the_purge_is_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    wait_until_trusted(&app).await;
    let (live, expired) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    app.db.revoke_by_hand(live, "2099-01-01T00:00:00Z").await;
    app.db.revoke_by_hand(expired, "2001-01-01T00:00:00Z").await;
    let cursor = snapshot(&app, &basic).await.body["cursor"].as_str().unwrap().to_owned();
    let mut stream = EventReader::open(&app, &basic, Some(&cursor)).await;

    jwt_blocklist::purge::purge_expired(app.store()).await.expect("a purge").expect("not locked");
    app.db.execute(&format!("DELETE FROM revoked_tokens WHERE jti = '{live}'")).await;

    let events = stream.until("unrevoked", PROPAGATION_BOUND).await;
    let unrevoked = events.last().unwrap();
    assert_eq!(unrevoked.data["id"], live.to_string());
    assert_eq!(time(&unrevoked.data["until"]).format("%Y").to_string(), "2099", "the expiry it had");
    let more = stream.changes_for(Duration::from_millis(500)).await;
    let all: Vec<&SseEvent> = events.iter().chain(&more).filter(|e| e.event != "heartbeat").collect();
    assert_eq!(all.len(), 1, "the purge sent nothing: {all:?}");
}

async fn key_revocations_are_sent_and_sent_again_to_a_resumed_stream(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    wait_until_trusted(&app).await;
    let kid = crate::keys::header_of(&app.signup("alice").await.access)["kid"].as_str().unwrap().to_owned();
    let mut stream = EventReader::open(&app, &basic, None).await;
    let heartbeat = stream.until("heartbeat", PROPAGATION_BOUND).await.pop().unwrap();

    app.revoke_key(&kid).await;

    let events = stream.until("key_revoked", PROPAGATION_BOUND).await;
    assert_eq!(events.last().unwrap().data["kid"], kid);
    assert_eq!(snapshot(&app, &basic).await.body["revoked_keys"], serde_json::json!([kid]));
    let mut resumed = EventReader::open(&app, &basic, heartbeat.id.as_deref()).await;
    let again = resumed.until("key_revoked", PROPAGATION_BOUND).await;
    assert_eq!(again.last().unwrap().data["kid"], kid);
}

async fn a_cursor_the_log_no_longer_covers_gets_reset(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    let old = snapshot(&app, &basic).await.body["cursor"].as_str().unwrap().to_owned();
    let tokens = app.signup("alice").await;
    assert_eq!(app.caller(&tokens).logout().await.status, Status::Ok);
    // As the purge prunes events older than ten minutes.
    match backend {
        Backend::Postgres => {
            app.db.execute("UPDATE revocation_events_pruned SET through = pg_current_xact_id()").await
        }
        Backend::Sqlite => app.db.execute("DELETE FROM revocation_events").await,
    }

    let mut stream = EventReader::open(&app, &basic, Some(&old)).await;
    let first = stream.next_within(PROPAGATION_BOUND).await.expect("an event");

    assert_eq!(first.event, "reset", "{first:?}");
    assert!(first.id.is_none());
    assert!(stream.next_within(Duration::from_millis(200)).await.is_none(), "then the stream ends");
}

async fn a_removed_clients_streams_end_within_the_bound(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let basic = a.add_client("billing").await.basic;
    wait_until("b knows the client", PROPAGATION_BOUND, || async {
        snapshot(&b, &basic).await.status == Status::Ok
    })
    .await;
    let mut stream = EventReader::open(&b, &basic, None).await;
    stream.until("heartbeat", PROPAGATION_BOUND).await;

    assert!(a.store().remove_client("billing").await.unwrap());
    let removed_at = Instant::now();

    while stream.next_within(PROPAGATION_BOUND).await.is_some() {
        assert!(removed_at.elapsed() < PROPAGATION_BOUND, "still streaming");
    }
    assert!(removed_at.elapsed() < PROPAGATION_BOUND);
}

/// An instance whose follower stalls sends no heartbeat (it cannot vouch
/// for anything), and starts again when it is current again.
async fn a_stalled_instance_stops_its_heartbeats(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    let mut stream = EventReader::open(&app, &basic, None).await;
    stream.until("heartbeat", PROPAGATION_BOUND).await;

    app.store().pause_follower(true);
    // Whatever was already on its way.
    while stream.next_within(Duration::from_millis(300)).await.is_some() {}
    let silent = stream.next_within(Duration::from_millis(600)).await;
    app.store().pause_follower(false);

    assert!(silent.is_none(), "{silent:?}");
    stream.until("heartbeat", PROPAGATION_BOUND).await;
}

/// Forged notifications make the followers poll; they send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_send_nothing() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let basic = app.add_client("billing").await.basic;
    wait_until_trusted(&app).await;
    let mut stream = EventReader::open(&app, &basic, None).await;
    stream.until("heartbeat", PROPAGATION_BOUND).await;
    let role = crate::helpers::Role::create("forger").await;
    let mut forger = role.connect(&app.db).await;

    for payload in ["-00000000-0000-0000-0000-000000000000", "garbage", ""] {
        sqlx::Executor::execute(&mut forger, format!("NOTIFY revoked_tokens, '{payload}'").as_str())
            .await
            .expect("anyone may NOTIFY");
    }

    assert_eq!(stream.changes_for(Duration::from_millis(500)).await.len(), 0);
    sqlx::Connection::close(forger).await.expect("close");
    role.drop().await;
}

/// Open streams and the events sent, in /metrics (the recorder is shared
/// by the tests: at least this stream, at least its heartbeats).
async fn metrics_count_open_streams_and_events(backend: Backend) {
    use crate::metrics::{sample, scrape};
    let app = TestApp::spawn(backend).await;
    let basic = app.add_client("billing").await.basic;
    let heartbeats = |text: &str| sample(text, "jwt_blocklist_feed_events_total", &[("event", "heartbeat")]);
    let before = heartbeats(&scrape(&app).await);
    let mut stream = EventReader::open(&app, &basic, None).await;
    stream.until("heartbeat", PROPAGATION_BOUND).await;

    let during = scrape(&app).await;

    assert!(sample(&during, "jwt_blocklist_feed_streams", &[]) >= 1.0, "{during}");
    assert!(heartbeats(&during) > before);
}

backend_tests!(
    metrics_count_open_streams_and_events,
    credentials_first_then_only_cursors_this_service_issued,
    a_snapshot_holds_what_an_access_check_needs_and_no_more,
    changes_reach_an_open_stream_and_resume_without_gap_or_repeat,
    a_stream_resumes_on_another_instance,
    a_dba_unrevocation_is_sent_and_the_purge_is_not,
    key_revocations_are_sent_and_sent_again_to_a_resumed_stream,
    a_cursor_the_log_no_longer_covers_gets_reset,
    a_removed_clients_streams_end_within_the_bound,
    a_stalled_instance_stops_its_heartbeats,
);
