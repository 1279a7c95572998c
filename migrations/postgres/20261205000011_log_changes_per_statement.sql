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
-- What is logged is unchanged (migrations 3 and 10):
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

DROP TRIGGER revoked_tokens_log_insert ON revoked_tokens;
DROP TRIGGER revoked_tokens_log_update ON revoked_tokens;
DROP TRIGGER revoked_tokens_log_delete ON revoked_tokens;

CREATE OR REPLACE FUNCTION revoked_tokens_log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    logged boolean := false;
BEGIN
    -- First, before any transition table is read: which table fired us,
    -- and how.
    IF TG_RELID IS DISTINCT FROM 'revoked_tokens'::regclass
       OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION 'revoked_tokens_log_change() runs only as the statement trigger of revoked_tokens'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO revocation_events (jti)
        SELECT jti FROM listed WHERE reason <> 'refresh_rotated';
        logged := FOUND;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Changed rows, and ids that left (their expiry kept for the feed).
        INSERT INTO revocation_events (jti, old_expires_at)
        SELECT o.jti, CASE WHEN n.jti IS NULL THEN o.expires_at END
        FROM unlisted o LEFT JOIN listed n ON n.jti = o.jti
        WHERE n.jti IS NULL OR (n.expires_at, n.reason) IS DISTINCT FROM (o.expires_at, o.reason);
        logged := FOUND;
        -- Ids that came.
        INSERT INTO revocation_events (jti)
        SELECT n.jti FROM listed n WHERE NOT EXISTS (SELECT 1 FROM unlisted o WHERE o.jti = n.jti);
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
