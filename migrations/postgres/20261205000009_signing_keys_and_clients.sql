-- Asymmetric signing keys shared by every instance, and the resource-server
-- clients that may introspect tokens and follow the revocation feed.
--
-- signing_keys: one row per key. The private key is sealed (AES-256-GCM)
-- with a key derived from jwt_secret, so a DBA reading the table cannot
-- sign; the public key is a JWK, as the JWKS publishes it. A key is `next`
-- from created_at until signs_from (published, not signing yet), `active`
-- from then until retired_at (its successor's signs_from), `retired` (still
-- published and accepted) until published_until, and `revoked` from
-- revoked_at (withdrawn: its tokens are refused everywhere).
CREATE TABLE signing_keys (
    kid             text        PRIMARY KEY,
    alg             text        NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),
    public_jwk      jsonb       NOT NULL,
    sealed_private  bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    signs_from      timestamptz NOT NULL,
    retired_at      timestamptz,
    published_until timestamptz,
    revoked_at      timestamptz
);

COMMENT ON TABLE signing_keys IS 'The keys that sign access and refresh tokens (jwt_algorithm ES256 or EdDSA), shared by every instance. Written by the service (keys rotate, keys revoke); read them, do not edit them.';
COMMENT ON COLUMN signing_keys.kid IS 'The key id in token headers and the JWKS: its RFC 7638 JWK thumbprint (base64url SHA-256).';
COMMENT ON COLUMN signing_keys.alg IS 'ES256 (ECDSA P-256) or EdDSA (Ed25519).';
COMMENT ON COLUMN signing_keys.public_jwk IS 'The public key as the JWKS publishes it.';
COMMENT ON COLUMN signing_keys.sealed_private IS 'The private key (PKCS#8), sealed with AES-256-GCM under a key derived from jwt_secret: unreadable without it.';
COMMENT ON COLUMN signing_keys.created_at IS 'When it was made (and published).';
COMMENT ON COLUMN signing_keys.signs_from IS 'When it begins to sign: jwks_max_age + leeway after it was published, so that every cache knows it first.';
COMMENT ON COLUMN signing_keys.retired_at IS 'When it stops signing (its successor''s signs_from); NULL while it has none.';
COMMENT ON COLUMN signing_keys.published_until IS 'When it leaves the JWKS: once every access token it signed has expired.';
COMMENT ON COLUMN signing_keys.revoked_at IS 'When it was withdrawn (keys revoke): its tokens are refused from then on, everywhere.';

-- clients: one row per resource server.
CREATE TABLE clients (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE clients IS 'Resource servers that may call POST /oauth/introspect and follow the revocation feed (clients add | list | remove).';
COMMENT ON COLUMN clients.name IS 'The client_id.';
COMMENT ON COLUMN clients.secret_hash IS 'HMAC-SHA256 of the client secret under a key derived from jwt_secret; the secret itself is shown once, at clients add.';

-- Every instance holds both tables in memory. Any change to either bumps
-- credentials_version and wakes the followers, which re-read them with
-- their next poll: a rotation, a revoked key or a removed client is seen by
-- every instance within the one-second bound.
CREATE TABLE credentials_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  bigint  NOT NULL
);
INSERT INTO credentials_version (version) VALUES (0);

COMMENT ON TABLE credentials_version IS 'One row: bumped by every change to signing_keys or clients, so the followers know to re-read them.';

CREATE FUNCTION credentials_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_RELID NOT IN ('signing_keys'::regclass, 'clients'::regclass) OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION 'credentials_changed() runs only as the statement trigger of signing_keys and clients'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE credentials_version SET version = version + 1;
    PERFORM pg_notify('revoked_tokens', '');
    RETURN NULL;
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION credentials_changed() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION credentials_changed() FROM PUBLIC;

COMMENT ON FUNCTION credentials_changed() IS
    'Statement trigger of signing_keys and clients (it refuses any other table): bumps credentials_version and wakes the followers.';

CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION credentials_changed();
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION credentials_changed();

REVOKE ALL ON signing_keys, clients, credentials_version FROM PUBLIC;
