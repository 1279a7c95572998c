//! jwt-blocklist: a Rocket service that issues JWTs and lets users log out for
//! real, with a revocation list persisted in Postgres or SQLite.
//!
//! [`rocket`] builds the whole application from a figment, so the binary and
//! the tests run exactly the same thing.

#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod cors;
pub mod db;
pub mod error;
pub mod feed;
pub mod logging;
pub mod metrics;
pub mod purge;
pub mod request_id;
pub mod request_log;
pub mod routes;

use std::path::PathBuf;

use rocket::figment::providers::{Env, Format, Toml};
use rocket::figment::{Figment, Profile};
use rocket::{Build, Rocket};

/// Rocket's figment (`Rocket.toml`, `ROCKET_*`) plus this service's defaults,
/// with `DATABASE_URL` winning over every other source of the database URL.
/// Unlike Rocket, `ip_header` is off unless configured: the client address
/// (which login throttling counts by) is the TCP peer, so a client cannot
/// choose its own by sending `X-Real-IP`. And `log_level` is `normal` in
/// every build: Rocket's release default (`critical`) would write no
/// request line and no lifecycle event.
pub fn figment() -> Figment {
    figment_over(rocket::Config::default())
}

/// [`figment`] over Rocket's defaults for one kind of build
/// (`Config::debug_default()` or `Config::release_default()`).
fn figment_over(rocket_defaults: rocket::Config) -> Figment {
    let base = Figment::from(rocket_defaults)
        .merge((rocket::Config::IP_HEADER, false))
        .merge((rocket::Config::LOG_LEVEL, rocket::config::LogLevel::Normal))
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(Profile::from_env_or("ROCKET_PROFILE", rocket::Config::DEFAULT_PROFILE));
    with_defaults(base, std::env::var("DATABASE_URL").ok())
}

/// Adds this service's defaults under `base` (the SQLite file in the data
/// folder, a short database timeout) and puts `database_url`, if any, over it.
pub fn with_defaults(base: Figment, database_url: Option<String>) -> Figment {
    let config = config::AppConfig::from_figment(&base);
    let data_dir: PathBuf = config.map(|config| config.data_dir).unwrap_or_else(|_| PathBuf::from("data"));
    let figment = base.join(("databases.main.url", config::default_database_url(&data_dir)));
    match database_url {
        Some(url) if !url.is_empty() => figment.merge(("databases.main.url", url)),
        _ => figment,
    }
}

/// The application, ready to launch (or to hand to a local test client):
/// the configuration first (every later stage reads it from state), then
/// the subsystems, the fairings every request passes, and the routes.
pub fn rocket(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(config::stage())
        .attach(metrics::Recorder)
        .attach(db::stage())
        .attach(auth::stage())
        .attach(auth::key_rotation())
        .attach(auth::throttle_sweeper())
        .attach(purge::stage())
        .attach(cors::Cors)
        .attach(request_id::RequestIds)
        .attach(request_log::RequestLog)
        .mount("/auth", routes::auth_routes())
        .mount("/oauth", routes::oauth_routes())
        .mount("/", routes::routes())
        .register("/", error::catchers())
}

#[cfg(test)]
mod tests {
    use rocket::config::LogLevel;

    /// Rocket's release builds default to `critical`, which writes no request
    /// line and no lifecycle event; this service logs at `normal` in every
    /// build unless configured otherwise.
    #[test]
    fn every_build_logs_at_normal_unless_configured() {
        for defaults in [rocket::Config::debug_default(), rocket::Config::release_default()] {
            let level: LogLevel = super::figment_over(defaults).extract_inner("log_level").expect("a level");
            assert_eq!(level, LogLevel::Normal);
        }
        let configured = super::figment_over(rocket::Config::release_default()).merge(("log_level", "off"));
        assert_eq!(configured.extract_inner::<LogLevel>("log_level").unwrap(), LogLevel::Off);
    }
}
