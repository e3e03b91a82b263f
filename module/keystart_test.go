package tenantgate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/verify"
)

// TestRemoteKeysStartWhenTheConfigRuns: Provision (all `caddy validate`
// does) fetches nothing; the first request, or Caddy's started event,
// starts the fetch.
func TestRemoteKeysStartWhenTheConfigRuns(t *testing.T) {
	for _, how := range []string{"first request", "started event"} {
		t.Run(how, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				hits.Add(1)
				_, _ = w.Write([]byte(`{"keys":[]}`))
			}))
			defer srv.Close()
			g := &Gate{Settings: verify.Settings{Issuers: []Issuer{{Issuer: "https://a", JWKSURL: srv.URL + "/jwks", Audiences: []string{"x"}}}},
				AssertionAlg: "HS256", AssertionSecret: strings.Repeat("s", 32)}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			defer func() { _ = g.Cleanup() }()
			if err := g.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			if err := g.Validate(); err != nil {
				t.Fatal(err)
			}
			if g.starting == nil || g.starting.real.Load() != nil || hits.Load() != 0 {
				t.Fatalf("provisioning started the key source (%d requests)", hits.Load())
			}
			if how == "first request" {
				_, verr := g.verifier.Verify(context.Background(), &verify.Request{Token: "a.b.c"})
				if verr == nil {
					t.Fatal("a garbage token passed")
				}
			} else {
				_ = startedHandler(g.starting.start).Handle(context.Background(), caddy.Event{})
			}
			if g.starting.real.Load() == nil {
				t.Fatal("the real verifier was not made")
			}
			// The refresher fetches in the background: wait for it by
			// asking for a kid the set lacks (that waits for a fetch).
			_, _ = g.verifier.Verify(context.Background(), &verify.Request{Token: "a.b.c"})
			for i := 0; hits.Load() == 0 && i < 500; i++ {
				<-time.After(10 * time.Millisecond)
			}
			if hits.Load() == 0 {
				t.Fatal("the started verifier fetched nothing")
			}
		})
	}
}
