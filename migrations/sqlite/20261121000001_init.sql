-- jwt-blocklist schema, SQLite flavour.
--
-- The same three tables as the Postgres schema (see migrations/postgres for the
-- full commentary), in SQLite's types: ids are canonical lowercase UUID text,
-- times are RFC 3339 UTC text. CHECK constraints keep hand-written rows in that
-- form so a DBA's INSERT cannot silently miss (an uppercase jti would never
-- match a token). Once landed, this file is never edited.

-- Users; COLLATE NOCASE makes usernames unique case-insensitively (they are
-- ASCII by the registration rules, which is exactly what NOCASE folds).
CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY
                  CHECK (length(id) = 36 AND id = lower(id)),
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Sessions: one per login; tokens carry the id as their `sid` claim.
-- `refresh_jti` is the one refresh token that may still be used (NULL once revoked).
CREATE TABLE sessions (
    id          TEXT NOT NULL PRIMARY KEY
                CHECK (length(id) = 36 AND id = lower(id)),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_jti TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at  TEXT NOT NULL CHECK (julianday(expires_at) IS NOT NULL),
    revoked_at  TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (julianday(expires_at));

-- The blocklist. Revoke by hand with
--   INSERT INTO revoked_tokens (jti, expires_at) VALUES ('<uuid>', '2030-01-01T00:00:00Z');
-- expires_at may be written in any form SQLite's date functions read; the app
-- compares it through julianday(), which the purge index below is built on.
CREATE TABLE revoked_tokens (
    jti        TEXT NOT NULL PRIMARY KEY
               CHECK (length(jti) = 36 AND jti = lower(jti)),
    expires_at TEXT NOT NULL CHECK (julianday(expires_at) IS NOT NULL),
    user_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    revoked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    reason     TEXT NOT NULL DEFAULT 'manual'
);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (julianday(expires_at));
CREATE INDEX revoked_tokens_user_id_idx ON revoked_tokens (user_id);
