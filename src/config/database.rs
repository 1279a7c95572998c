//! `databases.main`: which database (the URL's scheme picks the backend)
//! and the shape of the request pool, with their defaults.

use std::fmt;
use std::path::Path;

use rocket::serde::{Deserialize, Serialize};

use super::ConfigError;

/// The database's settings. `url` has no fixed default: without one, the
/// service uses an SQLite file in `data_dir` ([`default_database_url`]).
#[derive(Deserialize, Serialize, Clone, PartialEq, Eq)]
#[serde(crate = "rocket::serde")]
pub struct DbConfig {
    /// `postgres://…` or `sqlite://…` (`DATABASE_URL` wins over it).
    #[serde(default)]
    pub url: Option<String>,
    /// Connections of the request pool.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Connections kept open even when idle.
    #[serde(default)]
    pub min_connections: Option<u32>,
    /// Seconds; also the bound on every database call, so that an outage is
    /// a quick 503 rather than a hang.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: u64,
    /// Seconds an idle connection is kept.
    #[serde(default)]
    pub idle_timeout: Option<u64>,
}

mod defaults {
    pub fn max_connections() -> u32 {
        16
    }
    pub fn connect_timeout() -> u64 {
        3
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            url: None,
            max_connections: defaults::max_connections(),
            min_connections: None,
            connect_timeout: defaults::connect_timeout(),
            idle_timeout: None,
        }
    }
}

/// The SQLite file the service uses when no database URL is configured.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("jwt-blocklist.db").display())
}

impl DbConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let count = |key, value: u32| super::checks::within(key, u64::from(value), 1, 10_000, "");
        count("databases.main.max_connections", self.max_connections)?;
        super::checks::within("databases.main.connect_timeout", self.connect_timeout, 1, 3_600, " seconds")
    }
}

/// Never shows a password in the URL.
impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_deref().map(|url| match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://<credentials>@{host}"),
            _ => url.to_owned(),
        });
        f.debug_struct("DbConfig")
            .field("url", &url)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}
