//! The command line. `jwt-blocklist` (or `serve`) serves the API; the other
//! commands use the same configuration (`Rocket.toml`, `ROCKET_*`,
//! `DATABASE_URL`), print one clear result, and exit 0, or non-zero with a
//! message on standard error. Revocations, keys and clients changed here are
//! rows like any other: every running instance follows them within the
//! contract's bound. `revocations.rs` has purge, revoke and sessions;
//! `credentials.rs` has keys and clients.

mod credentials;
mod revocations;

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};
use rocket::figment::Figment;

use crate::config::{AppConfig, ConfigError, DbConfig};
use crate::db::{self, DbError, SessionId, Store, TokenId};

/// Why a command failed; its text (causes included) goes to standard error.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] DbError),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] DbError),
    #[error(transparent)]
    Database(#[from] DbError),
    /// No such user, session, key or client.
    #[error("{0}")]
    NotFound(String),
    /// What the command asks cannot be done here (no keys under HS256, a
    /// client name taken or malformed).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::lifecycle::KeyChangeError),
}

#[derive(Parser)]
#[command(name = "jwt-blocklist", version, about = "Issues JWTs and lets users log out for real.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API (the default)
    Serve,
    /// Apply the database migrations, then exit
    Migrate,
    /// Delete the rows whose tokens have expired (plus leeway), once
    Purge,
    /// Revoke a token, a session, or every live session of a user
    Revoke(RevokeTarget),
    /// List a user's live sessions, newest first
    Sessions {
        /// The username
        name: String,
    },
    /// The signing keys (ES256, EdDSA): list, rotate, revoke
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The resource servers that may introspect and follow the revocation feed
    #[command(subcommand)]
    Clients(ClientsCommand),
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// One line per key: kid, algorithm, state (next, active, retired, revoked), dates
    List,
    /// Publish a new key now; it signs jwks_max_age + leeway later
    Rotate,
    /// Withdraw a key everywhere at once (a fresh key signs if it was the active one)
    Revoke {
        /// The key's kid (base64url: it may begin with '-')
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its client_id and client_secret once
    Add {
        /// 1-64 of A-Za-z0-9_.-
        name: String,
    },
    /// One line per client
    List,
    /// Remove a client: its credentials stop working, its feed connections close
    Remove {
        /// The client's name (client_id)
        name: String,
    },
}

/// What `revoke` revokes: exactly one of `--jti`, `--session`, `--user`.
#[derive(Args)]
#[command(group(ArgGroup::new("target").required(true).args(["jti", "session", "user"])))]
pub struct RevokeTarget {
    /// A token's jti
    #[arg(long, value_name = "ID")]
    pub jti: Option<TokenId>,
    /// With --jti: when the token expires (RFC 3339); by default now plus
    /// the longest token lifetime plus leeway
    #[arg(long, value_name = "TIME", requires = "jti")]
    pub until: Option<DateTime<Utc>>,
    /// A session id (every token of that login)
    #[arg(long, value_name = "ID")]
    pub session: Option<SessionId>,
    /// A username: every live session of that user
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// Runs a command other than `serve`: `Ok` is the result line, `Err` the
/// message for standard error.
pub async fn run(command: Command, figment: &Figment) -> ExitCode {
    let result = match command {
        Command::Serve => unreachable!("main serves"),
        Command::Migrate => migrate(figment).await,
        Command::Purge => revocations::purge(figment).await,
        Command::Revoke(target) => revocations::revoke(figment, target).await,
        Command::Sessions { name } => revocations::sessions(figment, &name).await,
        Command::Keys(command) => credentials::keys(figment, command).await,
        Command::Clients(command) => credentials::clients(figment, command).await,
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("jwt-blocklist: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the store as the server does ([`db::open`]), with the service's
/// configuration and a pool of two connections (one command needs no more).
pub(super) async fn open(figment: &Figment) -> Result<(AppConfig, Store), CliError> {
    let config = AppConfig::from_figment(figment)?;
    let database = DbConfig { max_connections: 2, ..config.databases.main.clone() };
    let store = db::open(&database, &config).await.map_err(|error| match error {
        DbError::Migrate(_) => CliError::Migrate(error),
        _ => CliError::Connect(error),
    })?;
    Ok((config, store))
}

async fn migrate(figment: &Figment) -> Result<String, CliError> {
    let (_, store) = open(figment).await?;
    let report = format!("migrations applied: the {} database is up to date", store.backend_name());
    store.close().await;
    Ok(report)
}
