#!/usr/bin/env python3
"""Mints access tokens for the benchmark, signed with the bench secret.

  tokens.py SECRET USER_ID N      N tokens of USER_ID, each with a fresh jti
                                  and sid, so N logouts are N distinct
                                  revocations (a login per token would cost
                                  N argon2 hashes)
  tokens.py SECRET --pairs FILE   one token per "user_id sid" line of FILE
                                  (sessions the benchmark made in SQL)
Standard library only.
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


def token(secret: bytes, user_id: str, sid: str, now: int) -> str:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "iss": "jwt-blocklist", "sub": user_id, "iat": now, "exp": now + 3600,
        "jti": str(uuid.uuid4()), "sid": sid, "type": "access", "username": "benchuser",
    }
    body = header + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
    return (body + b"." + b64(hmac.new(secret, body, hashlib.sha256).digest())).decode()


def main() -> None:
    secret, now = sys.argv[1].encode(), int(time.time())
    if sys.argv[2] == "--pairs":
        pairs = [line.split() for line in open(sys.argv[3]) if line.strip()]
    else:
        pairs = [(sys.argv[2], str(uuid.uuid4())) for _ in range(int(sys.argv[3]))]
    sys.stdout.write("".join(token(secret, user, sid, now) + "\n" for user, sid in pairs))


if __name__ == "__main__":
    main()
