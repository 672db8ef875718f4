# The body of `scripts/bench.sh grpc-go`, sourced by it (its settings and helpers are in
# scope): fan-out and reads as a Go consumer sees them (BENCHMARKS.md, "As grpc-go clients
# see it"), with GRPC_GO_LOADGEN (../shared/tools/grpc-go-loadgen/loadgen: grpc-go, default
# settings).
#
# 1. Memory per stream and delivery: 10,000 StreamNewArticles subscribers over 20
#    connections, 2 publishes a second for 30 s; the server's RSS sampled each second, its
#    peak, and its CPU time per delivery. Then the same with this repo's tonic driver.
# 2. Stalled readers: 1,000 streams that never read (64 KiB windows), 10 articles of 1 MiB
#    published a second for 30 s; the server's RSS and a good subscriber's latency.
# 3. GetArticle by slug, Zipf(1.1) over the corpus, 64 workers over 4 connections: the
#    service (logging as configured by default, then with call lines off) and the bare tonic
#    ceiling, interleaved, 3 rounds; the median of each.

RESULTS="$DIR/grpc-go-$STAMP.md"
SERVICE_LOG="$DIR/service-grpc-go.log"
GO_LOADGEN=${GRPC_GO_LOADGEN:-$PROJECT/../shared/tools/grpc-go-loadgen/loadgen}
[[ -x $GO_LOADGEN ]] || die "set GRPC_GO_LOADGEN to the grpc-go loadgen binary"
GDB=bench_grpcgo

build_and_generate
pg_up
if ! psql_ -d postgres -tAc "select 1 from pg_database where datname = '$GDB'" | grep -q 1; then
    psql_ -d postgres -c "CREATE DATABASE $GDB"
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$GDB" "$BIN" migrate 2>/dev/null
    say "importing $ARTICLES articles"
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$GDB" "$BIN" import "$CORPUS" >"$DIR/import.log" 2>&1 \
        || { tail "$DIR/import.log" >&2; die "import failed"; }
    psql_ -d "$GDB" -c "VACUUM ANALYZE"
fi
: >"$SERVICE_LOG"
start_service() { # [ENV=VALUE...]: the service on ADDR, its PID in SERVICE_PID
    env DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$GDB" GRPC_ADDR="$ADDR" \
        METRICS_ADDR=127.0.0.1:59095 PUBLISH_TOKEN="$TOKEN" LOG_FORMAT=json "$@" \
        "$BIN" serve >>"$SERVICE_LOG" 2>&1 &
    SERVICE_PID=$!
    PIDS+=("$SERVICE_PID")
    wait_for_port "$ADDR"
}
stop_service() {
    kill "$SERVICE_PID" && wait "$SERVICE_PID" 2>/dev/null || true
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# RSS (KiB) every second into FILE until the process ends or the sampler is killed.
sample_rss() { # PID FILE
    while kill -0 "$1" 2>/dev/null; do
        awk '/^VmRSS/ {print $2}' "/proc/$1/status" >>"$2" 2>/dev/null || true
        sleep 1
    done
}
ROWS=()

# 1. Fan-out.
fanout_go() { # LABEL
    start_service
    local samples="$DIR/rss-$STAMP-fanout.txt" sampler ticks result
    : >"$samples"
    sample_rss "$SERVICE_PID" "$samples" &
    sampler=$!
    ticks=$(cpu_ticks "$SERVICE_PID")
    result=$($WRAP "$GO_LOADGEN" -addr "$ADDR" -mode stream -subs 10000 -conns 20 -c 16 \
        -publish-rate 2 -d 30s -token "$TOKEN" -timeout 20s)
    ticks=$(( $(cpu_ticks "$SERVICE_PID") - ticks ))
    kill "$sampler" 2>/dev/null || true
    local hwm deliveries
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVICE_PID/status")
    deliveries=$(sed -n 's/.*"expected_deliveries":\([0-9]*\).*/\1/p' <<<"$result")
    say "$1: $result"
    ROWS+=("| $1 | $(sed -n 's/.*"p50_ms":\([0-9.]*\).*/\1/p' <<<"$result") | $(sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p' <<<"$result") | $(sed -n 's/.*"missing_deliveries":\([0-9]*\).*/\1/p' <<<"$result") | $(( $(sort -n "$samples" | sed -n 3p) / 1024 )) | $((hwm / 1024)) | $(echo "scale=1; $ticks * 10000 / $deliveries" | bc) |")
    stop_service
}
fanout_go "grpc-go loadgen: 10,000 streams / 20 connections, 2 publishes/s, 30 s"
start_service
TONIC_FANOUT=$($WRAP "$LOADGEN" fanout --addr "$ADDR" --subscribers 10000 --connections 20 \
    --publishes-per-second 2 --seconds 30 --server-pid "$SERVICE_PID" --token "$TOKEN" \
    | grep -E '^fan-out|^server RSS' | tr '\n' ' ')
say "tonic fanout: $TONIC_FANOUT"
stop_service

# 2. Stalled readers.
start_service
STALLED=$($WRAP "$LOADGEN" stalled --addr "$ADDR" --streams 1000 --connections 10 \
    --publishes-per-second 10 --article-bytes 1048576 --seconds 30 --server-pid "$SERVICE_PID" \
    --token "$TOKEN")
say "stalled: $STALLED"
stop_service

# 3. GetArticle, Zipf(1.1) over the corpus's slugs.
SLUGS="$DIR/slugs-zipf-$ARTICLES.txt"
# The imported corpus only (its slugs start with the publication date): the
# phases above publish articles of their own into this database, among them
# 300 of 1 MiB a run, which a draw over every slug would mix into the reads.
psql_ -d "$GDB" -tAc "SELECT slug FROM articles WHERE slug ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}-' ORDER BY random()" \
    >"$DIR/slugs-all.txt"
python3 - "$DIR/slugs-all.txt" "$SLUGS" <<'PY'
import random, sys, bisect, itertools
slugs = open(sys.argv[1]).read().split()
weights = [1 / (rank ** 1.1) for rank in range(1, len(slugs) + 1)]
cdf = list(itertools.accumulate(weights))
rng = random.Random(42)
with open(sys.argv[2], "w") as out:
    for _ in range(200_000):
        out.write(slugs[bisect.bisect_left(cdf, rng.random() * cdf[-1])] + "\n")
PY
"$LOADGEN" ceiling --addr "$CEILING_ADDR" 2>>"$DIR/ceiling.log" &
PIDS+=($!)
wait_for_port "$CEILING_ADDR"
get_zipf() { # ADDR: the JSON result
    $WRAP "$GO_LOADGEN" -addr "$1" -mode get-slug -ids "$SLUGS" -c 64 -conns 4 -d 10s
}
declare -A RPS P99
for round in 1 2 3; do
    start_service
    get_zipf "$ADDR" >/dev/null # warm-up: the cache fills
    for variant in service ceiling; do
        addr=$ADDR
        [[ $variant == ceiling ]] && addr=$CEILING_ADDR
        result=$(get_zipf "$addr")
        say "GetArticle zipf, $variant, round $round: $result"
        RPS[$variant]+="$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$result") "
        P99[$variant]+="$(sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p' <<<"$result") "
    done
    CACHE_RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVICE_PID/status")
    stop_service
    # The same service with call lines off (RUST_LOG=warn): what the default logging costs.
    start_service RUST_LOG=warn
    get_zipf "$ADDR" >/dev/null
    result=$(get_zipf "$ADDR")
    say "GetArticle zipf, service without call lines, round $round: $result"
    RPS[quiet]+="$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$result") "
    P99[quiet]+="$(sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p' <<<"$result") "
    stop_service
done
median() { tr ' ' '\n' | grep . | sort -n | sed -n 2p; }
ZIPF=()
for variant in service quiet ceiling; do
    ZIPF+=("| $variant | ${RPS[$variant]}| $(median <<<"${RPS[$variant]}") | ${P99[$variant]}| $(median <<<"${P99[$variant]}") |")
done

{
    echo "# grpc-go benchmark run $STAMP"
    echo
    echo "$(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations crates || echo ' (with uncommitted changes)'); $ARTICLES articles"
    echo
    echo "| Fan-out | p50 ms | p99 ms | Missing | RSS with streams open, MiB | Peak RSS, MiB | Server CPU per delivery, us |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "- tonic driver (default client settings): $TONIC_FANOUT"
    echo "- stalled readers: $STALLED"
    echo
    echo "| GetArticle by slug, Zipf(1.1), 64 workers / 4 connections | calls/s (3 rounds) | median | p99 ms (3 rounds) | median |"
    echo "| --- | --- | ---: | --- | ---: |"
    printf '%s\n' "${ZIPF[@]}"
    echo
    echo "Service RSS after a round with the default cache: $((CACHE_RSS / 1024)) MiB"
} | tee "$RESULTS"
say "results saved to $RESULTS"
