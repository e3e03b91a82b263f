package tenantgate

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
)

// signEvent signs claims with key (ES256) and typ, as the unit issuer.
func signEvent(t *testing.T, key jwk.Key, typ string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, "k1")
	if typ != "" {
		_ = hdr.Set(jws.TypeKey, typ)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func unitLogoutClaims(jti string, o map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": unitIssuer, "aud": "api", "sub": "alice", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": jti, "events": map[string]any{verify.BackchannelLogoutEvent: map[string]any{}}}
	for k, v := range o {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func postForm(u *unitGate, path, contentType, body string) *httptest.ResponseRecorder {
	r := newTestRequest(httptest.NewRequest("POST", path, nil).Context(), "POST", path, "")
	r.Body = http.NoBody
	if body != "" {
		r = httptest.NewRequest("POST", path, strings.NewReader(body))
		r = newTestRequestFrom(r)
	}
	r.Header.Set("Content-Type", contentType)
	w, _ := u.serve(r, &upstream{})
	return w
}

// newTestRequestFrom gives r the vars newTestRequest sets (client IP).
func newTestRequestFrom(r *http.Request) *http.Request {
	base := newTestRequest(r.Context(), r.Method, r.URL.String(), "")
	base.Body, base.ContentLength = r.Body, r.ContentLength
	return base
}

func whoami(t *testing.T, u *unitGate, tok string) int {
	t.Helper()
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w, _ := u.serve(r, &upstream{})
	return w.Code
}

// TestReceiversRevokeAndChainTheirAudit: a back-channel logout and a SET
// revoke through the gate's own paths, bad ones revoke nothing, and every
// line (requests, revocations, refusals, the admin API's) is one chain
// that verifies.
func TestReceiversRevokeAndChainTheirAudit(t *testing.T) {
	t.Setenv("TG_UNIT_CHAIN_KEY", testChainKey)
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() }) // after the gate's cleanup, which closes the chain
	l := fileAuditLogger(f)
	u := newUnitGate(t, func(g *Gate) {
		isolatedStore(t)(g)
		g.BackchannelLogoutPath, g.SSFReceiverPath = "/oidc/bcl", "/ssf/events"
		g.AuditChainKey = "{env.TG_UNIT_CHAIN_KEY}"
	})
	u.g.auditLog, u.g.receivers.sink.log = l, l

	old := u.token(t, "acme")
	if whoami(t, u, old) != 200 {
		t.Fatal("the token does not pass before the logout")
	}
	form := func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }
	const formType = "application/x-www-form-urlencoded"

	// Refused: nothing revoked.
	for name, tc := range map[string]struct{ ct, body string }{
		"nonce":        {formType, form(signEvent(t, u.key, "logout+jwt", unitLogoutClaims("n1", map[string]any{"nonce": "x"})))},
		"wrong type":   {"application/json", form(signEvent(t, u.key, "", unitLogoutClaims("n2", nil)))},
		"no token":     {formType, "logout_token="},
		"two tokens":   {formType, "logout_token=a&logout_token=b"},
		"wrong aud":    {formType, form(signEvent(t, u.key, "", unitLogoutClaims("n3", map[string]any{"aud": "other"})))},
		"oversized":    {formType, "logout_token=" + strings.Repeat("a", minReceiverBody)},
		"access token": {formType, form(old)},
	} {
		w := postForm(u, "/oidc/bcl", tc.ct, tc.body)
		var body logoutError
		if w.Code != 400 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error != "invalid_request" || body.Description == "" ||
			w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %v", name, w.Code, w.Body, w.Header())
		}
	}
	if n := u.g.revocations.Set().Len(); n != 0 {
		t.Fatalf("refused logouts revoked %d entries", n)
	}
	if w := postForm(u, "/oidc/bcl", formType, ""); w.Code != 400 {
		t.Fatalf("empty body: %d", w.Code)
	}
	r := httptest.NewRequest("GET", "/oidc/bcl", nil)
	if w, _ := u.serve(r, &upstream{}); w.Code != 405 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("GET: %d", w.Code)
	}

	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	good := form(signEvent(t, u.key, "logout+jwt", unitLogoutClaims("ok-1", map[string]any{"sid": "sess-9"})))
	w := postForm(u, "/oidc/bcl", formType, good)
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || w.Body.Len() != 0 {
		t.Fatalf("logout: %d %q", w.Code, w.Body)
	}
	if code := whoami(t, u, old); code != 401 {
		t.Fatalf("after the logout: %d", code)
	}
	if c := u.g.revocations.Set().Counts(); c[revocation.KindSub] != 1 || c[revocation.KindSid] != 1 {
		t.Fatalf("entries %v", c)
	}
	if w := postForm(u, "/oidc/bcl", formType, good); w.Code != 400 || !strings.Contains(w.Body.String(), "replay") {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}

	// SSF: a session-revoked for bob, and the error codes.
	set := func(jti string, o map[string]any) string {
		c := map[string]any{"iss": unitIssuer, "aud": "api", "iat": time.Now().Unix(), "jti": jti,
			"sub_id": map[string]any{"format": "iss_sub", "iss": unitIssuer, "sub": "bob"},
			"events": map[string]any{revocation.EventSessionRevoked: map[string]any{}}}
		for k, v := range o {
			c[k] = v
		}
		return signEvent(t, u.key, "secevent+jwt", c)
	}
	for _, tc := range []struct{ ct, body, code string }{
		{"application/jwt", set("s1", nil), "invalid_request"},
		{"application/secevent+jwt", set("s2", map[string]any{"aud": "nope"}), "invalid_audience"},
		{"application/secevent+jwt", set("s3", map[string]any{"iss": "https://nobody"}), "invalid_issuer"},
		{"application/secevent+jwt", set("s4", map[string]any{"sub_id": map[string]any{"format": "iss_sub", "iss": "https://x", "sub": "b"}}), "access_denied"},
		{"application/secevent+jwt", "e30.e30.e30", "invalid_key"}, // no alg: the signature cannot be checked
		{"application/secevent+jwt", "not-a-jwt", "invalid_request"},
		{"application/secevent+jwt", signEvent(t, u.key, "JWT", map[string]any{"iss": unitIssuer, "aud": "api", "iat": time.Now().Unix(), "jti": "s5", "events": map[string]any{}}), "invalid_request"},
	} {
		w := postForm(u, "/ssf/events", tc.ct, tc.body)
		var body ssfError
		if w.Code != 400 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Err != tc.code {
			t.Errorf("%s: %d %s, want %s", tc.ct, w.Code, w.Body, tc.code)
		}
	}
	if w := postForm(u, "/ssf/events", "application/secevent+jwt", set("ok-s", nil)); w.Code != 202 || w.Body.Len() != 0 {
		t.Fatalf("SET: %d %s", w.Code, w.Body)
	}
	if w := postForm(u, "/ssf/events", "application/secevent+jwt", set("ign", map[string]any{"events": map[string]any{"urn:x": map[string]any{}}})); w.Code != 202 {
		t.Fatalf("unknown event: %d %s", w.Code, w.Body)
	}
	if c := u.g.revocations.Set().Counts(); c[revocation.KindSub] != 2 {
		t.Fatalf("entries %v", c)
	}

	// The admin API's line goes to the newest gate's chain: this one.
	req := httptest.NewRequest("POST", "/tenant-gate/revocations", strings.NewReader(`{"jti":"admin-1"}`))
	if err := (adminRevocations{}).handle(httptest.NewRecorder(), req); err != nil {
		t.Fatal(err)
	}
	whoami(t, u, old) // a record after it, so cutting it is not cutting the tail

	raw, _ := os.ReadFile(path)
	for _, want := range []string{`"msg":"revocation"`, `"source":"backchannel_logout"`, `"source":"ssf"`, `"kind":"sid"`, `"sid":"sess-9"`,
		`"event":"revocation_refused"`, `"refusal":"access_denied"`, `"event":"security_event_ignored"`, `"event_types":["urn:x"]`,
		`"token_id":"ok-1"`, `"remote_ip":"192.0.2.1"`, `"source":"admin_api"`, `"shared":false`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	rep, err := audit.VerifyFiles([][]byte{[]byte(testChainKey)}, []string{path}, true)
	if err != nil || !rep.OK() || len(rep.Chains) != 1 || rep.Chains[0].Last < 20 {
		t.Fatalf("chain: %v %+v\n%s", err, rep, raw)
	}
	// Every revocation line is in the chain: removing one breaks it.
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for i, line := range lines {
		if strings.Contains(line, `"source":"admin_api"`) {
			cut := append(append([]string{}, lines[:i]...), lines[i+1:]...)
			p2 := filepath.Join(t.TempDir(), "cut.log")
			_ = os.WriteFile(p2, []byte(strings.Join(cut, "\n")+"\n"), 0o600)
			if rep, _ := audit.VerifyFiles([][]byte{[]byte(testChainKey)}, []string{p2}, true); rep.OK() {
				t.Fatal("deleting the admin API's revocation line left the chain whole")
			}
		}
	}
}

func TestValidateReceivers(t *testing.T) {
	for _, tc := range []struct {
		bcl, ssf string
		ok       bool
	}{
		{"/oidc/bcl", "/ssf", true},
		{"", "", true},
		{"oidc", "", false},
		{"/a b", "", false},
		{"", "/ssf/*", false},
		{"/x?y", "", false},
		{"/same", "/same", false},
	} {
		s := SharedState{BackchannelLogoutPath: tc.bcl, SSFReceiverPath: tc.ssf}
		if err := s.validateSharedState(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

func TestReceiverPathsInTheCaddyfile(t *testing.T) {
	var g Gate
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_gate {\n backchannel_logout_path /bcl\n ssf_receiver_path /ssf\n}")); err != nil ||
		g.BackchannelLogoutPath != "/bcl" || g.SSFReceiverPath != "/ssf" {
		t.Fatalf("%v %+v", err, g.SharedState)
	}
	for _, bad := range []string{"backchannel_logout_path bcl", "ssf_receiver_path /a?b", "ssf_receiver_path", "backchannel_logout_path /a /b"} {
		var g Gate
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_gate {\n" + bad + "\n}"))
		if err == nil || !strings.Contains(err.Error(), "Testfile:2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// FuzzLogoutForm: the form reader never panics, and returns a token only
// from a form that holds exactly one logout_token.
func FuzzLogoutForm(f *testing.F) {
	for _, s := range [][2]string{
		{"application/x-www-form-urlencoded", "logout_token=eyJ.eyJ.sig"},
		{"application/x-www-form-urlencoded; charset=UTF-8", "a=1&logout_token=x%2By&b"},
		{"application/x-www-form-urlencoded", "logout_token=a&logout_token=b"},
		{"multipart/form-data; boundary=x", "--x--"},
		{"application/x-www-form-urlencoded", "logout_token=%zz"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ct, body string) {
		tok, err := readLogoutForm(ct, []byte(body))
		if err != nil {
			if tok != "" {
				t.Fatal("a token with an error")
			}
			return
		}
		form, perr := url.ParseQuery(body)
		if tok == "" || perr != nil || len(form["logout_token"]) != 1 || form.Get("logout_token") != tok {
			t.Fatalf("token %q from %q", tok, body)
		}
	})
}
