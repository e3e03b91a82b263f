package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/backend/store"
)

// ProblemContentType is the media type of every error body (RFC 9457).
const ProblemContentType = "application/problem+json"

// ProblemTypePrefix prefixes the problem "type" URIs; the slugs are listed in
// backend/README.md.
const ProblemTypePrefix = "urn:tenantgate:problem:"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	p := Problem{
		Type:     ProblemTypePrefix + slug,
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	}
	if info := requestInfoFrom(r.Context()); info != nil {
		p.RequestID = info.id
		if info.reason == "" {
			info.reason = slug
		}
	}
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func marshalJSON(v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types get here; they always marshal.
		panic(fmt.Sprintf("api: marshal response: %v", err))
	}
	return append(body, '\n')
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, "application/json", marshalJSON(v))
}

func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody reads the capped body; on failure it writes the problem and
// returns ok=false.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !checkContentEncoding(w, r) {
		return nil, false
	}
	if r.ContentLength > s.maxBody {
		s.bodyTooLarge(w, r, fmt.Sprintf("the request body has %d bytes, more than the %d this endpoint takes; send a smaller JSON document", r.ContentLength, s.maxBody))
		return nil, false
	}
	// A LimitReader rather than http.MaxBytesReader: the latter marks the
	// connection to be closed, which bodyTooLarge avoids when it can.
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "unreadable-body", "the request body could not be read: "+err.Error())
		return nil, false
	}
	if int64(len(body)) > s.maxBody {
		s.bodyTooLarge(w, r, fmt.Sprintf("the request body exceeds %d bytes; send a smaller JSON document", s.maxBody))
		return nil, false
	}
	return body, true
}

// decodeJSON decodes body into dst, rejecting unknown fields and trailing
// data. An empty body is allowed only with allowEmpty (dst keeps its zero
// value). On failure it writes a 400 that names the problem and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, body []byte, dst any, allowEmpty bool) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return true
		}
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", "the request body is empty; send a JSON object (Content-Type: application/json)")
		return false
	}
	if err := jsonMediaType(r.Header.Get("Content-Type")); err != nil {
		w.Header().Set("Accept-Post", "application/json")
		writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", err.Error())
		return false
	}
	if err := checkJSONText(body); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", describeJSONError(err))
		return false
	}
	if dec.More() {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", "the request body holds data after the JSON object; send exactly one JSON object")
		return false
	}
	return true
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the request body is not valid JSON (at byte %d): %v", syntax.Offset, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fmt.Sprintf("the request body must be a JSON object, found a JSON %s", typ.Value)
		}
		return fmt.Sprintf("field %q must be a JSON %s, found a JSON %s", field, typ.Type.Kind(), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the request body ends in the middle of the JSON document"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("unknown field %s in the request body; check the spelling against openapi.yaml",
			strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "the request body could not be decoded: " + err.Error()
}

// muxProblems turns the mux's own plain-text 404 and 405 into problem+json.
func muxProblems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &captureWriter{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			writeProblem(w, r, http.StatusNotFound, "no-route",
				fmt.Sprintf("no endpoint at %s; see backend/openapi.yaml or `backend routes` for the list", r.URL.Path))
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed",
				fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
		default:
			// Redirects to a cleaned path and anything else pass through unchanged.
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(b)
}

// requestInfo is filled along the way and logged when the request ends.
type requestInfo struct {
	id, tenant, user, reason string
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

func setLogReason(r *http.Request, reason string) {
	if info := requestInfoFrom(r.Context()); info != nil {
		info.reason = reason
	}
}

// cleanRequestID accepts the gate's X-Request-ID if it is short and printable,
// so a client cannot inject log noise through it.
func cleanRequestID(s string) string {
	if len(s) == 0 || len(s) > 128 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return ""
		}
	}
	return s
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (sw *statusWriter) WriteHeader(status int) {
	if sw.status == 0 {
		sw.status = status
	}
	sw.ResponseWriter.WriteHeader(status)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	n, err := sw.ResponseWriter.Write(b)
	sw.bytes += n
	return n, err
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// logRequests writes one log line per request with request_id and tenant_id
// (the tenant is filled in by RequireAssertion).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: cleanRequestID(r.Header.Get("X-Request-ID"))}
		if info.id == "" {
			info.id = store.NewID("req")
		}
		w.Header().Set("X-Request-ID", info.id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic", zap.String("request_id", info.id), zap.String("tenant_id", info.tenant), zap.Any("panic", v), zap.Stack("stack"))
				if sw.status == 0 {
					// r carries info, so the problem names the request id.
					writeProblem(sw, r, http.StatusInternalServerError, "internal", "the backend failed unexpectedly; retry, and report the request_id if it persists")
				}
			}
			fields := []zap.Field{
				zap.String("request_id", info.id),
				zap.String("tenant_id", info.tenant),
				zap.String("user_id", info.user),
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.Int("status", sw.status),
				zap.Int("bytes", sw.bytes),
				zap.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			}
			if info.reason != "" {
				fields = append(fields, zap.String("reason", info.reason))
			}
			s.log.Info("request", fields...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// internalError logs err and answers 500 without leaking it.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrReplayed) {
		// The request's own transaction found its assertion spent.
		s.refuseSpend(w, r, err)
		return
	}
	id, tenant := "", ""
	if info := requestInfoFrom(r.Context()); info != nil {
		id, tenant = info.id, info.tenant
	}
	s.log.Error("internal error", zap.String("request_id", id), zap.String("tenant_id", tenant), zap.Error(err))
	writeProblem(w, r, http.StatusInternalServerError, "internal", "the backend failed to complete the request; retry, and report the request_id if it persists")
}
