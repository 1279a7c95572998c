-- Every change to the blocklist is announced on the `revoked_tokens` channel,
-- so each running instance keeps its in-memory copy of the list current
-- (LISTEN revoked_tokens). This covers rows written by any instance and rows a
-- DBA writes by hand: the trigger sees them all.
--
-- Payloads:
--   '+<jti> <unix seconds>'  the id is revoked until then (insert or update)
--   '-<jti>'                 a row for a still-live token was deleted (un-revoked)
-- Deleting expired rows (the purge) announces nothing: the WHEN clause below
-- skips them without even calling the function.

CREATE FUNCTION revoked_tokens_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('revoked_tokens', '-' || OLD.jti::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.jti <> NEW.jti THEN
        PERFORM pg_notify('revoked_tokens', '-' || OLD.jti::text);
    END IF;
    PERFORM pg_notify(
        'revoked_tokens',
        '+' || NEW.jti::text || ' ' || ceil(extract(epoch FROM NEW.expires_at))::bigint::text
    );
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION revoked_tokens_notify() IS
    'Announces blocklist changes on channel revoked_tokens for the instances'' in-memory caches.';

CREATE TRIGGER revoked_tokens_announce_change
    AFTER INSERT OR UPDATE OF jti, expires_at ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION revoked_tokens_notify();

CREATE TRIGGER revoked_tokens_announce_unrevoke
    AFTER DELETE ON revoked_tokens
    FOR EACH ROW WHEN (OLD.expires_at > now())
    EXECUTE FUNCTION revoked_tokens_notify();
