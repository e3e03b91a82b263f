package hedging

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, body string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// The price file is re-read when it changes (size or modification time), a
// broken version keeps the last good prices, and a fixed one is read again.
func TestFilePricesReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.json")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeFile(t, path, `{"BTC": 60000, "ETH": 3000}`, t0)
	fp, err := NewFilePrices(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := fp.Prices(); p["BTC"] != 60000 || len(p) != 2 {
		t.Fatalf("first read = %v", p)
	}
	// Same size, new mtime: re-read.
	writeFile(t, path, `{"BTC": 61000, "ETH": 3000}`, t0.Add(time.Second))
	if p, _ := fp.Prices(); p["BTC"] != 61000 {
		t.Errorf("after a change of content and mtime = %v", p)
	}
	// New size, same mtime: re-read too.
	writeFile(t, path, `{"BTC": 62000.5, "ETH": 3000, "SOL": 150}`, t0.Add(time.Second))
	if p, _ := fp.Prices(); p["BTC"] != 62000.5 || p["SOL"] != 150 {
		t.Errorf("after a change of size = %v", p)
	}
	// Broken: the last good prices stay, Check says why.
	writeFile(t, path, `{"BTC": -1}`, t0.Add(2*time.Second))
	if p, err := fp.Prices(); err != nil || p["BTC"] != 62000.5 {
		t.Errorf("broken file: %v %v", p, err)
	}
	if err := fp.Check(); err == nil || !strings.Contains(err.Error(), "price of BTC") {
		t.Errorf("Check = %v", err)
	}
	// Removed: still the last good prices.
	_ = os.Remove(path)
	if p, err := fp.Prices(); err != nil || p["BTC"] != 62000.5 || fp.Check() == nil {
		t.Errorf("removed file: %v %v %v", p, err, fp.Check())
	}
	writeFile(t, path, `{"BTC": 63000}`, t0.Add(3*time.Second))
	if p, _ := fp.Prices(); p["BTC"] != 63000 || fp.Check() != nil {
		t.Errorf("fixed file = %v, %v", p, fp.Check())
	}
	var src PriceSource = StaticPrices(DemoPrices)
	if p, err := src.Prices(); err != nil || p["SOL"] != 150 {
		t.Errorf("static = %v %v", p, err)
	}
}

func TestParsePricesRefuses(t *testing.T) {
	for body, want := range map[string]string{
		`{"BTC": 1, "BTC": 2}`: "twice",
		`{"btc": 1}`:           "names are",
		`{"BTC": 0}`:           "> 0",
		`{"BTC": 1e10}`:        "<= 1e+09",
		`{}`:                   "no prices",
		`[1]`:                  "JSON object",
		`{"BTC": "1"}`:         "cannot unmarshal",
		`{"BTC": 1} x`:         "after the JSON",
		``:                     "EOF",
	} {
		if _, err := ParsePrices([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if _, err := NewFilePrices(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
	if ValidAsset("") || ValidAsset(strings.Repeat("A", 17)) || !ValidAsset("BTC2") {
		t.Error("ValidAsset")
	}
}

func TestLoadLimitsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "limits.json")
	writeFile(t, path, `{"default": {"max_order_notional_usd": 1e7},
		"tenants": {"acme": {"max_position_notional_usd": 2e8}}}`, time.Now())
	lt, err := LoadLimitsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := lt.For("globex"); d.MaxOrderNotionalUSD != 1e7 || d.MaxOrderQty != DefaultLimits.MaxOrderQty {
		t.Errorf("default = %+v", d)
	}
	if a := lt.For("acme"); a.MaxPositionNotionalUSD != 2e8 || a.MaxOrderNotionalUSD != 1e7 {
		t.Errorf("acme = %+v (a tenant starts from the file's default)", a)
	}
	for body, want := range map[string]string{
		`{"default": {"max_order_qty": 0}}`:            "max_order_qty must be a positive finite number",
		`{"tenants": {"acme": {"max_cash_usd": -1}}}`:  "tenants.acme: max_cash_usd",
		`{"defaults": {}}`:                             "unknown field",
		`{"tenants": {"acme": {"max_order": 1}}}`:      "unknown field",
		`{"default": {"max_spot_qty": 1}} trailing`:    "after the JSON",
		`{"default": {"max_order_qty": 1}, "x": true}`: "unknown field",
	} {
		writeFile(t, path, body, time.Now())
		if _, err := LoadLimitsFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
	if _, err := LoadLimitsFile(filepath.Join(dir, "none.json")); err == nil {
		t.Error("missing file accepted")
	}
	if DefaultLimitsTable().For("x") != DefaultLimits {
		t.Error("DefaultLimitsTable")
	}
}

func TestExecuteAndFiniteAccounts(t *testing.T) {
	acct := Account{Spot: map[string]float64{"BTC": 2}, Perp: map[string]float64{"BTC": -1}, CashUSD: 1000}
	// Two orders checked in sequence: the second sees the first's short.
	_, _, err := Execute(acct, DemoPrices, []Order{{"BTC", Sell, 1}, {"BTC", Sell, 0.2}}, DefaultLimits, DefaultPolicy)
	if !errors.Is(err, ErrRiskLimit) || !strings.Contains(err.Error(), "orders[1]") || !strings.Contains(err.Error(), "sell at most 0.1") {
		t.Errorf("second order over spot: %v", err)
	}
	fills, after, err := Execute(acct, DemoPrices, []Order{{"BTC", Sell, 1}, {"BTC", Buy, 0.5}}, DefaultLimits, DefaultPolicy)
	if err != nil || len(fills) != 2 || after.Perp["BTC"] != -1.5 || acct.Perp["BTC"] != -1 {
		t.Errorf("sell then buy: %v %+v %v (input must not change)", fills, after, err)
	}
	if err := (Account{CashUSD: 1e16}).CheckFinite(); !errors.Is(err, ErrRiskLimit) {
		t.Errorf("1e16 cash: %v", err)
	}
	for _, a := range []Account{{FeesPaidUSD: 2e15}, {Spot: map[string]float64{"X": 1e300}}, {Perp: map[string]float64{"X": -1e300}}} {
		if a.CheckFinite() == nil {
			t.Errorf("%+v passed CheckFinite", a)
		}
	}
	if err := (Limits{MaxOrderQty: 1, MaxOrderNotionalUSD: 1, MaxPositionNotionalUSD: 1, MaxCashUSD: 1, MaxSpotQty: 1}).Validate(); err != nil {
		t.Error(err)
	}
}

// The portfolio ratio counts hedgeable assets only; a short without spot is
// reported apart.
func TestAnalyzeNakedShort(t *testing.T) {
	an, err := Analyze(DemoAccounts()["globex"], DemoPrices, DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if an.NakedShortUSD != -15000 || an.HedgeRatio != 0.44360902 || an.HedgeUSD != -369000 {
		t.Errorf("globex totals: naked %v ratio %v hedge %v", an.NakedShortUSD, an.HedgeRatio, an.HedgeUSD)
	}
	if _, err := Analyze(Account{Spot: map[string]float64{"DOGE": 1}}, DemoPrices, DefaultPolicy); !errors.Is(err, ErrNoPrice) {
		t.Errorf("unpriced: %v", err)
	}
}
