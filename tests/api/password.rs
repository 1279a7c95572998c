//! `POST /auth/password`: a password change ends every other session and
//! keeps the caller's; a wrong current password changes nothing.

use rocket::http::{ContentType, Header, Status};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{bearer, Backend, TestApp, TestResponse, PASSWORD};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change_password(app: &TestApp, access: &str, body: &Value) -> TestResponse {
    let request = app
        .client
        .post("/auth/password")
        .header(ContentType::JSON)
        .header(Header::new("Authorization", bearer(access)))
        .body(body.to_string());
    app.send(request).await
}

async fn a_password_change_ends_the_other_sessions_and_keeps_the_callers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let second = app.login_ok("alice").await;
    let caller = app.login_ok("alice").await;

    let body = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
    let response = change_password(&app, &caller.access, &body).await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert!(response.body["message"].is_string());
    assert_eq!(response.body["revoked_sessions"], 2);
    for other in [&first, &second] {
        app.assert_session_ended(other).await;
    }
    assert_eq!(app.protected(&caller.access).await.status, Status::Ok, "the caller stays");
    assert_eq!(app.refresh(&caller.refresh).await.status, Status::Ok);
    app.login("alice", PASSWORD).await.assert_error(401, "invalid_credentials");
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, Status::Ok);
    let reasons = app.db.count("SELECT count(*) FROM revoked_tokens WHERE reason = 'password_changed'").await;
    assert_eq!(reasons, 2);
}

async fn a_wrong_current_password_is_403_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.signup("alice").await;
    let caller = app.login_ok("alice").await;

    let body = json!({ "current_password": "not the password", "new_password": NEW_PASSWORD });
    let response = change_password(&app, &caller.access, &body).await;

    response.assert_error(403, "invalid_credentials");
    assert!(response.www_authenticate.is_none());
    assert_eq!(app.protected(&other.access).await.status, Status::Ok);
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 0);
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok, "the old password still works");
    app.login("alice", NEW_PASSWORD).await.assert_error(401, "invalid_credentials");
}

async fn a_new_password_that_breaks_the_rules_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.signup("alice").await;
    let caller = app.login_ok("alice").await;

    let short = json!({ "current_password": PASSWORD, "new_password": "short" });
    change_password(&app, &caller.access, &short).await.assert_error(422, "invalid_input");
    let long = json!({ "current_password": PASSWORD, "new_password": "p".repeat(1025) });
    change_password(&app, &caller.access, &long).await.assert_error(422, "invalid_input");
    let wrong_type = json!({ "current_password": PASSWORD, "new_password": 12345678 });
    change_password(&app, &caller.access, &wrong_type).await.assert_error(422, "invalid_input");
    let missing = json!({ "new_password": NEW_PASSWORD });
    change_password(&app, &caller.access, &missing).await.assert_error(400, "invalid_request");

    assert_eq!(app.protected(&other.access).await.status, Status::Ok);
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    let no_token = app
        .post_json("/auth/password", &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }))
        .await;
    no_token.assert_error(401, "missing_token");
}

backend_tests!(
    a_password_change_ends_the_other_sessions_and_keeps_the_callers,
    a_wrong_current_password_is_403_and_changes_nothing,
    a_new_password_that_breaks_the_rules_is_refused,
);
