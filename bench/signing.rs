//! The benchmark's token helper (`cargo run --release --example
//! bench-signing -- USER_ID N`), configured like the service (DATABASE_URL,
//! ROCKET_JWT_SECRET, ROCKET_JWT_ALGORITHM): signs N access tokens of
//! USER_ID with the deployment's own key, each with a fresh `jti` and `sid`
//! (so N tokens are N first sights for a verifier, and N logouts are N
//! distinct revocations, without N argon2 hashes), and prints them one per
//! line. On standard error it reports, for that algorithm, what one token
//! costs here: to issue (signing: login's non-hashing part, and refresh's)
//! and to verify at first sight and again (from the verified-token cache).

use std::time::Instant;

use chrono::Utc;
use jwt_blocklist::auth::jwt::{Jwt, NewToken, TokenType};
use jwt_blocklist::auth::keys::material::SealingKey;
use jwt_blocklist::auth::keys::Keys;
use jwt_blocklist::config::AppConfig;
use jwt_blocklist::db::{SessionId, TokenId, UserId};
use uuid::Uuid;

#[rocket::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(user), Some(count)) = (args.get(1), args.get(2).and_then(|n| n.parse::<usize>().ok())) else {
        eprintln!("usage: bench-signing USER_ID N");
        std::process::exit(2);
    };
    let user_id = UserId(Uuid::parse_str(user).expect("USER_ID is a UUID"));
    let config = AppConfig::from_figment(&jwt_blocklist::figment()).expect("the configuration");
    let store = jwt_blocklist::db::open(&config.databases.main, &config).await.expect("the database");
    let secret = config.resolve_secret().expect("the secret");
    let keys = config.jwt_algorithm.is_asymmetric().then(|| {
        let lifetime = chrono::Duration::seconds(config.refresh_token_ttl as i64);
        Keys::new(store.clone(), config.jwt_algorithm, SealingKey::derive(&secret), lifetime)
            .expect("the keys open (start the service once first: it makes the first key)")
    });
    let jwt = Jwt::new(&secret, &config, keys).expect("the signer");

    let started = Instant::now();
    let tokens: Vec<String> = (0..count)
        .map(|_| {
            let token = NewToken {
                token_type: TokenType::Access,
                user_id,
                username: Some("benchuser"),
                sid: SessionId(Uuid::new_v4()),
                jti: TokenId(Uuid::new_v4()),
                now: Utc::now(),
                ttl_seconds: 3600,
                csrf: None,
            };
            jwt.issue(token).expect("signed").token
        })
        .collect();
    let issue = started.elapsed();
    let started = Instant::now();
    for token in &tokens {
        jwt.verify(token, TokenType::Access).expect("verifies");
    }
    let first_sight = started.elapsed();
    let started = Instant::now();
    for token in &tokens {
        jwt.verify(token, TokenType::Access).expect("verifies");
    }
    let cached = started.elapsed();
    store.close().await;

    let micros = |total: std::time::Duration| total.as_secs_f64() * 1e6 / count.max(1) as f64;
    eprintln!(
        "{:<6} per token, one core: issue {:>6.1} us, verify at first sight {:>6.1} us, verify again (cached) {:>5.2} us",
        config.jwt_algorithm.as_str(),
        micros(issue),
        micros(first_sight),
        micros(cached)
    );
    let mut out = String::with_capacity(tokens.len() * 400);
    for token in tokens {
        out.push_str(&token);
        out.push('\n');
    }
    print!("{out}");
}
