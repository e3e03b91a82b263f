package dpop

import (
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

func TestNoncesWindowsAndRotation(t *testing.T) {
	secret := NewNonceSecret()
	n := NewNonces(secret, time.Minute)
	start := time.Unix(1_700_000_020, 0) // 40 s into a minute window
	issued := n.Nonce(start)
	if len(issued) != 43 || strings.ContainsAny(issued, "+/= \"\\") {
		t.Fatalf("nonce %q: want 43 base64url characters (NQCHAR only)", issued)
	}
	if n.Nonce(start.Add(19*time.Second)) != issued {
		t.Fatal("the nonce changed within its window")
	}
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{19 * time.Second, true},     // same window
		{20 * time.Second, true},     // next window: still accepted
		{79 * time.Second, true},     // last instant of the next window
		{80 * time.Second, false},    // two windows on: refused
		{10 * time.Minute, false},    // long gone
		{-41 * time.Second, false},   // a window before it was issued
		{-40 * time.Second, true},    // same window, earlier
		{-40*time.Second - 1, false}, // the window before
		{20*time.Second - time.Nanosecond, true},
	} {
		if got := n.Accepts(issued, start.Add(tc.after)); got != tc.want {
			t.Errorf("accepted %s after issue = %v, want %v", tc.after, got, tc.want)
		}
	}
	if n.Nonce(start.Add(20*time.Second)) == issued {
		t.Fatal("the nonce did not rotate with the window")
	}

	// A replica with the same secret and window accepts it; another secret,
	// or another window length, does not.
	if !NewNonces(secret, time.Minute).Accepts(issued, start) {
		t.Fatal("a second source over the same secret refused the nonce")
	}
	if NewNonces(NewNonceSecret(), time.Minute).Accepts(issued, start) {
		t.Fatal("a source with another secret accepted the nonce")
	}
	if NewNonces(secret, 2*time.Minute).Nonce(start) == issued {
		t.Fatal("another window length derived the same nonce")
	}
	// Replacing the secret (adopting the replicas' shared one) retires
	// every nonce of the old one at once.
	secret.Set([]byte("another secret of the replicas, 32+ bytes long"))
	if n.Accepts(issued, start) {
		t.Fatal("a nonce of the replaced secret is still accepted")
	}
	if got := NewNonces(secret, 0).Window(); got != DefaultNonceWindow {
		t.Fatalf("window 0 gives %s, want the default", got)
	}
}

func TestNoncesCompareWholeValues(t *testing.T) {
	n := NewNonces(NewNonceSecret(), time.Minute)
	now := time.Unix(1_700_000_000, 0)
	good := n.Nonce(now)
	flip := []byte(good)
	flip[len(flip)-1] ^= 1
	for _, bad := range []string{"", good[:42], good + "A", string(flip), strings.ToUpper(good), " " + good} {
		if n.Accepts(bad, now) {
			t.Errorf("accepted %q", bad)
		}
	}
	if !n.Accepts(good, now) {
		t.Fatal("refused its own nonce")
	}
}

func TestEqualConstantTime(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 1}, {"abc", "abc", 1}, {"abc", "abd", 0}, {"abc", "ab", 0}, {"abc", "Abc", 0}, {"", "a", 0},
	} {
		if got := equalConstantTime(tc.a, tc.b); got != tc.want {
			t.Errorf("%q vs %q: %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	a, b := strings.Repeat("x", 43), strings.Repeat("x", 43)
	if testing.AllocsPerRun(100, func() { equalConstantTime(a, b) }) != 0 {
		t.Fatal("the compare allocates")
	}
}

func TestJSONString(t *testing.T) {
	for raw, want := range map[string]string{`"abc"`: "abc", `"a\u0062c"`: "abc", `""`: ""} {
		if got, ok := jsonString([]byte(raw)); !ok || got != want {
			t.Errorf("%s: %q %v", raw, got, ok)
		}
	}
	for _, raw := range []string{`7`, `null`, `["a"]`, `"`, ``, `{"a":1}`} {
		if _, ok := jsonString([]byte(raw)); ok {
			t.Errorf("%s read as a string", raw)
		}
	}
}

func TestNoncesRotatesSoonInTheLastFifth(t *testing.T) {
	n := NewNonces(NewNonceSecret(), 10*time.Second)
	base := time.Unix(1_700_000_000, 0) // a multiple of 10 s
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, false}, {7 * time.Second, false}, {8*time.Second - 1, false},
		{8 * time.Second, true}, {10*time.Second - 1, true}, {10 * time.Second, false},
	} {
		if got := n.RotatesSoon(base.Add(tc.at)); got != tc.want {
			t.Errorf("RotatesSoon at +%s = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// TestCheckerNonceOrder: signature and binding are judged before the nonce,
// and a proof refused for its nonce leaves its jti unspent.
func TestCheckerNonceOrder(t *testing.T) {
	cfg := Config{}
	cfg.SetDefaults([]string{"ES256"})
	nonces := NewNonces(NewNonceSecret(), time.Minute)
	c := NewChecker(cfg, NewMemoryReplay(func() time.Time { return now })).WithNonces(nonces)
	cl, other := newClient(t), newClient(t)
	req := func(p string) Request { return Request{Proofs: []string{p}, Method: "POST", URL: reqURL, Token: token} }
	check := func(name, proof string, want audit.Reason) {
		t.Helper()
		e := c.Check(req(proof), cl.jkt, now)
		switch {
		case want == "" && e != nil:
			t.Errorf("%s: refused: %v", name, e)
		case want != "" && (e == nil || e.Reason != want):
			t.Errorf("%s: got %v, want %s", name, e, want)
		}
	}
	good := nonces.Nonce(now)
	check("no nonce", cl.proof(t, nil, claims(map[string]any{"jti": "spent-once"})), audit.ReasonDPoPNonceRequired)
	check("made-up nonce", cl.proof(t, nil, claims(map[string]any{"nonce": "made-up"})), audit.ReasonDPoPNonceRequired)
	check("huge nonce", cl.proof(t, nil, claims(map[string]any{"nonce": strings.Repeat("n", 300)})), audit.ReasonDPoPNonceRequired)
	check("nonce not a string", cl.proof(t, nil, claims(map[string]any{"nonce": 7})), audit.ReasonBadDPoPProof)
	check("bad signature, no nonce", cl.proof(t, nil, claims(nil))+"A", audit.ReasonBadDPoPProof)
	check("another key, no nonce", other.proof(t, nil, claims(nil)), audit.ReasonBindingMismatch)
	check("wrong htm, no nonce", cl.proof(t, nil, claims(map[string]any{"htm": "GET"})), audit.ReasonBadDPoPProof)
	// The retry reuses the refused proof's jti: nothing was claimed.
	check("retry with the nonce", cl.proof(t, nil, claims(map[string]any{"jti": "spent-once", "nonce": good})), "")
	check("replayed with the nonce", cl.proof(t, nil, claims(map[string]any{"jti": "spent-once", "nonce": good})), audit.ReasonBadDPoPProof)
	stale := nonces.Nonce(now.Add(-2 * time.Minute))
	check("stale nonce", cl.proof(t, nil, claims(map[string]any{"nonce": stale})), audit.ReasonDPoPNonceRequired)
	previous := nonces.Nonce(now.Add(-time.Minute))
	check("previous window's nonce", cl.proof(t, nil, claims(map[string]any{"nonce": previous})), "")

	// Without a source, a nonce claim is ignored (RFC 9449 only requires it
	// when the server supplied one).
	plain := NewChecker(cfg, NewMemoryReplay(nil))
	if e := plain.Check(req(cl.proof(t, nil, claims(map[string]any{"nonce": "anything"}))), cl.jkt, now); e != nil {
		t.Fatalf("a checker without nonces refused a proof with a nonce: %v", e)
	}
}

func BenchmarkNoncesAccepts(b *testing.B) {
	n := NewNonces(NewNonceSecret(), time.Minute)
	now := time.Now()
	good := n.Nonce(now)
	b.ReportAllocs()
	for b.Loop() {
		if !n.Accepts(good, now) {
			b.Fatal("refused")
		}
	}
}
