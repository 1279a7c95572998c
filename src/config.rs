//! The typed configuration: the flat keys of the Rocket figment that the HTTP
//! contract names (`jwt_secret`, `access_token_ttl`, ...), their defaults, and
//! the one place the signing secret is resolved and validated at ignite.

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
}

impl AppConfig {
    /// Extracts the settings and checks the values that would make the
    /// service unsafe or useless, with a message that names the key.
    pub fn from_figment(figment: &Figment) -> Result<Self, String> {
        let config: AppConfig = figment.extract().map_err(|e| format!("invalid configuration: {e}"))?;
        if config.access_token_ttl == 0 {
            return Err("access_token_ttl must be at least 1 second".into());
        }
        if config.refresh_token_ttl == 0 {
            return Err("refresh_token_ttl must be at least 1 second".into());
        }
        if config.issuer.is_empty() {
            return Err("issuer must not be empty".into());
        }
        Ok(config)
    }

    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway)
    }

    /// The signing secret: the configured one, or the one kept in the data
    /// folder, generated (mode 0600) on first start. Either way it must be at
    /// least [`MIN_SECRET_BYTES`] long.
    pub fn resolve_secret(&self) -> Result<Secret, String> {
        let secret = match &self.jwt_secret {
            Some(secret) => secret.clone(),
            None => load_or_generate_secret(&self.data_dir)?,
        };
        if secret.0.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "jwt_secret is {} bytes long; it must be at least {MIN_SECRET_BYTES} bytes \
                 (set ROCKET_JWT_SECRET to a longer value, or unset it to have one generated)",
                secret.0.len()
            ));
        }
        Ok(secret)
    }
}

fn load_or_generate_secret(data_dir: &Path) -> Result<Secret, String> {
    let path = data_dir.join(SECRET_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => return Ok(Secret(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }

    fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data folder {}: {e}", data_dir.display()))?;
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
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            log::warn!("no jwt_secret configured: generated one into {} (mode 0600)", path.display());
            Ok(Secret(secret))
        }
        // Another instance sharing the data folder won the race: use its secret.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::read_to_string(&path)
            .map(|text| Secret(text.trim().to_owned()))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
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
            .finish()
    }
}
