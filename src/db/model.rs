//! The values the store reads and writes: users, sessions, revocations,
//! rotations and purge counts. Plain data; the SQL is in the backend files.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ids::{SessionId, TokenId, UserId};

/// A registered account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// How many sweeps of the user's sessions there have been (see
    /// [`NewSession::generation`]).
    pub session_generation: i64,
}

/// A login session: every token of one login carries its id as `sid`.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub id: SessionId,
    pub refresh_jti: TokenId,
    pub expires_at: DateTime<Utc>,
    /// The device it started on, as the login request told it.
    pub device: Device,
    /// The user's `session_generation` as the login read it, before the
    /// password was checked: the session starts only if no sweep
    /// (logout-all, a password change, ...) has committed since.
    pub generation: i64,
}

/// What a login request says about where it comes from.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// The `User-Agent` header, at most [`USER_AGENT_MAX_CHARS`] characters.
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// The longest user agent a session keeps (the column's CHECK says the same).
pub const USER_AGENT_MAX_CHARS: usize = 256;

/// A live session, as `GET /auth/sessions` lists it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub device: Device,
}

/// Ends every live session of a user at once, but `keep` (logout-all,
/// logout with `scope=others`, password change); with `new_password_hash`,
/// the password changes in the same transaction.
#[derive(Debug, Clone)]
pub struct SessionSweep {
    pub user_id: UserId,
    pub keep: Option<SessionId>,
    pub reason: Reason,
    pub new_password_hash: Option<String>,
}

/// A token presented for revocation (`POST /auth/revoke`, RFC 7009), its
/// signature and claims already verified.
#[derive(Debug, Clone, Copy)]
pub enum Presented {
    /// Revokes the token's `jti`, unless it or its session is already revoked.
    Access { user_id: UserId, sid: SessionId, jti: TokenId, expires_at: DateTime<Utc> },
    /// Ends the session, if this is its current refresh token.
    Refresh { user_id: UserId, sid: SessionId, jti: TokenId },
}

/// Why a row was added to `revoked_tokens`; stored in its `reason` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Logout,
    LogoutAll,
    LogoutOthers,
    SessionRevoked,
    PasswordChanged,
    ClientRevoked,
    /// An operator's (the command line, or a DBA's hand-made row).
    Manual,
    RefreshReuse,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Logout => "logout",
            Reason::LogoutAll => "logout_all",
            Reason::LogoutOthers => "logout_others",
            Reason::SessionRevoked => "session_revoked",
            Reason::PasswordChanged => "password_changed",
            Reason::ClientRevoked => "client_revoked",
            Reason::Manual => "manual",
            Reason::RefreshReuse => "refresh_reuse",
        }
    }
}

/// Rows with this reason, written by versions before this one, list a
/// used-up refresh token for the record only: its session's state refuses
/// it, so no instance keeps it in memory (the triggers skip it too), and
/// rotation writes none any more.
pub const REFRESH_ROTATED: &str = "refresh_rotated";

/// One revoked token.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub jti: TokenId,
    /// When the token expires anyway.
    pub expires_at: DateTime<Utc>,
    /// Whose token it is, when known (not for an operator's bare `--jti`).
    pub user_id: Option<UserId>,
    pub reason: Reason,
}

/// A refresh-token rotation: `presented` is used up, `next` becomes the
/// session's one usable refresh token (the session row records it; no
/// blocklist row is written).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub user_id: UserId,
    pub sid: SessionId,
    pub presented_jti: TokenId,
    pub presented_expires_at: DateTime<Utc>,
    pub next_jti: TokenId,
    pub next_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The presented token was the session's current one; it is now used
    /// up. The user's name, read by the same statement, for the new tokens.
    Rotated { username: String },
    /// The presented token was already used up (or its session revoked): the
    /// whole session has been revoked.
    Reused,
    /// The token's user no longer exists: nothing was changed.
    UserGone,
}

/// Rows removed by one purge run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub revoked_tokens: u64,
    pub sessions: u64,
}

impl std::fmt::Display for PurgeCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} revoked tokens and {} sessions", self.revoked_tokens, self.sessions)
    }
}

/// A row a write put on the blocklist, as memory takes it.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    /// A token's id or a session's: memory keys both alike.
    pub id: Uuid,
    /// The unix millisecond from which its token is expired, rounded up,
    /// computed by the database itself from whatever `expires_at` holds
    /// (`i64::MAX` for Postgres' `infinity`: revoked until purged by hand).
    pub until_ms: i64,
    /// Decides whether memory keeps it (see `follow::wanted`).
    pub reason: String,
}
