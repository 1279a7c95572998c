-- Logout-all (and every other sweep of a user's sessions: logout with
-- scope=others or global, a password change, `revoke --user`) must also
-- beat a login that is still checking the password when the sweep commits:
-- one queued for a hashing thread, or hashing. Such a login has not written
-- its session row yet, so the sweep cannot end it.
--
-- session_generation counts the sweeps. A login reads it with the user row,
-- before the password is checked, and inserts its session only if it is
-- still the same, in the statement that inserts it (locking the user row,
-- so an insert racing a sweep waits for the sweep's commit and then sees
-- its new value). A login that lost the race starts no session.

ALTER TABLE users ADD COLUMN session_generation bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN users.session_generation IS 'Bumped by every sweep of the user''s sessions (logout-all, logout scope=others/global, password change, revoke --user); a login that began before the last one starts no session.';
