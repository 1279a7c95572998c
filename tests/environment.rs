//! Configuration from environment variables. A test binary of its own: the
//! environment is process-wide, and here no other test runs beside it.

use jwt_blocklist::config::AppConfig;

#[test]
fn environment_variables_configure_the_service_and_database_url_wins() {
    std::env::set_var("ROCKET_DATABASES", r#"{main={url="sqlite://from-rocket-databases.db"}}"#);
    std::env::set_var("ROCKET_ACCESS_TOKEN_TTL", "60");
    std::env::set_var("ROCKET_ISSUER", "auth.example");
    std::env::set_var("ROCKET_LEEWAY", "5");

    let without_database_url = jwt_blocklist::figment();
    std::env::set_var("DATABASE_URL", "postgres://db.example/blocklist");
    let with_database_url = jwt_blocklist::figment();

    let url =
        |figment: &rocket::figment::Figment| figment.extract_inner::<String>("databases.main.url").unwrap();
    assert_eq!(url(&without_database_url), "sqlite://from-rocket-databases.db");
    assert_eq!(url(&with_database_url), "postgres://db.example/blocklist");
    let config = AppConfig::from_figment(&with_database_url).expect("valid");
    assert_eq!(config.access_token_ttl, 60);
    assert_eq!(config.issuer, "auth.example");
    assert_eq!(config.leeway, 5);
    assert_eq!(config.refresh_token_ttl, 2_592_000, "untouched keys keep their defaults");
    assert_eq!(config.purge_interval, 300);
}

#[test]
fn without_configuration_the_database_is_sqlite_under_the_data_folder() {
    // Built on Rocket's bare defaults, so the variables the test above sets
    // (same process) cannot leak in.
    let bare = || rocket::figment::Figment::from(rocket::Config::default());
    let url =
        |figment: rocket::figment::Figment| figment.extract_inner::<String>("databases.main.url").unwrap();

    assert_eq!(url(jwt_blocklist::with_defaults(bare(), None)), "sqlite://data/jwt-blocklist.db");
    let elsewhere = bare().merge(("data_dir", "/var/lib/jwt-blocklist"));
    assert_eq!(
        url(jwt_blocklist::with_defaults(elsewhere, None)),
        "sqlite:///var/lib/jwt-blocklist/jwt-blocklist.db"
    );
    let config =
        AppConfig::from_figment(&jwt_blocklist::with_defaults(bare(), None)).expect("defaults are valid");
    assert!(config.jwt_secret.is_none(), "no secret is ever defaulted");
    assert_eq!((config.access_token_ttl, config.refresh_token_ttl), (900, 2_592_000));
    assert_eq!((config.purge_interval, config.leeway), (300, 0));
    assert_eq!(config.issuer, "jwt-blocklist");
}
