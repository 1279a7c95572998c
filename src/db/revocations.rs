//! The store's revoking writes, the revocation check, and the purge. Every
//! revoking write goes through the writer (`writer.rs`: group commit), and
//! every row it lists is put in this instance's memory at once
//! ([`Store::remember`]) and wakes the other instances' followers.

use chrono::{DateTime, Utc};

use super::model::Listed;
use super::writer::{Write, Written};
use super::{
    follow, Backend, DbError, Presented, PurgeCounts, Reason, Revocation, Rotation, RotationOutcome,
    SessionId, SessionSweep, Store, TokenId, UserId,
};
use crate::metrics::{self, CheckOutcome};

impl Store {
    /// Atomically swaps the session's refresh token; of concurrent rotations
    /// with one token exactly one sees `Rotated`.
    pub async fn rotate_refresh(&self, rotation: &Rotation) -> Result<RotationOutcome, DbError> {
        Ok(self.write(Write::Rotate(rotation.clone())).await?.rotation())
    }

    /// Logs out the access token of `user_id` that expires at
    /// `token_expires_at`, by revoking its session `sid`: one row, the
    /// session's, kept until the later of the session's newest refresh
    /// token's expiry and the token's own. That row refuses the token, and
    /// every other token of the session, as long as any of them could be
    /// presented, so the token gets no row of its own (nor a place in
    /// memory, nor an entry in the feed).
    pub async fn log_out(
        &self,
        sid: SessionId,
        user_id: UserId,
        token_expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.write(Write::Logout { sid, user_id, token_expires_at, now: Utc::now() }).await?;
        Ok(())
    }

    /// Ends every session of the user but `sweep.keep` that can still be
    /// used (not expired before now minus the configured leeway), including
    /// one whose login is committing concurrently, and changes the password if
    /// the sweep says so, in one transaction; returns how many of them were
    /// live (not yet revoked nor expired now).
    pub async fn sweep_sessions(&self, sweep: &SessionSweep) -> Result<u64, DbError> {
        let now = Utc::now();
        let cutoff = now - self.leeway;
        Ok(self.write(Write::Sweep { sweep: sweep.clone(), now, cutoff }).await?.live)
    }

    /// Ends one live session of the user's; false if there is none such (an
    /// unknown id, another user's session, or one already revoked or expired).
    pub async fn revoke_session(
        &self,
        user_id: UserId,
        sid: SessionId,
        reason: Reason,
    ) -> Result<bool, DbError> {
        self.end_session(user_id, sid, None, reason).await
    }

    /// Ends the session if it is the user's and live (and, given
    /// `refresh_jti`, if that is its current refresh token).
    async fn end_session(
        &self,
        user_id: UserId,
        sid: SessionId,
        refresh_jti: Option<TokenId>,
        reason: Reason,
    ) -> Result<bool, DbError> {
        let now = Utc::now();
        let written = self.write(Write::EndSession { user_id, sid, refresh_jti, reason, now }).await?;
        Ok(!written.listed.is_empty())
    }

    /// Revokes one token unless it (or its session `sid`, when known) is
    /// revoked already; returns whether it was listed now.
    pub async fn revoke_token(&self, sid: Option<SessionId>, token: &Revocation) -> Result<bool, DbError> {
        let written = self.write(Write::Token { sid, token: token.clone(), now: Utc::now() }).await?;
        Ok(!written.listed.is_empty())
    }

    /// RFC 7009: revokes a presented access token's `jti`, or a presented
    /// refresh token's session if it is the session's current one; a token
    /// already revoked changes nothing. Returns whether anything was revoked.
    pub async fn revoke_presented(&self, presented: &Presented) -> Result<bool, DbError> {
        match *presented {
            Presented::Access { user_id, sid, jti, expires_at } => {
                let reason = Reason::ClientRevoked;
                self.revoke_token(Some(sid), &Revocation { jti, expires_at, user_id: Some(user_id), reason })
                    .await
            }
            Presented::Refresh { user_id, sid, jti } => {
                self.end_session(user_id, sid, Some(jti), Reason::ClientRevoked).await
            }
        }
    }

    /// Whether the token's `jti` or its session `sid` is on the blocklist:
    /// from memory while it is confirmed current, else from the database,
    /// which then also says whether the key `kid` that signed it has been
    /// revoked (memory being stale, the signing keys may be too).
    pub async fn is_revoked(&self, sid: SessionId, jti: TokenId, kid: Option<&str>) -> Result<bool, DbError> {
        let (revoked, answered_by) = match self.cache.check(jti.0, sid.0) {
            Some(revoked) => (revoked, CheckOutcome::Memory),
            None => (dispatch!(self.is_revoked(sid, jti, kid)).await?, CheckOutcome::Database),
        };
        metrics::revocation_check(if revoked { CheckOutcome::Revoked } else { answered_by });
        Ok(revoked)
    }

    /// Hands `write` to the writer and waits for its commit (bounded by the
    /// store's timeout, counted from now); then remembers what it listed.
    async fn write(&self, write: Write) -> Result<Written, DbError> {
        let written = self.bounded(self.writer.write(write)).await?;
        self.remember(&written.listed);
        Ok(written)
    }

    /// What the writer has done so far (group commit: batches and their
    /// sizes).
    pub fn writer_status(&self) -> super::WriterStatus {
        self.writer.status()
    }

    /// Test hook: while `held`, the writer starts no batch, as behind a slow
    /// commit.
    #[cfg(feature = "test-hooks")]
    pub fn hold_writes(&self, held: bool) {
        self.writer.hold(held);
    }

    /// This instance's own revocations are in force here before it answers,
    /// and the other instances are woken to read them.
    fn remember(&self, listed: &[Listed]) {
        let mut kept = false;
        for row in listed {
            if let Some(until) = follow::wanted(row.until_ms, &row.reason) {
                self.cache.insert(row.id, until);
                kept = true;
            }
        }
        if kept {
            self.wake.notify_one();
        }
    }

    /// Deletes revoked-token and session rows whose tokens can no longer be
    /// accepted (expiry plus the configured leeway in the past), and follower
    /// events past their retention, `batch_size` rows per statement so no
    /// statement holds locks for long. `None` means another instance is
    /// purging right now (Postgres only).
    ///
    /// Whose clock says "in the past": on Postgres the database's, the one
    /// its triggers use, so an instance whose clock runs ahead can never
    /// delete (and so un-revoke, on every instance) the row of a token that
    /// the others still accept. On SQLite, which runs on this host,
    /// `host_now` (this host's clock).
    pub async fn purge_expired(
        &self,
        host_now: DateTime<Utc>,
        batch_size: i64,
    ) -> Result<Option<PurgeCounts>, DbError> {
        // Not bounded by the store's timeout: a run over a million rows takes
        // seconds. Each batch is one short statement, and a connection that
        // dies mid-run ends it with an error (releasing the advisory lock).
        match &self.backend {
            Backend::Postgres(pool) => super::postgres::purge_expired(pool, self.leeway, batch_size).await,
            Backend::Sqlite(pool) => {
                super::sqlite::purge_expired(pool, host_now - self.leeway, batch_size).await
            }
        }
    }
}
