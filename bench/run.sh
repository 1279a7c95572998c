#!/usr/bin/env bash
# The jwt-blocklist benchmark: one command, this machine, a fresh Postgres
# database, the release binary. See BENCHMARKS.md for what each figure means.
#
#   bench/run.sh [seconds per load run]        (default 15)
#   bench/run.sh SECONDS storm                 only the login storm section
#   bench/run.sh SECONDS protected             only start-up and GET /protected
#   bench/run.sh SECONDS signatures            only the per-algorithm section
#   bench/run.sh SECONDS feed                  only the signatures and feed sections
#   bench/run.sh SECONDS writes                only the pinned write section (1M rows)
#   bench/run.sh SECONDS ceiling               only /protected against rocket_limit, and a 1M bulk revocation
#   bench/run.sh SECONDS bulk                  only the 1M bulk revocation
#   bench/run.sh SECONDS fleet                 only the fleet on one database (1, 4, 16 instances)
#
# Needs Postgres on 127.0.0.1:5432 (BENCH_ADMIN_URL to change) and wrk
# (installed from Debian if missing). Results go to stdout and to
# bench/results/<UTC time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-15}
ONLY=${2:-}
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=jwtbl_bench_$(date +%s)_$$
URL=${ADMIN_URL%/*}/$DB
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
WORK=$(mktemp -d)
mkdir -p bench/results
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ).txt
PIDS=()

# pin_postgres CPUS: moves every Postgres process (and so the backends it
# forks later) onto CPUS.
pin_postgres() { for pid in $(pgrep -x postgres); do taskset -apc "$1" "$pid" >/dev/null 2>&1 || true; done; }
PIN=""
WRK_PIN=""
cleanup() {
    pin_postgres "0-$(($(nproc) - 1))"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"${DB}_feed\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { echo "$*" | tee -a "$OUT"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }
pg_isready -h 127.0.0.1 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start

echo "building release binaries (with the check, and the bench-only variant without it)..."
cargo build --release --quiet --features bench-no-revocation-check
cp target/release/jwt-blocklist "$WORK/no-check"
cargo build --release --quiet
cp target/release/jwt-blocklist "$WORK/with-check"
# Last: an example builds the library with its dev features.
cargo build --release --quiet --example bench-signing --example bench-feed
cp target/release/examples/bench-signing "$WORK/bench-signing"
cp target/release/examples/bench-feed "$WORK/bench-feed"
cargo build --release --quiet -p jwt-blocklist-verifier --example resource_server
cp target/release/examples/resource_server "$WORK/resource-server"
psql "$ADMIN_URL" -qc "CREATE DATABASE \"$DB\""

# start NAME BINARY PORT [VAR=value ...]: starts an instance, sets $PID.
# HS256 unless VAR says otherwise: bench/tokens.py mints the tokens of the
# write and fleet sections with the secret (signatures.sh compares the
# algorithms).
start() {
    local name=$1 binary=$2 port=$3
    shift 3
    # shellcheck disable=SC2086 # $PIN expands to nothing, or to taskset's words
    ${PIN:+taskset -c $PIN} env DATABASE_URL="$URL" ROCKET_JWT_SECRET="$SECRET" ROCKET_PORT="$port" \
        ROCKET_LOG_LEVEL=critical ROCKET_PURGE_INTERVAL=0 ROCKET_DATA_DIR="$WORK/data" ROCKET_JWT_ALGORITHM=HS256 "$@" \
        "$WORK/$binary" >"$WORK/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
wait_ready() { until curl -sf "http://127.0.0.1:$1/health" >/dev/null; do sleep 0.02; done; }
wait_live() { until curl -sf "http://127.0.0.1:$1/health" | grep -q '"mode":"live"'; do sleep 0.02; done; }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# wrk_run LABEL wrk-args...: runs wrk, prints one summary line.
wrk_run() {
    local label=$1
    shift
    # shellcheck disable=SC2086 # $WRK_PIN expands to nothing, or to taskset's words
    ${WRK_PIN:+taskset -c $WRK_PIN} wrk --latency "$@" >"$WORK/wrk.txt"
    # The count of successes goes to $WORK/ok, for checks after a run.
    awk -v label="$label" '
        /Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /Non-2xx/ { bad = $NF }
        / requests in / { total = $1 }
        END { printf "%-44s req/s=%-10s p50=%-9s p99=%-9s non-2xx=%s\n", label, rps, p50, p99, (bad == "" ? 0 : bad)
              printf "%d\n", total - bad > "/dev/stderr" }
    ' "$WORK/wrk.txt" 2>"$WORK/ok" | tee -a "$OUT"
}

say "# jwt-blocklist benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
say "software: $(rustc --version), $(psql --version), $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)"
say "load runs: ${DURATION}s each after a 3s warm-up; wrk and the service share the machine"
say ""

start a with-check 18101
A=$PID
wait_ready 18101
curl -sf -X POST http://127.0.0.1:18101/auth/register -H 'Content-Type: application/json' \
    -d '{"username":"benchuser","password":"bench password 123"}' >"$WORK/user.json"
USER_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/user.json")
ACCESS=$(curl -sf -X POST http://127.0.0.1:18101/auth/login -H 'Content-Type: application/json' \
    -d '{"username":"benchuser","password":"bench password 123"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
AUTH="Authorization: Bearer $ACCESS"
stop "$A"

if [ "$ONLY" = storm ]; then
    source bench/storm.sh
    say ""
    say "results saved to $OUT"
    exit 0
fi

t=$(date +%s%N)
psql "$URL" -qc "INSERT INTO revoked_tokens (jti, expires_at, reason)
                 SELECT gen_random_uuid(), now() + interval '1 day', 'bench'
                 FROM generate_series(1, 1000000)"
say "prefill: 1,000,000 live rows of other tokens in revoked_tokens in $(ms_since "$t") ms"
# So that autovacuum does not pick the tables up during a measured run.
psql "$URL" -qc "VACUUM ANALYZE revoked_tokens, revocation_events"
if [ "$ONLY" = bulk ]; then
    source bench/bulk.sh
    say ""
    say "results saved to $OUT"
    exit 0
fi
if [ "$ONLY" = fleet ]; then
    source bench/fleet.sh
    say ""
    say "results saved to $OUT"
    exit 0
fi
if [ "$ONLY" = ceiling ]; then
    source bench/ceiling.sh
    source bench/bulk.sh
    say ""
    say "results saved to $OUT"
    exit 0
fi
if [ "$ONLY" = writes ]; then
    source bench/writes.sh
    say ""
    say "results saved to $OUT"
    exit 0
fi

say ""
say "## start-up with 1M live revoked rows"
t=$(date +%s%N)
start a with-check 18101
A=$PID
wait_ready 18101
say "serving (health 200, checks from the database): $(ms_since "$t") ms after exec"
wait_live 18101
say "revocation cache live (1M entries in memory):   $(ms_since "$t") ms after exec"
say "resident memory once live: $(rss_mb "$A") MB"

say ""
say "## GET /protected, 64 connections (wrk -t2 -c64)"
# protected_round LABEL BINARY PORT: a fresh instance of BINARY, its cache
# live, a 3 s warm-up, then the measured run.
protected_round() {
    start round "$2" "$3"
    local pid=$PID
    wait_live "$3"
    wrk -t2 -c64 -d3s -H "$AUTH" "http://127.0.0.1:$3/protected" >/dev/null
    wrk_run "$1" -t2 -c64 -d"${DURATION}s" -H "$AUTH" "http://127.0.0.1:$3/protected"
    stop "$pid"
}
stop "$A"
if [ "$ONLY" != signatures ] && [ "$ONLY" != feed ]; then
    for round in 1 2; do
        protected_round "with revocation check, round $round" with-check 18101
        protected_round "without it (bench-only build), round $round" no-check 18102
    done
    start a with-check 18101
    A=$PID
    wait_live 18101
    wrk -t2 -c64 -d"${DURATION}s" -H "$AUTH" http://127.0.0.1:18101/protected >/dev/null
    say "resident memory after a ${DURATION}s load run: $(rss_mb "$A") MB"
    stop "$A"
fi
source bench/signatures.sh
if [ "$ONLY" != signatures ]; then
    source bench/feed.sh
fi
start a with-check 18101
A=$PID
wait_live 18101
if [ "$ONLY" = protected ] || [ "$ONLY" = signatures ] || [ "$ONLY" = feed ]; then
    say ""
    say "results saved to $OUT"
    exit 0
fi

say ""
say "## logouts (each one a distinct revocation)"
python3 bench/tokens.py "$SECRET" "$USER_ID" 100000 >"$WORK/logout-tokens.txt"
wrk_run "POST /auth/logout, 64 connections, 5s" -t2 -c64 -d5s -s bench/logout.lua http://127.0.0.1:18101 -- "$WORK/logout-tokens.txt" 2

say ""
say "## logins (argon2id m=19MiB t=2 p=1)"
wrk_run "POST /auth/login, 32 connections" -t2 -c32 -d"${DURATION}s" -s bench/login.lua http://127.0.0.1:18101/auth/login
wrk_run "GET /protected idle, 8 connections" -t1 -c8 -d"${DURATION}s" -H "$AUTH" http://127.0.0.1:18101/protected
wrk -t1 -c32 -d"$((DURATION + 6))s" -s bench/login.lua http://127.0.0.1:18101/auth/login >"$WORK/login-bg.txt" &
LOGINS=$!
sleep 3
wrk_run "GET /protected, 8 conns, 32 clients logging in" -t1 -c8 -d"${DURATION}s" -H "$AUTH" http://127.0.0.1:18101/protected
wait "$LOGINS"
awk '/Requests\/sec/ { print "  (logins meanwhile: " $2 " req/s)" }' "$WORK/login-bg.txt" | tee -a "$OUT"
source bench/storm.sh

say ""
say "## revocation on instance A seen by instance B (1,000 revocations)"
start b with-check 18103
B=$PID
wait_live 18103
python3 bench/tokens.py "$SECRET" "$USER_ID" 1000 >"$WORK/propagation-tokens.txt"
python3 bench/propagation.py 18101 18103 "$WORK/propagation-tokens.txt" 1000 | tee -a "$OUT"
stop "$B"

stop "$A"
source bench/writes.sh
source bench/fleet.sh
source bench/ceiling.sh
source bench/bulk.sh
start a with-check 18101
A=$PID
wait_live 18101

say ""
say "## purge of 1,000,000 expired rows while /protected is under load"
t=$(date +%s%N)
psql "$URL" -qc "INSERT INTO revoked_tokens (jti, expires_at, reason)
                 SELECT gen_random_uuid(), now() - interval '1 hour', 'bench-expired'
                 FROM generate_series(1, 1000000)"
say "inserted 1M expired rows in $(ms_since "$t") ms; letting the cache settle"
sleep 10
wrk_run "GET /protected, 64 conns, 5s, no purge" -t2 -c64 -d5s -H "$AUTH" http://127.0.0.1:18101/protected
t=$(date +%s%N)
env DATABASE_URL="$URL" ROCKET_JWT_SECRET="$SECRET" "$WORK/with-check" purge >"$WORK/purge.txt" 2>&1 &
PURGE=$!
wrk_run "GET /protected, 64 conns, 5s, during purge" -t2 -c64 -d5s -H "$AUTH" http://127.0.0.1:18101/protected
wait "$PURGE"
say "purge: $(cat "$WORK/purge.txt") (wall $(ms_since "$t") ms; the load window was 5000 ms)"
say "rows left: $(psql "$URL" -Atc 'SELECT count(*) FROM revoked_tokens')"
say ""
say "results saved to $OUT"
