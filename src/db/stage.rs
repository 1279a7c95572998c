//! The database subsystem as Rocket sees it: `Store` as a rocket_db_pools
//! pool, the migrations at ignite, and the revocation follower from liftoff
//! to shutdown.

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use super::{DbError, Store};
use crate::config::AppConfig;

/// The application's database, configured under `databases.main`.
#[derive(Database)]
#[database("main")]
pub struct Db(Store);

#[rocket::async_trait]
impl rocket_db_pools::Pool for Store {
    type Connection = Store;
    type Error = DbError;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let config: rocket_db_pools::Config =
            figment.extract().map_err(|e| DbError::Config(e.to_string()))?;
        Store::connect(&config).await
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        Ok(self.clone())
    }

    async fn close(&self) {
        Store::close(self).await
    }
}

/// The pool, then the migrations, at ignite; the follower from liftoff to
/// shutdown.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Database", |rocket| async {
        rocket.attach(Db::init()).attach(AdHoc::try_on_ignite("Database migrations", run_migrations)).attach(
            AdHoc::on_liftoff("Revocation follower", |rocket| {
                Box::pin(async move {
                    let Some(db) = Db::fetch(rocket) else { return };
                    let store: Store = (**db).clone();
                    let shutdown = rocket.shutdown();
                    rocket::tokio::spawn(async move {
                        rocket::tokio::select! {
                            _ = store.follow_revocations() => {}
                            _ = shutdown => {}
                        }
                    });
                })
            }),
        )
    })
}

async fn run_migrations(rocket: Rocket<Build>) -> rocket::fairing::Result {
    let (Some(db), Some(config)) = (Db::fetch(&rocket), rocket.state::<AppConfig>()) else {
        // The pool or the configuration has already failed and said why;
        // launch aborts.
        return Ok(rocket);
    };
    db.configure(config.leeway(), config.revocation_cache_capacity);
    match db.migrate().await {
        Ok(()) => {
            log::info!("{} database migrated", db.backend_name());
            Ok(rocket)
        }
        Err(e) => {
            log::error!("cannot migrate the database: {e}");
            Err(rocket)
        }
    }
}
