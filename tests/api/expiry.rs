//! Exact expiry: a token is expired from the instant the clock reaches
//! `exp + leeway`, to the sub-second, on every path; a purged row never
//! re-admits its token; memory keeps an entry until `expires_at + leeway` and
//! no longer.

use chrono::{SecondsFormat, SubsecRound, TimeZone, Utc};
use jwt_blocklist::auth::jwt::TokenType;
use jwt_blocklist::error::ApiError;
use jwt_blocklist::purge::purge_expired;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{
    claim, forge_access, hs256, now, sleep_until_unix, wait_until, wait_until_trusted, Backend, TestApp,
    PROPAGATION_BOUND,
};

const LEEWAY: i64 = 1;

async fn a_token_is_expired_from_exp_plus_leeway_not_a_second_later(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| hs256(f).merge(("leeway", LEEWAY))).await;
    let tokens = app.signup("alice").await;
    let (user, sid) = (claim(&tokens.access, "sub"), claim(&tokens.access, "sid"));
    let exp = now() + 60;
    let token = forge_access(&app.secret, &user, &sid, exp);
    let expired_at = Utc.timestamp_opt(exp + LEEWAY, 0).single().expect("a time");
    let verify_at = |at| app.auth().jwt.verify_at(&token, TokenType::Access, at);

    // Asked 0.2 s into the second at whose start it expired (the old check
    // compared whole seconds and accepted it for that whole second), and a
    // microsecond before that start; with a clock, not a sleep.
    let asked = verify_at(expired_at + chrono::Duration::milliseconds(200));
    let just_before = verify_at(expired_at - chrono::Duration::microseconds(1));

    assert!(matches!(asked, Err(ApiError::TokenExpired)), "{asked:?}");
    assert!(just_before.is_ok(), "{just_before:?}");
    let past = forge_access(&app.secret, &user, &sid, now() - LEEWAY - 1);
    app.protected(&past).await.assert_token_error("token_expired");
}

async fn a_purged_revocation_never_readmits_its_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| hs256(f).merge(("leeway", LEEWAY))).await;
    let tokens = app.signup("alice").await;
    let user = claim(&tokens.access, "sub");
    // A session with no row of its own: the logout lists its sid until `exp`.
    let exp = now() + 1;
    let token = forge_access(&app.secret, &user, &Uuid::new_v4().to_string(), exp);
    assert_eq!(app.logout(&token).await.status.code, 200);
    // The database path: memory stale, as while loading or after a stall.
    app.store().pause_follower(true);
    wait_until("memory is stale", PROPAGATION_BOUND * 2, || async {
        !app.store().revocation_cache().trusted
    })
    .await;

    // The purge goes by the database's clock (Postgres' now()), which no
    // hook can move: this one waits for the wall clock.
    sleep_until_unix((exp + LEEWAY) as f64 + 0.05).await;
    let counts = purge_expired(app.store()).await.expect("purge").expect("not locked");
    assert_eq!(counts.revoked_tokens, 1, "its session's row, which refused it");

    app.protected(&token).await.assert_token_error("token_expired");
    app.store().pause_follower(false);
    wait_until_trusted(&app).await;
    app.protected(&token).await.assert_token_error("token_expired");
}

async fn memory_keeps_an_entry_until_expiry_plus_leeway_and_no_longer(backend: Backend) {
    let leeway = 5;
    let app = TestApp::spawn_with(backend, |f| f.merge(("leeway", leeway))).await;
    wait_until_trusted(&app).await;
    let expires_at = (Utc::now() + chrono::Duration::hours(1)).trunc_subsecs(3);
    let text = expires_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    app.db.revoke_by_hand(Uuid::new_v4(), &text).await;
    wait_until("the row reaches memory", PROPAGATION_BOUND, || async {
        app.store().revocation_cache().entries == 1
    })
    .await;
    let gone_at = expires_at + chrono::Duration::seconds(leeway);
    let millisecond = chrono::Duration::milliseconds(1);

    assert_eq!(app.store().evict_expired_revocations(gone_at - millisecond), 0);
    assert_eq!(app.store().evict_expired_revocations(gone_at), 0, "the purge keeps it at that instant too");
    assert_eq!(app.store().revocation_cache().entries, 1);
    assert_eq!(app.store().evict_expired_revocations(gone_at + millisecond), 1);
    assert_eq!(app.store().revocation_cache().entries, 0);
}

backend_tests!(
    a_token_is_expired_from_exp_plus_leeway_not_a_second_later,
    a_purged_revocation_never_readmits_its_token,
    memory_keeps_an_entry_until_expiry_plus_leeway_and_no_longer,
);
