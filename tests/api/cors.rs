//! CORS for `cors_allowed_origins`: a listed origin gets its echo with
//! credentials, preflights get methods, headers and max-age, any other origin
//! gets no `Access-Control-*` header at all, and `*` is refused at start.

use rocket::http::{Header, Method, Status};

use crate::backend_tests;
use crate::helpers::{refused_fairings, test_figment, Backend, TestApp, TestDb, TestResponse};

const APP: &str = "https://app.example.com";

async fn with_origins(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |figment| {
        figment.merge(("cors_allowed_origins", [APP, "http://localhost:5173"]))
    })
    .await
}

async fn from(app: &TestApp, method: Method, path: &str, origin: &str, preflight: bool) -> TestResponse {
    let mut request =
        app.client.req(method, path.to_owned()).header(Header::new("Origin", origin.to_owned()));
    if preflight {
        request = request
            .header(Header::new("Access-Control-Request-Method", "POST"))
            .header(Header::new("Access-Control-Request-Headers", "content-type, x-csrf-token"));
    }
    app.send(request).await
}

#[track_caller]
fn assert_no_cors(response: &TestResponse) {
    let cors: Vec<_> = response
        .headers
        .iter()
        .filter(|(name, _)| name.to_ascii_lowercase().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "no Access-Control-* header: {cors:?}");
}

async fn a_listed_origin_gets_its_echo_with_credentials(backend: Backend) {
    let app = with_origins(backend).await;

    for (method, path) in
        [(Method::Get, "/health"), (Method::Get, "/protected"), (Method::Post, "/auth/login")]
    {
        let response = from(&app, method, path, APP, false).await;
        assert_eq!(response.header("Access-Control-Allow-Origin"), Some(APP), "{path}");
        assert_eq!(response.header("Access-Control-Allow-Credentials"), Some("true"), "{path}");
        let vary: Vec<_> = response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("Vary")).collect();
        assert!(vary.iter().any(|(_, v)| v.contains("Origin")), "{path}: {vary:?}");
    }
    let local = from(&app, Method::Get, "/health", "http://localhost:5173", false).await;
    assert_eq!(local.header("Access-Control-Allow-Origin"), Some("http://localhost:5173"));
}

async fn any_other_origin_gets_no_cors_header(backend: Backend) {
    let app = with_origins(backend).await;

    for origin in
        ["https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com", "null"]
    {
        assert_no_cors(&from(&app, Method::Get, "/health", origin, false).await);
        let preflight = from(&app, Method::Options, "/auth/logout", origin, true).await;
        assert_no_cors(&preflight);
    }
    // No origin configured at all: nothing for anyone.
    let closed = TestApp::spawn(backend).await;
    assert_no_cors(&from(&closed, Method::Get, "/health", APP, false).await);
    assert_no_cors(&from(&closed, Method::Options, "/auth/logout", APP, true).await);
}

async fn a_preflight_names_the_routes_methods_headers_and_max_age(backend: Backend) {
    let app = with_origins(backend).await;

    let logout = from(&app, Method::Options, "/auth/logout", APP, true).await;
    assert_eq!(logout.status, Status::NoContent);
    assert_eq!(logout.header("Access-Control-Allow-Origin"), Some(APP));
    assert_eq!(logout.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(logout.header("Access-Control-Allow-Methods"), Some("POST, OPTIONS"));
    let headers =
        logout.header("Access-Control-Allow-Headers").expect("allowed headers").to_ascii_lowercase();
    for needed in ["authorization", "content-type", "x-csrf-token"] {
        assert!(headers.contains(needed), "{headers}");
    }
    let max_age: u64 = logout.header("Access-Control-Max-Age").expect("max-age").parse().expect("seconds");
    assert!(max_age > 0);

    let session =
        from(&app, Method::Options, &format!("/auth/sessions/{}", uuid::Uuid::new_v4()), APP, true).await;
    assert_eq!(session.header("Access-Control-Allow-Methods"), Some("DELETE, OPTIONS"));
    let sessions = from(&app, Method::Options, "/auth/sessions", APP, true).await;
    assert_eq!(sessions.header("Access-Control-Allow-Methods"), Some("GET, HEAD, OPTIONS"));
    from(&app, Method::Options, "/no/such/route", APP, true).await.assert_error(404, "not_found");
}

async fn a_wildcard_or_a_malformed_origin_is_refused_at_start(backend: Backend) {
    let db = TestDb::create(backend).await;
    for bad in
        ["*", "https://app.example.com/", "app.example.com", "https://App.example.com", "ftp://x.example"]
    {
        let figment = test_figment(&db, &db.url(), &crate::helpers::random_secret())
            .merge(("cors_allowed_origins", [bad]));
        assert_eq!(refused_fairings(figment).await, ["Configuration"], "{bad}");
        let error = jwt_blocklist::config::AppConfig::from_figment(
            &rocket::figment::Figment::from(rocket::Config::default()).merge(("cors_allowed_origins", [bad])),
        )
        .expect_err(bad);
        assert!(error.to_string().contains("cors_allowed_origins"), "{error}");
    }
    for good in ["https://app.example.com", "http://localhost:5173", "http://[::1]:8080", "http://127.0.0.1"]
    {
        let config = jwt_blocklist::config::AppConfig::from_figment(
            &rocket::figment::Figment::from(rocket::Config::default())
                .merge(("cors_allowed_origins", [good])),
        );
        assert!(config.is_ok(), "{good}");
    }
}

backend_tests!(
    a_listed_origin_gets_its_echo_with_credentials,
    any_other_origin_gets_no_cors_header,
    a_preflight_names_the_routes_methods_headers_and_max_age,
    a_wildcard_or_a_malformed_origin_is_refused_at_start,
);
