//! The database subsystem as Rocket sees it: at ignite, the store is opened
//! ([`open`](super::open): connect, migrate) with the managed configuration
//! and managed itself; the revocation follower runs from liftoff to
//! shutdown on a thread of its own, and the pool is closed at shutdown.

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
                let shutdown = rocket.shutdown();
                Box::pin(async move { follow_on_its_own_thread(follower, shutdown) })
            }))
            .attach(AdHoc::on_shutdown("Database pool", |_| Box::pin(async move { closing.close().await }))))
    })
}

/// Runs the follower on a thread and runtime of its own until shutdown (or
/// until the runtime that launched it ends, as a test's does): however busy
/// the request workers are, its polls never wait behind requests in their
/// queue. Its tasks (eviction, the feed's batches, the wake-ups) and its
/// own connections live on that runtime too.
fn follow_on_its_own_thread(follower: super::Store, shutdown: rocket::Shutdown) {
    // Dropped with Rocket's runtime: the follower then stops too.
    let (alive, launcher_gone) = rocket::tokio::sync::oneshot::channel::<()>();
    rocket::tokio::spawn(async move {
        let _alive = alive;
        std::future::pending::<()>().await
    });
    let follow = async move {
        rocket::tokio::select! {
            _ = follower.follow_revocations() => {}
            _ = shutdown => {}
            _ = launcher_gone => {}
        }
    };
    let spawned = std::thread::Builder::new().name("revocation-follower".into()).spawn(move || {
        match rocket::tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(follow),
            Err(error) => {
                log::error!("revocation follower: no runtime of its own ({error}); checks use the database")
            }
        }
    });
    if let Err(error) = spawned {
        log::error!("revocation follower: no thread of its own ({error}); checks use the database");
    }
}
