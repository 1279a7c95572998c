//! The OpenAPI document (`GET /openapi.json`) against the application that
//! serves it: every mounted route is documented and every documented
//! operation is mounted; it is OpenAPI 3.1 with both security schemes and an
//! error body on every error answer; `/docs` renders it in a real browser
//! from this origin alone. Schemathesis checks it against the running
//! service in `schemathesis.rs`.

use std::collections::BTreeSet;

use rocket::http::{ContentType, Method};
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{random_secret, run_in_browser, test_figment, Backend, Server, TestApp, TestDb};

/// Mounted but deliberately not documented: the CORS preflight answers
/// `OPTIONS` on every path (`cors.rs`), which OpenAPI cannot name as one
/// operation.
const UNDOCUMENTED: &[(&str, &str)] = &[("OPTIONS", "/{_}")];

async fn document(app: &TestApp) -> Value {
    let response = app.send(app.client.get("/openapi.json")).await;
    assert_eq!(response.status.code, 200);
    response.body
}

/// `/auth/sessions/<id>` → `/auth/sessions/{id}`, `/docs/<file..>` →
/// `/docs/{file}` (the query, `?<scope>`, is not part of the path).
fn openapi_path(rocket_path: &str) -> String {
    rocket_path
        .split('/')
        .map(|segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(name) => format!("{{{}}}", name.trim_end_matches("..")),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_mounted_route_is_documented_and_every_documented_operation_is_mounted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let document = document(&app).await;

    let mounted: BTreeSet<(String, String)> = app
        .client
        .rocket()
        .routes()
        .map(|route| (route.method.as_str().to_owned(), openapi_path(route.uri.path())))
        .filter(|(method, path)| !UNDOCUMENTED.contains(&(method.as_str(), path.as_str())))
        .collect();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();

    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(undocumented.is_empty(), "mounted but not in the document: {undocumented:?}");
    assert!(unmounted.is_empty(), "in the document but not mounted: {unmounted:?}");
    assert!(mounted.len() >= 16, "the whole API is mounted: {mounted:?}");
    let options = app.client.rocket().routes().filter(|route| route.method == Method::Options).count();
    assert_eq!(options, UNDOCUMENTED.len(), "the only OPTIONS route is the CORS preflight");
}

/// The contract's error table: the codes each status carries (v3: a
/// client-authenticated route's 401 is `invalid_client` alone).
fn contract_codes(path: &str, status: &str) -> Value {
    let codes: &[&str] = match status {
        "400" => &["invalid_request"],
        "401" if path.starts_with("/oauth/") || path.starts_with("/revocations") => &["invalid_client"],
        "401" => &["missing_token", "invalid_token", "token_expired", "token_revoked", "invalid_credentials"],
        "403" => &["invalid_credentials", "csrf_failed"],
        "404" => &["not_found"],
        "409" => &["username_taken"],
        "413" => &["payload_too_large"],
        "422" => &["invalid_input"],
        "429" => &["too_many_requests"],
        "503" => &["service_unavailable"],
        other => panic!("no error row for {other}"),
    };
    serde_json::json!(codes)
}

async fn the_document_is_openapi_3_1_with_both_security_schemes_and_error_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let document = document(&app).await;

    assert_eq!(document["openapi"], "3.1.0");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["type"], "apiKey");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert_eq!(schemes["cookie"]["name"], "jbl_access");
    assert_eq!(schemes["csrf"]["in"], "header");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    let codes = document["components"]["schemas"]["ErrorCode"]["enum"].as_array().expect("error codes");
    assert_eq!(codes.len(), 15, "every code of the contract's error table (v3: invalid_client): {codes:?}");

    // A Bearer route offers both schemes, the cookie with the CSRF header
    // where the method is unsafe.
    let logout = &document["paths"]["/auth/logout"]["post"];
    assert_eq!(logout["security"], serde_json::json!([{ "bearer": [] }, { "cookie": [], "csrf": [] }]));
    let me = &document["paths"]["/auth/me"]["get"];
    assert_eq!(me["security"], serde_json::json!([{ "bearer": [] }, { "cookie": [] }]));

    // Every error answer of every operation is the error body with `error`
    // narrowed to the contract's codes for its status (the health check's
    // 503 is its own `{"status": "unavailable"}`), and every JSON request
    // body is a named schema.
    let responses = &document["components"]["responses"];
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let at = format!("{method} {path}");
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('2') || (path == "/health" && status == "503") {
                    continue;
                }
                let name = response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/"));
                let name = name.unwrap_or_else(|| panic!("{at} {status} is a shared error response"));
                let schema = &responses[name]["content"]["application/json"]["schema"];
                assert_eq!(schema["allOf"][0]["$ref"], "#/components/schemas/ErrorBody", "{at} {status}");
                let codes = &schema["allOf"][1]["properties"]["error"]["enum"];
                assert_eq!(
                    codes,
                    &contract_codes(path, status),
                    "{at} {status}: the contract's codes for it"
                );
            }
            if let Some(body) = operation.get("requestBody") {
                let content = body["content"].as_object().expect("content");
                for (media, content) in content {
                    assert!(content["schema"]["$ref"].is_string(), "{at} {media} body has a named schema");
                }
            }
        }
    }
    let limited = &responses["TooManyRequests"]["headers"]["Retry-After"];
    assert!(limited.is_object(), "429 documents Retry-After");
    assert!(responses["Unauthorized"]["headers"]["WWW-Authenticate"].is_object());
}

async fn the_docs_page_and_its_files_come_from_the_binary(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app.send(app.client.get("/docs")).await;
    assert_eq!(page.status.code, 200);
    assert_eq!(page.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = page.body.as_str().expect("a page").to_owned();
    assert!(html.contains("<base href=\"/docs/\">"), "relative links resolve under /docs/: {html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "no link leaves the origin: {html}");
    for file in ["swagger-ui.css", "index.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        assert!(html.contains(file), "the page links {file}");
        let answer = app.send(app.client.get(format!("/docs/{file}"))).await;
        assert_eq!(answer.status.code, 200, "/docs/{file}");
    }
    let initializer = app.send(app.client.get("/docs/swagger-initializer.js")).await;
    let initializer = initializer.body.as_str().expect("a script").to_owned();
    assert!(initializer.contains("\"/openapi.json\""), "the UI loads our document: {initializer}");
    let missing = app.send(app.client.get("/docs/no-such-file.js")).await;
    missing.assert_error(404, "not_found");
    let odd = app.send(app.client.get("/docs/%04%2AI%0E_%3A")).await;
    odd.assert_error(404, "not_found");
    let json = app.send(app.client.get("/openapi.json").header(ContentType::JSON)).await;
    assert_eq!(json.header("Content-Type"), Some("application/json"));
    assert_eq!(json.body["info"]["title"], "jwt-blocklist");
}

async fn the_docs_page_renders_every_operation_in_a_real_browser(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = Server::start(test_figment(&db, &db.url(), &random_secret())).await;
    let (stdout, screenshot) = run_in_browser(server, "docs.mjs", &format!("docs-{backend:?}.png")).await;
    assert!(stdout.contains("ok - nothing is fetched from elsewhere"), "{stdout}");
    println!("{stdout}screenshot: {}", screenshot.display());
}

backend_tests!(
    every_mounted_route_is_documented_and_every_documented_operation_is_mounted,
    the_document_is_openapi_3_1_with_both_security_schemes_and_error_bodies,
    the_docs_page_and_its_files_come_from_the_binary,
    the_docs_page_renders_every_operation_in_a_real_browser,
);
