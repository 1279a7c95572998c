//! Schemathesis (from PyPI, in `.venv`, installed by `scripts/setup`) checks
//! the OpenAPI document against a live instance: it generates valid and
//! invalid requests for every operation from the document alone and checks
//! each answer (no server error, a documented status, content type and
//! body, invalid data refused, valid data accepted, authentication not
//! ignored; see `tests/schemathesis/schemathesis.toml` for the one check
//! left out and why). Its Bearer tokens come from logging in as a user this
//! test registers, its client credentials (introspection) from a client it
//! registers. A bounded number of examples per operation, with a fixed
//! seed (`SCHEMATHESIS_SEED` picks another) so a failure can be replayed.

use std::path::Path;

use crate::backend_tests;
use crate::helpers::{Backend, Server, TestApp};

const USERNAME: &str = "schemathesis";
const PASSWORD: &str = "correct horse battery staple";

async fn the_service_answers_as_its_openapi_document_says(backend: Backend) {
    // Throttling is off here: schemathesis sends the configured username
    // with made-up passwords, and its own logins must keep working. (The
    // throttle has its own tests.)
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("login_max_failures", 0))).await;
    assert_eq!(app.register(USERNAME, PASSWORD).await.status.code, 201);
    let client_secret = app.add_client(USERNAME).await.secret;
    let figment =
        crate::helpers::test_figment(&app.db, &app.db.url(), &app.secret).merge(("login_max_failures", 0));
    let server = Server::start(figment).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = root.join(".venv/bin/st");
    assert!(st.exists(), "{} is missing: run scripts/setup", st.display());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{backend:?}"));
    let output = tokio::process::Command::new(&st)
        .current_dir(root.join("tests/schemathesis"))
        .env("JBL_USERNAME", USERNAME)
        .env("JBL_PASSWORD", PASSWORD)
        .env("JBL_CLIENT_ID", USERNAME)
        .env("JBL_CLIENT_SECRET", &client_secret)
        .args(["run", &format!("{}/openapi.json", server.url())])
        .args(["--max-examples", "40", "--seed", &seed, "--no-color"])
        .args(["--generation-database", "none", "--report", "junit"])
        .arg("--report-dir")
        .arg(&report)
        .output()
        .await
        .expect("schemathesis runs");
    server.stop().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis found failures:\n{stdout}\n{stderr}");
    assert!(stdout.contains("21 selected / 21 total"), "every operation was tested:\n{stdout}");
    assert!(stdout.contains("Tested: 21"), "every operation was tested:\n{stdout}");
    println!("{stdout}");
}

backend_tests!(the_service_answers_as_its_openapi_document_says);
