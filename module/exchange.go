package tenantgate

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/audit"
)

// maxClientRequestID bounds the client's X-Request-ID copied into the audit
// record, so a client cannot bloat the trail.
const maxClientRequestID = 128

// StatusClientClosedRequest is the status the audit trail records when the
// client went away before the response was complete. No standard code
// exists; 499 is nginx's, and Caddy's reverse_proxy and access log use it too.
const StatusClientClosedRequest = 499

// exchange is one request through the gate. begin sanitises the request and
// takes its credential off it; the gate decides (reading only); the
// exchange then denies, or injects the identity and forwards; finish writes
// the one audit record and the metrics, exactly once on every path (deny,
// allow, a 101 upgrade, a panic, a later handler's refusal, an error of
// next). It is one allocation per request: the record, the response
// writers and the rate limiter's outcome live inside it.
type exchange struct {
	g     *Gate
	r     *http.Request
	w     http.ResponseWriter
	repl  *caddy.Replacer
	start time.Time
	// gateTime is the gate's own share of the request (metrics), fixed when
	// the request is forwarded.
	gateTime time.Duration
	rec      audit.Record
	cred     credential
	dpop     bool   // the token came as Authorization: DPoP (for challenges)
	nonce    string // the DPoP-Nonce offered on a passed request (dpop_nonce.go)
	// outcome is what a later handler (tenant_rate_limit) tells the gate.
	outcome  audit.Outcome
	octx     audit.OutcomeContext
	idw      requestIDWriter
	rw       caddyhttp.ResponseRecorder // nil until forwarded
	finished bool
	// hv backs the values of the headers the gate sets (hv* indexes), so
	// setting one allocates no []string of its own. Each header gets a
	// one-element slice with cap 1: an append by a later handler copies.
	hv [hvCount]string
	// auth answers the {http.auth.*} placeholders (authPlaceholder): set
	// lazily instead of boxing four values into the replacer per request.
	auth struct {
		binding                string
		injected               bool
		tenant, subject, roles string
	}
}

// Indexes into exchange.hv.
const (
	hvRequestID  = iota // X-Request-ID toward the upstream
	hvResponseID        // X-Request-ID toward the client
	hvTenant
	hvUser
	hvRoles
	hvAssertion
	hvCount
)

// setHeader sets h[key] (key in canonical form) to v, backed by x.hv[i].
func (x *exchange) setHeader(h http.Header, key string, i int, v string) {
	x.hv[i] = v
	h[key] = x.hv[i : i+1 : i+1]
}

// begin starts the exchange: it strips every client-supplied identity,
// credential and client-certificate header (every spelling, every copy),
// takes the token off the request on every route, and makes the gate's
// request id the only one the upstream and the client see.
func (g *Gate) begin(w http.ResponseWriter, r *http.Request) *exchange {
	x := &exchange{g: g, r: r, w: w, start: time.Now()}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	x.repl = repl
	// The request id is Caddy's {http.request.uuid} (a contract: Caddy's
	// access log carries it too); the client IP is read from the vars
	// directly, not through the replacer's provider chain.
	requestID, _ := repl.GetString("http.request.uuid")
	clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	x.rec = audit.Record{
		RequestID: requestID,
		Method:    r.Method,
		Path:      r.URL.EscapedPath(),
		RemoteIP:  clientIP,
	}
	traceRecord(r, &x.rec)
	x.sanitise()
	// Echo our request id to the client, so a support ticket can quote it.
	x.setHeader(w.Header(), keyRequestID, hvResponseID, requestID)
	return x
}

// sanitise takes what the request carried to prove who it is and strips
// every header the gate owns.
func (x *exchange) sanitise() {
	g, r, h := x.g, x.r, x.r.Header
	// The client's request id is kept for correlation only.
	if v := h.Get(keyRequestID); v != "" {
		if len(v) > maxClientRequestID {
			v = v[:maxClientRequestID]
		}
		x.rec.ClientRequestID = v
	}
	x.cred = g.takeCredential(r)
	if proofs, ok := h[keyDPoP]; ok {
		x.cred.dpop = http.Header{keyDPoP: proofs}
	}
	var cert, chain []string
	believed := g.certPeers.trusts(r)
	if believed {
		cert, chain = h[keyClientCert], h[keyClientCertChain]
		x.cred.clientCert = parseClientCert(cert)
	}
	g.strip.strip(h)
	if believed {
		// What a client_cert_from proxy sent, in its one canonical spelling.
		if len(cert) > 0 {
			h[keyClientCert] = cert
		}
		if len(chain) > 0 {
			h[keyClientCertChain] = chain
		}
	}
	if r.Trailer != nil {
		// Declared trailers get their values only when the body is read to
		// its end, which reverse_proxy does after the gate ran: strip again then.
		g.strip.strip(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, set: g.strip}
	}
}

// admit records the verdict and either answers the denial (false) or puts
// the verified identity on the request (true: forward it).
func (x *exchange) admit(v verdict) bool {
	rec := &x.rec
	rec.Route, rec.Reason, rec.Binding = v.route, v.reason, v.binding
	x.dpop = v.dpop
	if v.binding != "" {
		x.auth.binding = v.binding
		x.repl.Map(x.authPlaceholder)
	}
	if id := v.identity; id != nil {
		rec.TenantID, rec.UserID, rec.Issuer, rec.TokenID = id.Tenant, id.Subject, id.Issuer, id.TokenID
	}
	switch {
	case v.reason == audit.ReasonPublic:
		rec.Decision = audit.DecisionPublic
	case v.reason == audit.ReasonOK:
		rec.Decision = audit.DecisionAllow
	case x.g.Mode == ModeReport && v.reason != audit.ReasonBadPath:
		// Shadow mode: record what enforce would have done, then let it pass.
		rec.Decision = audit.DecisionWouldDeny
	default:
		rec.Decision = audit.DecisionDeny
		rec.Status = x.g.writeProblem(x.w, v.reason, v.detail, rec.RequestID, v.dpop, v.retryAfter)
		return false
	}
	x.offerNonce(v.reason)
	if v.reason != audit.ReasonPublic && v.verified && v.identity.Tenant != "" {
		if err := x.inject(v.identity); err != nil {
			x.g.logger.Error("signing the identity assertion failed", zap.Error(err))
			rec.Decision, rec.Reason = audit.DecisionDeny, audit.ReasonInternal
			rec.Status = x.g.writeProblem(x.w, audit.ReasonInternal, "the gate could not sign the identity assertion", rec.RequestID, v.dpop, 0)
			return false
		}
	}
	return true
}

// forward calls the rest of the chain with the request the gate admitted.
// A later handler reports its own refusal through the audit.Outcome in the
// request's context.
func (x *exchange) forward(next caddyhttp.Handler) error {
	x.setHeader(x.r.Header, keyRequestID, hvRequestID, x.rec.RequestID)
	x.gateTime = time.Since(x.start)
	x.idw = requestIDWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: x.w}, x: x}
	x.rw = caddyhttp.NewResponseRecorder(&x.idw, nil, nil)
	x.octx = audit.OutcomeContext{Context: x.r.Context(), Outcome: &x.outcome}
	r := x.r.WithContext(&x.octx)
	err := next.ServeHTTP(x.rw, r)
	if x.finished { // recorded at the 101
		return err
	}
	if err != nil {
		return x.failed(err)
	}
	x.rec.Status = x.rw.Status()
	if x.rec.Status == 0 {
		x.rec.Status = http.StatusOK
	}
	return nil
}

// failed handles an error a later handler returned. When nothing reached
// the client yet, the gate answers it as problem+json with the error's
// status (request_body's 413, reverse_proxy's 502, ...), like every other
// answer of the gate, unless the site has handle_errors routes to answer
// it. The error goes back to Caddy either way, so its error log and
// handle_errors still see it (Caddy then only repeats the status line,
// which net/http ignores once the header is written).
func (x *exchange) failed(err error) error {
	status := http.StatusInternalServerError
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
	}
	x.rec.Status = status
	if x.rw.Status() == 0 && !x.g.siteHandlesErrors {
		writeStatusProblem(x.rw, status, x.rec.RequestID)
	}
	return err
}

// end is deferred by ServeHTTP: it finishes the exchange, also when a
// handler panics (the record is written, then the panic goes on: a trail
// that loses failures is worse than none).
func (x *exchange) end() {
	if p := recover(); p != nil {
		if !x.finished {
			x.rec.Status = x.abortedStatus(p)
		}
		x.finish()
		panic(p)
	}
	x.finish()
}

// abortedStatus names the status of a request whose handler chain panicked.
// reverse_proxy panics with http.ErrAbortHandler when it cannot finish
// streaming a response whose header it already sent: either the client
// disconnected (its context is done: 499), or the upstream broke off
// mid-body (502: the client got the upstream's header and a truncated
// body). Any other panic is the gate's or a handler's failure: 500.
func (x *exchange) abortedStatus(p any) int {
	if x.r.Context().Err() != nil {
		return StatusClientClosedRequest
	}
	if p == http.ErrAbortHandler && x.rw != nil && x.rw.Status() != 0 {
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// finish writes the request's one audit record and its metrics; later
// calls do nothing.
func (x *exchange) finish() {
	if x.finished {
		return
	}
	x.finished = true
	rec, g := &x.rec, x.g
	if reason := x.outcome.Denied(); reason != "" {
		// tenant_rate_limit answered the request itself (429 or 503).
		rec.Decision, rec.Reason = audit.DecisionDeny, reason
	}
	if x.rw != nil {
		if v, ok := x.repl.Get("http.reverse_proxy.status_code"); ok {
			if code, ok := v.(int); ok {
				rec.UpstreamStatus = code
			}
		}
		if rec.Status == 0 {
			rec.Status = x.rw.Status()
		}
	}
	// One clock read ends the request: its duration, the gate's share when
	// it never forwarded, and the record's time.
	end := time.Now()
	took := end.Sub(x.start)
	if x.gateTime == 0 {
		x.gateTime = took
	}
	rec.DurationMS = float64(took.Microseconds()) / 1000
	rec.Time = end
	g.writeAudit(rec)
	// metrics is nil only where a test measures the gate without them.
	if g.metrics != nil {
		g.metrics.observe(rec.Decision, rec.Reason, rec.TenantID, x.gateTime)
	}
	g.binding.observe(rec.Binding, rec.Decision)
}

// requestIDWriter makes the gate's request id the only X-Request-ID of the
// response. reverse_proxy adds the upstream's response headers to the ones
// already set, so an upstream that echoes the id (as the backend does)
// would otherwise give the client the header twice.
//
// It also finishes the exchange when the connection switches protocols
// (101): the tunnel may stay open for hours, and a record written only when
// it closes is lost in a crash. WriteHeader runs on the handler's
// goroutine, so finished needs no lock.
type requestIDWriter struct {
	caddyhttp.ResponseWriterWrapper // by value: no allocation of its own
	x                               *exchange
}

func (w *requestIDWriter) WriteHeader(status int) {
	w.x.setHeader(w.Header(), keyRequestID, hvResponseID, w.x.rec.RequestID)
	w.x.keepNonce(w.Header())
	w.ResponseWriterWrapper.WriteHeader(status)
	if status == http.StatusSwitchingProtocols {
		w.x.rec.Status = http.StatusSwitchingProtocols
		w.x.finish()
	}
}
