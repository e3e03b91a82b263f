package assertion

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newPair(t testing.TB) (*Signer, *Verifier) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewEd25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewEd25519Verifier(pub, DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	v.Issuer = DefaultIssuer
	return s, v
}

var now = time.Unix(1_800_000_000, 0)

func claims() Claims {
	return Claims{
		Issuer: DefaultIssuer, Audience: DefaultAudience, Tenant: "acme", Subject: "alice",
		Roles: []string{"ensemble:read"}, Method: "GET", Path: "/api/v1/whoami",
		IssuedAt: now, Expiry: now.Add(30 * time.Second), ID: "req-1",
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s, v := newPair(t)
	tok, err := s.Sign(claims())
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok, "GET", "/api/v1/whoami", now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "acme" || got.Subject != "alice" || got.ID != "req-1" || len(got.Roles) != 1 || got.Roles[0] != "ensemble:read" {
		t.Fatalf("claims lost in transit: %+v", got)
	}
}

func TestVerifyRefuses(t *testing.T) {
	s, v := newPair(t)
	other, _ := newPair(t)
	good, _ := s.Sign(claims())
	forged, _ := other.Sign(claims())
	noRoles := claims()
	noRoles.Roles = nil
	long := claims()
	long.Expiry = now.Add(10 * time.Minute) // clamped by Sign to MaxLifetime
	longTok, _ := s.Sign(long)
	wrongAud := claims()
	wrongAud.Audience = "other-backend"
	wrongAudTok, _ := s.Sign(wrongAud)
	wrongIss := claims()
	wrongIss.Issuer = "someone-else"
	wrongIssTok, _ := s.Sign(wrongIss)
	noTenant := claims()
	noTenant.Tenant = ""
	noTenantTok, _ := s.Sign(noTenant)

	cases := []struct {
		name, tok, method, path string
		at                      time.Time
		want                    error
	}{
		{"empty", "", "GET", "/api/v1/whoami", now, ErrInvalid},
		{"garbage", "a.b.c", "GET", "/api/v1/whoami", now, ErrInvalid},
		{"other key", forged, "GET", "/api/v1/whoami", now, ErrInvalid},
		{"expired", good, "GET", "/api/v1/whoami", now.Add(2 * time.Minute), ErrInvalid},
		{"issued in the future", good, "GET", "/api/v1/whoami", now.Add(-time.Minute), ErrInvalid},
		{"other path", good, "GET", "/api/v1/ensemble/", now, ErrMismatch},
		{"other method", good, "POST", "/api/v1/whoami", now, ErrMismatch},
		{"path with query", good, "GET", "/api/v1/whoami?x=1", now, ErrMismatch},
		{"wrong audience", wrongAudTok, "GET", "/api/v1/whoami", now, ErrInvalid},
		{"wrong issuer", wrongIssTok, "GET", "/api/v1/whoami", now, ErrInvalid},
		{"no tenant", noTenantTok, "GET", "/api/v1/whoami", now, ErrInvalid},
		{"tampered payload", tamper(good), "GET", "/api/v1/whoami", now, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(c.tok, c.method, c.path, c.at)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := v.Verify(longTok, "GET", "/api/v1/whoami", now.Add(59*time.Second)); err != nil {
		t.Fatalf("clamped token refused inside its minute: %v", err)
	}
	if _, err := v.Verify(longTok, "GET", "/api/v1/whoami", now.Add(70*time.Second)); err == nil {
		t.Fatal("Sign did not clamp exp to MaxLifetime")
	}
	if tok, _ := s.Sign(noRoles); tok == "" {
		t.Fatal("no roles must still sign")
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	// Flip one character of the payload; the signature no longer matches.
	b := []byte(parts[1])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return parts[0] + "." + string(b) + "." + parts[2]
}

func TestHMAC(t *testing.T) {
	if _, err := NewHMACSigner([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := NewHMACVerifier([]byte("short"), "backend"); err == nil {
		t.Fatal("short secret accepted")
	}
	secret := []byte(strings.Repeat("k", 32))
	s, err := NewHMACSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewHMACVerifier(secret, DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.Sign(claims())
	if _, err := v.Verify(tok, "GET", "/api/v1/whoami", now); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHMACVerifier(secret, ""); err == nil {
		t.Fatal("empty audience accepted")
	}
}

func TestConstructorsRefuseBadKeys(t *testing.T) {
	if _, err := NewEd25519Signer(ed25519.PrivateKey("short")); err == nil {
		t.Fatal("short private key accepted")
	}
	if _, err := NewEd25519Verifier(ed25519.PublicKey("short"), "backend"); err == nil {
		t.Fatal("short public key accepted")
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := NewEd25519Verifier(pub, ""); err == nil {
		t.Fatal("empty audience accepted")
	}
}

func TestPEMRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	privPEM, err := EncodePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gotPriv, err := LoadPrivateKeyPEM(write("k.pem", privPEM))
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key: %v", err)
	}
	gotPub, err := LoadPublicKeyPEM(write("k.pub", pubPEM))
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("public key: %v", err)
	}
	for name, load := range map[string]func(string) error{
		"private from public PEM": func(p string) error { _, err := LoadPrivateKeyPEM(p); return err },
		"public from private PEM": func(p string) error { _, err := LoadPublicKeyPEM(p); return err },
	} {
		src := write("swap-"+strings.ReplaceAll(name, " ", "-"), pubPEM)
		if strings.HasPrefix(name, "public") {
			src = write("swap2", privPEM)
		}
		if load(src) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadPrivateKeyPEM(write("junk", []byte("not pem"))); err == nil {
		t.Error("junk accepted")
	}
	if _, err := LoadPrivateKeyPEM(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func BenchmarkSign(b *testing.B) {
	s, _ := newPair(b)
	c := claims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s, v := newPair(b)
	tok, _ := s.Sign(claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, "GET", "/api/v1/whoami", now); err != nil {
			b.Fatal(err)
		}
	}
}

// HS256 assertions are checked as strictly as EdDSA ones: another secret,
// another algorithm, a changed byte or another request all fail.
func TestHMACStrict(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	s, _ := NewHMACSigner(secret)
	v, _ := NewHMACVerifier(secret, DefaultAudience)
	v.Issuer = DefaultIssuer
	otherSigner, _ := NewHMACSigner([]byte(strings.Repeat("t", 32)))
	edSigner, edVerifier := newPair(t)
	good, err := s.Sign(claims())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Verify(good, "GET", "/api/v1/whoami", now); err != nil || got.Tenant != "acme" {
		t.Fatalf("good token: %v %+v", err, got)
	}
	otherTok, _ := otherSigner.Sign(claims())
	edTok, _ := edSigner.Sign(claims())
	for name, tok := range map[string]string{
		"other secret": otherTok, "EdDSA token": edTok, "tampered": tamper(good),
	} {
		if _, err := v.Verify(tok, "GET", "/api/v1/whoami", now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := edVerifier.Verify(good, "GET", "/api/v1/whoami", now); !errors.Is(err, ErrInvalid) {
		t.Errorf("the EdDSA verifier took an HS256 token: %v", err)
	}
	if _, err := v.Verify(good, "POST", "/api/v1/whoami", now); !errors.Is(err, ErrMismatch) {
		t.Errorf("other method: %v", err)
	}
	if _, err := v.Verify(good, "GET", "/api/v1/whoami", now.Add(time.Minute)); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired: %v", err)
	}
	if s.Algorithm() != "HS256" || edSigner.Algorithm() != "EdDSA" {
		t.Errorf("algorithms %s %s", s.Algorithm(), edSigner.Algorithm())
	}
}

// Claims holding JSON's special characters survive the trip.
func TestSignEscapes(t *testing.T) {
	s, v := newPair(t)
	c := claims()
	c.Subject = "al\"ice\\\n\u2028\x00é"
	c.Path = "/api/v1/<script>&"
	c.Roles = nil
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok, "GET", c.Path, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != c.Subject || len(got.Roles) != 0 {
		t.Errorf("got %+v", got)
	}
}

func TestLoadSecretFile(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 32)
	for name, tc := range map[string]struct {
		content, want string
	}{
		"plain":    {long, long},
		"newline":  {long + "\n", long},
		"crlf":     {long + "\r\n", long},
		"short":    {"short\n", ""},
		"short-nl": {strings.Repeat("x", 31) + "\n", ""},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadSecretFile(p)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: accepted", name)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	if _, err := LoadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func BenchmarkSignHS256(b *testing.B) {
	s, _ := NewHMACSigner([]byte(strings.Repeat("k", 32)))
	c := claims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}
