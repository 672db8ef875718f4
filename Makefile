# article-service: the developer front door. `make help` lists the targets.
#
# The database comes from scripts/dev-env.sh: DATABASE_URL from the environment if set,
# otherwise a throwaway PostgreSQL cluster under target/pg on 127.0.0.1:55432 (PG_PORT).
# grpcurl, buf, kubectl, hadolint and kubernetes-validate come from PyPI into target/tools/venv.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
# One cargo at a time: the machines have 2 cores, and cargo parallelises its own builds.
.NOTPARALLEL:
.DEFAULT_GOAL := help

CARGO ?= cargo
DEV_ENV := bash scripts/dev-env.sh
BIN := target/release/article-service
FIXTURE := tests/fixtures/us-russia-terrorism-2019-12-31.txt

# The container image's build (see Dockerfile): `make test` runs the same cargo command.
RELEASE_BUILD := build --release --locked --bin article-service
# deploy/: the kustomizations `make deploy-check` renders, and the Kubernetes versions whose
# schemas the renders must meet (the oldest the manifests support, and the newest known).
KUSTOMIZATIONS := deploy/base $(patsubst %/,%,$(dir $(wildcard deploy/overlays/*/kustomization.yaml)))
K8S_VERSIONS ?= 1.30.0 1.37.0
# The monitoring component: alerting rules (plain and as a PrometheusRule), their promtool unit
# tests, and the Grafana dashboard.
MONITORING := deploy/components/monitoring

# `make run` settings; each may be overridden from the environment or the command line.
GRPC_ADDR ?= 127.0.0.1:50051
METRICS_ADDR ?= 127.0.0.1:9090
PUBLISH_TOKEN ?= dev-publish-token

.PHONY: help run test deploy-check contract-check check db tools env psql stop-db clean-db

help:
	@echo 'make run       database up, release build, migrate, import the sample article,'
	echo '               print grpcurl commands, then serve on $(GRPC_ADDR) (metrics $(METRICS_ADDR))'
	echo 'make test      deploy-check, contract-check, database and tools up, buf lint, release build, the example'
	echo '               consumers (scripts/interop-clients.sh and the Rust one), cargo test --all-targets, and the'
	echo '               tests and doctests of the Rust client (crates/article-client)'
	echo 'make deploy-check  hadolint the Dockerfile; render deploy/ with kubectl kustomize and'
	echo '               validate it against Kubernetes $(K8S_VERSIONS) schemas (offline); promtool'
	echo '               check and test the alerting rules and the dashboard queries as rendered'
	echo 'make contract-check  buf breaking: proto/ against the released contract (proto-released/),'
	echo '               and a test that the check fails for renames, renumbers and removals'
	echo 'make check     cargo fmt --check and cargo clippy -D warnings (the service, crates/loadgen, crates/article-client)'
	echo 'make db        start the throwaway database and print its DATABASE_URL'
	echo 'make tools     install grpcurl, buf, kubectl, hadolint, kubernetes-validate (target/tools)'
	echo 'make env       print export lines for DATABASE_URL and the tools: eval "$$(make -s env)"'
	echo 'make psql      psql on the database'
	echo 'make stop-db   stop the throwaway database'
	echo 'make clean-db  stop it and delete its data'
	echo 'make bench     the benchmark harness (BENCHMARKS.md): its own PostgreSQL cluster under target/bench,'
	echo '               1,000,000 articles imported, every read/publish scenario, the gRPC ceiling, pgbench; a table'
	echo 'make fuzz      run each fuzz target (fuzz/) for FUZZ_SECONDS ($(FUZZ_SECONDS)); needs nightly and cargo-fuzz'

run:
	@envs=$$($(DEV_ENV) env); eval "$$envs"
	echo "+ $(CARGO) build --release --bin article-service"
	$(CARGO) build --release --bin article-service
	echo "+ $(BIN) migrate"
	$(BIN) migrate
	echo "+ $(BIN) import $(FIXTURE)"
	$(BIN) import $(FIXTURE)
	export GRPC_ADDR='$(GRPC_ADDR)' METRICS_ADDR='$(METRICS_ADDR)' PUBLISH_TOKEN='$(PUBLISH_TOKEN)'
	addr=$${GRPC_ADDR/#0.0.0.0:/127.0.0.1:}; addr=$${addr/#\[::\]:/[::1]:}
	maddr=$${METRICS_ADDR/#0.0.0.0:/127.0.0.1:}; maddr=$${maddr/#\[::\]:/[::1]:}
	g="$$(printf %q "$$GRPCURL") -plaintext"
	s=newsroom.content.v1.ArticleService
	if [[ $$PUBLISH_TOKEN == dev-publish-token ]]; then auth="'authorization: Bearer dev-publish-token'"; else auth='"authorization: Bearer $$PUBLISH_TOKEN"'; fi
	echo
	echo "article-service: DATABASE_URL=$$DATABASE_URL"
	echo "Serving on $$GRPC_ADDR, metrics on http://$$maddr/metrics. In another terminal:"
	echo
	echo "  $$g $$addr list"
	echo "  $$g $$addr describe $$s"
	echo "  $$g $$addr grpc.health.v1.Health/Check"
	echo "  $$g -d '{\"slug\":\"2019-12-31-us-and-russian-leaders-unite-to-combat-terrorism\"}' $$addr $$s/GetArticle"
	echo "  $$g -d '{\"tag\":\"us-canada\"}' $$addr $$s/ListArticlesByTag"
	echo "  $$g -d '{}' $$addr $$s/ListTags"
	echo "  $$g -d '{}' $$addr $$s/StreamNewArticles"
	echo "  $$g -H $$auth -d '{\"title\":\"Hello from grpcurl\",\"body\":\"First paragraph.\\n\\nSecond one.\",\"byline\":\"Dev Desk\",\"tags\":[\"US & Canada\"]}' $$addr $$s/PublishArticle"
	echo
	echo "+ $(BIN) serve"
	exec $(BIN) serve

test: deploy-check contract-check
	@$(DEV_ENV) drop-test-databases
	envs=$$($(DEV_ENV) env); eval "$$envs"
	echo "DATABASE_URL=$$DATABASE_URL"
	echo "+ buf lint"
	"$$BUF" lint
	echo "+ $(CARGO) $(RELEASE_BUILD)   (the container image's binary)"
	$(CARGO) $(RELEASE_BUILD)
	echo "+ bash scripts/interop-clients.sh   (the Go, Python and TypeScript consumers and the gRPC-Web client)"
	bash scripts/interop-clients.sh
	echo "+ $(CARGO) build -p article-client --examples   (the Rust consumer of the interoperability test)"
	$(CARGO) build -p article-client --examples
	echo "+ $(CARGO) test --all-targets"
	$(CARGO) test --all-targets
	echo "+ $(CARGO) test -p article-client --all-targets; $(CARGO) test -p article-client --doc   (the Rust client)"
	$(CARGO) test -p article-client --all-targets
	$(CARGO) test -p article-client --doc

# The container image and the Kubernetes manifests, offline (no Docker, no cluster).
# kubernetes-validate --strict rejects unknown and misspelt fields; it only warns about a kind
# or apiVersion it has no schema for (a typo, or an API the version removed), so any line
# from it but "INFO ... passed" fails the check too. Renders go to target/deploy/. A render's
# PrometheusRules (a kind kubernetes-validate has no schema for) are taken out of it by
# scripts/monitoring-check.py: their envelope is checked there, their groups by promtool (check
# and the unit tests), so the rules promtool passed are the rules that would be applied; so are
# the queries of each rendered Grafana dashboard.
deploy-check:
	@envs=$$($(DEV_ENV) tools); eval "$$envs"
	echo "+ hadolint Dockerfile"
	"$$HADOLINT" --no-color --config .hadolint.yaml Dockerfile
	if ! grep -qF -- 'cargo $(RELEASE_BUILD)' Dockerfile; then
	    echo "deploy-check: the Dockerfile no longer runs 'cargo $(RELEASE_BUILD)', the build make test checks" >&2
	    exit 1
	fi
	mkdir -p target/deploy
	versions=($(K8S_VERSIONS))
	validate() {
	    local report problems n
	    report=$$("$$KUBERNETES_VALIDATE" --strict "$${versions[@]/#/--kubernetes-version=}" "$$1") || true
	    problems=$$(grep -v '^INFO .* passed for resource ' <<<"$$report" || true)
	    n=$$(grep -c '^INFO ' <<<"$$report" || true)
	    if [[ -n $$problems || $$n == 0 ]]; then
	        echo "$${problems:-no resources in $$1}" >&2
	        echo "deploy-check: $$1 does not validate" >&2
	        return 1
	    fi
	    echo "  $$1: $$(( n / $${#versions[@]} )) resources valid for each version"
	}
	monitoring() {
	    "$$TOOLS_PYTHON" scripts/monitoring-check.py "$$@"
	}
	echo "+ promtool check rules, promtool test rules, dashboard queries: $(MONITORING)"
	"$$PROMTOOL" check rules $(MONITORING)/article-service.rules.yaml
	"$$PROMTOOL" test rules $(MONITORING)/article-service.rules.test.yaml
	monitoring same-rules $(MONITORING)/article-service.rules.yaml $(MONITORING)/prometheusrule.yaml
	for k in $(KUSTOMIZATIONS); do
	    name=$$(tr / - <<<"$$k")
	    out=target/deploy/$$name.yaml parts=target/deploy/$$name
	    echo "+ kubectl kustomize $$k > $$out; kubernetes-validate --strict (Kubernetes $(K8S_VERSIONS))"
	    "$$KUBECTL" kustomize "$$k" >"$$out"
	    monitoring split "$$out" "$$parts"
	    validate "$$parts/resources.yaml"
	    if [[ -f $$parts/rules.yaml ]]; then
	        echo "+ promtool check rules, promtool test rules: $$k's PrometheusRule"
	        "$$PROMTOOL" check rules "$$parts/rules.yaml"
	        sed 's|^  - article-service.rules.yaml$$|  - rules.yaml|' $(MONITORING)/article-service.rules.test.yaml >"$$parts/rules.test.yaml"
	        "$$PROMTOOL" test rules "$$parts/rules.test.yaml"
	    fi
	    for d in "$$parts"/dashboards/*.json; do
	        [[ -f $$d ]] || continue
	        echo "+ promtool check rules: the queries of $$k's dashboard $${d##*/}"
	        monitoring dashboard-queries "$$d" "$${d%.json}.queries.yaml"
	        "$$PROMTOOL" check rules "$${d%.json}.queries.yaml"
	    done
	done
	echo "+ kubernetes-validate --strict deploy/base/secret.example.yaml"
	validate deploy/base/secret.example.yaml

# The contract guard: proto/ may only add to the contract as last released (proto-released/,
# updated at a release only). The script proves the check fails for breaking edits.
contract-check:
	@envs=$$($(DEV_ENV) tools); eval "$$envs"
	echo "+ buf breaking --against proto-released"
	"$$BUF" breaking --against proto-released
	echo "+ tests/contract/buf_breaking_bites.sh"
	bash tests/contract/buf_breaking_bites.sh

check:
	@echo "+ $(CARGO) fmt --all -- --check"
	$(CARGO) fmt --all -- --check
	echo "+ $(CARGO) clippy --workspace --all-targets -- -D warnings"
	$(CARGO) clippy --workspace --all-targets -- -D warnings

db:
	@$(DEV_ENV) db-url

tools:
	@$(DEV_ENV) tools

env:
	@$(DEV_ENV) env

psql:
	@$(DEV_ENV) psql

stop-db:
	@$(DEV_ENV) stop

clean-db:
	@$(DEV_ENV) clean

# Fuzz targets (fuzz/, see fuzz/README.md), one after another, each for FUZZ_SECONDS, starting
# from the committed seeds (and the sample page for the page-text importer); new inputs go to
# fuzz/corpus/TARGET/. A crash stops the run and leaves its input in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := token_decode text_import ndjson_line slug_tag

.PHONY: fuzz
fuzz:
	@cd fuzz
	if ! $(CARGO) +nightly fuzz --version >/dev/null 2>&1; then
	    echo 'make fuzz needs a nightly toolchain and cargo-fuzz:' >&2
	    echo '  rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz --locked' >&2
	    exit 1
	fi
	for target in $(FUZZ_TARGETS); do
	    seeds=seeds/$$target
	    if [[ $$target == text_import ]]; then seeds=../tests/fixtures; fi
	    mkdir -p corpus/$$target
	    echo "+ $(CARGO) +nightly fuzz run $$target corpus/$$target $$seeds -- -max_total_time=$(FUZZ_SECONDS)"
	    $(CARGO) +nightly fuzz run $$target corpus/$$target $$seeds -- -max_total_time=$(FUZZ_SECONDS)
	done

# The benchmark harness (BENCHMARKS.md, scripts/bench.sh): minutes and several GB of disk, on a
# PostgreSQL cluster of its own (target/bench/pg, port BENCH_PG_PORT, default 55532), never the
# development cluster. Not part of `make test`. Settings: BENCH_ARTICLES, BENCH_SECONDS, ...
.PHONY: bench
bench:
	@bash scripts/bench.sh all
