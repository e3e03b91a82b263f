package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// jsonLogger returns a logger named like Caddy names the audit logger, with
// Caddy's JSON field names, writing to w.
func jsonLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		TimeKey: "ts", LevelKey: "level", NameKey: "logger", MessageKey: "msg",
		EncodeTime: zapcore.EpochTimeEncoder, EncodeLevel: zapcore.LowercaseLevelEncoder,
		EncodeDuration: zapcore.SecondsDurationEncoder,
	})
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)).Named(LoggerName)
}

func sampleRecord() *Record {
	return &Record{
		RequestID:      "6955d633-c034-48b4-aa21-776f79ba06a7",
		TenantID:       "acme",
		UserID:         "user-acme",
		Issuer:         "https://idp.test",
		TokenID:        "t-1",
		Method:         http.MethodPost,
		Path:           "/api/v1/ensemble/create",
		Route:          "/api/v1/ensemble/create",
		Decision:       DecisionAllow,
		Reason:         ReasonOK,
		Status:         201,
		UpstreamStatus: 201,
		DurationMS:     1.25,
		RemoteIP:       "127.0.0.1",
		Binding:        "dpop",
	}
}

func TestWriteFieldsAtTopLevel(t *testing.T) {
	var buf bytes.Buffer
	Write(jsonLogger(&buf, zapcore.InfoLevel), sampleRecord())

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"level": "info", "logger": LoggerName, "msg": "request",
		"request_id": "6955d633-c034-48b4-aa21-776f79ba06a7", "tenant_id": "acme",
		"user_id": "user-acme", "issuer": "https://idp.test", "token_id": "t-1",
		"method": "POST", "path": "/api/v1/ensemble/create", "route": "/api/v1/ensemble/create",
		"decision": "allow", "reason": "ok", "status": 201.0, "upstream_status": 201.0,
		"duration_ms": 1.25, "remote_ip": "127.0.0.1", "binding": "dpop",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, ok := got["ts"]; !ok {
		t.Error("ts missing")
	}
	if _, ok := got["client_request_id"]; ok {
		t.Error("client_request_id written although the client sent none")
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(got) != len(want)+1 {
		t.Errorf("fields %v: want exactly %d (the documented set, ts, level, logger, msg)", keys, len(want)+1)
	}
}

func TestWriteClientRequestID(t *testing.T) {
	var buf bytes.Buffer
	r := sampleRecord()
	r.ClientRequestID = "client-42"
	Write(jsonLogger(&buf, zapcore.InfoLevel), r)
	if !strings.Contains(buf.String(), `"client_request_id":"client-42"`) {
		t.Errorf("client_request_id missing: %s", buf.String())
	}
}

// A record is one JSON line whatever a client put in the fields it controls
// (path, X-Request-ID): no log injection through newlines or quotes.
func TestWriteEscapesClientControlledFields(t *testing.T) {
	var buf bytes.Buffer
	r := sampleRecord()
	r.Path = "/x\n{\"decision\":\"allow\"}"
	r.ClientRequestID = "a\"b\r\nc"
	Write(jsonLogger(&buf, zapcore.InfoLevel), r)
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("%d lines, want 1: %q", n, buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["path"] != r.Path || got["client_request_id"] != r.ClientRequestID {
		t.Errorf("round trip changed fields: %v", got)
	}
}

func TestWriteRespectsLevel(t *testing.T) {
	var buf bytes.Buffer
	Write(jsonLogger(&buf, zapcore.WarnLevel), sampleRecord())
	if buf.Len() != 0 {
		t.Errorf("an audit logger at WARN wrote %q", buf.String())
	}
	Write(zap.NewNop(), sampleRecord()) // must not panic
}

func TestReasonsClosedSet(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
		for _, c := range string(r) {
			if (c < 'a' || c > 'z') && c != '_' {
				t.Errorf("%s is not snake_case", r)
				break
			}
		}
		if r.Title() == "" {
			t.Errorf("%s has no title", r)
		}
	}
	if Reason("nope").Valid() {
		t.Error("an unknown reason is valid")
	}
}

func TestReasonStatus(t *testing.T) {
	for r, want := range map[Reason]int{
		ReasonOK: 200, ReasonPublic: 200, ReasonBadPath: 400, ReasonMissingToken: 401,
		ReasonBadSignature: 401, ReasonTokenExpired: 401, ReasonWrongAudience: 401,
		ReasonUnknownIssuer: 401, ReasonNoTenant: 403, ReasonMissingRole: 403,
		ReasonTenantMismatch: 403, ReasonTenantNotAllow: 403, ReasonNoRoute: 403,
		ReasonKeysUnavailable: 503, ReasonInternal: 500,
		ReasonRateLimited: 429, ReasonRateLimitUnavailable: 503,
	} {
		if got := r.Status(); got != want {
			t.Errorf("%s.Status() = %d, want %d", r, got, want)
		}
	}
}

// BenchmarkWrite is the cost of one audit record through a JSON core, the
// encoder Caddy's `format json` uses, to io.Discard.
func BenchmarkWrite(b *testing.B) {
	l := jsonLogger(io.Discard, zapcore.InfoLevel)
	r := sampleRecord()
	b.ReportAllocs()
	start := cpuTime()
	defer func() { reportCPU(b, start, 1) }()
	for b.Loop() {
		Write(l, r)
	}
}

// BenchmarkWriteDisabled is the cost when the audit logger is filtered out.
func BenchmarkWriteDisabled(b *testing.B) {
	l := jsonLogger(io.Discard, zapcore.WarnLevel)
	r := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		Write(l, r)
	}
}
