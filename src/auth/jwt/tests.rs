//! Signing and verifying, without a database.

use super::*;

fn jwt() -> Jwt {
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(("jwt_secret", "a test secret that is long enough, 32+"))
        .merge(("jwt_algorithm", "HS256"));
    let config = AppConfig::from_figment(&figment).expect("valid");
    Jwt::new(&config.resolve_secret().expect("secret"), &config, None).expect("a crypto backend")
}

/// jsonwebtoken 10+ compiles without a crypto backend and panics at the
/// first token: this build must sign and verify.
#[test]
fn a_token_signed_here_verifies_and_a_changed_one_does_not() {
    let jwt = jwt();
    let (user_id, sid, jti) = (UserId::new_v4(), SessionId::new_v4(), TokenId::new_v4());
    let issued = jwt
        .issue(NewToken {
            token_type: TokenType::Access,
            user_id,
            username: Some("alice"),
            sid,
            jti,
            now: Utc::now(),
            ttl_seconds: 60,
            csrf: None,
        })
        .expect("signed");

    let claims = jwt.verify(&issued.token, TokenType::Access).expect("verified");
    assert_eq!((claims.user_id, claims.sid, claims.jti), (user_id, sid, jti));

    let mut tampered = issued.token.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(jwt.verify(&tampered, TokenType::Access), Err(ApiError::InvalidToken(_))));
}
