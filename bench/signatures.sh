# Sourced by bench/run.sh: what asymmetric signatures cost. For each
# jwt_algorithm, an instance of its own on the bench database (the first
# start under ES256 and EdDSA makes the deployment's key), 10,000 access
# tokens signed with that key (bench/signing.rs, which also times signing
# and verifying on one core), then GET /protected with one token and with
# the 10,000 in rotation (each token seen again only after all the others),
# each after a 3s warm-up of the same load. Then introspection, as a
# registered client, against /protected with the same 10,000 ES256 tokens.

say ""
say "## signatures: GET /protected per jwt_algorithm, 64 connections (wrk -t2 -c64)"
declare -A RPS
rps() { awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt"; }
for alg in HS256 ES256 EdDSA; do
    start "sig-$alg" with-check 18105 ROCKET_JWT_ALGORITHM="$alg"
    pid=$PID
    wait_live 18105
    env DATABASE_URL="$URL" ROCKET_JWT_SECRET="$SECRET" ROCKET_JWT_ALGORITHM="$alg" ROCKET_DATA_DIR="$WORK/data" \
        ROCKET_LOG_LEVEL=critical "$WORK/bench-signing" "$USER_ID" 10000 \
        >"$WORK/tokens-$alg.txt" 2>>"$WORK/signing.txt"
    one="Authorization: Bearer $(head -n1 "$WORK/tokens-$alg.txt")"
    wrk -t2 -c64 -d3s -H "$one" http://127.0.0.1:18105/protected >/dev/null
    wrk_run "$alg, one token" -t2 -c64 -d"${DURATION}s" -H "$one" http://127.0.0.1:18105/protected
    RPS[$alg-one]=$(rps)
    many=(-t2 -c64 -s bench/rotate.lua http://127.0.0.1:18105 -- "$WORK/tokens-$alg.txt" 2)
    wrk -d3s "${many[@]}" >/dev/null
    wrk_run "$alg, 10,000 distinct tokens in rotation" -d"${DURATION}s" "${many[@]}"
    RPS[$alg-many]=$(rps)
    if [ "$alg" = ES256 ]; then
        CLIENT_SECRET=$(env DATABASE_URL="$URL" ROCKET_JWT_SECRET="$SECRET" ROCKET_DATA_DIR="$WORK/data" \
            ROCKET_LOG_LEVEL=critical "$WORK/with-check" clients add bench | sed -n 's/^client_secret: //p')
        BASIC="Basic $(printf 'bench:%s' "$CLIENT_SECRET" | base64 -w0)"
        asked=(-t2 -c64 -s bench/introspect.lua http://127.0.0.1:18105 -- "$WORK/tokens-$alg.txt" 2 "$BASIC")
        wrk -d3s "${asked[@]}" >/dev/null
        wrk_run "POST /oauth/introspect, the same 10,000" -d"${DURATION}s" "${asked[@]}"
        RPS[introspect]=$(rps)
    fi
    stop "$pid"
done
say ""
say "one core, per token (bench/signing.rs, 10,000 tokens):"
tee -a "$OUT" <"$WORK/signing.txt"
ratio() { awk -v a="$2" -v b="$3" -v name="$1" 'BEGIN { printf "  %-52s %.2f\n", name, a / b }' | tee -a "$OUT"; }
say "ratios (same run):"
ratio "ES256 / HS256, one token" "${RPS[ES256-one]}" "${RPS[HS256-one]}"
ratio "ES256 / HS256, 10,000 tokens (goal >= 0.90)" "${RPS[ES256-many]}" "${RPS[HS256-many]}"
ratio "EdDSA / HS256, one token" "${RPS[EdDSA-one]}" "${RPS[HS256-one]}"
ratio "EdDSA / HS256, 10,000 tokens" "${RPS[EdDSA-many]}" "${RPS[HS256-many]}"
ratio "introspection / ES256 /protected, 10,000 tokens" "${RPS[introspect]}" "${RPS[ES256-many]}"
