//! The signing secret: configured (`jwt_secret`), or generated on first start
//! into the data folder with mode 0600 and reused; either way at least
//! [`MIN_SECRET_BYTES`] long, or the service refuses to start.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use rocket::serde::Deserialize;

use super::ConfigError;

/// Secrets shorter than this are refused at start (RFC 7518 §3.2 asks for an
/// HMAC key at least as long as the hash output).
pub const MIN_SECRET_BYTES: usize = 32;

/// Name of the generated secret inside the data folder.
pub const SECRET_FILE: &str = "jwt_secret";

/// A secret string whose `Debug` never shows the value, so it cannot end up
/// in a log line by accident.
#[derive(Deserialize, Clone, PartialEq, Eq)]
#[serde(crate = "rocket::serde", transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The configured secret, or the one kept in `data_dir`, generated (mode
/// 0600) on first start.
pub(super) fn resolve(configured: Option<&Secret>, data_dir: &Path) -> Result<Secret, ConfigError> {
    match configured {
        Some(secret) if secret.len() < MIN_SECRET_BYTES => Err(ConfigError::ShortSecret(secret.len())),
        Some(secret) => Ok(secret.clone()),
        None => {
            let secret = load_or_generate(data_dir)?;
            match secret.len() {
                len if len < MIN_SECRET_BYTES => {
                    Err(ConfigError::ShortSecretFile { path: data_dir.join(SECRET_FILE), len })
                }
                _ => Ok(secret),
            }
        }
    }
}

fn load_or_generate(data_dir: &Path) -> Result<Secret, ConfigError> {
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
