//! Every endpoint's success shape and the session rules of login, logout,
//! logout-all and me.

use rocket::http::Status;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{claim, claims_of, Backend, TestApp, PASSWORD};

async fn register_returns_the_new_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let response = app.register("Alice.Smith-1_", PASSWORD).await;

    assert_eq!(response.status, Status::Created);
    let id = response.body["id"].as_str().expect("id");
    assert_eq!(uuid::Uuid::parse_str(id).expect("uuid").hyphenated().to_string(), id);
    assert_eq!(response.body["username"], "Alice.Smith-1_");
    let created_at = response.body["created_at"].as_str().expect("created_at");
    assert!(created_at.ends_with('Z'), "{created_at}");
    chrono::DateTime::parse_from_rfc3339(created_at).expect("RFC 3339");
    let stored_hash = app
        .db
        .count("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'")
        .await;
    assert_eq!(stored_hash, 1, "password stored as argon2id with OWASP parameters");
}

async fn login_returns_a_token_pair_for_a_new_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("alice", PASSWORD).await;

    let response = app.login("ALICE", PASSWORD).await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 900);
    assert_eq!(response.body["refresh_expires_in"], 2_592_000);
    assert_eq!(response.cache_control.as_deref(), Some("no-store"));
    let access = response.body["access_token"].as_str().expect("access");
    let refresh = response.body["refresh_token"].as_str().expect("refresh");
    let (a, r) = (claims_of(access), claims_of(refresh));
    assert_eq!(a["type"], "access");
    assert_eq!(r["type"], "refresh");
    assert_eq!(a["iss"], "jwt-blocklist");
    assert_eq!(a["username"], "alice");
    assert_eq!(a["sid"], r["sid"], "one session for both tokens");
    assert_ne!(a["jti"], r["jti"]);
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 900);
    assert_eq!(app.db.count("SELECT count(*) FROM sessions").await, 1);
    let second = app.login("alice", PASSWORD).await;
    assert_ne!(
        claims_of(second.body["access_token"].as_str().unwrap())["sid"],
        a["sid"],
        "each login is a new session"
    );
}

async fn login_fails_the_same_way_for_unknown_user_and_wrong_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("alice", PASSWORD).await;

    let wrong_password = app.login("alice", "not the password").await;
    let unknown_user = app.login("nobody", PASSWORD).await;
    let illegal_name = app.login("a b", PASSWORD).await;

    wrong_password.assert_error(401, "invalid_credentials");
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(wrong_password.body, illegal_name.body);
    assert_eq!(wrong_password.www_authenticate, unknown_user.www_authenticate);
}

async fn protected_answers_from_the_verified_claims(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    let response = app.protected(&tokens.access).await;

    assert_eq!(response.status, Status::Ok);
    assert_eq!(response.body["message"], "Access granted");
    assert_eq!(response.body["user_id"], claim(&tokens.access, "sub"));
    assert_eq!(response.body["username"], "alice");
}

async fn bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app.get_authorized("/protected", &format!("{scheme} {}", tokens.access)).await;
        assert_eq!(response.status, Status::Ok, "{scheme}");
    }
}

async fn me_returns_the_caller(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let registered = app.register("alice", PASSWORD).await;
    let tokens = app.login_ok("alice").await;

    let response = app.caller(&tokens).me().await;

    assert_eq!(response.status, Status::Ok);
    assert_eq!(response.body, registered.body);
}

async fn logout_revokes_the_access_token_and_the_session_refresh_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let other_session = app.login_ok("alice").await;

    let response = app.logout(&tokens.access).await;

    assert_eq!(response.status, Status::Ok);
    assert_eq!(response.body, json!({ "message": "Successfully logged out" }));
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
    app.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
    app.logout(&tokens.access).await.assert_token_error("token_revoked");
    assert_eq!(app.protected(&other_session.access).await.status, Status::Ok, "other sessions live on");
    let sid = claim(&tokens.access, "sid");
    let reasons = app
        .db
        .count(&format!(
            "SELECT count(*) FROM revoked_tokens WHERE jti = '{sid}' AND reason = 'logout' AND user_id IS NOT NULL"
        ))
        .await;
    assert_eq!(reasons, 1, "the session is listed, with who and why");
    let listed = app.db.count("SELECT count(*) FROM revoked_tokens").await;
    assert_eq!(listed, 1, "and nothing else: the session's row refuses the token (issue 20)");
}

async fn logout_all_revokes_every_session_and_counts_the_live_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let second = app.login_ok("alice").await;
    let third = app.login_ok("alice").await;
    app.logout(&third.access).await;
    let bob = app.signup("bob").await;

    let response = app.caller(&first).logout_all().await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(
        response.body["revoked_sessions"], 2,
        "the caller's and one other; the logged-out one was not live"
    );
    assert!(response.body["message"].is_string());
    assert_eq!(response.body["message"], "Successfully logged out");
    for tokens in [&first, &second] {
        app.protected(&tokens.access).await.assert_token_error("token_revoked");
        app.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
    }
    assert_eq!(app.protected(&bob.access).await.status, Status::Ok, "other users are untouched");
    let after = app.login_ok("alice").await;
    assert_eq!(app.protected(&after.access).await.status, Status::Ok, "a later login works");
}

async fn health_reports_ok_and_how_current_revocation_memory_is(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    crate::helpers::wait_until_trusted(&app).await;

    let response = app.send(app.client.get("/health")).await;

    assert_eq!(response.status, Status::Ok);
    assert_eq!(response.body["status"], "ok");
    let cache = &response.body["revocation_cache"];
    assert_eq!(cache["mode"], "live");
    assert_eq!(cache["max_staleness_ms"], 900);
    assert!(cache["staleness_ms"].as_u64().expect("staleness_ms") <= 900, "{cache}");
    assert_eq!(cache["over_capacity"], false);

    app.store().pause_follower(true);
    crate::helpers::wait_until("memory is stale", std::time::Duration::from_secs(5), || async {
        app.send(app.client.get("/health")).await.body["revocation_cache"]["mode"] == "fallback"
    })
    .await;
}

async fn unknown_route_is_a_json_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    app.send(app.client.get("/nope")).await.assert_error(404, "not_found");
    app.send(app.client.delete("/auth/login")).await.assert_error(404, "not_found");
}

backend_tests!(
    register_returns_the_new_user,
    login_returns_a_token_pair_for_a_new_session,
    login_fails_the_same_way_for_unknown_user_and_wrong_password,
    protected_answers_from_the_verified_claims,
    bearer_scheme_is_case_insensitive,
    me_returns_the_caller,
    logout_revokes_the_access_token_and_the_session_refresh_token,
    logout_all_revokes_every_session_and_counts_the_live_ones,
    health_reports_ok_and_how_current_revocation_memory_is,
    unknown_route_is_a_json_not_found,
);
