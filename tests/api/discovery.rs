//! What other services read to find and verify us: the JWKS (exact members
//! per algorithm, empty under HS256, cacheable for `jwks_max_age`) and the
//! RFC 8414 metadata, every URL built from `public_url`.

use std::collections::BTreeSet;

use rocket::http::Status;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{hs256, Backend, TestApp};

async fn get(app: &TestApp, path: &str) -> crate::helpers::TestResponse {
    let response = app.send(app.client.get(path)).await;
    assert_eq!(response.status, Status::Ok, "{path}: {:?}", response.body);
    response
}

fn members(value: &Value) -> BTreeSet<&str> {
    value.as_object().expect("an object").keys().map(String::as_str).collect()
}

async fn the_jwks_holds_public_keys_only_and_says_how_long_to_cache_it(backend: Backend) {
    for (algorithm, expected) in [
        ("ES256", json!({ "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig" })),
        ("EdDSA", json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig" })),
    ] {
        let app = TestApp::spawn_with(backend, |f| {
            f.merge(("jwt_algorithm", algorithm)).merge(("jwks_max_age", 120))
        })
        .await;

        let response = get(&app, "/.well-known/jwks.json").await;

        assert_eq!(response.header("Cache-Control"), Some("public, max-age=120"));
        let keys = response.body["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        let mut wanted: BTreeSet<&str> = ["kty", "crv", "x", "kid", "alg", "use"].into();
        if algorithm == "ES256" {
            wanted.insert("y");
        }
        assert_eq!(members(key), wanted, "{key}");
        for (name, value) in expected.as_object().unwrap() {
            assert_eq!(&key[name], value, "{name}");
        }
    }
}

async fn under_hs256_the_jwks_is_empty(backend: Backend) {
    let app = TestApp::spawn_with(backend, hs256).await;

    let response = get(&app, "/.well-known/jwks.json").await;

    assert_eq!(response.body, json!({ "keys": [] }), "never the symmetric secret");
    assert_eq!(response.header("Cache-Control"), Some("public, max-age=300"), "the default jwks_max_age");
}

async fn the_metadata_builds_every_url_from_public_url(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| {
        f.merge(("public_url", "https://auth.example.com/")).merge(("issuer", "https://auth.example.com"))
    })
    .await;

    let response = get(&app, "/.well-known/oauth-authorization-server").await;

    assert_eq!(
        response.body,
        json!({
            "issuer": "https://auth.example.com",
            "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
            "revocation_endpoint": "https://auth.example.com/auth/revoke",
            "introspection_endpoint": "https://auth.example.com/oauth/introspect",
            "revocation_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "response_types_supported": [],
            "revocation_feed_endpoint": "https://auth.example.com/revocations",
            "revocation_stream_endpoint": "https://auth.example.com/revocations/stream",
        })
    );
}

/// Without `public_url`, the URLs name the address and port the service
/// listens on, and the `issuer` stays the configured one (RFC 8414 wants
/// them equal: the README says to set both in production).
async fn without_public_url_the_metadata_names_the_listening_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| f.merge(("address", "127.0.0.1")).merge(("port", 8123))).await;

    let body = get(&app, "/.well-known/oauth-authorization-server").await.body;

    assert_eq!(body["jwks_uri"], "http://127.0.0.1:8123/.well-known/jwks.json");
    assert_eq!(body["issuer"], "jwt-blocklist", "the configured issuer, as tokens carry it");
}

backend_tests!(
    the_jwks_holds_public_keys_only_and_says_how_long_to_cache_it,
    under_hs256_the_jwks_is_empty,
    the_metadata_builds_every_url_from_public_url,
    without_public_url_the_metadata_names_the_listening_address,
);
