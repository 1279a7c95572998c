//! Opening the SQLite file: connect with the settings every connection
//! needs, create the file private, and migrate under a file lock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::ConnectOptions;

use crate::config::DbConfig;
use crate::db::DbError;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

async fn connect(url: &str, database: &DbConfig, timeout: Duration) -> Result<SqlitePool, DbError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(timeout)
        .disable_statement_logging();
    let file = options.get_filename();
    if let Some(folder) = file.parent() {
        if !folder.as_os_str().is_empty() {
            std::fs::create_dir_all(folder)
                .map_err(|e| DbError::Config(format!("cannot create {}: {e}", folder.display())))?;
        }
    }
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        create_private(file)?;
    }
    Ok(crate::db::pool_options(database, timeout).connect_with(options).await?)
}

/// Creates the database file, if it is not there yet, readable and writable
/// by this user alone (0600, like the secret): it holds password hashes. The
/// WAL and shared-memory files SQLite makes beside it take its mode.
fn create_private(file: &std::path::Path) -> Result<(), DbError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DbError::Config(format!("cannot create {}: {e}", file.display()))),
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Connects and migrates. sqlx takes no lock around SQLite migrations: two
/// processes starting together on one file would both apply a migration
/// (measured: the second one failed on a trigger the first had dropped). So
/// migrating holds an exclusive lock on a file beside the database
/// (`<file>.migrating`, mode 0600), and the others wait for it, up to
/// `timeout`; the first switch to WAL, which needs the file alone, is tried
/// again while another process holds it.
pub(in crate::db) async fn open(
    url: &str,
    database: &DbConfig,
    timeout: Duration,
) -> Result<SqlitePool, DbError> {
    let deadline = std::time::Instant::now() + timeout;
    let file = SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let _migrating = match in_memory {
        true => None,
        false => Some(migration_lock(&file, deadline).await?),
    };
    loop {
        let attempt = async {
            let pool = connect(url, database, timeout).await?;
            migrate(&pool).await?;
            Ok::<_, DbError>(pool)
        };
        match attempt.await {
            Err(error)
                if error.to_string().contains("database is locked")
                    && std::time::Instant::now() < deadline =>
            {
                rocket::tokio::time::sleep(Duration::from_millis(25)).await;
            }
            done => return done,
        }
    }
}

/// The exclusive lock on `<file>.migrating`, waited for until `deadline`;
/// released when the returned file is dropped (or the process ends).
async fn migration_lock(
    file: &std::path::Path,
    deadline: std::time::Instant,
) -> Result<std::fs::File, DbError> {
    let mut path = file.as_os_str().to_owned();
    path.push(".migrating");
    let path = std::path::PathBuf::from(path);
    if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .map_err(|e| DbError::Config(format!("cannot create {}: {e}", folder.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let lock =
        options.open(&path).map_err(|e| DbError::Config(format!("cannot open {}: {e}", path.display())))?;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                rocket::tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(DbError::Timeout),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(DbError::Config(format!("cannot lock {}: {e}", path.display())))
            }
        }
    }
}
