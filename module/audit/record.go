package audit

import (
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Decision is the outcome of the gate for one request.
type Decision string

// Decisions. would_deny is a denial the gate only recorded (mode report).
const (
	DecisionAllow     Decision = "allow"
	DecisionDeny      Decision = "deny"
	DecisionWouldDeny Decision = "would_deny"
	DecisionPublic    Decision = "public"
)

// LoggerName is the zap logger the audit trail is written to; operators
// route it with Caddy's `log` global option (`include` / `exclude`).
const LoggerName = "http.handlers.tenant_gate.audit"

// Record is one audit entry. It never holds a token, a signature or a key:
// only identifiers the gate extracted after verification.
type Record struct {
	RequestID       string
	ClientRequestID string // X-Request-ID as the client sent it; informational, never trusted
	TenantID        string
	UserID          string
	Issuer          string
	TokenID         string // jti
	Method          string
	Path            string
	Route           string // the deciding rule's pattern, "" when none matched
	Decision        Decision
	Reason          Reason
	Status          int // what the client got
	UpstreamStatus  int // what the upstream answered; 0 when it was not called
	DurationMS      float64
	RemoteIP        string
	Binding         string // proof of possession checked: dpop, mtls, bearer; "" when no token was presented
	TraceID         string // the request's trace id when Caddy's tracing is on

	// Time is when the record was finished; the OCSF form writes it (the
	// native form has the logger's ts). Set by the sink if zero.
	Time time.Time
	// Span is the request's tracing span (nil or a no-op span when tracing
	// is off); the gate annotates it with the decision when it finishes.
	Span trace.Span
}

// MarshalLogObject writes the record's fields with zap's typed encoder, so a
// record costs no reflection and no intermediate map.
func (r *Record) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("request_id", r.RequestID)
	if r.ClientRequestID != "" {
		enc.AddString("client_request_id", r.ClientRequestID)
	}
	enc.AddString("tenant_id", r.TenantID)
	enc.AddString("user_id", r.UserID)
	enc.AddString("issuer", r.Issuer)
	enc.AddString("token_id", r.TokenID)
	enc.AddString("method", r.Method)
	enc.AddString("path", r.Path)
	enc.AddString("route", r.Route)
	enc.AddString("decision", string(r.Decision))
	enc.AddString("reason", string(r.Reason))
	enc.AddInt("status", r.Status)
	enc.AddInt("upstream_status", r.UpstreamStatus)
	enc.AddFloat64("duration_ms", r.DurationMS)
	enc.AddString("remote_ip", r.RemoteIP)
	enc.AddString("binding", r.Binding)
	if r.TraceID != "" {
		enc.AddString("trace_id", r.TraceID)
	}
	return nil
}

// Write logs the record at INFO on l; the fields sit at the top level of the
// JSON line so that `jq .tenant_id` works on the file.
func Write(l *zap.Logger, r *Record) { WriteAs(l, r) }

// WriteAs logs a record in either format (Record.Marshaler), unchained.
func WriteAs(l *zap.Logger, m zapcore.ObjectMarshaler) {
	if ce := l.Check(zapcore.InfoLevel, "request"); ce != nil {
		ce.Write(zap.Inline(m))
	}
}
