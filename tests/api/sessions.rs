//! Sessions a user can see and end: `GET /auth/sessions`,
//! `DELETE /auth/sessions/{id}`, and `POST /auth/logout?scope=...`.

use rocket::http::Status;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{bearer, claim, Backend, TestApp, TestResponse, Tokens, PASSWORD};

async fn sessions(app: &TestApp, tokens: &Tokens) -> Vec<Value> {
    let response = app.caller(tokens).sessions().await;
    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    response.body["sessions"].as_array().expect("a sessions array").clone()
}

async fn login_with(app: &TestApp, remote: &str, agent: Option<&str>) -> Tokens {
    let response = app.login_from(remote, agent, "alice", PASSWORD).await;
    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    Tokens::from_body(&response.body)
}

async fn delete_session(app: &TestApp, tokens: &Tokens, id: &str) -> TestResponse {
    app.caller(tokens).revoke_session(id).await
}

async fn sessions_are_listed_newest_first_with_their_devices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("alice", PASSWORD).await;
    let phone = login_with(&app, "192.0.2.7:5000", Some("Phone/1.0")).await;
    let laptop = login_with(&app, "[2001:db8::9]:443", Some("Laptop/2.0")).await;
    let long_agent = "x".repeat(300);
    let other = login_with(&app, "198.51.100.1:1", Some(&long_agent)).await;
    app.logout(&other.access).await;

    let listed = sessions(&app, &laptop).await;

    assert_eq!(listed.len(), 2, "the logged-out session is not live: {listed:?}");
    let (newest, oldest) = (&listed[0], &listed[1]);
    assert_eq!(newest["id"], claim(&laptop.access, "sid"));
    assert_eq!(newest["user_agent"], "Laptop/2.0");
    assert_eq!(newest["ip"], "2001:db8::9");
    assert_eq!(newest["current"], true);
    assert_eq!(oldest["id"], claim(&phone.access, "sid"));
    assert_eq!(oldest["user_agent"], "Phone/1.0");
    assert_eq!(oldest["ip"], "192.0.2.7");
    assert_eq!(oldest["current"], false);
    for session in &listed {
        assert!(session["refreshed_at"].is_null(), "never refreshed: {session}");
        for key in ["created_at", "expires_at"] {
            let time = session[key].as_str().expect(key);
            assert!(time.ends_with('Z'), "{key} in UTC: {time}");
            chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
        }
    }
    assert!(newest["created_at"].as_str() > oldest["created_at"].as_str());

    // A refresh is recorded; a missing user agent and address are null.
    assert_eq!(app.refresh(&phone.refresh).await.status, Status::Ok);
    let bare = app.login_ok("alice").await;
    let listed = sessions(&app, &bare).await;
    assert_eq!(listed.len(), 3);
    assert!(listed[0]["user_agent"].is_null() && listed[0]["ip"].is_null(), "{:?}", listed[0]);
    let phone_row = listed.iter().find(|s| s["id"] == claim(&phone.access, "sid")).expect("phone");
    chrono::DateTime::parse_from_rfc3339(phone_row["refreshed_at"].as_str().expect("refreshed_at"))
        .expect("RFC 3339");

    // The stored user agent is cut to 256 characters.
    let cut = app
        .db
        .count(&format!("SELECT count(*) FROM sessions WHERE user_agent = '{}'", "x".repeat(256)))
        .await;
    assert_eq!(cut, 1);
}

async fn revoking_another_session_kills_its_access_and_refresh_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let phone = app.signup("alice").await;
    let laptop = app.login_ok("alice").await;

    let response = delete_session(&app, &laptop, &claim(&phone.access, "sid")).await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body["message"], "Session revoked");
    app.assert_session_ended(&phone).await;
    assert_eq!(app.protected(&laptop.access).await.status, Status::Ok);
    let listed = sessions(&app, &laptop).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], claim(&laptop.access, "sid"));
    // Already revoked: nothing left to revoke.
    delete_session(&app, &laptop, &claim(&phone.access, "sid")).await.assert_error(404, "not_found");

    // The calling session itself may go too.
    let own = delete_session(&app, &laptop, &claim(&laptop.access, "sid")).await;
    assert_eq!(own.status, Status::Ok);
    app.protected(&laptop.access).await.assert_token_error("token_revoked");
}

async fn another_users_session_is_not_found_and_nothing_leaks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;

    let theirs = delete_session(&app, &bob, &claim(&alice.access, "sid")).await;
    let unknown = delete_session(&app, &bob, &uuid::Uuid::new_v4().to_string()).await;
    let malformed = delete_session(&app, &bob, "not-a-session").await;

    theirs.assert_error(404, "not_found");
    assert_eq!(theirs.body, unknown.body, "the same answer for someone else's session and none");
    assert_eq!(theirs.body, malformed.body);
    assert_eq!(app.protected(&alice.access).await.status, Status::Ok, "alice's session is untouched");
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 0);
    assert_eq!(sessions(&app, &bob).await.len(), 1, "bob sees only his own");
}

async fn logout_scope_others_keeps_the_caller(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let second = app.login_ok("alice").await;
    let caller = app.login_ok("alice").await;
    let bob = app.signup("bob").await;

    let response = app.caller(&caller).logout_scope("others").await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert!(response.body["message"].is_string());
    assert_eq!(response.body["message"], "Successfully logged out", "the contract's message");
    assert_eq!(response.body["revoked_sessions"], 2);
    for other in [&first, &second] {
        app.assert_session_ended(other).await;
    }
    assert_eq!(app.protected(&caller.access).await.status, Status::Ok);
    assert_eq!(app.refresh(&caller.refresh).await.status, Status::Ok);
    assert_eq!(app.protected(&bob.access).await.status, Status::Ok, "other users are untouched");
}

async fn logout_scope_global_and_local(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let caller = app.login_ok("alice").await;

    let local = app.caller(&first).logout_scope("local").await;
    assert_eq!(local.status, Status::Ok);
    assert_eq!(local.body["message"], "Successfully logged out");
    assert!(local.body.get("revoked_sessions").is_none(), "{:?}", local.body);
    app.protected(&first.access).await.assert_token_error("token_revoked");
    assert_eq!(app.protected(&caller.access).await.status, Status::Ok);

    let third = app.login_ok("alice").await;
    let global = app.caller(&caller).logout_scope("global").await;
    assert_eq!(global.status, Status::Ok, "{:?}", global.body);
    assert_eq!(global.body["revoked_sessions"], 2, "the caller's and the third; the first was gone");
    assert_eq!(global.body["message"], "Successfully logged out", "the contract's message");
    app.protected(&caller.access).await.assert_token_error("token_revoked");
    app.protected(&third.access).await.assert_token_error("token_revoked");
}

async fn an_unknown_logout_scope_is_refused_and_revokes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    // A scope given twice is refused too, even when both are valid (found by
    // schemathesis: Rocket's `Option` had read it as no scope, `local`).
    let queries =
        ["scope=everything", "scope=", "scope=LOCAL", "scope=null&scope=null", "scope=others&scope=others"];
    for query in queries {
        let response = app.post_authorized(&format!("/auth/logout?{query}"), &bearer(&tokens.access)).await;
        response.assert_error(422, "invalid_input");
    }
    assert_eq!(app.protected(&tokens.access).await.status, Status::Ok);
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 0);
}

backend_tests!(
    sessions_are_listed_newest_first_with_their_devices,
    revoking_another_session_kills_its_access_and_refresh_tokens,
    another_users_session_is_not_found_and_nothing_leaks,
    logout_scope_others_keeps_the_caller,
    logout_scope_global_and_local,
    an_unknown_logout_scope_is_refused_and_revokes_nothing,
);
