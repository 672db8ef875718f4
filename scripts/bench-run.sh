# The body of `scripts/bench.sh all`, sourced by it (its settings and helpers are in scope).

RESULTS="$DIR/results-$STAMP.md"
SERVICE_LOG="$DIR/service.log"
SERVICE_NOCACHE_ADDR=${BENCH_NOCACHE_ADDR:-127.0.0.1:50093}

# --- build, corpus, database, import ------------------------------------------------------
build_and_generate

pg_up
psql_ -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
# The previous run's WAL flushed first, so that the import does not pay for it.
psql_ -d postgres -c "CHECKPOINT"
export DATABASE_URL
"$BIN" migrate 2>/dev/null
say "importing $CORPUS"
started=$(date +%s.%N)
$WRAP "$BIN" import "$CORPUS" >"$DIR/import.log" 2>&1
import_seconds=$(echo "$(date +%s.%N) - $started" | bc)
import_rate=$(echo "$ARTICLES / $import_seconds" | bc)
say "imported $ARTICLES articles in $import_seconds s ($import_rate/s)"
# The steady state reads see: statistics, visibility map and hint bits as autovacuum leaves them.
psql_ -d "$DB" -c "VACUUM ANALYZE"
psql_ -d "$DB" -f benches/pgbench/setup.sql
KEYS=$(psql_ -d "$DB" -tAc "SELECT count(*) FROM bench_keys")
TAG=$(psql_ -d "$DB" -tAc "SELECT slug FROM tags ORDER BY article_count DESC LIMIT 1")

# --- servers -------------------------------------------------------------------------------
# The deployment's settings (deploy/base/config.env): JSON logs at info, a line per call.
start_service() { # ADDR METRICS_ADDR [ENV=VALUE...]
    local addr=$1 metrics=$2
    shift 2
    env GRPC_ADDR="$addr" METRICS_ADDR="$metrics" PUBLISH_TOKEN="$TOKEN" LOG_FORMAT=json \
        RUST_LOG=info "$@" "$BIN" serve >>"$SERVICE_LOG" 2>&1 &
    PIDS+=($!)
    wait_for_port "$addr"
}
: >"$SERVICE_LOG"
start_service "$ADDR" 127.0.0.1:59091
SERVICE_PID=${PIDS[-1]}
"$LOADGEN" ceiling --addr "$CEILING_ADDR" 2>>"$DIR/ceiling.log" &
PIDS+=($!)
wait_for_port "$CEILING_ADDR"

# --- measurements --------------------------------------------------------------------------
ROWS=()
reads() { # LABEL ADDR SCENARIO [ARGS...]
    local label=$1 addr=$2 scenario=$3 row
    shift 3
    say "$label"
    row=$($WRAP "$LOADGEN" reads --addr "$addr" --scenario "$scenario" \
        --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN" \
        --warmup-seconds "$WARMUP" --keys "$KEYS" --token "$TOKEN" --row "$label" "$@" \
        | tee >(cat >&2) | grep '^|')
    ROWS+=("$row")
}

# pgbench with a per-transaction log, for the same percentiles as the driver's.
pgbench_() { # LABEL SCRIPT [ARGS...]
    local label=$1 script=$2 prefix="$DIR/pgbench-log" summary
    shift 2
    say "$label"
    rm -f "$prefix".*
    "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared \
        -c "$CONCURRENCY" -j 2 -T "$WARMUP" "$@" -f "$script" "$DB" >/dev/null 2>&1
    $WRAP "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared \
        -c "$CONCURRENCY" -j 2 -T "$SECONDS_PER_RUN" "$@" -f "$script" \
        --log --log-prefix="$prefix" "$DB" >"$DIR/pgbench.out" 2>&1 \
        || { cat "$DIR/pgbench.out" >&2; die "pgbench failed"; }
    cat "$DIR/pgbench.out" >&2
    local tps failed
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$DIR/pgbench.out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$DIR/pgbench.out")
    summary=$(cat "$prefix".* | awk '{print $3}' | sort -n | awk '
        { v[NR] = $1 }
        END {
            p = "%.2f | %.2f | %.2f | %.1f";
            printf p, v[int(NR*0.50)]/1000, v[int(NR*0.90)]/1000, v[int(NR*0.99)]/1000, v[NR]/1000
        }')
    ROWS+=("| $label | $CONCURRENCY / 2 threads | $(printf %.0f "$tps") | $summary | ${failed:-0} |")
    rm -f "$prefix".*
}

WARMUP=5 reads "service: GetArticle by id, Zipf keys (cache warm)" "$ADDR" get-by-id-zipf
reads "ceiling: GetArticle (fixed 4 KB article)" "$CEILING_ADDR" get-by-id-zipf
reads "service: GetArticle by id, uniform keys" "$ADDR" get-by-id-uniform
reads "service: GetArticle by slug, uniform keys" "$ADDR" get-by-slug-uniform
pgbench_ "pgbench: GetArticle-by-id SQL, uniform keys" benches/pgbench/get_article_by_id.sql -D keys="$KEYS"
pgbench_ "pgbench: GetArticle-by-slug SQL, uniform keys" benches/pgbench/get_article_by_slug.sql -D keys="$KEYS"
reads "service: ListArticlesByTag page 1, most popular tag" "$ADDR" list-first-page
reads "ceiling: ListArticlesByTag (fixed 20-article page)" "$CEILING_ADDR" list-first-page
reads "service: ListArticlesByTag page 500, most popular tag" "$ADDR" list-deep --page 500
pgbench_ "pgbench: ListArticlesByTag page-1 SQL, most popular tag" benches/pgbench/list_first_page.sql -D tag="$TAG"

# The same service with its read cache off (CACHE_MAX_BYTES=0): what the cache is worth.
start_service "$SERVICE_NOCACHE_ADDR" 127.0.0.1:59093 CACHE_MAX_BYTES=0
reads "service, cache off: GetArticle by id, Zipf keys" "$SERVICE_NOCACHE_ADDR" get-by-id-zipf
reads "service, cache off: ListArticlesByTag page 1" "$SERVICE_NOCACHE_ADDR" list-first-page
reads "service, cache off: ListArticlesByTag page 500" "$SERVICE_NOCACHE_ADDR" list-deep --page 500
kill "${PIDS[-1]}" && wait "${PIDS[-1]}" 2>/dev/null || true

# Last: it adds articles (to the most popular tag among others).
reads "service: PublishArticle, new 4 KB articles" "$ADDR" publish

# --- report --------------------------------------------------------------------------------
{
    echo "# Benchmark run $STAMP"
    echo
    echo "$(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations benches crates || echo ' (with uncommitted changes)')"
    echo
    echo "Import: $ARTICLES articles in $(printf %.1f "$import_seconds") s: **$import_rate articles/s**"
    echo "(service RSS after the run: $(awk '/VmHWM/ {printf "peak %.0f MiB", $2/1024}' /proc/$SERVICE_PID/status 2>/dev/null))"
    echo
    echo "| Scenario | Concurrency / connections | Calls/s | p50 ms | p90 ms | p99 ms | max ms | Errors |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS"
say "results saved to $RESULTS"
