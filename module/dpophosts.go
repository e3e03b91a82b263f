package tenantgate

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A DPoP proof's htu names the server it was made for. Without
// dpop_public_url the gate compares it with the request's scheme and Host,
// and Host is the client's to choose: behind a catch-all site a proof made
// for another resource server (https://other-rs.example) would pass here
// with Host: other-rs.example whenever the token's audience covers both.
// So without dpop_public_url a DPoP request passes only when its Host is
// one of the host names the site is configured for: the host matchers of
// the routes of the server the gate sits in (for a Caddyfile, the site
// addresses). A server with no host names (a catch-all site such as
// `:443`) accepts no DPoP proof until dpop_public_url is set; Provision
// warns about that, so `caddy validate` says it.

// siteHosts are the host matchers of one server's routes.
type siteHosts []caddyhttp.MatchHost

// serverHosts collects the host matchers of the routes of srv, the server
// whose handlers are being provisioned (Caddy provisions every route's
// matchers before any handler, so they are ready then). ok is false
// without a server (the gate provisioned outside an http app, as in unit
// tests).
func serverHosts(srv *caddyhttp.Server) (hosts siteHosts, ok bool) {
	if srv == nil {
		return nil, false
	}
	for _, route := range srv.Routes {
		for _, set := range route.MatcherSets {
			for _, m := range set {
				// Caddy loads matchers as pointers; a config built in Go
				// may hold values.
				switch h := m.(type) {
				case *caddyhttp.MatchHost:
					if h != nil && len(*h) > 0 {
						hosts = append(hosts, *h)
					}
				case caddyhttp.MatchHost:
					if len(h) > 0 {
						hosts = append(hosts, h)
					}
				}
			}
		}
	}
	return hosts, true
}

// serves reports whether r's Host is one of the site's host names (the
// port is not compared: a proxy in front may change it). The matchers
// expand placeholders with the request's replacer, which Caddy always sets.
func (s siteHosts) serves(r *http.Request) bool {
	if r.Context().Value(caddy.ReplacerCtxKey) == nil {
		return false
	}
	for _, h := range s {
		if h.Match(r) {
			return true
		}
	}
	return false
}

// provisionSiteHosts finds the site's host names for the DPoP htu check,
// and warns when DPoP cannot pass at all (no dpop_public_url and a site
// without host names).
//
// It also notes whether the server has handle_errors routes: then those,
// not the gate, answer an error a later handler returns (exchange.failed).
func (g *Gate) provisionSiteHosts(ctx context.Context) {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	g.siteHandlesErrors = srv != nil && srv.Errors != nil && len(srv.Errors.Routes) > 0
	hosts, underServer := serverHosts(srv)
	g.siteHosts = hosts
	if g.DPoPConfig.PublicURL == "" && underServer && len(hosts) == 0 {
		g.logger.Warn("tenant_gate: this site has no host names and dpop_public_url is not set, so every DPoP-bound request is refused (bad_dpop_proof); set dpop_public_url https://your.public.host")
	}
}
