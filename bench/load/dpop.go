package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// dpopSource is a cyclingSource of RS256 tokens bound (cnf.jkt) to one
// ES256 client key, and the proofs for them: each request gets a fresh
// proof (new jti, current iat), signed here in the load generator, so the
// client's signing competes for the same cores as Caddy (a cost the other
// targets do not have; the gate-side cost alone is BenchmarkServeDPoPVersusBearer).
type dpopSource struct {
	cyclingSource
	key jwk.Key
	seq atomic.Uint64
}

func newDPoPSource(rsaKey *rsa.PrivateKey) (*dpopSource, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	d := &dpopSource{cyclingSource: cyclingSource{toks: make([]string, cyclingTokens)}, key: key}
	cnf := map[string]any{"jkt": base64.RawURLEncoding.EncodeToString(tp)}
	for i := range d.toks {
		if d.toks[i], err = mintWith(jwa.RS256, rsaKey, "rsa-1", fmt.Sprintf("dpop-%d", i), map[string]any{"cnf": cnf}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// proof is a DPoP proof (RFC 9449) for GET url with token.
func (d *dpopSource) proof(url, token string) (string, error) {
	pub, err := d.key.PublicKey()
	if err != nil {
		return "", err
	}
	ath := sha256.Sum256([]byte(token))
	payload, err := json.Marshal(map[string]any{"jti": fmt.Sprintf("p-%d", d.seq.Add(1)), "htm": "GET", "htu": url,
		"iat": time.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(ath[:])})
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "dpop+jwt")
	_ = hdr.Set(jws.JWKKey, pub)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, d.key, jws.WithProtectedHeaders(hdr)))
	return string(out), err
}
