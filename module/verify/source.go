package verify

import (
	"context"
	"errors"
	"sync/atomic"

	"go.uber.org/zap"
)

// keySource supplies the verification keys of one issuer. Verify asks it
// for keys and tells it what it saw; how keys are loaded, refreshed or
// shared between configs is the source's business. Static sources
// (jwks_file, public_key_file, hmac_secret) hold one set for the config's
// life; remoteSource fetches jwks_url or oidc_discovery and refreshes.
type keySource interface {
	// keys returns the set in use, or nil while none has loaded.
	keys() *keySet
	// unknownKid is called when a token names a kid the current set lacks.
	// A remote source may refetch (bounded, shared by concurrent callers)
	// and returns the set to use afterwards; a static one returns its set.
	unknownKid(ctx context.Context) *keySet
	// unavailable is called while keys() is nil; it may start a fetch and
	// must not wait for it.
	unavailable()
	// start begins background work, if any, tracked by the verifier.
	start()
	// stop ends that background work early (a tenant's key set was
	// evicted); Verifier.Close stops every source anyway.
	stop()
}

// staticSource is a key set loaded once from the config.
type staticSource struct{ set *keySet }

func (s staticSource) keys() *keySet                      { return s.set }
func (s staticSource) unknownKid(context.Context) *keySet { return s.set }
func (s staticSource) unavailable()                       {}
func (s staticSource) start()                             {}
func (s staticSource) stop()                              {}

// keys returns the remote set in use, nil until the first good fetch.
func (r *remoteSource) keys() *keySet { return r.set.Load() }

func (r *remoteSource) unknownKid(ctx context.Context) *keySet {
	if err := r.shared(ctx, true); err != nil && !errors.Is(err, errRateLimited) {
		r.v.cfg.Logger.Debug("unknown-kid refetch failed", zap.String("issuer", r.issuer), zap.Error(err))
	}
	return r.set.Load()
}

func (r *remoteSource) unavailable() { r.kick() }

func (r *remoteSource) start() {
	if r.v.track() {
		go func() {
			defer r.v.wg.Done()
			r.run()
		}()
	}
}

// remoteKeys is the atomically swapped key set of a remote source.
type remoteKeys = atomic.Pointer[keySet]

var (
	_ keySource = staticSource{}
	_ keySource = (*remoteSource)(nil)
)
