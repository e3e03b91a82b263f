#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 10s). Go allows one
# -fuzz target per run, so targets are found and run one by one.
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# when a duration -fuzztime runs out while a worker is mid-call
# (https://go.dev/issue/75804, fixed in Go 1.27): no input failed, none is
# written. Such a run is tried once more; any other failure, or that one
# twice in a row, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

fuzz_once() { # pkg target
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" 2>&1 | tee "$out"
	return "${PIPESTATUS[0]}"
}

coordinator_race() { # the run's output is only the Go 1.26 deadline race
	grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"
}

for pkg in $(go list ./module/... ./backend/...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target ($FUZZTIME)"
		if fuzz_once "$pkg" "$target"; then
			continue
		fi
		if coordinator_race; then
			echo "fuzz: $target stopped on Go's fuzztime deadline race (go.dev/issue/75804), no failing input; once more"
			fuzz_once "$pkg" "$target" && continue
		fi
		exit 1
	done
done
