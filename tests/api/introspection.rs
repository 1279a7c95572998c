//! `POST /oauth/introspect` (RFC 7662) for registered resource servers:
//! client credentials first, strangers answered alike; `{"active": false}`
//! alone for anything this service would not accept now; every member
//! otherwise; revocations and removed clients followed on every instance
//! within the contract's bound.

use chrono::Utc;
use jwt_blocklist::auth::jwt::{NewToken, TokenType};
use jwt_blocklist::db::{SessionId, TokenId, UserId};
use rocket::http::{ContentType, Header, Status};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::basic;
use crate::helpers::{
    claim, claims_of, hs256, wait_until, wait_until_trusted, Backend, TestApp, TestResponse,
    PROPAGATION_BOUND,
};
use crate::keys::header_of;
use crate::metrics::{sample, scrape};

const ACTIVE: [(&str, &str); 1] = [("outcome", "active")];

/// `POST /oauth/introspect` with `authorization` (if any) and `form`.
pub async fn introspect(app: &TestApp, authorization: Option<&str>, form: &str) -> TestResponse {
    let mut request = app.client.post("/oauth/introspect").header(ContentType::Form).body(form);
    if let Some(authorization) = authorization {
        request = request.header(Header::new("Authorization", authorization.to_owned()));
    }
    app.send(request).await
}

/// The introspection of `token` by the client `basic`; asserts a 200.
async fn answer(app: &TestApp, basic: &str, token: &str) -> Value {
    let response = introspect(app, Some(basic), &format!("token={token}")).await;
    assert_eq!(response.status, Status::Ok, "{:?}", response.body);
    assert_eq!(response.header("Cache-Control"), Some("no-store"), "RFC 7662 §4");
    response.body
}

async fn strangers_get_one_answer_and_no_more(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = app.add_client("billing").await.basic;
    let tokens = app.signup("alice").await;
    let form = format!("token={}", tokens.access);
    let wrong_secret = basic("billing", "not-the-secret-but-long-enough-to-look-real");
    let unknown = basic("nobody", "not-the-secret-but-long-enough-to-look-real");
    let cases: [(&str, Option<&str>); 6] = [
        ("no credentials", None),
        ("an unknown client", Some(&unknown)),
        ("a wrong secret", Some(&wrong_secret)),
        ("a Bearer token instead", Some(&format!("Bearer {}", tokens.access))),
        ("Basic that is not base64", Some("Basic !!!")),
        ("Basic without a colon", Some("Basic YmlsbGluZw==")),
    ];

    let mut bodies = Vec::new();
    for (what, authorization) in cases {
        let response = introspect(&app, authorization, &form).await;
        response.assert_error(401, "invalid_client");
        assert_eq!(response.header("WWW-Authenticate"), Some(r#"Basic realm="jwt-blocklist""#), "{what}");
        bodies.push(response.body);
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "answered alike: {bodies:?}");
    introspect(&app, Some(&unknown), "").await.assert_error(401, "invalid_client");
    introspect(&app, Some(&good), "").await.assert_error(400, "invalid_request");
    assert_eq!(answer(&app, &good, &tokens.access).await["active"], true);
}

async fn an_active_token_gets_every_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.add_client("billing").await.basic;
    let tokens = app.signup("alice").await;

    let access = answer(&app, &client, &tokens.access).await;
    let refresh = answer(&app, &client, &tokens.refresh).await;

    let claims = claims_of(&tokens.access);
    assert_eq!(
        access,
        json!({
            "active": true, "token_type": "access_token", "iss": claims["iss"], "sub": claims["sub"],
            "username": "alice", "exp": claims["exp"], "iat": claims["iat"], "jti": claims["jti"],
            "sid": claims["sid"], "client_id": "billing",
        })
    );
    let claims = claims_of(&tokens.refresh);
    assert_eq!(
        refresh,
        json!({
            "active": true, "token_type": "refresh_token", "iss": claims["iss"], "sub": claims["sub"],
            "username": "alice", "exp": claims["exp"], "iat": claims["iat"], "jti": claims["jti"],
            "sid": claims["sid"], "client_id": "billing",
        })
    );
    let hinted = format!("token={}&token_type_hint=refresh_token", tokens.access);
    let active = || async { sample(&scrape(&app).await, "jwt_blocklist_introspections_total", &ACTIVE) };
    let before = active().await;
    assert_eq!(introspect(&app, Some(&client), &hinted).await.body, access, "a hint is only a hint");
    assert!(active().await >= before + 1.0, "counted (the recorder is shared: at least one more)");
}

/// A token this service signed, for alice's session, issued `age` seconds
/// ago and living `ttl` seconds.
fn issued(app: &TestApp, tokens: &crate::helpers::Tokens, age: i64, ttl: u64) -> String {
    let parse = |name| Uuid::parse_str(&claim(&tokens.access, name)).expect("a uuid");
    let token = NewToken {
        token_type: TokenType::Access,
        user_id: UserId(parse("sub")),
        username: Some("alice"),
        sid: SessionId(parse("sid")),
        jti: TokenId(Uuid::new_v4()),
        now: Utc::now() - chrono::Duration::seconds(age),
        ttl_seconds: ttl,
        csrf: None,
    };
    app.auth().jwt.issue(token).expect("signed").token
}

async fn anything_we_would_not_accept_now_is_inactive_and_nothing_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.add_client("billing").await.basic;
    let logged_out = app.signup("alice").await;
    let revoked_session = app.login_ok("alice").await;
    let used_up = app.login_ok("alice").await;
    let on_a_revoked_key = app.login_ok("alice").await;
    let live = app.login_ok("alice").await;
    let expired = issued(&app, &live, 3600, 60);
    let tampered = {
        let mut parts: Vec<String> = live.access.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    assert_eq!(app.caller(&logged_out).logout().await.status, Status::Ok);
    let sid = claim(&revoked_session.access, "sid");
    assert_eq!(app.caller(&live).revoke_session(&sid).await.status, Status::Ok);
    assert_eq!(app.refresh(&used_up.refresh).await.status, Status::Ok);
    let cases = [
        ("garbage", "not-a-token".to_owned()),
        ("a bad signature", tampered),
        ("expired", expired),
        ("a logged-out access token", logged_out.access),
        ("a logged-out session's refresh token", logged_out.refresh),
        ("a revoked session's access token", revoked_session.access),
        ("a used-up refresh token", used_up.refresh),
        ("an HS256 token forged with our secret", {
            let mut claims = claims_of(&live.access);
            claims["jti"] = json!(Uuid::new_v4());
            crate::helpers::forge(&claims, &app.secret, jsonwebtoken::Algorithm::HS256)
        }),
    ];
    for (what, token) in cases {
        assert_eq!(answer(&app, &client, &token).await, json!({ "active": false }), "{what}");
    }
    assert_eq!(answer(&app, &client, &on_a_revoked_key.access).await["active"], true);

    // Every token above was signed by the first key: revoke it last.
    let kid = header_of(&on_a_revoked_key.access)["kid"].as_str().unwrap().to_owned();
    app.revoke_key(&kid).await;

    assert_eq!(answer(&app, &client, &on_a_revoked_key.access).await, json!({ "active": false }));
    let fresh = app.login_ok("alice").await;
    assert_eq!(answer(&app, &client, &fresh.access).await["active"], true, "a new key's token is");
}

async fn introspection_follows_a_logout_on_another_instance_within_the_bound(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let client = a.add_client("billing").await.basic;
    let tokens = b.signup("alice").await;
    wait_until_trusted(&a).await;
    wait_until("a knows the client", PROPAGATION_BOUND, || async {
        introspect(&a, Some(&client), "token=x").await.status == Status::Ok
    })
    .await;
    assert_eq!(answer(&a, &client, &tokens.access).await["active"], true);

    assert_eq!(b.caller(&tokens).logout().await.status, Status::Ok);

    wait_until("a answers inactive", PROPAGATION_BOUND, || async {
        answer(&a, &client, &tokens.access).await == json!({ "active": false })
    })
    .await;
}

async fn a_removed_client_is_refused_by_every_instance_within_the_bound(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let client = a.add_client("billing").await.basic;
    let tokens = a.signup("alice").await;
    wait_until("b knows the client", PROPAGATION_BOUND, || async {
        introspect(&b, Some(&client), &format!("token={}", tokens.access)).await.status == Status::Ok
    })
    .await;

    assert!(a.store().remove_client("billing").await.expect("removed"));

    introspect(&a, Some(&client), "token=x").await.assert_error(401, "invalid_client");
    wait_until("b refuses the client", PROPAGATION_BOUND, || async {
        introspect(&b, Some(&client), "token=x").await.status == Status::Unauthorized
    })
    .await;
}

/// A deployment upgraded from HS256: introspection answers for the tokens
/// it issued before, until they expire, as `/protected` does (other
/// services cannot verify those themselves: introspection is their way).
async fn legacy_hs256_tokens_are_introspected_after_an_upgrade(backend: Backend) {
    let before = TestApp::spawn_with(backend, hs256).await;
    let tokens = before.signup("alice").await;
    let issued_at = claims_of(&tokens.access)["iat"].as_i64().unwrap();
    wait_until("the clock passes the tokens' second", std::time::Duration::from_secs(2), || async {
        Utc::now().timestamp() > issued_at
    })
    .await;
    let (db, secret) = (before.db.clone(), before.secret.clone());
    drop(before);
    let app = TestApp::start(db, secret, |f| f).await;
    let client = app.add_client("billing").await.basic;

    let access = answer(&app, &client, &tokens.access).await;

    assert_eq!(header_of(&tokens.access)["alg"], "HS256");
    assert_eq!((access["active"].clone(), access["username"].clone()), (json!(true), json!("alice")));
    assert_eq!(app.caller(&tokens).logout().await.status, Status::Ok);
    assert_eq!(answer(&app, &client, &tokens.access).await, json!({ "active": false }));
}

backend_tests!(
    strangers_get_one_answer_and_no_more,
    an_active_token_gets_every_member,
    anything_we_would_not_accept_now_is_inactive_and_nothing_else,
    introspection_follows_a_logout_on_another_instance_within_the_bound,
    a_removed_client_is_refused_by_every_instance_within_the_bound,
    legacy_hs256_tokens_are_introspected_after_an_upgrade,
);
