//! Asymmetric signing keys (ES256 by default, EdDSA on request): tokens name
//! their key and type; every algorithm-confusion trick is refused; the keys
//! are shared by every instance, sealed under the instance secret, made
//! once, rotated without a failed request, withdrawn everywhere within a
//! second; and an HS256 deployment upgrades without logging anybody out.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use jwt_blocklist::auth::keys::{lifecycle, material};
use jwt_blocklist::config::JwtAlgorithm;
use rocket::http::Status;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    claims_of, forge, hs256, now, random_secret, refused_fairings, refused_within, test_figment, unsigned,
    wait_until, Backend, TestApp, TestDb, Tokens, PROPAGATION_BOUND,
};

/// The decoded JOSE header of a token.
pub fn header_of(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("a header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(app: &TestApp) -> Value {
    let response = app.send(app.client.get("/.well-known/jwks.json")).await;
    assert_eq!(response.status, Status::Ok);
    response.body
}

/// Verifies `token` as an outside library would, with nothing but the JWKS.
fn verifies_with(jwks: &Value, token: &str) -> bool {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWK set");
    let Some(kid) = header_of(token)["kid"].as_str().map(str::to_owned) else { return false };
    let Some(jwk) = set.find(&kid) else { return false };
    let key = DecodingKey::from_jwk(jwk).expect("a public key");
    let algorithm: Algorithm = header_of(token)["alg"].as_str().expect("alg").parse().expect("an algorithm");
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

/// Signs `claims` with a key made here (not the service's), naming `kid`.
fn signed_by_a_stranger(algorithm: JwtAlgorithm, claims: &Value, kid: &str, typ: &str) -> String {
    let made = material::generate(algorithm).expect("a key");
    let (alg, key) = match algorithm {
        JwtAlgorithm::EdDSA => (Algorithm::EdDSA, EncodingKey::from_ed_der(&made.pkcs8)),
        _ => (Algorithm::ES256, EncodingKey::from_ec_der(&made.pkcs8)),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

async fn tokens_name_their_key_and_type_and_verify_with_the_jwks_alone(backend: Backend) {
    for (algorithm, name, kty) in [("ES256", "ES256", "EC"), ("EdDSA", "EdDSA", "OKP")] {
        let app = TestApp::spawn_with(backend, |f| f.merge(("jwt_algorithm", algorithm))).await;
        let tokens = app.signup("alice").await;
        let (access, refresh) = (header_of(&tokens.access), header_of(&tokens.refresh));
        let jwks = jwks(&app).await;

        assert_eq!(access["alg"], name);
        assert_eq!(access["typ"], "at+jwt", "RFC 9068");
        assert_eq!(refresh["typ"], "refresh+jwt", "another typ: no library takes one for the other");
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1, "{jwks}");
        assert_eq!(keys[0]["kid"], access["kid"]);
        assert_eq!(
            (keys[0]["kty"].as_str(), keys[0]["alg"].as_str(), keys[0]["use"].as_str()),
            (Some(kty), Some(name), Some("sig"))
        );
        assert!(keys[0].get("d").is_none(), "no private member");
        let kid = access["kid"].as_str().unwrap();
        assert_eq!(kid, material::thumbprint(&keys[0]), "the kid is the RFC 7638 thumbprint");
        assert!(verifies_with(&jwks, &tokens.access) && verifies_with(&jwks, &tokens.refresh));
        assert_eq!(app.protected(&tokens.access).await.status, Status::Ok);
        assert_eq!(app.refresh(&tokens.refresh).await.status, Status::Ok);
    }
}

async fn every_algorithm_confusion_trick_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let claims = claims_of(&tokens.access);
    let header = header_of(&tokens.access);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let jwk = jwks(&app).await["keys"][0].clone();
    let public_point = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (x, y) = (
            b64.decode(jwk["x"].as_str().unwrap()).unwrap(),
            b64.decode(jwk["y"].as_str().unwrap()).unwrap(),
        );
        [&[4u8][..], &x, &y].concat()
    };
    let hmac_with = |key: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
    };
    let mut later = claims.clone();
    later["iat"] = json!(now() + 5);
    let without_kid = {
        let mut header = header.clone();
        header.as_object_mut().unwrap().remove("kid");
        let signature = tokens.access.rsplit('.').next().unwrap();
        format!("{}{signature}", unsigned(&header, &claims))
    };
    let next_kid = match app.rotate_key().await {
        jwt_blocklist::db::Rotated::Next { kid, .. } => kid,
        other => panic!("{other:?}"),
    };

    let cases = [
        ("HS256 keyed with the public JWK's text", hmac_with(jwk.to_string().as_bytes())),
        ("HS256 keyed with the public point", hmac_with(&public_point)),
        ("HS256 keyed with the x coordinate", hmac_with(jwk["x"].as_str().unwrap().as_bytes())),
        (
            "HS256 with the instance secret, issued after the first key",
            forge(&later, &app.secret, Algorithm::HS256),
        ),
        ("alg none", unsigned(&json!({ "alg": "none", "typ": "at+jwt", "kid": kid }), &claims)),
        ("no kid", without_kid),
        ("an unknown kid", signed_by_a_stranger(JwtAlgorithm::ES256, &claims, "no-such-key", "at+jwt")),
        ("another key's kid", signed_by_a_stranger(JwtAlgorithm::ES256, &claims, &next_kid, "at+jwt")),
        ("EdDSA at an ES256 instance", signed_by_a_stranger(JwtAlgorithm::EdDSA, &claims, &kid, "at+jwt")),
        ("a refresh typ on an access token", {
            let mut header = header.clone();
            header["typ"] = json!("refresh+jwt");
            let signature = tokens.access.rsplit('.').next().unwrap();
            format!("{}{signature}", unsigned(&header, &claims))
        }),
    ];
    for (what, token) in cases {
        let response = app.protected(&token).await;
        assert_eq!(response.body["error"], "invalid_token", "{what}: {:?}", response.body);
        response.assert_token_error("invalid_token");
    }
    assert_eq!(app.protected(&tokens.access).await.status, Status::Ok, "the real token still works");
}

async fn instances_started_together_make_exactly_one_key(backend: Backend) {
    let db = TestDb::create(backend).await;
    let secret = random_secret();
    let starting = (0..4).map(|_| TestApp::start(db.clone(), secret.clone(), |f| f));
    let apps = futures::future::join_all(starting).await;

    assert_eq!(db.count("SELECT count(*) FROM signing_keys").await, 1);
    let tokens = apps[0].signup("alice").await;
    for app in &apps {
        assert_eq!(app.protected(&tokens.access).await.status, Status::Ok, "every instance verifies");
    }
}

async fn keys_are_sealed_and_another_secret_refuses_to_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let jwk = jwks(&app).await["keys"][0].clone();
    let sealed: Vec<u8> = match backend {
        Backend::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url()).await.unwrap();
            sqlx::query_scalar("SELECT sealed_private FROM signing_keys").fetch_one(&mut conn).await.unwrap()
        }
        Backend::Sqlite => {
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.db.url()).await.unwrap();
            sqlx::query_scalar("SELECT sealed_private FROM signing_keys").fetch_one(&mut conn).await.unwrap()
        }
    };
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    assert!(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &sealed).is_err(), "not a usable key");
    assert!(sealed.len() > 12 + 16, "nonce, ciphertext and tag");
    assert!(jwk.get("d").is_none());

    let another_secret = test_figment(&app.db, &app.db.url(), &random_secret());
    assert_eq!(refused_fairings(another_secret).await, ["Authentication"]);
    assert_eq!(app.db.count("SELECT count(*) FROM signing_keys").await, 1, "never a second key set");
}

/// A client that caches the JWKS exactly as `Cache-Control` allows verifies
/// every token issued across two rotations: each new key is published a
/// full `jwks_max_age` before it signs.
async fn rotation_fails_no_request_of_a_client_that_caches_the_jwks(backend: Backend) {
    let max_age = 1;
    let app = TestApp::spawn_with(backend, |f| f.merge(("jwks_max_age", max_age))).await;
    app.signup("alice").await;
    let response = app.send(app.client.get("/.well-known/jwks.json")).await;
    assert_eq!(response.header("Cache-Control"), Some(format!("public, max-age={max_age}").as_str()));
    let mut cached = (jwks(&app).await, Instant::now());
    let mut kids = std::collections::BTreeSet::new();
    let started = Instant::now();
    let mut rotations = 0;

    // Rotations at 1 s and 3 s: each new key signs a max-age later, before
    // the next rotation (one rotation at a time), and the last one signs a
    // second before the end.
    while started.elapsed() < Duration::from_secs(5 * max_age) {
        if rotations < 2 && started.elapsed() >= Duration::from_secs(1 + rotations * (max_age + 1)) {
            app.rotate_key().await;
            rotations += 1;
        }
        let tokens = app.login_ok("alice").await;
        kids.insert(header_of(&tokens.access)["kid"].as_str().unwrap().to_owned());
        // The client's cache, refreshed only once its max-age has passed.
        if cached.1.elapsed() >= Duration::from_secs(max_age) {
            cached = (jwks(&app).await, Instant::now());
        }
        assert!(verifies_with(&cached.0, &tokens.access), "a token the cached JWKS does not know");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rotations, 2);
    assert_eq!(kids.len(), 3, "tokens were signed by all three keys: {kids:?}");
    assert_eq!(app.db.count("SELECT count(*) FROM signing_keys").await, 3);
}

async fn a_revoked_key_is_refused_everywhere_within_a_second(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_instance().await;
    let tokens = a.signup("alice").await;
    let kid = header_of(&tokens.access)["kid"].as_str().unwrap().to_owned();
    crate::helpers::wait_until_trusted(&b).await;
    assert_eq!(b.protected(&tokens.access).await.status, Status::Ok);

    let revoked = a.revoke_key(&kid).await;

    assert!(matches!(revoked, jwt_blocklist::db::Revoked::Active { .. }), "{revoked:?}");
    refused_within(&b, &tokens.access, PROPAGATION_BOUND, &["invalid_token"]).await;
    a.refresh(&tokens.refresh).await.assert_token_error("invalid_token");
    let fresh = b.login_ok("alice").await;
    assert_ne!(header_of(&fresh.access)["kid"], json!(kid), "a fresh key signs at once");
    assert_eq!(a.protected(&fresh.access).await.status, Status::Ok);
    let published = jwks(&b).await;
    assert!(published["keys"].as_array().unwrap().iter().all(|key| key["kid"] != json!(kid)), "{published}");
}

/// A database that served under HS256, restarted under ES256: its users'
/// sessions go on; an HS256 token minted after the switch is refused.
async fn upgrading_from_hs256_logs_nobody_out(backend: Backend) {
    let before = TestApp::spawn_with(backend, hs256).await;
    let tokens: Tokens = before.signup("alice").await;
    let issued_at = claims_of(&tokens.access)["iat"].as_i64().unwrap();
    assert_eq!(before.db.count("SELECT count(*) FROM signing_keys").await, 0);
    // The first key must be made in a later second than the tokens' iat.
    wait_until("the clock passes the tokens' second", Duration::from_secs(2), || async {
        chrono::Utc::now().timestamp() > issued_at
    })
    .await;
    let (db, secret) = (before.db.clone(), before.secret.clone());
    drop(before);

    let after = TestApp::start(db, secret, |f| f).await;

    assert_eq!(after.db.count("SELECT count(*) FROM signing_keys").await, 1, "its first key");
    assert_eq!(after.protected(&tokens.access).await.status, Status::Ok, "the old access token works");
    let refreshed = after.refresh(&tokens.refresh).await;
    assert_eq!(refreshed.status, Status::Ok, "the old session refreshes: {:?}", refreshed.body);
    let rotated = Tokens::from_body(&refreshed.body);
    assert_eq!(header_of(&rotated.access)["alg"], "ES256", "into new asymmetric tokens");
    assert_eq!(after.protected(&rotated.access).await.status, Status::Ok);
    let mut minted = claims_of(&tokens.access);
    minted["iat"] = json!(now());
    minted["jti"] = json!(uuid::Uuid::new_v4().to_string());
    after
        .protected(&forge(&minted, &after.secret, Algorithm::HS256))
        .await
        .assert_token_error("invalid_token");
    assert_eq!(after.caller(&rotated).logout().await.status, Status::Ok);
}

/// `key_rotation_interval`: the timer rotates once the signing key has
/// signed that long and no successor is waiting (asked with a clock, not
/// by waiting 90 days; the timer asks each minute and calls the same
/// rotation as `keys rotate`).
async fn the_rotation_interval_says_when_to_rotate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let interval = chrono::Duration::hours(1);
    let start = chrono::Utc::now();
    let due = |at| lifecycle::rotation_due(app.store(), JwtAlgorithm::ES256, interval, at);

    assert!(!due(start + interval - chrono::Duration::seconds(2)), "not before the interval");
    assert!(due(start + interval + chrono::Duration::seconds(1)));
    app.rotate_key().await;
    assert!(!due(start + interval + chrono::Duration::seconds(1)), "a successor is waiting");
    let signs_from = start + chrono::Duration::seconds(300);
    assert!(!due(signs_from + interval - chrono::Duration::seconds(2)), "the successor's own interval");
    assert!(due(signs_from + interval + chrono::Duration::seconds(2)));
    assert!(!lifecycle::rotation_due(app.store(), JwtAlgorithm::EdDSA, interval, start + interval * 2));
}

backend_tests!(
    the_rotation_interval_says_when_to_rotate,
    tokens_name_their_key_and_type_and_verify_with_the_jwks_alone,
    every_algorithm_confusion_trick_is_refused,
    instances_started_together_make_exactly_one_key,
    keys_are_sealed_and_another_secret_refuses_to_start,
    rotation_fails_no_request_of_a_client_that_caches_the_jwks,
    a_revoked_key_is_refused_everywhere_within_a_second,
    upgrading_from_hs256_logs_nobody_out,
);
