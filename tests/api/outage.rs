//! The database going away while the service runs.
//!
//! Postgres: a TCP proxy in front of it drops every connection and refuses
//! new ones. Every endpoint that needs the database answers 503 within
//! seconds (a token whose revocation cannot be checked is never accepted), and
//! service resumes by itself when the proxy lets traffic through again.
//!
//! SQLite is a file the service holds open in WAL mode, so it cannot become
//! unreachable for readers while the service runs (another process cannot
//! take an exclusive lock then: verified while writing this test). What does
//! happen is another process holding the write lock (a DBA's open
//! transaction, a long maintenance job): every write must then answer 503
//! within seconds rather than hang or pretend, reads stay correct, and writes
//! resume when the lock goes. The fall-back to the database when the
//! in-memory blocklist cannot be trusted is tested in `cache.rs`.

use std::time::{Duration, Instant};

use rocket::http::Status;
use serde_json::json;
use sqlx::{Connection, Executor, SqliteConnection};

use crate::helpers::{
    bearer, random_secret, wait_until, Backend, TcpProxy, TestApp, TestDb, TestResponse, PASSWORD,
};

/// An app with a 1-second database timeout on `url`.
async fn spawn_at(db: std::sync::Arc<TestDb>, url: String) -> TestApp {
    TestApp::start(db, random_secret(), |figment| {
        figment.merge(("databases.main.url", url)).merge(("databases.main.connect_timeout", 1))
    })
    .await
}

#[track_caller]
fn assert_unavailable(what: &str, response: &TestResponse) {
    assert_eq!(response.status, Status::ServiceUnavailable, "{what}: {:?}", response.body);
    response.assert_error(503, "service_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_fails_closed_and_service_resumes_by_itself() {
    let db = TestDb::create(Backend::Postgres).await;
    let proxy = TcpProxy::start(TestDb::postgres_address()).await;
    let app = spawn_at(db.clone(), db.url_through(proxy.port)).await;
    let live = app.signup("alice").await;
    let revoked = app.login_ok("alice").await;
    app.logout(&revoked.access).await;

    proxy.cut();

    // The listener notices the lost connection (or the watchdog its silence)
    // and stops trusting the in-memory blocklist: from then on every check
    // needs the database, and fails closed.
    let started = Instant::now();
    wait_until("the live token is refused with 503", Duration::from_secs(10), || async {
        app.protected(&live.access).await.status == Status::ServiceUnavailable
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "503 took {:?}", started.elapsed());
    assert_unavailable("protected, live token", &app.protected(&live.access).await);
    assert_unavailable("protected, revoked token", &app.protected(&revoked.access).await);
    assert_unavailable("me", &app.get_authorized("/auth/me", &bearer(&live.access)).await);
    assert_unavailable("logout", &app.logout(&live.access).await);
    assert_unavailable("logout-all", &app.post_authorized("/auth/logout-all", &bearer(&live.access)).await);
    assert_unavailable("login", &app.login("alice", PASSWORD).await);
    assert_unavailable("register", &app.register("bob", PASSWORD).await);
    assert_unavailable("refresh", &app.refresh(&live.refresh).await);
    let health = app.send(app.client.get("/health")).await;
    assert_eq!(health.status, Status::ServiceUnavailable);
    assert_eq!(health.body, json!({ "status": "unavailable" }));

    proxy.restore();

    wait_until("the service resumes", Duration::from_secs(20), || async {
        app.protected(&live.access).await.status == Status::Ok
    })
    .await;
    app.protected(&revoked.access).await.assert_token_error("token_revoked");
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    assert_eq!(app.send(app.client.get("/health")).await.status, Status::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_file_fails_writes_closed_and_service_resumes_by_itself() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_at(db.clone(), db.url()).await;
    let live = app.signup("alice").await;
    let revoked = app.login_ok("alice").await;
    app.logout(&revoked.access).await;

    let mut holder = SqliteConnection::connect(&db.url()).await.expect("connect");
    holder.execute("BEGIN IMMEDIATE").await.expect("take the write lock");

    let started = Instant::now();
    assert_unavailable("logout", &app.logout(&live.access).await);
    assert!(started.elapsed() < Duration::from_secs(10), "503 took {:?}", started.elapsed());
    assert_unavailable("register", &app.register("bob", PASSWORD).await);
    assert_unavailable("refresh", &app.refresh(&live.refresh).await);
    // Reads still see the committed blocklist: answers stay correct.
    assert_eq!(app.protected(&live.access).await.status, Status::Ok);
    app.protected(&revoked.access).await.assert_token_error("token_revoked");

    holder.execute("ROLLBACK").await.expect("release");
    holder.close().await.expect("close");

    assert_eq!(app.logout(&live.access).await.status, Status::Ok, "writes resume");
    app.protected(&live.access).await.assert_token_error("token_revoked");
}
