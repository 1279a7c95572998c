# Sourced by bench/run.sh: what GET /protected carries beyond verifying the
# JWT, as CPU per request against the ceiling: ../shared/peers/rocket_limit,
# a Rocket server that verifies the same HS256 token and checks nothing
# (built with its own release profile, codegen-units = 4). Each server and
# Postgres on core 0, wrk (64 connections) on core 1; the server's CPU time
# (utime + stime from /proc) divided by the requests it answered. Rounds
# alternate, so drift on this shared machine hits both alike. 1M live rows
# are in revoked_tokens.

say ""
say "## GET /protected, CPU per request against the ceiling (rocket_limit), pinned"
LIMIT_DIR=../shared/peers/rocket_limit
(cd "$LIMIT_DIR" && cargo build --release --quiet)
pin_postgres 0
WRK_PIN=1
CEILING_TOKEN=$(python3 bench/tokens.py "$SECRET" "$USER_ID" 1)
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cpu_round LABEL PID PORT: a 3 s warm-up, then DURATION seconds measured;
# sets US to the server's CPU microseconds per answered request.
cpu_round() {
    local label=$1 pid=$2 port=$3 t0 t1 answered
    taskset -c 1 wrk -t1 -c64 -d3s -H "Authorization: Bearer $CEILING_TOKEN" "http://127.0.0.1:$port/protected" >/dev/null
    t0=$(cpu_ticks "$pid")
    taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" -H "Authorization: Bearer $CEILING_TOKEN" \
        "http://127.0.0.1:$port/protected" >"$WORK/wrk.txt"
    t1=$(cpu_ticks "$pid")
    answered=$(awk '/ requests in / { print $1 }' "$WORK/wrk.txt")
    US=$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="$answered" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    say "$(printf '%-52s req/s=%-8s cpu/request=%s us' "$label" \
        "$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt")" "$US")"
}
# Four alternating rounds, and their medians: two rounds of CPU time could not
# resolve a few per cent on this shared machine (BENCHMARKS.md, issue 20).
RATIOS=()
LINE_COSTS=()
for round in 1 2 3 4; do
    taskset -c 0 env ROCKET_PORT=18110 ROCKET_JWT_SECRET="$SECRET" ROCKET_LOG_LEVEL=critical \
        "$LIMIT_DIR/target/release/rocket_limit" >"$WORK/limit.log" 2>&1 &
    L=$!
    PIDS+=("$L")
    until curl -s -o /dev/null http://127.0.0.1:18110/protected; do sleep 0.02; done
    cpu_round "ceiling: rocket_limit, round $round" "$L" 18110
    CEILING=$US
    stop "$L"

    PIN=0 start quiet with-check 18111
    Q=$PID
    wait_live 18111
    cpu_round "ours, check + metrics, request lines off, round $round" "$Q" 18111
    QUIET=$US
    stop "$Q"

    PIN=0 start lines with-check 18112 ROCKET_LOG_LEVEL=normal ROCKET_LOG_FORMAT=json
    N=$PID
    wait_live 18112
    cpu_round "ours, request lines on (normal, JSON, to a file), round $round" "$N" 18112
    LINES=$US
    stop "$N"
    PIN=""
    awk -v c="$CEILING" -v q="$QUIET" -v l="$LINES" 'BEGIN {
        printf "  round: ceiling/ours = %.3f (goal >= 0.95); a request line costs %.2f us\n", c / q, l - q }' |
        tee -a "$OUT"
    RATIOS+=("$(awk -v c="$CEILING" -v q="$QUIET" 'BEGIN { printf "%.3f", c / q }')")
    LINE_COSTS+=("$(awk -v q="$QUIET" -v l="$LINES" 'BEGIN { printf "%.2f", l - q }')")
done
# median VALUES...: the mean of the middle two of four.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'; }
say "  median of ${#RATIOS[@]} rounds: ceiling/ours = $(median "${RATIOS[@]}") (goal >= 0.95); a request line costs $(median "${LINE_COSTS[@]}") us (goal about 1.5)"
WRK_PIN=""
pin_postgres "0-$(($(nproc) - 1))"

# Instructions per request, counted by callgrind: the same binary and the
# same requests give the same count whatever else this shared machine does,
# where CPU time above drifts by several per cent between rounds. Each
# server runs under valgrind with instrumentation off (start-up, the cache's
# load, a warm-up of WARM requests), then on for exactly COUNTED requests
# (bench/requests.py, 4 keep-alive connections); background work in that
# window (the follower's heartbeat polls) counts as ours.
say ""
say "## GET /protected, instructions per request (callgrind) against the ceiling"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
WARM=500
COUNTED=4000
# counted LABEL PID PORT: sets IR to the instructions per counted request.
counted() {
    local label=$1 pid=$2 port=$3 total
    until curl -s -o /dev/null "http://127.0.0.1:$port/protected"; do sleep 0.2; done
    python3 bench/requests.py "$port" /protected "$CEILING_TOKEN" "$WARM"
    callgrind_control -i on "$pid" >/dev/null
    python3 bench/requests.py "$port" /protected "$CEILING_TOKEN" "$COUNTED"
    callgrind_control -i off "$pid" >/dev/null
    rm -f "$WORK"/callgrind.out.*
    callgrind_control -d "$pid" >/dev/null
    # The dump's total ("totals:"; older valgrind writes only "summary:").
    total=$(cat "$WORK"/callgrind.out.* | awk '/^totals:/ { t = $2 } /^summary:/ { s = $2 } END { print (t != "" ? t : s) }')
    IR=$(awk -v t="$total" -v n="$COUNTED" 'BEGIN { printf "%.0f", t / n }')
    say "$(printf '%-52s instructions/request=%s' "$label" "$IR")"
}
valgrind_wrapper() { # NAME BINARY: $WORK/NAME runs BINARY under callgrind
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s/callgrind.out.%%p %s "$@"\n' \
        "$WORK" "$2" >"$WORK/$1"
    chmod +x "$WORK/$1"
}
valgrind_wrapper limit-cg "$(realpath "$LIMIT_DIR/target/release/rocket_limit")"
valgrind_wrapper with-check-cg "$WORK/with-check"
ROCKET_PORT=18113 ROCKET_JWT_SECRET="$SECRET" ROCKET_LOG_LEVEL=critical "$WORK/limit-cg" >"$WORK/limit-cg.log" 2>&1 &
L=$!
PIDS+=("$L")
counted "ceiling: rocket_limit" "$L" 18113
CEILING_IR=$IR
stop "$L"
start quiet-cg with-check-cg 18114
Q=$PID
wait_live 18114
counted "ours, check + metrics, request lines off" "$Q" 18114
QUIET_IR=$IR
stop "$Q"
start lines-cg with-check-cg 18115 ROCKET_LOG_LEVEL=normal ROCKET_LOG_FORMAT=json
N=$PID
wait_live 18115
counted "ours, request lines on (normal, JSON, to a file)" "$N" 18115
LINES_IR=$IR
stop "$N"
awk -v c="$CEILING_IR" -v q="$QUIET_IR" -v l="$LINES_IR" 'BEGIN {
    printf "  ceiling/ours = %.3f in instructions; a request line costs %d instructions\n", c / q, l - q }' |
    tee -a "$OUT"
