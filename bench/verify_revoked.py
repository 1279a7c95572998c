#!/usr/bin/env python3
"""After a logout run: every token whose session the database lists as
revoked (a logout lists its token's session, whose row refuses the token)
must be refused by the service, and the database must list at least as many
logouts as wrk counted successes (a few more may have been answered after
wrk stopped counting). Prints one line; exits non-zero on a miss.
usage: verify_revoked.py PORT TOKENS_FILE REVOKED_IDS_FILE EXPECTED_COUNT
"""
import base64
import http.client
import json
import sys


def sid(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def main() -> None:
    port, tokens_path, revoked_path, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    revoked = set(open(revoked_path).read().split())
    used = [t for t in open(tokens_path).read().split() if sid(t) in revoked]
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    accepted = 0
    for token in used:
        conn.request("GET", "/protected", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        accepted += response.status == 200
    print(f"logged-out tokens checked afterwards: {len(used)} (wrk counted {expected} logouts), "
          f"accepted: {accepted}")
    if accepted or len(used) < expected:
        raise SystemExit("a logged-out token was accepted, or a logout is missing")


if __name__ == "__main__":
    main()
