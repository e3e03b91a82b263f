// Package ratelimit is the Caddy glue of tenant_rate_limit: the
// http.handlers.tenant_rate_limit handler and its Caddyfile directive. It
// limits requests per tenant that tenant_gate verified; the limits, stores
// and header values live in the pure package limiter.
//
// It does not import package tenantgate (module/): it hands the outcome of
// a request it refuses to the gate through the audit.Outcome the gate put in
// the request's context.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/ratelimit/limiter"
	"github.com/tenantgate/tenantgate/module/rules"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// What to do when the store does not answer in time.
const (
	OnStoreErrorAllow = "allow"
	OnStoreErrorDeny  = "deny"
)

// DefaultTimeout bounds the store's answer per request.
const DefaultTimeout = 50 * time.Millisecond

// Handler limits requests per verified tenant: every `limit` a request
// matches counts it against that tenant's own counter, and the first limit
// it exceeds answers 429. Requests without a tenant pass untouched.
type Handler struct {
	// Store URL (redis://, rediss:// or unix://) shared by every gate
	// replica. Default: none, each process counts in its own memory.
	Store string `json:"store,omitempty"`

	// Limits, each applied with its own counter per tenant.
	Limits []limiter.Limit `json:"limits,omitempty"`

	// allow (default) lets a request through when the store fails; deny answers 503 rate_limit_unavailable.
	OnStoreError string `json:"on_store_error,omitempty"`

	// Longest wait for the store per request. Default: 50ms
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Prefix of every Redis key. Default: tenantgate:
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Tenants held at once by the memory store. Default: 10000
	MaxTenants int `json:"max_tenants,omitempty"`

	set        *limiter.Set
	store      limiter.Store
	remote     bool // the store is Redis
	logger     *zap.Logger
	metrics    *metrics
	lastWarn   *atomic.Int64 // unix nanoseconds of the last store-error log line
	configErrs []error
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tenant_rate_limit",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision compiles the limits and opens the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.lastWarn = new(atomic.Int64)
	if h.OnStoreError == "" {
		h.OnStoreError = OnStoreErrorAllow
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(DefaultTimeout)
	}
	if h.KeyPrefix == "" {
		h.KeyPrefix = limiter.DefaultKeyPrefix
	}
	if h.MaxTenants == 0 {
		h.MaxTenants = limiter.DefaultMaxTenants
	}
	var err error
	h.metrics, err = newMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	h.configErrs = nil
	h.set, err = limiter.Compile(h.Limits)
	if err != nil {
		h.configErrs = append(h.configErrs, err)
		return nil
	}
	if len(h.Limits) == 0 {
		h.configErrs = append(h.configErrs, errors.New("no limits: add at least one `limit METHODS PATTERN RATE [burst N]`"))
		return nil
	}
	var store limiter.Store
	if h.Store == "" {
		store, err = limiter.NewMemory(h.set, h.MaxTenants, h.metrics.tenantsHeld)
	} else {
		url := caddy.NewReplacer().ReplaceKnown(h.Store, "")
		store, err = limiter.NewRedis(url, time.Duration(h.Timeout), h.KeyPrefix)
		h.remote = true
	}
	if err != nil {
		h.configErrs = append(h.configErrs, err)
		return nil
	}
	h.store = store
	return nil
}

// Validate reports every configuration problem at once.
func (h *Handler) Validate() error {
	problems := append([]error(nil), h.configErrs...)
	if h.OnStoreError != OnStoreErrorAllow && h.OnStoreError != OnStoreErrorDeny {
		problems = append(problems, fmt.Errorf("on_store_error %q: want allow or deny", h.OnStoreError))
	}
	if h.Timeout < 0 {
		problems = append(problems, fmt.Errorf("timeout %s: must be positive", time.Duration(h.Timeout)))
	}
	if h.MaxTenants < 0 {
		problems = append(problems, fmt.Errorf("max_tenants %d: must be positive", h.MaxTenants))
	}
	if len(problems) > 0 {
		return fmt.Errorf("tenant_rate_limit: %w", errors.Join(problems...))
	}
	return nil
}

// Cleanup closes the store of this config.
func (h *Handler) Cleanup() error {
	if h.store != nil {
		return h.store.Close()
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return next.ServeHTTP(w, r)
	}
	tenant, _ := repl.GetString("http.auth.tenant_id")
	if tenant == "" {
		return next.ServeHTTP(w, r)
	}
	// tenant_gate already refused paths that are not canonical.
	path, err := rules.CheckPath(r.URL.EscapedPath())
	if err != nil {
		return next.ServeHTTP(w, r)
	}
	var matchBuf [4]*limiter.Policy
	matched := h.set.Match(r.Method, path, matchBuf[:0])
	if len(matched) == 0 {
		return next.ServeHTTP(w, r)
	}

	// Only a store across the network needs a deadline; the memory store
	// never waits.
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if h.remote {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(h.Timeout))
	}
	var checkedBuf [4]limiter.Checked
	checked := checkedBuf[:0]
	for _, p := range matched {
		res, err := h.store.Allow(ctx, tenant, p)
		if err != nil {
			h.metrics.storeErrors.Inc()
			h.warnStoreError(err)
			if h.OnStoreError == OnStoreErrorDeny {
				cancel()
				return h.deny(w, r, repl, audit.ReasonRateLimitUnavailable, nil,
					"the rate limit store did not answer in time; retry shortly")
			}
			continue // allow: this limit is not enforced for this request
		}
		checked = append(checked, limiter.Checked{Policy: p, Result: res})
		if !res.Allowed {
			cancel()
			return h.deny(w, r, repl, audit.ReasonRateLimited, checked,
				fmt.Sprintf("tenant %s is over the limit %s; retry after %d s", tenant, p, limiter.CeilSeconds(res.RetryAfter)))
		}
	}
	cancel()
	if len(checked) > 0 {
		hdr := w.Header()
		hdr.Set(limiter.HeaderPolicy, limiter.PolicyHeader(checked))
		hdr.Set(limiter.HeaderRateLimit, limiter.RateLimitHeader(checked))
	}
	return next.ServeHTTP(w, r)
}

// deny answers the request itself and tells tenant_gate why, so the gate's
// one audit record says deny with this reason and status.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, reason audit.Reason, checked []limiter.Checked, detail string) error {
	audit.OutcomeFrom(r.Context()).Deny(reason)
	hdr := w.Header()
	retry := int64(1)
	if len(checked) > 0 {
		last := checked[len(checked)-1].Result
		retry = max(limiter.CeilSeconds(last.RetryAfter), 1)
		hdr.Set(limiter.HeaderPolicy, limiter.PolicyHeader(checked))
		hdr.Set(limiter.HeaderRateLimit, limiter.RateLimitHeader(checked))
	}
	hdr.Set("Retry-After", strconv.FormatInt(retry, 10))
	requestID, _ := repl.GetString("http.request.uuid")
	writeProblem(w, reason, detail, requestID)
	return nil
}

// warnStoreError logs store failures at most once a second: during an
// outage every request fails the same way.
func (h *Handler) warnStoreError(err error) {
	now := time.Now().UnixNano()
	last := h.lastWarn.Load()
	if now-last < int64(time.Second) || !h.lastWarn.CompareAndSwap(last, now) {
		return
	}
	if ce := h.logger.Check(zapcore.WarnLevel, "rate limit store failed"); ce != nil {
		ce.Write(zap.Error(err), zap.String("on_store_error", h.OnStoreError))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
