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

pub(crate) struct Run {
    code: i32,
    pub(crate) stdout: String,
    stderr: String,
}

/// Runs `jwt-blocklist ARGS` with the configuration of `db` (and `secret`).
pub(crate) async fn cli(db: &Arc<TestDb>, secret: &str, args: &[&str]) -> Run {
    cli_with(db, secret, args, &[]).await
}

/// [`cli`] with more environment variables.
async fn cli_with(db: &Arc<TestDb>, secret: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_jwt-blocklist"))
        .args(args)
        .envs(env.iter().copied())
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
        &["keys", "--help"],
        &["keys", "revoke", "--help"],
        &["clients", "--help"],
        &["clients", "add", "--help"],
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

/// The line of `keys list` for `kid`.
fn line_of<'a>(run: &'a Run, kid: &str) -> &'a str {
    run.stdout.lines().find(|line| line.starts_with(kid)).unwrap_or_else(|| panic!("{kid} in {}", run.stdout))
}

/// `keys list | rotate | revoke`: states and dates, one rotation at a time,
/// a running instance that follows, and a revoked active key replaced.
async fn keys_list_rotate_and_revoke(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let first = crate::keys::header_of(&tokens.access)["kid"].as_str().unwrap().to_owned();
    let list = cli(&app.db, &app.secret, &["keys", "list"]).await;
    assert_ok(&list, "1 signing key(s)");
    assert!(
        line_of(&list, &first).starts_with(&format!("{first}  ES256  active  created 20")),
        "{}",
        list.stdout
    );

    let rotated = cli(&app.db, &app.secret, &["keys", "rotate"]).await;
    assert_ok(&rotated, "published ");
    let next =
        rotated.stdout.trim().strip_prefix("published ").unwrap().split(';').next().unwrap().to_owned();
    assert_ok(&cli(&app.db, &app.secret, &["keys", "rotate"]).await, "a rotation is already pending");
    let list = cli(&app.db, &app.secret, &["keys", "list"]).await;
    assert!(line_of(&list, &next).contains("  next  "), "{}", list.stdout);
    assert!(line_of(&list, &first).contains("  active  "), "{}", list.stdout);
    wait_until("the instance publishes the next key", PROPAGATION_BOUND, || async {
        crate::keys::jwks(&app).await.to_string().contains(&next)
    })
    .await;

    assert_ok(&cli(&app.db, &app.secret, &["keys", "revoke", &next]).await, &format!("revoked {next}"));
    let list = cli(&app.db, &app.secret, &["keys", "revoke", &next]).await;
    assert_fails(&list, "no live key");
    // A kid is base64url: one that begins with '-' is a kid, not an option.
    assert_fails(&cli(&app.db, &app.secret, &["keys", "revoke", "-Jnot-a-key"]).await, "no live key");
    let revoked = cli(&app.db, &app.secret, &["keys", "revoke", &first]).await;
    assert_ok(&revoked, &format!("revoked {first}, the active key; "));
    crate::helpers::refused_within(&app, &tokens.access, PROPAGATION_BOUND, &["invalid_token"]).await;
    let list = cli(&app.db, &app.secret, &["keys", "list"]).await;
    assert_ok(&list, "3 signing key(s)");
    assert!(line_of(&list, &first).contains("  revoked  ") && line_of(&list, &next).contains("  revoked  "));
    assert_eq!(list.stdout.matches("  active  ").count(), 1, "its replacement signs: {}", list.stdout);
    assert!(!list.stdout.contains("sealed") && !list.stdout.contains("\"d\""), "nothing private");
}

async fn keys_under_hs256_have_nothing_to_rotate(backend: Backend) {
    let app = TestApp::spawn_with(backend, crate::helpers::hs256).await;
    let hs256 = [("ROCKET_JWT_ALGORITHM", "HS256")];

    assert_fails(&cli_with(&app.db, &app.secret, &["keys", "rotate"], &hs256).await, "HS256");
    assert_ok(&cli_with(&app.db, &app.secret, &["keys", "list"], &hs256).await, "0 signing key(s)");
}

/// `clients add | list | remove`: the secret printed once and stored only
/// as a hash, the client usable by a running instance at once and refused
/// by it within the bound once removed.
async fn clients_add_list_and_remove(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    let added = cli(&app.db, &app.secret, &["clients", "add", "billing"]).await;

    assert_ok(&added, "client_id: billing\nclient_secret: ");
    let lines: Vec<&str> = added.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", added.stdout);
    let secret = lines[1].strip_prefix("client_secret: ").unwrap();
    assert!(secret.len() >= 32, "{secret}");
    assert!(
        secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url: {secret}"
    );
    assert_eq!(
        app.db.count("SELECT CAST(length(secret_hash) AS BIGINT) FROM clients").await,
        32,
        "HMAC-SHA256, not the secret"
    );
    let basic = crate::helpers::basic("billing", secret);
    let form = format!("token={}", tokens.access);
    wait_until("the instance knows the client", PROPAGATION_BOUND, || async {
        crate::introspection::introspect(&app, Some(&basic), &form).await.status == Status::Ok
    })
    .await;
    assert_fails(&cli(&app.db, &app.secret, &["clients", "add", "billing"]).await, "exists");
    assert_fails(&cli(&app.db, &app.secret, &["clients", "add", "a b"]).await, "1-64");
    assert_fails(&cli(&app.db, &app.secret, &["clients", "add", &"x".repeat(65)]).await, "1-64");
    let list = cli(&app.db, &app.secret, &["clients", "list"]).await;
    assert_ok(&list, "1 client(s)\nbilling  added 20");
    assert!(!list.stdout.contains(secret));

    assert_ok(&cli(&app.db, &app.secret, &["clients", "remove", "billing"]).await, "removed client billing");

    wait_until("the instance refuses the client", PROPAGATION_BOUND, || async {
        crate::introspection::introspect(&app, Some(&basic), &form).await.status == Status::Unauthorized
    })
    .await;
    assert_fails(&cli(&app.db, &app.secret, &["clients", "remove", "billing"]).await, "no client billing");
    assert_ok(&cli(&app.db, &app.secret, &["clients", "list"]).await, "0 client(s)");
}

backend_tests!(
    keys_list_rotate_and_revoke,
    keys_under_hs256_have_nothing_to_rotate,
    clients_add_list_and_remove,
    migrate_and_purge,
    revoke_a_token_everywhere,
    revoke_a_session_and_a_user,
    revoke_user_beats_logins_still_waiting_to_hash,
    sessions_lists_the_live_ones,
    every_command_has_help_and_bad_input_fails_with_a_message,
);
