package verify

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzPreCheck: PreCheck never panics, and anything it accepts is exactly
// three canonical base64url parts that decode and re-encode to themselves,
// with a header that is a JSON object.
func FuzzPreCheck(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
		"eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",
		"a.b.c.d.e",
		"{\"payload\":\"e30\"}",
		"..",
		"eyJhbGciOiJIUzI1NiJ9\n.e30.c2ln",
		"eyJhbGciOiJIUzI1NiJ9.e31.c2ln",
	} {
		f.Add(s)
	}
	strict := base64.RawURLEncoding.Strict()
	f.Fuzz(func(t *testing.T, raw string) {
		if PreCheck(raw, 0) != nil {
			return
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d parts", len(parts))
		}
		for i, p := range parts {
			b, err := strict.DecodeString(p)
			if err != nil {
				t.Fatalf("part %d does not decode: %v", i, err)
			}
			if again := base64.RawURLEncoding.EncodeToString(b); again != p {
				t.Fatalf("part %d is not canonical: %q re-encodes to %q", i, p, again)
			}
		}
		if err := checkJSONObject(mustDecode(parts[0])); err != nil {
			t.Fatalf("accepted header that is not a JSON object: %v", err)
		}
	})
}

func mustDecode(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}
