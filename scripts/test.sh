#!/usr/bin/env bash
# make test: every check CI runs, in the order a failure is cheapest to see.
# `make test` builds bin/caddy, bin/backend and bin/tgdev first.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOPRIVATE=github.com/tenantgate/tenantgate
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
STATICCHECK_VERSION=v0.8.2
GOSEC_VERSION=v2.30.0
COVERAGE_MIN=${COVERAGE_MIN:-90}
mkdir -p .data

step() { printf '\n== %s\n' "$*"; }

# Every go test below goes through tools/testsummary, which prints what
# plain `go test` would and appends a line per suite (tests passed,
# skipped, failed; Ginkgo specs; each skip with its reason) to
# $SUMMARY, printed at the end with the services the run used.
SUMMARY=.data/test-summary.txt
: >"$SUMMARY"
go build -o .data/testsummary ./tools/testsummary
gotest() { # SUITE go-test-args...
	local suite=$1
	shift
	go test -json "$@" | .data/testsummary -suite "$suite" -out "$SUMMARY"
}

# PostgreSQL: tests that need it (TENANTGATE_TEST_POSTGRES, default
# postgres://postgres@127.0.0.1:5432/postgres) skip when it does not answer
# and list themselves in this file; TENANTGATE_REQUIRE_SERVICES=1 (CI) makes
# them fail instead. postgres_summary says so loudly.
export TENANTGATE_POSTGRES_SKIPS="$PWD/.data/postgres-skips.txt"
: >"$TENANTGATE_POSTGRES_SKIPS"
postgres_summary() {
	[ -s "$TENANTGATE_POSTGRES_SKIPS" ] || return 0
	printf '\n!!!!! POSTGRESQL DID NOT ANSWER: %d test(s) skipped, the PostgreSQL store is UNTESTED (list: %s; set TENANTGATE_TEST_POSTGRES, or TENANTGATE_REQUIRE_SERVICES=1 to fail) !!!!!\n' \
		"$(wc -l <"$TENANTGATE_POSTGRES_SKIPS")" "$TENANTGATE_POSTGRES_SKIPS"
}

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

step "go vet"
go vet ./...

step "docs (every metric, audit field and reason word documented; every link resolves)"
gotest "docs" -count=1 ./docs/

step "staticcheck $STATICCHECK_VERSION"
[ -x "$GOBIN/staticcheck" ] && "$GOBIN/staticcheck" -version | grep -q "${STATICCHECK_VERSION#v}" ||
	GOBIN=$GOBIN go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
"$GOBIN/staticcheck" ./...

step "gosec $GOSEC_VERSION"
# gosec reports no version when built by go install; reinstalling the pinned
# version is a cache hit after the first time.
GOBIN=$GOBIN go install "github.com/securego/gosec/v2/cmd/gosec@$GOSEC_VERSION"
"$GOBIN/gosec" -quiet ./module/... ./backend/... ./cmd/... ./internal/...

# Redis for the tenant_rate_limit tests (module/ratelimit/..., integration):
# TENANTGATE_TEST_REDIS, else the tests start a redis-server of their own;
# with neither they skip, and this summary says so (CI fails instead).
redis_url=${TENANTGATE_TEST_REDIS:-redis://127.0.0.1:6379}
redis_addr=${redis_url#*://}; redis_addr=${redis_addr##*@}; redis_addr=${redis_addr%%[/?]*}
redis_note=""
if ! timeout 2 bash -c "exec 3<>/dev/tcp/${redis_addr%:*}/${redis_addr##*:}" 2>/dev/null; then
	if command -v redis-server >/dev/null; then
		redis_note="Redis at $redis_url does not answer: the Redis tests ran on a redis-server of their own"
	elif [ "${TENANTGATE_REQUIRE_SERVICES:-}" = 1 ]; then
		echo "!!! REDIS NOT AVAILABLE at $redis_url (TENANTGATE_TEST_REDIS) and no redis-server: TENANTGATE_REQUIRE_SERVICES=1, failing"
		exit 1
	else
		redis_note="!!! REDIS NOT AVAILABLE at $redis_url (TENANTGATE_TEST_REDIS) and no redis-server on PATH: the Redis tests were SKIPPED"
	fi
fi
[ -z "$redis_note" ] || echo "$redis_note"

step "unit tests with coverage (module, backend; at least ${COVERAGE_MIN}%)"
gotest "unit (cmd, tools, internal)" -count=1 ./cmd/... ./tools/... ./internal/...
gotest "unit (module, backend)" -count=1 -coverprofile=.data/cover.out ./module/... ./backend/...
if [ -s "$TENANTGATE_POSTGRES_SKIPS" ]; then
	# The PostgreSQL store could not run: measure the code that could.
	grep -v -e '/backend/store/postgres' -e '/backend/store/pgtest/' .data/cover.out >.data/cover.nopg.out
	mv .data/cover.nopg.out .data/cover.out
	postgres_summary
	echo "coverage below leaves out backend/store/postgres*.go and pgtest"
fi
total=$(go tool cover -func=.data/cover.out | awk '/^total:/ {sub("%", "", $3); print $3}')
echo "statement coverage of module/... and backend/...: ${total}%"
awk -v t="$total" -v min="$COVERAGE_MIN" 'BEGIN { exit (t + 0 >= min + 0) ? 0 : 1 }' ||
	{ echo "coverage ${total}% is below ${COVERAGE_MIN}%"; exit 1; }

step "policy cases and policy diff (bin/caddy tenant-gate test / diff)"
bin/caddy tenant-gate test --config caddyfile/Caddyfile --adapter caddyfile \
	--junit .data/policy-junit.xml caddyfile/Caddyfile.cases.yaml
scripts/policy-diff.sh

step "integration (real bin/caddy and bin/backend, JWKS over loopback)"
TENANTGATE_BIN="$PWD/bin" gotest "integration" -count=1 -timeout 10m ./integration/...

step "make run / make stop / make run-prod-local, as a user runs them (own ports)"
gotest "scripts" -count=1 -timeout 10m ./scripts/

step "fuzz targets (${FUZZTIME:=10s} each)"
FUZZTIME=$FUZZTIME scripts/fuzz.sh

postgres_summary
# Redis summary (see above).
[ -z "$redis_note" ] || printf '\n%s\n' "$redis_note"

step "summary"
cat "$SUMMARY"
echo "(fuzz: every target for $FUZZTIME, see above)"
pg_url=${TENANTGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
if [ -s "$TENANTGATE_POSTGRES_SKIPS" ]; then
	echo "PostgreSQL: NOT USED ($pg_url did not answer; $(wc -l <"$TENANTGATE_POSTGRES_SKIPS") test(s) skipped)"
else
	echo "PostgreSQL: used, $pg_url"
fi
if [ -z "$redis_note" ]; then
	echo "Redis: used, $redis_url"
else
	echo "Redis: $redis_note"
fi
