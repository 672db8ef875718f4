#!/usr/bin/env bash
# Builds the example consumers (examples/go, examples/python, examples/typescript) and the
# gRPC-Web test client (tests/grpc-web) into target/interop/, each generated from
# proto/ with its ecosystem's usual tools, installing the toolchains when they are missing:
#
#   Go:         Debian's golang-go, protobuf-compiler, protoc-gen-go, protoc-gen-go-grpc,
#               golang-google-grpc-dev and golang-google-protobuf-dev; built offline
#               (GOPROXY=off) in GOPATH mode against /usr/share/gocode
#   Python:     grpcio and grpcio-tools from PyPI, in a venv under target/interop/python
#   TypeScript: @grpc/grpc-js, @grpc/proto-loader (and its proto-loader-gen-types) and
#               typescript from npm (examples/typescript/package-lock.json); node and npm
#               from Debian's nodejs and npm when missing
#   gRPC-Web:   @connectrpc/connect-node and protoc-gen-es from npm (tests/grpc-web)
#
# Results: target/interop/bin/follow-{go,python,typescript} (the common client CLI, see
# README "Consuming the service") and target/interop/bin/grpc-web-client. A client whose
# inputs did not change since its last build is not built again. `make test` runs this
# before cargo test. Progress goes to standard error, tool output to target/interop/build.log.
set -euo pipefail

readonly GRPCIO_VERSION=${GRPCIO_VERSION:-1.76.0}

PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly PROJECT
readonly OUT="$PROJECT/target/interop"
readonly LOG="$OUT/build.log"
readonly DEV_ENV="$PROJECT/scripts/dev-env.sh"

say() { printf 'interop-clients: %s\n' "$*" >&2; }
die() { printf 'interop-clients: error: %s\n' "$*" >&2; exit 1; }
# run CMD...: runs it with its output in the log; on failure shows the log's end.
run() { "$@" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "failed: $*"; }; }

mkdir -p "$OUT/bin"
: >"$LOG"

# --- toolchains --------------------------------------------------------------------

# golang-github-golang-protobuf-1-5-dev, not the 1.3 that golang-google-grpc-dev would
# pull in: grpc-go's codec goes through github.com/golang/protobuf, whose 1.3 cannot decode
# the messages protoc-gen-go 1.28 generates (1.5 is a shim over google.golang.org/protobuf).
readonly GO_PKGS=(golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc
    golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev)

ensure_go() {
    if command -v go >/dev/null && command -v protoc >/dev/null \
        && command -v protoc-gen-go >/dev/null && command -v protoc-gen-go-grpc >/dev/null \
        && [[ -d /usr/share/gocode/src/google.golang.org/grpc && -d /usr/share/gocode/src/google.golang.org/protobuf ]] \
        && ! [[ -e /usr/share/gocode/src/github.com/golang/protobuf/proto/table_unmarshal.go ]]; then
        return 0
    fi
    bash "$DEV_ENV" apt-install "${GO_PKGS[@]}"
}

ensure_node() {
    if command -v node >/dev/null && command -v npm >/dev/null; then return 0; fi
    local -a pkgs=()
    command -v node >/dev/null || pkgs+=(nodejs)
    command -v npm >/dev/null || pkgs+=(npm)
    bash "$DEV_ENV" apt-install "${pkgs[@]}"
}

# Python with venv and pip (Debian's python3 comes without them).
ensure_python_venv() {
    local venv=$1 py
    py=$(command -v python3 || true)
    if [[ -x $venv/bin/python ]] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then return 0; fi
    if [[ -z $py ]]; then bash "$DEV_ENV" apt-install python3 python3-venv python3-pip; py=$(command -v python3); fi
    rm -rf "$venv"
    if ! { "$py" -m venv "$venv" >>"$LOG" 2>&1 && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }; then
        rm -rf "$venv"
        bash "$DEV_ENV" apt-install python3-venv python3-pip
        run "$py" -m venv "$venv"
    fi
}

# --- builds ----------------------------------------------------------------------

# up_to_date NAME FILE...: whether NAME was built from exactly these files (and this
# script) before; records them when it was not, once `built NAME` is called.
STAMP_WANT=""
up_to_date() {
    local name=$1
    shift
    STAMP_WANT=$(cat "$@" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
    [[ -f $OUT/$name.stamp && $(<"$OUT/$name.stamp") == "$STAMP_WANT" ]]
}
built() { printf '%s' "$STAMP_WANT" >"$OUT/$1.stamp"; }

readonly PROTO=newsroom/content/v1/article_service.proto

build_go() {
    local dir="$OUT/go" src="$PROJECT/examples/go"
    if up_to_date go "$src"/*.go "$PROJECT/proto/$PROTO" && [[ -x $OUT/bin/follow-go ]]; then return 0; fi
    ensure_go
    say "building the Go client (grpc-go from Debian's packages)"
    local gopath="$dir/gopath" import=article-service/gen/contentv1
    rm -rf "$gopath/src"
    mkdir -p "$gopath/src"
    run protoc -I "$PROJECT/proto" \
        --go_out="$gopath/src" --go_opt=paths=import --go_opt="M$PROTO=$import" \
        --go-grpc_out="$gopath/src" --go-grpc_opt=paths=import --go-grpc_opt="M$PROTO=$import" \
        "$PROTO"
    # GOPATH mode: Debian ships Go libraries as sources under /usr/share/gocode, and no
    # module proxy is needed (or reached: GOPROXY=off).
    (cd "$src" && run env GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$gopath:/usr/share/gocode" \
        GOCACHE="$dir/cache" go build -o "$OUT/bin/follow-go" .)
    built go
}

build_python() {
    local dir="$OUT/python" src="$PROJECT/examples/python"
    if up_to_date python "$src"/*.py "$PROJECT/proto/$PROTO" && [[ -x $OUT/bin/follow-python ]]; then return 0; fi
    say "building the Python client (grpcio $GRPCIO_VERSION from PyPI)"
    ensure_python_venv "$dir/venv"
    local sys_ca=/etc/ssl/certs/ca-certificates.crt
    if [[ -z ${PIP_CERT:-} && -f $sys_ca ]]; then export PIP_CERT=$sys_ca; fi
    run "$dir/venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION"
    rm -rf "$dir/gen"
    mkdir -p "$dir/gen"
    run "$dir/venv/bin/python" -m grpc_tools.protoc -I "$PROJECT/proto" \
        --python_out="$dir/gen" --grpc_python_out="$dir/gen" "$PROTO"
    cp "$src/follow.py" "$dir/follow.py"
    cat >"$OUT/bin/follow-python" <<SH
#!/bin/sh
PYTHONPATH='$dir/gen' exec '$dir/venv/bin/python' -u '$dir/follow.py' "\$@"
SH
    chmod +x "$OUT/bin/follow-python"
    built python
}

# npm_install_copy DIR SRC_DIR: copies SRC_DIR's package files and sources to DIR and
# installs exactly its lock file's packages there (the source tree stays clean).
npm_install_copy() {
    local dir=$1 src=$2
    ensure_node
    mkdir -p "$dir"
    rm -rf "$dir/src" "$dir/proto" "$dir/dist" "$dir/gen"
    (cd "$src" && tar cf - --exclude=node_modules --exclude=dist --exclude=src/gen .) | (cd "$dir" && tar xf -)
    cp -r "$PROJECT/proto" "$dir/proto"
    (cd "$dir" && run npm ci --no-audit --no-fund)
}

build_typescript() {
    local dir="$OUT/typescript" src="$PROJECT/examples/typescript"
    if up_to_date typescript "$src"/package*.json "$src"/tsconfig.json "$src"/src/*.ts "$PROJECT/proto/$PROTO" \
        && [[ -x $OUT/bin/follow-typescript ]]; then return 0; fi
    say "building the TypeScript client (@grpc/grpc-js from npm)"
    npm_install_copy "$dir" "$src"
    (cd "$dir" && run npm run generate && run npm run build)
    cat >"$OUT/bin/follow-typescript" <<SH
#!/bin/sh
exec node '$dir/dist/follow.js' "\$@"
SH
    chmod +x "$OUT/bin/follow-typescript"
    built typescript
}

build_grpc_web() {
    local dir="$OUT/grpc-web" src="$PROJECT/tests/grpc-web"
    if up_to_date grpc-web "$src"/package*.json "$src"/*.mjs "$PROJECT/proto/$PROTO" \
        && [[ -x $OUT/bin/grpc-web-client ]]; then return 0; fi
    ensure_go # for protoc
    say "building the gRPC-Web test client (@connectrpc/connect-node from npm)"
    npm_install_copy "$dir" "$src"
    mkdir -p "$dir/gen"
    run protoc -I "$PROJECT/proto" --plugin=protoc-gen-es="$dir/node_modules/.bin/protoc-gen-es" \
        --es_out="$dir/gen" --es_opt=target=js "$PROTO"
    cat >"$OUT/bin/grpc-web-client" <<SH
#!/bin/sh
exec node '$dir/client.mjs' "\$@"
SH
    chmod +x "$OUT/bin/grpc-web-client"
    built grpc-web
}

build_go
build_python
build_typescript
build_grpc_web
say "clients ready in $OUT/bin"
