package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// Lenient input is refused with 415/400 and a message that names it.
func TestLenientInputRefused(t *testing.T) {
	h := newHarness(t)
	create := `{"name":"x","method":"majority","agents":[{"agent_id":"a","agent_type":"t"}]}`
	send := func(method, target, body string, hdr map[string]string) response {
		path, _, _ := strings.Cut(target, "?")
		all := map[string]string{assertion.Header: h.sign(h.claims("acme", method, path))}
		for k, v := range hdr {
			all[k] = v
		}
		return h.raw(method, target, []byte(body), all)
	}
	with := func(k, v string) map[string]string {
		return map[string]string{"Content-Type": "application/json", k: v}
	}

	r := send("POST", "/api/v1/ensemble/create", create, with("Content-Encoding", "gzip"))
	expectProblem(t, r, http.StatusUnsupportedMediaType, "Content-Encoding", "gzip", "identity")
	if r.header.Get("Accept-Encoding") != "identity" {
		t.Errorf("Accept-Encoding %q", r.header.Get("Accept-Encoding"))
	}
	expectProblem(t, send("POST", "/api/v1/hedging/execute", "", map[string]string{"Content-Encoding": "br", "Idempotency-Key": "k1"}),
		http.StatusUnsupportedMediaType, "br")
	expectStatus(t, send("POST", "/api/v1/ensemble/create", create, with("Content-Encoding", "identity")), http.StatusCreated)

	expectProblem(t, send("POST", "/api/v1/ensemble/create", create, map[string]string{"Content-Type": "application/json; charset=utf-16"}),
		http.StatusUnsupportedMediaType, "utf-16")
	expectProblem(t, send("POST", "/api/v1/ensemble/create", create, map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}),
		http.StatusUnsupportedMediaType, "iso-8859-1")
	expectStatus(t, send("POST", "/api/v1/ensemble/create", create, map[string]string{"Content-Type": "application/json; charset=UTF-8"}), http.StatusCreated)

	expectProblem(t, send("GET", "/api/v1/ensemble/?limit=1&limit=2", "", nil), http.StatusBadRequest, "limit", "more than once")
	expectProblem(t, send("GET", "/api/v1/ensemble/?limit=%zz", "", nil), http.StatusBadRequest, "malformed")
	expectProblem(t, h.raw("GET", "/healthz?a=1&a=2", nil, nil), http.StatusBadRequest, "a is given more than once")
	for _, v := range []string{"0x10", "+5", "05", "1e1"} {
		expectProblem(t, send("GET", "/api/v1/ensemble/?limit="+v, "", nil), http.StatusBadRequest, "limit")
	}
	for v, why := range map[string]string{"0x1p-2": "not a decimal", "1e-400": "too small", "1e400": "too large", "NaN": "not a decimal"} {
		expectProblem(t, send("GET", "/api/v1/hedging/analysis?target_ratio="+v, "", nil), http.StatusBadRequest, "target_ratio", why)
	}
	expectStatus(t, send("GET", "/api/v1/hedging/analysis?target_ratio=0.5", "", nil), http.StatusOK)

	for body, why := range map[string]string{
		`{"orders":[{"asset":"BTC","side":"sell","quantity":1e-400}]}`: "too small",
		`{"orders":[{"asset":"BTC","side":"sell","quantity":1e400}]}`:  "too large",
		`{"orders":[{"asset":"BTC","side":"sell","quantity":0x1p-2}]}`: "not valid JSON",
	} {
		r := send("POST", "/api/v1/hedging/execute", body, with("Idempotency-Key", "num-"+why))
		expectProblem(t, r, http.StatusBadRequest, why)
	}
}
