-- Logout-all (and every other sweep of a user's sessions) must also beat a
-- login that is still checking the password when the sweep commits (see
-- migrations/postgres for the full commentary). session_generation counts
-- the sweeps; a login reads it before the password is checked and inserts
-- its session only if it is still the same, in the inserting statement
-- (one writer at a time: the check and the insert see one state).

ALTER TABLE users ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0;
