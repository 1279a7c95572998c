//! jwt-blocklist: a Rocket service that issues JWTs and lets users log out for
//! real, with a revocation list persisted in Postgres or SQLite.
//!
//! [`rocket`] builds the whole application from a figment, so the binary and
//! the tests run exactly the same thing.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod purge;
pub mod routes;

use std::path::PathBuf;

use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// Rocket's figment (`Rocket.toml`, `ROCKET_*`) plus this service's defaults,
/// with `DATABASE_URL` winning over every other source of the database URL.
pub fn figment() -> Figment {
    with_defaults(rocket::Config::figment(), std::env::var("DATABASE_URL").ok())
}

/// Adds this service's defaults under `base` (the SQLite file in the data
/// folder, a short database timeout) and puts `database_url`, if any, over it.
pub fn with_defaults(base: Figment, database_url: Option<String>) -> Figment {
    let data_dir: PathBuf = base.extract_inner("data_dir").unwrap_or_else(|_| PathBuf::from("data"));
    let figment = base
        .join(("databases.main.url", format!("sqlite://{}", data_dir.join("jwt-blocklist.db").display())))
        .join(("databases.main.connect_timeout", 3));
    match database_url {
        Some(url) if !url.is_empty() => figment.merge(("databases.main.url", url)),
        _ => figment,
    }
}

/// The application, ready to launch (or to hand to a local test client).
pub fn rocket(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(auth::stage())
        .attach(db::stage())
        .attach(purge::stage())
        .mount("/auth", routes::auth::routes())
        .mount("/", routes::routes())
        .register("/", error::catchers())
}
