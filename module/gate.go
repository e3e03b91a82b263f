// Package tenantgate is the Caddy glue of tenantgate: the tenant_gate HTTP
// handler, its Caddyfile directive, metrics and CLI subcommands. The logic
// it wires together lives in the pure-Go packages verify, rules, assertion
// and audit.
package tenantgate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/rules"
	"github.com/tenantgate/tenantgate/module/verify"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// Modes of operation.
const (
	ModeEnforce = "enforce"
	ModeReport  = "report"
)

// Issuer is one trusted token issuer: the verifier's own issuer config is
// the JSON (and the Caddyfile's issuer block fills it), so an issuer
// option is declared, defaulted and checked once, in module/verify.
type Issuer = verify.IssuerConfig

// Gate authenticates bearer JWTs, decides per route whether the caller may
// pass (deny by default), hands the upstream a signed identity assertion,
// and writes one audit record and metrics for every request.
type Gate struct {
	// The verifier's options (issuers, algorithms, the claims, leeway,
	// max_token_bytes), first in the JSON: verify.Settings declares them,
	// with their defaults and checks, and the verifier reads them as they are.
	verify.Settings

	// enforce (default) denies; report only records would_deny and lets requests through.
	Mode string `json:"mode,omitempty"`

	// Ed25519 private key (PKCS#8 PEM) that signs X-Tenant-Assertion. Required
	// unless assertion_alg is HS256.
	AssertionKey string `json:"assertion_key,omitempty"`

	// Algorithm of X-Tenant-Assertion: EdDSA (with assertion_key) or HS256
	// (with assertion_secret, cheaper to sign and verify). Default: EdDSA
	AssertionAlg string `json:"assertion_alg,omitempty"`

	// HS256 secret shared with the backend, at least 32 bytes; placeholders
	// such as {env.NAME} or {file./path} are expanded. Required with assertion_alg HS256.
	AssertionSecret string `json:"assertion_secret,omitempty"`

	// token_cache, the verifier's too (verify.CacheSettings), at its place in the JSON.
	verify.CacheSettings

	// aud of the assertion: the upstream's name. Default: backend
	AssertionAudience string `json:"assertion_audience,omitempty"`

	// iss of the assertion. Default: tenantgate
	AssertionIssuer string `json:"assertion_issuer,omitempty"`

	// Route rules, first match decides; a request no rule matches is denied (no_route).
	Rules []rules.Rule `json:"rules,omitempty"`

	// Extra client-supplied headers to strip on every request, besides the identity headers.
	StripHeaders []string `json:"strip_headers,omitempty"`

	// Also read the token from this cookie when no Authorization header is sent. Default: off
	TokenCookie string `json:"token_cookie,omitempty"`

	// Also read the token from this query parameter when no Authorization header is sent. Default: off
	TokenQuery string `json:"token_query,omitempty"`

	// Origins (scheme://host[:port]) whose cross-site requests may use the token cookie
	// with an unsafe method. Without one, such a request needs Sec-Fetch-Site same-origin
	// or none, else it is refused (csrf_suspected). Default: none
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// Realm in WWW-Authenticate. Default: tenantgate
	Realm string `json:"realm,omitempty"`

	// Most distinct tenant label values on metrics; the rest count as _other. Default: 1000
	MetricsMaxTenants int `json:"metrics_max_tenants,omitempty"`

	// dpop_public_url, dpop_max_age, dpop_algorithms, dpop_replay_cache:
	// the DPoP checker's options (verify/dpop's Config), at their place in the JSON.
	verify.DPoPConfig

	// Secret of at least 32 bytes keying the audit chain: every record then carries chain, seq
	// and mac (docs/audit.md); placeholders such as {file./path} or {env.NAME} are expanded. Default: no chain
	AuditChainKey string `json:"audit_chain_key,omitempty"`

	// Audit record format: native, or ocsf (OCSF 1.x API Activity, class 6003). Default: native
	AuditFormat string `json:"audit_format,omitempty"`

	// Networks (CIDRs, or single addresses) of the immediate peers whose
	// Client-Cert and Client-Cert-Chain headers (RFC 9440) are believed: a
	// TLS-terminating proxy that forwards the client's certificate. Caddy's
	// trusted_proxies alone never makes them believed. From such a peer,
	// only the header counts: without one the request has no client
	// certificate (the proxy's own TLS certificate never stands in). Default: none
	ClientCertFrom []string `json:"client_cert_from,omitempty"`

	// Revocation and the state replicas share (revocation.go).
	SharedState

	// verifier checks tokens; keys is the same verifier when the gate
	// made it (nil when a test injected a fake), for its key and cache
	// state and for Cleanup.
	verifier  tokenVerifier
	keys      *verify.Verifier
	starting  *startingVerifier // instead of keys with remote key sources (keystart.go)
	store     *verify.Store     // the process's verify state (processstate.go)
	certPeers certPeers
	// siteHosts are the host names of the server the gate sits in; without
	// dpop_public_url a DPoP proof passes only for one of them.
	siteHosts siteHosts
	// siteHandlesErrors: the server has handle_errors routes.
	siteHandlesErrors bool
	table             *rules.Table
	signer            *assertion.Signer
	strip             headerSet
	metrics           *gateMetrics
	binding           *bindingMetrics
	dpopAlgs          string // for DPoP challenges
	logger            *zap.Logger
	auditLog          *zap.Logger
	cancel            context.CancelFunc
	origins           map[string]struct{}
	// issuer names this instance holds key gauges for (released at Cleanup)
	heldIssuers []string
	// problems found while provisioning, reported by Validate all at once
	configErrs []error
	auditChain // the audit chain taken at Provision (auditsink.go)
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tenant_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision fills defaults, loads keys, compiles rules and starts the key
// refresher on a context that ends with this config.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	g.auditLog = ctx.Logger().Named("audit")
	g.setDefaults()

	table, warnings, err := rules.Compile(g.Rules)
	g.configErrs = nil
	if err != nil {
		g.configErrs = append(g.configErrs, err)
	}
	for _, w := range warnings {
		g.logger.Warn("rule can never match", zap.String("warning", w))
	}
	g.table = table

	if err := g.provisionSigner(); err != nil {
		g.configErrs = append(g.configErrs, err)
	}

	if err := g.provisionAudit(); err != nil {
		g.configErrs = append(g.configErrs, err)
	}
	g.holdRevocationSink()

	g.strip = newHeaderSet(g.StripHeaders)
	g.certPeers, _ = parseCertPeers(g.ClientCertFrom) // Validate reports what it could not read
	g.provisionSiteHosts(ctx)
	g.origins = map[string]struct{}{}
	for _, o := range g.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			g.configErrs = append(g.configErrs, fmt.Errorf("allowed_origins: %w", err))
		}
		g.origins[strings.ToLower(o)] = struct{}{}
	}

	g.metrics, err = newGateMetrics(ctx.GetMetricsRegistry(), g.MetricsMaxTenants)
	if err != nil {
		return err
	}
	if g.binding, err = newBindingMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}

	// verify.New checks cfg (Config.Validate, once) and loads the keys;
	// what it finds, Validate reports together with every other problem.
	cfg := g.verifyConfig()
	if err := g.provisionRevocations(ctx, cfg.EffectiveLeeway()); err != nil {
		return err
	}
	// Key sets, the replay set and cache sizes belong to the process: the
	// verify store of the process state (processstate.go), shared by every
	// config through the pool (a reload provisions the new config before
	// cleaning up the old one, so it never empties).
	g.store = g.revocations.verify
	cfg.Store = g.store
	cfg.SharedReplay = g.sharedReplayHook()
	g.provisionNonces()
	cfg.DPoPNonces = g.nonceSource()
	// The key refreshers stop when this config is unloaded (reload or stop):
	// their context is derived from Caddy's.
	vctx, cancel := context.WithCancel(ctx)
	g.cancel = cancel
	if hasRemoteKeys(cfg) {
		// Fetches start when the config runs (keystart.go).
		sv, err := g.provisionDeferred(ctx, vctx, cfg)
		if err != nil {
			cancel()
			g.configErrs = append(g.configErrs, err)
			return nil
		}
		g.starting, g.verifier = sv, sv
		g.dpopAlgs = sv.check.DPoPAlgorithms()
	} else {
		g.keys, err = verify.New(vctx, cfg)
		if err != nil {
			cancel()
			g.configErrs = append(g.configErrs, err)
			return nil
		}
		g.verifier = g.keys
		g.dpopAlgs = g.keys.DPoPAlgorithms()
	}
	for _, is := range g.Issuers {
		g.heldIssuers = append(g.heldIssuers, is.Issuer)
	}
	if g.metrics != nil {
		g.metrics.holdIssuers(g.heldIssuers)
	}
	return nil
}

// provisionSigner makes the assertion signer that assertion_alg names.
func (g *Gate) provisionSigner() error {
	var err error
	switch g.AssertionAlg {
	case assertion.AlgEdDSA:
		if g.AssertionSecret != "" {
			return errors.New("assertion_secret is for assertion_alg HS256; EdDSA assertions are signed with assertion_key")
		}
		if g.AssertionKey == "" {
			return errors.New("assertion_key is required: the Ed25519 PKCS#8 PEM key that signs X-Tenant-Assertion (or assertion_alg HS256 with assertion_secret)")
		}
		key, err := assertion.LoadPrivateKeyPEM(g.AssertionKey)
		if err == nil {
			g.signer, err = assertion.NewEd25519Signer(key)
		}
		if err != nil {
			return fmt.Errorf("assertion_key: %w", err)
		}
	case assertion.AlgHS256:
		if g.AssertionKey != "" {
			return errors.New("assertion_key is for assertion_alg EdDSA; HS256 assertions are signed with assertion_secret")
		}
		secret := caddy.NewReplacer().ReplaceKnown(g.AssertionSecret, "")
		if secret == "" {
			return errors.New("assertion_secret is required with assertion_alg HS256: at least 32 bytes, e.g. {env.TENANTGATE_ASSERTION_SECRET}")
		}
		if g.signer, err = assertion.NewHMACSigner([]byte(secret)); err != nil {
			return fmt.Errorf("assertion_secret: %w", err)
		}
	}
	return nil // another assertion_alg: checkOptions reports it
}

// Validate reports every problem at once: those Provision met (rules,
// keys, the verifier's own checks, the assertion signer) and the gate's
// option checks, the same checkOptions the Caddyfile parser runs to name
// each problem's line.
func (g *Gate) Validate() error {
	problems := append([]error(nil), g.configErrs...)
	problems = append(problems, g.checkOptions()...)
	if err := g.validateSharedState(); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// Cleanup stops the key refreshers of this config and gives back its
// reference on the process state.
func (g *Gate) Cleanup() error {
	g.releaseRevocationSink()
	g.cleanupAudit()
	if g.cancel != nil {
		g.cancel()
	}
	if g.keys != nil {
		g.keys.Close()
	}
	if g.starting != nil {
		g.starting.close()
	}
	if g.metrics != nil && g.heldIssuers != nil {
		g.metrics.releaseIssuers(g.heldIssuers)
		g.heldIssuers = nil
	}
	// Last: the verifier above no longer uses the process state's stores.
	g.store = nil
	g.cleanupRevocations()
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddy.Validator             = (*Gate)(nil)
	_ caddy.CleanerUpper          = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
	_ caddyfile.Unmarshaler       = (*Gate)(nil)
)
