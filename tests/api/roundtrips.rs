//! Each revoking call is one round trip to Postgres: one statement (logout,
//! the rotation), or one simple query of two statements (logout-all), with no
//! ping before it. The test proxy counts what the service's request
//! connections send: `Execute` messages (one per prepared statement run) and
//! simple `Query` messages. Not counted, and not on the request's path: a
//! statement's one-time preparation per connection, and the ping sqlx 0.8
//! sends when a connection goes back to its pool (a lone `Sync`).

use rocket::http::Status;

use crate::helpers::{random_secret, wait_until_trusted, Backend, TcpProxy, TestApp, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_revoking_call_is_one_round_trip_on_postgres() {
    let db = TestDb::create(Backend::Postgres).await;
    let proxy = TcpProxy::start(TestDb::postgres_address()).await;
    let url = db.url_through(proxy.port);
    let app = TestApp::start(db, random_secret(), |figment| figment.merge(("databases.main.url", url))).await;
    let first = app.signup("alice").await;
    let (second, third) = (app.login_ok("alice").await, app.login_ok("alice").await);
    wait_until_trusted(&app).await;

    let before = proxy.statements();
    assert_eq!(app.logout(&first.access).await.status, Status::Ok);
    assert_eq!(proxy.statements() - before, 1, "logout");

    let before = proxy.statements();
    assert_eq!(app.refresh(&second.refresh).await.status, Status::Ok);
    assert_eq!(proxy.statements() - before, 1, "refresh: the rotation, which reads the user's name");

    let before = proxy.statements();
    let response = app.caller(&third).logout_all().await;
    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body["revoked_sessions"], 2, "the refreshed session and this one");
    assert_eq!(proxy.statements() - before, 1, "logout-all");
}
