package tenantgate

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tenantgate/tenantgate/module/audit"
)

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
//
// It also tells the gate when the connection switches protocols (101), so
// the audit record is written at the upgrade, not when the tunnel closes.
type requestIDWriter struct {
	caddyhttp.ResponseWriterWrapper // by value: one allocation per request, not two
	id                              string
	up                              *upgradeAudit // set only for a request asking to upgrade
}

func (w *requestIDWriter) WriteHeader(status int) {
	w.Header().Set(keyRequestID, w.id)
	w.ResponseWriterWrapper.WriteHeader(status)
	if status == http.StatusSwitchingProtocols && w.up != nil {
		w.up.switched()
	}
}

// upgradeAudit writes the audit record of a request whose connection
// switches protocols (a websocket) when the 101 is sent: the tunnel may stay
// open for hours, and a record written only when it closes is lost in a
// crash. It is made only for requests that carry Upgrade, so others pay
// nothing; WriteHeader runs on the handler's goroutine, so done needs no lock.
type upgradeAudit struct {
	g        *Gate
	rec      *audit.Record
	rw       caddyhttp.ResponseRecorder
	repl     *caddy.Replacer
	start    time.Time
	gateTime time.Duration
	done     bool
}

func (u *upgradeAudit) switched() {
	if u.done {
		return
	}
	u.done = true
	u.rec.Status = http.StatusSwitchingProtocols
	u.g.finishUpstream(u.rec, u.rw, u.repl)
	u.g.finish(u.rec, u.start, u.gateTime)
}

// recorded reports whether the upgrade already wrote the record.
func (w *requestIDWriter) recorded() bool { return w.up != nil && w.up.done }

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
	g.writeAudit(rec)
	// metrics is nil only where a test measures the gate without them.
	if g.metrics != nil {
		g.metrics.observe(rec.Decision, rec.Reason, rec.TenantID, gateTime)
	}
	g.binding.observe(rec.Binding, rec.Decision)
}
