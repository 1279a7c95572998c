-- Asymmetric signing keys shared by every instance, and the resource-server
-- clients (see migrations/postgres for the full commentary). Times are RFC
-- 3339 UTC text, binary columns BLOBs, the JWK JSON text.

CREATE TABLE signing_keys (
    kid             TEXT NOT NULL PRIMARY KEY,
    alg             TEXT NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),
    public_jwk      TEXT NOT NULL CHECK (json_valid(public_jwk)),
    sealed_private  BLOB NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    signs_from      TEXT NOT NULL CHECK (julianday(signs_from) IS NOT NULL),
    retired_at      TEXT CHECK (retired_at IS NULL OR julianday(retired_at) IS NOT NULL),
    published_until TEXT CHECK (published_until IS NULL OR julianday(published_until) IS NOT NULL),
    revoked_at      TEXT CHECK (revoked_at IS NULL OR julianday(revoked_at) IS NOT NULL)
);

CREATE TABLE clients (
    name        TEXT NOT NULL PRIMARY KEY
                CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^A-Za-z0-9_.-]*'),
    secret_hash BLOB NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Bumped by every change to signing_keys or clients; the followers re-read
-- both when it moves.
CREATE TABLE credentials_version (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    version  INTEGER NOT NULL
);
INSERT INTO credentials_version (only_row, version) VALUES (1, 0);

CREATE TRIGGER signing_keys_inserted AFTER INSERT ON signing_keys
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER signing_keys_updated AFTER UPDATE ON signing_keys
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER signing_keys_deleted AFTER DELETE ON signing_keys
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER clients_inserted AFTER INSERT ON clients
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER clients_updated AFTER UPDATE ON clients
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER clients_deleted AFTER DELETE ON clients
BEGIN UPDATE credentials_version SET version = version + 1; END;
