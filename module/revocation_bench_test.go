package tenantgate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/revocation"
)

// BenchmarkServeHTTPRevocations is an allowed request (a cache hit) with an
// empty revocation set and with 100,000 entries that do not match it: the
// check must cost the same.
func BenchmarkServeHTTPRevocations(b *testing.B) {
	jsonAudit := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named(audit.LoggerName)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	tok := testToken(b, "acme")
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			g := newTestGateWith(b, jsonAudit, func(g *Gate) {
				g.SharedStorePrefix = fmt.Sprintf("bench-%s-%d", b.Name(), n)
				g.AssertionKey, g.AssertionAlg, g.AssertionSecret = "", "HS256", strings.Repeat("s", 32)
			})
			now := time.Now()
			for i := range n {
				v := fmt.Sprintf("flood-%07d", i)
				var req revocation.Request
				switch i % 3 {
				case 0:
					req.JTI = &v
				case 1:
					req.Sub = &v
				default:
					req.Tenant = &v
				}
				e, err := req.Entry(now, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := g.revocations.Revoke(context.Background(), e); err != nil {
					b.Fatal(err)
				}
			}
			rec := httptest.NewRecorder()
			if _ = g.ServeHTTP(rec, newTestRequest(context.Background(), http.MethodGet, "/api/x", tok), next); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r := newTestRequest(context.Background(), http.MethodGet, "/api/x", tok)
				clear(w.h)
				_ = g.ServeHTTP(w, r, next)
			}
		})
	}
}
