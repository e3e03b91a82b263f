package tenantgate

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tenantgate/tenantgate/module/verify"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tenant_gate", parseCaddyfile)
	// Next to forward_auth: authentication runs before handle, route and
	// reverse_proxy, with no `order` line in users' Caddyfiles.
	httpcaddyfile.RegisterDirectiveOrder("tenant_gate", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gate)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the gate from Caddyfile tokens. Syntax:
//
//	tenant_gate {
//	    issuer <url> {
//	        jwks_url <url> | oidc_discovery [<url>] | jwks_file <path> | public_key_file <path> | hmac_secret <secret>
//	        audience <aud...>
//	        refresh_interval <duration>
//	        tenants <tenant...> | tenants *      # issuer URL with {tenant} only
//	        tenants_file <path>
//	        max_tenants <n>
//	        dpop required|optional
//	        mtls_binding required|optional
//	        token_type at+jwt
//	    }
//	    algorithms <alg...>
//	    tenant_claim <name>
//	    user_claim <name>
//	    roles_claim <name>
//	    leeway <duration>
//	    max_token_bytes <n>
//	    mode enforce|report
//	    assertion_key <path>
//	    assertion_alg EdDSA|HS256
//	    assertion_secret <secret>
//	    token_cache <entries>|off
//	    assertion_audience <name>
//	    assertion_issuer <name>
//	    strip_header <name...>
//	    token_cookie <name>
//	    token_query <name>
//	    allowed_origins <origin...>
//	    realm <realm>
//	    metrics_max_tenants <n>
//	    dpop_public_url <scheme://host>
//	    dpop_max_age <duration>
//	    dpop_algorithms <alg...>
//	    dpop_replay_cache <n>
//	    client_cert_from <cidr...>
//	    audit_chain_key <secret>
//	    audit_format native|ocsf
//	    rule <methods> <pattern> <requirement...>
//	}
//
// Rule and issuer problems are collected and reported together, each at
// its own file and line as the dispenser gives them (also inside imported
// files), so one run of `caddy validate` shows them all.
func (g *Gate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	p := &parseState{directive: d.Token(), options: map[string]caddyfile.Token{}, unread: map[int]bool{}, order: map[tokenKey]int{}}
	if d.NextArg() {
		p.addAt(d.Token(), d.ArgErr())
		skipLine(d)
	}
	for d.NextBlock(0) {
		name, at := d.Val(), d.Token()
		p.read(at)
		if _, seen := p.options[name]; !seen {
			p.options[name] = at
		}
		var err error
		switch name {
		case "issuer":
			is, errs := parseIssuer(d, p)
			p.problems = append(p.problems, errs...)
			if len(errs) > 0 {
				p.unread[len(g.Issuers)] = true
			}
			g.Issuers = append(g.Issuers, is)
			p.issuers = append(p.issuers, at)
		case "client_cert_from":
			cidrs := d.RemainingArgs()
			if len(cidrs) == 0 {
				err = d.ArgErr()
			}
			p.values(at, cidrs)
			g.ClientCertFrom = append(g.ClientCertFrom, cidrs...)
		case "rule":
			p.rule(g, d, at)
		default:
			handled, herr := g.unmarshalSharedState(d)
			if !handled {
				herr = g.parseOption(d)
			}
			err = herr
		}
		if err != nil {
			// Report it and go on with the next line: one mistake does
			// not hide the others.
			p.addAt(at, err)
			skipLine(d)
		}
	}
	p.checkConfig(g)
	p.compileRules(g)
	return p.errors()
}

// parseOption reads one gate-wide option into g's JSON fields.
func (g *Gate) parseOption(d *caddyfile.Dispenser) error {
	switch d.Val() {
	case "algorithms":
		g.Algorithms = append(g.Algorithms, d.RemainingArgs()...)
		if len(g.Algorithms) == 0 {
			return d.ArgErr()
		}
	case "tenant_claim":
		if err := oneArg(d, &g.TenantClaim); err != nil {
			return err
		}
	case "user_claim":
		if err := oneArg(d, &g.UserClaim); err != nil {
			return err
		}
	case "roles_claim":
		if err := oneArg(d, &g.RolesClaim); err != nil {
			return err
		}
	case "leeway":
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(s)
		if err != nil {
			return d.Errf("leeway %q: %v", s, err)
		}
		leeway := verify.Duration(dur)
		g.Leeway = &leeway
	case "max_token_bytes":
		if err := intArg(d, &g.MaxTokenBytes); err != nil {
			return err
		}
	case "metrics_max_tenants":
		if err := intArg(d, &g.MetricsMaxTenants); err != nil {
			return err
		}
	case "mode":
		if err := oneArg(d, &g.Mode); err != nil {
			return err
		}
	case "assertion_key":
		if err := oneArg(d, &g.AssertionKey); err != nil {
			return err
		}
	case "assertion_alg":
		if err := oneArg(d, &g.AssertionAlg); err != nil {
			return err
		}
	case "assertion_secret":
		if err := oneArg(d, &g.AssertionSecret); err != nil {
			return err
		}
	case "token_cache":
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		n := 0
		if s != "off" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n <= 0 {
				return d.Errf("token_cache %q: want a positive number of entries, or off", s)
			}
		}
		g.TokenCache = &n
	case "assertion_audience":
		if err := oneArg(d, &g.AssertionAudience); err != nil {
			return err
		}
	case "assertion_issuer":
		if err := oneArg(d, &g.AssertionIssuer); err != nil {
			return err
		}
	case "strip_header":
		names := d.RemainingArgs()
		if len(names) == 0 {
			return d.ArgErr()
		}
		g.StripHeaders = append(g.StripHeaders, names...)
	case "token_cookie":
		if err := oneArg(d, &g.TokenCookie); err != nil {
			return err
		}
	case "token_query":
		if err := oneArg(d, &g.TokenQuery); err != nil {
			return err
		}
	case "allowed_origins":
		origins := d.RemainingArgs()
		if len(origins) == 0 {
			return d.ArgErr()
		}
		g.AllowedOrigins = append(g.AllowedOrigins, origins...)
	case "realm":
		if err := oneArg(d, &g.Realm); err != nil {
			return err
		}
	case "dpop_public_url":
		if err := oneArg(d, &g.DPoPConfig.PublicURL); err != nil {
			return err
		}
	case "dpop_max_age":
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(s)
		if err != nil {
			return d.Errf("dpop_max_age %q: %v", s, err)
		}
		g.DPoPConfig.MaxAge = verify.Duration(dur)
	case "dpop_algorithms":
		g.DPoPConfig.ProofAlgorithms = append(g.DPoPConfig.ProofAlgorithms, d.RemainingArgs()...)
		if len(g.DPoPConfig.ProofAlgorithms) == 0 {
			return d.ArgErr()
		}
	case "audit_chain_key", "audit_format":
		if err := parseAuditOption(d, g); err != nil {
			return err
		}
	case "dpop_replay_cache":
		if err := intArg(d, &g.DPoPConfig.ReplayCacheSize); err != nil {
			return err
		}
	default:
		return d.Errf("unrecognized subdirective %q", d.Val())
	}
	return nil
}

// parseIssuer reads one issuer block, every problem of it reported (the
// block is read to its end whatever it finds).
func parseIssuer(d *caddyfile.Dispenser, p *parseState) (Issuer, []problem) {
	var is Issuer
	var errs []problem
	opts := map[string]caddyfile.Token{} // where each option of this block was written
	p.issuerOpts = append(p.issuerOpts, opts)
	if d.NextArg() {
		is.Issuer = d.Val()
		if d.NextArg() {
			errs = append(errs, problem{d.Token(), d.ArgErr()})
			d.RemainingArgs()
		}
	} else {
		errs = append(errs, problem{d.Token(), d.Errf("issuer needs the exact iss value, e.g. issuer https://idp.example.com { ... }")})
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		at := d.Token()
		p.read(at)
		if _, seen := opts[d.Val()]; !seen {
			opts[d.Val()] = at
		}
		switch d.Val() {
		case "jwks_url":
			err = oneArg(d, &is.JWKSURL)
		case "oidc_discovery":
			args := d.RemainingArgs()
			switch len(args) {
			case 0:
				is.OIDCDiscovery = strings.TrimSuffix(is.Issuer, "/") + "/.well-known/openid-configuration"
			case 1:
				is.OIDCDiscovery = args[0]
			default:
				err = d.ArgErr()
			}
		case "jwks_file":
			err = oneArg(d, &is.JWKSFile)
		case "public_key_file":
			err = oneArg(d, &is.PublicKeyFile)
		case "hmac_secret":
			err = oneArg(d, &is.HMACSecret)
		case "audience":
			auds := d.RemainingArgs()
			if len(auds) == 0 {
				err = d.ArgErr()
			}
			is.Audiences = append(is.Audiences, auds...)
		case "tenants":
			names := d.RemainingArgs()
			if len(names) == 0 {
				err = d.ArgErr()
			}
			is.Tenants = append(is.Tenants, names...)
		case "tenants_file":
			err = oneArg(d, &is.TenantsFile)
		case "max_tenants":
			var s string
			if err = oneArg(d, &s); err == nil {
				n, perr := strconv.Atoi(s)
				if perr != nil || n < 1 {
					err = d.Errf("max_tenants %q: must be a whole number of at least 1 (tenants' key sets held at once)", s)
				}
				is.MaxTenants = n
			}
		case "dpop":
			err = oneArg(d, &is.DPoP)
		case "mtls_binding":
			err = oneArg(d, &is.MTLSBinding)
		case "token_type":
			err = oneArg(d, &is.TokenType)
		case "refresh_interval":
			var s string
			if err = oneArg(d, &s); err == nil {
				dur, perr := caddy.ParseDuration(s)
				if perr != nil {
					err = d.Errf("refresh_interval %q: %v", s, perr)
				}
				is.RefreshInterval = verify.Duration(dur)
			}
		default:
			err = d.Errf("unrecognized issuer subdirective %q", d.Val())
		}
		if err != nil {
			errs = append(errs, problem{at, err})
			skipLine(d)
		}
	}
	return is, errs
}

// oneArg reads the one argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

func intArg(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return d.Errf("%s %q: want a positive integer", name, s)
	}
	*dst = n
	return nil
}
