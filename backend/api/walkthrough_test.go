package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// curl sends what scripts/run.sh prints, byte for byte on the wire as curl
// would: `curl -d BODY` is a POST with
// Content-Type: application/x-www-form-urlencoded unless the command adds
// -H 'Content-Type: application/json' (extra "Content-Type", ...), and
// `curl -X POST` without -d is a POST with neither a body nor a
// Content-Length. The gate forwards the
// request and adds X-Tenant-Assertion (and, here, the Idempotency-Key the
// walkthrough sets).
func (h *harness) curl(tenant, method, path string, body *string, extra ...string) response {
	h.t.Helper()
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n", method, path, h.srv.Listener.Addr())
	fmt.Fprintf(&req, "X-Tenant-Assertion: %s\r\n", h.sign(h.claims(tenant, method, path)))
	contentType := "application/x-www-form-urlencoded"
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] == "Content-Type" {
			contentType = extra[i+1]
			continue
		}
		fmt.Fprintf(&req, "%s: %s\r\n", extra[i], extra[i+1])
	}
	if body != nil {
		fmt.Fprintf(&req, "Content-Length: %d\r\nContent-Type: %s\r\n", len(*body), contentType)
	}
	req.WriteString("\r\n")
	if body != nil {
		req.WriteString(*body)
	}
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(req.Bytes()); err != nil {
		h.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func ptr(s string) *string { return &s }

// curlJSON is curl with -H 'Content-Type: application/json', as the README
// and scripts/run.sh print every command that sends a body.
func (h *harness) curlJSON(tenant, method, path string, body *string, extra ...string) response {
	h.t.Helper()
	return h.curl(tenant, method, path, body, append([]string{"Content-Type", "application/json"}, extra...)...)
}

// TestWalkthroughAsPrinted replays the curl commands scripts/run.sh prints,
// with their bodies and content types exactly as curl sends them.
func TestWalkthroughAsPrinted(t *testing.T) {
	h := newHarness(t)

	r := h.curl("acme", "GET", "/api/v1/whoami", nil)
	expectStatus(t, r, http.StatusOK)
	if str(r.json(t), "tenant_id") != "acme" {
		t.Errorf("whoami = %s", r.body)
	}

	// Ensemble walkthrough.
	r = h.curlJSON("acme", "POST", "/api/v1/ensemble/create",
		ptr(`{"name":"momentum","method":"weighted_average","agents":[{"agent_id":"a1","agent_type":"technical","initial_weight":1},{"agent_id":"a2","agent_type":"sentiment","initial_weight":1}]}`))
	expectStatus(t, r, http.StatusCreated)
	e := str(r.json(t), "ensemble_id")
	if e == "" || len(list(r.json(t), "agents")) != 2 {
		t.Fatalf("create = %s", r.body)
	}
	r = h.curlJSON("acme", "POST", "/api/v1/ensemble/"+e+"/register-agent",
		ptr(`{"agent_id":"a3","agent_type":"fundamental","initial_weight":0.5}`))
	expectStatus(t, r, http.StatusCreated)
	r = h.curlJSON("acme", "POST", "/api/v1/ensemble/"+e+"/predict",
		ptr(`{"symbol":"BTC-USD","signals":[{"agent_id":"a1","signal":0.6,"confidence":0.9},{"agent_id":"a2","signal":0.2,"confidence":0.5},{"agent_id":"a3","signal":-0.1,"confidence":0.4}]}`))
	expectStatus(t, r, http.StatusCreated)
	pred := r.json(t)
	// (0.6 + 0.2 - 0.05) / 2.5 = 0.3 -> buy
	near(t, "walkthrough signal", num(pred, "signal"), 0.3)
	if str(pred, "action") != "buy" {
		t.Errorf("predict = %s", r.body)
	}
	p := str(pred, "prediction_id")
	r = h.curlJSON("acme", "POST", "/api/v1/ensemble/"+e+"/outcomes", ptr(`{"prediction_id":"`+p+`","realized_return":0.012}`))
	expectStatus(t, r, http.StatusCreated)
	near(t, "position return", num(r.json(t), "position_return"), 0.012)
	r = h.curlJSON("acme", "POST", "/api/v1/ensemble/"+e+"/optimize-weights", ptr(`{"lookback":50}`))
	expectStatus(t, r, http.StatusOK)
	if num(r.json(t), "predictions_used") != 1 || len(list(r.json(t), "weights")) != 3 {
		t.Errorf("optimize-weights = %s", r.body)
	}
	r = h.curl("acme", "GET", "/api/v1/ensemble/"+e+"/performance", nil)
	expectStatus(t, r, http.StatusOK)
	if ens := r.json(t)["ensemble"].(map[string]any); num(ens, "hits") != 1 {
		t.Errorf("performance = %s", r.body)
	}

	// Hedging walkthrough.
	r = h.curl("acme", "GET", "/api/v1/hedging/analysis", nil)
	expectStatus(t, r, http.StatusOK)
	r = h.curl("acme", "POST", "/api/v1/hedging/execute", nil, "Idempotency-Key", "demo-1")
	expectStatus(t, r, http.StatusOK)
	ex := r.json(t)
	orders := list(ex, "orders")
	if str(ex, "source") != "recommended" || len(orders) != 1 {
		t.Fatalf("execute with no body = %s", r.body)
	}
	if o := orders[0].(map[string]any); str(o, "asset") != "SOL" || str(o, "side") != "sell" || num(o, "quantity") != 1000 {
		t.Errorf("execute order = %v", o)
	}
	// Running the printed command again replays the same answer.
	again := h.curl("acme", "POST", "/api/v1/hedging/execute", nil, "Idempotency-Key", "demo-1")
	expectStatus(t, again, http.StatusOK)
	if !bytes.Equal(again.body, r.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("re-run of execute: replayed %q, body %s", again.header.Get("Idempotent-Replayed"), again.body)
	}
	r = h.curl("acme", "POST", "/api/v1/hedging/close", nil)
	expectStatus(t, r, http.StatusOK)
	if closed := list(r.json(t), "closed"); len(closed) != 3 {
		t.Errorf("close with no body = %s", r.body)
	}
	r = h.curl("acme", "POST", "/api/v1/hedging/close", nil)
	expectStatus(t, r, http.StatusOK)
	if closed := list(r.json(t), "closed"); closed == nil || len(closed) != 0 || str(r.json(t), "status") != "nothing_to_close" || r.json(t)["execution_id"] != nil {
		t.Errorf("second close = %s", r.body)
	}
}

// A body sent without a JSON media type (curl -d without the -H) is 415,
// whatever it holds; an empty body needs no media type. With the header the
// JSON rules still hold.
func TestFormContentTypeIs415(t *testing.T) {
	h := newHarness(t)
	expectProblem(t, h.curl("acme", "POST", "/api/v1/ensemble/create", ptr(`{"name":"x","method":"majority"}`)), 415, "Content-Type: application/json")
	expectProblem(t, h.curl("acme", "POST", "/api/v1/ensemble/create", ptr(`name=x&method=majority`)), 415, "application/x-www-form-urlencoded")
	expectProblem(t, h.curl("acme", "POST", "/api/v1/ensemble/create", nil), 400, "empty")
	expectProblem(t, h.curl("acme", "POST", "/api/v1/hedging/execute", ptr(`{"target":1}`), "Idempotency-Key", "k"), 415, "Content-Type")
	expectProblem(t, h.curl("acme", "POST", "/api/v1/hedging/close", ptr(`{"all":true}`)), 415, "Content-Type")
	expectProblem(t, h.curlJSON("acme", "POST", "/api/v1/ensemble/create", ptr(`{"name":"x","method":"majority","colour":"red"}`)), 400, `"colour"`)
	expectProblem(t, h.curlJSON("acme", "POST", "/api/v1/hedging/close", ptr(`{"all":true}`)), 400, `"all"`)
	// An empty -d '' is an empty body: the recommended adjustments.
	r := h.curl("acme", "POST", "/api/v1/hedging/execute", ptr(``), "Idempotency-Key", "empty-d")
	expectStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"source":"recommended"`) {
		t.Errorf("execute with -d '' = %s", r.body)
	}
}

// Every printed curl that sends a body (-d) also sends the JSON media type,
// so the README and `make run` walkthroughs work as printed (without it the
// backend answers 415).
func TestPrintedCurlsSendJSON(t *testing.T) {
	for _, file := range []string{"../../README.md", "../../scripts/run.sh"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		commands, cur := []string{}, ""
		for _, line := range strings.Split(string(raw), "\n") {
			cur += line
			if strings.HasSuffix(strings.TrimSpace(line), "\\") {
				continue
			}
			commands = append(commands, cur)
			cur = ""
		}
		n := 0
		for _, c := range commands {
			if !strings.Contains(c, "curl ") || !strings.Contains(c, " -d ") {
				continue
			}
			n++
			if !strings.Contains(c, "Content-Type: application/json") {
				t.Errorf("%s: a curl with -d but no JSON Content-Type: %s", file, strings.TrimSpace(c))
			}
		}
		if n < 5 {
			t.Errorf("%s: found only %d curl commands with a body; is the scan broken?", file, n)
		}
	}
}
