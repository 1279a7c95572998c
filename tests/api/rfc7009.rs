//! `POST /auth/revoke` (RFC 7009): whoever holds a token may revoke it; any
//! token that is not a valid live one gets the same empty 200 and changes
//! nothing; a request without a token, or not a form, is 400.

use std::sync::Arc;

use rocket::http::{ContentType, Status};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{
    claim, forge_access, hs256, now, random_secret, Backend, TcpProxy, TestApp, TestDb, TestResponse,
};

#[track_caller]
fn assert_empty_ok(response: &TestResponse) {
    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body, serde_json::Value::String(String::new()), "an empty body");
}

async fn rows(app: &TestApp) -> i64 {
    app.db.count("SELECT count(*) FROM revoked_tokens").await
}

async fn an_access_token_revokes_its_jti(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    let response = app.revoke_form(&format!("token={}&token_type_hint=access_token", tokens.access)).await;

    assert_empty_ok(&response);
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
    assert_eq!(rows(&app).await, 1, "the token's jti alone");
    assert_eq!(app.refresh(&tokens.refresh).await.status, Status::Ok, "the session lives on");
}

async fn a_refresh_token_revokes_its_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    // A wrong hint is only a hint.
    let response = app.revoke_form(&format!("token={}&token_type_hint=access_token", tokens.refresh)).await;

    assert_empty_ok(&response);
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
    app.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
    let session = app
        .db
        .count(&format!("SELECT count(*) FROM revoked_tokens WHERE jti = '{}'", claim(&tokens.access, "sid")))
        .await;
    assert_eq!(session, 1);
}

async fn tokens_that_are_not_valid_and_live_change_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, hs256).await;
    let tokens = app.signup("alice").await;
    let (user, sid) = (claim(&tokens.access, "sub"), claim(&tokens.access, "sid"));
    let expired = forge_access(&app.secret, &user, &sid, now() - 5);
    let foreign = forge_access(&random_secret(), &user, &sid, now() + 600);
    // Used up by a rotation: presenting it here changes nothing.
    let rotated = app.refresh(&tokens.refresh).await;
    assert_eq!(rotated.status, Status::Ok);
    let before = rows(&app).await;

    for token in ["garbage", "a.b.c", expired.as_str(), foreign.as_str(), tokens.refresh.as_str()] {
        assert_empty_ok(&app.revoke_form(&format!("token={token}")).await);
    }
    assert_empty_ok(&app.revoke_form(&format!("token={}&token_type_hint=bogus", tokens.access)).await);
    let after_first = rows(&app).await;
    assert_eq!(after_first, before + 1, "only the live access token was revoked");
    // Already revoked: the same answer, no new row.
    assert_empty_ok(&app.revoke_form(&format!("token={}", tokens.access)).await);
    assert_eq!(rows(&app).await, after_first);

    let fresh = crate::helpers::Tokens::from_body(&rotated.body);
    assert_eq!(app.refresh(&fresh.refresh).await.status, Status::Ok, "the session was not ended");

    // An access token whose session is revoked is already revoked too.
    let other = app.login_ok("alice").await;
    assert_empty_ok(&app.revoke_form(&format!("token={}", other.refresh)).await);
    let with_session_gone = rows(&app).await;
    assert_empty_ok(&app.revoke_form(&format!("token={}", other.access)).await);
    assert_eq!(rows(&app).await, with_session_gone);
}

async fn a_request_without_a_token_or_not_a_form_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    app.revoke_form("token_type_hint=access_token").await.assert_error(400, "invalid_request");
    app.revoke_form("token=").await.assert_error(400, "invalid_request");
    app.revoke_form(&format!("token={0}&token={0}", tokens.access))
        .await
        .assert_error(400, "invalid_request");
    app.revoke_form(&format!("token={}&token_type_hint=a&token_type_hint=b", tokens.access))
        .await
        .assert_error(400, "invalid_request");
    let as_json = app.post_json("/auth/revoke", &json!({ "token": tokens.access })).await;
    as_json.assert_error(400, "invalid_request");
    let plain = app.post_raw("/auth/revoke", ContentType::Plain, format!("token={}", tokens.access)).await;
    plain.assert_error(400, "invalid_request");
    let huge = app.revoke_form(&format!("token={}", "a".repeat(2 * 1024 * 1024))).await;
    huge.assert_error(413, "payload_too_large");

    assert_eq!(app.protected(&tokens.access).await.status, Status::Ok);
    assert_eq!(rows(&app).await, 0);
}

/// RFC 6749 §3.1 forbids repeating a parameter; one the endpoint does not
/// know is ignored however often it comes (found by schemathesis).
async fn unknown_parameters_are_ignored_even_when_repeated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    let response = app.revoke_form(&format!("=x&=y&extra=1&extra=2&token={}", tokens.access)).await;
    assert_eq!(response.status, Status::Ok);
    assert_eq!(app.protected(&tokens.access).await.body["error"], "token_revoked");
}

backend_tests!(
    unknown_parameters_are_ignored_even_when_repeated,
    an_access_token_revokes_its_jti,
    a_refresh_token_revokes_its_session,
    tokens_that_are_not_valid_and_live_change_nothing,
    a_request_without_a_token_or_not_a_form_is_400,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_out_of_reach_is_503() {
    let db: Arc<TestDb> = TestDb::create(Backend::Postgres).await;
    let proxy = TcpProxy::start(TestDb::postgres_address()).await;
    let url = db.url_through(proxy.port);
    let app = TestApp::start(db, random_secret(), |figment| {
        figment.merge(("databases.main.url", url)).merge(("databases.main.connect_timeout", 1))
    })
    .await;
    let tokens = app.signup("alice").await;

    proxy.cut();
    let started = std::time::Instant::now();
    app.revoke_form(&format!("token={}", tokens.access)).await.assert_error(503, "service_unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());

    proxy.restore();
    crate::helpers::wait_until(
        "the revocation is accepted again",
        std::time::Duration::from_secs(10),
        || async { app.revoke_form(&format!("token={}", tokens.access)).await.status == Status::Ok },
    )
    .await;
    // The revocation went through the writer's own connection; the check
    // reads through the request pool, whose connection the cut left dead
    // fails one request (503: the pool does not ping) before it is replaced.
    crate::helpers::wait_until("the check answers again", std::time::Duration::from_secs(10), || async {
        app.protected(&tokens.access).await.status != Status::ServiceUnavailable
    })
    .await;
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
}
