-- The followers' event log is written once per statement, not once per row.
--
-- Group commit (issue 20) lists the rows of a whole batch of logouts in one
-- INSERT. Row triggers ran revoked_tokens_log_change() once per listed row:
-- a function call, its checks and a one-row INSERT into revocation_events
-- for each, which was most of a logout's cost in Postgres. Statement
-- triggers with transition tables write the events of a statement in one
-- INSERT ... SELECT, however many rows it touched, and a DBA's bulk
-- revocation of a million rows writes its million events in one statement.
--
-- Which changes are logged is unchanged (migrations 3 and 10):
--   INSERT  every new row but the record-only refresh_rotated ones;
--   UPDATE  a row whose expiry or reason changed (its jti), and for a
--           changed jti the id that left (with the expiry it had) and the
--           id that came;
--   DELETE  a row whose token could still be presented (purges of expired
--           rows are not logged), with the expiry it had.
-- The empty NOTIFY goes as before: once, only if something was logged, and
-- not for the service's own connections (they wake the followers after
-- commit). The fences of migration 6 stand: SECURITY DEFINER, search_path
-- pinned, EXECUTE withheld from PUBLIC, and the function checks which
-- table fired it, and how, before it reads anything; now it requires an
-- AFTER ... FOR EACH STATEMENT trigger of this schema's revoked_tokens.
-- (A trigger with transition tables may not name columns, so the UPDATE
-- trigger fires for any update and the function compares the rows.)
--
-- And each event carries the state its row was left in, so a follower's
-- poll needs no lookup per changed id. A poll read the ids of the events in its window (DISTINCT) and looked each
-- one up in revoked_tokens. For a DBA's bulk revocation of a million rows
-- that took five seconds (0.55 s to de-duplicate, 3.8 s of lookups), past
-- the 900 ms staleness bound, and under load the follower gave up and
-- reloaded while every check went to the database. Now the trigger writes,
-- for the side of a change that arrived (an insert, an update's new row),
-- the row's expires_at and reason, and the poll applies the events in `seq`
-- order as they are: one index range scan, no de-duplication, no lookups.
--
-- Why that order is the row's own: two transactions that change one row
-- queue on its lock (or, for one jti inserted twice, on the primary key), so
-- the second writes its event, and draws its seq, only after the first has
-- committed. The last event of an id in a poll's window is therefore the
-- state the row has in the poll's snapshot. Events written before this
-- migration carry no state; a poll still looks their rows up.
--
-- These columns are written by the trigger only, like the rest of the log
-- (REVOKE ALL of migration 3 stands): they are table data, not hints.

DROP TRIGGER revoked_tokens_log_insert ON revoked_tokens;
DROP TRIGGER revoked_tokens_log_update ON revoked_tokens;
DROP TRIGGER revoked_tokens_log_delete ON revoked_tokens;

ALTER TABLE revocation_events ADD COLUMN expires_at timestamptz, ADD COLUMN reason text;
COMMENT ON COLUMN revocation_events.expires_at IS
    'For the side of a change that arrived (an insert, an update''s new row): the row''s expires_at after it. NULL for the side that left, and for events written before migration 11.';
COMMENT ON COLUMN revocation_events.reason IS
    'With expires_at: the row''s reason after the change.';

CREATE OR REPLACE FUNCTION revoked_tokens_log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    logged boolean := false;
BEGIN
    -- First, before any transition table is read: which table fired us,
    -- and how (migration 6).
    IF TG_RELID IS DISTINCT FROM 'revoked_tokens'::regclass
       OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION 'revoked_tokens_log_change() runs only as the statement trigger of revoked_tokens'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO revocation_events (jti, expires_at, reason)
        SELECT jti, expires_at, reason FROM listed WHERE reason <> 'refresh_rotated';
        logged := FOUND;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Ids that left (their expiry kept for the feed).
        INSERT INTO revocation_events (jti, old_expires_at)
        SELECT o.jti, o.expires_at FROM unlisted o WHERE NOT EXISTS (SELECT 1 FROM listed n WHERE n.jti = o.jti);
        logged := FOUND;
        -- Rows that changed or came, as they are now.
        INSERT INTO revocation_events (jti, expires_at, reason)
        SELECT n.jti, n.expires_at, n.reason FROM listed n LEFT JOIN unlisted o ON o.jti = n.jti
        WHERE o.jti IS NULL OR (n.expires_at, n.reason) IS DISTINCT FROM (o.expires_at, o.reason);
        logged := logged OR FOUND;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO revocation_events (jti, old_expires_at)
        SELECT jti, expires_at FROM unlisted WHERE expires_at > now() AND reason <> 'refresh_rotated';
        logged := FOUND;
    END IF;
    IF logged AND current_setting('application_name', true) IS DISTINCT FROM 'jwt-blocklist' THEN
        PERFORM pg_notify('revoked_tokens', '');
    END IF;
    RETURN NULL;
END
$$;

-- CREATE OR REPLACE resets the function's settings and keeps its grants:
-- pin search_path again, and make sure EXECUTE stays withheld.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION revoked_tokens_log_change() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION revoked_tokens_log_change() FROM PUBLIC;

COMMENT ON FUNCTION revoked_tokens_log_change() IS
    'Logs the ids a statement changed in revocation_events (one INSERT per statement, from its transition tables); wakes the followers (empty NOTIFY on revoked_tokens) unless the writer is the service, which wakes them itself after commit.';

CREATE TRIGGER revoked_tokens_log_insert
    AFTER INSERT ON revoked_tokens REFERENCING NEW TABLE AS listed
    FOR EACH STATEMENT EXECUTE FUNCTION revoked_tokens_log_change();
CREATE TRIGGER revoked_tokens_log_update
    AFTER UPDATE ON revoked_tokens REFERENCING OLD TABLE AS unlisted NEW TABLE AS listed
    FOR EACH STATEMENT EXECUTE FUNCTION revoked_tokens_log_change();
CREATE TRIGGER revoked_tokens_log_delete
    AFTER DELETE ON revoked_tokens REFERENCING OLD TABLE AS unlisted
    FOR EACH STATEMENT EXECUTE FUNCTION revoked_tokens_log_change();
