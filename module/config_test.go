package tenantgate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tenantgate/tenantgate/module/verify"
)

// verify.Duration stands in for caddy.Duration in the JSON config (verify
// does not import Caddy): it must read and write every value the same.
func TestVerifyDurationIsCaddyDuration(t *testing.T) {
	for _, in := range []string{`300000000000`, `0`, `-5`, `"5m"`, `"1d"`, `"1.5d"`, `"1d12h30m"`, `"2h1d"`, `"-1d"`,
		`"250ms"`, `"0s"`, `"soon"`, `"d"`, `"1dd"`, `""`, `"5"`, `1.5`, `"1µs"`} {
		var c caddy.Duration
		var v verify.Duration
		cerr := json.Unmarshal([]byte(in), &c)
		verr := json.Unmarshal([]byte(in), &v)
		if (cerr == nil) != (verr == nil) || int64(c) != int64(v) {
			t.Errorf("%s: caddy %d (%v), verify %d (%v)", in, int64(c), cerr, int64(v), verr)
		}
		if cerr != nil {
			continue
		}
		cout, _ := json.Marshal(c)
		vout, _ := json.Marshal(v)
		if string(cout) != string(vout) {
			t.Errorf("%s: written by caddy as %s, by verify as %s", in, cout, vout)
		}
	}
}

// Each option value is checked in one place: a Caddyfile and the same
// config as JSON get the same message, the Caddyfile's with its line.
func TestCaddyfileAndJSONShareOneCheck(t *testing.T) {
	for _, tc := range []struct{ line, says string }{
		{"mode shadow", `mode "shadow": want enforce or report`},
		{"assertion_alg RS256", `assertion_alg "RS256": want EdDSA or HS256`},
		{"token_query a=b", `token_query "a=b": not a query parameter name`},
		{"client_cert_from 10.0.0.0/33", `client_cert_from "10.0.0.0/33": want a CIDR such as 10.0.0.0/8 or an IP address`},
		{"dpop_max_age 2h", `dpop_max_age: 2h0m0s is outside 1s..1h0m0s`},
		{"algorithms RS256 none", `algorithms: "none" is never allowed`},
		{"issuer https://i {\n jwks_file /dev/null\n audience a\n dpop maybe\n}", `issuer "https://i": dpop "maybe": want required or optional`},
	} {
		src := "tenant_gate {\n" + tc.line + "\n}"
		var g Gate
		perr := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
		if perr == nil || !strings.Contains(perr.Error(), tc.says+", at Testfile:") {
			t.Errorf("%q: the Caddyfile gave %v", tc.line, perr)
			continue
		}
		raw, _ := json.Marshal(g)
		var j Gate
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := j.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		verr := j.Validate()
		_ = j.Cleanup()
		cancel()
		if verr == nil || strings.Count(verr.Error(), tc.says) != 1 {
			t.Errorf("%q: want Validate to say %q once, got %v", tc.line, tc.says, verr)
		}
	}
}

// A line of an issuer the parser could not read hides the block's
// missing-setting problems (it may be the line meant to set them), never
// a bad value on another line of it.
func TestUnreadIssuerLineKeepsValueProblems(t *testing.T) {
	var g Gate
	err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`tenant_gate {
	issuer https://i {
		audiance a
		jwks_file /dev/null
		dpop maybe
	}
}`))
	if err == nil {
		t.Fatal("no problem found")
	}
	msg := err.Error()
	for _, want := range []string{
		`unrecognized issuer subdirective "audiance", at Testfile:3`,
		`issuer "https://i": dpop "maybe": want required or optional, at Testfile:5`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "audience is required") {
		t.Errorf("knock-on problem reported:\n%s", msg)
	}
}
