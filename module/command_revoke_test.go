package tenantgate

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The revoke command posts to the admin endpoint; here the endpoint is the
// real admin handler behind a test server.
func TestRevokeCommand(t *testing.T) {
	u := newUnitGate(t, isolatedStore(t))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := (adminRevocations{}).handle(w, r); err != nil {
			apiErr, _ := err.(caddy.APIError)
			http.Error(w, apiErr.Err.Error(), apiErr.HTTPStatus)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	run := func(args ...string) (string, error) {
		c := revokeCommand()
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(append(args, "--address", addr))
		err := c.Execute()
		return out.String(), err
	}
	out, err := run("--sub", "cli-test-user", "--iss", unitIssuer, "--reason", "offboarded")
	if err != nil || !strings.Contains(out, `"sub":"cli-test-user"`) || !strings.Contains(out, `"source":"admin_api"`) {
		t.Fatalf("%s %v", out, err)
	}
	if u.g.revocations.Set().Len() != 1 {
		t.Fatal("not stored")
	}
	if out, err := run("--sid", "cli-session", "--iss", unitIssuer); err != nil || !strings.Contains(out, `"kind":"sid"`) || u.g.revocations.Set().Counts()["sid"] != 1 {
		t.Fatalf("--sid: %s %v", out, err)
	}
	for _, bad := range [][]string{
		{"--sub", "a", "--tenant", "b"},
		{"--sid", "a", "--jti", "b"},
		{"--iss", "x"},
		{"--jti", " "},
	} {
		if _, err := run(bad...); err == nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("%v: %v", bad, err)
		}
	}
	// The gate's own checks answer through the command's error.
	if _, err := run("--tenant", "not a tenant"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("bad tenant: %v", err)
	}
}
