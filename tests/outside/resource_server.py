"""A resource server written with libraries nobody here wrote: PyJWT's
PyJWKClient verifies our tokens through the JWKS URL alone (found in the
RFC 8414 metadata), and Authlib's introspect_token asks POST
/oauth/introspect. Run by tests/api/outside.rs against a live instance:

    python resource_server.py URL CLIENT_ID CLIENT_SECRET

It signs up, logs in, verifies, logs out, and prints what it saw as one
JSON object on stdout; the Rust test asserts on it.
"""

import json
import sys
import time

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session


def main(url, client_id, client_secret):
    seen = {}
    credentials = {"username": "outside", "password": "a password for the outside client"}
    requests.post(f"{url}/auth/register", json=credentials, timeout=10).raise_for_status()
    login = requests.post(f"{url}/auth/login", json=credentials, timeout=10)
    login.raise_for_status()
    access = login.json()["access_token"]

    metadata = requests.get(f"{url}/.well-known/oauth-authorization-server", timeout=10).json()
    seen["jwks_uri"] = metadata["jwks_uri"]
    seen["introspection_endpoint"] = metadata["introspection_endpoint"]

    # PyJWT, through the JWKS URL alone.
    jwks = jwt.PyJWKClient(metadata["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(access)
    seen["jwk_algorithm"] = key.algorithm_name
    seen["jwk_kid"] = key.key_id
    claims = jwt.decode(
        access,
        key.key,
        algorithms=[key.algorithm_name],
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "sub", "jti"]},
    )
    seen["claims"] = claims
    seen["typ"] = jwt.get_unverified_header(access).get("typ")
    head, body, signature = access.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    try:
        jwt.decode(f"{head}.{body}.{flipped}", key.key, algorithms=[key.algorithm_name],
                   issuer=metadata["issuer"])
        seen["tampered"] = "accepted"
    except jwt.InvalidSignatureError:
        seen["tampered"] = "InvalidSignatureError"

    # Authlib, as a registered client (client_secret_basic).
    client = OAuth2Session(client_id, client_secret)
    endpoint = metadata["introspection_endpoint"]
    seen["introspection"] = client.introspect_token(endpoint, token=access).json()
    stranger = OAuth2Session(client_id, "not-the-secret-of-this-client-at-all")
    answer = stranger.introspect_token(endpoint, token=access)
    seen["wrong_secret"] = {"status": answer.status_code, "body": answer.json(),
                            "www_authenticate": answer.headers.get("WWW-Authenticate")}

    # Logout, then introspection follows it (the contract's bound: 1 s).
    out = requests.post(f"{url}/auth/logout", headers={"Authorization": f"Bearer {access}"}, timeout=10)
    seen["logout_status"] = out.status_code
    started = time.monotonic()
    while True:
        after = client.introspect_token(endpoint, token=access).json()
        if after != seen["introspection"] or time.monotonic() - started > 2:
            break
        time.sleep(0.02)
    seen["after_logout"] = after
    seen["after_logout_seconds"] = time.monotonic() - started
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:4])
