package tenantgate

import (
	"io"
	"net/http"
	"testing"
)

func TestStripRemovesEverySpelling(t *testing.T) {
	s := newHeaderSet([]string{"X-Internal-Token"})
	h := http.Header{
		"X-Tenant-Id":        {"globex", "initech"},
		"x-tenant-id":        {"globex"},
		"X_Tenant_ID":        {"globex"},
		"X.Tenant.Id":        {"globex"},
		"X-USER-ID":          {"root"},
		"X-User-Roles":       {"admin"},
		"X-Tenant-Assertion": {"forged"},
		"X-Internal-Token":   {"secret"},
		"X_internal.token":   {"secret"},
		"Connection":         {"keep-alive, X-Tenant-ID", "x_user_roles"},
		"Accept":             {"*/*"},
		"X-Tenant-Idx":       {"kept: a different name"},
	}
	s.strip(h)
	want := http.Header{
		"Connection":   {"keep-alive"},
		"Accept":       {"*/*"},
		"X-Tenant-Idx": {"kept: a different name"},
	}
	if len(h) != len(want) {
		t.Fatalf("after strip: %v, want %v", h, want)
	}
	for k, v := range want {
		if got := h[k]; len(got) != len(v) || got[0] != v[0] {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestStripDropsConnectionNamingOnlyIdentity(t *testing.T) {
	h := http.Header{"Connection": {"X-Tenant-Assertion"}}
	newHeaderSet(nil).strip(h)
	if _, ok := h["Connection"]; ok {
		t.Fatalf("Connection kept: %v", h)
	}
}

func TestStripLeavesUnrelatedConnectionAlone(t *testing.T) {
	h := http.Header{"Connection": {"Upgrade", "keep-alive"}}
	newHeaderSet(nil).strip(h)
	if got := h["Connection"]; len(got) != 2 {
		t.Fatalf("Connection rewritten without cause: %v", got)
	}
}

func BenchmarkStrip(b *testing.B) {
	s := newHeaderSet(nil)
	base := http.Header{
		"Accept": {"*/*"}, "User-Agent": {"bench"}, "Authorization": {"Bearer x"},
		"Content-Type": {"application/json"}, "X-Forwarded-For": {"1.2.3.4"},
	}
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{}
		for k, v := range base {
			h[k] = v
		}
		h["X-Tenant-Id"] = []string{"x"}
		s.strip(h)
	}
}

// Trailer values arrive only when the body ends; the stripper must clean
// them at that moment, before reverse_proxy copies them upstream.
func TestTrailerStripperCleansTrailersAtEOF(t *testing.T) {
	trailer := http.Header{}
	body := readerFunc(func(p []byte) (int, error) {
		// net/http fills the declared trailers as the chunked body ends.
		trailer.Set("X-Tenant-ID", "globex")
		trailer.Set("X-Checksum", "kept")
		return 0, io.EOF
	})
	ts := &trailerStripper{ReadCloser: io.NopCloser(body), trailer: trailer, set: newHeaderSet(nil)}
	if _, err := io.ReadAll(ts); err != nil {
		t.Fatal(err)
	}
	if trailer.Get("X-Tenant-ID") != "" || trailer.Get("X-Checksum") != "kept" {
		t.Fatalf("trailers after EOF: %v", trailer)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
