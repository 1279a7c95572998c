//! The demo page, end to end in a real browser: the service listens on a
//! real port (0: the system picks), and `tests/browser/demo.mjs` drives the
//! page in Debian's headless Chromium through playwright-core: register, log
//! in, who am I, sessions and revoke, refresh, pages from other origins that
//! try to log the user out, log out everywhere (the other device's stale
//! session shows `token_revoked`) and log out. Chromium and the npm module are
//! installed by `scripts/setup`; when they are missing this test fails, it
//! does not skip. A screenshot of the page after login is saved under
//! `target/tmp/` for a person to look at.

use crate::backend_tests;
use crate::helpers::{random_secret, run_in_browser, test_figment, Backend, Server, TestDb};

async fn the_demo_page_works_in_a_real_browser(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = Server::start(test_figment(&db, &db.url(), &random_secret())).await;

    let (stdout, screenshot) =
        run_in_browser(server, "demo.mjs", &format!("demo-after-login-{backend:?}.png")).await;
    assert!(stdout.contains("ok - the other tab's stale session shows token_revoked"), "{stdout}");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 0),
        "a screenshot at {}",
        screenshot.display()
    );
    println!("{stdout}screenshot: {}", screenshot.display());
}

backend_tests!(the_demo_page_works_in_a_real_browser);
