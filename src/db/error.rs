//! The database layer's error type and the classification of sqlx errors:
//! "not reachable right now" (the HTTP layer answers 503, fail closed) versus
//! "this statement failed" (500), and unique violations by constraint.

/// The unique constraint on user names: `users_username_lower_key` on
/// Postgres; SQLite names the column instead (`users.username`).
const USERNAME_CONSTRAINTS: [&str; 2] = ["users_username_lower_key", "users.username"];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database cannot be reached: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database did not answer in time")]
    Timeout,
    /// Which constraint: its name on Postgres, `table.column` on SQLite.
    #[error("unique constraint {0} was violated")]
    UniqueViolation(String),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("the revocation event log has a gap: reloading")]
    EventGap,
}

impl DbError {
    /// A registration lost the race for its name.
    pub fn is_username_taken(&self) -> bool {
        matches!(self, DbError::UniqueViolation(constraint) if USERNAME_CONSTRAINTS.contains(&constraint.as_str()))
    }

    /// Any unique constraint was violated (a name taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::UniqueViolation(_))
    }

    /// The database could not be reached or did not answer in time: the
    /// statement itself may be fine.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_) | DbError::Timeout)
    }

    /// The same error for another caller (an unreachable database fails a
    /// whole batch of writes; each of its callers is told so).
    pub(super) fn again(&self) -> DbError {
        match self {
            DbError::Timeout => DbError::Timeout,
            DbError::UniqueViolation(constraint) => DbError::UniqueViolation(constraint.clone()),
            DbError::Config(text) => DbError::Config(text.clone()),
            DbError::EventGap => DbError::EventGap,
            DbError::Unavailable(error) => DbError::Unavailable(sqlx::Error::Protocol(error.to_string())),
            other => DbError::Other(sqlx::Error::Protocol(other.to_string())),
        }
    }

    /// A value read back from the database is not in the form the schema promises.
    pub(super) fn decode(what: &str, value: &str) -> DbError {
        DbError::Other(sqlx::Error::Decode(format!("bad {what} in the database: {value:?}").into()))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                DbError::Unavailable(error)
            }
            E::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                let constraint = db.constraint().map(str::to_owned).unwrap_or_else(|| {
                    // SQLite: "UNIQUE constraint failed: users.username"
                    db.message().rsplit(": ").next().unwrap_or_default().to_owned()
                });
                DbError::UniqueViolation(constraint)
            }
            E::Database(db) if is_unavailable_code(db.code().as_deref()) => DbError::Unavailable(error),
            _ => DbError::Other(error),
        }
    }
}

/// Database error codes that mean "not reachable right now" rather than "this
/// statement is wrong": Postgres connection exceptions (class 08), shutdown and
/// start-up (57P01-57P03), too many connections (53300), a database that is
/// not accepting connections (55000, what `ALLOW_CONNECTIONS false` answers a
/// new connection); SQLite BUSY, LOCKED, IOERR and CANTOPEN with all their
/// extended codes.
fn is_unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55000") {
        return true;
    }
    code.parse::<i32>().is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 10 | 14))
}

#[cfg(test)]
mod tests {
    use super::DbError;

    #[test]
    fn only_the_username_constraint_means_a_taken_name() {
        assert!(DbError::UniqueViolation("users_username_lower_key".into()).is_username_taken());
        assert!(DbError::UniqueViolation("users.username".into()).is_username_taken());
        assert!(!DbError::UniqueViolation("sessions_pkey".into()).is_username_taken());
        assert!(!DbError::UniqueViolation("revoked_tokens.jti".into()).is_username_taken());
    }
}
