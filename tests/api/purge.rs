//! The purge removes only rows whose tokens can no longer be accepted, and
//! the fairing runs it on its timer.

use std::time::Duration;

use jwt_blocklist::purge::purge_expired;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDb};

async fn insert_revocation(db: &TestDb, jti: Uuid, seconds_from_now: i64) {
    let expires_at = (chrono::Utc::now() + chrono::Duration::seconds(seconds_from_now)).to_rfc3339();
    db.revoke_by_hand(jti, &expires_at).await;
}

async fn purge_removes_expired_rows_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let live = app.signup("alice").await;
    app.logout(&live.access).await; // its session's row must stay
    for _ in 0..7 {
        insert_revocation(&app.db, Uuid::new_v4(), -3600).await;
    }
    let future = Uuid::new_v4();
    insert_revocation(&app.db, future, 3600).await;

    let counts = purge_expired(app.store()).await.expect("purge").expect("not locked");

    assert_eq!(counts.revoked_tokens, 7);
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 2);
    app.protected(&live.access).await.assert_token_error("token_revoked");
    app.refresh(&live.refresh).await.assert_token_error("token_revoked");
    let again = purge_expired(app.store()).await.expect("purge").expect("not locked");
    assert_eq!(again.revoked_tokens, 0);
}

async fn purge_keeps_rows_within_the_configured_leeway(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| f.merge(("leeway", 60))).await;
    let within_leeway = Uuid::new_v4();
    insert_revocation(&app.db, within_leeway, -10).await;
    insert_revocation(&app.db, Uuid::new_v4(), -70).await;

    let counts = purge_expired(app.store()).await.expect("purge").expect("not locked");

    assert_eq!(counts.revoked_tokens, 1, "only the row past expiry plus leeway");
    let kept =
        app.db.count(&format!("SELECT count(*) FROM revoked_tokens WHERE jti = '{within_leeway}'")).await;
    assert_eq!(kept, 1, "still acceptable with leeway");
}

async fn purge_works_through_many_batches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rows = jwt_blocklist::purge::BATCH_SIZE * 2 + 17;
    let sql = match backend {
        Backend::Postgres => format!(
            "INSERT INTO revoked_tokens (jti, expires_at)
             SELECT gen_random_uuid(), now() - interval '1 hour' FROM generate_series(1, {rows})"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO revoked_tokens (jti, expires_at)
             SELECT printf('00000000-0000-4000-8000-%012d', i), '2000-01-01T00:00:00Z' FROM n"
        ),
    };
    app.db.execute(&sql).await;
    insert_revocation(&app.db, Uuid::new_v4(), 3600).await;

    let counts = purge_expired(app.store()).await.expect("purge").expect("not locked");

    assert_eq!(counts.revoked_tokens, rows as u64);
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 1);
}

async fn the_purge_fairing_runs_on_its_timer(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| f.merge(("purge_interval", 1))).await;
    insert_revocation(&app.db, Uuid::new_v4(), -3600).await;
    insert_revocation(&app.db, Uuid::new_v4(), 3600).await;

    crate::helpers::wait_until("the timer purges", Duration::from_secs(15), || async {
        app.db.count("SELECT count(*) FROM revoked_tokens").await == 1
    })
    .await;
}

backend_tests!(
    purge_removes_expired_rows_only,
    purge_keeps_rows_within_the_configured_leeway,
    purge_works_through_many_batches,
    the_purge_fairing_runs_on_its_timer,
    several_instances_purging_at_once_remove_each_row_once,
);

async fn several_instances_purging_at_once_remove_each_row_once(backend: Backend) {
    let a = &TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let c = a.another_instance().await;
    for _ in 0..25 {
        insert_revocation(&a.db, Uuid::new_v4(), -3600).await;
    }
    insert_revocation(&a.db, Uuid::new_v4(), 3600).await;

    let (ra, rb, rc) =
        tokio::join!(purge_expired(a.store()), purge_expired(b.store()), purge_expired(c.store()),);

    let removed: u64 = [ra, rb, rc]
        .into_iter()
        .map(|result| result.expect("no instance fails").map_or(0, |counts| counts.revoked_tokens))
        .sum();
    assert_eq!(removed, 25);
    assert_eq!(a.db.count("SELECT count(*) FROM revoked_tokens").await, 1, "the live row stays");
}

/// On Postgres the database's clock says what has expired, as for its
/// triggers: an instance whose clock runs an hour ahead purges nothing
/// that the others still accept, so it un-revokes nothing anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_clock_runs_ahead_purges_nothing_still_live() {
    let ahead = TestApp::spawn(Backend::Postgres).await;
    let other = ahead.another_instance().await;
    let tokens = other.signup("alice").await;
    let jti = crate::helpers::claim(&tokens.access, "jti");
    let in_ten_minutes = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    ahead.db.revoke_by_hand(&jti, &in_ten_minutes).await;
    crate::helpers::rejected_within(&other, &tokens.access, crate::helpers::PROPAGATION_BOUND).await;

    let clock_ahead = chrono::Utc::now() + chrono::Duration::hours(1);
    let counts = ahead.store().purge_expired(clock_ahead, 1_000).await.expect("purge").expect("not locked");

    assert_eq!(counts.revoked_tokens, 0, "nothing has expired by the database's clock");
    assert_eq!(ahead.db.count("SELECT count(*) FROM revoked_tokens").await, 1);
    other.protected(&tokens.access).await.assert_token_error("token_revoked");
}
