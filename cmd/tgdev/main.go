// Command tgdev makes the development keys `make run` needs and mints dev
// tokens (`make token`). It is a developer convenience: production tokens
// come from a real identity provider.
package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/tenantid"
)

// Defaults shared with caddyfile/Caddyfile.
const (
	devIssuer   = "https://idp.tenantgate.dev"
	devAudience = "alphapulse-api"
	devKeyID    = "dev-es256-1"
)

const usageText = `usage:
  tgdev keys  [--dir .dev]                 make dev keys (kept when they exist)
  tgdev token [--dir .dev] --tenant T [--user U] [--roles "r1 r2"] [--ttl 1h]
              tenant: [A-Za-z0-9._-]{1,64}; ttl: a Go duration > 0 (30m, 1h, 24h)`

func main() {
	var err error
	switch {
	case len(os.Args) < 2:
		fmt.Fprintln(os.Stderr, usageText)
		os.Exit(2)
	case os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help":
		fmt.Println(usageText)
		return
	case os.Args[1] == "keys":
		err = keysCmd(os.Args[2:])
	case os.Args[1] == "token":
		var tok string
		if tok, err = tokenCmd(os.Args[2:]); err == nil {
			fmt.Println(tok)
		}
	default:
		fmt.Fprintf(os.Stderr, "tgdev: unknown command %q\n%s\n", os.Args[1], usageText)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tgdev:", err)
		os.Exit(1)
	}
}

// keysCmd writes, when missing: the dev issuer's private JWK and its public
// JWKS (read by the gate through jwks_file), and the gate's assertion key
// pair (private for the gate, public for the backend).
func keysCmd(args []string) error {
	fl := flag.NewFlagSet("keys", flag.ContinueOnError)
	fl.SetOutput(os.Stdout)
	dir := fl.String("dir", ".dev", "directory for the keys")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	issuerKey := filepath.Join(*dir, "issuer.jwk.json")
	if _, err := os.Stat(issuerKey); errors.Is(err, fs.ErrNotExist) {
		raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		priv, err := jwk.FromRaw(raw)
		if err != nil {
			return err
		}
		_ = priv.Set(jwk.KeyIDKey, devKeyID)
		_ = priv.Set(jwk.AlgorithmKey, jwa.ES256)
		_ = priv.Set(jwk.KeyUsageKey, "sig")
		pub, err := priv.PublicKey()
		if err != nil {
			return err
		}
		set := jwk.NewSet()
		_ = set.AddKey(pub)
		if err := writeJSON(filepath.Join(*dir, "jwks.json"), set, 0o644); err != nil {
			return err
		}
		if err := writeJSON(issuerKey, priv, 0o600); err != nil {
			return err
		}
	}
	gateKey := filepath.Join(*dir, "assertion.pem")
	if _, err := os.Stat(gateKey); errors.Is(err, fs.ErrNotExist) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		privPEM, err := assertion.EncodePrivateKeyPEM(priv)
		if err != nil {
			return err
		}
		pubPEM, err := assertion.EncodePublicKeyPEM(pub)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*dir, "assertion.pub.pem"), pubPEM, 0o644); err != nil { // #nosec G306 -- a public key
			return err
		}
		if err := os.WriteFile(gateKey, privPEM, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// tokenCmd mints a dev access token. It refuses what the gate would refuse
// anyway (a malformed tenant, a lifetime that is already over), so that
// `make token` never prints a token that can only fail.
func tokenCmd(args []string) (string, error) {
	fl := flag.NewFlagSet("token", flag.ContinueOnError)
	fl.SetOutput(os.Stdout)
	dir := fl.String("dir", ".dev", "directory holding the dev keys")
	tenant := fl.String("tenant", "acme", "tenant_id claim: [A-Za-z0-9._-]{1,64}")
	user := fl.String("user", "alice", "sub claim")
	roles := fl.String("roles", "", "space-separated roles")
	ttl := fl.Duration("ttl", time.Hour, "lifetime, a Go duration > 0 (30m, 1h, 24h)")
	if err := fl.Parse(args); err != nil {
		return "", err
	}
	if fl.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q (quote roles: --roles \"r1 r2\")", fl.Arg(0))
	}
	if err := tenantid.Check(*tenant); err != nil {
		return "", fmt.Errorf("--tenant (TENANT=) %q: %w; the gate would answer 403 no_tenant", *tenant, err)
	}
	if *ttl <= 0 {
		return "", fmt.Errorf("--ttl (TTL=) %s: the lifetime must be positive, e.g. 30m or 1h; the gate would answer 401 token_expired", *ttl)
	}
	if strings.TrimSpace(*user) == "" {
		return "", errors.New("--user (USER=) must not be empty")
	}

	data, err := os.ReadFile(filepath.Join(*dir, "issuer.jwk.json"))
	if err != nil {
		return "", fmt.Errorf("no dev issuer key (run `make run` or `bin/tgdev keys` first): %w", err)
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(*dir, "issuer.jwk.json"), err)
	}
	now := time.Now()
	b := jwt.NewBuilder().
		Issuer(devIssuer).
		Audience([]string{devAudience}).
		Subject(*user).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(*ttl)).
		JwtID(fmt.Sprintf("dev-%d", now.UnixNano())).
		Claim("tenant_id", *tenant).
		Claim("roles", strings.Fields(*roles))
	tok, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("build token: %w", err)
	}
	// typ at+jwt (RFC 9068): an access token, so production.local.Caddyfile's
	// `token_type at+jwt` accepts it; the dev Caddyfile does not check typ.
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(signed), nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), mode)
}
