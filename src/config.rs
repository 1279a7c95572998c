//! The typed configuration: the flat keys of the Rocket figment that the HTTP
//! contract names (`jwt_secret`, `access_token_ttl`, ...), their defaults and
//! ranges, and the one place the signing secret is resolved and validated at
//! ignite. Errors name the key at fault.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use rocket::figment::Figment;
use rocket::serde::Deserialize;

/// HS256 keys shorter than this are refused at start (RFC 7518 §3.2 asks for a
/// key at least as long as the hash output).
pub const MIN_SECRET_BYTES: usize = 32;

/// Name of the generated secret inside the data folder.
const SECRET_FILE: &str = "jwt_secret";

/// Longest token lifetime accepted: ten years, far inside what a timestamp
/// holds, so `now + ttl` can never overflow.
const MAX_TTL: u64 = 10 * 365 * 86_400;
/// Clock skew beyond a day is a broken clock, not skew.
const MAX_LEEWAY: u64 = 86_400;
/// A purge timer longer than a year is a typo.
const MAX_PURGE_INTERVAL: u64 = 365 * 86_400;
/// A throttling window longer than a day locks people out, not guessers.
const MAX_FAILURE_WINDOW: u64 = 86_400;
/// More places in the hashing queue than this only hides an overload.
const MAX_HASH_QUEUE: u64 = 65_536;

/// Application settings read from `Rocket.toml` and `ROCKET_*` variables.
#[derive(Deserialize, Clone)]
#[serde(crate = "rocket::serde")]
pub struct AppConfig {
    /// The HS256 key. `None` means: use (or create) `<data_dir>/jwt_secret`.
    #[serde(default)]
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
    pub log_format: crate::logging::LogFormat,
}

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
    pub fn revocation_cache_capacity() -> usize {
        crate::db::DEFAULT_CACHE_CAPACITY
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

/// A duration in seconds within `min..=max`.
fn in_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    within(key, value, min, max, " seconds")
}

/// A count within `min..=max`.
fn count_in_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    within(key, value, min, max, "")
}

fn within(key: &'static str, value: u64, min: u64, max: u64, unit: &'static str) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { key, value, min, max, unit })
    }
}

impl AppConfig {
    /// Extracts the settings and checks every value against its range.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let config: AppConfig = figment.extract().map_err(Box::new)?;
        in_range("access_token_ttl", config.access_token_ttl, 1, MAX_TTL)?;
        in_range("refresh_token_ttl", config.refresh_token_ttl, 1, MAX_TTL)?;
        in_range("leeway", config.leeway, 0, MAX_LEEWAY)?;
        in_range("purge_interval", config.purge_interval, 0, MAX_PURGE_INTERVAL)?;
        in_range("login_failure_window", config.login_failure_window, 1, MAX_FAILURE_WINDOW)?;
        count_in_range("hash_queue", config.hash_queue as u64, 1, MAX_HASH_QUEUE)?;
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
        match &self.jwt_secret {
            Some(secret) if secret.0.len() < MIN_SECRET_BYTES => {
                Err(ConfigError::ShortSecret(secret.0.len()))
            }
            Some(secret) => Ok(secret.clone()),
            None => {
                let path = self.data_dir.join(SECRET_FILE);
                let secret = load_or_generate_secret(&self.data_dir)?;
                match secret.0.len() {
                    len if len < MIN_SECRET_BYTES => Err(ConfigError::ShortSecretFile { path, len }),
                    _ => Ok(secret),
                }
            }
        }
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

fn load_or_generate_secret(data_dir: &Path) -> Result<Secret, ConfigError> {
    let path = data_dir.join(SECRET_FILE);
    let io_error = |action, path: &Path| {
        let path = path.to_owned();
        move |source| ConfigError::Io { action, path, source }
    };
    match fs::read_to_string(&path) {
        Ok(text) => return Ok(Secret(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("read", &path)(e)),
    }

    fs::create_dir_all(data_dir).map_err(io_error("create the data folder", data_dir))?;
    let mut bytes = [0u8; 48];
    OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_error("write", &path))?;
            log::warn!("no jwt_secret configured: generated one into {} (mode 0600)", path.display());
            Ok(Secret(secret))
        }
        // Another instance sharing the data folder won the race: use its secret.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::read_to_string(&path)
            .map(|text| Secret(text.trim().to_owned()))
            .map_err(io_error("read", &path)),
        Err(e) => Err(io_error("create", &path)(e)),
    }
}

/// A secret string whose `Debug` never shows the value, so it cannot end up
/// in a log line by accident.
#[derive(Deserialize, Clone)]
#[serde(crate = "rocket::serde", transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
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
            .finish()
    }
}
