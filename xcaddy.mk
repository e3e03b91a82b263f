# Builds bin/caddy with xcaddy and this repository's module/ (the
# tenant_gate handler). Pinned versions: change them here only.
CADDY_VERSION  ?= v2.11.9
XCADDY_VERSION ?= v0.4.5
MODPATH        := github.com/tenantgate/tenantgate
GOBIN          ?= $(shell go env GOPATH)/bin
XCADDY         := $(GOBIN)/xcaddy

# The module proxy answers some unknown paths with a 4xx that Go treats as
# fatal; our own module path must never be looked up there.
export GOPRIVATE := $(MODPATH)

MODULE_SOURCES := $(shell find module -name '*.go' -not -name '*_test.go') go.mod go.sum

$(XCADDY):
	GOBIN=$(GOBIN) go install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)

bin/caddy: $(MODULE_SOURCES) | $(XCADDY)
	@mkdir -p bin
	$(XCADDY) build $(CADDY_VERSION) --output bin/caddy --with $(MODPATH)/module --replace $(MODPATH)=./
