# tenantgate: `make run` starts the gate and the backend on dev keys,
# `make test` runs every test. Only Go is needed.
.DEFAULT_GOAL := build
SHELL := /bin/bash

include xcaddy.mk

GO_SOURCES := $(shell find . -name '*.go' -not -path './integration/*' -not -name '*_test.go') go.mod go.sum

# `make token` options. USER is also the shell's login name, so only a
# USER given on the make command line counts.
TENANT ?= acme
ROLES  ?= ensemble:read ensemble:write hedging:read hedging:trade
TOKEN_USER := $(if $(filter command line,$(origin USER)),$(USER),alice)
TTL    ?= 1h

.PHONY: build run run-prod-local stop token test policy-test policy-diff unit integration lint fuzz bench bench-load clean

build: bin/caddy bin/backend bin/tgdev

bin/backend: $(GO_SOURCES)
	@mkdir -p bin
	go build -o $@ ./backend/cmd/backend

bin/tgdev: $(GO_SOURCES)
	@mkdir -p bin
	go build -o $@ ./cmd/tgdev

run: build
	@scripts/run.sh

# The production shape (HTTPS with Caddy's local CA, Redis rate limits,
# rolling audit file, token_type at+jwt) on loopback with dev keys; its
# files live under .dev/prod-local. See caddyfile/production.local.Caddyfile.
run-prod-local: build
	@TENANTGATE_CONFIG=caddyfile/production.local.Caddyfile TENANTGATE_DATA=.dev/prod-local \
		TENANTGATE_LISTEN=$${TENANTGATE_LISTEN:-:8443} TENANTGATE_SCHEME=https scripts/run.sh

# Stops a `make run` / `make run-prod-local` left running elsewhere.
stop:
	@scripts/stop.sh

token: bin/tgdev
	@bin/tgdev keys --dir .dev
	@bin/tgdev token --dir .dev --tenant "$(TENANT)" --user "$(TOKEN_USER)" --roles "$(ROLES)" --ttl "$(TTL)"

test: build
	scripts/test.sh

# The route rules of caddyfile/Caddyfile as tested code: every case of
# caddyfile/Caddyfile.cases.yaml through the real tenant_gate, offline.
policy-test: bin/caddy
	bin/caddy tenant-gate test --config caddyfile/Caddyfile --adapter caddyfile caddyfile/Caddyfile.cases.yaml

# Fails when a Caddyfile change widens access compared with origin/main.
policy-diff: bin/caddy
	scripts/policy-diff.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-2m} scripts/fuzz.sh

bench:
	go test -run '^$$' -bench . -benchmem ./module/... ./backend/...

# Load benchmark of the real binary (bare reverse_proxy vs tenant_gate),
# about 3 minutes (5 with BENCH_BEFORE); knobs in docs/performance.md.
bench-load: bin/caddy
	GOPRIVATE=github.com/tenantgate/tenantgate go run ./bench/load

clean:
	rm -rf bin .data integration/.tmp
