//! Start-up configuration: the signing secret (configured, or generated into
//! the data folder with mode 0600 and reused), refused short secrets and
//! unsupported database URLs, and the token settings.

use rocket::http::Status;
use rocket::local::asynchronous::Client;

use crate::backend_tests;
use crate::helpers::{claims_of, refused_fairings, test_figment, Backend, TestApp, TestDb};

/// The test figment without a configured secret.
fn figment_without_secret(db: &TestDb) -> rocket::figment::Figment {
    jwt_blocklist::figment()
        .merge(("databases.main.url", db.url()))
        .merge(("purge_interval", 0))
        .merge(("data_dir", db.folder()))
        .merge(("log_level", "critical"))
}

async fn a_secret_is_generated_on_first_start_and_reused(backend: Backend) {
    let db = TestDb::create(backend).await;
    let first = Client::tracked(jwt_blocklist::rocket(figment_without_secret(&db))).await.expect("starts");
    let path = db.folder().join("jwt_secret");

    let secret = std::fs::read_to_string(&path).expect("secret file written");
    assert!(secret.trim().len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let app = TestApp { client: first, db: db.clone(), secret: secret.trim().to_owned() };
    let tokens = app.signup("alice").await;
    drop(app);
    let second = Client::tracked(jwt_blocklist::rocket(figment_without_secret(&db))).await.expect("starts");
    let again = TestApp { client: second, db: db.clone(), secret: String::new() };

    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret, "reused, not regenerated");
    assert_eq!(again.protected(&tokens.access).await.status, Status::Ok);
}

async fn a_short_secret_is_refused_at_start(backend: Backend) {
    let db = TestDb::create(backend).await;

    let configured = test_figment(&db, &db.url(), "only-31-bytes-long-secret-value");
    assert_eq!(refused_fairings(configured).await, ["Authentication"]);

    std::fs::write(db.folder().join("jwt_secret"), "short").unwrap();
    assert_eq!(refused_fairings(figment_without_secret(&db)).await, ["Authentication"]);

    let exactly_32 = test_figment(&db, &db.url(), "exactly-32-bytes-long-secret-val");
    assert!(Client::tracked(jwt_blocklist::rocket(exactly_32)).await.is_ok());
}

/// An empty or short secret file is refused, and the message says which
/// file (the configured-secret message names ROCKET_JWT_SECRET instead).
async fn an_empty_or_short_secret_file_is_refused_naming_it(backend: Backend) {
    let db = TestDb::create(backend).await;
    let path = db.folder().join("jwt_secret");
    for content in ["", "\n", "only-31-bytes-long-secret-value\n"] {
        std::fs::write(&path, content).unwrap();
        let config = jwt_blocklist::config::AppConfig::from_figment(&figment_without_secret(&db)).unwrap();

        let refused = config.resolve_secret().expect_err("too short").to_string();

        assert!(refused.contains(&path.display().to_string()), "{content:?}: {refused}");
        assert!(refused.contains("at least 32 bytes"), "{refused}");
        assert_eq!(refused_fairings(figment_without_secret(&db)).await, ["Authentication"]);
    }
}

/// The SQLite database holds password hashes: it and the WAL and
/// shared-memory files beside it are created readable by this user alone,
/// like the secret.
async fn the_files_that_hold_secrets_are_created_private(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::create(backend).await;
    let client = Client::tracked(jwt_blocklist::rocket(figment_without_secret(&db))).await.expect("starts");
    let app = TestApp { client, db: db.clone(), secret: String::new() };
    app.signup("alice").await;

    let mut files = vec![db.folder().join("jwt_secret")];
    if backend == Backend::Sqlite {
        let database = db.folder().join("app.db");
        files.extend([database.with_extension("db-wal"), database.with_extension("db-shm"), database]);
    }
    for path in files {
        let mode = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(mode.permissions().mode() & 0o777, 0o600, "{}", path.display());
    }
}

async fn an_unsupported_database_url_is_refused_at_start(backend: Backend) {
    let db = TestDb::create(backend).await;

    let figment = test_figment(&db, "mysql://root@127.0.0.1/test", &crate::helpers::random_secret());

    assert_eq!(refused_fairings(figment).await, ["Database"]);
}

async fn token_settings_come_from_the_configuration(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| {
        f.merge(("access_token_ttl", 60)).merge(("refresh_token_ttl", 3600)).merge(("issuer", "auth.example"))
    })
    .await;

    let response = {
        app.register("alice", crate::helpers::PASSWORD).await;
        app.login("alice", crate::helpers::PASSWORD).await
    };

    assert_eq!(response.body["expires_in"], 60);
    assert_eq!(response.body["refresh_expires_in"], 3600);
    let claims = claims_of(response.body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], "auth.example");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 60);
}

async fn migrations_are_idempotent_across_restarts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup("alice").await;
    let second = app.another_instance().await;
    let third = app.another_instance().await;

    assert_eq!(third.protected(&tokens.access).await.status, Status::Ok);
    assert_eq!(second.db.count("SELECT count(*) FROM users").await, 1);
}

backend_tests!(
    an_empty_or_short_secret_file_is_refused_naming_it,
    the_files_that_hold_secrets_are_created_private,
    a_secret_is_generated_on_first_start_and_reused,
    a_short_secret_is_refused_at_start,
    an_unsupported_database_url_is_refused_at_start,
    token_settings_come_from_the_configuration,
    migrations_are_idempotent_across_restarts,
);

/// Every out-of-range value is refused at start, with a message that names
/// its key.
#[tokio::test]
async fn configuration_values_out_of_range_are_refused_naming_the_key() {
    let base = || rocket::figment::Figment::from(rocket::Config::default());
    let cases: [(&str, i64); 13] = [
        ("access_token_ttl", 0),
        ("access_token_ttl", -900),
        ("access_token_ttl", 400_000_000),
        ("refresh_token_ttl", 0),
        ("refresh_token_ttl", i64::MAX),
        ("leeway", -1),
        ("leeway", 90_000),
        ("purge_interval", 40_000_000),
        ("login_max_failures", -1),
        ("login_failure_window", 0),
        ("login_failure_window", 90_000),
        ("hash_queue", 0),
        ("hash_queue", 1_000_000),
    ];
    for (key, value) in cases {
        let error = jwt_blocklist::config::AppConfig::from_figment(&base().merge((key, value)))
            .expect_err(&format!("{key} = {value} must be refused"));
        assert!(error.to_string().contains(key), "{key} = {value}: {error}");
    }

    let db = TestDb::create(Backend::Sqlite).await;
    let overflowing = test_figment(&db, &db.url(), &crate::helpers::random_secret())
        .merge(("refresh_token_ttl", 400_000_000_000_i64));
    assert_eq!(refused_fairings(overflowing).await, ["Configuration"]);
}
