//! The commands that act on revocations and sessions: `purge`, `revoke`
//! and `sessions`.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rocket::figment::Figment;

use super::{open, CliError, RevokeTarget};
use crate::config::AppConfig;
use crate::db::{Reason, Revocation, SessionSweep, Store};
use crate::purge::{purge_expired, SKIPPED};

/// One purge run, as the timer would do it.
pub(super) async fn purge(figment: &Figment) -> Result<String, CliError> {
    let (_, store) = open(figment).await?;
    let started = Instant::now();
    let result = purge_expired(&store).await;
    store.close().await;
    Ok(match result? {
        Some(counts) => format!("purged {counts} in {:.3} s", started.elapsed().as_secs_f64()),
        None => SKIPPED.to_owned(),
    })
}

pub(super) async fn revoke(figment: &Figment, target: RevokeTarget) -> Result<String, CliError> {
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

pub(super) async fn sessions(figment: &Figment, name: &str) -> Result<String, CliError> {
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
