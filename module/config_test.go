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

// allOptionsJSON sets every tenant_gate option, keys in the order the
// module wrote them before the verifier's options moved into the embedded
// verify.Settings, CacheSettings and DPoPConfig (`caddy adapt` output of
// that time).
const allOptionsJSON = `{"issuers":[{"issuer":"https://i","audiences":["a"],"jwks_url":"https://i/j","refresh_interval":300000000000,"dpop":"required","mtls_binding":"optional","token_type":"at+jwt","max_tenants":3}],"algorithms":["RS256","HS256"],"tenant_claim":"v-tenant_claim","user_claim":"v-user_claim","roles_claim":"v-roles_claim","leeway":0,"max_token_bytes":100,"mode":"v-mode","assertion_key":"v-assertion_key","assertion_alg":"v-assertion_alg","assertion_secret":"v-assertion_secret","token_cache":0,"assertion_audience":"v-assertion_audience","assertion_issuer":"v-assertion_issuer","strip_headers":["v-strip_headers"],"token_cookie":"v-token_cookie","token_query":"v-token_query","allowed_origins":["v-allowed_origins"],"realm":"v-realm","metrics_max_tenants":7,"dpop_public_url":"v-dpop_public_url","dpop_max_age":30000000000,"dpop_algorithms":["ES256"],"dpop_replay_cache":5,"audit_chain_key":"v-audit_chain_key","audit_format":"v-audit_format","client_cert_from":["v-client_cert_from"],"shared_store":"v-shared_store","shared_store_prefix":"v-shared_store_prefix","revocation_retention":3600000000000,"revocation_max_entries":9,"backchannel_logout_path":"v-backchannel_logout_path","ssf_receiver_path":"v-ssf_receiver_path","dpop_nonce":true,"dpop_nonce_window":120000000000}`

// The embedded config structs keep the JSON as it was: every key known
// (Caddy decodes strictly), and written back byte for byte, in the same
// order, so `caddy adapt` output does not change.
func TestGateJSONKeysAndOrder(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(allOptionsJSON))
	dec.DisallowUnknownFields()
	var g Gate
	if err := dec.Decode(&g); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(g)
	if err != nil || string(out) != allOptionsJSON {
		t.Fatalf("written back as\n%s\nwant\n%s (%v)", out, allOptionsJSON, err)
	}
	// The verifier gets the options as written: no copy to keep in step.
	cfg := g.verifySettings(func(s string) string { return s })
	if cfg.TenantClaim != "v-tenant_claim" || cfg.EffectiveLeeway() != 0 || cfg.TokenCacheSize() != 0 ||
		cfg.MaxTokenBytes != 100 || cfg.DPoP.PublicURL != "v-dpop_public_url" || len(cfg.DPoP.ProofAlgorithms) != 1 ||
		cfg.DPoP.ReplayCacheSize != 5 || cfg.Issuers[0].Issuer != "https://i" {
		t.Fatalf("verify.Config %+v", cfg)
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
