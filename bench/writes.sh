# Sourced by bench/run.sh: the write paths with the service and Postgres
# pinned to core 0 and the load generators (wrk, pgbench) on core 1, measured
# against what Postgres itself commits on that core. 1M live rows are in
# revoked_tokens throughout.

say ""
say "## writes, pinned: the service and Postgres on core 0, wrk and pgbench on core 1"
pin_postgres 0
# 32 request connections: commits share a WAL flush only when they run at once
# (pgbench gets 64 clients).
PIN=0 start pinned with-check 18104 ROCKET_DATABASES='{main={max_connections=32}}'
P=$PID
wait_live 18104
WRK_PIN=1

# writer_batches PORT: the writer's batches and writes so far, from /health.
writer_batches() {
    curl -sf "http://127.0.0.1:$1/health" |
        python3 -c 'import json,sys; w = json.load(sys.stdin)["writes"]; print(w["batches"], w["writes"], w["largest_batch"])'
}
# batch_line BEFORE AFTER: the mean and largest batch between two readings.
batch_line() {
    read -r b0 w0 _ <<<"$1"
    read -r b1 w1 largest <<<"$2"
    awk -v b="$((b1 - b0))" -v w="$((w1 - w0))" -v l="$largest" \
        'BEGIN { printf "  group commit: %d writes in %d batches, %.1f per batch (largest so far %d)\n", w, b, (b ? w / b : 0), l }' |
        tee -a "$OUT"
}

psql "$URL" -qc "CREATE TABLE bench_one_row (id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
echo "INSERT INTO bench_one_row (id) VALUES (gen_random_uuid());" >"$WORK/one-row.sql"
taskset -c 1 pgbench -n -c 64 -j 1 -T "$DURATION" -f "$WORK/one-row.sql" "$URL" >"$WORK/pgbench.txt" 2>&1
ONE_ROW=$(awk '/^tps/ { print $3; exit }' "$WORK/pgbench.txt")
say "$(printf '%-44s tps=%s' "pgbench: one-row INSERT, 64 clients" "$ONE_ROW")"
# fraction NAME: the last wrk run's req/s as a share of the one-row insert.
fraction() {
    awk -v one="$ONE_ROW" -v name="$1" '/Requests\/sec/ { printf "  %s = %.1f %% of the one-row insert\n", name, 100 * $2 / one }' \
        "$WORK/wrk.txt" | tee -a "$OUT"
}

python3 bench/tokens.py "$SECRET" "$USER_ID" 400000 >"$WORK/pinned-logout.txt"
before=$(writer_batches 18104)
wrk_run "POST /auth/logout, 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/pinned-logout.txt" 1
fraction "logout/s"
batch_line "$before" "$(writer_batches 18104)"
# Each logout lists its token's session: one row, whose jti is the token's sid.
psql "$URL" -Atc "SELECT jti FROM revoked_tokens WHERE reason = 'logout'" >"$WORK/revoked-ids.txt"
python3 bench/verify_revoked.py 18104 "$WORK/pinned-logout.txt" "$WORK/revoked-ids.txt" "$(cat "$WORK/ok")" |
    tee -a "$OUT"

# A lone logout on an idle service (one connection, one request at a time):
# group commit must add nothing to it.
python3 bench/tokens.py "$SECRET" "$USER_ID" 100000 >"$WORK/lone-logout.txt"
wrk_run "POST /auth/logout, 1 connection (idle latency)" -t1 -c1 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/lone-logout.txt" 1

# RFC 7009: each request revokes a distinct access token.
python3 bench/tokens.py "$SECRET" "$USER_ID" 400000 >"$WORK/revoke-tokens.txt"
before=$(writer_batches 18104)
wrk_run "POST /auth/revoke (RFC 7009), 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/revoke.lua \
    http://127.0.0.1:18104 -- "$WORK/revoke-tokens.txt" 1
fraction "revoke/s"
batch_line "$before" "$(writer_batches 18104)"

# Logout-all: users and sessions made in SQL (registering them through the
# API would cost an argon2 hash each), one token per session.
psql "$URL" -qc "INSERT INTO users (id, username, password_hash)
                 SELECT gen_random_uuid(), 'bulk' || i, 'not a hash' FROM generate_series(1, 300000) i;
                 INSERT INTO sessions (id, user_id, refresh_jti, expires_at)
                 SELECT gen_random_uuid(), id, gen_random_uuid(), now() + interval '1 day'
                 FROM users WHERE username LIKE 'bulk%'"
# So that autovacuum does not pick these tables up during the measured run.
psql "$URL" -qc "VACUUM ANALYZE users, sessions"
psql "$URL" -Atc "SELECT s.user_id || ' ' || s.id FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE u.username LIKE 'bulk%'" >"$WORK/pairs.txt"
python3 bench/tokens.py "$SECRET" --pairs "$WORK/pairs.txt" >"$WORK/logout-all.txt"
before=$(writer_batches 18104)
wrk_run "POST /auth/logout-all, 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/logout-all.txt" 1 /auth/logout-all
fraction "logout-all/s"
batch_line "$before" "$(writer_batches 18104)"

# Refresh: 128 real sessions (logins through the API), rotated in turn.
for _ in $(seq 1 128); do
    curl -sf -X POST http://127.0.0.1:18104/auth/login -H 'Content-Type: application/json' \
        -d '{"username":"benchuser","password":"bench password 123"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
done >"$WORK/refresh-tokens.txt"
before=$(writer_batches 18104)
wrk_run "POST /auth/refresh, 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/refresh.lua \
    http://127.0.0.1:18104 -- "$WORK/refresh-tokens.txt" 1
fraction "refresh/s"
batch_line "$before" "$(writer_batches 18104)"

# Login: its database part (the user lookup and the session insert, the two
# statements a login runs), by pgbench; the argon2 part is measured above.
cat >"$WORK/login-db.sql" <<SQL
SELECT id, username, password_hash, created_at FROM users WHERE lower(username) = lower('benchuser');
INSERT INTO sessions (id, user_id, refresh_jti, expires_at)
    VALUES (gen_random_uuid(), '$USER_ID', gen_random_uuid(), now() + interval '30 days');
SQL
taskset -c 1 pgbench -n -c 64 -j 1 -T "$DURATION" -f "$WORK/login-db.sql" "$URL" >"$WORK/pgbench.txt" 2>&1
say "$(printf '%-44s tps=%s' "pgbench: a login's two statements, 64 clients" "$(awk '/^tps/ { print $3; exit }' "$WORK/pgbench.txt")")"

WRK_PIN=""
stop "$P"
pin_postgres "0-$(($(nproc) - 1))"
