//! Revocation you can trust: only rows decide what an instance holds (a
//! forged notification changes nothing), memory never answers more than the
//! contract's bound behind the database (stalls hand the check to the
//! database), refresh adds nothing to memory, a gap in the event log reloads,
//! and logout-all catches a login in flight.

use std::time::Duration;

use futures::future::join_all;
use jwt_blocklist::db::{Reason, SessionId, SessionSweep, UserId};
use jwt_blocklist::purge::purge_expired;
use rocket::http::Status;
use sqlx::{Connection, Executor};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{
    claim, forge_access, hs256, random_secret, refused_within, rejected_within, wait_until,
    wait_until_trusted, Backend, Role, TcpProxy, TestApp, TestDb, Tokens, PASSWORD, PROPAGATION_BOUND,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_neither_unrevoke_nor_plant_anything() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let revoked = app.signup("alice").await;
    app.logout(&revoked.access).await;
    wait_until_trusted(&app).await;
    let entries = app.store().revocation_cache().entries;
    let role = Role::create("forger").await;
    let mut forger = role.connect(&app.db).await;
    let (jti, sid) = (claim(&revoked.access, "jti"), claim(&revoked.access, "sid"));

    for payload in [
        format!("-{jti}"),
        format!("-{sid}"),
        format!("+{} 99999999999", Uuid::new_v4()),
        "garbage".to_owned(),
        String::new(),
        "sync x".to_owned(),
        "ping x".to_owned(),
    ] {
        forger
            .execute(format!("NOTIFY revoked_tokens, '{payload}'").as_str())
            .await
            .expect("anyone may NOTIFY");
    }
    let forged_event = forger.execute("INSERT INTO revocation_events (jti) VALUES (gen_random_uuid())").await;
    assert!(forged_event.is_err(), "the event log is the service's alone");
    assert!(forger.execute("DELETE FROM revoked_tokens").await.is_err());
    // A real change after the forged ones: once it is in force, they were read too.
    let marker = app.login_ok("alice").await;
    app.db.revoke_by_hand(claim(&marker.access, "jti"), "2099-01-01T00:00:00Z").await;
    rejected_within(&app, &marker.access, PROPAGATION_BOUND).await;

    app.protected(&revoked.access).await.assert_token_error("token_revoked");
    let status = app.store().revocation_cache();
    assert!(status.trusted, "answered from memory");
    assert_eq!(status.entries, entries + 1, "only the marker was added");
    forger.close().await.expect("close");
    role.drop().await;
}

/// Any role may NOTIFY on the followers' channel: a flood of forged
/// notifications makes an instance poll at most once per 10 ms, not once
/// per notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_notifications_does_not_make_the_follower_poll_back_to_back() {
    let app = TestApp::spawn(Backend::Postgres).await;
    wait_until_trusted(&app).await;
    let role = Role::create("flooder").await;
    let mut flooder = role.connect(&app.db).await;
    let polls = app.store().revocation_cache().polls;
    let started = std::time::Instant::now();

    for n in 0..2_000 {
        // Distinct payloads: Postgres folds identical ones within a transaction only.
        flooder.execute(format!("NOTIFY revoked_tokens, '{n}'").as_str()).await.expect("anyone may NOTIFY");
    }

    let elapsed = started.elapsed();
    let polled = app.store().revocation_cache().polls - polls;
    let bound = elapsed.as_millis() as u64 / 10 + 2;
    assert!(polled <= bound, "{polled} polls for 2,000 notifications in {elapsed:?} (at most {bound})");
    assert!(app.store().revocation_cache().trusted);
    flooder.close().await.expect("close");
    role.drop().await;
}

async fn a_stalled_follower_hands_the_check_to_the_database_within_the_bound(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let tokens = a.signup("alice").await;
    wait_until_trusted(&a).await;
    a.store().pause_follower(true);

    b.logout(&tokens.access).await;

    rejected_within(&a, &tokens.access, PROPAGATION_BOUND).await;
    assert!(!a.store().revocation_cache().trusted, "answered by the database, not by stale memory");
    a.store().pause_follower(false);
    wait_until_trusted(&a).await;
    a.protected(&tokens.access).await.assert_token_error("token_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_connection_refuses_revoked_tokens_within_the_bound_and_recovers() {
    let db = TestDb::create(Backend::Postgres).await;
    let proxy = TcpProxy::start(TestDb::postgres_address()).await;
    let through_proxy = db.url_through(proxy.port);
    let a = TestApp::start(db.clone(), random_secret(), |figment| {
        figment.merge(("databases.main.url", through_proxy)).merge(("databases.main.connect_timeout", 1))
    })
    .await;
    let b = a.another_instance().await;
    let revoked = b.signup("alice").await;
    let live = b.login_ok("alice").await;
    wait_until_trusted(&a).await;
    let loads = a.store().revocation_cache().loads;

    proxy.freeze();
    b.logout(&revoked.access).await;

    refused_within(&a, &revoked.access, PROPAGATION_BOUND, &["token_revoked", "service_unavailable"]).await;
    proxy.thaw();
    wait_until("the instance reloads", Duration::from_secs(20), || async {
        let status = a.store().revocation_cache();
        status.trusted && status.loads > loads
    })
    .await;
    a.protected(&revoked.access).await.assert_token_error("token_revoked");
    assert_eq!(a.protected(&live.access).await.status, Status::Ok);
}

async fn a_thousand_refreshes_leave_revocation_memory_unchanged(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let mut tokens = a.signup("alice").await;
    wait_until_trusted(&a).await;
    wait_until_trusted(&b).await;

    for _ in 0..1000 {
        let response = a.refresh(&tokens.refresh).await;
        assert_eq!(response.status, Status::Ok, "{:?}", response.body);
        tokens = Tokens::from_body(&response.body);
    }
    // One real revocation after them: once b has it, b has seen them all.
    a.db.revoke_by_hand(claim(&tokens.access, "jti"), "2099-01-01T00:00:00Z").await;
    rejected_within(&b, &tokens.access, PROPAGATION_BOUND).await;
    rejected_within(&a, &tokens.access, PROPAGATION_BOUND).await;

    assert_eq!(a.store().revocation_cache().entries, 1, "only the hand revocation");
    assert_eq!(b.store().revocation_cache().entries, 1, "only the hand revocation");
    let listed = a.db.count("SELECT count(*) FROM revoked_tokens").await;
    assert_eq!(listed, 1, "only the hand revocation: rotations add no row");
}

async fn a_gap_in_the_event_log_makes_the_instance_reload_rather_than_miss_a_revocation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    wait_until_trusted(&app).await;
    let loads = app.store().revocation_cache().loads;
    app.store().pause_follower(true);

    app.db.revoke_by_hand(claim(&tokens.access, "jti"), "2099-01-01T00:00:00Z").await;
    // The purge prunes events past their retention: age them, and purge.
    app.db.execute("UPDATE revocation_events SET happened_at = '2000-01-01T00:00:00Z'").await;
    wait_until("the purge has pruned every event", Duration::from_secs(10), || async {
        purge_expired(app.store()).await.expect("purge");
        app.db.count("SELECT count(*) FROM revocation_events").await == 0
    })
    .await;
    app.store().pause_follower(false);

    wait_until("the instance reloads", Duration::from_secs(10), || async {
        let status = app.store().revocation_cache();
        status.trusted && status.loads > loads
    })
    .await;
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
    assert!(app.store().revocation_cache().trusted, "answered from memory");
}

async fn logout_all_revokes_a_session_whose_login_is_in_flight(backend: Backend) {
    let app = TestApp::spawn_with(backend, hs256).await;
    let caller = app.signup("alice").await;
    let user = claim(&caller.access, "sub");
    let sid = Uuid::new_v4();
    // A login caught between its session insert and its commit.
    let in_flight = app
        .db
        .hold_transaction(&format!(
            "INSERT INTO sessions (id, user_id, refresh_jti, expires_at)
             VALUES ('{sid}', '{user}', '{}', '2099-01-01T00:00:00Z')",
            Uuid::new_v4()
        ))
        .await;

    let caller = app.caller(&caller);
    let (response, ()) = tokio::join!(caller.logout_all(), async {
        app.db.wait_for_a_lock_waiter().await;
        in_flight.commit().await;
    });

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body["revoked_sessions"], 2, "the caller's and the one in flight");
    let token = forge_access(&app.secret, &user, &sid.to_string(), crate::helpers::now() + 600);
    app.protected(&token).await.assert_token_error("token_revoked");
}

/// Logins that are answered with tokens after a sweep committed must hand
/// out no token that works: each answer is an error, or tokens already
/// revoked.
async fn assert_no_login_works(app: &TestApp, answers: &[crate::helpers::TestResponse]) {
    for answer in answers {
        if answer.status == Status::Ok {
            let tokens = Tokens::from_body(&answer.body);
            app.protected(&tokens.access).await.assert_token_error("token_revoked");
            app.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
        } else {
            answer.assert_error(401, "invalid_credentials");
        }
    }
}

/// Four logins queued for a hashing thread (held busy) when logout-all
/// commits: none of them ends with a working session.
async fn logout_all_beats_logins_still_waiting_to_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let caller = app.signup("alice").await;
    let held = app.auth().passwords.hold_hashing().await;

    let (answers, logged_out) = tokio::join!(join_all((0..4).map(|_| app.login("alice", PASSWORD))), async {
        wait_until("four logins wait to hash", Duration::from_secs(10), || async {
            app.auth().passwords.queued_hashes() == 4
        })
        .await;
        let logged_out = app.caller(&caller).logout_all().await;
        drop(held);
        logged_out
    });

    assert_eq!(logged_out.status, Status::Ok, "{:?}", logged_out.body);
    assert_no_login_works(&app, &answers).await;
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok, "a login after it works");
}

/// Logins with the old password still waiting to hash when a password
/// change commits end with no working session; the new password works.
async fn a_password_change_beats_logins_still_waiting_to_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let caller = app.signup("alice").await;
    let new_password = "a brand new password";
    let new_hash =
        app.auth().passwords.ticket(None).expect("a place").hash(new_password).await.expect("hash");
    let user_id: UserId = claim(&caller.access, "sub").parse().unwrap();
    let sid: SessionId = claim(&caller.access, "sid").parse().unwrap();
    let held = app.auth().passwords.hold_hashing().await;

    let (answers, ()) = tokio::join!(join_all((0..2).map(|_| app.login("alice", PASSWORD))), async {
        wait_until("two logins wait to hash", Duration::from_secs(10), || async {
            app.auth().passwords.queued_hashes() == 2
        })
        .await;
        // What POST /auth/password commits once it has checked and hashed.
        let sweep = SessionSweep {
            user_id,
            keep: Some(sid),
            reason: Reason::PasswordChanged,
            new_password_hash: Some(new_hash),
        };
        app.store().sweep_sessions(&sweep).await.expect("the change commits");
        drop(held);
    });

    assert_no_login_works(&app, &answers).await;
    assert_eq!(app.protected(&caller.access).await.status, Status::Ok, "the changing session stays");
    app.login("alice", PASSWORD).await.assert_error(401, "invalid_credentials");
    assert_eq!(app.login("alice", new_password).await.status, Status::Ok);
}

backend_tests!(
    logout_all_beats_logins_still_waiting_to_hash,
    a_password_change_beats_logins_still_waiting_to_hash,
    a_stalled_follower_hands_the_check_to_the_database_within_the_bound,
    a_thousand_refreshes_leave_revocation_memory_unchanged,
    a_gap_in_the_event_log_makes_the_instance_reload_rather_than_miss_a_revocation,
    logout_all_revokes_a_session_whose_login_is_in_flight,
);
