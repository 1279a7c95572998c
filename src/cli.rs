//! The command line. `jwt-blocklist` (or `serve`) serves the API; the other
//! commands use the same configuration (`Rocket.toml`, `ROCKET_*`,
//! `DATABASE_URL`), print one clear result, and exit 0, or non-zero with a
//! message on standard error. Revocations made here are rows like any other:
//! every running instance enforces them within the contract's bound.

use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};
use rocket::figment::Figment;

use crate::config::{AppConfig, ConfigError, DbConfig};
use crate::db::{self, DbError, Reason, Revocation, SessionId, SessionSweep, Store, TokenId};
use crate::purge::{purge_expired, SKIPPED};

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
    /// No such user, or no such live session.
    #[error("{0}")]
    NotFound(String),
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
        Command::Purge => purge(figment).await,
        Command::Revoke(target) => revoke(figment, target).await,
        Command::Sessions { name } => sessions(figment, &name).await,
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
async fn open(figment: &Figment) -> Result<(AppConfig, Store), CliError> {
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

/// One purge run, as the timer would do it.
async fn purge(figment: &Figment) -> Result<String, CliError> {
    let (_, store) = open(figment).await?;
    let started = Instant::now();
    let result = purge_expired(&store).await;
    store.close().await;
    Ok(match result? {
        Some(counts) => format!("purged {counts} in {:.3} s", started.elapsed().as_secs_f64()),
        None => SKIPPED.to_owned(),
    })
}

async fn revoke(figment: &Figment, target: RevokeTarget) -> Result<String, CliError> {
    let (config, store) = open(figment).await?;
    let report = revoke_with(&store, &config, target).await;
    store.close().await;
    report
}

async fn revoke_with(store: &Store, config: &AppConfig, target: RevokeTarget) -> Result<String, CliError> {
    let RevokeTarget { jti, until, session, user } = target;
    if let Some(jti) = jti {
        let longest = config.session_ttl() + config.leeway;
        let expires_at = until.unwrap_or_else(|| Utc::now() + Duration::seconds(longest as i64));
        let token = Revocation { jti, expires_at, user_id: None, reason: Reason::Manual };
        // No session is known for a bare jti.
        if store.revoke_token(None, &token).await? {
            Ok(format!("revoked token {jti} until {}", expires_at.to_rfc3339()))
        } else {
            Ok(format!("token {jti} was already revoked"))
        }
    } else if let Some(sid) = session {
        match store.session_owner(sid).await? {
            Some(owner) if store.revoke_session(owner, sid, Reason::Manual).await? => {
                Ok(format!("revoked session {sid}"))
            }
            _ => Err(CliError::NotFound(format!("no live session {sid}"))),
        }
    } else if let Some(name) = user {
        let user = user_named(store, &name).await?;
        let sweep =
            SessionSweep { user_id: user.id, keep: None, reason: Reason::Manual, new_password_hash: None };
        let revoked = store.sweep_sessions(&sweep).await?;
        Ok(format!("revoked {revoked} live session(s) of {}", user.username))
    } else {
        unreachable!("clap requires one of --jti, --session, --user")
    }
}

async fn user_named(store: &Store, name: &str) -> Result<crate::db::User, CliError> {
    store.user_by_username(name).await?.ok_or_else(|| CliError::NotFound(format!("no user {name:?}")))
}

async fn sessions(figment: &Figment, name: &str) -> Result<String, CliError> {
    let (_, store) = open(figment).await?;
    let listed = async {
        let user = user_named(&store, name).await?;
        Ok::<_, CliError>((store.sessions_of(user.id).await?, user))
    }
    .await;
    store.close().await;
    let (sessions, user) = listed?;
    let mut report = format!("{} live session(s) of {}", sessions.len(), user.username);
    for session in sessions {
        let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        report.push_str(&format!(
            "\n{}  started {}  refreshed {}  expires {}  ip {}  {}",
            session.id,
            time(session.created_at),
            session.refreshed_at.map_or("never".to_owned(), time),
            time(session.expires_at),
            session.device.ip.map_or("-".to_owned(), |ip| ip.to_string()),
            session.device.user_agent.as_deref().unwrap_or("-"),
        ));
    }
    Ok(report)
}
