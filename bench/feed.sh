# Sourced by bench/run.sh after signatures.sh: the revocation feed and the
# verifier library (issue 19). A 1M-entry snapshot on the bench database:
# the time to serve it and for the library to load it, and the library's
# memory for it. Then, on a database of its own (so that 64 followers do
# not each load a million entries): propagation from a logout to refusal at
# 1, 16 and 64 followers (in-process verifiers, each with its own stream
# connection: 64 processes of the example do not fit on 2 cores beside the
# service); the service's memory per open stream and CPU per event sent,
# with 64 and 1,000 idle streams; and the example resource server's
# GET /protected as a ratio of the service's own, same token, same run.

say ""
say "## the revocation feed and the verifier library (ES256)"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
metric() { curl -sf "$1/metrics" | awk -v name="$2" '$1 == name { print $2 }'; }
events_sent() {
    curl -sf "$1/metrics" | awk '/^jwt_blocklist_feed_events_total/ { sum += $2 } END { print sum + 0 }'
}
add_client() {
    env DATABASE_URL="$URL" ROCKET_JWT_SECRET="$SECRET" ROCKET_DATA_DIR="$WORK/data" ROCKET_LOG_LEVEL=critical \
        "$WORK/with-check" clients add "$1" | sed -n 's/^client_secret: //p'
}
knows_client() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$2:$3" -d token=x "$1/oauth/introspect")" = 200 ]
}

start feed-1m with-check 18106 ROCKET_JWT_ALGORITHM=ES256
pid=$PID
wait_live 18106
FEED=http://127.0.0.1:18106
CLIENT_SECRET=$(add_client feed-1m)
until knows_client "$FEED" feed-1m "$CLIENT_SECRET"; do sleep 0.05; done
t=$(date +%s%N)
curl -sf -u "feed-1m:$CLIENT_SECRET" -o "$WORK/snapshot.json" "$FEED/revocations"
say "GET /revocations with $(grep -o '"id"' "$WORK/snapshot.json" | wc -l) entries: $(ms_since "$t") ms, $(($(stat -c %s "$WORK/snapshot.json") / 1048576)) MB; service resident memory $(rss_mb "$pid") MB after"
say "verifier library, $("$WORK/bench-feed" snapshot "$FEED" feed-1m "$CLIENT_SECRET")"
stop "$pid"

# The followers' database: a fresh one, a user, 1,000 tokens.
MAIN_URL=$URL
URL=${ADMIN_URL%/*}/${DB}_feed
psql "$ADMIN_URL" -qc "CREATE DATABASE \"${DB}_feed\""
start feed with-check 18106 ROCKET_JWT_ALGORITHM=ES256
pid=$PID
wait_live 18106
FEED_USER=$(curl -sf -X POST "$FEED/auth/register" -H 'Content-Type: application/json' \
    -d '{"username":"feeduser","password":"bench password 123"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
env DATABASE_URL="$URL" ROCKET_JWT_SECRET="$SECRET" ROCKET_JWT_ALGORITHM=ES256 ROCKET_DATA_DIR="$WORK/data" \
    ROCKET_LOG_LEVEL=critical "$WORK/bench-signing" "$FEED_USER" 1000 >"$WORK/feed-tokens.txt" 2>/dev/null
CLIENT_SECRET=$(add_client feed)
until knows_client "$FEED" feed "$CLIENT_SECRET"; do sleep 0.05; done

say "propagation, logout at the service to refusal at every follower (200 logouts each):"
line=1
for followers in 1 16 64; do
    sed -n "${line},$((line + 199))p" "$WORK/feed-tokens.txt" >"$WORK/feed-slice.txt"
    line=$((line + 200))
    say "  $("$WORK/bench-feed" propagation "$FEED" feed "$CLIENT_SECRET" "$followers" "$WORK/feed-slice.txt" 200)"
done

say "the service's cost per open stream (idle: heartbeats only), 10 s windows:"
# window LABEL: the service's CPU and events sent over 10 s.
window() {
    local cpu0 events0 cpu1 events1
    cpu0=$(cpu_ticks "$pid")
    events0=$(events_sent "$FEED")
    sleep 10
    cpu1=$(cpu_ticks "$pid")
    events1=$(events_sent "$FEED")
    WINDOW_CPU=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$TICK" 'BEGIN { printf "%.3f", (b - a) / t }')
    WINDOW_EVENTS=$(awk -v a="$events0" -v b="$events1" 'BEGIN { print b - a }')
    say "$(printf '  %-22s service CPU %6.2f s in 10 s, events sent %8d, resident %6.1f MB' "$1" "$WINDOW_CPU" "$WINDOW_EVENTS" "$(rss_mb "$pid")")"
}
window "no stream"
IDLE_CPU=$WINDOW_CPU
IDLE_RSS=$(rss_mb "$pid")
for streams in 64 1000; do
    "$WORK/bench-feed" streams "$FEED" feed "$CLIENT_SECRET" "$streams" 16 >"$WORK/streams.txt" &
    HOLDER=$!
    until [ "$(metric "$FEED" jwt_blocklist_feed_streams)" = "$streams" ]; do sleep 0.1; done
    sleep 1
    window "$streams streams"
    say "$(awk -v s="$streams" -v rss="$(rss_mb "$pid")" -v idle_rss="$IDLE_RSS" -v cpu="$WINDOW_CPU" -v idle="$IDLE_CPU" -v ev="$WINDOW_EVENTS" \
        'BEGIN { printf "    = %.1f KB of service memory per stream, %.1f us of service CPU per event sent", (rss - idle_rss) * 1024 / s, (cpu - idle) * 1e6 / ev }')"
    wait "$HOLDER"
done

say "the example resource server (verifier/examples/resource_server.rs) against the service, GET /protected, same token:"
AUTH_FEED="Authorization: Bearer $(sed -n 999p "$WORK/feed-tokens.txt")"
JBL_URL=$FEED JBL_CLIENT_ID=feed JBL_CLIENT_SECRET=$CLIENT_SECRET PORT=18107 ROCKET_LOG_LEVEL=critical \
    "$WORK/resource-server" >"$WORK/rs.log" 2>&1 &
RS=$!
PIDS+=("$RS")
until curl -sf http://127.0.0.1:18107/health >/dev/null; do sleep 0.05; done
for round in 1 2; do
    wrk -t2 -c64 -d3s -H "$AUTH_FEED" "$FEED/protected" >/dev/null
    wrk_run "service, round $round" -t2 -c64 -d"${DURATION}s" -H "$AUTH_FEED" "$FEED/protected"
    SERVICE_RPS=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt")
    wrk -t2 -c64 -d3s -H "$AUTH_FEED" http://127.0.0.1:18107/protected >/dev/null
    wrk_run "resource server, round $round" -t2 -c64 -d"${DURATION}s" -H "$AUTH_FEED" http://127.0.0.1:18107/protected
    RS_RPS=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt")
    say "$(awk -v a="$RS_RPS" -v b="$SERVICE_RPS" 'BEGIN { printf "  resource server / service = %.2f (goal >= 0.90)", a / b }')"
done
stop "$RS"
stop "$pid"
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"${DB}_feed\" WITH (FORCE)" >/dev/null
URL=$MAIN_URL
