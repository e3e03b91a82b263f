# Builds bin/caddy with xcaddy and this repository's module/ (the
# tenant_gate handler). Pinned versions: change them here only.
CADDY_VERSION  ?= v2.11.9
XCADDY_VERSION ?= v0.4.5
MODPATH        := github.com/tenantgate/tenantgate
GOBIN          ?= $(shell go env GOPATH)/bin
XCADDY         := $(GOBIN)/xcaddy

# Our module is never fetched: xcaddy's build module replaces it with this
# tree. Go still probes the network for the package path first, and the
# module proxy here answers such unknown paths with a 403 that Go treats as
# fatal (and GOPRIVATE's direct git lookup cannot resolve github.com). So
# scripts/warm-modcache.sh first downloads, through the proxy, every module
# xcaddy's build will ask for, and xcaddy then builds offline from the
# module cache (GOPROXY=off). GOPRIVATE must be empty there: it would send
# the lookup to git directly, which fails the same way. GOSUMDB=off only
# because sum.golang.org is not reachable directly: with the proxy off,
# nothing can enter the cache, and all of it was verified against go.sum
# by `go mod download`.

MODULE_SOURCES := $(shell find module -name '*.go' -not -name '*_test.go') go.mod go.sum

$(XCADDY):
	GOBIN=$(GOBIN) go install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)

bin/caddy: $(MODULE_SOURCES) | $(XCADDY)
	@mkdir -p bin
	scripts/warm-modcache.sh $(CADDY_VERSION) $(MODPATH)
	GOPROXY=off GOSUMDB=off GOPRIVATE= GONOPROXY= GONOSUMDB= GOFLAGS=-mod=mod $(XCADDY) build $(CADDY_VERSION) --output bin/caddy --with $(MODPATH)/module --replace $(MODPATH)=./
