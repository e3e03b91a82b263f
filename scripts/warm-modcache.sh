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
cd "$repo" && go mod download
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
go mod init caddy >/dev/null 2>&1
# xcaddy's first step resolves Caddy alone, at Caddy's own dependency versions.
go get "github.com/caddyserver/caddy/v2@$caddy_version" >/dev/null 2>&1
go mod edit -require="$modpath@v0.0.0-00010101000000-000000000000" -replace="$modpath=$repo"
go mod tidy >/dev/null 2>&1
go mod download
