-- What a DBA writes into revoked_tokens is refused at the door when no
-- token could ever match it, since the CHECKs of migration 1 let through
-- some such values:
--
-- - a jti of 36 lowercase characters that is not a UUID ('zzzz...'): no
--   token carries it, and the followers could not read it (they now skip
--   and count such rows, which older databases may still hold);
-- - an expires_at of 'now', which julianday() reads as the moment of
--   reading: never purged, and never a fixed time.
--
-- SQLite cannot add a CHECK to an existing table without rebuilding it;
-- BEFORE triggers that raise do the same job.

CREATE TRIGGER revoked_tokens_refuse_bad_insert BEFORE INSERT ON revoked_tokens
WHEN NEW.jti NOT GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
  OR lower(trim(NEW.expires_at)) = 'now'
BEGIN
    SELECT RAISE(ABORT, 'revoked_tokens: jti must be a UUID in canonical lowercase form, and expires_at a fixed time');
END;

CREATE TRIGGER revoked_tokens_refuse_bad_update BEFORE UPDATE OF jti, expires_at ON revoked_tokens
WHEN NEW.jti NOT GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
  OR lower(trim(NEW.expires_at)) = 'now'
BEGIN
    SELECT RAISE(ABORT, 'revoked_tokens: jti must be a UUID in canonical lowercase form, and expires_at a fixed time');
END;
