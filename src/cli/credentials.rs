//! The commands for the signing keys (`keys list | rotate | revoke KID`) and
//! the resource-server clients (`clients add NAME | list | remove NAME`).

use chrono::{DateTime, SecondsFormat, Utc};
use rocket::figment::Figment;

use super::{open, CliError, ClientsCommand, KeysCommand};
use crate::auth::clients::{is_valid_name, ClientSecrets};
use crate::auth::keys::lifecycle;
use crate::auth::keys::material::SealingKey;
use crate::db::{Revoked, Rotated};

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) async fn keys(figment: &Figment, command: KeysCommand) -> Result<String, CliError> {
    let (config, store) = open(figment).await?;
    let result = async {
        let now = Utc::now();
        match command {
            KeysCommand::List => {
                let credentials = store.credentials();
                let mut lines = vec![format!("{} signing key(s)", credentials.keys.len())];
                for key in &credentials.keys {
                    let optional = |at: Option<DateTime<Utc>>| at.map_or("-".to_owned(), time);
                    lines.push(format!(
                        "{}  {}  {}  created {}  signs from {}  retired {}  published until {}  revoked {}",
                        key.kid,
                        key.alg,
                        key.state(now).as_str(),
                        time(key.created_at),
                        time(key.signs_from),
                        optional(key.retired_at),
                        optional(key.published_until),
                        optional(key.revoked_at),
                    ));
                }
                Ok(lines.join("\n"))
            }
            KeysCommand::Rotate => {
                if !config.jwt_algorithm.is_asymmetric() {
                    return Err(CliError::Refused(
                        "jwt_algorithm is HS256: there are no signing keys".into(),
                    ));
                }
                let sealing = SealingKey::derive(&config.resolve_secret()?);
                Ok(match lifecycle::rotate(&store, &sealing, &config).await? {
                    Rotated::Next { kid, signs_from } => {
                        format!("published {kid}; it signs from {}", time(signs_from))
                    }
                    Rotated::AlreadyPending { kid, signs_from } => {
                        format!("a rotation is already pending: {kid} signs from {}", time(signs_from))
                    }
                })
            }
            KeysCommand::Revoke { kid } => {
                let sealing = SealingKey::derive(&config.resolve_secret()?);
                match lifecycle::revoke(&store, &sealing, &config, &kid).await? {
                    Revoked::Active { replacement } => {
                        Ok(format!("revoked {kid}, the active key; {replacement} signs from now"))
                    }
                    Revoked::Published => Ok(format!("revoked {kid}")),
                    Revoked::NotFound => Err(CliError::NotFound(format!("no live key {kid}"))),
                }
            }
        }
    }
    .await;
    store.close().await;
    result
}

pub(super) async fn clients(figment: &Figment, command: ClientsCommand) -> Result<String, CliError> {
    let (config, store) = open(figment).await?;
    let result = async {
        match command {
            ClientsCommand::Add { name } => {
                if !is_valid_name(&name) {
                    return Err(CliError::Refused(format!(
                        "{name:?}: a client name is 1-64 of A-Za-z0-9_.-"
                    )));
                }
                let secret = ClientSecrets::generate();
                let hash = ClientSecrets::derive(&config.resolve_secret()?).hash(&secret);
                match store.add_client(&name, &hash).await {
                    Ok(()) => Ok(format!("client_id: {name}\nclient_secret: {secret}")),
                    Err(error) if error.is_unique_violation() => {
                        Err(CliError::Refused(format!("a client named {name} exists")))
                    }
                    Err(error) => Err(error.into()),
                }
            }
            ClientsCommand::List => {
                let credentials = store.credentials();
                let mut lines = vec![format!("{} client(s)", credentials.clients.len())];
                lines.extend(
                    credentials.clients.iter().map(|c| format!("{}  added {}", c.name, time(c.created_at))),
                );
                Ok(lines.join("\n"))
            }
            ClientsCommand::Remove { name } => match store.remove_client(&name).await? {
                true => Ok(format!("removed client {name}")),
                false => Err(CliError::NotFound(format!("no client {name}"))),
            },
        }
    }
    .await;
    store.close().await;
    result
}
