#!/usr/bin/env python3
"""Mints N access tokens for the benchmark, signed with the bench secret.

Each has a fresh jti and sid, so N logouts are N distinct revocations
(a login per token would cost N argon2 hashes). Standard library only.
usage: tokens.py SECRET USER_ID N > tokens.txt
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def main() -> None:
    secret, user_id, count = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3])
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    now = int(time.time())
    out = sys.stdout
    for _ in range(count):
        claims = {
            "iss": "jwt-blocklist", "sub": user_id, "iat": now, "exp": now + 3600,
            "jti": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "type": "access",
            "username": "benchuser",
        }
        body = header + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = b64(hmac.new(secret, body, hashlib.sha256).digest())
        out.write((body + b"." + signature).decode() + "\n")


if __name__ == "__main__":
    main()
