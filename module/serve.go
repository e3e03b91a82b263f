package tenantgate

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/rules"
	"github.com/tenantgate/tenantgate/module/verify"
)

// maxClientRequestID bounds the client's X-Request-ID copied into the audit
// record, so a client cannot bloat the trail.
const maxClientRequestID = 128

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

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	requestID, _ := repl.GetString("http.request.uuid")
	clientIP, _ := repl.GetString("http.vars.client_ip")
	rec := audit.Record{
		RequestID: requestID,
		Method:    r.Method,
		Path:      r.URL.EscapedPath(),
		RemoteIP:  clientIP,
	}
	traceRecord(r, &rec)
	// The request id toward the upstream is always ours; the client's is kept
	// for correlation only.
	if v := r.Header.Get(keyRequestID); v != "" {
		if len(v) > maxClientRequestID {
			v = v[:maxClientRequestID]
		}
		rec.ClientRequestID = v
	}
	r.Header.Del(keyRequestID)
	g.strip.strip(r.Header)
	stripUntrustedClientCert(r)
	if r.Trailer != nil {
		// Declared trailers get their values only when the body is read to
		// its end, which reverse_proxy does after the gate ran: strip again then.
		g.strip.strip(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, set: g.strip}
	}

	// Echo our request id to the client, so a support ticket can quote it.
	w.Header().Set(keyRequestID, rec.RequestID)

	v := g.decide(r)
	rec.Route = v.route
	rec.Reason = v.reason
	rec.Binding = v.binding
	if v.binding != "" {
		repl.Set("http.auth.binding", v.binding)
	}
	if id := v.identity; id != nil {
		rec.TenantID, rec.UserID, rec.Issuer, rec.TokenID = id.Tenant, id.Subject, id.Issuer, id.TokenID
	}

	allowed := v.reason == audit.ReasonOK || v.reason == audit.ReasonPublic
	switch {
	case v.reason == audit.ReasonPublic:
		rec.Decision = audit.DecisionPublic
	case allowed:
		rec.Decision = audit.DecisionAllow
	case g.Mode == ModeReport && v.reason != audit.ReasonBadPath:
		// Shadow mode: record what enforce would have done, then let it pass.
		rec.Decision = audit.DecisionWouldDeny
	default:
		rec.Decision = audit.DecisionDeny
	}

	if rec.Decision == audit.DecisionDeny {
		if v.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((v.retryAfter+time.Second-1)/time.Second)))
		}
		rec.Status = g.writeProblem(w, v.reason, v.detail, rec.RequestID, v.dpop)
		g.finish(&rec, start, time.Since(start))
		return nil
	}

	if v.reason != audit.ReasonPublic && v.verified && v.identity.Tenant != "" {
		if err := g.inject(r, repl, v.identity, rec.RequestID); err != nil {
			g.logger.Error("signing the identity assertion failed", zap.Error(err))
			rec.Decision, rec.Reason = audit.DecisionDeny, audit.ReasonInternal
			rec.Status = g.writeProblem(w, audit.ReasonInternal, "the gate could not sign the identity assertion", rec.RequestID, v.dpop)
			g.finish(&rec, start, time.Since(start))
			return nil
		}
	}
	r.Header.Set(keyRequestID, rec.RequestID)

	gateTime := time.Since(start)
	idw := &requestIDWriter{
		ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		id:                    rec.RequestID,
	}
	rw := caddyhttp.NewResponseRecorder(idw, nil, nil)
	// Exactly one record per request: at the 101 for a connection that
	// switches protocols, else when next returns.
	if len(r.Header["Upgrade"]) > 0 {
		idw.up = &upgradeAudit{g: g, rec: &rec, rw: rw, repl: repl, start: start, gateTime: gateTime}
	}
	// The record is written even when next panics or the client goes away:
	// a trail that loses failures is worse than none.
	defer func() {
		if p := recover(); p != nil {
			if !idw.recorded() {
				rec.Status = abortedStatus(p, r, rw)
				g.finishUpstream(&rec, rw, repl)
				g.finish(&rec, start, gateTime)
			}
			panic(p)
		}
	}()
	err := next.ServeHTTP(rw, r)
	if idw.recorded() {
		return err
	}
	rec.Status = rw.Status()
	if err != nil {
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			rec.Status = he.StatusCode
		} else if rec.Status == 0 {
			rec.Status = http.StatusInternalServerError
		}
	} else if rec.Status == 0 {
		rec.Status = http.StatusOK
	}
	g.applyRateLimitOutcome(r, &rec)
	g.finishUpstream(&rec, rw, repl)
	g.finish(&rec, start, gateTime)
	return err
}

// decide runs the request flow up to, not including, the upstream call.
func (g *Gate) decide(r *http.Request) verdict {
	path, err := rules.CheckPath(r.URL.EscapedPath())
	if err != nil {
		return verdict{reason: audit.ReasonBadPath, detail: err.Error()}
	}
	// The configured token cookie and query parameter leave the request on
	// every route, public ones included, so the end user's token never
	// reaches an upstream (browsers send cookies to every path).
	cookieTok, queryTok := g.takeTokenCookie(r), g.takeTokenQuery(r)
	// The DPoP proof is spent here: it never travels on to the upstream.
	defer r.Header.Del(headerDPoP)
	m, matched := g.table.Match(r.Method, path)
	var v verdict
	if matched {
		v.route = m.Rule.Pattern
		if m.Rule.Public {
			v.reason = audit.ReasonPublic
			return v
		}
	} else {
		v.reason, v.detail = audit.ReasonNoRoute, "no rule allows "+r.Method+" "+path+"; the gate denies by default"
		if g.Mode != ModeReport {
			return v
		}
		// Report mode goes on, so a valid caller still gets its identity.
	}

	cred, reason, detail := g.bearerToken(r, cookieTok, queryTok)
	if reason != "" {
		return g.firstFailure(v, reason, detail)
	}
	req := verifyRequest(r, cred)
	res, verr := g.verifier.Verify(r.Context(), req)
	id := res.Identity
	v.identity = id
	v.dpop, v.binding = cred.scheme == "DPoP", res.Binding
	if verr != nil {
		if v.reason == "" {
			v.retryAfter = verr.RetryAfter
		}
		return g.firstFailure(v, verr.Reason, verr.Detail)
	}
	v.verified = true
	if cred.from == fromCookie {
		if why := g.crossSiteCookieRequest(r); why != "" {
			return g.firstFailure(v, audit.ReasonCSRFSuspected, why)
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
// its request).
func verifyRequest(r *http.Request, c credential) *verify.Request {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &verify.Request{
		Token:      c.token,
		Scheme:     c.scheme,
		Method:     r.Method,
		URL:        &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath},
		Header:     r.Header,
		TLS:        r.TLS,
		ClientCert: forwardedClientCert(r),
	}
}

// firstFailure keeps an earlier failure (no_route in report mode) in front
// of a later one.
func (g *Gate) firstFailure(v verdict, reason audit.Reason, detail string) verdict {
	if v.reason == "" {
		v.reason, v.detail = reason, detail
	}
	return v
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
func (g *Gate) inject(r *http.Request, repl *caddy.Replacer, id *verify.Identity, requestID string) error {
	now := time.Now()
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
		ID:       requestID,
	})
	if err != nil {
		return err
	}
	roles := strings.Join(id.Roles, ",")
	r.Header.Set(keyTenantID, id.Tenant)
	r.Header.Set(keyUserID, id.Subject)
	r.Header.Set(keyUserRoles, roles)
	r.Header.Set(keyAssertion, tok)
	repl.Set("http.auth.tenant_id", id.Tenant)
	repl.Set("http.auth.user.id", id.Subject)
	repl.Set("http.auth.user.roles", roles)
	return nil
}
