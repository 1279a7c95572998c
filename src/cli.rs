//! The command line. `jwt-blocklist` (or `serve`) serves the API; the other
//! commands use the same configuration (`Rocket.toml`, `ROCKET_*`,
//! `DATABASE_URL`), print one clear result, and exit 0, or non-zero with a
//! message on standard error. Revocations made here are rows like any other:
//! every running instance enforces them within the contract's bound.

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use clap::{ArgGroup, Parser, Subcommand};
use rocket::figment::Figment;
use uuid::Uuid;

use crate::config::AppConfig;
use crate::db::{Reason, Revocation, SessionSweep, Store};

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
    #[command(group(ArgGroup::new("target").required(true).args(["jti", "session", "user"])))]
    Revoke {
        /// A token's jti
        #[arg(long, value_name = "ID")]
        jti: Option<Uuid>,
        /// With --jti: when the token expires (RFC 3339); by default now plus
        /// the longest token lifetime plus leeway
        #[arg(long, value_name = "TIME", requires = "jti")]
        until: Option<DateTime<Utc>>,
        /// A session id (every token of that login)
        #[arg(long, value_name = "ID")]
        session: Option<Uuid>,
        /// A username: every live session of that user
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// List a user's live sessions, newest first
    Sessions {
        /// The username
        name: String,
    },
}

/// Runs a command other than `serve`: `Ok` is the result line, `Err` the
/// message for standard error.
pub async fn run(command: Command, figment: &Figment) -> ExitCode {
    let result = match command {
        Command::Serve => unreachable!("main serves"),
        Command::Migrate => migrate(figment).await,
        Command::Purge => crate::purge::run_once(figment).await,
        Command::Revoke { jti, until, session, user } => revoke(figment, jti, until, session, user).await,
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

/// Connects with the service's configuration and applies the migrations.
pub async fn open(figment: &Figment) -> Result<(AppConfig, Store), String> {
    let config = AppConfig::from_figment(figment).map_err(|e| e.to_string())?;
    let db_config: rocket_db_pools::Config = figment
        .focus("databases.main")
        .join(("max_connections", 2))
        .extract()
        .map_err(|e| format!("invalid database configuration: {e}"))?;
    let store =
        Store::connect(&db_config).await.map_err(|e| format!("cannot connect to the database: {e}"))?;
    store.migrate().await.map_err(|e| format!("cannot migrate the database: {e}"))?;
    store.configure(config.leeway(), config.revocation_cache_capacity);
    Ok((config, store))
}

async fn migrate(figment: &Figment) -> Result<String, String> {
    let (_, store) = open(figment).await?;
    let report = format!("migrations applied: the {} database is up to date", store.backend_name());
    store.close().await;
    Ok(report)
}

async fn revoke(
    figment: &Figment,
    jti: Option<Uuid>,
    until: Option<DateTime<Utc>>,
    session: Option<Uuid>,
    user: Option<String>,
) -> Result<String, String> {
    let (config, store) = open(figment).await?;
    let failed = |e: crate::db::DbError| e.to_string();
    let report = if let Some(jti) = jti {
        let longest = config.access_token_ttl.max(config.refresh_token_ttl) + config.leeway;
        let expires_at = until.unwrap_or_else(|| Utc::now() + Duration::seconds(longest as i64));
        let token = Revocation { jti, expires_at, user_id: None, reason: Reason::Manual };
        if store.revoke_token(&token, jti).await.map_err(failed)? {
            Ok(format!("revoked token {jti} until {}", expires_at.to_rfc3339()))
        } else {
            Ok(format!("token {jti} was already revoked"))
        }
    } else if let Some(sid) = session {
        match store.session_owner(sid).await.map_err(failed)? {
            Some(owner) if store.revoke_session(owner, sid, Reason::Manual).await.map_err(failed)? => {
                Ok(format!("revoked session {sid}"))
            }
            _ => Err(format!("no live session {sid}")),
        }
    } else if let Some(name) = user {
        let user = store.user_by_username(&name).await.map_err(failed)?.ok_or(format!("no user {name:?}"))?;
        let sweep =
            SessionSweep { user_id: user.id, keep: None, reason: Reason::Manual, new_password_hash: None };
        let revoked = store.sweep_sessions(&sweep).await.map_err(failed)?;
        Ok(format!("revoked {revoked} live session(s) of {}", user.username))
    } else {
        Err("say what to revoke: --jti, --session or --user".to_owned())
    };
    store.close().await;
    report
}

async fn sessions(figment: &Figment, name: &str) -> Result<String, String> {
    let (_, store) = open(figment).await?;
    let failed = |e: crate::db::DbError| e.to_string();
    let user = store.user_by_username(name).await.map_err(failed)?.ok_or(format!("no user {name:?}"))?;
    let sessions = store.sessions_of(user.id).await.map_err(failed)?;
    store.close().await;
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
