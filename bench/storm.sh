# Sourced by bench/run.sh: 200 clients sending logins with wrong passwords,
# first throttled (one username: 429s once its budget is spent), then not
# (a new username each time: every login is hashed, or shed with 503 when the
# hashing queue is full), while /protected and logout are measured. Their p99
# is compared with the same runs on the idle instance (target: within 3x),
# and the service's resident memory is sampled throughout (target: at most
# 50 MB above idle). The service, wrk and Postgres share both cores, so a
# control run first measures the same two runs beside a plain busy loop (no
# requests): what a load generator taking one core costs them by itself.

say ""
say "## login storm: 200 clients with wrong passwords while /protected and logout are measured"
start storm with-check 18105
S=$PID
wait_live 18105
# One file of tokens per logout run, each with room for 15,000 logouts a
# second (a distinct revocation per request): a run that uses them up would
# go on measuring cheap 401s for "exhausted" tokens, so that is checked too.
python3 bench/tokens.py "$SECRET" "$USER_ID" $((4 * DURATION * 15000)) >"$WORK/storm-tokens.txt"
split -n l/4 -d "$WORK/storm-tokens.txt" "$WORK/storm-tokens-"

# p99_ms: the last wrk run's p99 in milliseconds.
p99_ms() {
    awk '/^ +99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                    printf "%.3f", (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v) }' "$WORK/wrk.txt"
}
# measure LABEL TOKENS: /protected then logout, 8 connections each; sets
# $PROTECTED_P99 and $LOGOUT_P99 (ms).
measure() {
    wrk_run "GET /protected, 8 conns, $1" -t1 -c8 -d"${DURATION}s" -H "$AUTH" http://127.0.0.1:18105/protected
    PROTECTED_P99=$(p99_ms)
    wrk_run "POST /auth/logout, 8 conns, $1" -t1 -c8 -d"${DURATION}s" -s bench/logout.lua \
        http://127.0.0.1:18105 -- "$2" 1
    LOGOUT_P99=$(p99_ms)
    if grep -q "Non-2xx" "$WORK/wrk.txt"; then
        say "  WARNING: some logouts were not 200 (tokens used up?): this logout p99 is not a logout's"
    fi
}
measure idle "$WORK/storm-tokens-00"
IDLE_PROTECTED=$PROTECTED_P99
IDLE_LOGOUT=$LOGOUT_P99
IDLE_RSS=$(rss_mb "$S")
say "resident memory, idle: $IDLE_RSS MB"

# ratios LABEL: this round's p99s against idle.
ratios() {
    awk -v p="$PROTECTED_P99" -v ip="$IDLE_PROTECTED" -v l="$LOGOUT_P99" -v il="$IDLE_LOGOUT" -v what="$1" \
        'BEGIN { printf "  p99 vs idle: /protected %.2fx, logout %.2fx%s\n", p / ip, l / il, what }' | tee -a "$OUT"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Control: nothing but a busy loop on one core (the share a load generator
# takes); the service gets no extra request.
sh -c 'while :; do :; done' &
HOG=$!
PIDS+=("$HOG")
measure "control: one busy loop, no requests" "$WORK/storm-tokens-01"
stop "$HOG"
ratios " (control: the service did no extra work)"

round=2
for mode in one many; do
    wrk -t1 -c200 -d"$((2 * DURATION + 8))s" -s bench/storm.lua http://127.0.0.1:18105 -- "$mode" \
        >"$WORK/storm-$mode.txt" &
    STORM=$!
    (peak=0; while kill -0 "$STORM" 2>/dev/null; do
         now=$(awk '/VmRSS/ { print $2 }' "/proc/$S/status"); [ "$now" -gt "$peak" ] && peak=$now
         echo "$peak" >"$WORK/peak-$mode"; sleep 0.2
     done) &
    SAMPLER=$!
    sleep 3
    case $mode in
        one) label="storm throttled (one username)" ;;
        many) label="storm not throttled (new usernames)" ;;
    esac
    started=$(date +%s%N)
    ticks=$(cpu_ticks "$STORM")
    measure "$label" "$WORK/storm-tokens-0$round"
    awk -v t="$(($(cpu_ticks "$STORM") - ticks))" -v hz="$(getconf CLK_TCK)" -v ns="$(($(date +%s%N) - started))" \
        'BEGIN { printf "  the storm'"'"'s wrk used %.0f %% of a core while these were measured\n", 100 * t / hz / (ns / 1e9) }' |
        tee -a "$OUT"
    wait "$STORM"
    wait "$SAMPLER" 2>/dev/null || true
    awk '/Requests\/sec/ { printf "  storm: %s login req/s; ", $2 } /^answers/ { print }' "$WORK/storm-$mode.txt" |
        tee -a "$OUT"
    PEAK=$(awk '{ printf "%.1f", $1 / 1024 }' "$WORK/peak-$mode")
    ratios "$(awk -v peak="$PEAK" -v idle="$IDLE_RSS" \
        'BEGIN { printf " (target <= 3x); peak memory %.1f MB = idle + %.1f MB (target <= 50)", peak, peak - idle }')"
    round=$((round + 1))
done
stop "$S"
