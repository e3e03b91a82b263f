package tenantgate

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkProxyHeaderWork measures what reverse_proxy (Caddy's code, not
// the gate's) does per request with the request headers, for the header set
// bench-load's bare site forwards and the one a gate site forwards (the
// client's Authorization replaced by X-Request-ID, the identity headers and
// the assertion). It is the part of the gate's "added" CPU that lies outside
// the handler and that no change of the handler can remove without dropping
// a header the README promises:
//
//   - clone: cloneRequest's Header.Clone plus the three X-Forwarded-* it
//     sets (the gate's map then holds 9 entries, more than the 8 of Go's
//     small map, so it grows);
//   - log_with: its debug logger's With(zap.Object("request", ...)), which
//     encodes every request header into a JSON encoder on every request,
//     whatever the log level;
//   - write: Header.Write toward the upstream (sorted keys).
func BenchmarkProxyHeaderWork(b *testing.B) {
	assertion := strings.Repeat("a", 340) // an EdDSA assertion of bench-load's size
	sets := []struct {
		name string
		h    http.Header
	}{
		{"bare", http.Header{
			"User-Agent":    {"Go-http-client/1.1"},
			"Authorization": {"Bearer " + strings.Repeat("t", 700)},
		}},
		{"gate", http.Header{
			"User-Agent":         {"Go-http-client/1.1"},
			"X-Request-Id":       {"0b0a6f8e-8a0e-4d8e-9f5e-0d7c6b5a4e3f"},
			"X-Tenant-Id":        {"acme"},
			"X-User-Id":          {"user-1"},
			"X-User-Roles":       {"ensemble:read,performance:write"},
			"X-Tenant-Assertion": {assertion},
		}},
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.WarnLevel)
	logger := zap.New(core)
	for _, s := range sets {
		b.Run("clone/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h := s.h.Clone()
				h.Set("X-Forwarded-For", "127.0.0.1")
				h.Set("X-Forwarded-Proto", "http")
				h.Set("X-Forwarded-Host", "127.0.0.1:8080")
			}
		})
		h := s.h.Clone()
		h.Set("X-Forwarded-For", "127.0.0.1")
		h.Set("X-Forwarded-Proto", "http")
		h.Set("X-Forwarded-Host", "127.0.0.1:8080")
		r, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://127.0.0.1:8080/api/v1/ensemble/e-1/performance", nil)
		r.Header, r.RemoteAddr, r.RequestURI = h, "127.0.0.1:40000", "/api/v1/ensemble/e-1/performance"
		b.Run("log_with/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = logger.With(zap.String("upstream", "127.0.0.1:9000"),
					zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: r}))
			}
		})
		b.Run("write/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = h.Write(io.Discard)
			}
		})
	}
}
