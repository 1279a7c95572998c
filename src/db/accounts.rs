//! The store's accounts and sessions: users, and the sessions logins start
//! and users list. The revoking writes are in `revocations.rs`.

use chrono::Utc;

use super::{DbError, NewSession, SessionId, SessionInfo, Store, TokenId, User, UserId};

impl Store {
    /// Fails with a unique violation ([`DbError::is_username_taken`]) when
    /// the name is taken (in any case).
    pub async fn insert_user(&self, user: &User) -> Result<(), DbError> {
        dispatch!(self.insert_user(user)).await
    }

    /// Case-insensitive lookup.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, DbError> {
        dispatch!(self.user_by_username(username)).await
    }

    pub async fn user_by_id(&self, user_id: UserId) -> Result<Option<User>, DbError> {
        dispatch!(self.user_by_id(user_id)).await
    }

    /// Commits the session row, unless a sweep of the user's sessions
    /// (logout-all, a password change, ...) committed after the login read
    /// the user (`session.generation`): then `false`, and no session. Sign
    /// its tokens only after this returns `true`: that is what lets a sweep
    /// reject every token of a login that was in flight when it committed,
    /// hashing or inserting.
    pub async fn insert_session(&self, session: &NewSession) -> Result<bool, DbError> {
        dispatch!(self.insert_session(session)).await
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: UserId) -> Result<Vec<SessionInfo>, DbError> {
        dispatch!(self.sessions_of(user_id, Utc::now())).await
    }

    /// The username of the session's owner, if `jti` is the session's one
    /// usable refresh token (the session not revoked by the service):
    /// introspection's answer for a refresh token.
    pub async fn current_refresh(&self, sid: SessionId, jti: TokenId) -> Result<Option<String>, DbError> {
        dispatch!(self.current_refresh(sid, jti)).await
    }

    /// The owner of a session, if the session exists (the command line).
    pub async fn session_owner(&self, sid: SessionId) -> Result<Option<UserId>, DbError> {
        dispatch!(self.session_owner(sid)).await
    }
}
