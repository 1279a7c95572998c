-- Views for DBAs and operators: what is in force right now, with usernames,
-- so nobody has to join by hand or remember which rows still matter.
-- Read-only conveniences: the service itself reads the tables.

-- Revocations whose token could still be presented: not yet expired (a token
-- stays refused while its row exists, and the purge removes a row only once
-- expires_at plus the configured leeway has passed).
CREATE VIEW active_revocations AS
SELECT r.jti,
       CASE WHEN s.id IS NOT NULL THEN 'session' ELSE 'token' END AS kind,
       r.user_id,
       u.username,
       r.reason,
       r.revoked_at,
       r.expires_at
FROM revoked_tokens r
LEFT JOIN users u ON u.id = r.user_id
LEFT JOIN sessions s ON s.id = r.jti
WHERE r.expires_at > now()
  AND r.reason <> 'refresh_rotated';

COMMENT ON VIEW active_revocations IS 'Revoked tokens and sessions whose tokens have not expired yet, with the username. Used-up refresh tokens (reason refresh_rotated, refused by their session''s state anyway) are left out.';
COMMENT ON COLUMN active_revocations.kind IS 'session when jti is a session id (every token of that login is refused), token for a single token.';

-- Sessions that can still be used: neither revoked (by the service or by a
-- hand-made revoked_tokens row) nor expired.
CREATE VIEW active_sessions AS
SELECT s.id,
       s.user_id,
       u.username,
       s.created_at,
       s.refreshed_at,
       s.expires_at,
       s.user_agent,
       s.ip
FROM sessions s
JOIN users u ON u.id = s.user_id
WHERE s.revoked_at IS NULL
  AND s.expires_at > now()
  AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = s.id);

COMMENT ON VIEW active_sessions IS 'Live logins (neither revoked nor expired) with the username; what GET /auth/sessions lists for one user.';
