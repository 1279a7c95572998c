-- SQLite has no LISTEN/NOTIFY. Instead, triggers append every blocklist change
-- to revocation_events, whoever made it (this service, another process, a DBA
-- in the sqlite3 shell). Each instance watches `PRAGMA data_version` (which
-- moves when another connection commits) and reads the events past the last
-- one it applied, keeping its in-memory copy of the list current.
-- Events for expired rows are pruned by the purge.

CREATE TABLE revocation_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    jti         TEXT NOT NULL,
    -- When the id stops being revoked; NULL means the row was deleted while
    -- its token was still live (un-revoked by hand).
    expires_at  TEXT,
    happened_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TRIGGER revoked_tokens_event_insert AFTER INSERT ON revoked_tokens
BEGIN
    INSERT INTO revocation_events (jti, expires_at) VALUES (NEW.jti, NEW.expires_at);
END;

CREATE TRIGGER revoked_tokens_event_update AFTER UPDATE OF jti, expires_at ON revoked_tokens
BEGIN
    INSERT INTO revocation_events (jti, expires_at)
        SELECT OLD.jti, NULL WHERE OLD.jti <> NEW.jti;
    INSERT INTO revocation_events (jti, expires_at) VALUES (NEW.jti, NEW.expires_at);
END;

-- The purge deletes only expired rows, which this WHEN clause skips.
CREATE TRIGGER revoked_tokens_event_delete AFTER DELETE ON revoked_tokens
WHEN julianday(OLD.expires_at) > julianday('now')
BEGIN
    INSERT INTO revocation_events (jti, expires_at) VALUES (OLD.jti, NULL);
END;
