-- The followers now read the current revoked_tokens row of every id the event
-- log names, rather than the expiry copied into the event: only rows decide
-- what an instance holds, and the order in which events are applied no longer
-- matters. The expires_at column of revocation_events stays for old rows and
-- is no longer written.
--
-- Used-up refresh tokens (reason refresh_rotated) are refused by their
-- session's state; no instance keeps them in memory, so they are not logged.
--
-- Event numbers are gap-free in commit order (one writer at a time, and
-- AUTOINCREMENT's counter rolls back with its transaction): a follower that
-- finds a number missing (pruned, or deleted by hand, behind it) reloads.

DROP TRIGGER revoked_tokens_event_insert;
DROP TRIGGER revoked_tokens_event_update;
DROP TRIGGER revoked_tokens_event_delete;

CREATE TRIGGER revoked_tokens_log_insert AFTER INSERT ON revoked_tokens
WHEN NEW.reason <> 'refresh_rotated'
BEGIN
    INSERT INTO revocation_events (jti) VALUES (NEW.jti);
END;

CREATE TRIGGER revoked_tokens_log_update AFTER UPDATE OF jti, expires_at, reason ON revoked_tokens
BEGIN
    INSERT INTO revocation_events (jti) VALUES (OLD.jti);
    INSERT INTO revocation_events (jti) SELECT NEW.jti WHERE NEW.jti <> OLD.jti;
END;

-- The purge deletes only expired rows, which this WHEN clause skips.
CREATE TRIGGER revoked_tokens_log_delete AFTER DELETE ON revoked_tokens
WHEN julianday(OLD.expires_at) > julianday('now') AND OLD.reason <> 'refresh_rotated'
BEGIN
    INSERT INTO revocation_events (jti) VALUES (OLD.jti);
END;
