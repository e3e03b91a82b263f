#!/usr/bin/env bash
# CI: fail when a change to the shipped Caddyfiles widens access.
# `caddy tenant-gate diff` compares each Caddyfile with its version at the
# point where this branch left origin/main (main when there is no origin)
# and exits 1 when a route becomes reachable or its requirements loosen.
#
#   scripts/policy-diff.sh [CADDYFILE...]     default: caddyfile/*Caddyfile
#   POLICY_DIFF_BASE=v1.2.0 scripts/policy-diff.sh    another base
#   POLICY_DIFF_ALLOW_WIDENING=1 ...           report, but do not fail (a reviewed widening)
set -euo pipefail
cd "$(dirname "$0")/.."
caddy=${CADDY:-bin/caddy}
[ -x "$caddy" ] || { echo "policy-diff: $caddy not built (make bin/caddy)"; exit 2; }

base=${POLICY_DIFF_BASE:-}
if [ -z "$base" ]; then
	for ref in origin/main main; do
		if git rev-parse -q --verify "$ref^{commit}" >/dev/null 2>&1; then base=$ref; break; fi
	done
fi
if [ -z "$base" ]; then
	echo "policy-diff: neither origin/main nor main exists here: nothing to compare with (skipped)"
	exit 0
fi
# Compare with where this branch started, so later changes on main are not
# counted as this branch's.
if mb=$(git merge-base HEAD "$base" 2>/dev/null); then base_commit=$mb; else base_commit=$base; fi

if [ $# -eq 0 ]; then set -- caddyfile/*Caddyfile; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for f in "$@"; do
	if ! git cat-file -e "$base_commit:$f" 2>/dev/null; then
		echo "== $f: not in $base, nothing to compare with"
		continue
	fi
	old="$tmp/$(basename "$f")@$(git rev-parse --short "$base_commit")"
	git show "$base_commit:$f" >"$old"
	echo "== $f against $base ($(git rev-parse --short "$base_commit"))"
	rc=0
	"$caddy" tenant-gate diff --adapter caddyfile "$old" "$f" || rc=$?
	case $rc in
	0) ;;
	1) status=1 ;;
	*) exit "$rc" ;;
	esac
done
if [ $status -ne 0 ]; then
	if [ "${POLICY_DIFF_ALLOW_WIDENING:-}" = 1 ]; then
		echo "policy-diff: access widens (see above); allowed by POLICY_DIFF_ALLOW_WIDENING=1"
		exit 0
	fi
	echo "policy-diff: access widens (see above). Review it, then rerun with POLICY_DIFF_ALLOW_WIDENING=1 to accept."
fi
exit $status
