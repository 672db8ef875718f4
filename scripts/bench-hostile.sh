# The body of `scripts/bench.sh hostile`, sourced by it (its settings and helpers are in
# scope): the hostile-clients issue's attacks at full size (BENCHMARKS.md, "Hostile clients at
# full size"), each against a fresh start of the release build with default settings, a good
# client calling GetArticle every 100-200 ms alongside (loadgen's own, or the stalled
# scenarios' reading subscriber), the server's RSS and CPU measured. The end-to-end tests
# (tests/e2e/hostile_clients/, tests/e2e/stalled_streams.rs) run the same attacks scaled down.

RESULTS="$DIR/hostile-$STAMP.md"
SERVICE_LOG="$DIR/service-hostile.log"
GO_LOADGEN=${GRPC_GO_LOADGEN:-$PROJECT/../shared/tools/grpc-go-loadgen/loadgen}
HDB=bench_hostile

build_and_generate
pg_up
psql_ -d postgres -c "DROP DATABASE IF EXISTS $HDB" -c "CREATE DATABASE $HDB"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$HDB" "$BIN" migrate 2>/dev/null
: >"$SERVICE_LOG"
start_service() { # [prlimit args...]: a fresh service on ADDR, its PID in SERVICE_PID
    env DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$HDB" GRPC_ADDR="$ADDR" \
        METRICS_ADDR=127.0.0.1:59096 PUBLISH_TOKEN="$TOKEN" LOG_FORMAT=json \
        "$@" "$BIN" serve >>"$SERVICE_LOG" 2>&1 &
    SERVICE_PID=$!
    PIDS+=("$SERVICE_PID")
    wait_for_port "$ADDR"
}
stop_service() { kill "$SERVICE_PID" && wait "$SERVICE_PID" 2>/dev/null || true; }
ROWS=()
row() { # ATTACK RESULT
    say "$1: $2"
    ROWS+=("| $1 | \`$2\` |")
}
# The article the good client reads: the sample article.
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$HDB" "$BIN" import \
    "$PROJECT/tests/fixtures/us-russia-terrorism-2019-12-31.txt" >/dev/null 2>&1
SLUG=$(psql_ -d "$HDB" -tAc "SELECT slug FROM articles LIMIT 1")
[[ -n $SLUG ]] || die "the sample article was not imported"

start_service
row "One stream that never reads, 1 MB articles published at 5/s for 20 s" \
    "$($WRAP "$LOADGEN" stalled --addr "$ADDR" --streams 1 --connections 1 --publishes-per-second 5 \
        --article-bytes 1000000 --seconds 20 --server-pid "$SERVICE_PID" --token "$TOKEN")"
stop_service
start_service
row "6 streams resuming from a token before 150 articles of 1 MB, never reading" \
    "$($WRAP "$LOADGEN" stalled --addr "$ADDR" --streams 6 --connections 6 --behind 150 \
        --publishes-per-second 1 --article-bytes 1000000 --seconds 5 --server-pid "$SERVICE_PID" --token "$TOKEN")"
stop_service
start_service
row "400 streams resuming from a token before 600 articles of 4 KB, never reading" \
    "$($WRAP "$LOADGEN" stalled --addr "$ADDR" --streams 400 --connections 10 --behind 600 \
        --publishes-per-second 1 --article-bytes 4000 --seconds 5 --server-pid "$SERVICE_PID" --token "$TOKEN")"
stop_service
start_service
row "500 reading streams, 1 MB articles published at 10/s for 20 s" \
    "$($WRAP "$LOADGEN" fanout --addr "$ADDR" --subscribers 500 --connections 10 --publishes-per-second 10 \
        --seconds 20 --article-bytes 1000000 --server-pid "$SERVICE_PID" --token "$TOKEN" | tr '\n' ' ')"
stop_service
start_service
row "One connection sending 1,000 HEADERS frames a second for unary calls, never the message, 20 s" \
    "$($WRAP "$LOADGEN" hostile --addr "$ADDR" --attack headers --rate 1000 --seconds 20 \
        --server-pid "$SERVICE_PID" --slug "$SLUG")"
stop_service
start_service
"$GO_LOADGEN" -addr "$ADDR" -mode stream -subs 10000 -conns 1 -c 1 -publish-rate 0.5 -d 20s \
    -token "$TOKEN" -timeout 20s >"$DIR/one-connection.json" 2>&1 &
ONE=$!
sleep 8
row "One connection opening 10,000 StreamNewArticles streams: meanwhile 100 streams over 2 other connections, 2 publishes/s for 10 s" \
    "$("$GO_LOADGEN" -addr "$ADDR" -mode stream -subs 100 -conns 2 -c 2 -publish-rate 2 -d 10s -token "$TOKEN" -timeout 20s)"
wait "$ONE" || true
row "... the one connection's own result" "$(tr -d '\n' <"$DIR/one-connection.json" | cut -c1-400)"
stop_service
start_service
row "30,000 health Watch streams over 30 connections, held 10 s" \
    "$($WRAP "$LOADGEN" hostile --addr "$ADDR" --attack watch --count 30000 --connections 30 --seconds 10 \
        --server-pid "$SERVICE_PID" --slug "$SLUG")"
stop_service
start_service prlimit --nofile=1024:1024
row "1,100 connections that never send the HTTP/2 preface, server under ulimit -n 1024, 15 s" \
    "$($WRAP "$LOADGEN" hostile --addr "$ADDR" --attack silent --count 1100 --seconds 15 \
        --server-pid "$SERVICE_PID" --slug "$SLUG")"
WARNINGS=$(grep -c 'accept' "$SERVICE_LOG" || true)
stop_service

{
    echo "# Hostile clients at full size, run $STAMP"
    echo
    echo "$(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations crates || echo ' (with uncommitted changes)'); release build, default settings"
    echo
    echo "| Attack (the issue's row) | Result |"
    echo "| --- | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Log lines about accept in the service's log: $WARNINGS"
} | tee "$RESULTS"
say "results saved to $RESULTS"
