//! The typed configuration: the flat keys of the Rocket figment that the HTTP
//! contract names (`jwt_secret`, `access_token_ttl`, ...) and
//! `databases.main`, each with its one default and its range. [`stage`]
//! reads and checks it once, at ignite, and manages it; every other stage
//! and every route reads it from Rocket's state. Errors name the key at
//! fault. `Rocket.toml` shows every key with its default (a test compares).

mod database;
mod secret;

pub use database::{default_database_url, DbConfig};
pub use secret::{Secret, MIN_SECRET_BYTES, SECRET_FILE};

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::serde::{Deserialize, Serialize};

/// Longest token lifetime accepted: ten years, far inside what a timestamp
/// holds, so `now + ttl` can never overflow.
const MAX_TTL: u64 = 10 * 365 * 86_400;
/// Clock skew beyond a day is a broken clock, not skew.
const MAX_LEEWAY: u64 = 86_400;
/// A purge timer longer than a year is a typo.
const MAX_PURGE_INTERVAL: u64 = 365 * 86_400;
/// A throttling window longer than a day locks people out, not guesses.
const MAX_FAILURE_WINDOW: u64 = 86_400;
/// More places in the hashing queue than this only hides an overload.
const MAX_HASH_QUEUE: u64 = 65_536;

/// Application settings read from `Rocket.toml` and `ROCKET_*` variables.
#[derive(Deserialize, Serialize, Clone, PartialEq, Eq)]
#[serde(crate = "rocket::serde")]
pub struct AppConfig {
    /// The instance secret (the HS256 key). `None` means: use (or create)
    /// `<data_dir>/jwt_secret`. Never serialized.
    #[serde(default, skip_serializing)]
    pub jwt_secret: Option<Secret>,
    #[serde(default = "defaults::access_token_ttl")]
    pub access_token_ttl: u64,
    #[serde(default = "defaults::refresh_token_ttl")]
    pub refresh_token_ttl: u64,
    #[serde(default = "defaults::purge_interval")]
    pub purge_interval: u64,
    #[serde(default)]
    pub leeway: u64,
    #[serde(default = "defaults::issuer")]
    pub issuer: String,
    /// Where the generated secret (and the default SQLite file) live.
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// Live revocations an instance keeps in memory; past it, the access
    /// check asks the database (and says so in the log).
    #[serde(default = "defaults::revocation_cache_capacity")]
    pub revocation_cache_capacity: usize,
    /// Failed logins allowed per (client address, username) per window; 0
    /// turns throttling off.
    #[serde(default = "defaults::login_max_failures")]
    pub login_max_failures: u32,
    #[serde(default = "defaults::login_failure_window")]
    pub login_failure_window: u64,
    /// Logins, registrations and password changes that may wait for
    /// password hashing at once; beyond it, 503 at once.
    #[serde(default = "defaults::hash_queue")]
    pub hash_queue: usize,
    /// The `Secure` attribute on every cookie.
    #[serde(default = "defaults::cookie_secure")]
    pub cookie_secure: bool,
    /// Exact origins allowed to call the API from a browser with
    /// credentials; `*` is refused.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// `text` for people, `json` for log shippers.
    #[serde(default)]
    pub log_format: LogFormat,
    /// `databases.main`.
    #[serde(default)]
    pub databases: Databases,
}

/// `databases`: the one database, `main`.
#[derive(Deserialize, Serialize, Clone, Default, PartialEq, Eq)]
#[serde(crate = "rocket::serde")]
pub struct Databases {
    #[serde(default)]
    pub main: DbConfig,
}

/// `log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(crate = "rocket::serde", rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every default of the configuration, here and nowhere else.
mod defaults {
    use std::path::PathBuf;

    pub fn access_token_ttl() -> u64 {
        900
    }
    pub fn refresh_token_ttl() -> u64 {
        2_592_000
    }
    pub fn purge_interval() -> u64 {
        300
    }
    pub fn issuer() -> String {
        "jwt-blocklist".into()
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("data")
    }
    /// About 170 MB of entries.
    pub fn revocation_cache_capacity() -> usize {
        2_000_000
    }
    pub fn login_max_failures() -> u32 {
        5
    }
    pub fn login_failure_window() -> u64 {
        300
    }
    pub fn hash_queue() -> usize {
        64
    }
    pub fn cookie_secure() -> bool {
        true
    }
}

/// Why the service refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<rocket::figment::Error>),
    #[error("{key} = {value} is out of range: it must be {min} to {max}{unit}")]
    OutOfRange { key: &'static str, value: u64, min: u64, max: u64, unit: &'static str },
    #[error("issuer must not be empty")]
    EmptyIssuer,
    #[error(
        "cors_allowed_origins: {0:?} is not an exact origin (scheme://host[:port], no path); \
         `*` is refused because credentials are allowed"
    )]
    BadOrigin(String),
    #[error(
        "jwt_secret is {0} bytes long; it must be at least {MIN_SECRET_BYTES} bytes \
         (set ROCKET_JWT_SECRET to a longer value, or unset it to have one generated)"
    )]
    ShortSecret(usize),
    #[error(
        "the jwt_secret in {} is {len} bytes long; it must be at least {MIN_SECRET_BYTES} bytes \
         (write a longer one there, or delete the file to have one generated)",
        path.display()
    )]
    ShortSecretFile { path: PathBuf, len: usize },
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

/// Reads and checks the configuration once, at ignite, and manages it;
/// refuses to start, with a message naming the key, when a value is out of
/// range. Attach it first: the other stages read [`AppConfig`] from state.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Configuration", |rocket| async {
        match AppConfig::from_figment(rocket.figment()) {
            Ok(config) => Ok(rocket.manage(config)),
            Err(error) => {
                log::error!("refusing to start: {error}");
                Err(rocket)
            }
        }
    })
}

impl AppConfig {
    /// Extracts the settings and checks every value against its range.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let config: AppConfig = figment.extract().map_err(Box::new)?;
        let seconds = |key, value, min, max| within(key, value, min, max, " seconds");
        seconds("access_token_ttl", config.access_token_ttl, 1, MAX_TTL)?;
        seconds("refresh_token_ttl", config.refresh_token_ttl, 1, MAX_TTL)?;
        seconds("leeway", config.leeway, 0, MAX_LEEWAY)?;
        seconds("purge_interval", config.purge_interval, 0, MAX_PURGE_INTERVAL)?;
        seconds("login_failure_window", config.login_failure_window, 1, MAX_FAILURE_WINDOW)?;
        within("hash_queue", config.hash_queue as u64, 1, MAX_HASH_QUEUE, "")?;
        config.databases.main.check()?;
        if config.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if let Some(bad) = config.cors_allowed_origins.iter().find(|origin| !is_exact_origin(origin)) {
            return Err(ConfigError::BadOrigin(bad.clone()));
        }
        Ok(config)
    }

    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway)
    }

    /// The signing secret: the configured one, or the one kept in the data
    /// folder, generated (mode 0600) on first start. Either way it must be at
    /// least [`MIN_SECRET_BYTES`] long.
    pub fn resolve_secret(&self) -> Result<Secret, ConfigError> {
        secret::resolve(self.jwt_secret.as_ref(), &self.data_dir)
    }

    /// `databases.main.url`, or the SQLite file in `data_dir`.
    pub fn database_url(&self) -> String {
        self.databases.main.url.clone().unwrap_or_else(|| default_database_url(&self.data_dir))
    }

    /// How long a session's blocklist row must last to cover every token of
    /// it: the longer of the two lifetimes.
    pub fn session_ttl(&self) -> u64 {
        self.access_token_ttl.max(self.refresh_token_ttl)
    }
}

fn within(key: &'static str, value: u64, min: u64, max: u64, unit: &'static str) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { key, value, min, max, unit })
    }
}

/// `http(s)://host[:port]` and nothing more, as browsers send it in
/// `Origin` (lowercase scheme and host, no trailing slash).
fn is_exact_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: [address] or [address]:port.
        Some(v6) => match v6.split_once(']') {
            Some((address, "")) => (address, None),
            Some((address, rest)) => (address, Some(rest.strip_prefix(':').unwrap_or(""))),
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
        && port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0) && !port.starts_with(['+', '0']))
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("purge_interval", &self.purge_interval)
            .field("leeway", &self.leeway)
            .field("issuer", &self.issuer)
            .field("data_dir", &self.data_dir)
            .field("revocation_cache_capacity", &self.revocation_cache_capacity)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_failure_window", &self.login_failure_window)
            .field("hash_queue", &self.hash_queue)
            .field("cookie_secure", &self.cookie_secure)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("log_format", &self.log_format)
            .field("databases.main", &self.databases.main)
            .finish()
    }
}

#[cfg(test)]
mod tests;
