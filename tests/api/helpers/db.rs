//! One test's database: a Postgres database with a random name, or an SQLite
//! file in a folder of its own, removed when the last user lets go; and SQL
//! run on it as a DBA would.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{Connection, Executor};
use uuid::Uuid;

use super::Backend;

/// The Postgres server tests create their databases on. Never skipped: if it
/// cannot be reached, the Postgres half of the suite fails.
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `postgres://user@host:port/db` → (`postgres://user@`, `host:port`).
fn split_admin_url() -> (String, String) {
    let admin = admin_url();
    let without_db = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_owned();
    let (prefix, host) = without_db.rsplit_once('@').expect("TEST_DATABASE_URL names user@host");
    (format!("{prefix}@"), host.to_owned())
}

/// One test's database, dropped (or deleted) when the last user lets go.
pub struct TestDb {
    pub backend: Backend,
    name: String,
    folder: PathBuf,
    /// The Postgres role that owns the database and that the service and
    /// these helpers connect as: the admin role, unless [`create_owned`].
    ///
    /// [`create_owned`]: TestDb::create_owned
    owner: Option<String>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Arc<TestDb> {
        TestDb::create_as(backend, None).await
    }

    /// A database owned by a role of its own that is not a superuser, as
    /// the README's Postgres section sets one up (on SQLite, as `create`).
    pub async fn create_owned(backend: Backend) -> Arc<TestDb> {
        let owner = format!("jwtbl_owner_{}", Uuid::new_v4().simple());
        TestDb::create_as(backend, (backend == Backend::Postgres).then_some(owner)).await
    }

    async fn create_as(backend: Backend, owner: Option<String>) -> Arc<TestDb> {
        let name = format!("jwtbl_test_{}", Uuid::new_v4().simple());
        let folder = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&folder).expect("temp folder");
        if backend == Backend::Postgres {
            let mut admin = sqlx::PgConnection::connect(&admin_url())
                .await
                .expect("Postgres must be running for the tests (see README)");
            if let Some(owner) = &owner {
                admin.execute(format!("CREATE ROLE {owner} LOGIN").as_str()).await.expect("create owner");
            }
            let owned_by = owner.as_ref().map(|owner| format!(" OWNER {owner}")).unwrap_or_default();
            admin
                .execute(format!("CREATE DATABASE \"{name}\"{owned_by}").as_str())
                .await
                .expect("create test database");
        }
        Arc::new(TestDb { backend, name, folder, owner })
    }

    /// A per-test folder (the app's data_dir, the SQLite file).
    pub fn folder(&self) -> &PathBuf {
        &self.folder
    }

    pub fn url(&self) -> String {
        match self.backend {
            Backend::Postgres => match &self.owner {
                Some(owner) => self.url_as(owner),
                None => {
                    let (prefix, host) = split_admin_url();
                    format!("{prefix}{host}/{}", self.name)
                }
            },
            Backend::Sqlite => format!("sqlite://{}", self.folder.join("app.db").display()),
        }
    }

    /// The same Postgres database reached through another local port.
    pub fn url_through(&self, port: u16) -> String {
        let (prefix, _) = split_admin_url();
        format!("{prefix}127.0.0.1:{port}/{}", self.name)
    }

    /// Postgres host:port, for proxies.
    pub fn postgres_address() -> String {
        split_admin_url().1
    }

    /// Runs SQL as a DBA would, on a connection of its own.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.expect("connect");
                conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.expect("connect");
                conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Runs SQL as a DBA would and returns the database's refusal, if any.
    pub async fn try_execute(&self, sql: &str) -> Result<(), String> {
        let result = match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.expect("connect");
                conn.execute(sql).await.map(drop)
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.expect("connect");
                conn.execute(sql).await.map(drop)
            }
        };
        result.map_err(|error| error.to_string())
    }

    /// Revokes `id` (a jti or a sid) the way the README tells a DBA to:
    /// a bare INSERT of the two columns without defaults. `expires_at` is
    /// SQL text, in whatever form a DBA would type it.
    pub async fn revoke_by_hand(&self, id: impl std::fmt::Display, expires_at: &str) {
        self.execute(&hand_revocation(id, expires_at)).await;
    }

    /// A single integer, e.g. `SELECT count(*) FROM users`.
    pub async fn count(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
        if self.backend == Backend::Postgres {
            let name = self.name.clone();
            let owner = self.owner.clone();
            // Drop may run inside a runtime: do the async cleanup on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.ok()?;
                    let dropped = admin
                        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                        .await
                        .ok();
                    if let Some(owner) = owner {
                        admin.execute(format!("DROP ROLE IF EXISTS {owner}").as_str()).await.ok()?;
                    }
                    dropped
                })
            })
            .join();
        }
    }
}

impl TestDb {
    /// The Postgres database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL on the server's admin database (Postgres only).
    pub async fn admin_execute(sql: &str) {
        let mut admin = sqlx::PgConnection::connect(&admin_url()).await.expect("connect admin");
        admin.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// The README's hand revocation statement.
pub fn hand_revocation(id: impl std::fmt::Display, expires_at: &str) -> String {
    format!("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('{id}', '{expires_at}')")
}

impl TestDb {
    /// The database URL for another Postgres role (no password: trust auth).
    pub fn url_as(&self, role: &str) -> String {
        format!("postgres://{role}@{}/{}", split_admin_url().1, self.name)
    }

    /// Opens a transaction that writes `sql` and holds it open until
    /// [`HeldTransaction::commit`]: a writer caught in the middle.
    pub async fn hold_transaction(&self, sql: &str) -> HeldTransaction {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.expect("connect");
                conn.execute("BEGIN").await.expect("begin");
                conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                HeldTransaction::Postgres(conn)
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.expect("connect");
                conn.execute("BEGIN IMMEDIATE").await.expect("begin");
                conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                HeldTransaction::Sqlite(conn)
            }
        }
    }

    /// Waits until some statement on this database waits for a lock. Postgres
    /// shows it in `pg_stat_activity`; SQLite shows nothing, so there this
    /// waits a fixed 300 ms, well inside the app's 3 s busy timeout.
    pub async fn wait_for_a_lock_waiter(&self) {
        match self.backend {
            Backend::Postgres => {
                let sql = format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
                    self.name
                );
                super::wait_until(
                    "a statement waits for the lock",
                    std::time::Duration::from_secs(10),
                    || async { self.count(&sql).await > 0 },
                )
                .await;
            }
            Backend::Sqlite => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
        }
    }
}

/// A transaction held open by [`TestDb::hold_transaction`].
pub enum HeldTransaction {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl HeldTransaction {
    pub async fn commit(self) {
        match self {
            HeldTransaction::Postgres(mut conn) => conn.execute("COMMIT").await.map(drop),
            HeldTransaction::Sqlite(mut conn) => conn.execute("COMMIT").await.map(drop),
        }
        .expect("commit");
    }
}

/// A Postgres role that can log in and holds no grant at all (an attacker,
/// or a DBA before anything is granted to it), dropped by [`Role::drop`].
pub struct Role {
    pub name: String,
}

impl Role {
    /// `prefix_<random>`, with LOGIN.
    pub async fn create(prefix: &str) -> Role {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        TestDb::admin_execute(&format!("CREATE ROLE {name} LOGIN")).await;
        Role { name }
    }

    /// A connection to `db` as this role.
    pub async fn connect(&self, db: &TestDb) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&db.url_as(&self.name)).await.expect("any role may connect")
    }

    /// Drops the role and whatever it owns in the admin database.
    pub async fn drop(self) {
        TestDb::admin_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name)).await;
    }
}
