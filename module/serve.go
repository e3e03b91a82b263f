package tenantgate

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/rules"
	"github.com/tenantgate/tenantgate/module/verify"
)

// tokenVerifier is what the gate needs of module/verify: one call per
// request. Tests put a fake here.
type tokenVerifier interface {
	Verify(ctx context.Context, req *verify.Request) (verify.Result, *verify.Error)
}

// verdict is what the gate decided about one request before calling next.
type verdict struct {
	reason audit.Reason
	detail string
	// identity is set whenever the token's signature verified, also when a
	// later check failed, so the audit record names the caller; it is
	// injected toward the upstream only when verified.
	identity *verify.Identity
	// verified: the token passed every check of the verifier.
	verified bool
	// retryAfter, for a 503, is when the issuer's keys are fetched next.
	retryAfter time.Duration
	route      string
	// dpop: the token came as Authorization: DPoP; binding: the proof of
	// possession checked (verify.Binding*), "" when no token was presented.
	dpop    bool
	binding string
}

// ServeHTTP implements caddyhttp.MiddlewareHandler: one exchange per
// request (exchange.go). begin has stripped what the client may not say
// and taken the credential; decide only reads; the exchange denies, or
// injects and forwards; end finishes it exactly once, panics included.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.serveReceiver(w, r) { // back-channel logout, SSF (receivers.go)
		return nil
	}
	x := g.begin(w, r)
	defer x.end()
	if !x.admit(g.decide(r, &x.cred)) {
		return nil
	}
	return x.forward(next)
}

// decide runs the request flow up to, not including, the upstream call. It
// reads the request and changes nothing: begin already took the credential.
func (g *Gate) decide(r *http.Request, cred *credential) verdict {
	path, err := rules.CheckPath(r.URL.EscapedPath())
	if err != nil {
		return verdict{reason: audit.ReasonBadPath, detail: err.Error()}
	}
	m, matched := g.table.Match(r.Method, path)
	var v verdict
	if matched {
		v.route = m.Rule.Pattern
		if m.Rule.Public {
			v.reason = audit.ReasonPublic
			return v
		}
	} else {
		v.reason, v.detail = audit.ReasonNoRoute, g.noRouteDetail(r.Method, path)
		if g.Mode != ModeReport {
			return v
		}
		// Report mode goes on, so a valid caller still gets its identity.
	}

	if cred.reason != "" {
		return firstFailure(v, cred.reason, cred.detail)
	}
	req, hostRefused := g.verifyRequest(r, cred)
	res, verr := g.verifier.Verify(r.Context(), req)
	id := res.Identity
	v.identity = id
	v.dpop, v.binding = cred.scheme == "DPoP", res.Binding
	if verr != nil {
		if v.reason == "" {
			v.retryAfter = verr.RetryAfter
		}
		detail := verr.Detail
		if hostRefused && verr.Reason == audit.ReasonBadDPoPProof {
			detail = "the request's Host " + truncateDetail(r.Host) + " is not a host name of this site, so no DPoP proof can name it; send the request to the site's own name (or set dpop_public_url)"
		}
		return firstFailure(v, verr.Reason, detail)
	}
	if reason, detail := g.revoked(id); reason != "" {
		return firstFailure(v, reason, detail)
	}
	v.verified = true
	if cred.from == fromCookie {
		if why := g.crossSiteCookieRequest(r); why != "" {
			return firstFailure(v, audit.ReasonCSRFSuspected, why)
		}
	}
	if !matched {
		return v
	}
	if reason := m.Authorize(id.Tenant, id.Roles); reason != audit.ReasonOK {
		v.reason, v.detail = reason, authorizeDetail(reason, m.Rule)
		return v
	}
	v.reason = audit.ReasonOK
	return v
}

// verifyRequest is what the verifier sees of r: the token and how it came,
// and the request as the gate received it (for checks that bind a token to
// its request). Without dpop_public_url, a DPoP request whose Host is not
// one of the site's host names gets no host at all (hostRefused), so no
// proof's htu can match it (dpophosts.go).
func (g *Gate) verifyRequest(r *http.Request, c *credential) (req *verify.Request, hostRefused bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if c.scheme == "DPoP" && g.DPoPConfig.PublicURL == "" && !g.siteHosts.serves(r) {
		host, hostRefused = "", true
	}
	// Filled in place: the credential lives in the exchange, so a cached
	// request allocates no Request or URL of its own.
	c.url = url.URL{Scheme: scheme, Host: host, Path: r.URL.Path, RawPath: r.URL.RawPath}
	// The client address is the one Caddy resolved (trusted_proxies
	// respected): the new-tenant budget is spent per client address.
	clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	c.req = verify.Request{
		Token:      c.token,
		Scheme:     c.scheme,
		Method:     r.Method,
		URL:        &c.url,
		Header:     c.dpop,
		TLS:        r.TLS,
		ClientCert: c.clientCert,
		ClientAddr: clientIP,
	}
	return &c.req, hostRefused
}

// firstFailure keeps an earlier failure (no_route in report mode) in front
// of a later one.
func firstFailure(v verdict, reason audit.Reason, detail string) verdict {
	if v.reason == "" {
		v.reason, v.detail = reason, detail
	}
	return v
}

// noRouteDetail explains a no_route denial, with a hint when the path
// differs from a rule only by a trailing slash (issue 22).
func (g *Gate) noRouteDetail(method, path string) string {
	detail := "no rule allows " + method + " " + path + "; the gate denies by default"
	if alt, ok := g.table.SlashTwin(method, path); ok {
		detail += "; did you mean " + alt + "?"
	}
	return detail
}

func truncateDetail(s string) string {
	const max = 128
	if len(s) > max {
		s = s[:max] + "..."
	}
	return `"` + s + `"`
}

func authorizeDetail(reason audit.Reason, r *rules.Rule) string {
	switch reason {
	case audit.ReasonMissingRole:
		return "this route needs one of the roles: " + strings.Join(r.Roles, ", ")
	case audit.ReasonTenantMismatch:
		return "the path names another tenant than the token's"
	case audit.ReasonTenantNotAllow:
		return "the token's tenant may not use this route"
	}
	return string(reason)
}

// inject sets the identity headers and the signed assertion; the client's
// copies were deleted before (strip-before-inject).
func (x *exchange) inject(id *verify.Identity) error {
	g, r := x.g, x.r
	// The assertion is made at the time the request began (the exchange's
	// clock read): iat is in whole seconds, and the token was judged then.
	now := x.start
	// The assertion never outlives the token it stands for.
	exp := now.Add(assertion.MaxLifetime)
	if !id.Expiry.IsZero() && id.Expiry.Before(exp) {
		exp = id.Expiry
	}
	tok, err := g.signer.Sign(assertion.Claims{
		Issuer:   g.AssertionIssuer,
		Audience: g.AssertionAudience,
		Tenant:   id.Tenant,
		Subject:  id.Subject,
		Roles:    id.Roles,
		Method:   r.Method,
		Path:     r.URL.Path,
		IssuedAt: now,
		Expiry:   exp,
		ID:       x.rec.RequestID,
	})
	if err != nil {
		return err
	}
	roles := strings.Join(id.Roles, ",")
	// Direct map writes with canonical keys: Header.Set would canonicalise
	// and allocate a []string per header.
	x.setHeader(r.Header, keyTenantID, hvTenant, id.Tenant)
	x.setHeader(r.Header, keyUserID, hvUser, id.Subject)
	x.setHeader(r.Header, keyUserRoles, hvRoles, roles)
	x.setHeader(r.Header, keyAssertion, hvAssertion, tok)
	if x.auth.binding == "" {
		x.repl.Map(x.authPlaceholder)
	}
	x.auth.injected = true
	x.auth.tenant, x.auth.subject, x.auth.roles = id.Tenant, id.Subject, roles
	return nil
}

// authPlaceholder answers {http.auth.tenant_id}, {http.auth.user.id},
// {http.auth.user.roles} (once the identity is injected) and
// {http.auth.binding}: one provider per request instead of a boxed value
// per placeholder. Values a later handler Sets still win (the replacer's
// static values come first).
func (x *exchange) authPlaceholder(key string) (any, bool) {
	if !strings.HasPrefix(key, "http.auth.") {
		return nil, false
	}
	switch key[len("http.auth."):] {
	case "binding":
		return x.auth.binding, x.auth.binding != ""
	case "tenant_id":
		return x.auth.tenant, x.auth.injected
	case "user.id":
		return x.auth.subject, x.auth.injected
	case "user.roles":
		return x.auth.roles, x.auth.injected
	}
	return nil, false
}
