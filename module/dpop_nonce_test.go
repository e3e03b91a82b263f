package tenantgate

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

var nonceProofSeq int

// nonceProof is a DPoP proof carrying nonce ("" for none).
func nonceProof(t *testing.T, priv jwk.Key, method, htu, token, nonce string) string {
	t.Helper()
	pub, _ := priv.PublicKey()
	sum := sha256.Sum256([]byte(token))
	nonceProofSeq++
	c := map[string]any{"jti": fmt.Sprintf("nonce-proof-%d-%d", time.Now().UnixNano(), nonceProofSeq), "htm": method, "htu": htu,
		"iat": time.Now().Unix(), "ath": rawURL.EncodeToString(sum[:])}
	if nonce != "" {
		c["nonce"] = nonce
	}
	payload, _ := json.Marshal(c)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "dpop+jwt")
	_ = hdr.Set(jws.JWKKey, pub)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestDPoPNonceChallengeAndRetry(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { isolatedStore(t)(g); g.DPoPNonce = true })
	priv, jkt := unitProofKey(t)
	tok := u.boundToken(t, map[string]any{"jkt": jkt})
	// The upstream tries to set a nonce of its own: the gate's wins.
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("DPoP-Nonce", "from-upstream")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	send := func(nonce string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://gate.test/api/whoami", nil)
		r.Header.Set("Authorization", "DPoP "+tok)
		r.Header.Set("DPoP", nonceProof(t, priv, "GET", "http://gate.test/api/whoami", tok, nonce))
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		if err := u.g.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, nonce := range []string{"", "made-up"} {
		w := send(nonce)
		if w.Code != 401 || problemOf(t, w).Reason != "dpop_nonce_required" {
			t.Fatalf("nonce %q: %d %s", nonce, w.Code, w.Body)
		}
		ch := w.Header().Values("WWW-Authenticate")
		if len(ch) != 1 || ch[0] != `DPoP realm="tenantgate", algs="RS256 ES256 EdDSA", error="use_dpop_nonce", error_description="dpop_nonce_required"` {
			t.Fatalf("challenge %q", ch)
		}
		if got := w.Header().Values("DPoP-Nonce"); len(got) != 1 || !u.g.nonces.Accepts(got[0], time.Now()) {
			t.Fatalf("DPoP-Nonce %q", got)
		}
	}
	nonce := send("").Header().Get("DPoP-Nonce")
	w := send(nonce)
	if w.Code != 200 {
		t.Fatalf("retry with the nonce: %d %s", w.Code, w.Body)
	}
	// One DPoP-Nonce at most, and never the upstream's.
	if got := w.Header().Values("DPoP-Nonce"); len(got) > 1 || (len(got) == 1 && got[0] != u.g.nonces.Nonce(time.Now())) {
		t.Fatalf("DPoP-Nonce on success %q", got)
	}

	// Every 401 of a DPoP request carries a nonce; a Bearer request's does not.
	r := httptest.NewRequest("GET", "http://gate.test/api/whoami", nil)
	r.Header.Set("Authorization", "DPoP "+tok)
	w, _ = u.serve(r, &upstream{})
	if w.Code != 401 || problemOf(t, w).Reason != "bad_dpop_proof" || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("no proof: %d %q", w.Code, w.Header())
	}
	r = httptest.NewRequest("GET", "http://gate.test/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer nope")
	if w, _ = u.serve(r, &upstream{}); w.Code != 401 || w.Header().Get("DPoP-Nonce") != "" {
		t.Fatalf("bearer: %d %q", w.Code, w.Header())
	}
}

func TestDPoPNonceOffOffersNothing(t *testing.T) {
	u := newUnitGate(t, isolatedStore(t))
	priv, jkt := unitProofKey(t)
	tok := u.boundToken(t, map[string]any{"jkt": jkt})
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "DPoP "+tok)
	r.Header.Set("DPoP", nonceProof(t, priv, "GET", "http://gate.test/api/whoami", tok, ""))
	w, _ := u.serve(r, &upstream{})
	if w.Code != 200 || w.Header().Get("DPoP-Nonce") != "" || u.g.nonceSource() != nil {
		t.Fatalf("%d %q", w.Code, w.Header())
	}
}

// TestNonceSecretSharedByReplicas: two stores on one Redis prefix (two
// replicas) end with the first one's secret; a lost key is written back;
// a store on a closed port keeps its own secret and counts the error.
func TestNonceSecretSharedByReplicas(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	a, b := openStore(t, url, prefix), openStore(t, url, prefix)
	sa, sb := a.nonceSecret(), b.nonceSecret()
	if string(sa.Get()) != string(sb.Get()) || len(sa.Get()) != 32 {
		t.Fatal("two replicas hold different nonce secrets")
	}
	if a.nonceSecret() != sa {
		t.Fatal("a second call made a second secret")
	}
	// The key is lost (Redis restarted empty): the next sync writes it back,
	// and a replica started afterwards adopts it.
	redistest.DeletePrefix(url, prefix)
	b.syncNonceSecret(context.Background())
	c := openStore(t, url, prefix)
	if string(c.nonceSecret().Get()) != string(sa.Get()) {
		t.Fatal("the secret was not written back after the key was lost")
	}

	counted := func() float64 { return testutil.ToFloat64(revocationMetrics.storeErrors.WithLabelValues("nonce")) }
	before := counted()
	down := openStore(t, redistest.ClosedURL(t), "p:")
	local := down.nonceSecret()
	if len(local.Get()) != 32 || string(local.Get()) == string(sa.Get()) {
		t.Fatal("a replica without its store needs a secret of its own")
	}
	if counted() != before+1 {
		t.Fatalf("errors counted %v, want %v", counted(), before+1)
	}
	_ = down.Destruct()
	_ = down.Destruct() // idempotent
}

func TestDPoPNonceConfig(t *testing.T) {
	var g Gate
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_gate {\n dpop_nonce 30s\n}")); err != nil {
		t.Fatal(err)
	}
	if !g.DPoPNonce || time.Duration(g.DPoPNonceWindow) != 30*time.Second {
		t.Fatalf("%+v", g.SharedState)
	}
	raw, _ := json.Marshal(g)
	if !strings.Contains(string(raw), `"dpop_nonce":true,"dpop_nonce_window":30000000000`) {
		t.Fatalf("JSON %s", raw)
	}
	for _, bad := range []string{"dpop_nonce soon", "dpop_nonce 1m 2m", "dpop_nonce -1s"} {
		var g Gate
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_gate {\n" + bad + "\n}")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, tc := range []struct {
		s    SharedState
		want string
	}{
		{SharedState{DPoPNonceWindow: caddy.Duration(time.Minute)}, "set only with dpop_nonce"},
		{SharedState{DPoPNonce: true, DPoPNonceWindow: caddy.Duration(time.Millisecond)}, "within 1s..24h"},
		{SharedState{DPoPNonce: true, DPoPNonceWindow: caddy.Duration(48 * time.Hour)}, "within 1s..24h"},
	} {
		if err := tc.s.validateSharedState(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	if err := (&SharedState{DPoPNonce: true}).validateSharedState(); err != nil {
		t.Fatalf("dpop_nonce alone: %v", err)
	}
}
