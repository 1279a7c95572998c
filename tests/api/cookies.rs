//! The cookie transport and its CSRF protection. Rocket's tracked local
//! client keeps cookies like a browser: what a response sets is sent with
//! the next requests, and what it clears is dropped.

use rocket::http::{ContentType, Cookie, Header, Status};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{bearer, claims_of, Backend, TestApp, TestResponse, PASSWORD};

/// Registers alice and logs her in with the cookie transport.
async fn cookie_login(app: &TestApp) -> TestResponse {
    app.register("alice", PASSWORD).await;
    let body = json!({ "username": "alice", "password": PASSWORD, "transport": "cookie" });
    let response = app.post_json("/auth/login", &body).await;
    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    response
}

fn csrf_of(response: &TestResponse) -> String {
    response.body["csrf_token"].as_str().expect("csrf_token").to_owned()
}

/// Asserts the cookie's attributes, `Secure` as `secure` says.
#[track_caller]
fn assert_cookie(
    response: &TestResponse,
    name: &str,
    path: &str,
    max_age: u64,
    http_only: bool,
    secure: bool,
) -> String {
    let (value, attributes) =
        response.set_cookie(name).unwrap_or_else(|| panic!("{name} set: {:?}", response.headers));
    let has = |attribute: &str| attributes.iter().any(|a| a.eq_ignore_ascii_case(attribute));
    assert!(has("SameSite=Strict"), "{name}: {attributes:?}");
    assert!(has(&format!("Path={path}")), "{name}: {attributes:?}");
    assert!(has(&format!("Max-Age={max_age}")), "{name}: {attributes:?}");
    assert_eq!(has("HttpOnly"), http_only, "{name} HttpOnly: {attributes:?}");
    assert_eq!(has("Secure"), secure, "{name} Secure: {attributes:?}");
    value
}

async fn post(app: &TestApp, path: &str, csrf: Option<&str>) -> TestResponse {
    let mut request = app.client.post(path.to_owned());
    if let Some(csrf) = csrf {
        request = request.header(Header::new("X-CSRF-Token", csrf.to_owned()));
    }
    app.send(request).await
}

async fn me(app: &TestApp) -> TestResponse {
    app.send(app.client.get("/auth/me")).await
}

async fn a_cookie_login_sets_the_three_cookies_with_the_contracts_attributes(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let response = cookie_login(&app).await;

    assert_eq!(response.body["token_type"], "cookie");
    assert_eq!(response.body["expires_in"], 900);
    assert_eq!(response.body["refresh_expires_in"], 2_592_000);
    assert!(response.body.get("access_token").is_none() && response.body.get("refresh_token").is_none());
    assert_eq!(response.cache_control.as_deref(), Some("no-store"));
    let csrf = csrf_of(&response);
    assert!(csrf.len() >= 22, "at least 128 bits: {csrf}");
    let access = assert_cookie(&response, "jbl_access", "/", 900, true, true);
    let refresh = assert_cookie(&response, "jbl_refresh", "/auth", 2_592_000, true, true);
    let readable = assert_cookie(&response, "jbl_csrf", "/", 2_592_000, false, true);
    assert_eq!(readable, csrf);
    // Both tokens carry a binding to the CSRF token, not the token itself.
    let (a, r) = (claims_of(&access), claims_of(&refresh));
    assert_eq!(a["type"], "access");
    assert_eq!(a["csrf"], r["csrf"]);
    let binding = a["csrf"].as_str().expect("csrf claim");
    assert!(!binding.is_empty() && binding != csrf, "{binding}");
    // GET needs no CSRF header; the cookie authenticates.
    let whoami = me(&app).await;
    assert_eq!(whoami.status, Status::Ok, "{:?}", whoami.body);
    assert_eq!(whoami.body["username"], "alice");
}

async fn cookie_secure_false_removes_secure(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| figment.merge(("cookie_secure", false))).await;
    let response = cookie_login(&app).await;
    assert_cookie(&response, "jbl_access", "/", 900, true, false);
    assert_cookie(&response, "jbl_refresh", "/auth", 2_592_000, true, false);
    assert_cookie(&response, "jbl_csrf", "/", 2_592_000, false, false);
}

async fn a_cookie_authenticated_change_needs_the_matching_csrf_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = cookie_login(&app).await;
    let csrf = csrf_of(&login);
    let sid = claims_of(&login.set_cookie("jbl_access").unwrap().0)["sid"].as_str().unwrap().to_owned();

    post(&app, "/auth/logout", None).await.assert_error(403, "csrf_failed");
    post(&app, "/auth/logout", Some("not-the-token")).await.assert_error(403, "csrf_failed");
    post(&app, "/auth/logout-all", Some("")).await.assert_error(403, "csrf_failed");
    let delete = app.send(app.client.delete(format!("/auth/sessions/{sid}"))).await;
    delete.assert_error(403, "csrf_failed");
    let password = app
        .send(
            app.client.post("/auth/password").header(ContentType::JSON).body(
                json!({ "current_password": PASSWORD, "new_password": "another password" }).to_string(),
            ),
        )
        .await;
    password.assert_error(403, "csrf_failed");
    assert_eq!(me(&app).await.status, Status::Ok, "none of them had an effect");
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 0);

    let logout = post(&app, "/auth/logout", Some(&csrf)).await;
    assert_eq!(logout.status, Status::Ok, "{:?}", logout.body);
    // The three cookies are cleared on their own paths.
    for (name, path) in [("jbl_access", "/"), ("jbl_refresh", "/auth"), ("jbl_csrf", "/")] {
        let (value, attributes) = logout.set_cookie(name).unwrap_or_else(|| panic!("{name} cleared"));
        assert!(value.is_empty(), "{name}={value}");
        assert!(attributes.iter().any(|a| a == "Max-Age=0"), "{name}: {attributes:?}");
        assert!(attributes.iter().any(|a| *a == format!("Path={path}")), "{name}: {attributes:?}");
    }
    me(&app).await.assert_error(401, "missing_token");
}

async fn bearer_requests_need_no_csrf_and_the_header_beats_the_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = cookie_login(&app).await;
    let cookie_access = login.set_cookie("jbl_access").unwrap().0;
    let bob = app.signup("bob").await;

    let whoami = app.caller(&bob).me().await;
    assert_eq!(whoami.body["username"], "bob", "the header wins over alice's cookie");
    let broken = app.get_authorized("/auth/me", "Bearer not.a.token").await;
    broken.assert_token_error("invalid_token");

    // A token sent as Bearer is not ambient: no CSRF header needed, even
    // the cookie session's own access token.
    let logout = app.post_authorized("/auth/logout", &bearer(&cookie_access)).await;
    assert_eq!(logout.status, Status::Ok, "{:?}", logout.body);
    assert!(logout.set_cookie("jbl_access").is_none(), "a Bearer logout leaves cookies alone");
    me(&app).await.assert_token_error("token_revoked");
    let bob_logout = app.caller(&bob).logout().await;
    assert_eq!(bob_logout.status, Status::Ok);
}

async fn refresh_by_cookie_rotates_and_reuse_is_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = cookie_login(&app).await;
    let old_refresh = login.set_cookie("jbl_refresh").unwrap().0;
    let csrf = csrf_of(&login);

    post(&app, "/auth/refresh", None).await.assert_error(403, "csrf_failed");
    let refreshed = post(&app, "/auth/refresh", Some(&csrf)).await;

    assert_eq!(refreshed.status, Status::Ok, "{:?}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "cookie");
    let new_csrf = csrf_of(&refreshed);
    assert_ne!(new_csrf, csrf, "a new CSRF token");
    assert_eq!(assert_cookie(&refreshed, "jbl_csrf", "/", 2_592_000, false, true), new_csrf);
    let new_refresh = assert_cookie(&refreshed, "jbl_refresh", "/auth", 2_592_000, true, true);
    assert_ne!(new_refresh, old_refresh);
    assert_cookie(&refreshed, "jbl_access", "/", 900, true, true);
    assert_eq!(me(&app).await.status, Status::Ok);
    // The old CSRF token no longer matches the new tokens' binding.
    post(&app, "/auth/logout", Some(&csrf)).await.assert_error(403, "csrf_failed");

    // The used-up refresh cookie, presented again: reuse, and the session ends.
    let reuse = app
        .send(
            app.client
                .post("/auth/refresh")
                .cookie(Cookie::new("jbl_refresh", old_refresh))
                .header(Header::new("X-CSRF-Token", csrf.clone())),
        )
        .await;
    reuse.assert_token_error("token_revoked");
    me(&app).await.assert_token_error("token_revoked");
}

async fn refresh_with_no_token_anywhere_is_400_and_an_unknown_transport_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("alice", PASSWORD).await;

    post(&app, "/auth/refresh", None).await.assert_error(400, "invalid_request");
    app.post_json("/auth/refresh", &json!({})).await.assert_error(400, "invalid_request");
    for transport in [json!("carrier-pigeon"), json!(1), Value::Null] {
        let body = json!({ "username": "alice", "password": PASSWORD, "transport": transport });
        app.post_json("/auth/login", &body).await.assert_error(422, "invalid_input");
    }
    let bearer = json!({ "username": "alice", "password": PASSWORD, "transport": "bearer" });
    let response = app.post_json("/auth/login", &bearer).await;
    assert_eq!(response.body["token_type"], "Bearer");
    assert!(response.set_cookie("jbl_access").is_none());
}

async fn logout_everywhere_by_cookie_clears_the_cookies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = cookie_login(&app).await;
    let other = app.login_ok("alice").await;

    let response = post(&app, "/auth/logout-all", Some(&csrf_of(&login))).await;

    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.body["revoked_sessions"], 2);
    assert!(response.set_cookie("jbl_access").is_some_and(|(value, _)| value.is_empty()));
    app.protected(&other.access).await.assert_token_error("token_revoked");
    me(&app).await.assert_error(401, "missing_token");
}

backend_tests!(
    a_cookie_login_sets_the_three_cookies_with_the_contracts_attributes,
    cookie_secure_false_removes_secure,
    a_cookie_authenticated_change_needs_the_matching_csrf_header,
    bearer_requests_need_no_csrf_and_the_header_beats_the_cookie,
    refresh_by_cookie_rotates_and_reuse_is_revoked,
    refresh_with_no_token_anywhere_is_400_and_an_unknown_transport_422,
    logout_everywhere_by_cookie_clears_the_cookies,
);
