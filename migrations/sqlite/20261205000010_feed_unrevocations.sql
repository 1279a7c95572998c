-- The revocation feed sends an `unrevoked` event, with the expiry the row
-- had, when a DBA deletes a row before its time (see migrations/postgres).
-- The event log keeps that expiry: old_expires_at, for the side of a change
-- that left (a delete, or the old jti of an update that changed it). The
-- purge's deletes of expired rows are still not logged. (The older
-- expires_at column of revocation_events is still not written.)

ALTER TABLE revocation_events ADD COLUMN old_expires_at TEXT;

DROP TRIGGER revoked_tokens_log_update;
DROP TRIGGER revoked_tokens_log_delete;

CREATE TRIGGER revoked_tokens_log_update AFTER UPDATE OF jti, expires_at, reason ON revoked_tokens
BEGIN
    INSERT INTO revocation_events (jti, old_expires_at)
        SELECT OLD.jti, CASE WHEN NEW.jti <> OLD.jti THEN OLD.expires_at END;
    INSERT INTO revocation_events (jti) SELECT NEW.jti WHERE NEW.jti <> OLD.jti;
END;

CREATE TRIGGER revoked_tokens_log_delete AFTER DELETE ON revoked_tokens
WHEN julianday(OLD.expires_at) > julianday('now') AND OLD.reason <> 'refresh_rotated'
BEGIN
    INSERT INTO revocation_events (jti, old_expires_at) VALUES (OLD.jti, OLD.expires_at);
END;
