-- Notifications are wake-ups, never data.
--
-- Migration 2 sent each change as the payload of a NOTIFY, and the instances
-- applied those payloads. But Postgres has no privilege on NOTIFY: any role
-- that can connect can send on any channel, so a forged '-<jti>' un-revoked a
-- token. From here on, what an instance holds is read from tables only:
--
--   revocation_events   an append-only log of the ids whose revoked_tokens row
--                       changed, written only by the trigger below (SECURITY
--                       DEFINER: it runs as the service's role, so a DBA who
--                       may write revoked_tokens needs no right on the log, and
--                       nobody else can write it);
--   pg_notify('revoked_tokens', '')  an empty wake-up, at most one per
--                       transaction (identical notifications are merged); the
--                       followers never read its payload. The service's own
--                       connections (application_name 'jwt-blocklist') skip
--                       it: a transaction that notifies holds a cluster-wide
--                       lock from commit until durable, so notifying commits
--                       cannot share a WAL flush (logouts, one core: 325/s
--                       with it, 598/s without; bench/results/20261121T140851Z).
--                       The service wakes the followers itself after its
--                       commits. A writer that borrows that application_name
--                       only delays the wake-up to the followers' next poll
--                       (at most 200 ms): the log, not the notification, is
--                       what they read.
--
-- Each follower reads the events of transactions committed since its last
-- snapshot (PgQ's method: xid visible now, not visible before), then the
-- current rows of those ids. The purge prunes events after ten minutes and
-- notes the newest transaction it pruned in revocation_events_pruned, so a
-- follower whose cursor is older than that reloads instead of missing them.

DROP TRIGGER revoked_tokens_announce_change ON revoked_tokens;
DROP TRIGGER revoked_tokens_announce_unrevoke ON revoked_tokens;
DROP FUNCTION revoked_tokens_notify();

CREATE TABLE revocation_events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    jti         uuid        NOT NULL,
    happened_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revocation_events_xid_idx ON revocation_events (xid);

COMMENT ON TABLE revocation_events IS 'Ids whose revoked_tokens row changed, for the instances'' followers. Written by trigger only; pruned after ten minutes.';
COMMENT ON COLUMN revocation_events.seq IS 'Order of writing (the purge prunes by it).';
COMMENT ON COLUMN revocation_events.xid IS 'The writing transaction; followers read by snapshot visibility, not by seq, since transactions commit out of order.';
COMMENT ON COLUMN revocation_events.jti IS 'The changed row''s jti (a token id or a session id). Followers re-read the row itself.';
COMMENT ON COLUMN revocation_events.happened_at IS 'When the change was written.';

CREATE TABLE revocation_events_pruned (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    through  xid8    NOT NULL
);
INSERT INTO revocation_events_pruned (through) VALUES ('0');

COMMENT ON TABLE revocation_events_pruned IS 'One row: the newest transaction whose events the purge has deleted.';
COMMENT ON COLUMN revocation_events_pruned.through IS 'A follower whose snapshot xmin is at or below this may have missed events, and reloads.';

REVOKE ALL ON revocation_events, revocation_events_pruned FROM PUBLIC;

CREATE FUNCTION revoked_tokens_log_change() RETURNS trigger
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

-- A SECURITY DEFINER function must not resolve names through its caller's
-- search_path: pin it to this schema (whatever the migration ran in).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION revoked_tokens_log_change() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

COMMENT ON FUNCTION revoked_tokens_log_change() IS
    'Logs the changed id in revocation_events; wakes the followers (empty NOTIFY on revoked_tokens) unless the writer is the service, which wakes them itself after commit.';

-- Used-up refresh tokens (reason refresh_rotated) are refused by their
-- session's state; no instance keeps them in memory, so they are not logged.
CREATE TRIGGER revoked_tokens_log_insert
    AFTER INSERT ON revoked_tokens
    FOR EACH ROW WHEN (NEW.reason <> 'refresh_rotated')
    EXECUTE FUNCTION revoked_tokens_log_change();

CREATE TRIGGER revoked_tokens_log_update
    AFTER UPDATE OF jti, expires_at, reason ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION revoked_tokens_log_change();

-- The purge deletes only rows whose tokens have expired: they need no event
-- (memory lets them go by the same rule), and this WHEN clause skips them.
CREATE TRIGGER revoked_tokens_log_delete
    AFTER DELETE ON revoked_tokens
    FOR EACH ROW WHEN (OLD.expires_at > now() AND OLD.reason <> 'refresh_rotated')
    EXECUTE FUNCTION revoked_tokens_log_change();
