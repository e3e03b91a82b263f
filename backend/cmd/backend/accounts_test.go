package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
)

func accounts(t *testing.T, e env, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"accounts"}, args...), e.lookup, &out, &errb)
	return code, out.String(), errb.String()
}

// `backend accounts set` provisions any tenant; the running API then
// analyses it like a demo tenant.
func TestAccountsCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "b.db")
	code, out, errs := accounts(t, env{}, "set", "--db", db, "--tenant", "initech", "--spot", "BTC=2.5", "--spot", "ETH=40,SOL=0", "--cash", "100000")
	if code != exitOK {
		t.Fatalf("set: exit %d: %s", code, errs)
	}
	var got struct {
		TenantID string             `json:"tenant_id"`
		CashUSD  float64            `json:"cash_usd"`
		Spot     map[string]float64 `json:"spot"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.TenantID != "initech" || got.CashUSD != 100000 || got.Spot["BTC"] != 2.5 || got.Spot["ETH"] != 40 || len(got.Spot) != 2 {
		t.Errorf("set printed %s (%v)", out, err)
	}
	// The environment names the database too; show reads it back.
	code, out, errs = accounts(t, env{"TENANTGATE_BACKEND_DB": db}, "show", "--tenant", "initech")
	if code != exitOK || !strings.Contains(out, `"BTC": 2.5`) {
		t.Errorf("show: %d %s %s", code, out, errs)
	}
	// ETH=0 removes ETH; cash is kept.
	code, out, _ = accounts(t, env{}, "set", "--db", db, "--tenant", "initech", "--spot", "ETH=0")
	if code != exitOK || strings.Contains(out, "ETH") || !strings.Contains(out, `"cash_usd": 100000`) {
		t.Errorf("remove ETH: %d %s", code, out)
	}
	// Another tenant has no account until one is set.
	if code, _, errs := accounts(t, env{}, "show", "--db", db, "--tenant", "acme"); code != exitFailure || !strings.Contains(errs, "no exchange account") {
		t.Errorf("show acme: %d %s", code, errs)
	}

	prices := filepath.Join(dir, "prices.json")
	if err := os.WriteFile(prices, []byte(`{"BTC": 60000, "DOGE": 0.1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	limits := filepath.Join(dir, "limits.json")
	if err := os.WriteFile(limits, []byte(`{"tenants": {"initech": {"max_spot_qty": 10, "max_cash_usd": 1000}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := accounts(t, env{}, "set", "--db", db, "--tenant", "initech", "--spot", "DOGE=5", "--prices", prices); code != exitOK {
		t.Errorf("DOGE with a price file: %d %s", code, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "--db", db, "--tenant", ".."}, "--tenant"},
		{[]string{"set", "--db", db}, "--tenant"},
		{[]string{"set", "--db", db, "--tenant", "t", "--spot", "DOGE=1"}, "no price for DOGE"},
		{[]string{"set", "--db", db, "--tenant", "t", "--spot", "BTC=-1"}, "finite number >= 0"},
		{[]string{"set", "--db", db, "--tenant", "t", "--spot", "BTC=NaN"}, "finite number >= 0"},
		{[]string{"set", "--db", db, "--tenant", "t", "--spot", "BTC"}, "ASSET=QUANTITY"},
		{[]string{"set", "--db", db, "--tenant", "t", "--spot", "btc=1"}, "1-16 characters"},
		{[]string{"set", "--db", db, "--tenant", "t", "--spot", "BTC=1,BTC=2"}, "twice"},
		{[]string{"set", "--db", db, "--tenant", "t", "--cash", "-5"}, "--cash"},
		{[]string{"set", "--db", db, "--tenant", "t", "--cash", "1e13"}, "--cash"},
		{[]string{"set", "--db", db, "--tenant", "initech", "--spot", "BTC=11", "--risk-limits", limits}, "over the limit of 10"},
		{[]string{"set", "--db", db, "--tenant", "initech", "--cash", "1001", "--risk-limits", limits}, "[0, 1000]"},
		{[]string{"set", "--db", db, "--tenant", "t", "--prices", filepath.Join(dir, "none.json")}, "--prices"},
		{[]string{"set", "--db", db, "--tenant", "t", "--risk-limits", filepath.Join(dir, "none.json")}, "--risk-limits"},
		{[]string{"delete"}, "usage: backend accounts"},
		{nil, "usage: backend accounts"},
		{[]string{"set", "--bogus"}, "flag provided but not defined"},
	} {
		if code, _, errs := accounts(t, env{}, tc.args...); code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := accounts(t, env{}, "set", "--db", dir, "--tenant", "t"); code != exitFailure || !strings.Contains(errs, "--db") {
		t.Errorf("db is a directory: %d %s", code, errs)
	}
	if code, _, _ := accounts(t, env{}, "set", "-h"); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
}

// --prices and --risk-limits reach the API; an unreadable file stops the start.
func TestServeWithPriceAndLimitsFiles(t *testing.T) {
	dir := t.TempDir()
	keyPath, signer := writeKey(t, dir)
	db := filepath.Join(dir, "b.db")
	prices := filepath.Join(dir, "prices.json")
	limits := filepath.Join(dir, "limits.json")
	if err := os.WriteFile(prices, []byte(`{"BTC": 70000, "ETH": 3500, "SOL": 200}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(limits, []byte(`{"tenants": {"acme": {"max_order_qty": 0.5}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	in := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", db, "--assertion-key", keyPath, "--seed-demo", "--prices", prices, "--risk-limits", limits}, env{})
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}
	status, m, err := c.do(in.url, "acme", "GET", "/api/v1/hedging/analysis", nil)
	if err != nil || status != http.StatusOK || m["prices"].(map[string]any)["BTC"] != 70000.0 {
		t.Fatalf("analysis with the price file: %d %v %v", status, m["prices"], err)
	}
	status, m, err = c.doKey(in.url, "acme", "POST", "/api/v1/hedging/execute", map[string]any{"orders": []map[string]any{{"asset": "SOL", "side": "sell", "quantity": 1}}}, "lim")
	if err != nil || status != http.StatusUnprocessableEntity || !strings.Contains(m["detail"].(string), "0.5 units") {
		t.Errorf("acme's order limit: %d %v %v", status, m, err)
	}
	for _, args := range [][]string{{"--prices", filepath.Join(dir, "none.json")}, {"--risk-limits", filepath.Join(dir, "none.json")}} {
		var errb syncBuffer
		code := run(context.Background(), append([]string{"--assertion-key", keyPath, "--db", filepath.Join(dir, "c.db")}, args...), env{}.lookup, io.Discard, &errb)
		if code != exitFailure || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("%v: exit %d: %s", args, code, errb.String())
		}
	}
}

// The sweep deletes expired idempotency records at start.
func TestSweepAtStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	acme := store.MustTenantID("acme")
	if _, err := st.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], time.Now()); err != nil {
		t.Fatal(err)
	}
	nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
	render := func(store.Execution) (store.Response, error) {
		return store.Response{Status: 200, ContentType: "application/json", Body: []byte("{}")}, nil
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, k := range []string{"old-1", "old-2"} {
		if _, _, err := st.ExecuteOnce(ctx, acme, k, "h", old, old.Add(-time.Hour), nop, render); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.ExecuteOnce(ctx, acme, "new", "h", time.Now(), old, nop, render); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sweepIdempotencyKeys(ctx, st, 24*time.Hour, newLogger(0, io.Discard)); close(done) }()
	// The first pass runs at once; a second "old" replay then trades afresh
	// (not replayed) only if the record is gone, which is how we see it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := st.SweepIdempotencyKeys(ctx, time.Now().Add(-24*time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break // nothing left to sweep: the goroutine (or this call) took both
		}
		if time.Now().After(deadline) {
			t.Fatal("old keys still there")
		}
	}
	_, replayed, err := st.ExecuteOnce(ctx, acme, "new", "h", time.Now(), old, nop, render)
	if err != nil || !replayed {
		t.Errorf("the fresh key was swept: replayed=%v %v", replayed, err)
	}
	cancel()
	<-done
}
