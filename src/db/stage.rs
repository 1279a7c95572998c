//! The database subsystem as Rocket sees it: at ignite, the store is opened
//! ([`open`](super::open): connect, migrate) with the managed configuration
//! and managed itself; the revocation follower runs from liftoff to
//! shutdown, and the pool is closed at shutdown.

use rocket::fairing::AdHoc;

use crate::config::AppConfig;

/// Opens the store at ignite and manages it (routes and guards take
/// `&State<Store>`); needs the configuration stage attached before it.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Database", |rocket| async {
        let Some(config) = rocket.state::<AppConfig>().cloned() else {
            // The configuration stage has already refused and said why;
            // launch aborts.
            return Ok(rocket);
        };
        let store = match super::open(&config.databases.main, &config).await {
            Ok(store) => store,
            Err(error) => {
                log::error!("refusing to start: cannot open the database: {error}");
                return Err(rocket);
            }
        };
        log::info!("{} database migrated", store.backend_name());
        let follower = store.clone();
        let closing = store.clone();
        Ok(rocket
            .manage(store)
            .attach(AdHoc::on_liftoff("Revocation follower", |rocket| {
                Box::pin(async move {
                    let shutdown = rocket.shutdown();
                    rocket::tokio::spawn(async move {
                        rocket::tokio::select! {
                            _ = follower.follow_revocations() => {}
                            _ = shutdown => {}
                        }
                    });
                })
            }))
            .attach(AdHoc::on_shutdown("Database pool", |_| Box::pin(async move { closing.close().await }))))
    })
}
