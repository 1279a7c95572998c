-- Views for DBAs and operators: what is in force right now, with usernames
-- (see migrations/postgres for the full commentary). Times are compared
-- through julianday(), which reads every form a DBA may have written.

-- Revocations whose token could still be presented (not yet expired), but
-- used-up refresh tokens, which their session's state refuses anyway.
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
WHERE julianday(r.expires_at) > julianday('now')
  AND r.reason <> 'refresh_rotated';

-- Sessions that can still be used: neither revoked nor expired.
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
  AND julianday(s.expires_at) > julianday('now')
  AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = s.id);
