#!/usr/bin/env bash
# The benchmark harness in one command (BENCHMARKS.md; `make bench` runs `scripts/bench.sh all`).
#
#   scripts/bench.sh all       build (release), start the benchmark cluster, generate and import
#                              the corpus, start the service and the gRPC ceiling, run every
#                              read scenario against both, the publish scenario, pgbench; print
#                              a table (also saved under target/bench/results-*.md); stop all
#   scripts/bench.sh lifecycle the change feed: a copy rebuilt from the beginning over 3 revisions
#                              of every article, the read path against BENCH_BASE_BIN (an earlier
#                              build), releases and withdrawals to 10,000 change streams
#   scripts/bench.sh grpc-go   as grpc-go clients see it (GRPC_GO_LOADGEN): 10,000 streams' memory,
#                              delivery and CPU; 1,000 stalled readers under 1 MiB articles;
#                              GetArticle Zipf(1.1) against the ceiling, with and without call lines
#   scripts/bench.sh hostile   the hostile-clients issue's attacks at full size, each beside a good client
#   scripts/bench.sh pg        start the benchmark cluster only, print its DATABASE_URL
#   scripts/bench.sh stop      stop the benchmark cluster (and anything `all` left running)
#   scripts/bench.sh clean     stop it and delete target/bench (corpus included)
#
# Settings (environment): CARGO (cargo), BENCH_WRAP (none), BENCH_ARTICLES (1000000), BENCH_SEED (42), BENCH_CONCURRENCY (64),
# BENCH_CONNECTIONS (4), BENCH_SECONDS (10), BENCH_WARMUP (2), BENCH_PG_PORT (55532),
# BENCH_ADDR (127.0.0.1:50091, the service), BENCH_CEILING_ADDR (127.0.0.1:50092).
#
# The benchmark cluster is its own: target/bench/pg on BENCH_PG_PORT, never the shared
# development cluster of scripts/dev-env.sh (55432) that tests use. The corpus file is kept
# (target/bench/corpus-N-seedS.ndjson, about 4.4 GB for 1,000,000 articles) and reused.
# Results go to standard output; progress to standard error.

set -euo pipefail

PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly PROJECT
cd "$PROJECT"

ARTICLES=${BENCH_ARTICLES:-1000000}
SEED=${BENCH_SEED:-42}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
CONNECTIONS=${BENCH_CONNECTIONS:-4}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
PG_PORT=${BENCH_PG_PORT:-55532}
ADDR=${BENCH_ADDR:-127.0.0.1:50091}
CEILING_ADDR=${BENCH_CEILING_ADDR:-127.0.0.1:50092}
TOKEN=bench-publish-token

DIR="$PROJECT/target/bench"
PG_DIR="$DIR/pg"
DB=bench
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DB"
BIN="$PROJECT/target/release/article-service"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[[ -n ${PG_BINDIR:-} ]] && PG_BIN=$PG_BINDIR
[[ -x $PG_BIN/initdb && -x $PG_BIN/pgbench ]] \
    || die "PostgreSQL's server and pgbench were not found (set PG_BINDIR; scripts/dev-env.sh db-url installs them)"

# The cluster is scripts/dev-env.sh's throwaway cluster (same settings: speed over
# durability, BENCHMARKS.md says so) in a directory and on a port of its own, with buffers
# sized for a 1,000,000-article database on a 24 GiB machine.
BENCH_PG_CONF="# --- article-service scripts/bench.sh ---
shared_buffers = 2GB
max_wal_size = 8GB
checkpoint_timeout = 30min"
dev_env() { # COMMAND: scripts/dev-env.sh on the benchmark cluster
    env -u DATABASE_URL PG_CLUSTER_DIR="$PG_DIR" PG_PORT="$PG_PORT" PG_EXTRA_CONF="$BENCH_PG_CONF" \
        bash "$PROJECT/scripts/dev-env.sh" "$@"
}
pg_up() { dev_env db-url >/dev/null; }
pg_down() { dev_env stop; }

psql_() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# For the runs (`all`, `lifecycle`). BENCH_WRAP: a command prefixed to each measurement (e.g.
# a script that pauses background jobs for its duration); CARGO: the cargo command (e.g.
# "nice -n 19 cargo").
WRAP=${BENCH_WRAP:-}
read -r -a CARGO_CMD <<<"${CARGO:-cargo}"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

# Builds the release binary and loadgen (LOADGEN), and generates the corpus (CORPUS) unless
# it is there from an earlier run.
build_and_generate() {
    mkdir -p "$DIR"
    say "building the release binary and the loadgen program"
    "${CARGO_CMD[@]}" build --release --locked --bin article-service >&2
    "${CARGO_CMD[@]}" build --release --locked -p loadgen >&2
    LOADGEN="$PROJECT/target/release/loadgen"
    [[ -x $LOADGEN ]] || die "could not find the loadgen binary"
    CORPUS="$DIR/corpus-$ARTICLES-seed$SEED.ndjson"
    if [[ ! -s $CORPUS ]]; then
        say "generating $ARTICLES articles (seed $SEED) into $CORPUS"
        "$LOADGEN" corpus --articles "$ARTICLES" --seed "$SEED" --out "$CORPUS.part"
        mv "$CORPUS.part" "$CORPUS"
    fi
}

# Processes to stop on exit, and waiting for a port.
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    pg_down
}
wait_for_port() {
    local i
    for ((i = 0; i < 300; i++)); do
        (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on $1"
}

cmd=${1:-all}
case $cmd in
    pg)
        pg_up
        psql_ -d postgres -tAc "select 1 from pg_database where datname = '$DB'" | grep -q 1 \
            || psql_ -d postgres -c "CREATE DATABASE $DB"
        echo "$DATABASE_URL"
        ;;
    stop)
        pg_down
        ;;
    clean)
        pg_down
        rm -rf "$DIR"
        ;;
    all)
        trap cleanup EXIT
        source "$PROJECT/scripts/bench-run.sh"
        ;;
    lifecycle)
        trap cleanup EXIT
        source "$PROJECT/scripts/bench-lifecycle.sh"
        ;;
    grpc-go)
        trap cleanup EXIT
        source "$PROJECT/scripts/bench-grpcgo.sh"
        ;;
    hostile)
        trap cleanup EXIT
        source "$PROJECT/scripts/bench-hostile.sh"
        ;;
    *)
        die "unknown command $cmd (all, lifecycle, grpc-go, hostile, pg, stop, clean)"
        ;;
esac
