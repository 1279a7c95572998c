//! Hostile tokens: every way a token can be wrong is a 401 with the right
//! code and an RFC 6750 challenge, never a 500 and never a 200.

use jsonwebtoken::Algorithm;
use rocket::http::Status;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{bearer, claims_of, forge, hs256, now, unsigned, Backend, TestApp};

async fn requests_without_a_bearer_token_are_missing_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    let no_header = app.send(app.client.get("/protected")).await;
    let empty = app.get_authorized("/protected", "Bearer ").await;
    let bare = app.get_authorized("/protected", "Bearer").await;
    let basic = app.get_authorized("/protected", "Basic YWxpY2U6cGFzc3dvcmQ=").await;
    let token_alone = app.get_authorized("/protected", &tokens.access).await;

    for response in [no_header, empty, bare, basic, token_alone] {
        response.assert_error(401, "missing_token");
        assert_eq!(response.www_authenticate.as_deref(), Some("Bearer realm=\"jwt-blocklist\""));
    }
}

/// Asserts that each `(what, token)` is refused on `/protected` as
/// `invalid_token`, with its RFC 6750 challenge.
async fn assert_all_invalid(app: &TestApp, cases: impl IntoIterator<Item = (String, String)>) {
    for (what, token) in cases {
        let response = app.protected(&token).await;
        assert_eq!(response.status, Status::Unauthorized, "{what}");
        assert_eq!(response.body["error"], "invalid_token", "{what}: {:?}", response.body);
        response.assert_token_error("invalid_token");
    }
}

/// Signs `claims` with the app's own key and the pinned algorithm.
fn signed(app: &TestApp, claims: &Value) -> String {
    forge(claims, &app.secret, Algorithm::HS256)
}

async fn tokens_signed_otherwise_are_invalid(backend: Backend) {
    let app = TestApp::spawn_with(backend, hs256).await;
    let tokens = app.signup("alice").await;
    let claims = claims_of(&tokens.access);
    let header_none = json!({ "alg": "none", "typ": "JWT" });
    let mut tampered_claims = claims.clone();
    tampered_claims["username"] = json!("mallory");
    let signature = tokens.access.rsplit('.').next().unwrap();
    let tampered =
        format!("{}{signature}", unsigned(&json!({"alg": "HS256", "typ": "JWT"}), &tampered_claims));

    let hostile = [
        ("alg none", unsigned(&header_none, &claims)),
        ("alg None", unsigned(&json!({ "alg": "None" }), &claims)),
        ("HS384 with the right key", forge(&claims, &app.secret, Algorithm::HS384)),
        ("HS512 with the right key", forge(&claims, &app.secret, Algorithm::HS512)),
        ("wrong key", forge(&claims, "another secret that is long enough, 32+", Algorithm::HS256)),
        ("tampered payload", tampered),
        ("no signature", tokens.access.rsplit_once('.').unwrap().0.to_owned() + "."),
        ("truncated", tokens.access[..tokens.access.len() / 2].to_owned()),
        ("garbage", "not-a-token".to_owned()),
        ("three garbage parts", "a.b.c".to_owned()),
        ("empty parts", "..".to_owned()),
    ];
    assert_all_invalid(&app, hostile.map(|(what, token)| (what.to_owned(), token))).await;
}

async fn tokens_missing_a_required_claim_are_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let claims = claims_of(&tokens.access);

    let hostile = ["iss", "sub", "iat", "exp", "jti", "sid", "type", "username"].map(|name| {
        let mut without = claims.clone();
        without.as_object_mut().unwrap().remove(name);
        (format!("without {name}"), signed(&app, &without))
    });
    assert_all_invalid(&app, hostile).await;
}

async fn tokens_with_wrong_claim_values_are_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let claims = claims_of(&tokens.access);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let with = |name: &str, value: Value| {
        let mut changed = claims.clone();
        changed[name] = value;
        changed
    };

    let hostile = [
        ("wrong issuer", with("iss", json!("someone-else"))),
        ("future nbf", with("nbf", json!(now() + 3600))),
        ("exp as a string", with("exp", json!((now() + 600).to_string()))),
        ("iat as a string", with("iat", json!(now().to_string()))),
        ("nbf as a string", with("nbf", json!(now().to_string()))),
        ("uppercase jti", with("jti", json!(jti.to_uppercase()))),
        ("simple-form jti", with("jti", json!(jti.replace('-', "")))),
        ("braced sid", with("sid", json!(format!("{{{}}}", claims["sid"].as_str().unwrap())))),
        ("sub not a uuid", with("sub", json!("alice"))),
        ("unknown type", with("type", json!("id"))),
        ("claims not an object", json!([1, 2, 3])),
    ];
    assert_all_invalid(&app, hostile.map(|(what, claims)| (what.to_owned(), signed(&app, &claims)))).await;
}

async fn expired_tokens_are_token_expired_but_only_when_correctly_signed(backend: Backend) {
    let app = TestApp::spawn_with(backend, hs256).await;
    let tokens = app.signup("alice").await;
    let mut expired = claims_of(&tokens.access);
    expired["iat"] = json!(now() - 3600);
    expired["exp"] = json!(now() - 1800);

    app.protected(&signed(&app, &expired)).await.assert_token_error("token_expired");
    let wrong_key = forge(&expired, "another secret that is long enough, 32+", Algorithm::HS256);
    app.protected(&wrong_key).await.assert_token_error("invalid_token");
}

async fn leeway_accepts_a_token_just_past_exp(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| hs256(f).merge(("leeway", 120))).await;
    let tokens = app.signup("alice").await;
    let mut claims = claims_of(&tokens.access);
    claims["exp"] = json!(now() - 30);
    let mut far = claims.clone();
    far["exp"] = json!(now() - 600);

    assert_eq!(app.protected(&signed(&app, &claims)).await.status, Status::Ok);
    app.protected(&signed(&app, &far)).await.assert_token_error("token_expired");
}

async fn token_types_are_not_interchangeable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;

    app.protected(&tokens.refresh).await.assert_token_error("invalid_token");
    app.post_authorized("/auth/logout", &bearer(&tokens.refresh)).await.assert_token_error("invalid_token");
    app.refresh(&tokens.access).await.assert_token_error("invalid_token");
    assert_eq!(app.protected(&tokens.access).await.status, Status::Ok, "the session is untouched");
    assert_eq!(app.refresh(&tokens.refresh).await.status, Status::Ok);
}

async fn a_token_of_a_deleted_user_cannot_read_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    app.db.execute("DELETE FROM users").await;

    app.caller(&tokens).me().await.assert_token_error("invalid_token");
    app.refresh(&tokens.refresh).await.assert_token_error("invalid_token");
    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, 0, "and nothing was written");
}

backend_tests!(
    requests_without_a_bearer_token_are_missing_token,
    tokens_signed_otherwise_are_invalid,
    tokens_missing_a_required_claim_are_invalid,
    tokens_with_wrong_claim_values_are_invalid,
    expired_tokens_are_token_expired_but_only_when_correctly_signed,
    leeway_accepts_a_token_just_past_exp,
    token_types_are_not_interchangeable,
    a_token_of_a_deleted_user_cannot_read_me,
);
