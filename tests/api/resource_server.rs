//! The verifier library against the running service: the example resource
//! server (`jwt_blocklist_verifier::rocket::resource_server`, what
//! `verifier/examples/resource_server.rs` runs) answers `GET /protected`
//! as the service does; a logout is refused there within a second; with
//! the service stopped or its feed frozen it refuses every token (503)
//! within about a second of its last heartbeat and recovers by itself; key
//! rotation and revocation are followed without a restart; a removed
//! client stops being current. The service is reached through a TCP proxy
//! (its `public_url`), which cuts or freezes it.

use std::time::{Duration, Instant};

use jwt_blocklist::auth::jwt::{NewToken, TokenType};
use jwt_blocklist_verifier::{Config, Verifier};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    bearer, claims_of, forge, test_figment, wait_until, Backend, Server, TcpProxy, TestApp, TestResponse,
    Tokens, PROPAGATION_BOUND,
};
use crate::keys::header_of;

/// The service (behind a proxy) and a resource server following it.
struct Fleet {
    app: TestApp,
    proxy: TcpProxy,
    server: Server,
    verifier: Verifier,
    rs: Client,
}

/// A port free now (the service is started on it behind the proxy, whose
/// address is its `public_url`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("its address").port()
}

async fn fleet(
    backend: Backend,
    tweak: impl Fn(rocket::figment::Figment) -> rocket::figment::Figment,
) -> Fleet {
    let app = TestApp::spawn_with(backend, &tweak).await;
    let secret = app.add_client("billing").await.secret;
    let port = free_port();
    let proxy = TcpProxy::start(format!("127.0.0.1:{port}")).await;
    let public_url = format!("http://127.0.0.1:{}", proxy.port);
    let figment =
        tweak(test_figment(&app.db, &app.db.url(), &app.secret)).merge(("public_url", public_url.clone()));
    let server = Server::start_on(figment, port).await;
    let verifier =
        Verifier::start(Config::new(public_url, "billing", secret)).await.expect("the verifier starts");
    assert!(verifier.wait_until_current(Duration::from_secs(5)).await, "current: {:?}", verifier.status());
    let rs = Client::tracked(jwt_blocklist_verifier::rocket::resource_server(verifier.clone()))
        .await
        .expect("the RS");
    Fleet { app, proxy, server, verifier, rs }
}

/// `GET /protected` at the resource server with `authorization`.
async fn rs_protected(fleet: &Fleet, authorization: Option<&str>) -> TestResponse {
    let mut request = fleet.rs.get("/protected");
    if let Some(authorization) = authorization {
        request = request.header(Header::new("Authorization", authorization.to_owned()));
    }
    TestResponse::read(request.dispatch().await).await
}

async fn service_protected(fleet: &Fleet, authorization: Option<&str>) -> TestResponse {
    let mut request = fleet.app.client.get("/protected");
    if let Some(authorization) = authorization {
        request = request.header(Header::new("Authorization", authorization.to_owned()));
    }
    fleet.app.send(request).await
}

/// The status of `GET /protected` at the resource server with `tokens`.
async fn status_at_rs(fleet: &Fleet, tokens: &Tokens) -> Status {
    rs_protected(fleet, Some(&bearer(&tokens.access))).await.status
}

/// The parts of an answer a client sees: status, body, challenge.
fn seen(response: &TestResponse) -> (u16, Value, Option<String>) {
    (response.status.code, response.body.clone(), response.header("WWW-Authenticate").map(str::to_owned))
}

async fn answers_as_the_service_does(backend: Backend) {
    let fleet = fleet(backend, |f| f).await;
    let tokens = fleet.app.signup("alice").await;
    let revoked = fleet.app.login_ok("alice").await;
    assert_eq!(fleet.app.caller(&revoked).logout().await.status, Status::Ok);
    let claims = claims_of(&tokens.access);
    let expired = {
        let parse = |name: &str| uuid::Uuid::parse_str(claims[name].as_str().unwrap()).unwrap();
        let token = NewToken {
            token_type: TokenType::Access,
            user_id: jwt_blocklist::db::UserId(parse("sub")),
            username: Some("alice"),
            sid: jwt_blocklist::db::SessionId(parse("sid")),
            jti: jwt_blocklist::db::TokenId(uuid::Uuid::new_v4()),
            now: chrono::Utc::now() - chrono::Duration::hours(2),
            ttl_seconds: 60,
            csrf: None,
        };
        fleet.app.auth().jwt.issue(token).expect("signed").token
    };
    let hs256 = {
        let mut minted = claims.clone();
        minted["iat"] = json!(crate::helpers::now());
        forge(&minted, &fleet.app.secret, jsonwebtoken::Algorithm::HS256)
    };
    let cases = [
        ("a good token", Some(bearer(&tokens.access))),
        ("no header", None),
        ("another scheme", Some(format!("Basic {}", tokens.access))),
        ("garbage", Some(bearer("not.a.token"))),
        ("a refresh token", Some(bearer(&tokens.refresh))),
        ("an expired token", Some(bearer(&expired))),
        ("HS256 with the service's secret", Some(bearer(&hs256))),
        ("a logged-out token", Some(bearer(&revoked.access))),
    ];

    for (what, authorization) in cases {
        let service = service_protected(&fleet, authorization.as_deref()).await;
        let rs = wait_for_same(&fleet, authorization.as_deref(), &service).await;
        assert_eq!(seen(&rs), seen(&service), "{what}");
    }
}

/// The resource server's answer, once it matches `expected` (a revocation
/// takes up to the bound to arrive), or its last one.
async fn wait_for_same(fleet: &Fleet, authorization: Option<&str>, expected: &TestResponse) -> TestResponse {
    let started = Instant::now();
    loop {
        let rs = rs_protected(fleet, authorization).await;
        if seen(&rs) == seen(expected) || started.elapsed() > PROPAGATION_BOUND {
            return rs;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_logout_is_refused_there_within_a_second(backend: Backend) {
    let fleet = fleet(backend, |f| f).await;
    let tokens: Tokens = fleet.app.signup("alice").await;
    let authorization = bearer(&tokens.access);
    assert_eq!(rs_protected(&fleet, Some(&authorization)).await.status, Status::Ok);

    let logged_out = Instant::now();
    assert_eq!(fleet.app.caller(&tokens).logout().await.status, Status::Ok);

    wait_until("the resource server refuses the token", PROPAGATION_BOUND, || async {
        rs_protected(&fleet, Some(&authorization)).await.status == Status::Unauthorized
    })
    .await;
    let refused = rs_protected(&fleet, Some(&authorization)).await;
    refused.assert_token_error("token_revoked");
    println!("refused {:?} after the logout", logged_out.elapsed());
}

/// Stopped (cut) or frozen, the service cannot vouch for anything: the
/// resource server refuses every token within about a second of its last
/// heartbeat, and recovers by itself when the service is back.
async fn an_outage_means_503_within_a_second_then_recovery(backend: Backend) {
    let fleet = fleet(backend, |f| f).await;
    let tokens = fleet.app.signup("alice").await;
    let authorization = bearer(&tokens.access);
    let ok = || async { rs_protected(&fleet, Some(&authorization)).await.status };
    assert_eq!(ok().await, Status::Ok);

    for (outage, undo) in [("cut", "restore"), ("freeze", "thaw")] {
        match outage {
            "cut" => fleet.proxy.cut(),
            _ => fleet.proxy.freeze(),
        }
        let began = Instant::now();
        // One second of staleness, and the heartbeat interval before it.
        let bound = Duration::from_millis(1_300);
        wait_until(&format!("503 once the service is {outage}"), bound, || async {
            ok().await == Status::ServiceUnavailable
        })
        .await;
        let refused = rs_protected(&fleet, Some(&authorization)).await;
        refused.assert_error(503, "service_unavailable");
        assert_eq!(fleet.rs.get("/health").dispatch().await.status(), Status::ServiceUnavailable);
        println!("{outage}: refusing after {:?}", began.elapsed());

        match undo {
            "restore" => fleet.proxy.restore(),
            _ => fleet.proxy.thaw(),
        }
        // Reconnecting backs off to at most 2 s between attempts.
        wait_until(&format!("recovered after {undo}"), Duration::from_secs(6), || async {
            ok().await == Status::Ok
        })
        .await;
    }
    drop(fleet.server);
}

/// A revocation made while the resource server was cut off reaches it when
/// it resumes from its cursor; one whose events the log no longer has
/// reaches it through `reset` and a new snapshot.
async fn resuming_sees_what_happened_meanwhile_and_a_reset_resnapshots(backend: Backend) {
    let fleet = fleet(backend, |f| f).await;
    let (first, second) = (fleet.app.signup("alice").await, fleet.app.login_ok("alice").await);
    assert_eq!(status_at_rs(&fleet, &first).await, Status::Ok);

    fleet.proxy.cut();
    assert_eq!(fleet.app.caller(&first).logout().await.status, Status::Ok);
    fleet.proxy.restore();
    wait_until("resumed: the logout made meanwhile is in force", Duration::from_secs(6), || async {
        status_at_rs(&fleet, &first).await == Status::Unauthorized
    })
    .await;
    assert_eq!(status_at_rs(&fleet, &second).await, Status::Ok);

    assert_eq!(fleet.verifier.status().snapshots, 1, "resuming took no snapshot");
    fleet.proxy.cut();
    assert_eq!(fleet.app.caller(&second).logout().await.status, Status::Ok);
    // As the purge prunes events older than ten minutes: the cursor the
    // resource server holds is no longer covered.
    match backend {
        Backend::Postgres => {
            fleet.app.db.execute("UPDATE revocation_events_pruned SET through = pg_current_xact_id()").await
        }
        Backend::Sqlite => fleet.app.db.execute("DELETE FROM revocation_events").await,
    }
    fleet.proxy.restore();
    wait_until("reset, a new snapshot: the second logout is in force", Duration::from_secs(8), || async {
        status_at_rs(&fleet, &second).await == Status::Unauthorized
    })
    .await;
    assert_eq!(fleet.verifier.status().snapshots, 2, "reset: a new snapshot");
    rs_protected(&fleet, Some(&bearer(&second.access))).await.assert_token_error("token_revoked");
}

async fn key_rotation_and_revocation_are_followed_without_restart(backend: Backend) {
    let fleet = fleet(backend, |f| f.merge(("jwks_max_age", 1))).await;
    let before = fleet.app.signup("alice").await;
    let first_kid = header_of(&before.access)["kid"].as_str().unwrap().to_owned();

    fleet.app.rotate_key().await;
    // The new key signs jwks_max_age (1 s) later.
    let mut after = fleet.app.login_ok("alice").await;
    let rotated_at = Instant::now();
    while header_of(&after.access)["kid"] == json!(first_kid) {
        assert!(rotated_at.elapsed() < Duration::from_secs(3), "the new key signs");
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = fleet.app.login_ok("alice").await;
    }

    assert_eq!(
        rs_protected(&fleet, Some(&bearer(&after.access))).await.status,
        Status::Ok,
        "the new key's token"
    );
    assert_eq!(rs_protected(&fleet, Some(&bearer(&before.access))).await.status, Status::Ok, "the old key's");

    fleet.app.revoke_key(&first_kid).await;

    wait_until("the old key's tokens are refused", PROPAGATION_BOUND, || async {
        rs_protected(&fleet, Some(&bearer(&before.access))).await.status == Status::Unauthorized
    })
    .await;
    rs_protected(&fleet, Some(&bearer(&before.access))).await.assert_token_error("invalid_token");
    assert_eq!(rs_protected(&fleet, Some(&bearer(&after.access))).await.status, Status::Ok);
}

/// `clients remove`: the service closes the client's stream and refuses its
/// reconnection; the resource server stops being current.
async fn a_removed_client_stops_being_current(backend: Backend) {
    let fleet = fleet(backend, |f| f).await;
    let tokens = fleet.app.signup("alice").await;
    assert_eq!(rs_protected(&fleet, Some(&bearer(&tokens.access))).await.status, Status::Ok);

    assert!(fleet.app.store().remove_client("billing").await.unwrap());

    // The stream ends within the bound, then the set goes stale.
    wait_until(
        "the resource server is no longer current",
        PROPAGATION_BOUND * 2 + Duration::from_millis(300),
        || async { !fleet.verifier.status().current },
    )
    .await;
    rs_protected(&fleet, Some(&bearer(&tokens.access))).await.assert_error(503, "service_unavailable");
}

/// The tower layer: an accepted request reaches the service with its claims;
/// a refused one is answered by the layer, as the service would.
async fn the_tower_layer_guards_a_service(backend: Backend) {
    use tower::ServiceExt;
    use tower_layer::Layer;
    let fleet = fleet(backend, |f| f).await;
    let tokens = fleet.app.signup("alice").await;
    let inner = tower::service_fn(|request: http::Request<String>| async move {
        let claims = request.extensions().get::<jwt_blocklist_verifier::Claims>().cloned().expect("claims");
        Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello {}", claims.username)))
    });
    let guarded = jwt_blocklist_verifier::tower::VerifyLayer::new(fleet.verifier.clone()).layer(inner);
    let call = |authorization: Option<String>| {
        let guarded = guarded.clone();
        async move {
            let mut request = http::Request::builder().uri("/invoices");
            if let Some(authorization) = authorization {
                request = request.header("Authorization", authorization);
            }
            guarded.oneshot(request.body(String::new()).unwrap()).await.unwrap()
        }
    };

    let accepted = call(Some(bearer(&tokens.access))).await;
    assert_eq!((accepted.status().as_u16(), accepted.body().as_str()), (200, "hello alice"));
    let missing = call(None).await;
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(missing.headers()["www-authenticate"], r#"Bearer realm="jwt-blocklist""#);
    let body: Value = serde_json::from_str(missing.body()).unwrap();
    assert_eq!(body["error"], "missing_token");
    assert_eq!(fleet.app.caller(&tokens).logout().await.status, Status::Ok);
    wait_until("the layer refuses the logged-out token", PROPAGATION_BOUND, || async {
        call(Some(bearer(&tokens.access))).await.status().as_u16() == 401
    })
    .await;
}

backend_tests!(
    answers_as_the_service_does,
    resuming_sees_what_happened_meanwhile_and_a_reset_resnapshots,
    a_logout_is_refused_there_within_a_second,
    an_outage_means_503_within_a_second_then_recovery,
    key_rotation_and_revocation_are_followed_without_restart,
    a_removed_client_stops_being_current,
    the_tower_layer_guards_a_service,
);
