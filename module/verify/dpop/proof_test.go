package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/duration"
)

var b64 = base64.RawURLEncoding

type client struct {
	priv *ecdsa.PrivateKey
	pub  jwk.Key
	jkt  string
}

func newClient(t *testing.T) *client {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &client{priv: priv, pub: pub, jkt: b64.EncodeToString(tp)}
}

func (c *client) proof(t *testing.T, header map[string]any, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": c.pub}
	for k, v := range header {
		h[k] = v
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	s, err := jws.NewSigner(jwa.ES256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign([]byte(input), c.priv)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

var (
	now     = time.Unix(1_700_000_000, 0)
	reqURL  = &url.URL{Scheme: "https", Host: "api.example:443", Path: "/v1/x"}
	token   = "access.token.value"
	jtiSeen = 0
)

func claims(over map[string]any) map[string]any {
	sum := sha256.Sum256([]byte(token))
	jtiSeen++
	c := map[string]any{"htm": "POST", "htu": "https://API.example/v1/x?q=1", "iat": now.Unix(), "ath": b64.EncodeToString(sum[:]),
		"jti": fmt.Sprintf("j-%d", jtiSeen)}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

type failingStore struct{}

func (failingStore) Claim(ProofID, time.Duration) (bool, error) {
	return false, errors.New("store down")
}

func TestCheckerOrderOfChecks(t *testing.T) {
	cfg := Config{}
	cfg.SetDefaults([]string{"RS256", "ES256"})
	if errs := cfg.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	c := NewChecker(cfg, NewMemoryReplay(nil))
	if c.Algorithms() != "RS256 ES256" {
		t.Fatalf("algorithms %q", c.Algorithms())
	}
	cl, other := newClient(t), newClient(t)
	req := func(proofs ...string) Request {
		return Request{Proofs: proofs, Method: "POST", URL: reqURL, Token: token}
	}
	replayed := cl.proof(t, nil, claims(nil))
	if e := c.Check(req(replayed), cl.jkt, now); e != nil {
		t.Fatalf("valid proof refused: %v", e)
	}
	for name, tc := range map[string]struct {
		r    Request
		want audit.Reason
	}{
		"replayed":       {req(replayed), audit.ReasonBadDPoPProof},
		"no proof":       {req(), audit.ReasonBadDPoPProof},
		"two proofs":     {req(cl.proof(t, nil, claims(nil)), cl.proof(t, nil, claims(nil))), audit.ReasonBadDPoPProof},
		"wrong typ":      {req(cl.proof(t, map[string]any{"typ": "JWT"}, claims(nil))), audit.ReasonBadDPoPProof},
		"alg not listed": {req(cl.proof(t, map[string]any{"alg": "ES384"}, claims(nil))), audit.ReasonBadDPoPProof},
		"x5c":            {req(cl.proof(t, map[string]any{"x5c": []string{}}, claims(nil))), audit.ReasonBadDPoPProof},
		"no jwk":         {req(cl.proof(t, map[string]any{"jwk": "k"}, claims(nil))), audit.ReasonBadDPoPProof},
		"private jwk":    {req(cl.proof(t, map[string]any{"jwk": map[string]any{"kty": "EC", "d": "x"}}, claims(nil))), audit.ReasonBadDPoPProof},
		"other jwk":      {req(cl.proof(t, map[string]any{"jwk": other.pub}, claims(nil))), audit.ReasonBadDPoPProof},
		"htm":            {req(cl.proof(t, nil, claims(map[string]any{"htm": "GET"}))), audit.ReasonBadDPoPProof},
		"htu host":       {req(cl.proof(t, nil, claims(map[string]any{"htu": "https://other-rs.example/v1/x"}))), audit.ReasonBadDPoPProof},
		"htu userinfo":   {req(cl.proof(t, nil, claims(map[string]any{"htu": "https://u@api.example/v1/x"}))), audit.ReasonBadDPoPProof},
		"no iat":         {req(cl.proof(t, nil, claims(map[string]any{"iat": nil}))), audit.ReasonBadDPoPProof},
		"huge iat":       {req(cl.proof(t, nil, claims(map[string]any{"iat": json.Number("1e300")}))), audit.ReasonBadDPoPProof},
		"stale":          {req(cl.proof(t, nil, claims(map[string]any{"iat": now.Add(-2 * time.Minute).Unix()}))), audit.ReasonBadDPoPProof},
		"future":         {req(cl.proof(t, nil, claims(map[string]any{"iat": now.Add(2 * time.Minute).Unix()}))), audit.ReasonBadDPoPProof},
		"no ath":         {req(cl.proof(t, nil, claims(map[string]any{"ath": nil}))), audit.ReasonBadDPoPProof},
		"wrong ath":      {req(cl.proof(t, nil, claims(map[string]any{"ath": "AAAA"}))), audit.ReasonBadDPoPProof},
		"another key":    {req(other.proof(t, nil, claims(nil))), audit.ReasonBindingMismatch},
		"no jti":         {req(cl.proof(t, nil, claims(map[string]any{"jti": nil}))), audit.ReasonBadDPoPProof},
		"jti too long":   {req(cl.proof(t, nil, claims(map[string]any{"jti": strings.Repeat("j", 257)}))), audit.ReasonBadDPoPProof},
		"tampered":       {req(cl.proof(t, nil, claims(nil)) + "A"), audit.ReasonBadDPoPProof},
		"no URL":         {Request{Proofs: []string{cl.proof(t, nil, claims(nil))}, Method: "POST", Token: token}, audit.ReasonBadDPoPProof},
	} {
		e := c.Check(tc.r, cl.jkt, now)
		if e == nil || e.Reason != tc.want {
			t.Errorf("%s: got %v, want %s", name, e, tc.want)
		}
	}
	// A replay store that cannot answer refuses the proof (fail closed).
	if e := NewChecker(cfg, failingStore{}).Check(req(cl.proof(t, nil, claims(nil))), cl.jkt, now); e == nil || e.Reason != audit.ReasonBadDPoPProof {
		t.Fatalf("failing store: %v", e)
	}
}

func TestPublicURLReplacesSchemeAndHost(t *testing.T) {
	cfg := Config{PublicURL: "https://API.example:443/"}
	cfg.SetDefaults(nil)
	c := NewChecker(cfg, NewMemoryReplay(nil))
	cl := newClient(t)
	behind := &url.URL{Scheme: "http", Host: "10.0.0.5:8080", Path: "/v1/x"}
	r := Request{Proofs: []string{cl.proof(t, nil, claims(nil))}, Method: "POST", URL: behind, Token: token}
	if e := c.Check(r, cl.jkt, now); e != nil {
		t.Fatalf("proof for the public URL refused: %v", e)
	}
	r.Proofs = []string{cl.proof(t, nil, claims(map[string]any{"htu": "http://10.0.0.5:8080/v1/x"}))}
	if e := c.Check(r, cl.jkt, now); e == nil || !strings.Contains(e.Detail, "https://api.example/v1/x") {
		t.Fatalf("proof for the inner URL: %v", e)
	}
	if got := c.expectedHTU(nil); got != "unknown" {
		t.Fatal(got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxAge: duration.Duration(2 * time.Hour)}, "dpop_max_age"},
		{Config{ProofAlgorithms: []string{"none"}}, `"none" is never allowed`},
		{Config{ProofAlgorithms: []string{"XX"}}, "unknown algorithm"},
		{Config{ProofAlgorithms: []string{"HS256"}}, "symmetric"},
		{Config{ReplayCacheSize: -1}, "dpop_replay_cache"},
		{Config{PublicURL: "ftp://x"}, "scheme"},
		{Config{PublicURL: "https://"}, "no host"},
		{Config{PublicURL: "https://x/path"}, "only scheme and host"},
		{Config{PublicURL: "https://x:bad"}, "not a URL"},
	} {
		errs := tc.cfg.Validate()
		if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, errs, tc.want)
		}
	}
	hsOnly := Config{}
	hsOnly.SetDefaults([]string{"HS256"})
	if strings.Join(hsOnly.ProofAlgorithms, " ") != "RS256 ES256 EdDSA" || time.Duration(hsOnly.MaxAge) != DefaultMaxAge || hsOnly.ReplayCacheSize != DefaultReplaySize {
		t.Fatalf("defaults: %+v", hsOnly)
	}
}
