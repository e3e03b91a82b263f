package tenantgate

import (
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/revocation"
)

// Revocations are audited on the same logger and through the same chain as
// requests (audit_chain_key): a revocation line is a link of the chain like
// any request record, so deleting or editing one breaks `caddy tenant-gate
// audit verify`. They are written in the native form whatever
// audit_format says (OCSF has no class for them).

// revocationSink is one gate's audit logger and chain.
type revocationSink struct {
	log   *zap.Logger
	chain *audit.Chain // nil without audit_chain_key
}

func (s *revocationSink) write(msg string, m zapcore.ObjectMarshaler) {
	if s.chain != nil {
		s.chain.Write(s.log, msg, m)
		return
	}
	if ce := s.log.Check(zapcore.InfoLevel, msg); ce != nil {
		ce.Write(zap.Inline(m))
	}
}

// revocationSinks are the sinks of the live gates, newest last. The admin
// API belongs to the process, not to a gate: its lines go to the newest
// live gate's logger and chain (a reload provisions the new config before
// cleaning up the old one, so there is always one while a gate runs).
var revocationSinks struct {
	mu   sync.Mutex
	list []*revocationSink
}

// holdRevocationSink registers g's sink (Provision, after the chain is
// taken); releaseRevocationSink removes it (Cleanup).
func (g *Gate) holdRevocationSink() {
	g.receivers.sink = &revocationSink{log: g.auditLog, chain: g.chain}
	revocationSinks.mu.Lock()
	revocationSinks.list = append(revocationSinks.list, g.receivers.sink)
	revocationSinks.mu.Unlock()
}

func (g *Gate) releaseRevocationSink() {
	revocationSinks.mu.Lock()
	defer revocationSinks.mu.Unlock()
	revocationSinks.list = slices.DeleteFunc(revocationSinks.list, func(s *revocationSink) bool { return s == g.receivers.sink })
}

// processRevocationSink is the newest live gate's sink; without a gate,
// Caddy's default logger under the audit logger's name.
func processRevocationSink() *revocationSink {
	revocationSinks.mu.Lock()
	defer revocationSinks.mu.Unlock()
	if n := len(revocationSinks.list); n > 0 {
		return revocationSinks.list[n-1]
	}
	return &revocationSink{log: caddy.Log().Named(audit.LoggerName)}
}

// logRevocation writes who revoked what, and from where, for the admin API.
func logRevocation(e revocation.Entry, shared bool, remote string) {
	processRevocationSink().write("revocation", &revocationRecord{e: e, shared: shared, remote: remote})
}

// revocationRecord is the audit line of one revocation entry.
type revocationRecord struct {
	e      revocation.Entry
	shared bool
	remote string
	// tokenID is the jti of the logout token or SET that asked for it.
	tokenID string
}

func (r *revocationRecord) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("event", "revocation")
	enc.AddString("revocation_id", r.e.ID)
	enc.AddString("kind", r.e.Kind)
	enc.AddString("jti", r.e.JTI)
	enc.AddString("sub", r.e.Sub)
	enc.AddString("tenant_id", r.e.Tenant)
	enc.AddString("sid", r.e.Sid)
	enc.AddString("issuer", r.e.Iss)
	enc.AddString("before", r.e.Before.UTC().Format(time.RFC3339Nano))
	enc.AddString("revocation_reason", r.e.Reason)
	enc.AddString("source", r.e.Source)
	if r.tokenID != "" {
		enc.AddString("token_id", r.tokenID)
	}
	enc.AddString("remote_ip", r.remote)
	enc.AddBool("shared", r.shared)
	return nil
}

// receiverRecord is the audit line of a receiver request that revoked
// nothing: refused (refusal set), or a valid SET whose events the gate
// does not act on.
type receiverRecord struct {
	event, source, issuer, tokenID, remote string
	refusal, detail                        string
	status                                 int
	eventTypes                             []string
}

func (r *receiverRecord) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("event", r.event)
	enc.AddString("source", r.source)
	enc.AddString("issuer", r.issuer)
	enc.AddString("token_id", r.tokenID)
	enc.AddString("remote_ip", r.remote)
	enc.AddInt("status", r.status)
	if r.refusal != "" {
		enc.AddString("refusal", r.refusal)
		enc.AddString("detail", r.detail)
	}
	if len(r.eventTypes) > 0 {
		return enc.AddArray("event_types", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
			for _, t := range r.eventTypes {
				a.AppendString(t)
			}
			return nil
		}))
	}
	return nil
}
