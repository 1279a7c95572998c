-- The revocation feed (contract v3, GET /revocations/stream) tells other
-- services when a DBA deletes a row before its time (event `unrevoked`,
-- with the expiry the row had). The row is gone by the time anyone reads
-- the event log, so the log keeps that expiry itself: old_expires_at, set
-- for the side of a change that left (a delete, or the old id of an update
-- that changed the jti). The purge's deletes are still not logged (the
-- delete trigger's WHEN clause skips expired rows), so they are never sent.

ALTER TABLE revocation_events ADD COLUMN old_expires_at timestamptz;

COMMENT ON COLUMN revocation_events.old_expires_at IS
    'For the side of a change that left revoked_tokens (a delete, or the old jti of an update): the expiry that row had. NULL otherwise.';

CREATE OR REPLACE FUNCTION revoked_tokens_log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    -- First, and before NEW or OLD is read: which table fired us, and how
    -- (migration 6 explains why).
    IF TG_RELID IS DISTINCT FROM 'revoked_tokens'::regclass
       OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION 'revoked_tokens_log_change() runs only as the row trigger of revoked_tokens'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.jti <> OLD.jti) THEN
        INSERT INTO revocation_events (jti, old_expires_at) VALUES (OLD.jti, OLD.expires_at);
    ELSIF TG_OP = 'UPDATE' THEN
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

-- CREATE OR REPLACE resets the function's settings and keeps its grants:
-- pin search_path again, and make sure EXECUTE stays withheld.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION revoked_tokens_log_change() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION revoked_tokens_log_change() FROM PUBLIC;
