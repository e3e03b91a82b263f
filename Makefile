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

.PHONY: build run token test unit integration lint fuzz bench bench-load clean

build: bin/caddy bin/backend bin/tgdev

bin/backend: $(GO_SOURCES)
	@mkdir -p bin
	go build -o $@ ./backend/cmd/backend

bin/tgdev: $(GO_SOURCES)
	@mkdir -p bin
	go build -o $@ ./cmd/tgdev

run: build
	@scripts/run.sh

token: bin/tgdev
	@bin/tgdev keys --dir .dev
	@bin/tgdev token --dir .dev --tenant "$(TENANT)" --user "$(TOKEN_USER)" --roles "$(ROLES)" --ttl "$(TTL)"

test: build
	scripts/test.sh

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
