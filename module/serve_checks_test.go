package tenantgate

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tenantgate/tenantgate/module/verify"
)

// A cookie token on an unsafe method needs a same-origin signal; a header
// token does not, and safe methods never do.
func TestServeCookieCSRF(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) {
		g.TokenCookie = "session"
		g.AllowedOrigins = []string{"https://app.example.com"}
	})
	c := newCaptured()
	u.g.auditLog = c.l
	cases := []struct {
		name    string
		method  string
		cookie  bool
		headers map[string]string
		want    int
	}{
		{"cross-site form POST", "POST", true, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403},
		{"same-site but another origin", "POST", true, map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"no signal at all", "POST", true, nil, 403},
		{"Origin not listed", "POST", true, map[string]string{"Origin": "https://app.example.com.evil.example"}, 403},
		{"same-origin POST", "POST", true, map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"typed by the user", "POST", true, map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"listed Origin", "POST", true, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://APP.example.com"}, 200},
		{"cross-site GET", "GET", true, map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
		{"header token, cross-site POST", "POST", false, map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/whoami"
			if tc.method == "POST" {
				path = "/api/trade"
			}
			r := httptest.NewRequest(tc.method, path, nil)
			tok := u.token(t, "acme", "trade")
			if tc.cookie {
				r.AddCookie(&http.Cookie{Name: "session", Value: tok})
			} else {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			up := &upstream{}
			before := len(c.recs)
			w, _ := u.serve(r, up)
			if w.Code != tc.want || up.called != (tc.want == 200) {
				t.Fatalf("status %d (upstream called %v), want %d: %s", w.Code, up.called, tc.want, w.Body)
			}
			if tc.want == 403 {
				if p := problemOf(t, w); p.Reason != "csrf_suspected" {
					t.Fatalf("reason %q", p.Reason)
				}
				c.mu.Lock()
				rec := c.recs[before]
				c.mu.Unlock()
				if rec["reason"] != "csrf_suspected" || rec["issuer"] != unitIssuer || rec["user_id"] != "alice" {
					t.Fatalf("record %v", rec)
				}
			}
		})
	}
}

// A failure after the signature verified still names issuer and token in
// the record, and nothing reaches the upstream.
func TestServeWrongAudienceRecordNamesIssuer(t *testing.T) {
	u := newUnitGate(t, nil)
	c := newCaptured()
	u.g.auditLog = c.l
	tok, _ := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"not-api"}).Subject("alice").
		Expiration(time.Now().Add(time.Minute)).JwtID("j-aud").Claim("tenant_id", "acme").Build()
	signed, _ := jwt.Sign(tok, jwt.WithKey(jwa.ES256, u.key))
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+string(signed))
	up := &upstream{}
	w, _ := u.serve(r, up)
	if w.Code != 401 || up.called {
		t.Fatalf("status %d, upstream called %v", w.Code, up.called)
	}
	rec := c.only(t)
	if rec["reason"] != "wrong_audience" || rec["issuer"] != unitIssuer || rec["token_id"] != "j-aud" || rec["tenant_id"] != "" {
		t.Fatalf("record %v", rec)
	}
}

// token_type at+jwt refuses an ID token (typ JWT) and takes an access token.
func TestServeTokenType(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { g.Issuers[0].TokenType = "at+jwt" })
	sign := func(typ string) string {
		tok, _ := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"api"}).Subject("alice").
			Expiration(time.Now().Add(time.Minute)).Claim("tenant_id", "acme").Build()
		h := jws.NewHeaders()
		_ = h.Set(jws.TypeKey, typ)
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, u.key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(signed)
	}
	for typ, want := range map[string]int{"JWT": 401, "at+jwt": 200, "application/at+jwt": 200} {
		r := httptest.NewRequest("GET", "/api/whoami", nil)
		r.Header.Set("Authorization", "Bearer "+sign(typ))
		w, _ := u.serve(r, &upstream{})
		if w.Code != want {
			t.Fatalf("typ %s: %d, want %d", typ, w.Code, want)
		}
		if want == 401 && problemOf(t, w).Reason != "wrong_token_type" {
			t.Fatalf("typ %s: %s", typ, w.Body)
		}
	}
}

// The assertion never outlives the token.
func TestServeAssertionExpiryBoundByToken(t *testing.T) {
	u := newUnitGate(t, nil)
	exp := time.Now().Add(20 * time.Second).Truncate(time.Second)
	tok, _ := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"api"}).Subject("alice").
		Expiration(exp).Claim("tenant_id", "acme").Build()
	signed, _ := jwt.Sign(tok, jwt.WithKey(jwa.ES256, u.key))
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+string(signed))
	up := &upstream{}
	if w, _ := u.serve(r, up); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	c, err := u.verifier.Verify(up.header.Get("X-Tenant-Assertion"), "GET", "/api/whoami", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Expiry.After(exp) {
		t.Fatalf("assertion exp %s after the token's %s", c.Expiry, exp)
	}
	// A long-lived token: the assertion keeps its 60 s.
	r = httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	up = &upstream{}
	u.serve(r, up)
	c, err = u.verifier.Verify(up.header.Get("X-Tenant-Assertion"), "GET", "/api/whoami", time.Now())
	if err != nil || c.Expiry.Sub(c.IssuedAt) > 60*time.Second {
		t.Fatalf("assertion %+v %v", c, err)
	}
}

// leeway 0s means zero: a token that expired two seconds ago is refused.
func TestServeZeroLeeway(t *testing.T) {
	zero := verify.Duration(0)
	u := newUnitGate(t, func(g *Gate) { g.Leeway = &zero })
	tok, _ := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"api"}).Subject("alice").
		Expiration(time.Now().Add(-2*time.Second)).Claim("tenant_id", "acme").Build()
	signed, _ := jwt.Sign(tok, jwt.WithKey(jwa.ES256, u.key))
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+string(signed))
	w, _ := u.serve(r, &upstream{})
	if w.Code != 401 || problemOf(t, w).Reason != "token_expired" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// The default (no leeway given) still allows 30 s.
	d := newUnitGate(t, nil)
	signed, _ = jwt.Sign(tok, jwt.WithKey(jwa.ES256, d.key))
	r = httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+string(signed))
	if w, _ := d.serve(r, &upstream{}); w.Code != 200 {
		t.Fatalf("default leeway: %d %s", w.Code, w.Body)
	}
}

// hijackRecorder is a ResponseWriter that can be hijacked, as a server's is.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// An upgraded connection gets its record when the 101 is sent, while the
// tunnel is still open, and only that one record.
func TestServeUpgradeRecordedAtSwitch(t *testing.T) {
	u := newUnitGate(t, nil)
	c := newCaptured()
	u.g.auditLog = c.l
	client, server := net.Pipe()
	defer client.Close()
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	recordsDuringTunnel := -1
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return err
		}
		c.mu.Lock()
		recordsDuringTunnel = len(c.recs)
		c.mu.Unlock()
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1)) // the tunnel, until the client closes
		return conn.Close()
	})
	done := make(chan error, 1)
	go func() {
		done <- u.g.ServeHTTP(&hijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: server}, r, next)
	}()
	_, _ = client.Write([]byte("x"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if recordsDuringTunnel != 1 {
		t.Fatalf("%d records while the tunnel was open, want 1", recordsDuringTunnel)
	}
	if rec := c.only(t); rec["status"] != float64(101) || rec["decision"] != "allow" {
		t.Fatalf("record %v", rec)
	}
}

func TestCheckOrigin(t *testing.T) {
	for o, ok := range map[string]bool{
		"https://app.example.com": true, "http://localhost:3000": true,
		"https://app.example.com/": false, "app.example.com": false, "https://a/b": false, "ftp://a": false,
	} {
		if err := checkOrigin(o); (err == nil) != ok {
			t.Errorf("%s: %v", o, err)
		}
	}
	if !strings.Contains(checkOrigin("x").Error(), "scheme://host") {
		t.Error("the message should say what an origin looks like")
	}
}

// The key gauges describe the live configs: a config starts them with the
// keys it has, and the last instance naming an issuer takes its series away.
func TestJWKSGaugesFollowLiveConfigs(t *testing.T) {
	m := processMetrics
	iss := "https://gauge.unit"
	count := func() int {
		n := 0
		for _, c := range []prometheus.Collector{m.jwksKeys, m.jwksLast} {
			ch := make(chan prometheus.Metric, 100)
			c.Collect(ch)
			close(ch)
			for metric := range ch {
				var d dto.Metric
				_ = metric.Write(&d)
				for _, l := range d.GetLabel() {
					if l.GetName() == "issuer" && l.GetValue() == iss {
						n++
					}
				}
			}
		}
		return n
	}
	m.holdIssuers([]string{iss})
	m.holdIssuers([]string{iss}) // the next config, loaded before the old one goes
	m.JWKSInUse(iss, 0, time.Time{})
	var d dto.Metric
	_ = m.jwksKeys.WithLabelValues(iss).Write(&d)
	if got := d.GetGauge().GetValue(); got != 0 || count() != 1 {
		t.Fatalf("a config without keys: keys %v, %d series (no last-success series)", got, count())
	}
	m.JWKSInUse(iss, 2, time.Now())
	if count() != 2 {
		t.Fatalf("%d series", count())
	}
	m.releaseIssuers([]string{iss})
	if count() != 2 {
		t.Fatal("series went while a config still names the issuer")
	}
	m.releaseIssuers([]string{iss})
	if count() != 0 {
		t.Fatalf("a removed issuer keeps %d series", count())
	}
}
