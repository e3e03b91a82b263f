package tenantgate

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/verify"
)

// Remote key fetches start when a config runs, not when it is checked:
// `caddy validate` provisions the config and never starts it, and must
// make no network call. So a gate with a remote key source (jwks_url,
// oidc_discovery, a multi-tenant issuer) is checked at Provision by a
// verifier on a closed store (files read, every setting checked, nothing
// fetched), and makes its real verifier on Caddy's "started" event, or on
// its first request if that comes first. `caddy validate` emits no
// "started" and serves no request.

// hasRemoteKeys reports whether any issuer fetches keys over the network.
func hasRemoteKeys(cfg verify.Config) bool {
	for _, is := range cfg.Issuers {
		if is.JWKSURL != "" || is.OIDCDiscovery != "" || is.IsTemplate() {
			return true
		}
	}
	return false
}

// startingVerifier serves with the real verifier once it is made.
type startingVerifier struct {
	once  sync.Once
	make  func() (*verify.Verifier, error)
	check *verify.Verifier // fetches nothing; serves only if make failed
	real  atomic.Pointer[verify.Verifier]
	log   *zap.Logger
}

func (s *startingVerifier) start() {
	s.once.Do(func() {
		v, err := s.make()
		if err != nil {
			// The same config passed the check verifier: this is a
			// surprise, and requests are refused rather than let past.
			s.log.Error("starting the key sources", zap.Error(err))
			return
		}
		s.real.Store(v)
	})
}

func (s *startingVerifier) Verify(ctx context.Context, req *verify.Request) (verify.Result, *verify.Error) {
	v := s.real.Load()
	if v == nil {
		s.start()
		if v = s.real.Load(); v == nil {
			v = s.check
		}
	}
	return v.Verify(ctx, req)
}

// close ends both verifiers.
func (s *startingVerifier) close() {
	s.once.Do(func() {}) // a start after this would leak
	if v := s.real.Load(); v != nil {
		v.Close()
	}
	s.check.Close()
}

// provisionDeferred makes the check verifier and the startingVerifier for
// cfg (its Store already set), and starts it on Caddy's "started" event.
func (g *Gate) provisionDeferred(ctx caddy.Context, vctx context.Context, cfg verify.Config) (*startingVerifier, error) {
	closed := verify.NewStore()
	_ = closed.Destruct() // a closed store fetches nothing
	ccfg := cfg
	// new(int): token_cache 0, no cache for this throw-away check.
	ccfg.Store, ccfg.Observer, ccfg.CacheObserver, ccfg.TokenCache, ccfg.Logger = closed, nil, nil, new(int), zap.NewNop()
	check, err := verify.New(vctx, ccfg)
	if err != nil {
		return nil, err
	}
	s := &startingVerifier{check: check, log: g.logger,
		make: func() (*verify.Verifier, error) { return verify.New(vctx, cfg) }}
	if err := onStarted(ctx, s.start); err != nil {
		check.Close()
		return nil, err
	}
	return s, nil
}

// onStarted runs f on Caddy's "started" event of ctx's config. A context
// made without a config (caddy.NewContext in tests, embedders) has no
// events app; the first request then starts the keys.
func onStarted(ctx caddy.Context, f func()) (err error) {
	defer func() {
		if recover() != nil {
			err = nil // no config behind ctx: caddy's App panics
		}
	}()
	app, err := ctx.App("events")
	if err != nil {
		return err
	}
	return app.(*caddyevents.App).On("started", startedHandler(f))
}

// startedHandler runs f on the event it is subscribed to.
type startedHandler func()

func (f startedHandler) Handle(context.Context, caddy.Event) error {
	f()
	return nil
}
