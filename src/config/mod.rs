//! The typed configuration: the flat keys of the Rocket figment that the HTTP
//! contract names (`jwt_secret`, `access_token_ttl`, ...) and
//! `databases.main`, each with its one default and its range. [`stage`]
//! reads and checks it once, at ignite, and manages it; every other stage
//! and every route reads it from Rocket's state. Errors name the key at
//! fault. `Rocket.toml` shows every key with its default (a test compares).

mod checks;
mod database;
mod secret;

pub use checks::ConfigError;
pub use database::{default_database_url, DbConfig};
pub use secret::{Secret, MIN_SECRET_BYTES, SECRET_FILE};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::serde::{Deserialize, Serialize};

use checks::{is_base_url, is_exact_origin, within};

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
    /// How tokens are signed: ES256 (the default) or EdDSA with keys in the
    /// database, or HS256 with `jwt_secret`.
    #[serde(default)]
    pub jwt_algorithm: JwtAlgorithm,
    /// The base URL other services reach this one at; `None`: this
    /// instance's `http://<address>:<port>` ([`AppConfig::public_url`]).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Seconds the JWKS may be cached; a new key is published this long
    /// (plus `leeway`) before it signs.
    #[serde(default = "defaults::jwks_max_age")]
    pub jwks_max_age: u64,
    /// Seconds between new signing keys; 0 turns rotation by time off.
    #[serde(default = "defaults::key_rotation_interval")]
    pub key_rotation_interval: u64,
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

/// `jwt_algorithm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(crate = "rocket::serde")]
pub enum JwtAlgorithm {
    /// ECDSA P-256 with SHA-256, keys in the database.
    #[default]
    ES256,
    /// Ed25519, keys in the database.
    EdDSA,
    /// HMAC-SHA256 with `jwt_secret`: only this service can verify.
    HS256,
}

impl JwtAlgorithm {
    /// Whether tokens are signed with keys from the database, published in
    /// the JWKS.
    pub fn is_asymmetric(self) -> bool {
        self != JwtAlgorithm::HS256
    }

    /// The name JWS gives it (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
            JwtAlgorithm::HS256 => "HS256",
        }
    }
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
    pub fn jwks_max_age() -> u64 {
        300
    }
    /// 90 days.
    pub fn key_rotation_interval() -> u64 {
        7_776_000
    }
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
        seconds("jwks_max_age", config.jwks_max_age, 0, MAX_LEEWAY)?;
        if config.key_rotation_interval != 0 {
            seconds("key_rotation_interval", config.key_rotation_interval, 3_600, MAX_TTL)?;
        }
        if let Some(url) = config.public_url.as_deref().filter(|url| !is_base_url(url)) {
            return Err(ConfigError::BadPublicUrl(url.to_owned()));
        }
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

    /// The base URL every URL of the discovery documents starts with:
    /// `public_url` without a trailing slash, or this instance's
    /// `http://<address>:<port>` (the port it is listening on).
    pub fn public_url(&self, rocket: &rocket::Config) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => match rocket.address {
                std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}", rocket.port),
                v4 => format!("http://{v4}:{}", rocket.port),
            },
        }
    }

    /// How long a session's blocklist row must last to cover every token of
    /// it: the longer of the two lifetimes.
    pub fn session_ttl(&self) -> u64 {
        self.access_token_ttl.max(self.refresh_token_ttl)
    }
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
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field("public_url", &self.public_url)
            .field("jwks_max_age", &self.jwks_max_age)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .field("databases.main", &self.databases.main)
            .finish()
    }
}

#[cfg(test)]
mod tests;
