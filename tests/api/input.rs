//! Hostile input: malformed bodies get the contract's 400/422/413 with a JSON
//! error, and change nothing.

use rocket::http::{ContentType, Status};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, PASSWORD};

async fn malformed_bodies_are_invalid_request_and_create_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let cases = [
        ("malformed JSON", ContentType::JSON, r#"{"username": "alice", "password": "#.to_owned()),
        ("array", ContentType::JSON, r#"["alice", "password123"]"#.to_owned()),
        ("string", ContentType::JSON, r#""alice""#.to_owned()),
        ("empty body", ContentType::JSON, String::new()),
        ("missing password", ContentType::JSON, r#"{"username": "alice"}"#.to_owned()),
        ("missing both", ContentType::JSON, "{}".to_owned()),
        ("form content type", ContentType::Form, "username=alice&password=password123".to_owned()),
        (
            "text content type",
            ContentType::Plain,
            json!({"username": "alice", "password": PASSWORD}).to_string(),
        ),
    ];
    for (what, content_type, body) in cases {
        for path in ["/auth/register", "/auth/login"] {
            let response = app.post_raw(path, content_type.clone(), body.clone()).await;
            assert_eq!(response.status, Status::BadRequest, "{what} on {path}: {:?}", response.body);
            response.assert_error(400, "invalid_request");
        }
    }
    app.post_raw("/auth/refresh", ContentType::JSON, "{}").await.assert_error(400, "invalid_request");
    app.post_raw("/auth/register", ContentType::new("application", "json"), "nope")
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 0);
}

async fn wrong_types_and_rule_breaking_values_are_invalid_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("taken", PASSWORD).await;

    let cases = [
        ("number username", json!({ "username": 42, "password": PASSWORD })),
        ("null password", json!({ "username": "alice", "password": null })),
        ("array password", json!({ "username": "alice", "password": ["x"] })),
        ("short username", json!({ "username": "al", "password": PASSWORD })),
        ("long username", json!({ "username": "a".repeat(33), "password": PASSWORD })),
        ("space in username", json!({ "username": "al ice", "password": PASSWORD })),
        ("unicode username", json!({ "username": "alicé", "password": PASSWORD })),
        ("quote in username", json!({ "username": "alice'--", "password": PASSWORD })),
        ("short password", json!({ "username": "alice", "password": "1234567" })),
        ("1025-byte password", json!({ "username": "alice", "password": "p".repeat(1025) })),
    ];
    for (what, body) in cases {
        let response = app.post_json("/auth/register", &body).await;
        assert_eq!(response.status, Status::UnprocessableEntity, "{what}: {:?}", response.body);
        response.assert_error(422, "invalid_input");
    }
    app.post_json("/auth/login", &json!({ "username": 42, "password": PASSWORD }))
        .await
        .assert_error(422, "invalid_input");
    app.post_json("/auth/refresh", &json!({ "refresh_token": 42 })).await.assert_error(422, "invalid_input");
    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 1);
}

async fn boundary_lengths_are_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    assert_eq!(app.register("abc", "12345678").await.status, Status::Created);
    let long = "p".repeat(1024);
    assert_eq!(app.register(&"z".repeat(32), &long).await.status, Status::Created);
    assert_eq!(app.login(&"z".repeat(32), &long).await.status, Status::Ok);
}

async fn usernames_are_unique_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.register("Alice", PASSWORD).await.status, Status::Created);

    app.register("Alice", PASSWORD).await.assert_error(409, "username_taken");
    app.register("alice", "another password").await.assert_error(409, "username_taken");
    app.register("ALICE", PASSWORD).await.assert_error(409, "username_taken");

    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 1);
}

async fn oversized_bodies_are_rejected_before_any_hashing(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let mib_password = json!({ "username": "alice", "password": "p".repeat(1 << 20) });
    app.post_json("/auth/register", &mib_password).await.assert_error(413, "payload_too_large");
    app.post_json("/auth/login", &mib_password).await.assert_error(413, "payload_too_large");
    let two_mib = vec![b' '; 2 << 20];
    app.post_raw("/auth/register", ContentType::JSON, two_mib).await.assert_error(413, "payload_too_large");

    assert_eq!(app.db.count("SELECT count(*) FROM users").await, 0);
}

async fn sql_looking_usernames_are_stored_as_plain_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Only [A-Za-z0-9_.-] is legal, so injection attempts are refused (422,
    // tested above); the legal characters that matter to SQL are stored verbatim.
    let name = "x.-_DROP_TABLE_users--";

    let response = app.register(name, PASSWORD).await;

    assert_eq!(response.status, Status::Created);
    assert_eq!(response.body["username"], name);
    assert_eq!(app.db.count("SELECT count(*) FROM users WHERE username = 'x.-_DROP_TABLE_users--'").await, 1);
    assert_eq!(app.login(name, PASSWORD).await.status, Status::Ok);
    let injected = app.login("x' OR '1'='1", PASSWORD).await;
    injected.assert_error(401, "invalid_credentials");
}

backend_tests!(
    malformed_bodies_are_invalid_request_and_create_nothing,
    wrong_types_and_rule_breaking_values_are_invalid_input,
    boundary_lengths_are_accepted,
    usernames_are_unique_case_insensitively,
    oversized_bodies_are_rejected_before_any_hashing,
    sql_looking_usernames_are_stored_as_plain_text,
);
