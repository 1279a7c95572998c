//! The command line, run as the built binary against this test's database:
//! each command's result line and exit status, `--help`, and revocations
//! that a running instance enforces within the contract's bound.

use std::sync::Arc;
use std::time::Duration;

use rocket::http::Status;

use crate::backend_tests;
use crate::helpers::{
    claim, hand_revocation, rejected_within, wait_until, wait_until_trusted, Backend, TestApp, TestDb,
    PASSWORD, PROPAGATION_BOUND,
};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `jwt-blocklist ARGS` with the configuration of `db` (and `secret`).
async fn cli(db: &Arc<TestDb>, secret: &str, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_jwt-blocklist"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("ROCKET_JWT_SECRET", secret)
        .env("ROCKET_DATA_DIR", db.folder())
        .env("ROCKET_LOG_LEVEL", "critical")
        .output()
        .await
        .expect("the binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_ok(run: &Run, says: &str) {
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains(says), "expected {says:?} in {:?}", run.stdout);
}

#[track_caller]
fn assert_fails(run: &Run, says: &str) {
    assert_ne!(run.code, 0, "should fail: {}", run.stdout);
    assert!(run.stderr.contains(says), "expected {says:?} in {:?}", run.stderr);
}

async fn migrate_and_purge(backend: Backend) {
    let db = TestDb::create(backend).await;
    let secret = crate::helpers::random_secret();

    assert_ok(&cli(&db, &secret, &["migrate"]).await, "migrations applied");
    assert_eq!(db.count("SELECT count(*) FROM users").await, 0, "the tables exist");
    assert_ok(&cli(&db, &secret, &["migrate"]).await, "up to date");

    db.execute(&hand_revocation(uuid::Uuid::new_v4(), "2001-01-01T00:00:00Z")).await;
    db.execute(&hand_revocation(uuid::Uuid::new_v4(), "2099-01-01T00:00:00Z")).await;
    assert_ok(&cli(&db, &secret, &["purge"]).await, "purged 1 revoked tokens");
    assert_eq!(db.count("SELECT count(*) FROM revoked_tokens").await, 1, "the live row stays");
}

async fn revoke_a_token_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    wait_until_trusted(&app).await;
    let jti = claim(&tokens.access, "jti");

    assert_ok(&cli(&app.db, &app.secret, &["revoke", "--jti", &jti]).await, &format!("revoked token {jti}"));

    rejected_within(&app, &tokens.access, PROPAGATION_BOUND).await;
    assert_ok(&cli(&app.db, &app.secret, &["revoke", "--jti", &jti]).await, "already revoked");
    assert_eq!(app.refresh(&tokens.refresh).await.status, Status::Ok, "only that token");
    let until = &["revoke", "--jti", &uuid::Uuid::new_v4().to_string(), "--until", "2031-01-01T00:00:00Z"];
    assert_ok(&cli(&app.db, &app.secret, until).await, "until 2031-01-01T00:00:00+00:00");
}

async fn revoke_a_session_and_a_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let second = app.login_ok("alice").await;
    let third = app.login_ok("alice").await;
    wait_until_trusted(&app).await;
    let sid = claim(&first.access, "sid");

    assert_ok(
        &cli(&app.db, &app.secret, &["revoke", "--session", &sid]).await,
        &format!("revoked session {sid}"),
    );
    rejected_within(&app, &first.access, PROPAGATION_BOUND).await;
    assert_eq!(app.protected(&second.access).await.status, Status::Ok);
    assert_fails(&cli(&app.db, &app.secret, &["revoke", "--session", &sid]).await, "no live session");

    assert_ok(
        &cli(&app.db, &app.secret, &["revoke", "--user", "ALICE"]).await,
        "revoked 2 live session(s) of alice",
    );
    rejected_within(&app, &second.access, PROPAGATION_BOUND).await;
    rejected_within(&app, &third.access, PROPAGATION_BOUND).await;
    assert_fails(&cli(&app.db, &app.secret, &["revoke", "--user", "nobody"]).await, "no user \"nobody\"");
}

/// `revoke --user` while logins wait for a hashing thread (held busy):
/// none of them ends with a working session.
async fn revoke_user_beats_logins_still_waiting_to_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("alice").await;
    let held = app.auth().passwords.hold_hashing().await;

    let (answers, run) =
        tokio::join!(futures::future::join_all((0..3).map(|_| app.login("alice", PASSWORD))), async {
            wait_until("three logins wait to hash", Duration::from_secs(10), || async {
                app.auth().passwords.queued_hashes() == 3
            })
            .await;
            let run = cli(&app.db, &app.secret, &["revoke", "--user", "alice"]).await;
            drop(held);
            run
        });

    assert_ok(&run, "revoked 1 live session(s) of alice");
    for answer in answers {
        if answer.status == Status::Ok {
            let access = answer.body["access_token"].as_str().expect("a token");
            rejected_within(&app, access, PROPAGATION_BOUND).await;
        } else {
            answer.assert_error(401, "invalid_credentials");
        }
    }
}

async fn sessions_lists_the_live_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup("alice").await;
    let second = app.login_ok("alice").await;
    app.logout(&first.access).await;

    let run = cli(&app.db, &app.secret, &["sessions", "alice"]).await;

    assert_ok(&run, "1 live session(s) of alice");
    assert!(run.stdout.contains(&claim(&second.access, "sid")), "{}", run.stdout);
    assert!(!run.stdout.contains(&claim(&first.access, "sid")), "{}", run.stdout);
    assert_fails(&cli(&app.db, &app.secret, &["sessions", "nobody"]).await, "no user");
}

async fn every_command_has_help_and_bad_input_fails_with_a_message(backend: Backend) {
    let db = TestDb::create(backend).await;
    let secret = crate::helpers::random_secret();
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["purge", "--help"],
        &["revoke", "--help"],
        &["sessions", "--help"],
    ] {
        assert_ok(&cli(&db, &secret, command).await, "Usage: jwt-blocklist");
    }
    let usage = cli(&db, &secret, &["revoke"]).await;
    assert_eq!(usage.code, 2, "a usage error: {}", usage.stderr);
    assert!(usage.stderr.contains("--jti"), "{}", usage.stderr);
    assert_eq!(cli(&db, &secret, &["revoke", "--jti", "not-a-uuid"]).await.code, 2);
    assert_eq!(cli(&db, &secret, &["frobnicate"]).await.code, 2);

    let broken = tokio::process::Command::new(env!("CARGO_BIN_EXE_jwt-blocklist"))
        .arg("migrate")
        .env("DATABASE_URL", "mysql://nowhere/db")
        .env("ROCKET_DATA_DIR", db.folder())
        .output()
        .await
        .expect("runs");
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("postgres:// or sqlite://"));
}

backend_tests!(
    migrate_and_purge,
    revoke_a_token_everywhere,
    revoke_a_session_and_a_user,
    revoke_user_beats_logins_still_waiting_to_hash,
    sessions_lists_the_live_ones,
    every_command_has_help_and_bad_input_fails_with_a_message,
);
