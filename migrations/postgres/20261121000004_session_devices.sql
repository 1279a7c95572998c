-- Sessions a user can see and end: when each was last refreshed, and the
-- device it started on (the User-Agent header and the client address seen at
-- login), for the `GET /auth/sessions` list. All three are NULL for sessions
-- that began before this migration, and `refreshed_at` until the first refresh.

ALTER TABLE sessions
    ADD COLUMN refreshed_at timestamptz,
    ADD COLUMN user_agent   text CHECK (char_length(user_agent) <= 256),
    ADD COLUMN ip           inet;

COMMENT ON COLUMN sessions.refreshed_at IS 'When the session last rotated its refresh token; NULL if never.';
COMMENT ON COLUMN sessions.user_agent IS 'The User-Agent header sent at login, cut to 256 characters; NULL if none.';
COMMENT ON COLUMN sessions.ip IS 'The client address seen at login (the TCP peer, or the configured ip_header); NULL if unknown.';
COMMENT ON COLUMN sessions.revoked_at IS 'When the service revoked the session (logout, logout-all, session revoked, password change, RFC 7009 revocation, refresh reuse); NULL while live.';

-- Reasons added by this version: session_revoked (DELETE /auth/sessions/{id}),
-- logout_others (logout with scope=others), password_changed (the other
-- sessions of a password change) and client_revoked (POST /auth/revoke).
COMMENT ON COLUMN revoked_tokens.reason IS 'Why: logout, logout_all, logout_others, session_revoked, password_changed, client_revoked (RFC 7009), refresh_rotated, refresh_reuse, or manual (the default, for hand-made rows).';
