package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tenantgate/tenantgate/module/ratelimit/limiter"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tenant_rate_limit", parseCaddyfile)
	// Right after tenant_gate, which needs no `order` line either. Caddy
	// only accepts a standard directive as the anchor, so both take
	// forward_auth: tenant_gate's package imports this one, so this init
	// runs first and tenant_gate, inserted after forward_auth later, lands
	// in front of tenant_rate_limit (forward_auth, tenant_gate,
	// tenant_rate_limit). module/ratelimit_order_test.go holds it to that.
	httpcaddyfile.RegisterDirectiveOrder("tenant_rate_limit", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rl := new(Handler)
	err := rl.UnmarshalCaddyfile(h.Dispenser)
	return rl, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	tenant_rate_limit {
//	    store redis://host:6379/0        # omit for a per-process memory store
//	    limit <methods> <pattern> <N/s|N/m|N/h|N/d> [burst <n>]
//	    on_store_error allow|deny        # default allow
//	    timeout <duration>               # default 50ms
//	    key_prefix <prefix>              # Redis keys; default tenantgate:
//	    max_tenants <n>                  # memory store; default 10000
//	}
//
// Limit problems are collected and reported together, each with its index
// and line.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var limitErrs []error
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			if err := oneArg(d, &h.Store); err != nil {
				return err
			}
			// A placeholder is read when the config loads.
			if !strings.Contains(h.Store, "{") {
				if _, err := limiter.ParseStoreURL(h.Store); err != nil {
					return d.Err(err.Error())
				}
			}
		case "limit":
			line := d.Line()
			index := len(h.Limits) + len(limitErrs) + 1
			l, err := limiter.ParseLimit(d.RemainingArgs(), line)
			if err != nil {
				limitErrs = append(limitErrs, limiter.PrefixAll(fmt.Sprintf("limit %d (line %d): ", index, line), err))
				continue
			}
			h.Limits = append(h.Limits, l)
		case "on_store_error":
			if err := oneArg(d, &h.OnStoreError); err != nil {
				return err
			}
			if h.OnStoreError != OnStoreErrorAllow && h.OnStoreError != OnStoreErrorDeny {
				return d.Errf("on_store_error %q: want allow or deny", h.OnStoreError)
			}
		case "timeout":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("timeout %q: want a positive duration such as 50ms", s)
			}
			h.Timeout = caddy.Duration(dur)
		case "key_prefix":
			if err := oneArg(d, &h.KeyPrefix); err != nil {
				return err
			}
		case "max_tenants":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return d.Errf("max_tenants %q: want a positive integer", s)
			}
			h.MaxTenants = n
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	if len(limitErrs) > 0 {
		return errors.Join(limitErrs...)
	}
	if len(h.Limits) == 0 {
		return d.Err("tenant_rate_limit needs at least one `limit METHODS PATTERN RATE [burst N]`")
	}
	// Cross-limit problems (duplicates) of the limits that parsed.
	if _, err := limiter.Compile(h.Limits); err != nil {
		return err
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}
