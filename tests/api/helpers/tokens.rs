//! Looking inside tokens, and forging them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// The decoded payload of a token (no verification: tests look inside).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

pub fn claim(token: &str, name: &str) -> String {
    claims_of(token)[name].as_str().unwrap_or_else(|| panic!("claim {name}")).to_owned()
}

/// Signs arbitrary claims with `secret` and `algorithm`.
pub fn forge(claims: &Value, secret: &str, algorithm: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("a key"),
    )
    .expect("sign")
}

/// Assembles a token from raw parts (for `alg: none` and other non-tokens).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A correctly signed access token of the default issuer, with the claims a
/// real one has and the `exp` given.
pub fn forge_access(secret: &str, user_id: &str, sid: &str, exp: i64) -> String {
    let claims = serde_json::json!({
        "iss": "jwt-blocklist", "sub": user_id, "iat": now() - 10, "exp": exp,
        "jti": uuid::Uuid::new_v4().to_string(), "sid": sid, "type": "access", "username": "alice",
    });
    forge(&claims, secret, jsonwebtoken::Algorithm::HS256)
}

/// Sleeps until the wall clock (in unix seconds, fractions included) reaches
/// `instant`: for expiry, which is defined on the wall clock.
pub async fn sleep_until_unix(instant: f64) {
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    if instant > now {
        tokio::time::sleep(std::time::Duration::from_secs_f64(instant - now)).await;
    }
}
