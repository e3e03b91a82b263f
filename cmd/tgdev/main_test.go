package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// `make token` must refuse what the gate would refuse, with the flag (and
// the make variable) named, rather than print a token that can only fail.
func TestTokenRefusesWhatTheGateRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := keysCmd([]string{"--dir", dir}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tenant", "ac me"}, "TENANT="},
		{[]string{"--tenant", ""}, "TENANT="},
		{[]string{"--tenant", strings.Repeat("a", 65)}, "TENANT="},
		{[]string{"--tenant", ".."}, "TENANT="},
		{[]string{"--ttl", "-1h"}, "TTL="},
		{[]string{"--ttl", "0s"}, "TTL="},
		{[]string{"--user", " "}, "USER="},
		{[]string{"stray"}, "unexpected argument"},
	} {
		tok, err := tokenCmd(append([]string{"--dir", dir}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got token %q, error %v; want an error naming %s", tc.args, tok, err, tc.want)
		}
	}
}

func TestTokenIsAnAccessTokenTheDevKeysVerify(t *testing.T) {
	dir := t.TempDir()
	if err := keysCmd([]string{"--dir", dir}); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenCmd([]string{"--dir", dir, "--tenant", "globex.eu-1_a", "--user", "bob", "--roles", "ensemble:read hedging:trade", "--ttl", "30m"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.ReadFile(dir + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(devIssuer), jwt.WithAudience(devAudience))
	if err != nil {
		t.Fatalf("the dev JWKS does not verify the token: %v", err)
	}
	if tenant, _ := parsed.Get("tenant_id"); tenant != "globex.eu-1_a" || parsed.Subject() != "bob" {
		t.Errorf("tenant %v, sub %q", tenant, parsed.Subject())
	}
	if life := parsed.Expiration().Sub(parsed.IssuedAt()); life.Minutes() != 30 {
		t.Errorf("lifetime %s, want 30m", life)
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	if typ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Errorf("typ %q, want at+jwt (production.local.Caddyfile requires it)", typ)
	}
	roles, _ := parsed.Get("roles")
	if b, _ := json.Marshal(roles); string(b) != `["ensemble:read","hedging:trade"]` {
		t.Errorf("roles %s", b)
	}
}
