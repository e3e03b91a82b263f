package tenantgate

import (
	"errors"
	"net/http"
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
	reason   audit.Reason
	detail   string
	identity *verify.Identity // set only when the token verified and carried a valid tenant
	// who, for the audit record: also set when the token verified but its
	// tenant claim was unusable (no_tenant), so the trail names the user.
	who   *verify.Identity
	route string
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
	// The request id toward the upstream is always ours; the client's is kept
	// for correlation only.
	if v := r.Header.Get(HeaderRequestID); v != "" {
		if len(v) > maxClientRequestID {
			v = v[:maxClientRequestID]
		}
		rec.ClientRequestID = v
	}
	r.Header.Del(HeaderRequestID)
	g.strip.strip(r.Header)
	if r.Trailer != nil {
		// Declared trailers get their values only when the body is read to
		// its end, which reverse_proxy does after the gate ran: strip again then.
		g.strip.strip(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, set: g.strip}
	}

	// Echo our request id to the client, so a support ticket can quote it.
	w.Header().Set(HeaderRequestID, rec.RequestID)

	v := g.decide(r)
	rec.Route = v.route
	rec.Reason = v.reason
	if id := v.who; id != nil {
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
		rec.Status = g.writeProblem(w, v.reason, v.detail, rec.RequestID)
		g.finish(&rec, start, time.Since(start))
		return nil
	}

	if v.reason != audit.ReasonPublic && v.identity != nil {
		if err := g.inject(r, repl, v.identity, rec.RequestID); err != nil {
			g.logger.Error("signing the identity assertion failed", zap.Error(err))
			rec.Decision, rec.Reason = audit.DecisionDeny, audit.ReasonInternal
			rec.Status = g.writeProblem(w, audit.ReasonInternal, "the gate could not sign the identity assertion", rec.RequestID)
			g.finish(&rec, start, time.Since(start))
			return nil
		}
	}
	r.Header.Set(HeaderRequestID, rec.RequestID)

	gateTime := time.Since(start)
	rw := caddyhttp.NewResponseRecorder(&requestIDWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		id:                    rec.RequestID,
	}, nil, nil)
	// The record is written even when next panics or the client goes away:
	// a trail that loses failures is worse than none.
	defer func() {
		if p := recover(); p != nil {
			rec.Status = abortedStatus(p, r, rw)
			g.finishUpstream(&rec, rw, repl)
			g.finish(&rec, start, gateTime)
			panic(p)
		}
	}()
	err := next.ServeHTTP(rw, r)
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

// StatusClientClosedRequest is the status the audit trail records when the
// client went away before the response was complete. No standard code
// exists; 499 is nginx's, and Caddy's reverse_proxy and access log use it too.
const StatusClientClosedRequest = 499

// abortedStatus names the status of a request whose handler chain panicked.
// reverse_proxy panics with http.ErrAbortHandler when it cannot finish
// streaming a response whose header it already sent: either the client
// disconnected (its context is done: 499), or the upstream broke off
// mid-body (502: the client got the upstream's header and a truncated
// body). Any other panic is the gate's or a handler's failure: 500.
func abortedStatus(p any, r *http.Request, rw caddyhttp.ResponseRecorder) int {
	if r.Context().Err() != nil {
		return StatusClientClosedRequest
	}
	if p == http.ErrAbortHandler && rw.Status() != 0 {
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// requestIDWriter makes the gate's request id the only X-Request-ID of the
// response. reverse_proxy adds the upstream's response headers to the ones
// already set, so an upstream that echoes the id (as the backend does)
// would otherwise give the client the header twice.
type requestIDWriter struct {
	*caddyhttp.ResponseWriterWrapper
	id string
}

func (w *requestIDWriter) WriteHeader(status int) {
	w.Header().Set(HeaderRequestID, w.id)
	w.ResponseWriterWrapper.WriteHeader(status)
}

// finishUpstream records the upstream's own status when reverse_proxy ran.
func (g *Gate) finishUpstream(rec *audit.Record, rw caddyhttp.ResponseRecorder, repl *caddy.Replacer) {
	if v, ok := repl.Get("http.reverse_proxy.status_code"); ok {
		if code, ok := v.(int); ok {
			rec.UpstreamStatus = code
		}
	}
	if rec.Status == 0 {
		rec.Status = rw.Status()
	}
}

func (g *Gate) finish(rec *audit.Record, start time.Time, gateTime time.Duration) {
	rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	audit.Write(g.auditLog, rec)
	// metrics is nil only where a test measures the gate without them.
	if g.metrics != nil {
		g.metrics.observe(rec.Decision, rec.Reason, rec.TenantID, gateTime)
	}
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

	raw, reason, detail := g.bearerToken(r, cookieTok, queryTok)
	if reason != "" {
		return g.firstFailure(v, reason, detail)
	}
	id, verr := g.verifier.Verify(r.Context(), raw)
	v.who = id
	if verr != nil {
		return g.firstFailure(v, verr.Reason, verr.Detail)
	}
	v.identity = id
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

// bearerToken finds the token: the Authorization header, else the
// configured cookie or query parameter (already taken off the request by
// decide). It removes the header it used, so the end user's token never
// travels on to the upstream.
func (g *Gate) bearerToken(r *http.Request, cookieTok, queryTok string) (string, audit.Reason, string) {
	switch values := r.Header.Values("Authorization"); len(values) {
	case 0:
	case 1:
		scheme, tok, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", audit.ReasonMissingToken, "send the token as Authorization: Bearer <token>"
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return "", audit.ReasonMissingToken, "the Authorization header holds no token"
		}
		r.Header.Del("Authorization")
		return tok, "", ""
	default:
		return "", audit.ReasonMalformedToken, "send exactly one Authorization header"
	}
	if cookieTok != "" {
		return cookieTok, "", ""
	}
	if queryTok != "" {
		return queryTok, "", ""
	}
	return "", audit.ReasonMissingToken, "send a bearer token in the Authorization header"
}

// takeTokenCookie returns the value of the configured token cookie and
// removes every cookie of that name from the request; the other cookies are
// kept as sent.
func (g *Gate) takeTokenCookie(r *http.Request) string {
	if g.TokenCookie == "" || len(r.Header.Values("Cookie")) == 0 {
		return ""
	}
	var tok string
	if c, err := r.Cookie(g.TokenCookie); err == nil {
		tok = c.Value
	}
	var kept []string
	for _, line := range r.Header.Values("Cookie") {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if name, _, _ := strings.Cut(part, "="); part == "" || strings.TrimSpace(name) == g.TokenCookie {
				continue
			}
			kept = append(kept, part)
		}
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
	return tok
}

// takeTokenQuery returns the configured token query parameter and removes
// every copy of it from the request's query.
func (g *Gate) takeTokenQuery(r *http.Request) string {
	if g.TokenQuery == "" || r.URL.RawQuery == "" {
		return ""
	}
	q := r.URL.Query()
	if _, ok := q[g.TokenQuery]; !ok {
		return ""
	}
	tok := q.Get(g.TokenQuery)
	q.Del(g.TokenQuery)
	r.URL.RawQuery = q.Encode()
	return tok
}

// inject sets the identity headers and the signed assertion; the client's
// copies were deleted before (strip-before-inject).
func (g *Gate) inject(r *http.Request, repl *caddy.Replacer, id *verify.Identity, requestID string) error {
	now := time.Now()
	tok, err := g.signer.Sign(assertion.Claims{
		Issuer:   g.AssertionIssuer,
		Audience: g.AssertionAudience,
		Tenant:   id.Tenant,
		Subject:  id.Subject,
		Roles:    id.Roles,
		Method:   r.Method,
		Path:     r.URL.Path,
		IssuedAt: now,
		Expiry:   now.Add(assertion.MaxLifetime),
		ID:       requestID,
	})
	if err != nil {
		return err
	}
	roles := strings.Join(id.Roles, ",")
	r.Header.Set(HeaderTenantID, id.Tenant)
	r.Header.Set(HeaderUserID, id.Subject)
	r.Header.Set(HeaderUserRoles, roles)
	r.Header.Set(assertion.Header, tok)
	repl.Set("http.auth.tenant_id", id.Tenant)
	repl.Set("http.auth.user.id", id.Subject)
	repl.Set("http.auth.user.roles", roles)
	return nil
}
