//! Login throttling per (client address, username), and load shedding when
//! the password hashing queue is full. Both are deterministic here: the
//! throttle's clock is moved by a hook, and the queue is filled by holding
//! its places, not by timing.

use std::time::Duration;

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestResponse, PASSWORD};

const HOME: &str = "192.0.2.10:40000";
const ELSEWHERE: &str = "198.51.100.20:40000";

/// An app whose refused logins are answered at once (the tarpit has its own
/// test), with alice registered.
async fn with_budget(backend: Backend, failures: u32) -> TestApp {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(("login_max_failures", failures)).merge(("login_failure_window", 300))
    })
    .await;
    app.auth().throttle.tarpit.set_length(Duration::ZERO);
    assert_eq!(app.register("alice", PASSWORD).await.status, Status::Created);
    app
}

#[track_caller]
fn assert_throttled(response: &TestResponse, window: u64) {
    response.assert_error(429, "too_many_requests");
    let seconds: u64 = response.retry_after.as_deref().expect("Retry-After").parse().expect("seconds");
    assert!((1..=window).contains(&seconds), "Retry-After: {seconds}");
}

async fn failed_logins_past_the_budget_are_429_with_retry_after(backend: Backend) {
    let app = with_budget(backend, 3).await;

    for _ in 0..3 {
        app.login_from(HOME, None, "alice", "wrong password").await.assert_error(401, "invalid_credentials");
    }
    // Even the right password now, before any hashing.
    assert_throttled(&app.login_from(HOME, None, "alice", PASSWORD).await, 300);
    assert_throttled(&app.login_from(HOME, None, "ALICE", PASSWORD).await, 300);

    // Nobody can lock another person out: another address logs in.
    assert_eq!(app.login_from(ELSEWHERE, None, "alice", PASSWORD).await.status, Status::Ok);
    // And that success does not reset the first pair.
    assert_throttled(&app.login_from(HOME, None, "alice", PASSWORD).await, 300);
}

async fn unknown_usernames_count_like_known_ones(backend: Backend) {
    let app = with_budget(backend, 2).await;

    for name in ["nobody", "nobody"] {
        app.login_from(HOME, None, name, PASSWORD).await.assert_error(401, "invalid_credentials");
    }
    assert_throttled(&app.login_from(HOME, None, "nobody", PASSWORD).await, 300);
    // A name that could never register counts too.
    for _ in 0..2 {
        app.login_from(HOME, None, "no such name!", PASSWORD).await.assert_error(401, "invalid_credentials");
    }
    assert_throttled(&app.login_from(HOME, None, "no such name!", PASSWORD).await, 300);
    assert_eq!(
        app.login_from(HOME, None, "alice", PASSWORD).await.status,
        Status::Ok,
        "other pairs unaffected"
    );
}

async fn the_throttle_lifts_when_the_window_has_passed(backend: Backend) {
    let app = with_budget(backend, 1).await;
    app.login_from(HOME, None, "alice", "wrong password").await.assert_error(401, "invalid_credentials");
    assert_throttled(&app.login_from(HOME, None, "alice", PASSWORD).await, 300);

    app.auth().throttle.advance_clock(Duration::from_secs(299));
    let nearly = app.login_from(HOME, None, "alice", PASSWORD).await;
    assert_throttled(&nearly, 1);
    app.auth().throttle.advance_clock(Duration::from_secs(1));

    assert_eq!(app.login_from(HOME, None, "alice", PASSWORD).await.status, Status::Ok);
}

async fn zero_max_failures_turns_throttling_off(backend: Backend) {
    let app = with_budget(backend, 0).await;
    for _ in 0..8 {
        app.login_from(HOME, None, "alice", "wrong password").await.assert_error(401, "invalid_credentials");
    }
    assert_eq!(app.login_from(HOME, None, "alice", PASSWORD).await.status, Status::Ok);
}

/// A failed login from `HOME` claiming to be `forwarded` in `X-Real-IP`.
async fn login(app: &TestApp, forwarded: &str) -> TestResponse {
    let request = app
        .client
        .post("/auth/login")
        .remote(HOME.parse().unwrap())
        .header(ContentType::JSON)
        .header(Header::new("X-Real-IP", forwarded.to_owned()))
        .body(json!({ "username": "alice", "password": "wrong password" }).to_string());
    app.send(request).await
}

/// Rocket trusts `X-Real-IP` by default; this service does not, unless an
/// operator names the header.
async fn the_address_is_the_peer_unless_ip_header_is_configured(backend: Backend) {
    let app = with_budget(backend, 1).await;
    login(&app, "203.0.113.1").await.assert_error(401, "invalid_credentials");
    assert_throttled(&login(&app, "203.0.113.2").await, 300);

    let behind_proxy = TestApp::spawn_with(backend, |figment| {
        figment.merge(("login_max_failures", 1)).merge(("ip_header", "X-Real-IP"))
    })
    .await;
    behind_proxy.auth().throttle.tarpit.set_length(Duration::ZERO);
    behind_proxy.register("alice", PASSWORD).await;
    login(&behind_proxy, "203.0.113.1").await.assert_error(401, "invalid_credentials");
    login(&behind_proxy, "203.0.113.2").await.assert_error(401, "invalid_credentials");
    assert_throttled(&login(&behind_proxy, "203.0.113.1").await, 300);
}

async fn a_full_hashing_queue_sheds_logins_and_registrations_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(("hash_queue", 1)).merge(("login_max_failures", 1))
    })
    .await;
    app.auth().throttle.tarpit.set_length(Duration::ZERO);
    assert_eq!(app.register("alice", PASSWORD).await.status, Status::Created);
    app.login_from(ELSEWHERE, None, "alice", "wrong password").await.assert_error(401, "invalid_credentials");

    let held = app.auth().passwords.ticket(None).expect("the one place in the queue");
    let login = app.login_from(HOME, None, "alice", PASSWORD).await;
    let register = app.register("bob", PASSWORD).await;
    // A throttled pair is refused before it would queue for a hash.
    let throttled = app.login_from(ELSEWHERE, None, "alice", PASSWORD).await;
    drop(held);

    for shed in [&login, &register] {
        shed.assert_error(503, "service_unavailable");
        assert_eq!(shed.retry_after.as_deref(), Some("1"), "{shed:?}");
        assert_eq!(shed.header("Connection"), Some("close"), "a shed request ends its connection");
    }
    assert_eq!(throttled.header("Connection"), None, "only shedding closes the connection");
    assert_throttled(&throttled, 300);
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 1, "bob was not registered");
    assert_eq!(app.login_from(HOME, None, "alice", PASSWORD).await.status, Status::Ok, "a free place again");
    assert_eq!(app.register("bob", PASSWORD).await.status, Status::Created);
}

/// A refused login is held for the tarpit before its 429 (a lower bound
/// only: nothing here depends on how fast the machine is).
async fn a_refused_login_waits_in_the_tarpit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("login_max_failures", 1))).await;
    app.register("alice", PASSWORD).await;
    app.login_from(HOME, None, "alice", "wrong password").await.assert_error(401, "invalid_credentials");

    let started = std::time::Instant::now();
    let refused = app.login_from(HOME, None, "alice", PASSWORD).await;

    assert_throttled(&refused, 300);
    assert!(
        started.elapsed() >= jwt_blocklist::auth::tarpit::TARPIT,
        "answered after {:?}",
        started.elapsed()
    );
}

/// One user logging in with the right password from one address, eight at
/// a time (a benchmark's set-up, a CI system's parallel jobs): attempts
/// still being checked fill the budget of five, but they have not failed,
/// so the others wait for them rather than get 429.
async fn a_user_logging_in_eight_at_a_time_is_never_throttled(backend: Backend) {
    let app = with_budget(backend, 5).await;
    let held = app.auth().passwords.hold_hashing().await;

    let (answers, ()) = tokio::join!(
        futures::future::join_all((0..8).map(|_| app.login_from(HOME, None, "alice", PASSWORD))),
        async {
            crate::helpers::wait_until("five logins wait to hash", Duration::from_secs(10), || async {
                app.auth().passwords.queued_hashes() == 5
            })
            .await;
            drop(held);
        }
    );

    for answer in &answers {
        assert_eq!(answer.status, Status::Ok, "{:?}", answer.body);
    }
}

/// `POST /auth/password` checks the current password: its failures count
/// like failed logins of the same (address, username) pair, so a stolen
/// access token does not buy unlimited guesses.
async fn wrong_current_passwords_are_throttled_like_logins(backend: Backend) {
    let app = with_budget(backend, 2).await;
    let tokens = crate::helpers::Tokens::from_body(&app.login_from(HOME, None, "alice", PASSWORD).await.body);
    let caller = app.caller(&tokens);
    let change = |current: &'static str| caller.change_password(current, "a new password", Some(HOME));

    for _ in 0..2 {
        change("a guess").await.assert_error(403, "invalid_credentials");
    }
    assert_throttled(&change(PASSWORD).await, 300);
    assert_throttled(&app.login_from(HOME, None, "alice", PASSWORD).await, 300);
    assert_eq!(app.login_from(ELSEWHERE, None, "alice", PASSWORD).await.status, Status::Ok);
}

/// One address rotating through usernames (each pair has its own budget)
/// holds at most its share of the hashing queue: the others are shed, and
/// another address still gets a place.
async fn one_address_cannot_hold_the_whole_hashing_queue(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("hash_queue", 8))).await;
    assert_eq!(app.register("alice", PASSWORD).await.status, Status::Created);
    let held = app.auth().passwords.hold_hashing().await;
    let flood = "203.0.113.7:5000";
    let names: Vec<String> = (0..8).map(|n| format!("guess{n}")).collect();

    let (shed, elsewhere) = tokio::join!(
        futures::future::join_all(names.iter().map(|name| app.login_from(flood, None, name, "a guess"))),
        async {
            crate::helpers::wait_until("the flood holds its share", Duration::from_secs(10), || async {
                app.auth().passwords.queued_hashes() == 2
            })
            .await;
            let elsewhere = app.login_from(ELSEWHERE, None, "alice", PASSWORD);
            let (elsewhere, ()) = tokio::join!(elsewhere, async {
                crate::helpers::wait_until(
                    "the other address is queued",
                    Duration::from_secs(10),
                    || async { app.auth().passwords.queued_hashes() == 3 },
                )
                .await;
                drop(held);
            });
            elsewhere
        }
    );

    let refused = shed.iter().filter(|answer| answer.status == Status::ServiceUnavailable).count();
    assert_eq!(refused, 6, "the flood got its share of two places; the other six were shed");
    assert_eq!(elsewhere.status, Status::Ok, "{:?}", elsewhere.body);
}

backend_tests!(
    a_user_logging_in_eight_at_a_time_is_never_throttled,
    wrong_current_passwords_are_throttled_like_logins,
    one_address_cannot_hold_the_whole_hashing_queue,
    a_refused_login_waits_in_the_tarpit,
    failed_logins_past_the_budget_are_429_with_retry_after,
    unknown_usernames_count_like_known_ones,
    the_throttle_lifts_when_the_window_has_passed,
    zero_max_failures_turns_throttling_off,
    the_address_is_the_peer_unless_ip_header_is_configured,
    a_full_hashing_queue_sheds_logins_and_registrations_at_once,
);
