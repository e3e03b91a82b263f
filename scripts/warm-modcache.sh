#!/usr/bin/env bash
# Fills the module cache with everything `xcaddy build` will need, so that
# xcaddy can then run with GOPROXY=off (see xcaddy.mk for why it must).
# It replays xcaddy's steps in a scratch module, through the proxy, with
# this repository already required and replaced, which is what keeps Go
# from looking our module path up on the network.
set -euo pipefail
caddy_version=$1 modpath=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# step CMD...: runs CMD quietly; if it fails, shows its output and why it
# matters here, instead of letting xcaddy fail later with a GOPROXY=off
# error that hides the real cause (often: the module proxy unreachable).
step() {
	if ! "$@" >"$scratch/step.log" 2>&1; then
		printf 'warm-modcache: `%s` failed (in %s):\n' "$*" "$PWD" >&2
		sed 's/^/  /' "$scratch/step.log" >&2
		printf 'warm-modcache: this step fills the module cache through GOPROXY=%s (GOFLAGS=%s);\n' "$(go env GOPROXY)" "$(go env GOFLAGS)" >&2
		printf '  the xcaddy build after it runs offline (GOPROXY=off), so fix the error above first.\n' >&2
		exit 1
	fi
}

cd "$repo" && step go mod download
cd "$scratch"
cat > main.go <<GO
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "$modpath/module"
)

func main() { caddycmd.Main() }
GO
step go mod init caddy
# xcaddy's first step resolves Caddy alone, at Caddy's own dependency versions.
step go get "github.com/caddyserver/caddy/v2@$caddy_version"
step go mod edit -require="$modpath@v0.0.0-00010101000000-000000000000" -replace="$modpath=$repo"
step go mod tidy
step go mod download
