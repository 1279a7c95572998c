# Sourced by bench/run.sh: 1, 4 and 16 instances on one Postgres database
# (unpinned: this machine has two cores for all of them, Postgres and the
# load). Logouts are spread over every instance at once (one wrk each,
# 64 connections in all); propagation is measured from the first instance to
# the last. Each instance gets 2 request connections (a logout's write goes
# through the writer's own connection; the follower has 2, the waker 1), so
# 16 instances, 6 connections each, fit Postgres' default max_connections
# of 100.

say ""
say "## a fleet on one database: logouts spread over N instances, propagation first to last"
for N in 1 4 16; do
    FLEET=()
    for i in $(seq 0 $((N - 1))); do
        start "fleet$i" with-check $((18200 + i)) ROCKET_DATABASES='{main={max_connections=2}}'
        FLEET+=("$PID")
    done
    for i in $(seq 0 $((N - 1))); do wait_live $((18200 + i)); done
    python3 bench/tokens.py "$SECRET" "$USER_ID" 200000 >"$WORK/fleet-tokens.txt"
    WRKS=()
    for i in $(seq 0 $((N - 1))); do
        awk -v n="$N" -v i="$i" 'NR % n == i' "$WORK/fleet-tokens.txt" >"$WORK/fleet-tokens-$i.txt"
        wrk -t1 -c$((64 / N)) -d"${DURATION}s" -s bench/logout.lua "http://127.0.0.1:$((18200 + i))" \
            -- "$WORK/fleet-tokens-$i.txt" 1 >"$WORK/fleet-wrk-$i.txt" &
        WRKS+=("$!")
    done
    wait "${WRKS[@]}"
    total=$(cat "$WORK"/fleet-wrk-*.txt | awk '/Requests\/sec/ { sum += $2 } END { printf "%.0f", sum }')
    line=$(printf '%-44s logout/s=%s' "$N instance(s), 64 connections in all" "$total")
    if [ "$N" -gt 1 ]; then
        python3 bench/tokens.py "$SECRET" "$USER_ID" 300 >"$WORK/fleet-prop.txt"
        line="$line  $(python3 bench/propagation.py 18200 $((18200 + N - 1)) "$WORK/fleet-prop.txt" 300)"
    fi
    say "$line"
    for pid in "${FLEET[@]}"; do stop "$pid"; done
    rm -f "$WORK"/fleet-wrk-*.txt "$WORK"/fleet-tokens-*.txt
done
