-- Each event carries the state its row was left in, so a follower's poll
-- needs no lookup per changed id (migration 11 of Postgres does the same).
--
-- A poll read the events in its window and looked each id up in
-- revoked_tokens (migration 3): for a DBA's bulk revocation of a million
-- rows, a million random lookups through the jti index and then the table,
-- about 1.8 s of the poll's 4.7 s (release build), past the 900 ms
-- staleness bound. Now the triggers write, for the side of a change that
-- arrived (an insert, an update's row as it is now), the row's expires_at
-- and reason, and the poll applies the events in seq order as they are.
--
-- Why that order is the row's own: SQLite has one writer at a time and
-- AUTOINCREMENT's counter rolls back with its transaction, so event numbers
-- follow commit order; the last event of an id in a poll's window is the
-- state the row has in the poll's snapshot.
--
-- Which changes are logged is unchanged (migrations 3 and 10). The side of
-- a change that left (a delete, an update's old jti) keeps old_expires_at
-- and no state. The expires_at column, unwritten since migration 3, is
-- written again, now with reason: an event with a reason carries state;
-- older events (reason NULL) do not, and a poll still looks their rows up.
ALTER TABLE revocation_events ADD COLUMN reason TEXT;
DROP TRIGGER revoked_tokens_log_insert;
DROP TRIGGER revoked_tokens_log_update;
CREATE TRIGGER revoked_tokens_log_insert AFTER INSERT ON revoked_tokens
WHEN NEW.reason <> 'refresh_rotated'
BEGIN
    INSERT INTO revocation_events (jti, expires_at, reason) VALUES (NEW.jti, NEW.expires_at, NEW.reason);
END;
CREATE TRIGGER revoked_tokens_log_update AFTER UPDATE OF jti, expires_at, reason ON revoked_tokens
BEGIN
    -- The old jti: as it is now if it stayed, departed (with the expiry it
    -- had, for the feed) if the update changed it.
    INSERT INTO revocation_events (jti, old_expires_at, expires_at, reason)
        SELECT OLD.jti,
               CASE WHEN NEW.jti <> OLD.jti THEN OLD.expires_at END,
               CASE WHEN NEW.jti = OLD.jti THEN NEW.expires_at END,
               CASE WHEN NEW.jti = OLD.jti THEN NEW.reason END;
    INSERT INTO revocation_events (jti, expires_at, reason)
        SELECT NEW.jti, NEW.expires_at, NEW.reason WHERE NEW.jti <> OLD.jti;
END;
