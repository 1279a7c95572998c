//! `GET /metrics` after traffic: every family the contract lists, with its
//! labels. The recorder is process-wide (tests share it), so counts are read
//! before and after and compared, never assumed to start at zero.

use rocket::http::Status;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, PASSWORD};

/// The value of the first sample of `family` whose labels include every
/// `label="value"` pair given (0 when there is none yet).
pub(crate) fn sample(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(&format!("{family}{{")) || line.starts_with(&format!("{family} ")))
        .filter(|line| labels.iter().all(|(name, value)| line.contains(&format!("{name}=\"{value}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .next()
        .unwrap_or(0.0)
}

pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = app.client.get("/metrics").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let content_type = response.content_type().expect("content type").to_string();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    response.into_string().await.expect("text")
}

async fn metrics_count_requests_checks_logins_and_purges(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("login_max_failures", 1))).await;
    app.auth().throttle.tarpit.set_length(std::time::Duration::ZERO);
    crate::helpers::wait_until_trusted(&app).await;
    let before = scrape(&app).await;

    let tokens = app.signup("alice").await;
    assert_eq!(app.protected(&tokens.access).await.status, Status::Ok);
    app.logout(&tokens.access).await;
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
    app.login("alice", "wrong password").await.assert_error(401, "invalid_credentials");
    app.login("alice", PASSWORD).await.assert_error(429, "too_many_requests");
    jwt_blocklist::purge::purge_expired(app.store()).await.expect("a purge");
    let after = scrape(&app).await;

    let grew = |family: &str, labels: &[(&str, &str)]| {
        let (was, is) = (sample(&before, family, labels), sample(&after, family, labels));
        assert!(is > was, "{family}{labels:?}: {was} -> {is}\n{after}");
    };
    grew(
        "jwt_blocklist_http_requests_total",
        &[("method", "GET"), ("route", "/protected"), ("status", "200")],
    );
    grew("jwt_blocklist_http_requests_total", &[("route", "/protected"), ("status", "401")]);
    grew(
        "jwt_blocklist_http_requests_total",
        &[("method", "POST"), ("route", "/auth/login"), ("status", "429")],
    );
    grew("jwt_blocklist_http_request_duration_seconds_count", &[("route", "/protected")]);
    assert!(after.contains("jwt_blocklist_http_request_duration_seconds_bucket{"), "a histogram");
    grew("jwt_blocklist_revocation_checks_total", &[("outcome", "memory")]);
    grew("jwt_blocklist_revocation_checks_total", &[("outcome", "revoked")]);
    grew("jwt_blocklist_logins_total", &[("outcome", "success")]);
    grew("jwt_blocklist_logins_total", &[("outcome", "failure")]);
    grew("jwt_blocklist_logins_total", &[("outcome", "throttled")]);
    grew("jwt_blocklist_purge_runs_total", &[("result", "ok")]);
    for family in [
        "jwt_blocklist_revocation_memory_entries",
        "jwt_blocklist_revocation_follower_trusted",
        "jwt_blocklist_revocation_follower_staleness_seconds",
        "jwt_blocklist_purge_rows_removed_total{table=\"revoked_tokens\"}",
        "jwt_blocklist_purge_rows_removed_total{table=\"sessions\"}",
    ] {
        assert!(after.lines().any(|line| line.starts_with(family)), "{family} in\n{after}");
    }
    // Unmatched paths share one label value: clients cannot mint new series.
    app.client.get("/no/such/path/12345").dispatch().await;
    let unmatched = scrape(&app).await;
    assert!(!unmatched.contains("12345"));
    assert!(
        sample(&unmatched, "jwt_blocklist_http_requests_total", &[("route", "unmatched"), ("status", "404")])
            > 0.0
    );
}

/// Shed logins and database errors, which need a full queue and an outage.
async fn metrics_count_shed_logins_and_database_errors(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("hash_queue", 1))).await;
    app.register("alice", PASSWORD).await;
    let before = scrape(&app).await;
    let held = app.auth().passwords.ticket(None).expect("the one place");
    app.login("alice", PASSWORD).await.assert_error(503, "service_unavailable");
    drop(held);
    app.store().close().await;
    app.login("alice", PASSWORD).await.assert_error(503, "service_unavailable");
    let after = scrape(&app).await;

    let shed = ("outcome", "shed");
    assert!(
        sample(&after, "jwt_blocklist_logins_total", &[shed])
            > sample(&before, "jwt_blocklist_logins_total", &[shed])
    );
    let unavailable = ("kind", "unavailable");
    assert!(
        sample(&after, "jwt_blocklist_database_errors_total", &[unavailable])
            > sample(&before, "jwt_blocklist_database_errors_total", &[unavailable]),
        "{after}"
    );
}

/// The signing keys by state, counted at the scrape by the scraped
/// instance (exact: this family is rendered per scrape, not shared by the
/// process's applications).
async fn metrics_count_the_signing_keys_by_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let keys = |text: &str, state| sample(text, "jwt_blocklist_signing_keys", &[("state", state)]);
    let first = scrape(&app).await;
    assert_eq!((keys(&first, "active"), keys(&first, "next")), (1.0, 0.0), "{first}");

    let next = match app.rotate_key().await {
        jwt_blocklist::db::Rotated::Next { kid, .. } => kid,
        other => panic!("{other:?}"),
    };
    let rotated = scrape(&app).await;
    app.revoke_key(&next).await;
    let revoked = scrape(&app).await;

    assert_eq!((keys(&rotated, "active"), keys(&rotated, "next")), (1.0, 1.0), "{rotated}");
    assert_eq!(
        (keys(&revoked, "active"), keys(&revoked, "next"), keys(&revoked, "revoked")),
        (1.0, 0.0, 1.0)
    );
    assert_eq!(keys(&revoked, "retired"), 0.0);
}

backend_tests!(
    metrics_count_the_signing_keys_by_state,
    metrics_count_requests_checks_logins_and_purges,
    metrics_count_shed_logins_and_database_errors
);
