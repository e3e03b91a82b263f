package tenantgate

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzStrip: whatever names and Connection tokens a client sends, nothing
// that folds to an identity header survives stripping, and nothing else is
// removed.
func FuzzStrip(f *testing.F) {
	for _, seed := range [][2]string{
		{"X-Tenant-ID", "keep-alive"},
		{"x_tenant_id", "X-Tenant-ID"},
		{"X.User.Roles", "x.user.id, Upgrade"},
		{"X-Tenant-Assertion", ",,X_TENANT_ASSERTION,"},
		{"X-Tenant-IDs", "close"},
	} {
		f.Add(seed[0], seed[1])
	}
	s := newHeaderSet(nil)
	f.Fuzz(func(t *testing.T, name, conn string) {
		h := http.Header{name: {"v"}, "Connection": {conn}, "Keep": {"me"}}
		s.strip(h)
		for k := range h {
			if s.has(k) {
				t.Fatalf("identity header %q survived", k)
			}
		}
		for _, v := range h["Connection"] {
			for _, tok := range strings.Split(v, ",") {
				if s.has(strings.TrimSpace(tok)) {
					t.Fatalf("Connection still names %q", tok)
				}
			}
		}
		if h.Get("Keep") != "me" && name != "Keep" && !strings.EqualFold(name, "keep") {
			t.Fatalf("unrelated header removed")
		}
		if !s.has(name) && name != "Connection" && name != "Keep" {
			if _, ok := h[name]; !ok {
				t.Fatalf("non-identity header %q removed", name)
			}
		}
	})
}
