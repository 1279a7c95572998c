-- The wake-up leaves the service's own write transactions.
--
-- A transaction that sends NOTIFY holds one cluster-wide lock from its commit
-- until the commit is durable, so notifying commits cannot share a WAL flush:
-- measured on one core, logouts ran at 325/s with the NOTIFY in the trigger
-- and at 598/s without it (bench/results/20261121T140851Z.txt). The service's
-- own connections (application_name 'jwt-blocklist') now skip it; after its
-- writes commit, the service sends one wake-up for however many there were,
-- in a transaction of its own that writes nothing. Everyone else's writes (a
-- DBA's SQL) still wake the followers from the trigger. A writer that sets
-- the same application_name only delays the wake-up until the followers'
-- next heartbeat poll (at most 200 ms): the log, not the notification, is
-- what they read.

CREATE OR REPLACE FUNCTION revoked_tokens_log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
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

-- CREATE OR REPLACE drops the pinned search_path: pin it again.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION revoked_tokens_log_change() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

COMMENT ON FUNCTION revoked_tokens_log_change() IS
    'Logs the changed id in revocation_events; wakes the followers (empty NOTIFY on revoked_tokens) unless the writer is the service, which wakes them itself after commit.';
