package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// peers are the other products bench-load runs as points of comparison
// when they are on PATH (BENCH_PEERS=off skips them). None is installed by
// bench-load: `go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6`,
// and Debian's `haproxy` package (2.5 or newer has jwt_verify).
type peers struct {
	oauth2Proxy, haproxy string // paths; "" when absent
}

func findPeers() peers {
	var p peers
	if os.Getenv("BENCH_PEERS") == "off" {
		return p
	}
	p.oauth2Proxy, _ = exec.LookPath("oauth2-proxy")
	p.haproxy, _ = exec.LookPath("haproxy")
	return p
}

// startOAuth2Proxy runs oauth2-proxy as a reverse proxy that lets through
// requests bearing a JWT it verifies (skip_jwt_bearer_tokens): the issuer,
// audience and keys of the gate's sites, the keys fetched from the
// upstream's /jwks.json, no OIDC discovery. Request logging stays on, as
// the gate writes its audit record.
func (s *stack) startOAuth2Proxy(bin string, t target) error {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	args := []string{
		"--http-address=" + s.siteAddr[t.name],
		"--upstream=http://" + s.upstream + "/",
		"--provider=oidc",
		"--oidc-issuer-url=" + benchIssuer,
		"--skip-oidc-discovery",
		"--oidc-jwks-url=http://" + s.upstream + "/jwks.json",
		"--login-url=http://" + s.upstream + "/login",
		"--redeem-url=http://" + s.upstream + "/token",
		"--client-id=" + benchAudience,
		"--client-secret=bench-not-used",
		"--cookie-secret=" + hex.EncodeToString(secret),
		"--cookie-secure=false",
		"--email-domain=*",
		"--skip-jwt-bearer-tokens",
		"--skip-provider-button",
	}
	c := exec.Command(bin, args...) // #nosec G204 -- the oauth2-proxy found on PATH
	return s.start(procOAuth2Proxy, c)
}

// startHAProxy runs HAProxy with a bare frontend and one that verifies the
// RS256 bearer token with jwt_verify (the signature only, the usual recipe:
// no JWKS, cache, rules, audit or assertion).
func (s *stack) startHAProxy(bin string, keys *benchKeys, tgts []target) error {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
backend up
	server s1 %s
`, s.upstream)
	for i, t := range tgts {
		fmt.Fprintf(&b, "frontend f%d\n\tbind %s\n", i, s.siteAddr[t.name])
		if strings.Contains(t.name, "jwt_verify") {
			fmt.Fprintf(&b, `	http-request return status 200 if { path /healthz }
	http-request set-var(txn.bearer) http_auth_bearer
	http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('$.alg') -m str RS256 }
	http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("RS256","%s") -m int 1 }
`, keys.rsaPublicPath)
		} else {
			b.WriteString("\thttp-request return status 200 if { path /healthz }\n")
		}
		b.WriteString("\tdefault_backend up\n")
	}
	cfg := filepath.Join(s.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return err
	}
	c := exec.Command(bin, "-db", "-f", cfg) // #nosec G204 -- the haproxy found on PATH
	return s.start(procHAProxy, c)
}
