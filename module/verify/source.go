package verify

import (
	"context"
	"time"
)

// keySource supplies the verification keys of one issuer. Verify asks it
// for keys and tells it what it saw; how keys are loaded, refreshed or
// shared between configs is the source's business. Static sources
// (jwks_file, public_key_file, hmac_secret) hold one set for the config's
// life; remoteSource fetches jwks_url or oidc_discovery through the
// process's key store (keystore.go), which keeps sets across reloads.
type keySource interface {
	// keys returns the set in use, or nil while none has loaded.
	keys() *keySet
	// unknownKid is called when a token names a kid the current set lacks.
	// A remote source refetches (bounded, shared by concurrent callers) and
	// returns the set to use afterwards with 0; when no fetch may start yet
	// it returns the current set and how long until one may, and the caller
	// answers 503 with that Retry-After. A static source returns its set, 0.
	unknownKid(ctx context.Context, kid string) (*keySet, time.Duration)
	// unavailable is called while keys() is nil; it may start a fetch, must
	// not wait for it, and says when a retry may find keys.
	unavailable() time.Duration
	// start begins background work, if any, tracked by the verifier.
	start()
	// close ends the source's part in background work; idempotent.
	close()
}

// staticSource is a key set loaded once from the config.
type staticSource struct{ set *keySet }

func (s staticSource) keys() *keySet { return s.set }
func (s staticSource) unknownKid(context.Context, string) (*keySet, time.Duration) {
	return s.set, 0
}
func (s staticSource) unavailable() time.Duration { return 0 }
func (s staticSource) start()                     {}
func (s staticSource) close()                     {}

// keys returns the shared remote set, nil until the first successful fetch.
func (r *remoteSource) keys() *keySet { return r.feed.set.Load() }

func (r *remoteSource) unknownKid(ctx context.Context, kid string) (*keySet, time.Duration) {
	return r.feed.unknownKid(ctx, kid)
}

func (r *remoteSource) unavailable() time.Duration { return r.feed.unavailable() }

// start leaves the key store when the verifier's context ends (Close, or
// the config's context), so a source never outlives its config's users.
func (r *remoteSource) start() {
	if r.v.track() {
		go func() {
			defer r.v.wg.Done()
			select {
			case <-r.v.ctx.Done():
			case <-r.closed: // closed early: a tenant's set was evicted
			}
			r.close()
		}()
	} else {
		r.close()
	}
}

func (r *remoteSource) close() {
	r.closeOnce.Do(func() {
		close(r.closed)
		feeds.release(r.feed, r)
	})
}

var (
	_ keySource = staticSource{}
	_ keySource = (*remoteSource)(nil)
)
