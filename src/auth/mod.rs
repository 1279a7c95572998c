//! Authentication: token encoding and decoding (`jwt`), password hashing
//! (`password`) with its queue (`hash_queue`) on low-priority threads
//! (`hashers`), login
//! throttling (`throttle`, its `tarpit`, and what one `client` is), the cookie transport (`cookies`) and its CSRF
//! protection (`csrf`), and the request
//! guards built on them (`guard`). The stage builds the keys once, at
//! ignite, from the configuration the configuration stage manages.

pub mod client;
pub mod clients;
pub mod cookies;
pub mod csrf;
pub mod guard;
pub mod hash_queue;
pub mod hashers;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod tarpit;
pub mod throttle;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;

use crate::config::{AppConfig, Secret};
use crate::db::Store;
use clients::ClientSecrets;
use jwt::Jwt;
use keys::material::SealingKey;
use keys::{lifecycle, Keys};
use password::Passwords;
use throttle::Throttle;

/// Managed state shared by the guards and the auth routes.
pub struct Auth {
    pub jwt: Jwt,
    pub passwords: Passwords,
    pub throttle: Arc<Throttle>,
    /// The keyed hash of resource servers' secrets.
    pub clients: ClientSecrets,
    /// The key that signs revocation feed cursors.
    pub cursors: crate::feed::cursor::CursorKey,
}

/// Builds the signing keys, the hashing threads and the throttle from the
/// managed configuration and store (attach the configuration and database
/// stages first). Under ES256 and EdDSA it makes the deployment's first key
/// if there is none, and refuses to start, saying why, when this
/// `jwt_secret` cannot open the keys the database holds (it never makes a
/// second key set); under any algorithm, when the secret is unusable.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Authentication", |rocket| async {
        let (Some(config), Some(store)) =
            (rocket.state::<AppConfig>().cloned(), rocket.state::<Store>().cloned())
        else {
            // The configuration or database stage has already refused and
            // said why; launch aborts.
            return Ok(rocket);
        };
        let prepared = async {
            let secret = config.resolve_secret().map_err(|e| e.to_string())?;
            let keys = match config.jwt_algorithm.is_asymmetric() {
                true => Some(shared_keys(&store, &secret, &config).await?),
                false => None,
            };
            let passwords = Passwords::new(config.hash_queue)
                .await
                .map_err(|_| "cannot initialise password hashing".to_owned())?;
            let window = Duration::from_secs(config.login_failure_window);
            let throttle = Arc::new(Throttle::new(config.login_max_failures, window));
            let jwt = Jwt::new(&secret, &config, keys).map_err(|e| e.to_string())?;
            let clients = ClientSecrets::derive(&secret);
            let cursors = crate::feed::cursor::CursorKey::derive(&secret);
            Ok::<_, String>(Auth { jwt, passwords, throttle, clients, cursors })
        };
        match prepared.await {
            Ok(auth) => Ok(rocket.manage(auth)),
            Err(message) => {
                log::error!("refusing to start: {message}");
                Err(rocket)
            }
        }
    })
}

/// The deployment's keys of the configured algorithm: its first one made
/// if there is none, then every one that may still sign opened.
async fn shared_keys(store: &Store, secret: &Secret, config: &AppConfig) -> Result<Keys, String> {
    let sealing = SealingKey::derive(secret);
    let algorithm = config.jwt_algorithm;
    if let Some(kid) = lifecycle::make_first(store, &sealing, algorithm).await.map_err(|e| e.to_string())? {
        log::info!("made the first {} signing key, {kid}", algorithm.as_str());
    }
    let refresh_lifetime = chrono::Duration::seconds((config.refresh_token_ttl + config.leeway) as i64);
    Keys::new(store.clone(), algorithm, sealing, refresh_lifetime).map_err(|error| {
        format!("{error}: every instance of a deployment needs the jwt_secret that sealed its keys")
    })
}

/// Makes a new signing key every `key_rotation_interval` (checked each
/// minute; instances running together make one between them), until
/// shutdown.
pub fn key_rotation() -> AdHoc {
    AdHoc::on_liftoff("Signing key rotation", |rocket| {
        Box::pin(async move {
            let (Some(config), Some(store), Some(auth)) = (
                rocket.state::<AppConfig>().cloned(),
                rocket.state::<Store>().cloned(),
                rocket.state::<Auth>(),
            ) else {
                return;
            };
            let (Some(keys), true) = (auth.jwt.keys(), config.key_rotation_interval > 0) else { return };
            let sealing = keys.sealing().clone();
            let interval = chrono::Duration::seconds(config.key_rotation_interval as i64);
            let mut shutdown = rocket.shutdown();
            rocket::tokio::spawn(async move {
                let mut ticker = rocket::tokio::time::interval(Duration::from_secs(60));
                loop {
                    rocket::tokio::select! {
                        _ = ticker.tick() => {}
                        _ = &mut shutdown => break,
                    }
                    if lifecycle::rotation_due(&store, config.jwt_algorithm, interval, chrono::Utc::now()) {
                        match lifecycle::rotate(&store, &sealing, &config).await {
                            Ok(rotated) => log::info!("signing key rotation: {rotated:?}"),
                            Err(error) => log::warn!("signing key rotation failed: {error}"),
                        }
                    }
                }
            });
        })
    })
}

/// Drops the login throttle's passed windows on a timer, until shutdown.
pub fn throttle_sweeper() -> AdHoc {
    AdHoc::on_liftoff("Login throttle sweeper", |rocket| {
        Box::pin(async move {
            let Some(auth) = rocket.state::<Auth>() else { return };
            let throttle = auth.throttle.clone();
            let mut shutdown = rocket.shutdown();
            rocket::tokio::spawn(async move {
                let mut ticker = rocket::tokio::time::interval(throttle.sweep_period());
                loop {
                    rocket::tokio::select! {
                        _ = ticker.tick() => { throttle.sweep(); }
                        _ = &mut shutdown => break,
                    }
                }
            });
        })
    })
}
