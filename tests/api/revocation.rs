//! The blocklist is the database: it survives restarts, is shared by every
//! instance, and honours rows a DBA inserts by hand.

use rocket::http::Status;

use crate::backend_tests;
use crate::helpers::{claim, rejected_within, Backend, TestApp, PROPAGATION_BOUND};

async fn revocation_survives_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let revoked = app.signup("alice").await;
    let kept = app.signup("bob").await;
    app.logout(&revoked.access).await;
    let (db, secret) = (app.db.clone(), app.secret.clone());
    drop(app);

    let restarted = TestApp::start(db, secret, |figment| figment).await;

    restarted.protected(&revoked.access).await.assert_token_error("token_revoked");
    restarted.refresh(&revoked.refresh).await.assert_token_error("token_revoked");
    assert_eq!(restarted.protected(&kept.access).await.status, Status::Ok);
    assert_eq!(restarted.refresh(&kept.refresh).await.status, Status::Ok);
}

async fn logout_on_one_instance_is_honoured_by_another(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let tokens = a.signup("alice").await;
    assert_eq!(b.protected(&tokens.access).await.status, Status::Ok);

    a.logout(&tokens.access).await;

    rejected_within(&b, &tokens.access, PROPAGATION_BOUND).await;
    b.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
}

async fn a_hand_inserted_jti_revokes_that_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let sibling = app.login_ok("alice").await;
    let jti = claim(&tokens.access, "jti");

    app.db.revoke_by_hand(&jti, "2099-01-01T00:00:00Z").await;

    rejected_within(&app, &tokens.access, PROPAGATION_BOUND).await;
    assert_eq!(app.protected(&sibling.access).await.status, Status::Ok);
    let defaults = app.db.count(&format!("SELECT count(*) FROM revoked_tokens WHERE jti = '{jti}' AND reason = 'manual' AND user_id IS NULL AND revoked_at IS NOT NULL")).await;
    assert_eq!(defaults, 1, "every other column has a default");
}

async fn a_hand_inserted_sid_revokes_the_whole_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let other_session = app.login_ok("alice").await;
    let sid = claim(&tokens.access, "sid");

    app.db.revoke_by_hand(&sid, "2099-01-01 00:00:00").await;

    rejected_within(&app, &tokens.access, PROPAGATION_BOUND).await;
    app.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
    assert_eq!(app.protected(&other_session.access).await.status, Status::Ok);
    let response = app.caller(&other_session).logout_all().await;
    assert_eq!(response.body["revoked_sessions"], 1, "the hand-revoked session was not live");
}

async fn deleting_a_user_keeps_their_revocations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    app.logout(&tokens.access).await;

    app.db.execute("DELETE FROM users").await;

    let sid = claim(&tokens.access, "sid");
    let kept = format!("SELECT count(*) FROM revoked_tokens WHERE jti = '{sid}' AND user_id IS NULL");
    assert_eq!(app.db.count(&kept).await, 1, "the logged-out session's row stays, its user unknown now");
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
}

backend_tests!(
    revocation_survives_a_restart,
    logout_on_one_instance_is_honoured_by_another,
    a_hand_inserted_jti_revokes_that_token,
    a_hand_inserted_sid_revokes_the_whole_session,
    deleting_a_user_keeps_their_revocations,
);
