package tenantid

import (
	"strings"
	"testing"
)

func TestGrammar(t *testing.T) {
	for _, ok := range []string{"acme", "a", "A.b_c-9", "...", ".a", "a..b", strings.Repeat("x", 64)} {
		if !Valid(ok) {
			t.Errorf("%q refused: %v", ok, Check(ok))
		}
	}
	for _, bad := range []string{"", ".", "..", strings.Repeat("x", 65), "a/b", "a b", "é", "a\x00", "a%2e", "ACME\n"} {
		if Valid(bad) {
			t.Errorf("%q accepted", bad)
		}
		if err := Check(bad); err == nil || !strings.Contains(err.Error(), "tenant id") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
