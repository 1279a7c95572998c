//! Authentication: token encoding and decoding (`jwt`), password hashing
//! (`password`) with its queue (`hash_queue`) on low-priority threads
//! (`hashers`), login
//! throttling (`throttle`, its `tarpit`, and what one `client` is), the cookie transport (`cookies`) and its CSRF
//! protection (`csrf`), and the request
//! guards built on them (`guard`). The stage builds the keys once, at
//! ignite, from the configuration the configuration stage manages.

pub mod client;
pub mod cookies;
pub mod csrf;
pub mod guard;
pub mod hash_queue;
pub mod hashers;
pub mod jwt;
pub mod password;
pub mod tarpit;
pub mod throttle;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;

use crate::config::AppConfig;
use jwt::Jwt;
use password::Passwords;
use throttle::Throttle;

/// Managed state shared by the guards and the auth routes.
pub struct Auth {
    pub jwt: Jwt,
    pub passwords: Passwords,
    pub throttle: Arc<Throttle>,
}

/// Builds the keys from the signing secret, the hashing threads and the
/// throttle from the managed configuration (attach the configuration stage
/// first); refuses to start, with a message naming the problem, when the
/// secret is unusable.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Authentication", |rocket| async {
        let Some(config) = rocket.state::<AppConfig>().cloned() else {
            // The configuration stage has already refused and said why;
            // launch aborts.
            return Ok(rocket);
        };
        let prepared = async {
            let secret = config.resolve_secret().map_err(|e| e.to_string())?;
            let passwords = Passwords::new(config.hash_queue)
                .await
                .map_err(|_| "cannot initialise password hashing".to_owned())?;
            let window = Duration::from_secs(config.login_failure_window);
            let throttle = Arc::new(Throttle::new(config.login_max_failures, window));
            let jwt = Jwt::new(&secret, &config).map_err(|e| e.to_string())?;
            Ok::<_, String>(Auth { jwt, passwords, throttle })
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
