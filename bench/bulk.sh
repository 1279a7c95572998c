# Sourced by bench/run.sh: a DBA's bulk revocation of 1,000,000 rows by SQL
# (one INSERT ... SELECT), on top of the 1M rows already there. Unloaded: how
# long from its commit until memory refuses one of its tokens. Under full
# GET /protected load (wrk -t2 -c64, unpinned, as in the /protected
# section), three times: req/s before, during and after, and whether memory
# ever handed checks to the database or reloaded.

say ""
say "## bulk revocation of 1,000,000 rows by SQL (memory must take it in without a stall)"
# Room for the prefill and the four bulks (5M): past its capacity an instance
# answers from the database, which is not what this section measures. Under
# the default algorithm, ES256: a request costs more CPU than under HS256,
# and the follower's poll competes with it.
start bulk with-check 18105 ROCKET_REVOCATION_CACHE_CAPACITY=6000000 ROCKET_JWT_ALGORITHM=ES256
BULK=$PID
wait_live 18105
login_token() {
    curl -sf -X POST http://127.0.0.1:18105/auth/login -H 'Content-Type: application/json' \
        -d '{"username":"benchuser","password":"bench password 123"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
BULK_TOKEN=$(login_token)
bulk_insert() { # SID: inserts 999,999 random rows and the session SID, in one statement
    psql "$URL" -qc "INSERT INTO revoked_tokens (jti, expires_at, reason)
                     SELECT gen_random_uuid(), now() + interval '1 day', 'bench-bulk' FROM generate_series(2, 1000000)
                     UNION ALL SELECT '$1', now() + interval '1 day', 'bench-bulk'"
}
health_field() { curl -sf "http://127.0.0.1:18105/health" | python3 -c "import json,sys; print(json.load(sys.stdin)['revocation_cache']['$1'])"; }
database_checks() { curl -sf http://127.0.0.1:18105/metrics | awk '/revocation_checks_total\{outcome="database"\}/ { print $2 }'; }
sid_of() { python3 -c 'import base64,json,sys; p=sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sid"])' "$1"; }

# Unloaded.
loads=$(health_field loads)
t=$(date +%s%N)
bulk_insert "$(sid_of "$BULK_TOKEN")"
say "unloaded: the INSERT of 1M rows took $(ms_since "$t") ms"
committed=$(date +%s%N)
until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BULK_TOKEN" http://127.0.0.1:18105/protected)" = 401 ]; do
    sleep 0.005
done
say "unloaded: a token of the bulk refused $(ms_since "$committed") ms after the INSERT committed; reloads: $(( $(health_field loads) - loads ))"

# Under load: another million rows while wrk runs, three times (whether
# memory hands checks to the database depends on where in the follower's
# 200 ms heartbeat the commit falls; one round cannot show that).
AUTH_BULK="Authorization: Bearer $(login_token)"
wrk -t2 -c64 -d3s -H "$AUTH_BULK" http://127.0.0.1:18105/protected >/dev/null
wrk_run "GET /protected before the bulk inserts" -t2 -c64 -d"${DURATION}s" -H "$AUTH_BULK" http://127.0.0.1:18105/protected
for round in 1 2 3; do
    BULK_TOKEN=$(login_token)
    loads=$(health_field loads)
    checks=$(database_checks)
    wrk -t2 -c64 -d"${DURATION}s" -H "$AUTH_BULK" http://127.0.0.1:18105/protected >"$WORK/wrk-during.txt" &
    WRK_DURING=$!
    sleep 1
    t=$(date +%s%N)
    bulk_insert "$(sid_of "$BULK_TOKEN")"
    committed=$(date +%s%N)
    say "under load, round $round: the INSERT of 1M rows took $(( (committed - t) / 1000000 )) ms"
    until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BULK_TOKEN" http://127.0.0.1:18105/protected)" = 401 ]; do
        sleep 0.005
    done
    say "under load, round $round: a token of the bulk refused $(ms_since "$committed") ms after the INSERT committed"
    wait "$WRK_DURING"
    awk '/Requests\/sec/ { printf "%-44s req/s=%s\n", "GET /protected during (insert 1 s in)", $2 }' "$WORK/wrk-during.txt" | tee -a "$OUT"
    say "  checks answered by the database meanwhile: $(( $(database_checks | cut -d. -f1) - ${checks%.*} )); reloads: $(( $(health_field loads) - loads ))"
done
wrk_run "GET /protected after" -t2 -c64 -d"${DURATION}s" -H "$AUTH_BULK" http://127.0.0.1:18105/protected
say "entries in memory: $(health_field entries)"
stop "$BULK"
