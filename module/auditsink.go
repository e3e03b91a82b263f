package tenantgate

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/module/audit"
)

// chainPool holds the process's audit chains, one per key (and logger),
// shared by every tenant_gate block and every config that use the key: a
// reload provisions the new config (count +1) before it cleans up the old
// one (count -1), so the chain and its seq carry on. When the last user
// goes (the process stops, or a reload drops the key) the destructor
// writes the closing record.
var chainPool = caddy.NewUsagePool()

type chainHolder struct{ *audit.Chain }

// auditChain is the Gate's hold on its chain (nil without audit_chain_key).
type auditChain struct {
	chain        *audit.Chain
	chainPoolKey string
}

func (h chainHolder) Destruct() error {
	why := audit.ChainEndReconfigured
	if caddy.Exiting() {
		why = audit.ChainEndShutdown
	}
	h.Close(why)
	return nil
}

// resolveChainKey expands placeholders in audit_chain_key and checks it.
func resolveChainKey(raw string) ([]byte, error) {
	key := caddy.NewReplacer().ReplaceKnown(raw, "")
	if key == "" {
		return nil, errors.New("audit_chain_key resolves to nothing (an unset {env.…} or an unreadable {file.…}?)")
	}
	if len(key) < audit.MinChainKeyBytes {
		return nil, fmt.Errorf("audit_chain_key is %d bytes: at least %d are required (e.g. {file./etc/tenantgate/audit.key} holding `openssl rand -base64 48`)",
			len(key), audit.MinChainKeyBytes)
	}
	return []byte(key), nil
}

// provisionAudit sets up the audit format and, with audit_chain_key, takes
// the process's chain for that key.
func (g *Gate) provisionAudit() error {
	switch audit.Format(g.AuditFormat) {
	case "":
		g.AuditFormat = string(audit.FormatNative)
	case audit.FormatNative, audit.FormatOCSF:
	default:
		return fmt.Errorf("audit_format %q: want native or ocsf", g.AuditFormat)
	}
	if g.AuditChainKey == "" {
		return nil
	}
	key, err := resolveChainKey(g.AuditChainKey)
	if err != nil {
		return err
	}
	poolKey := audit.KeyFingerprint(key) + "|" + audit.LoggerName
	v, _, err := chainPool.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		c, err := audit.NewChain(key)
		return chainHolder{c}, err
	})
	if err != nil {
		return fmt.Errorf("audit_chain_key: %w", err)
	}
	g.chain, g.chainPoolKey = v.(chainHolder).Chain, poolKey
	return nil
}

// cleanupAudit lets go of the chain and, when the process stops, flushes
// the buffered audit writers after the closing record went in. g keeps its
// chain: a request of this config still running (a stream past the grace
// period) is still recorded; after a closing record it starts a new chain,
// which verify then reports as open.
func (g *Gate) cleanupAudit() {
	if g.chainPoolKey != "" {
		_, _ = chainPool.Delete(g.chainPoolKey)
		g.chainPoolKey = ""
	}
	if caddy.Exiting() {
		flushAuditBuffers()
	}
}

// writeAudit writes the request's one record: chained when a key is set,
// in the configured format; and tells the request's span why.
func (g *Gate) writeAudit(rec *audit.Record) {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	annotateSpan(rec)
	m := rec.Marshaler(audit.Format(g.AuditFormat))
	if g.chain != nil {
		g.chain.Write(g.auditLog, "request", m)
		return
	}
	audit.WriteAs(g.auditLog, m)
}

// traceRecord ties the record to the request's span when Caddy's tracing
// handler runs before the gate: the record carries its trace id, and the
// span gets the decision when the record is written.
func traceRecord(r *http.Request, rec *audit.Record) {
	span := trace.SpanFromContext(r.Context())
	if sc := span.SpanContext(); sc.IsValid() {
		rec.Span, rec.TraceID = span, sc.TraceID().String()
	}
}

// annotateSpan sets the tenantgate.* attributes on the request's span.
func annotateSpan(rec *audit.Record) {
	if rec.Span == nil || !rec.Span.IsRecording() {
		return
	}
	rec.Span.SetAttributes(
		attribute.String("tenantgate.decision", string(rec.Decision)),
		attribute.String("tenantgate.reason", string(rec.Reason)),
		attribute.String("tenantgate.tenant", rec.TenantID),
		attribute.String("tenantgate.route", rec.Route),
		attribute.String("tenantgate.issuer", rec.Issuer),
		attribute.String("tenantgate.binding", rec.Binding),
	)
}

// parseAuditOption reads audit_chain_key and audit_format. The key is
// resolved here too, so `caddy validate` names the line of a key that is
// too short or a placeholder that resolves to nothing.
func parseAuditOption(d *caddyfile.Dispenser, g *Gate) error {
	switch d.Val() {
	case "audit_chain_key":
		if err := oneArg(d, &g.AuditChainKey); err != nil {
			return err
		}
		if _, err := resolveChainKey(g.AuditChainKey); err != nil {
			return d.Err(err.Error())
		}
	default:
		if err := oneArg(d, &g.AuditFormat); err != nil {
			return err
		}
		if f := audit.Format(g.AuditFormat); f != audit.FormatNative && f != audit.FormatOCSF {
			return d.Errf("audit_format %q: want native or ocsf", g.AuditFormat)
		}
	}
	return nil
}
