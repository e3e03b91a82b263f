package verify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// jwksServer is a loopback IdP whose JWKS, availability and latency tests change.
type jwksServer struct {
	*httptest.Server
	mu        sync.Mutex
	body      []byte
	down      bool
	delay     time.Duration
	jwksHits  atomic.Int32
	discoHits atomic.Int32
	issuer    string // for discovery; defaults to the server URL
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, down, delay, iss := s.body, s.down, s.delay, s.issuer
		s.mu.Unlock()
		if iss == "" {
			iss = s.URL
		}
		switch r.URL.Path {
		case "/jwks":
			s.jwksHits.Add(1)
			time.Sleep(delay)
			if down {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		case "/.well-known/openid-configuration":
			s.discoHits.Add(1)
			if down {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"issuer":"` + iss + `","jwks_uri":"` + s.URL + `/jwks"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, down bool) {
	s.mu.Lock()
	s.body, s.down = body, down
	s.mu.Unlock()
}

func remoteConfig(iss string, ic IssuerConfig, obs Observer) Config {
	ic.Issuer = iss
	ic.Audiences = []string{aud}
	return Config{
		Settings: Settings{
			Issuers:    []IssuerConfig{ic},
			Algorithms: []string{"RS256", "ES256"},
		},
		Observer: obs,
		Now:      func() time.Time { return testNow },
		Store:    NewStore(), // shared by every config made from this one, as reloads share it
	}
}

func TestRemoteDownAtStartThenUp(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, nil)
	srv.set(nil, true)
	obs := &recordingObserver{}
	v := newVerifier(t, remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks"}, obs))
	tok := mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))

	eventually(t, 3*time.Second, "a failed first fetch", func() bool { return srv.jwksHits.Load() >= 1 })
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e == nil || e.Reason != audit.ReasonKeysUnavailable {
		t.Fatalf("want keys_unavailable, got %v", e)
	}
	if st := v.KeyStatus(); st[srv.URL] != 0 {
		t.Fatalf("status %v", st)
	}
	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")), false)
	eventually(t, 5*time.Second, "keys after the JWKS came up", func() bool {
		_, e := identityOf(v.Verify(t0ctx, Bearer(tok)))
		return e == nil
	})
	if st := v.KeyStatus(); st[srv.URL] != 1 {
		t.Fatalf("status %v", st)
	}
	calls := obs.snapshot()
	if len(calls) < 2 || calls[0].ok || calls[0].issuer != srv.URL || !calls[len(calls)-1].ok || calls[len(calls)-1].keys != 1 {
		t.Fatalf("observer calls %+v", calls)
	}
}

func TestRemoteFailedRefreshKeepsLastKeys(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	obs := &recordingObserver{}
	cfg := remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(50 * time.Millisecond)}, obs)
	v := newVerifier(t, cfg)
	tok := mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))
	eventually(t, 3*time.Second, "first keys", func() bool { _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); return e == nil })

	for name, bad := range map[string]struct {
		body []byte
		down bool
	}{
		"server error": {nil, true},
		"not JSON":     {[]byte("<html>"), false},
		"secret in a published set": {jwksJSON(t, func() jwk.Key {
			kk, _ := jwk.FromRaw(k.hmac)
			return kk
		}()), false},
		"private key in a published set": {jwksJSON(t, func() jwk.Key {
			kk, _ := jwk.FromRaw(k.ec256)
			_ = kk.Set(jwk.KeyIDKey, "k1")
			return kk
		}()), false},
		"duplicate kid": {jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k1", "RS256")), false},
		"weak RSA key":  {[]byte(`{"keys":[{"kty":"RSA","kid":"k1","n":"` + b64.EncodeToString(k.rsa.N.Bytes()[:128]) + `","e":"AQAB"}]}`), false},
		"no usable key": {jwksJSON(t, func() jwk.Key {
			kk := publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")
			_ = kk.Set(jwk.KeyUsageKey, "enc")
			return kk
		}()), false},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(obs.snapshot())
			srv.set(bad.body, bad.down)
			eventually(t, 3*time.Second, "two failed refreshes", func() bool {
				n := 0
				for _, c := range obs.snapshot()[before:] {
					if !c.ok {
						n++
					}
				}
				return n >= 2
			})
			if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
				t.Fatalf("last good keys were dropped: %v", e)
			}
			for _, c := range obs.snapshot()[before:] {
				if !c.ok && c.keys != 1 {
					t.Fatalf("failed refresh should report the 1 kept key, got %+v", c)
				}
			}
			srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")), false)
		})
	}
}

func TestRemoteUnknownKidRefetch(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	v := heldKeys(t, srv, time.Hour)
	hits := srv.jwksHits.Load()

	// The IdP rotates right after our fetch: k2 appears. Within the refetch
	// gap the honest answer is "retry then" (503), never 401.
	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k2", "RS256")), false)
	k2 := mint(t, "RS256", k.rsa, "k2", nil, claimsFor(srv.URL, nil))
	_, e := identityOf(v.Verify(t0ctx, Bearer(k2)))
	if e == nil || e.Reason != audit.ReasonKeysUnavailable || e.RetryAfter <= 0 || e.RetryAfter > time.Hour {
		t.Fatalf("want keys_unavailable with a Retry-After within the gap, got %v (retry %s)", e, e.RetryAfter)
	}
	if got := srv.jwksHits.Load() - hits; got != 0 {
		t.Fatalf("the gap was not honoured: %d fetches", got)
	}

	// Once the gap has passed, the first such token refetches and passes.
	f := agePastGap(v, srv.URL)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(k2))); e != nil {
		t.Fatalf("new kid not picked up: %v", e)
	}
	if got := srv.jwksHits.Load() - hits; got != 1 {
		t.Fatalf("want 1 refetch, got %d", got)
	}
	// A kid our own refetch did not find is unknown: 401 unknown_key.
	f.Backdate(time.Hour)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "RS256", k.rsa, "k3", nil, claimsFor(srv.URL, nil))))); e == nil || e.Reason != audit.ReasonUnknownKey {
		t.Fatalf("want unknown_key, got %v", e)
	}
	if got := srv.jwksHits.Load() - hits; got != 2 {
		t.Fatalf("want 2 fetches, got %d", got)
	}
}

func TestRemoteConcurrentUnknownKids(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	v := heldKeys(t, srv, 0)
	hits := srv.jwksHits.Load()
	srv.mu.Lock()
	srv.delay = 100 * time.Millisecond
	srv.mu.Unlock()
	agePastGap(v, srv.URL)

	for _, n := range []int{40, 1000} {
		var wg sync.WaitGroup
		var refused atomic.Int32
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := mint(t, "ES256", k.ec256, "rnd-"+strings.Repeat("x", i%7), nil, claimsFor(srv.URL, nil))
				if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil && (e.Reason == audit.ReasonUnknownKey || e.Reason == audit.ReasonKeysUnavailable) {
					refused.Add(1)
				}
			}()
		}
		wg.Wait()
		if int(refused.Load()) != n {
			t.Fatalf("%d tokens: %d refused as unknown_key or keys_unavailable", n, refused.Load())
		}
	}
	if got := srv.jwksHits.Load() - hits; got < 1 || got > 2 {
		t.Fatalf("1040 concurrent unknown-kid tokens caused %d fetches, want 1-2", got)
	}
}

func TestRemoteOIDCDiscovery(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "r1", "RS256")))
	obs := &recordingObserver{}
	v := newVerifier(t, remoteConfig(srv.URL, IssuerConfig{OIDCDiscovery: srv.URL + "/.well-known/openid-configuration"}, obs))
	tok := mint(t, "RS256", k.rsa, "r1", nil, claimsFor(srv.URL, nil))
	eventually(t, 3*time.Second, "keys via discovery", func() bool { _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); return e == nil })
	if srv.discoHits.Load() < 1 {
		t.Fatal("discovery document not fetched")
	}

	t.Run("issuer mismatch", func(t *testing.T) {
		srv2 := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "r1", "RS256")))
		srv2.mu.Lock()
		srv2.issuer = srv2.URL + "/" // trailing slash: not the same issuer
		srv2.mu.Unlock()
		obs := &recordingObserver{}
		v := newVerifier(t, remoteConfig(srv2.URL, IssuerConfig{OIDCDiscovery: srv2.URL + "/.well-known/openid-configuration"}, obs))
		eventually(t, 3*time.Second, "a failed refresh", func() bool { return len(obs.snapshot()) > 0 })
		if c := obs.snapshot()[0]; c.ok {
			t.Fatalf("observer %+v", c)
		}
		if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "RS256", k.rsa, "r1", nil, claimsFor(srv2.URL, nil))))); e == nil || e.Reason != audit.ReasonKeysUnavailable {
			t.Fatalf("want keys_unavailable, got %v", e)
		}
		if srv2.jwksHits.Load() != 0 {
			t.Fatal("jwks_uri of a mismatched discovery document was fetched")
		}
	})
}

func TestCloseStopsBackgroundWork(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.set(nil, true)
	v, err := New(t0ctx, remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(10 * time.Millisecond)}, nil))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "a fetch", func() bool { return srv.jwksHits.Load() >= 1 })
	v.Close()
	v.Close() // idempotent
	// A request sent just before Close may still reach the server's handler.
	n := settled(t, srv.jwksHits.Load)
	time.Sleep(100 * time.Millisecond)
	if srv.jwksHits.Load() != n {
		t.Fatal("fetching continued after Close")
	}
}

// agePastGap makes the issuer's last fetch look older than any refetch gap,
// as if the gap had passed (a test does not wait seconds for it).
func agePastGap(v *Verifier, iss string) *keysource.Remote {
	r := v.issuers[iss].src.(*keysource.Remote)
	r.Backdate(48 * time.Hour)
	return r
}
