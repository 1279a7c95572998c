//! Group commit: an instance's revoking writes (logout, logout-all, RFC
//! 7009, a session's delete, refresh rotation) are committed in batches by
//! one writer. A write that finds it idle goes at once and alone; writes
//! that arrive during a commit share the next one, at most
//! `MAX_WRITE_BATCH` of them; each caller gets its own answer, and none is
//! answered 2xx before its write has committed (a kill -9 loses none).
//!
//! The writer is held (a test hook, as a slow commit would hold it) so that
//! the writes of a test queue up and form one batch: the tests assert on the
//! writer's counters, never on wall time.

use std::time::Duration;

use chrono::Utc;
use jwt_blocklist::db::{Reason, Revocation, TokenId, MAX_WRITE_BATCH};
use rocket::http::Status;
use serde_json::Value;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{
    claim, http, random_secret, serve_binary, wait_until, Backend, TestApp, TestDb, TestResponse, Tokens,
};

/// Waits until `queued` writes wait behind the held writer.
async fn until_queued(app: &TestApp, queued: usize) {
    wait_until("the writes queue behind the held writer", Duration::from_secs(10), || async {
        app.store().writer_status().queued == queued
    })
    .await;
}

/// Makes the database refuse (an error from a trigger) any change to session
/// `sid`: a write that fails in the database, not by its own logic.
async fn refuse_changes_to_session(app: &TestApp, backend: Backend, sid: &str) {
    match backend {
        Backend::Postgres => {
            app.db
                .execute(&format!(
                    "CREATE FUNCTION refuse_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN RAISE EXCEPTION 'this session may not change'; END $$;
                     CREATE TRIGGER refuse_session_change BEFORE UPDATE ON sessions
                         FOR EACH ROW WHEN (OLD.id = '{sid}') EXECUTE FUNCTION refuse_session_change()"
                ))
                .await
        }
        Backend::Sqlite => {
            app.db
                .execute(&format!(
                    "CREATE TRIGGER refuse_session_change BEFORE UPDATE ON sessions WHEN OLD.id = '{sid}'
                     BEGIN SELECT RAISE(ABORT, 'this session may not change'); END"
                ))
                .await
        }
    }
}

async fn concurrent_revoking_calls_share_a_commit_and_each_gets_its_own_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut plain = Vec::new();
    for name in ["ann", "bob", "cid", "dee"] {
        plain.push(app.signup(name).await);
    }
    let ghost = app.signup("ghost").await;
    let revoked_before = app.signup("eve").await;
    let refused = app.signup("fay").await;
    let refreshing = app.signup("gus").await;
    let sweeping = app.signup("hal").await;
    let hal_elsewhere = app.login_ok("hal").await;
    assert_eq!(app.logout(&revoked_before.access).await.status, Status::Ok);
    app.db.execute("DELETE FROM users WHERE username = 'ghost'").await;
    refuse_changes_to_session(&app, backend, &claim(&refused.access, "sid")).await;
    let before = app.store().writer_status();
    app.store().hold_writes(true);

    let unknown_session = Uuid::new_v4().to_string();
    let (ann, hal) = (app.caller(&plain[0]), app.caller(&sweeping));
    let eve_again = format!("token={}", revoked_before.access);
    let (plain_answers, ghost_answer, rfc7009, unknown, refused_answer, refreshed, swept, ()) = tokio::join!(
        futures::future::join_all(plain.iter().map(|tokens| app.logout(&tokens.access))),
        app.logout(&ghost.access),
        app.revoke_form(&eve_again),
        ann.revoke_session(&unknown_session),
        app.logout(&refused.access),
        app.refresh(&refreshing.refresh),
        hal.logout_all(),
        async {
            until_queued(&app, 10).await;
            app.store().hold_writes(false);
        },
    );

    for answer in &plain_answers {
        assert_eq!(answer.status, Status::Ok, "{:?}", answer.body);
    }
    assert_eq!(
        ghost_answer.status,
        Status::Ok,
        "a deleted user's token is logged out: {:?}",
        ghost_answer.body
    );
    assert_eq!(rfc7009.status, Status::Ok, "RFC 7009: a revoked token is 200 and changes nothing");
    unknown.assert_error(404, "not_found");
    refused_answer.assert_error(500, "internal_error");
    assert_eq!(refreshed.status, Status::Ok, "{:?}", refreshed.body);
    assert_eq!(swept.status, Status::Ok, "{:?}", swept.body);
    assert_eq!(swept.body["revoked_sessions"], 2);
    for tokens in plain.iter().chain([&ghost, &sweeping, &hal_elsewhere]) {
        app.protected(&tokens.access).await.assert_token_error("token_revoked");
    }
    assert_eq!(app.protected(&refused.access).await.status, Status::Ok, "the refused logout changed nothing");
    assert_eq!(app.protected(&Tokens::from_body(&refreshed.body).access).await.status, Status::Ok);
    let after = app.store().writer_status();
    assert_eq!(after.largest_batch, 10, "the ten writes formed one batch: {after:?}");
    assert_eq!(after.retried_alone - before.retried_alone, 10, "its failure sent each write alone");
}

/// Logs every caller out while the writer is held; once all wait behind
/// it, runs `meanwhile`, then lets the writer go: their logouts form one
/// batch.
async fn log_out_together(
    app: &TestApp,
    callers: &[Tokens],
    meanwhile: impl std::future::Future<Output = ()>,
) -> Vec<TestResponse> {
    app.store().hold_writes(true);
    let (answers, ()) = tokio::join!(
        futures::future::join_all(callers.iter().map(|tokens| app.logout(&tokens.access))),
        async {
            until_queued(app, callers.len()).await;
            meanwhile.await;
            app.store().hold_writes(false);
        },
    );
    answers
}

async fn logouts_that_arrive_together_are_one_batch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut callers = Vec::new();
    for name in ["ann", "bob", "cid", "dee", "eve", "fay"] {
        callers.push(app.signup(name).await);
    }
    let before = app.store().writer_status();

    let answers = log_out_together(&app, &callers, async {}).await;

    assert!(answers.iter().all(|answer| answer.status == Status::Ok));
    let after = app.store().writer_status();
    assert_eq!(after.batches - before.batches, 1, "one commit for all: {after:?}");
    assert_eq!(after.last_batch, callers.len());
    assert_eq!(after.retried_alone, before.retried_alone, "nothing failed");
    let listed = app.db.count("SELECT count(*) FROM revoked_tokens WHERE reason = 'logout'").await;
    assert_eq!(listed, 6, "each logout's session");
    for tokens in &callers {
        app.protected(&tokens.access).await.assert_token_error("token_revoked");
    }
}

/// A session listed while its logout waits in a batch (by a DBA here; by
/// another instance, or a logout with another token of the session, in
/// life). On Postgres a batch of logouts inserts its rows, so the race
/// fails the batch and each logout runs again alone; on SQLite each write
/// extends what is listed. Either way every caller is answered as if
/// nothing had raced, and the DBA's row is extended, never shortened.
async fn a_logout_whose_session_was_listed_meanwhile_is_answered_and_so_are_its_neighbours(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut callers = Vec::new();
    for name in ["ann", "bob", "cid", "dee"] {
        callers.push(app.signup(name).await);
    }
    let raced = claim(&callers[0].access, "sid");
    let soon = (Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let before = app.store().writer_status();

    let answers = log_out_together(&app, &callers, app.db.revoke_by_hand(&raced, &soon)).await;

    for answer in &answers {
        assert_eq!(answer.status, Status::Ok, "{:?}", answer.body);
        assert_eq!(answer.body["message"], "Successfully logged out");
    }
    let after = app.store().writer_status();
    let retried = after.retried_alone - before.retried_alone;
    match backend {
        Backend::Postgres => {
            assert_eq!(retried, callers.len() as u64, "the race failed the batch: {after:?}")
        }
        Backend::Sqlite => assert_eq!(retried, 0, "{after:?}"),
    }
    let logouts = app.db.count("SELECT count(*) FROM revoked_tokens WHERE reason = 'logout'").await;
    assert_eq!(logouts, 3, "the other sessions, each listed once");
    let extended = format!(
        "SELECT count(*) FROM revoked_tokens WHERE jti = '{raced}' AND reason = 'manual'
           AND julianday(expires_at) > julianday('now') + 1"
    );
    let extended = match backend {
        Backend::Postgres => extended
            .replace("julianday(expires_at) > julianday('now') + 1", "expires_at > now() + interval '1 day'"),
        Backend::Sqlite => extended,
    };
    assert_eq!(app.db.count(&extended).await, 1, "the DBA's row now lasts as long as the session");
    for tokens in &callers {
        app.protected(&tokens.access).await.assert_token_error("token_revoked");
        app.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
    }
}

async fn the_sweeps_of_a_batch_share_its_commit_and_each_counts_its_own_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann").await;
    let ann_elsewhere = app.login_ok("ann").await;
    let bob = app.signup("bob").await;
    let bob_others = [app.login_ok("bob").await, app.login_ok("bob").await];
    let cid = app.signup("cid").await;
    let cid_elsewhere = app.login_ok("cid").await;
    let before = app.store().writer_status();
    app.store().hold_writes(true);

    let callers = [app.caller(&ann), app.caller(&ann_elsewhere), app.caller(&bob), app.caller(&cid)];
    let (ann_first, ann_second, bob_all, cid_others, ()) = tokio::join!(
        callers[0].logout_all(),
        callers[1].logout_all(),
        callers[2].logout_all(),
        callers[3].logout_scope("others"),
        async {
            until_queued(&app, 4).await;
            app.store().hold_writes(false);
        },
    );

    let counts = [&ann_first, &ann_second, &bob_all, &cid_others].map(|answer| {
        assert_eq!(answer.status, Status::Ok, "{:?}", answer.body);
        answer.body["revoked_sessions"].as_u64().expect("a count")
    });
    let mut ann_counts = [counts[0], counts[1]];
    ann_counts.sort();
    assert_eq!(ann_counts, [0, 2], "one of ann's sweeps ended both her sessions, the other none");
    assert_eq!(counts[2], 3, "bob's three");
    assert_eq!(counts[3], 1, "cid's other session");
    for tokens in [&ann, &ann_elsewhere, &bob, &bob_others[0], &bob_others[1], &cid_elsewhere] {
        app.protected(&tokens.access).await.assert_token_error("token_revoked");
    }
    assert_eq!(app.protected(&cid.access).await.status, Status::Ok, "the kept session lives");
    let after = app.store().writer_status();
    assert_eq!(after.batches - before.batches, 1, "one commit for all four: {after:?}");
    assert_eq!(after.retried_alone, before.retried_alone);
}

async fn refreshes_in_one_batch_rotate_together_and_a_reused_token_still_loses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann").await;
    let bob = app.signup("bob").await;
    let cid = app.signup("cid").await;
    let before = app.store().writer_status();
    app.store().hold_writes(true);

    let (ann_first, ann_second, bob_answer, cid_answer, ()) = tokio::join!(
        app.refresh(&ann.refresh),
        app.refresh(&ann.refresh),
        app.refresh(&bob.refresh),
        app.refresh(&cid.refresh),
        async {
            until_queued(&app, 4).await;
            app.store().hold_writes(false);
        },
    );

    let ann_ok = [&ann_first, &ann_second].iter().filter(|answer| answer.status == Status::Ok).count();
    assert_eq!(ann_ok, 1, "exactly one of two refreshes with one token succeeds");
    let loser = if ann_first.status == Status::Ok { &ann_second } else { &ann_first };
    loser.assert_token_error("token_revoked");
    let winner = if ann_first.status == Status::Ok { &ann_first } else { &ann_second };
    app.refresh(&Tokens::from_body(&winner.body).refresh).await.assert_token_error("token_revoked");
    for answer in [&bob_answer, &cid_answer] {
        assert_eq!(answer.status, Status::Ok, "{:?}", answer.body);
        let rotated = Tokens::from_body(&answer.body);
        assert_eq!(app.refresh(&rotated.refresh).await.status, Status::Ok, "the new refresh token works");
    }
    let after = app.store().writer_status();
    assert!(after.largest_batch >= 4, "the four rotations were one batch: {after:?}");
    assert_eq!(after.retried_alone, before.retried_alone);
}

async fn a_lone_logout_is_committed_at_once_in_a_batch_of_its_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let before = app.store().writer_status();

    assert_eq!(app.logout(&tokens.access).await.status, Status::Ok);

    let after = app.store().writer_status();
    assert_eq!(after.batches - before.batches, 1, "{after:?}");
    assert_eq!(after.last_batch, 1, "it waited for no company");
    assert_eq!((after.queued, after.in_flight), (0, 0), "and nothing is left behind it");
}

async fn no_batch_holds_more_than_the_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.store();
    let writes = MAX_WRITE_BATCH + 6;
    let revocation = || Revocation {
        jti: TokenId(Uuid::new_v4()),
        expires_at: Utc::now() + chrono::Duration::hours(1),
        user_id: None,
        reason: Reason::Manual,
    };
    let revocations: Vec<Revocation> = (0..writes).map(|_| revocation()).collect();
    let before = store.writer_status();
    store.hold_writes(true);

    let (answers, ()) = tokio::join!(
        futures::future::join_all(revocations.iter().map(|token| store.revoke_token(None, token))),
        async {
            until_queued(&app, writes).await;
            store.hold_writes(false);
        },
    );

    assert!(answers.iter().all(|answer| matches!(answer, Ok(true))), "{answers:?}");
    let after = store.writer_status();
    assert_eq!(after.largest_batch, MAX_WRITE_BATCH, "{after:?}");
    assert_eq!(after.batches - before.batches, 2, "{MAX_WRITE_BATCH}, then the rest");
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, writes as i64);
}

/// The writer's state as the binary's `/health` reports it.
async fn writes_of(port: u16) -> Value {
    http(port, "GET", "/health", &[], None).await.2["writes"].clone()
}

/// The process is killed (-9) while its writer waits on a lock in the
/// database (one logout in flight, one queued): what was answered 2xx before
/// survives, nothing unanswered was answered 2xx, and no logout was
/// committed in part.
async fn a_crash_mid_batch_loses_no_answered_logout_and_reports_none_uncommitted(backend: Backend) {
    let db = TestDb::create(backend).await;
    let secret = random_secret();
    let (mut child, port, _lines) = serve_binary(&db, &secret, "critical", &[]);
    let credentials = |name: &str| serde_json::json!({ "username": name, "password": "a long password" });
    let mut tokens = Vec::new();
    for name in ["answered", "pending", "waiting"] {
        assert_eq!(http(port, "POST", "/auth/register", &[], Some(&credentials(name))).await.0, 201);
        let (status, _, body) = http(port, "POST", "/auth/login", &[], Some(&credentials(name))).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().expect("an access token").to_owned());
    }
    // The status of a logout, or 0 if the connection broke first.
    let logout = |token: String| async move {
        let url = format!("http://127.0.0.1:{port}/auth/logout");
        let answer = reqwest::Client::new().post(url).bearer_auth(token).send().await;
        answer.map_or(0, |answer| answer.status().as_u16())
    };
    assert_eq!(logout(tokens[0].clone()).await, 200);
    let lock = match backend {
        Backend::Postgres => "LOCK TABLE sessions IN EXCLUSIVE MODE",
        Backend::Sqlite => "SELECT 1",
    };
    let held = db.hold_transaction(lock).await;
    let pending: Vec<_> = tokens[1..].iter().map(|token| tokio::spawn(logout(token.clone()))).collect();
    wait_until("both logouts reach the writer", Duration::from_secs(10), || async {
        let writes = writes_of(port).await;
        writes["queued"].as_u64().unwrap_or(0) + writes["in_flight"].as_u64().unwrap_or(0) == 2
    })
    .await;

    child.kill().expect("kill -9");
    child.wait().expect("the process ends");
    held.commit().await;
    if backend == Backend::Postgres {
        // The killed process's sessions end once the database notices.
        let sessions = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'jwt-blocklist'",
            db.name()
        );
        wait_until("the killed process's sessions end", Duration::from_secs(10), || async {
            db.count(&sessions).await == 0
        })
        .await;
    }

    for answer in pending {
        let status = answer.await.expect("the request task");
        assert!(!(200..300).contains(&status), "a logout answered {status} from a killed process");
    }
    // A logout's two writes: its session ended, and listed.
    let listed = |token: &str| {
        let sid = claim(token, "sid");
        format!(
            "SELECT (SELECT count(*) FROM revoked_tokens WHERE jti = '{sid}')
                  + (SELECT count(*) FROM sessions WHERE id = '{sid}' AND revoked_at IS NOT NULL)"
        )
    };
    assert_eq!(db.count(&listed(&tokens[0])).await, 2, "the answered logout survived the crash");
    let app = TestApp::start(db.clone(), secret, |figment| figment).await;
    app.protected(&tokens[0]).await.assert_token_error("token_revoked");
    // An unanswered logout may have committed (a statement the database
    // was already running finishes after its client is gone), but never in
    // part, and the service says what the database holds.
    for token in &tokens[1..] {
        match db.count(&listed(token)).await {
            0 => assert_eq!(app.protected(token).await.status, Status::Ok),
            2 => app.protected(token).await.assert_token_error("token_revoked"),
            writes => panic!("half a logout was committed: {writes} of its 2 writes"),
        }
    }
}

backend_tests!(
    concurrent_revoking_calls_share_a_commit_and_each_gets_its_own_answer,
    logouts_that_arrive_together_are_one_batch,
    a_logout_whose_session_was_listed_meanwhile_is_answered_and_so_are_its_neighbours,
    the_sweeps_of_a_batch_share_its_commit_and_each_counts_its_own_sessions,
    refreshes_in_one_batch_rotate_together_and_a_reused_token_still_loses,
    a_lone_logout_is_committed_at_once_in_a_batch_of_its_own,
    no_batch_holds_more_than_the_bound,
    a_crash_mid_batch_loses_no_answered_logout_and_reports_none_uncommitted,
);
