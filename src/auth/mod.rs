//! Authentication: token encoding and decoding (`jwt`), password hashing
//! (`password`) and the request guards built on them (`guard`). The stage
//! validates the configuration and builds the keys once, at ignite.

pub mod guard;
pub mod jwt;
pub mod password;

use rocket::fairing::AdHoc;

use crate::config::AppConfig;
use jwt::Jwt;
use password::Passwords;

/// Managed state shared by the guards and the auth routes.
pub struct Auth {
    pub jwt: Jwt,
    pub passwords: Passwords,
    pub config: AppConfig,
}

/// Reads and checks the configuration and the signing secret; refuses to
/// start, with a message naming the problem, when either is unusable.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Authentication", |rocket| async {
        let prepared = async {
            let config = AppConfig::from_figment(rocket.figment()).map_err(|e| e.to_string())?;
            let secret = config.resolve_secret().map_err(|e| e.to_string())?;
            let passwords =
                Passwords::new().await.map_err(|_| "cannot initialise password hashing".to_owned())?;
            Ok::<_, String>(Auth { jwt: Jwt::new(&secret, &config), passwords, config })
        };
        match prepared.await {
            Ok(auth) => Ok(rocket.manage(auth.config.clone()).manage(auth)),
            Err(message) => {
                log::error!("refusing to start: {message}");
                Err(rocket)
            }
        }
    })
}
