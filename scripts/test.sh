#!/usr/bin/env bash
# make test: every check CI runs. Build first (make test depends on build).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOPRIVATE=github.com/tenantgate/tenantgate
mkdir -p .data

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

step "go vet"
go vet ./...

step "unit tests (module, backend) with coverage"
go test -count=1 -coverprofile=.data/cover.out ./module/... ./backend/... ./cmd/...
go tool cover -func=.data/cover.out | tail -1

step "integration (real bin/caddy, bin/backend, JWKS over loopback)"
TENANTGATE_BIN="$PWD/bin" go test -count=1 -timeout 10m ./integration/...

step "fuzz targets (${FUZZTIME:=10s} each)"
FUZZTIME=$FUZZTIME scripts/fuzz.sh
