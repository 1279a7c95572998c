#!/usr/bin/env python3
"""Revocation delay between two instances: for each token, log out on A,
then poll B until it answers 401; the delay runs from A's 200 to B's first
401. Prints p50, p99 and max in milliseconds.
usage: propagation.py PORT_A PORT_B TOKENS_FILE COUNT
"""
import http.client
import statistics
import sys
import time


def call(conn, method, path, token):
    conn.request(method, path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    return response.status


def main() -> None:
    port_a, port_b, path, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    tokens = open(path).read().split()[:count]
    a = http.client.HTTPConnection("127.0.0.1", port_a)
    b = http.client.HTTPConnection("127.0.0.1", port_b)
    delays = []
    for token in tokens:
        assert call(b, "GET", "/protected", token) == 200, "B must accept the token first"
        assert call(a, "POST", "/auth/logout", token) == 200
        started = time.perf_counter()
        while call(b, "GET", "/protected", token) != 401:
            if time.perf_counter() - started > 5:
                raise SystemExit("B still accepts a token revoked on A after 5 s")
        delays.append((time.perf_counter() - started) * 1000)
    delays.sort()
    p99 = delays[max(0, int(len(delays) * 0.99) - 1)]
    print(f"revocations={len(delays)} p50_ms={statistics.median(delays):.2f} "
          f"p99_ms={p99:.2f} max_ms={delays[-1]:.2f}")


if __name__ == "__main__":
    main()
