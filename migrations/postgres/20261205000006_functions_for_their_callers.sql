-- Our functions run for the tables they were written for and for the
-- callers they were meant for, and for nobody else.
--
-- revoked_tokens_log_change() (migration 3) is SECURITY DEFINER, so that a
-- DBA who may write revoked_tokens needs no right on the followers' event
-- log. But Postgres grants EXECUTE on every new function to PUBLIC, and a
-- trigger function can be attached to any table its caller owns, temporary
-- ones included. So any role that could log in could make a temp table
-- whose jti column has a type of its own, with an assignment cast to uuid
-- whose function it wrote, attach our function to it and insert one row:
-- the function's `INSERT ... VALUES (NEW.jti)` called that cast as the
-- function's owner, who could read password hashes and delete every
-- revocation. Pinning search_path does not help: casts are found by type.
--
-- Three things, each of which stops that on its own:
--
-- 1. EXECUTE on the function is revoked from PUBLIC (creating a trigger
--    needs it; firing one does not, so writes to revoked_tokens by the
--    service or by a DBA still log their events), and so is EXECUTE on any
--    function this role makes from now on.
-- 2. The function checks, before NEW or OLD is touched, that it fires as
--    the AFTER ... FOR EACH ROW trigger of this schema's revoked_tokens; for
--    any other table it raises an error and runs nothing else.
-- 3. SECURITY DEFINER stays (grants cannot do its job: a DBA's INSERT into
--    revoked_tokens must log an event in a table that DBA cannot write),
--    but the service runs as a role that owns its database or schema and
--    nothing more, never a superuser (README, "Running on Postgres"), so the
--    definer's rights are the service's own.

REVOKE EXECUTE ON FUNCTION revoked_tokens_log_change() FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE OR REPLACE FUNCTION revoked_tokens_log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    -- First, and before NEW or OLD is read: which table fired us, and how.
    -- The name resolves through the pinned search_path below (this schema
    -- first, pg_temp last), so a temp table named revoked_tokens is not it.
    IF TG_RELID IS DISTINCT FROM 'revoked_tokens'::regclass
       OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION 'revoked_tokens_log_change() runs only as the row trigger of revoked_tokens'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO revocation_events (jti) VALUES (OLD.jti);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.jti <> OLD.jti) THEN
        INSERT INTO revocation_events (jti) VALUES (NEW.jti);
    END IF;
    IF current_setting('application_name', true) IS DISTINCT FROM 'jwt-blocklist' THEN
        PERFORM pg_notify('revoked_tokens', '');
    END IF;
    RETURN NULL;
END
$$;

-- CREATE OR REPLACE resets the function's settings: pin search_path again
-- to this schema (whatever the migration runs in), then pg_temp.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION revoked_tokens_log_change() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

COMMENT ON FUNCTION revoked_tokens_log_change() IS
    'Trigger of revoked_tokens only (it refuses any other table): logs the changed id in revocation_events and wakes the followers (empty NOTIFY on revoked_tokens) unless the writer is the service, which wakes them itself after commit. SECURITY DEFINER; EXECUTE is not granted to PUBLIC.';
