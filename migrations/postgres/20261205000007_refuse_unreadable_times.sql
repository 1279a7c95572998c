-- Times no reader can use are refused at the door.
--
-- revoked_tokens.expires_at: 'infinity' is welcome (revoked until a DBA
-- deletes the row: never purged, and held by every instance's memory), and
-- every finite time is read correctly (the followers let Postgres compute
-- the expiry instant, up to the year 294276). '-infinity' is refused: it
-- was never live, so no token could match it.
--
-- The times of sessions and users are shown to clients and decoded by the
-- service, which reads years 1 to 9999; anything outside (infinity
-- included) is refused.
--
-- NOT VALID: rows already there are not checked (a database that holds one
-- keeps starting); every row inserted or updated from now on is.

ALTER TABLE revoked_tokens
    ADD CONSTRAINT revoked_tokens_expires_at_not_minus_infinity
    CHECK (expires_at <> '-infinity') NOT VALID;

ALTER TABLE sessions
    ADD CONSTRAINT sessions_times_readable CHECK (
        created_at BETWEEN '0001-01-01 00:00:00Z' AND '9999-12-31 23:59:59Z'
        AND expires_at BETWEEN '0001-01-01 00:00:00Z' AND '9999-12-31 23:59:59Z'
        AND (refreshed_at IS NULL OR refreshed_at BETWEEN '0001-01-01 00:00:00Z' AND '9999-12-31 23:59:59Z')
        AND (revoked_at IS NULL OR revoked_at BETWEEN '0001-01-01 00:00:00Z' AND '9999-12-31 23:59:59Z')
    ) NOT VALID;

ALTER TABLE users
    ADD CONSTRAINT users_created_at_readable
    CHECK (created_at BETWEEN '0001-01-01 00:00:00Z' AND '9999-12-31 23:59:59Z') NOT VALID;

COMMENT ON COLUMN revoked_tokens.expires_at IS 'When the revoked token or session would have expired anyway; the row may be purged after this (plus leeway). ''infinity'' keeps it until deleted by hand; ''-infinity'' is refused.';
