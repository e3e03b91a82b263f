package tenantgate

import (
	"net/http"
	"strings"
	"testing"
)

// naiveOwned is the fuzz oracle, written independently of headerSet: a
// name is the gate's when lower-casing it and turning '_' and '.' into '-'
// gives one of these spellings.
var naiveOwned = []string{
	"x-tenant-id", "x-user-id", "x-user-roles", "x-tenant-assertion",
	"x-request-id", "dpop", "client-cert", "client-cert-chain",
}

func naiveIsOwned(name string) bool {
	folded := strings.ReplaceAll(strings.ReplaceAll(strings.ToLower(name), "_", "-"), ".", "-")
	for _, n := range naiveOwned {
		if folded == n {
			return true
		}
	}
	return false
}

// FuzzStrip: whatever names and Connection tokens a client sends, nothing
// the naive oracle calls the gate's survives stripping, and nothing else is
// removed.
func FuzzStrip(f *testing.F) {
	for _, seed := range [][2]string{
		{"X-Tenant-ID", "keep-alive"},
		{"x_tenant_id", "X-Tenant-ID"},
		{"X.User.Roles", "x.user.id, Upgrade"},
		{"X-Tenant-Assertion", ",,X_TENANT_ASSERTION,"},
		{"X-Tenant-IDs", "close"},
		{"Client_Cert", "client.cert.chain"},
		{"x.request.id", "DPOP"},
		{"X-Tenant-ID\u0130", "x-tenant-\u0131d"}, // non-ASCII letters that fold to ASCII in Unicode case rules
	} {
		f.Add(seed[0], seed[1])
	}
	s := newHeaderSet(nil)
	f.Fuzz(func(t *testing.T, name, conn string) {
		h := http.Header{name: {"v"}, "Connection": {conn}, "Keep": {"me"}}
		s.strip(h)
		for k := range h {
			if naiveIsOwned(k) {
				t.Fatalf("owned header %q survived", k)
			}
		}
		var kept []string
		for _, v := range h["Connection"] {
			for _, tok := range strings.Split(v, ",") {
				tok = strings.TrimSpace(tok)
				if naiveIsOwned(tok) {
					t.Fatalf("Connection still names %q", tok)
				}
				if tok != "" {
					kept = append(kept, tok)
				}
			}
		}
		// Every Connection token the oracle does not own is still there.
		for _, tok := range strings.Split(conn, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !naiveIsOwned(tok) && name != "Connection" {
				found := false
				for _, k := range kept {
					found = found || k == tok
				}
				if !found {
					t.Fatalf("Connection token %q removed; kept %q", tok, kept)
				}
			}
		}
		if name != "Keep" && name != "Connection" && h.Get("Keep") != "me" {
			t.Fatalf("unrelated header removed")
		}
		if !naiveIsOwned(name) && name != "Connection" && name != "Keep" {
			if _, ok := h[name]; !ok {
				t.Fatalf("header %q removed, but the oracle does not own it", name)
			}
		}
	})
}
