package assertion

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// appendPayload must write exactly what encoding/json writes for the same
// claims, escapes included.
func TestPayloadMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "acme", "al\"ice", `back\slash`, "line\nfeed", "\x00\x1f\x7f", "é€😀",
		"\u2028\u2029", "<script>&amp;", "\xff\xfe invalid utf-8", "/api/v1/e-1/performance"} {
		for _, roles := range [][]string{nil, {}, {s}, {"a", s, "b"}} {
			w := wireClaims{Issuer: s, Audience: "backend", Subject: s, Tenant: "acme", Roles: roles,
				Method: "GET", Path: s, IssuedAt: -5, Expiry: 1 << 40, ID: s}
			checkPayload(t, &w)
		}
	}
}

func FuzzPayload(f *testing.F) {
	f.Add("alice", "/api/v1/x", "r1", int64(1700000000))
	f.Add("a\"<>&\u2028\x01é", "\xff", "", int64(-1))
	f.Fuzz(func(t *testing.T, sub, path, role string, iat int64) {
		checkPayload(t, &wireClaims{Issuer: role, Audience: sub, Subject: sub, Tenant: path, Roles: []string{role, sub},
			Method: role, Path: path, IssuedAt: iat, Expiry: -iat, ID: path})
	})
}

func checkPayload(t *testing.T, w *wireClaims) {
	t.Helper()
	want, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendPayload(nil, w); !bytes.Equal(got, want) {
		t.Errorf("appendPayload(%+v)\n got %s\nwant %s", *w, got, want)
	}
}

// An HS256 assertion made with the pooled MAC verifies with jwx, also when
// many goroutines sign at once with different claims (the pools are shared).
func TestHMACSignConcurrentVerifiesWithJWX(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	s, err := NewHMACSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewHMACVerifier(secret, DefaultAudience)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				c := claims()
				c.Subject = strings.Repeat("u", g*40+i)
				tok, err := s.Sign(c)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.HS256, secret)); err != nil {
					t.Errorf("jwx refused %s: %v", tok, err)
					return
				}
				got, err := v.Verify(tok, c.Method, c.Path, now)
				if err != nil || got.Subject != c.Subject {
					t.Errorf("verify: %v %q", err, got.Subject)
					return
				}
			}
		}()
	}
	wg.Wait()
}
