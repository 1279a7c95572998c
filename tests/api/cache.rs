//! The in-memory blocklist: loaded at start, kept current by the follower
//! (LISTEN/NOTIFY on Postgres, the event log on SQLite), never trusted while
//! the follower may have missed something, and emptied of expired entries.

use std::time::Duration;

use rocket::http::Status;
use sqlx::{Connection, Executor};

use crate::backend_tests;
use crate::helpers::{
    claim, hand_revocation, rejected_within, wait_until, wait_until_trusted, Backend, TestApp, TestDb,
    PROPAGATION_BOUND,
};

async fn the_cache_is_loaded_from_the_database_at_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    app.logout(&tokens.access).await;
    app.db.revoke_by_hand("00000000-0000-4000-8000-000000000001", "2099-01-01T00:00:00Z").await;
    app.db.revoke_by_hand("00000000-0000-4000-8000-000000000002", "2000-01-01T00:00:00Z").await;

    let restarted = app.another_instance().await;
    wait_until_trusted(&restarted).await;

    let status = restarted.store().revocation_cache();
    assert_eq!(status.entries, 2, "the logged-out session, one live by hand; the expired row is not loaded");
    assert_eq!(status.loads, 1);
    restarted.protected(&tokens.access).await.assert_token_error("token_revoked");
}

async fn a_live_row_deleted_by_hand_is_unrevoked_on_every_instance(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let tokens = a.signup("alice").await;
    wait_until_trusted(&b).await;
    a.logout(&tokens.access).await;
    rejected_within(&b, &tokens.access, PROPAGATION_BOUND).await;

    a.db.execute("DELETE FROM revoked_tokens").await;

    for app in [&a, &b] {
        wait_until("the deletion reaches the cache", PROPAGATION_BOUND, || async {
            app.protected(&tokens.access).await.status == Status::Ok
        })
        .await;
    }
}

async fn expired_entries_leave_memory(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    wait_until_trusted(&app).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    app.db.revoke_by_hand("00000000-0000-4000-8000-000000000003", &soon).await;

    wait_until("the entry is cached", PROPAGATION_BOUND, || async {
        app.store().revocation_cache().entries == 1
    })
    .await;
    wait_until("the entry is evicted", Duration::from_secs(20), || async {
        app.store().revocation_cache().entries == 0
    })
    .await;
}

/// The follower's connection dies and cannot come back: the cache is
/// distrusted at once, revocations made meanwhile are still honoured (from
/// the database), and once the listener is back it reloads before trusting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_while_the_listener_is_down_is_rejected_and_the_cache_reloads() {
    // Connections kept open: the request pool must not need a new one while
    // the database refuses them (sqlx holds a released connection for a ping).
    let app =
        TestApp::spawn_with(Backend::Postgres, |f| f.merge(("databases.main.min_connections", 4))).await;
    let revoked_meanwhile = app.signup("alice").await;
    let live = app.login_ok("alice").await;
    wait_until_trusted(&app).await;
    let loads = app.store().revocation_cache().loads;
    let mut dba = sqlx::PgConnection::connect(&app.db.url()).await.expect("connect");
    let name = app.db.name().to_owned();

    // New connections are refused; the request pool keeps the ones it has.
    TestDb::admin_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await;
    TestDb::admin_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{name}' AND application_name = 'jwt-blocklist-listener'"
    ))
    .await;
    wait_until("the cache is distrusted", Duration::from_secs(10), || async {
        !app.store().revocation_cache().trusted
    })
    .await;
    let jti = claim(&revoked_meanwhile.access, "jti");
    dba.execute(hand_revocation(&jti, "2099-01-01T00:00:00Z").as_str()).await.expect("hand revocation");

    app.protected(&revoked_meanwhile.access).await.assert_token_error("token_revoked");
    assert_eq!(app.protected(&live.access).await.status, Status::Ok);
    assert!(!app.store().revocation_cache().trusted, "the listener must still be down for this test");

    TestDb::admin_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await;
    wait_until("the cache is reloaded", Duration::from_secs(20), || async {
        let status = app.store().revocation_cache();
        status.trusted && status.loads > loads
    })
    .await;

    app.protected(&revoked_meanwhile.access).await.assert_token_error("token_revoked");
    let jti = claim(&live.access, "jti");
    dba.execute(hand_revocation(&jti, "2099-01-01T00:00:00Z").as_str()).await.expect("hand revocation");
    rejected_within(&app, &live.access, PROPAGATION_BOUND).await;
}

/// Every value the schema lets a DBA store is read without stopping the
/// follower: Postgres' `infinity` (revoked until deleted by hand) and years
/// past what chrono holds; on SQLite every form julianday() reads. Values no
/// token could match are refused at the door, and such a row that an older
/// database still holds is skipped and counted, not fatal.
async fn any_value_a_dba_may_store_leaves_the_follower_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = crate::metrics::scrape(&app).await;
    wait_until_trusted(&app).await;
    let forms: &[&str] = match backend {
        Backend::Postgres => &["infinity", "294276-12-31 00:00:00Z", "200000-06-01T00:00:00Z"],
        Backend::Sqlite => {
            &["2099-01-01", "2099-01-01 00:00", "2488069.5", "2099-01-01T00:00:00.123456+02:00"]
        }
    };
    let mut revoked = Vec::new();
    for (n, expires_at) in forms.iter().enumerate() {
        let tokens = if n == 0 { app.signup("alice").await } else { app.login_ok("alice").await };
        app.db.revoke_by_hand(claim(&tokens.access, "jti"), expires_at).await;
        revoked.push(tokens);
    }
    let refused_at_the_door: &[String] = match backend {
        Backend::Postgres => &[
            hand_revocation("00000000-0000-4000-8000-000000000009", "-infinity"),
            "UPDATE sessions SET expires_at = 'infinity'".to_owned(),
        ],
        Backend::Sqlite => &[
            hand_revocation("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "2099-01-01T00:00:00Z"),
            hand_revocation("00000000-0000-4000-8000-000000000009", "now"),
        ],
    };
    for sql in refused_at_the_door {
        assert!(app.db.try_execute(sql).await.is_err(), "accepted: {sql}");
    }
    if backend == Backend::Sqlite {
        // A row the door refuses now, as a database from before it holds it.
        app.db.execute("DROP TRIGGER revoked_tokens_refuse_bad_insert").await;
        app.db.execute(&refused_at_the_door[0]).await;
    }

    for tokens in &revoked {
        rejected_within(&app, &tokens.access, PROPAGATION_BOUND).await;
    }
    let status = app.store().revocation_cache();
    assert!(status.trusted && status.loads == 1, "the follower stayed live, no reload: {status:?}");
    let restarted = app.another_instance().await;
    wait_until_trusted(&restarted).await;
    for tokens in &revoked {
        restarted.protected(&tokens.access).await.assert_token_error("token_revoked");
    }
    assert_eq!(restarted.store().revocation_cache().entries, revoked.len(), "each revocation, once");
    if backend == Backend::Sqlite {
        let after = crate::metrics::scrape(&app).await;
        let skipped =
            |text: &str| crate::metrics::sample(text, "jwt_blocklist_revocation_rows_skipped_total", &[]);
        assert!(skipped(&after) >= skipped(&before) + 2.0, "the old row, skipped by both followers");
    }
}

/// A DBA's bulk revocation (here 50,000 rows in one statement; the bench
/// measures a million) is taken in by the polls as they run: memory stays
/// trusted throughout (never handing checks to the database), is never
/// reloaded, and holds every row within the bound.
async fn a_bulk_revocation_by_sql_is_taken_in_without_leaving_memory(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    wait_until_trusted(&app).await;
    let before = app.store().revocation_cache();
    let rows = 50_000;
    let sid = claim(&tokens.access, "sid");
    let sql = match backend {
        Backend::Postgres => format!(
            "INSERT INTO revoked_tokens (jti, expires_at)
             SELECT gen_random_uuid(), now() + interval '1 day' FROM generate_series(2, {rows})
             UNION ALL SELECT '{sid}', now() + interval '1 day'"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO revoked_tokens (jti, expires_at)
             SELECT printf('00000000-0000-4000-8000-%012d', i), '2099-01-01T00:00:00Z' FROM n
             UNION ALL SELECT '{sid}', '2099-01-01T00:00:00Z'"
        ),
    };
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (store, watching) = (app.store().clone(), watching.clone());
        tokio::spawn(async move {
            let mut untrusted = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                untrusted += usize::from(!store.revocation_cache().trusted);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            untrusted
        })
    };

    app.db.execute(&sql).await;
    rejected_within(&app, &tokens.access, PROPAGATION_BOUND).await;
    watching.store(false, std::sync::atomic::Ordering::Relaxed);

    assert_eq!(sampler.await.expect("the sampler"), 0, "memory answered throughout");
    let after = app.store().revocation_cache();
    assert_eq!(after.loads, before.loads, "no reload");
    assert_eq!(after.entries, before.entries + rows, "every row is in memory");
    assert!(after.trusted);
}

/// Events carry the state they left their row in (migration 11 on both
/// backends), so a poll needs no lookup; an event written before that, with
/// no state, still reaches memory: its row is looked up. Made here by
/// clearing the state of a fresh event in the transaction that wrote it.
async fn an_event_written_before_events_carried_state_is_looked_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    wait_until_trusted(&app).await;
    let sid = claim(&tokens.access, "sid");
    let expiry = match backend {
        Backend::Postgres => "now() + interval '1 day'",
        Backend::Sqlite => "'2099-01-01T00:00:00Z'",
    };

    app.db
        .execute(&format!(
            "BEGIN;
             INSERT INTO revoked_tokens (jti, expires_at) VALUES ('{sid}', {expiry});
             UPDATE revocation_events SET expires_at = NULL, reason = NULL WHERE jti = '{sid}';
             COMMIT;"
        ))
        .await;

    rejected_within(&app, &tokens.access, PROPAGATION_BOUND).await;
    assert!(app.store().revocation_cache().trusted, "refused from memory");
}

backend_tests!(
    an_event_written_before_events_carried_state_is_looked_up,
    a_bulk_revocation_by_sql_is_taken_in_without_leaving_memory,
    any_value_a_dba_may_store_leaves_the_follower_live,
    the_cache_is_loaded_from_the_database_at_start,
    a_live_row_deleted_by_hand_is_unrevoked_on_every_instance,
    expired_entries_leave_memory,
);
