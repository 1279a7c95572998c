#!/usr/bin/env python3
"""Sends exactly N authenticated GET requests and checks every answer.

  requests.py PORT PATH TOKEN N [CONNECTIONS]

CONNECTIONS keep-alive connections (default 4), each on its own thread,
share the N requests. Exits non-zero unless every answer is 200. Used
where a fixed count matters more than speed: instructions per request under
callgrind (bench/ceiling.sh). Standard library only.
"""
import http.client
import sys
import threading


def main() -> None:
    port, path, token, total = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    connections = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    headers = {"Authorization": f"Bearer {token}"}
    failures = []

    def run(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for _ in range(count):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    shares = [total // connections + (i < total % connections) for i in range(connections)]
    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"{len(failures)} of {total} answers were not 200: {sorted(set(failures))}")


if __name__ == "__main__":
    main()
