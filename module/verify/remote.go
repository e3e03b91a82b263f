package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// initialBackoff is the first retry delay after a failed fetch; it doubles up
// to the issuer's RefreshInterval.
const initialBackoff = time.Second

// flight is one fetch in progress; every caller that needs it waits on done.
type flight struct {
	done chan struct{}
	err  error
}

// remoteSource fetches one issuer's keys from a JWKS URL, or from the
// jwks_uri of its discovery document. jwk.Cache is not used because we need
// to validate the whole set before swapping it in (and keep the last good
// set otherwise), report every outcome, and share one rate-limited refetch
// between all requests that carry an unknown kid.
type remoteSource struct {
	v        *Verifier
	issuer   string        // the iss this source serves; discovery must name it
	interval time.Duration // refresh interval
	set      remoteKeys    // nil until the first successful fetch
	jwks     string        // configured jwks_url, "" with discovery
	disco    string        // configured oidc_discovery
	client   *http.Client
	report   keyReporter   // where refresh outcomes go (metrics)
	done     chan struct{} // closed by stop: the refresh loop ends
	stopOnce sync.Once

	mu             sync.Mutex
	inflight       *flight
	lastKidRefetch time.Time
}

// keyReporter receives a source's refresh outcomes: keys is the number in
// force afterwards (the last good set's on a failure).
type keyReporter func(ok bool, keys int, at time.Time)

// newRemoteSource is the one constructor of remote key sources: for plain
// issuers and for each tenant of a multi-tenant issuer alike.
func (v *Verifier) newRemoteSource(ic IssuerConfig, report keyReporter) *remoteSource {
	return &remoteSource{v: v, issuer: ic.Issuer, interval: ic.RefreshInterval, jwks: ic.JWKSURL, disco: ic.OIDCDiscovery,
		client: v.cfg.HTTPClient, report: report, done: make(chan struct{})}
}

// stop ends the refresh loop (a tenant's set left the cache); a fetch in
// flight finishes on its own, bounded by the HTTP client's timeout.
func (r *remoteSource) stop() { r.stopOnce.Do(func() { close(r.done) }) }

// run refreshes in the background until the verifier closes or the source
// stops: every RefreshInterval after a success, with a doubling backoff
// after a failure. A source started with keys (a tenant's first fetch ran
// on its first request) waits one interval first.
func (r *remoteSource) run() {
	backoff := initialBackoff
	interval := r.interval
	first := time.Duration(0)
	if r.set.Load() != nil {
		first = interval
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-r.v.ctx.Done():
			return
		case <-r.done:
			return
		case <-timer.C:
		}
		err := r.shared(r.v.ctx, false)
		wait := interval
		if err != nil {
			wait = min(backoff, interval)
			backoff = min(backoff*2, interval)
		} else {
			backoff = initialBackoff
		}
		timer.Reset(wait)
	}
}

var errRateLimited = errors.New("unknown-kid refetch rate-limited")

// shared runs one fetch, or joins the one in flight. With rateLimited (the
// unknown-kid path) a new fetch starts at most once per RefetchInterval.
// The fetch itself runs on the verifier's context, so a caller that gives
// up (its request context ends) does not cancel it for the others.
func (r *remoteSource) shared(ctx context.Context, rateLimited bool) error {
	r.mu.Lock()
	f := r.inflight
	if f == nil {
		now := time.Now()
		if rateLimited {
			if !r.lastKidRefetch.IsZero() && now.Sub(r.lastKidRefetch) < r.v.cfg.RefetchInterval {
				r.mu.Unlock()
				return errRateLimited
			}
			r.lastKidRefetch = now
		}
		if !r.v.track() {
			r.mu.Unlock()
			return context.Canceled
		}
		f = &flight{done: make(chan struct{})}
		r.inflight = f
		go func() {
			defer r.v.wg.Done()
			f.err = r.refresh(r.v.ctx)
			r.mu.Lock()
			r.inflight = nil
			r.mu.Unlock()
			close(f.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kick starts a rate-limited fetch without waiting for it; Verify uses it
// while an issuer has no keys, so keys arrive soon after the IdP is back.
func (r *remoteSource) kick() {
	r.mu.Lock()
	busy := r.inflight != nil || (!r.lastKidRefetch.IsZero() && time.Since(r.lastKidRefetch) < r.v.cfg.RefetchInterval)
	r.mu.Unlock()
	if busy {
		return
	}
	if !r.v.track() {
		return
	}
	go func() {
		defer r.v.wg.Done()
		_ = r.shared(r.v.ctx, true)
	}()
}

// refresh fetches and validates the key set, swaps it in on success, keeps
// the last good one on failure, and reports the outcome.
func (r *remoteSource) refresh(ctx context.Context) error {
	ks, skipped, err := r.fetchSet(ctx)
	at := time.Now()
	log := r.v.cfg.Logger.With(zap.String("issuer", r.issuer))
	for _, s := range skipped {
		log.Debug("jwks: key skipped", zap.Error(s))
	}
	if err != nil {
		kept := 0
		if cur := r.set.Load(); cur != nil {
			kept = len(cur.all)
		}
		if ctx.Err() == nil {
			log.Warn("jwks refresh failed; keeping the last good keys", zap.Int("keys_kept", kept), zap.Error(err))
			r.report(false, kept, at)
		}
		return err
	}
	r.set.Store(ks)
	log.Debug("jwks refreshed", zap.Int("keys", len(ks.all)))
	r.report(true, len(ks.all), at)
	return nil
}

// fetchFirst waits for a fetch (joining one in flight) and reports its
// error; a tenant's first request uses it, since that tenant has no keys
// to answer with yet.
func (r *remoteSource) fetchFirst(ctx context.Context) error {
	return r.shared(ctx, false)
}

func (r *remoteSource) fetchSet(ctx context.Context) (*keySet, []error, error) {
	url := r.jwks
	if r.disco != "" {
		var err error
		if url, err = r.discover(ctx); err != nil {
			return nil, nil, err
		}
	}
	body, err := r.get(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	ks, skipped, err := parseJWKS(body, setPolicy{remote: true})
	if err != nil {
		return nil, skipped, fmt.Errorf("jwks %s: %w", url, err)
	}
	return ks, skipped, nil
}

// discover reads the discovery document. Its issuer must equal ours byte for
// byte (OpenID Connect Discovery §4.3), and its jwks_uri must be fetchable
// under the same rules as a configured jwks_url.
func (r *remoteSource) discover(ctx context.Context) (string, error) {
	body, err := r.get(ctx, r.disco)
	if err != nil {
		return "", err
	}
	if err := checkJSONObject(body); err != nil {
		return "", fmt.Errorf("discovery %s: %w", r.disco, err)
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery %s: %w", r.disco, err)
	}
	if doc.Issuer == nil || *doc.Issuer != r.issuer {
		got := "<missing>"
		if doc.Issuer != nil {
			got = fmt.Sprintf("%q", truncate(*doc.Issuer, 128))
		}
		return "", fmt.Errorf("discovery %s: issuer is %s, want %q", r.disco, got, r.issuer)
	}
	if doc.JWKSURI == nil || *doc.JWKSURI == "" {
		return "", fmt.Errorf("discovery %s: no jwks_uri", r.disco)
	}
	if err := checkFetchURL(*doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery %s: jwks_uri: %w", r.disco, err)
	}
	return *doc.JWKSURI, nil
}

func (r *remoteSource) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &statusError{url: url, code: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxKeyBody {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", url, maxKeyBody)
	}
	return body, nil
}

// statusError is a key or discovery URL that answered other than 200. A
// 4xx from a tenant's URL says the IdP knows no such tenant.
type statusError struct {
	url  string
	code int
}

func (e *statusError) Error() string { return fmt.Sprintf("GET %s: status %d", e.url, e.code) }
