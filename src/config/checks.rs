//! What a valid configuration is: each value's range, the shape of an
//! origin and of a base URL, and the error that names the key at fault.

use std::io;
use std::path::PathBuf;

use super::MIN_SECRET_BYTES;

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
    #[error("public_url: {0:?} is not an absolute http(s) URL without a query or fragment")]
    BadPublicUrl(String),
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

pub(super) fn within(
    key: &'static str,
    value: u64,
    min: u64,
    max: u64,
    unit: &'static str,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { key, value, min, max, unit })
    }
}

/// `http(s)://host[:port][/path]`, no query, fragment or credentials.
pub(super) fn is_base_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && !authority.contains('@')
        && !rest.contains(['?', '#', ' '])
}

/// `http(s)://host[:port]` and nothing more, as browsers send it in
/// `Origin` (lowercase scheme and host, no trailing slash).
pub(super) fn is_exact_origin(origin: &str) -> bool {
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
