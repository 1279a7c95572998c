-- Sessions a user can see and end: when each was last refreshed, and the
-- device it started on (the User-Agent header and the client address seen at
-- login), for the `GET /auth/sessions` list. All three are NULL for sessions
-- that began before this migration, and `refreshed_at` until the first refresh.
-- Times are RFC 3339 UTC text and the address is text, as elsewhere here.
--
-- Reasons added by this version in revoked_tokens.reason: session_revoked,
-- logout_others, password_changed and client_revoked (RFC 7009).

ALTER TABLE sessions ADD COLUMN refreshed_at TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT CHECK (length(user_agent) <= 256);
ALTER TABLE sessions ADD COLUMN ip TEXT;
