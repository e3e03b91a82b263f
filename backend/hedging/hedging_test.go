package hedging

import (
	"errors"
	"math"
	"testing"
)

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.10g, want %.10g", name, got, want)
	}
}

func TestAnalyzeAcme(t *testing.T) {
	an, err := Analyze(DemoAccounts()["acme"], DemoPrices, DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if len(an.Assets) != 3 {
		t.Fatalf("assets = %+v", an.Assets)
	}
	btc, eth, sol := an.Assets[0], an.Assets[1], an.Assets[2]
	// BTC: 2.5 spot, −2.4 perp at 60 000 → 150 000 / −144 000, net 0.1 BTC = 6 000, ratio 0.96 (in band).
	near(t, "btc spot usd", btc.SpotUSD, 150000)
	near(t, "btc hedge usd", btc.HedgeUSD, -144000)
	near(t, "btc net qty", btc.NetDeltaQty, 0.1)
	near(t, "btc net usd", btc.NetDeltaUSD, 6000)
	near(t, "btc ratio", btc.HedgeRatio, 0.96)
	if !btc.InBand || !eth.InBand || sol.InBand {
		t.Errorf("in band: btc %v eth %v sol %v", btc.InBand, eth.InBand, sol.InBand)
	}
	near(t, "eth ratio", eth.HedgeRatio, 1)
	near(t, "sol ratio", sol.HedgeRatio, 0)
	// Totals: spot 420 000, hedge −264 000, net 156 000, ratio 264/420.
	near(t, "spot usd", an.SpotUSD, 420000)
	near(t, "hedge usd", an.HedgeUSD, -264000)
	near(t, "net usd", an.NetDeltaUSD, 156000)
	near(t, "ratio", an.HedgeRatio, 0.62857143)
	// One adjustment: sell 1 000 SOL perp, 150 000 notional, fee 5 bps = 75.
	if len(an.Adjustments) != 1 {
		t.Fatalf("adjustments = %+v", an.Adjustments)
	}
	a := an.Adjustments[0]
	if a.Asset != "SOL" || a.Side != Sell {
		t.Errorf("adjustment = %+v", a)
	}
	near(t, "sol qty", a.Quantity, 1000)
	near(t, "sol notional", a.NotionalUSD, 150000)
	near(t, "sol fee", a.EstFeeUSD, 75)
	near(t, "sol resulting ratio", a.ResultingRatio, 1)
}

func TestAnalyzeGlobex(t *testing.T) {
	an, err := Analyze(DemoAccounts()["globex"], DemoPrices, DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		asset         string
		side          Side
		qty, notional float64
		fee           float64
	}{
		{"BTC", Buy, 0.1, 6000, 3},       // ratio 1.125 → back to 0.8 short
		{"ETH", Buy, 5, 15000, 7.5},      // no spot: close the 5 ETH short
		{"SOL", Sell, 3000, 450000, 225}, // ratio 0.4 → 5 000 short
	}
	if len(an.Adjustments) != len(want) {
		t.Fatalf("adjustments = %+v", an.Adjustments)
	}
	for i, w := range want {
		a := an.Adjustments[i]
		if a.Asset != w.asset || a.Side != w.side {
			t.Errorf("[%d] = %+v, want %+v", i, a, w)
		}
		near(t, w.asset+" qty", a.Quantity, w.qty)
		near(t, w.asset+" notional", a.NotionalUSD, w.notional)
		near(t, w.asset+" fee", a.EstFeeUSD, w.fee)
	}
	near(t, "btc ratio", an.Assets[0].HedgeRatio, 1.125)
}

func TestAnalyzePolicy(t *testing.T) {
	// Target 0.5: BTC (0.96) must come down to a 1.25 short: buy 1.15.
	an, err := Analyze(DemoAccounts()["acme"], DemoPrices, Policy{TargetRatio: 0.5, Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if len(an.Adjustments) != 3 {
		t.Fatalf("adjustments = %+v", an.Adjustments)
	}
	near(t, "btc buy", an.Adjustments[0].Quantity, 1.15)
	near(t, "eth buy", an.Adjustments[1].Quantity, 20)
	near(t, "sol sell", an.Adjustments[2].Quantity, 500)
	// A wide band swallows the BTC gap at target 1.
	an, _ = Analyze(Account{Spot: map[string]float64{"BTC": 1}, Perp: map[string]float64{"BTC": -0.9}}, DemoPrices, Policy{TargetRatio: 1, Tolerance: 0.1})
	if len(an.Adjustments) != 0 {
		t.Errorf("within 0.1 band: %+v", an.Adjustments)
	}
	for _, p := range []Policy{{-0.1, 0.05}, {1.1, 0.05}, {1, -0.01}, {1, 0.6}} {
		if p.Validate() == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
}

func TestApply(t *testing.T) {
	acct := DemoAccounts()["acme"]
	an, _ := Analyze(acct, DemoPrices, DefaultPolicy)
	fills, after, err := Apply(acct, DemoPrices, an.Orders())
	if err != nil {
		t.Fatal(err)
	}
	if len(fills) != 1 || after.Perp["SOL"] != -1000 {
		t.Fatalf("fills %+v after %+v", fills, after.Perp)
	}
	near(t, "cash", after.CashUSD, 250000-75)
	near(t, "fees", after.FeesPaidUSD, 75)
	if acct.Perp["SOL"] != 0 {
		t.Error("Apply mutated its input")
	}
	// After executing, the analysis is clean.
	an, _ = Analyze(after, DemoPrices, DefaultPolicy)
	if len(an.Adjustments) != 0 {
		t.Errorf("after execute: %+v", an.Adjustments)
	}
	// Closing buys back every short, by asset.
	closes := CloseOrders(after)
	if len(closes) != 3 || closes[0].Asset != "BTC" || closes[0].Quantity != 2.4 || closes[2].Quantity != 1000 {
		t.Errorf("close orders = %+v", closes)
	}
	_, flat, err := Apply(after, DemoPrices, closes)
	if err != nil {
		t.Fatal(err)
	}
	if len(CloseOrders(flat)) != 0 {
		t.Error("still shorts after close")
	}

	for _, bad := range [][]Order{
		{{Asset: "DOGE", Side: Sell, Quantity: 1}},
		{{Asset: "BTC", Side: Sell, Quantity: 0}},
		{{Asset: "BTC", Side: "short", Quantity: 1}},
		{{Asset: "BTC", Side: Buy, Quantity: 2.41}}, // would go long
	} {
		if _, _, err := Apply(acct, DemoPrices, bad); !errors.Is(err, ErrInvalidOrder) {
			t.Errorf("%+v: err = %v", bad, err)
		}
	}
}
