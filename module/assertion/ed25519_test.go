package assertion

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

// The Ed25519 signer hands jwx curve25519-voi's view of the key: its
// signatures must be exactly crypto/ed25519's (Ed25519 is deterministic),
// so a backend verifying with any RFC 8032 implementation sees no change.
// Claims of many sizes exercise the hashing of messages of every length
// class; fresh keys exercise the key expansion.
func TestEd25519SignatureIsStdlibs(t *testing.T) {
	for k := 0; k < 8; k++ {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewEd25519Signer(priv)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < 40; n++ {
			c := claims()
			c.Subject = strings.Repeat("u", k*40+n)
			c.Roles = make([]string, n%5)
			for i := range c.Roles {
				c.Roles[i] = strings.Repeat("r", i+n)
			}
			tok, err := s.Sign(c)
			if err != nil {
				t.Fatal(err)
			}
			dot := strings.LastIndexByte(tok, '.')
			want := base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(tok[:dot])))
			if got := tok[dot+1:]; got != want {
				t.Fatalf("key %d, claims %d: signature %s, crypto/ed25519 makes %s", k, n, got, want)
			}
		}
	}
}
