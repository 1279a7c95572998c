//! Refresh rotation: a refresh token works once; reuse revokes the session;
//! of concurrent refreshes with one token exactly one wins.

use futures::future::join_all;
use rocket::http::Status;

use crate::backend_tests;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::helpers::{
    claim, claims_of, forge, hs256, now, random_secret, unsigned, Backend, TestApp, Tokens,
};
use jwt_blocklist::auth::jwt::TokenType;
use jwt_blocklist::error::ApiError;

async fn refresh_rotates_into_a_new_pair_of_the_same_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;

    let response = app.refresh(&first.refresh).await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.cache_control.as_deref(), Some("no-store"));
    let second = Tokens::from_body(&response.body);
    assert_eq!(claim(&second.access, "sid"), claim(&first.access, "sid"));
    assert_ne!(claim(&second.refresh, "jti"), claim(&first.refresh, "jti"));
    assert_eq!(app.protected(&second.access).await.status, Status::Ok);
    assert_eq!(app.protected(&first.access).await.status, Status::Ok, "rotation does not end the session");
    let listed = app.db.count("SELECT count(*) FROM revoked_tokens").await;
    assert_eq!(listed, 0, "a rotation adds no row: the session row records it");
    let third = app.refresh(&second.refresh).await;
    assert_eq!(third.status, Status::Ok, "the new refresh token works");
}

async fn reusing_a_refresh_token_revokes_the_whole_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let second = Tokens::from_body(&app.refresh(&first.refresh).await.body);

    let reuse = app.refresh(&first.refresh).await;

    reuse.assert_token_error("token_revoked");
    app.protected(&second.access).await.assert_token_error("token_revoked");
    app.protected(&first.access).await.assert_token_error("token_revoked");
    app.refresh(&second.refresh).await.assert_token_error("token_revoked");
    let sid = claim(&first.access, "sid");
    let listed = app
        .db
        .count(&format!(
            "SELECT count(*) FROM revoked_tokens WHERE jti = '{sid}' AND reason = 'refresh_reuse'"
        ))
        .await;
    assert_eq!(listed, 1);
}

async fn concurrent_refreshes_with_one_token_have_exactly_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    let responses = join_all((0..20).map(|_| app.refresh(&tokens.refresh))).await;

    let winners: Vec<_> = responses.iter().filter(|r| r.status == Status::Ok).collect();
    assert_eq!(winners.len(), 1, "statuses: {:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    for response in responses.iter().filter(|r| r.status != Status::Ok) {
        response.assert_token_error("token_revoked");
    }
    let winner = Tokens::from_body(&winners[0].body);
    app.protected(&winner.access).await.assert_token_error("token_revoked");
    app.refresh(&winner.refresh).await.assert_token_error("token_revoked");
}

async fn refresh_with_an_expired_or_forged_token_is_rejected(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| hs256(f).merge(("refresh_token_ttl", 1))).await;
    let tokens = app.signup("alice").await;
    let claims = claims_of(&tokens.refresh);
    let other_key = forge(&claims, &random_secret(), Algorithm::HS256);
    let other_algorithm = forge(&claims, &app.secret, Algorithm::HS512);
    let none = unsigned(&json!({ "alg": "none", "typ": "JWT" }), &claims);
    let mut extended = claims.clone();
    extended["exp"] = json!(now() + 3600);
    let tampered = {
        let signed = forge(&extended, &random_secret(), Algorithm::HS256);
        let mut parts: Vec<&str> = tokens.refresh.split('.').collect();
        parts[1] = signed.split('.').nth(1).expect("payload");
        parts.join(".")
    };

    app.refresh("garbage").await.assert_token_error("invalid_token");
    app.refresh("").await.assert_token_error("invalid_token");
    for forged in [other_key, other_algorithm, none, tampered] {
        app.refresh(&forged).await.assert_token_error("invalid_token");
    }
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 0, "forgeries change nothing");
    // Expiry with a clock, not a sleep: the token itself at its `exp`, and
    // the same claims, correctly signed, already past it.
    let exp = chrono::DateTime::from_timestamp(claims["exp"].as_i64().expect("exp"), 0).expect("a time");
    let at_exp = app.auth().jwt.verify_at(&tokens.refresh, TokenType::Refresh, exp);
    assert!(matches!(at_exp, Err(ApiError::TokenExpired)), "{at_exp:?}");
    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 1);
    app.refresh(&forge(&expired, &app.secret, Algorithm::HS256)).await.assert_token_error("token_expired");
}

backend_tests!(
    refresh_rotates_into_a_new_pair_of_the_same_session,
    reusing_a_refresh_token_revokes_the_whole_session,
    concurrent_refreshes_with_one_token_have_exactly_one_winner,
    refresh_with_an_expired_or_forged_token_is_rejected,
);
