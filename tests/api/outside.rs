//! Clients nobody here wrote: PyJWT's `PyJWKClient` verifies our tokens
//! through the JWKS URL alone, and Authlib's `introspect_token` asks
//! `POST /oauth/introspect` (both from PyPI, pinned in
//! `tests/requirements.txt`, installed into `.venv` by `scripts/setup`).
//! The script is `tests/outside/resource_server.py`; it reports what it saw
//! and the assertions are here.

use std::path::Path;

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{test_figment, Backend, Server, TestApp};

/// Runs the Python resource server against `server` as client `billing`.
async fn python_resource_server(server: &Server, client_secret: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup", python.display());
    let output = tokio::process::Command::new(&python)
        .arg(root.join("tests/outside/resource_server.py"))
        .args([&server.url(), "billing", client_secret])
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the resource server failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

async fn outside_libraries_verify_and_introspect_our_tokens(backend: Backend) {
    for algorithm in ["ES256", "EdDSA"] {
        let app = TestApp::spawn_with(backend, |f| f.merge(("jwt_algorithm", algorithm))).await;
        let client_secret = app.add_client("billing").await.secret;
        let server = Server::start(
            test_figment(&app.db, &app.db.url(), &app.secret).merge(("jwt_algorithm", algorithm)),
        )
        .await;

        let seen = python_resource_server(&server, &client_secret).await;
        let url = server.url();
        server.stop().await;

        assert_eq!(seen["jwks_uri"], format!("{url}/.well-known/jwks.json"), "from the metadata");
        assert_eq!(seen["jwk_algorithm"], algorithm, "PyJWT read the algorithm from the JWK");
        assert_eq!(seen["claims"]["username"], "outside", "PyJWT verified and decoded: {seen}");
        assert_eq!(seen["typ"], "at+jwt");
        assert_eq!(seen["tampered"], "InvalidSignatureError");
        let introspection = &seen["introspection"];
        assert_eq!(introspection["active"], true, "{seen}");
        assert_eq!(introspection["client_id"], "billing");
        assert_eq!(introspection["jti"], seen["claims"]["jti"]);
        assert_eq!(seen["wrong_secret"]["status"], 401);
        assert_eq!(seen["wrong_secret"]["body"]["error"], "invalid_client");
        assert_eq!(seen["wrong_secret"]["www_authenticate"], r#"Basic realm="jwt-blocklist""#);
        assert_eq!(seen["logout_status"], 200);
        assert_eq!(seen["after_logout"], json!({ "active": false }));
        assert!(seen["after_logout_seconds"].as_f64().unwrap() < 1.0, "within the bound: {seen}");
    }
}

backend_tests!(outside_libraries_verify_and_introspect_our_tokens);
