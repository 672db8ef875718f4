# The body of `scripts/bench.sh lifecycle`, sourced by it (its settings and helpers are in
# scope): the change feed's targets (BENCHMARKS.md, "The change feed").
#
# 1. A consumer rebuilding its copy: ARTICLES articles imported, then imported twice more
#    with changed bodies (3 revisions each, 3 x ARTICLES changes), then one
#    StreamArticleChanges from_beginning reads the whole log (FULL, then BASIC); changes a
#    second and the server's RSS sampled each second. BENCH_LIFECYCLE_REUSE=1 keeps the
#    database of an earlier run when it holds 3 x ARTICLES changes (the imports take most of
#    the run at 1,000,000 articles).
# 2. The read path before and after: with BENCH_BASE_BIN set (a release build of an earlier
#    commit), the same corpus imported by it into a database of its own, and GetArticle
#    (Zipf, uniform) and the first page measured on both, interleaved, in this run.
# 3. Fan-out at BENCH_SUBSCRIBERS (10,000) streams over 20 connections: a new article on
#    StreamNewArticles, and on StreamArticleChanges a new article, a release and a withdrawal.
#
# BENCH_LIFECYCLE_PARTS (default "rebuild reads fanout") chooses which of 1-3 run.

RESULTS="$DIR/lifecycle-$STAMP.md"
SERVICE_LOG="$DIR/service-lifecycle.log"
SUBSCRIBERS=${BENCH_SUBSCRIBERS:-10000}
FANOUT_SECONDS=${BENCH_FANOUT_SECONDS:-30}
BASE_BIN=${BENCH_BASE_BIN:-}
BASE_ADDR=${BENCH_BASE_ADDR:-127.0.0.1:50094}
PARTS=" ${BENCH_LIFECYCLE_PARTS:-rebuild reads fanout} "
REUSE=${BENCH_LIFECYCLE_REUSE:-0}

build_and_generate

pg_up
import_into() { # DB BINARY FILE LABEL
    local started seconds
    started=$(date +%s.%N)
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$1" $WRAP "$2" import "$3" >"$DIR/import.log" 2>&1 \
        || { tail "$DIR/import.log" >&2; die "import failed"; }
    seconds=$(echo "$(date +%s.%N) - $started" | bc)
    say "$4: $ARTICLES articles in $seconds s"
    ROWS+=("| $4 | $ARTICLES | $(printf %.1f "$seconds") | $(echo "$ARTICLES / $seconds" | bc) |")
}
ROWS=()
LDB=bench_lifecycle
EXISTING=$(psql_ -d "$LDB" -tAc "SELECT count(*) FROM article_changes" 2>/dev/null || echo 0)
if [[ $REUSE == 1 && $EXISTING == $((3 * ARTICLES)) ]]; then
    say "reusing database $LDB ($EXISTING changes)"
    ROWS+=("| (imported by an earlier run, BENCH_LIFECYCLE_REUSE=1) | $ARTICLES | | |")
else
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $LDB" -c "CREATE DATABASE $LDB" -c "CHECKPOINT"
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$LDB" "$BIN" migrate 2>/dev/null
    import_into "$LDB" "$BIN" "$CORPUS" "import, new articles (revision 1)"
    for revision in 2 3; do
        # The same slugs with another body: an update of every article.
        sed "s/\"body\":\"/\"body\":\"Revision $revision. /" "$CORPUS" >"$DIR/revision.ndjson"
        import_into "$LDB" "$BIN" "$DIR/revision.ndjson" "import, every article updated (revision $revision)"
    done
    rm -f "$DIR/revision.ndjson"
    psql_ -d "$LDB" -c "VACUUM ANALYZE"
fi
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$LDB" "$BIN" migrate 2>/dev/null
CHANGES=$(psql_ -d "$LDB" -tAc "SELECT count(*) FROM article_changes")
SIZE=$(psql_ -d "$LDB" -tAc "SELECT pg_size_pretty(pg_database_size('$LDB'))")

start_service() { # ADDR METRICS_ADDR DB BINARY [ENV=VALUE...]
    local addr=$1 metrics=$2 db=$3 bin=$4
    shift 4
    env DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db" GRPC_ADDR="$addr" \
        METRICS_ADDR="$metrics" PUBLISH_TOKEN="$TOKEN" LOG_FORMAT=json RUST_LOG=info "$@" \
        "$bin" serve >>"$SERVICE_LOG" 2>&1 &
    PIDS+=($!)
    wait_for_port "$addr"
}
: >"$SERVICE_LOG"
start_service "$ADDR" 127.0.0.1:59091 "$LDB" "$BIN"
SERVICE_PID=${PIDS[-1]}

REBUILD=()
for view in full basic; do
    [[ $PARTS == *" rebuild "* ]] || continue
    say "rebuild from the beginning ($view): $CHANGES changes"
    flag=()
    [[ $view == basic ]] && flag=(--basic)
    REBUILD+=("$($WRAP "$LOADGEN" rebuild --addr "$ADDR" --events "$CHANGES" --server-pid "$SERVICE_PID" "${flag[@]}" | tee >(cat >&2))")
done

READS=()
if [[ -n $BASE_BIN && $PARTS == *" reads "* ]]; then
    BDB=bench_base
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $BDB" -c "CREATE DATABASE $BDB"
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$BDB" "$BASE_BIN" migrate 2>/dev/null
    import_into "$BDB" "$BASE_BIN" "$CORPUS" "import by the base build"
    psql_ -d "$BDB" -c "VACUUM ANALYZE"
    start_service "$BASE_ADDR" 127.0.0.1:59094 "$BDB" "$BASE_BIN"
    for db in "$LDB" "$BDB"; do psql_ -d "$db" -f benches/pgbench/setup.sql >/dev/null; done
    KEYS=$(psql_ -d "$LDB" -tAc "SELECT count(*) FROM bench_keys")
    reads_on() { # LABEL ADDR DB SCENARIO
        READS+=("$(DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$3" $WRAP "$LOADGEN" reads \
            --addr "$2" --scenario "$4" --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" \
            --seconds "$SECONDS_PER_RUN" --warmup-seconds 5 --keys "$KEYS" --row "$1" \
            | tee >(cat >&2) | grep '^|')")
    }
    # Interleaved, twice, so that neither build gets the quieter minutes.
    for round in 1 2; do
        for scenario in get-by-id-zipf get-by-slug-uniform list-first-page; do
            reads_on "this build: $scenario (round $round)" "$ADDR" "$LDB" "$scenario"
            reads_on "base build: $scenario (round $round)" "$BASE_ADDR" "$BDB" "$scenario"
        done
    done
    kill "${PIDS[-1]}" && wait "${PIDS[-1]}" 2>/dev/null || true
fi

FANOUT=()
for event in new published release withdraw; do
    [[ $PARTS == *" fanout "* ]] || continue
    say "fan-out: $event to $SUBSCRIBERS streams"
    FANOUT+=("$($WRAP "$LOADGEN" fanout --addr "$ADDR" --subscribers "$SUBSCRIBERS" --connections 20 \
        --publishes-per-second 2 --seconds "$FANOUT_SECONDS" --server-pid "$SERVICE_PID" \
        --token "$TOKEN" --event "$event" | tee >(cat >&2) | grep -E '^fan-out|^server RSS' | tr '\n' ' ')")
done

{
    echo "# Change feed benchmark run $STAMP"
    echo
    echo "$(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations crates || echo ' (with uncommitted changes)')"
    echo
    echo "Database: $CHANGES changes, $SIZE"
    echo
    echo "| Import | Articles | Seconds | Articles/s |"
    echo "| --- | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    if ((${#REBUILD[@]})); then printf '%s\n\n' "${REBUILD[@]}"; fi
    if ((${#READS[@]})); then
        echo "| Scenario | Concurrency / connections | Calls/s | p50 ms | p90 ms | p99 ms | max ms | Errors |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        printf '%s\n' "${READS[@]}"
        echo
    fi
    if ((${#FANOUT[@]})); then printf -- '- %s\n' "${FANOUT[@]}"; fi
} | tee "$RESULTS"
say "results saved to $RESULTS"
