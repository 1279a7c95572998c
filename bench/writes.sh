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
wrk_run "POST /auth/logout, 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/pinned-logout.txt" 1
fraction "logout/s"
psql "$URL" -Atc "SELECT jti FROM revoked_tokens WHERE reason = 'logout'" >"$WORK/revoked-jtis.txt"
# Each logout lists the token and its session: two rows, one of them its jti.
python3 bench/verify_revoked.py 18104 "$WORK/pinned-logout.txt" "$WORK/revoked-jtis.txt" "$(cat "$WORK/ok")" |
    tee -a "$OUT"

# What the event log and its wake-up cost a logout (an experiment on the
# bench database only: followers see nothing meanwhile). Postgres takes one
# cluster-wide lock from a notifying transaction's commit until it is
# durable, so notifying commits cannot share a WAL flush.
psql "$URL" -qc "CREATE OR REPLACE FUNCTION bench_log_only() RETURNS trigger LANGUAGE plpgsql AS \$\$
                 BEGIN INSERT INTO revocation_events (jti) VALUES (NEW.jti); RETURN NULL; END \$\$;
                 ALTER TABLE revoked_tokens DISABLE TRIGGER revoked_tokens_log_insert;
                 CREATE TRIGGER bench_log_only AFTER INSERT ON revoked_tokens
                     FOR EACH ROW EXECUTE FUNCTION bench_log_only()"
python3 bench/tokens.py "$SECRET" "$USER_ID" 400000 >"$WORK/pinned-logout-2.txt"
wrk_run "  same, event log but no NOTIFY (experiment)" -t1 -c64 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/pinned-logout-2.txt" 1
psql "$URL" -qc "DROP TRIGGER bench_log_only ON revoked_tokens"
python3 bench/tokens.py "$SECRET" "$USER_ID" 400000 >"$WORK/pinned-logout-3.txt"
wrk_run "  same, no trigger at all (experiment)" -t1 -c64 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/pinned-logout-3.txt" 1
psql "$URL" -qc "ALTER TABLE revoked_tokens ENABLE TRIGGER revoked_tokens_log_insert"

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
wrk_run "POST /auth/logout-all, 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/logout.lua \
    http://127.0.0.1:18104 -- "$WORK/logout-all.txt" 1 /auth/logout-all
fraction "logout-all/s"

# Refresh: 128 real sessions (logins through the API), rotated in turn.
for _ in $(seq 1 128); do
    curl -sf -X POST http://127.0.0.1:18104/auth/login -H 'Content-Type: application/json' \
        -d '{"username":"benchuser","password":"bench password 123"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
done >"$WORK/refresh-tokens.txt"
wrk_run "POST /auth/refresh, 64 connections" -t1 -c64 -d"${DURATION}s" -s bench/refresh.lua \
    http://127.0.0.1:18104 -- "$WORK/refresh-tokens.txt" 1
fraction "refresh/s"

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
