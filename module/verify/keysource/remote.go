package keysource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// Remote is one config's handle on a remote key set: a JWKS URL, or the
// jwks_uri of a discovery document. The set itself, its schedule and its
// refetch bound live in the process's Feeds (feeds.go), shared by every
// config naming the same issuer and URL, so keys outlive a reload.
// jwk.Cache is not used because we need to validate the whole set before
// swapping it in (and keep the last good set otherwise), report every
// outcome, and share one rate-limited refetch between all requests that
// carry an unknown kid.
type Remote struct {
	spec     Spec // Issuer and URLs; the interval is conf's
	conf     *atomic.Pointer[sourceConf]
	feeds    *Feeds
	feed     *keyFeed
	onReport keyReporter // where refresh outcomes go; nil: the Observer, under the issuer

	closeOnce sync.Once
}

// sourceConf is what a source's fetches follow that a reload may change:
// the client, logger and observer, the refresh interval and refetch gap of
// the newest config. A plain issuer's source has its own; every tenant of
// a multi-tenant issuer shares its pool's, so a reload updates them all at
// once, without a new source per tenant.
type sourceConf struct {
	env      Env
	interval time.Duration
}

func newConf(env Env, interval time.Duration) *atomic.Pointer[sourceConf] {
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	p := &atomic.Pointer[sourceConf]{}
	p.Store(&sourceConf{env: env, interval: interval})
	return p
}

// keyReporter receives a source's refresh outcomes: keys is the number in
// force afterwards (the last good set's on a failure); class names a
// temporary failure ("" on success, or when the IdP has no such tenant).
type keyReporter func(ok bool, keys int, at time.Time, class string)

// NewRemote makes the key source of spec.Issuer from spec.JWKSURL, or
// from the discovery document at spec.OIDCDiscovery, refreshed every
// spec.RefreshInterval. It joins env.Feeds at once, so keys an earlier
// config loaded for the same issuer and URL serve immediately; Close
// leaves it. Refresh outcomes go to report (nil: to env.Observer under
// the issuer's name). Plain issuers and each tenant of a multi-tenant
// issuer are made by it alike; a tenant's outcomes count under its
// template.
func NewRemote(spec Spec, env Env, report keyReporter) (*Remote, error) {
	env = env.withDefaults()
	if env.Feeds == nil {
		return nil, fmt.Errorf("issuer %q: remote keys need the process's key feeds (Env.Feeds)", spec.Issuer)
	}
	return newRemote(spec, newConf(env, spec.RefreshInterval), env.Feeds, report), nil
}

// newRemote joins feeds for spec's issuer and URL, following conf.
func newRemote(spec Spec, conf *atomic.Pointer[sourceConf], feeds *Feeds, report keyReporter) *Remote {
	r := &Remote{spec: Spec{Issuer: spec.Issuer, JWKSURL: spec.JWKSURL, OIDCDiscovery: spec.OIDCDiscovery},
		conf: conf, feeds: feeds, onReport: report}
	r.feed = feeds.acquire(feedKey{issuer: spec.Issuer, jwksURL: spec.JWKSURL, discoveryURL: spec.OIDCDiscovery}, r)
	return r
}

// refetchGap is the configured base gap between unknown-kid refetches.
func (r *Remote) refetchGap() time.Duration { return r.conf.Load().env.RefetchGap }

// interval is how often the set is refreshed.
func (r *Remote) interval() time.Duration { return r.conf.Load().interval }

// lastSuccess is when the shared set was last fetched; zero when never.
func (r *Remote) lastSuccess() time.Time {
	r.feed.mu.Lock()
	defer r.feed.mu.Unlock()
	return r.feed.lastSuccess
}

// reportArgs is one fetch outcome, as the feed hands it to its newest user.
type reportArgs struct {
	ks        *jose.KeySet
	skipped   []error
	err       error
	kept      int // keys of the last good set, in force after a failure
	at        time.Time
	recovered bool      // the first success after failures
	downSince time.Time // when those failures began
	retryIn   time.Duration
}

// report logs and observes one fetch outcome: a failure at WARN saying
// truthfully what stays in force, the first success after failures at INFO.
func (r *Remote) report(a reportArgs) {
	log := r.conf.Load().env.Logger.With(zap.String("issuer", r.spec.Issuer))
	for _, s := range a.skipped {
		log.Debug("jwks: key skipped", zap.Error(s))
	}
	if a.err != nil {
		if a.kept > 0 {
			log.Warn("jwks refresh failed; keeping the last good keys", zap.Int("keys_kept", a.kept),
				zap.Duration("retry_in", a.retryIn), zap.Error(a.err))
		} else {
			log.Warn("jwks fetch failed; no keys yet, requests for this issuer answer 503 until a fetch succeeds",
				zap.Duration("retry_in", a.retryIn), zap.Error(a.err))
		}
		class := ""
		if !unknownTenant(a.err) {
			class, _ = classify(a.err)
		}
		r.observe(false, a.kept, a.at, class)
		return
	}
	if a.recovered {
		log.Info("jwks keys recovered", zap.Int("keys", len(a.ks.All)), zap.Duration("failing_for", a.at.Sub(a.downSince)))
	} else {
		log.Debug("jwks refreshed", zap.Int("keys", len(a.ks.All)))
	}
	r.observe(true, len(a.ks.All), a.at, "")
}

func (r *Remote) observe(ok bool, keys int, at time.Time, class string) {
	if r.onReport != nil {
		r.onReport(ok, keys, at, class)
		return
	}
	r.conf.Load().env.refresh(r.spec.Issuer, ok, keys, at)
	r.conf.Load().env.temporary(r.spec.Issuer, class)
}

// fetchFirst waits until the shared set has keys, joining the fetch in
// flight or starting one, and returns that fetch's error; a tenant's first
// request uses it, since that tenant has no keys to answer with yet.
func (r *Remote) fetchFirst(ctx context.Context) error {
	f := r.feed
	for f.set.Load() == nil {
		f.mu.Lock()
		fl := f.startLocked(f.run, false, nil)
		f.mu.Unlock()
		if fl == nil {
			return context.Canceled // the source was closed
		}
		select {
		case <-fl.done:
			if fl.err != nil {
				return fl.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *Remote) fetchSet(ctx context.Context) (*jose.KeySet, []error, error) {
	url := r.spec.JWKSURL
	if r.spec.OIDCDiscovery != "" {
		var err error
		if url, err = r.discover(ctx); err != nil {
			return nil, nil, err
		}
	}
	body, err := r.get(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	ks, skipped, err := jose.ParseJWKS(body, jose.SetPolicy{Remote: true})
	if err != nil {
		return nil, skipped, fmt.Errorf("jwks %s: %w", url, err)
	}
	return ks, skipped, nil
}

// discover reads the discovery document. Its issuer must equal ours byte for
// byte (OpenID Connect Discovery §4.3), and its jwks_uri must be fetchable
// under the same rules as a configured jwks_url.
func (r *Remote) discover(ctx context.Context) (string, error) {
	body, err := r.get(ctx, r.spec.OIDCDiscovery)
	if err != nil {
		return "", err
	}
	if err := jose.CheckJSONObject(body); err != nil {
		return "", fmt.Errorf("discovery %s: %w", r.spec.OIDCDiscovery, err)
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery %s: %w", r.spec.OIDCDiscovery, err)
	}
	if doc.Issuer == nil || *doc.Issuer != r.spec.Issuer {
		got := "<missing>"
		if doc.Issuer != nil {
			got = fmt.Sprintf("%q", jose.Truncate(*doc.Issuer, 128))
		}
		return "", &issuerMismatchError{fmt.Sprintf("discovery %s: issuer is %s, want %q", r.spec.OIDCDiscovery, got, r.spec.Issuer)}
	}
	if doc.JWKSURI == nil || *doc.JWKSURI == "" {
		return "", fmt.Errorf("discovery %s: no jwks_uri", r.spec.OIDCDiscovery)
	}
	if err := CheckFetchURL(*doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery %s: jwks_uri: %w", r.spec.OIDCDiscovery, err)
	}
	return *doc.JWKSURI, nil
}

func (r *Remote) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.conf.Load().env.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &statusError{url: url, code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jose.MaxKeyBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > jose.MaxKeyBody {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", url, jose.MaxKeyBody)
	}
	return body, nil
}
