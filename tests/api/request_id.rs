//! `X-Request-Id`: kept when a client sends a plain one, made otherwise, and
//! on every response, errors included.

use rocket::http::Header;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let kept = app.send(app.client.get("/health").header(Header::new("X-Request-Id", "client-req.42"))).await;
    assert_eq!(kept.header("X-Request-Id"), Some("client-req.42"));

    let made = app.send(app.client.get("/protected")).await;
    made.assert_error(401, "missing_token");
    let id = made.header("X-Request-Id").expect("an id on an error too");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let other = app.send(app.client.get("/health")).await;
    assert_ne!(other.header("X-Request-Id"), Some(id), "one per request");

    let forged =
        app.send(app.client.get("/health").header(Header::new("X-Request-Id", "a b\" level=error"))).await;
    let replaced = forged.header("X-Request-Id").expect("an id");
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "an unsafe id is replaced: {replaced}");
}

backend_tests!(every_response_carries_a_request_id);
