-- jwt-blocklist schema, Postgres flavour.
--
-- Three tables: the user model, the login sessions every token belongs to, and
-- the revocation list the request guards consult. Once landed, this file is
-- never edited: later changes get a new, higher-numbered migration.

-- Users. Usernames keep the case they were registered with but are unique
-- case-insensitively (`Alice` and `alice` are one account), enforced by the
-- expression index below rather than by application code.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

COMMENT ON TABLE users IS 'Accounts that can log in. Passwords are stored only as argon2id PHC strings.';
COMMENT ON COLUMN users.id IS 'User id; the `sub` claim of every token issued to this user.';
COMMENT ON COLUMN users.username IS 'Login name as registered (3-32 of A-Za-z0-9_.-), unique case-insensitively.';
COMMENT ON COLUMN users.password_hash IS 'argon2id hash in PHC string form (parameters and salt included). Never the password.';
COMMENT ON COLUMN users.created_at IS 'When the account was registered.';

-- Sessions: one per successful login. Every access and refresh token carries its
-- session id as the `sid` claim, so revoking a session (a `revoked_tokens` row
-- whose jti is the session id) rejects all of its tokens at once.
-- `refresh_jti` is the only refresh token of the session that may still be
-- used: rotation swaps it with a compare-and-set UPDATE, which is what makes
-- concurrent refreshes with one token yield exactly one winner.
CREATE TABLE sessions (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_jti uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

COMMENT ON TABLE sessions IS 'One row per login. Tokens name their session in the `sid` claim.';
COMMENT ON COLUMN sessions.id IS 'Session id (`sid` claim). Revoke a session with INSERT INTO revoked_tokens (jti, expires_at) VALUES (<this id>, <expires_at>).';
COMMENT ON COLUMN sessions.user_id IS 'Owner of the session.';
COMMENT ON COLUMN sessions.refresh_jti IS 'jti of the one refresh token that may still be used; NULL once the session is revoked.';
COMMENT ON COLUMN sessions.created_at IS 'When the user logged in.';
COMMENT ON COLUMN sessions.expires_at IS 'When the newest refresh token of the session expires; the session is dead after that.';
COMMENT ON COLUMN sessions.revoked_at IS 'When the service revoked the session (logout, logout-all, refresh reuse); NULL while live.';

-- The revocation list. A token is rejected while a row exists whose jti equals
-- its `jti` or its `sid` claim. Only the first two columns are needed to revoke
-- by hand; everything else has a default:
--   INSERT INTO revoked_tokens (jti, expires_at) VALUES ('<uuid>', '<timestamp>');
-- Rows are purged once expires_at (plus the configured leeway) has passed,
-- because by then the token would be rejected as expired anyway.
CREATE TABLE revoked_tokens (
    jti        uuid        PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    user_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    reason     text        NOT NULL DEFAULT 'manual'
);
-- The purge deletes by expires_at in batches; this index keeps each batch cheap.
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
CREATE INDEX revoked_tokens_user_id_idx ON revoked_tokens (user_id);

COMMENT ON TABLE revoked_tokens IS 'The blocklist: a token is rejected while its jti or its sid (session id) is listed here.';
COMMENT ON COLUMN revoked_tokens.jti IS 'jti of a revoked token, or id of a revoked session (a token''s sid claim).';
COMMENT ON COLUMN revoked_tokens.expires_at IS 'When the revoked token or session would have expired anyway; the row may be purged after this (plus leeway).';
COMMENT ON COLUMN revoked_tokens.user_id IS 'Whose token it was; NULL for hand-made rows, or once the user is deleted (the revocation stays).';
COMMENT ON COLUMN revoked_tokens.revoked_at IS 'When the revocation was made.';
COMMENT ON COLUMN revoked_tokens.reason IS 'Why: logout, logout_all, refresh_rotated, refresh_reuse, or manual (the default, for hand-made rows).';
