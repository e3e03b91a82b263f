// Package hedging analyses a tenant's paper exchange account (spot balances
// hedged with perpetual shorts) and turns a target hedge ratio into orders.
// It is pure and deterministic: fixed prices, a fixed taker fee, fills at the
// table price. The formulas are documented in backend/README.md.
package hedging

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Prices maps an asset to its USD price.
type Prices map[string]float64

// DemoPrices is the fixed price table of the paper exchange.
var DemoPrices = Prices{
	"BTC": 60000,
	"ETH": 3000,
	"SOL": 150,
}

// TakerFeeBps is the fee on every fill, in basis points of the notional.
const TakerFeeBps = 5

// Policy is the hedge target.
type Policy struct {
	TargetRatio float64 // wanted −hedge/spot; in [0, 1]
	Tolerance   float64 // no order while |ratio − target| <= Tolerance; in [0, 0.5]
}

// DefaultPolicy hedges fully with a ±0.05 band.
var DefaultPolicy = Policy{TargetRatio: 1.0, Tolerance: 0.05}

// Validate checks the ranges of p.
func (p Policy) Validate() error {
	if !(p.TargetRatio >= 0 && p.TargetRatio <= 1) {
		return fmt.Errorf("target_ratio must be in [0, 1], got %v", p.TargetRatio)
	}
	if !(p.Tolerance >= 0 && p.Tolerance <= 0.5) {
		return fmt.Errorf("tolerance must be in [0, 0.5], got %v", p.Tolerance)
	}
	return nil
}

// Account is a tenant's paper exchange state.
type Account struct {
	Spot        map[string]float64 // asset -> quantity held
	Perp        map[string]float64 // asset -> perpetual position; negative = short
	CashUSD     float64            // fees are paid from here
	FeesPaidUSD float64
}

// Clone returns a deep copy of a.
func (a Account) Clone() Account {
	out := Account{Spot: map[string]float64{}, Perp: map[string]float64{}, CashUSD: a.CashUSD, FeesPaidUSD: a.FeesPaidUSD}
	for k, v := range a.Spot {
		out.Spot[k] = v
	}
	for k, v := range a.Perp {
		out.Perp[k] = v
	}
	return out
}

// Side of an order on the perpetual.
type Side string

// Sides.
const (
	Buy  Side = "buy"  // reduces a short
	Sell Side = "sell" // increases a short
)

// Order is an instruction on an asset's perpetual.
type Order struct {
	Asset    string
	Side     Side
	Quantity float64
}

// Fill is an executed order.
type Fill struct {
	Order
	Price       float64
	NotionalUSD float64
	FeeUSD      float64
}

// Exposure is one asset's line in an analysis.
type Exposure struct {
	Asset          string
	Price          float64
	SpotQty        float64
	SpotUSD        float64
	HedgeQty       float64 // perpetual position, negative = short
	HedgeUSD       float64
	NetDeltaQty    float64 // SpotQty + HedgeQty
	NetDeltaUSD    float64
	HedgeRatio     float64 // −HedgeQty / SpotQty; 0 when SpotQty is 0
	TargetHedgeQty float64 // −TargetRatio × SpotQty
	InBand         bool
}

// Adjustment is a recommended order with its estimated cost.
type Adjustment struct {
	Order
	Price          float64
	NotionalUSD    float64
	EstFeeUSD      float64
	ResultingRatio float64
}

// Analysis is the full picture of an account against a policy.
type Analysis struct {
	Policy      Policy
	Assets      []Exposure
	SpotUSD     float64
	HedgeUSD    float64
	NetDeltaUSD float64
	// HedgeRatio is the portfolio figure over hedgeable assets only (those
	// with spot): −Σ their HedgeUSD / SpotUSD; 0 when SpotUSD is 0. A short
	// on an asset without spot hedges nothing, so it is left out here and
	// shown as NakedShortUSD instead.
	HedgeRatio    float64
	NakedShortUSD float64 // Σ HedgeUSD of assets without spot (≤ 0)
	Adjustments   []Adjustment
}

// RoundQty rounds a quantity to 8 decimals (satoshi precision).
func RoundQty(x float64) float64 { return round(x, 1e8) }

// RoundUSD rounds an amount to cents.
func RoundUSD(x float64) float64 { return round(x, 100) }

func round(x, scale float64) float64 {
	r := math.Round(x*scale) / scale
	if r == 0 {
		return 0 // no "-0" in JSON
	}
	return r
}

func ratio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return round(num/den, 1e8)
}

// Analyze reports the exposure of every asset that has a spot balance or a
// hedge and the orders that bring each out-of-band asset to the target.
func Analyze(acct Account, prices Prices, p Policy) (Analysis, error) {
	if err := p.Validate(); err != nil {
		return Analysis{}, err
	}
	assets := map[string]bool{}
	for a, q := range acct.Spot {
		if q != 0 {
			assets[a] = true
		}
	}
	for a, q := range acct.Perp {
		if q != 0 {
			assets[a] = true
		}
	}
	names := make([]string, 0, len(assets))
	for a := range assets {
		names = append(names, a)
	}
	sort.Strings(names)
	an := Analysis{Policy: p, Assets: []Exposure{}, Adjustments: []Adjustment{}}
	var hedgeable float64
	for _, a := range names {
		price, ok := prices[a]
		if !ok {
			return Analysis{}, fmt.Errorf("%w: %q", ErrNoPrice, a)
		}
		spot, hedge := acct.Spot[a], acct.Perp[a]
		e := Exposure{
			Asset:          a,
			Price:          price,
			SpotQty:        RoundQty(spot),
			SpotUSD:        RoundUSD(spot * price),
			HedgeQty:       RoundQty(hedge),
			HedgeUSD:       RoundUSD(hedge * price),
			NetDeltaQty:    RoundQty(spot + hedge),
			NetDeltaUSD:    RoundUSD((spot + hedge) * price),
			HedgeRatio:     ratio(-hedge, spot),
			TargetHedgeQty: RoundQty(-p.TargetRatio * spot),
		}
		if spot > 0 {
			e.InBand = math.Abs(e.HedgeRatio-p.TargetRatio) <= p.Tolerance+1e-12
		} else {
			// Without spot there is nothing to hedge: any position is out of band.
			e.InBand = e.HedgeQty == 0
		}
		an.Assets = append(an.Assets, e)
		an.SpotUSD += e.SpotUSD
		an.HedgeUSD += e.HedgeUSD
		if spot > 0 {
			hedgeable += e.HedgeUSD
		} else {
			an.NakedShortUSD += e.HedgeUSD
		}
		if e.InBand {
			continue
		}
		delta := RoundQty(e.TargetHedgeQty - e.HedgeQty)
		if delta == 0 {
			continue
		}
		o := Order{Asset: a, Side: Buy, Quantity: delta}
		if delta < 0 {
			o = Order{Asset: a, Side: Sell, Quantity: -delta}
		}
		notional := RoundUSD(o.Quantity * price)
		an.Adjustments = append(an.Adjustments, Adjustment{
			Order:          o,
			Price:          price,
			NotionalUSD:    notional,
			EstFeeUSD:      fee(notional),
			ResultingRatio: ratio(-e.TargetHedgeQty, spot),
		})
	}
	an.SpotUSD = RoundUSD(an.SpotUSD)
	an.HedgeUSD = RoundUSD(an.HedgeUSD)
	an.NetDeltaUSD = RoundUSD(an.SpotUSD + an.HedgeUSD)
	an.NakedShortUSD = RoundUSD(an.NakedShortUSD)
	an.HedgeRatio = ratio(-RoundUSD(hedgeable), an.SpotUSD)
	return an, nil
}

func fee(notional float64) float64 { return RoundUSD(notional * TakerFeeBps / 10000) }

// ErrNoPrice: the price source has no price for an asset the account holds.
var ErrNoPrice = errors.New("no price for asset")

// ErrInvalidOrder marks an order the exchange refuses; the API answers 422.
var ErrInvalidOrder = errors.New("invalid order")

// Apply fills orders in sequence at the table price and returns the fills and
// the account after them. Orders must be on priced assets with a positive
// quantity, and a buy may not exceed the short it reduces: the paper exchange
// only holds hedges, never long perpetuals.
func Apply(acct Account, prices Prices, orders []Order) ([]Fill, Account, error) {
	after := acct.Clone()
	fills := make([]Fill, 0, len(orders))
	for i, o := range orders {
		f, err := fillOne(&after, prices, o, i)
		if err != nil {
			return nil, acct, err
		}
		fills = append(fills, f)
	}
	return fills, after, nil
}

// fillOne fills orders[i] = o on after, or says why it cannot.
func fillOne(after *Account, prices Prices, o Order, i int) (Fill, error) {
	price, ok := prices[o.Asset]
	if !ok {
		return Fill{}, fmt.Errorf("%w: orders[%d].asset %q is not traded; use one of %v", ErrInvalidOrder, i, o.Asset, prices.Assets())
	}
	q := RoundQty(o.Quantity)
	if !(q > 0) || math.IsInf(q, 0) {
		return Fill{}, fmt.Errorf("%w: orders[%d].quantity must be a finite number > 0 (8 decimals), got %v", ErrInvalidOrder, i, o.Quantity)
	}
	pos := after.Perp[o.Asset]
	switch o.Side {
	case Sell:
		pos = RoundQty(pos - q)
	case Buy:
		pos = RoundQty(pos + q)
		if pos > 0 {
			return Fill{}, fmt.Errorf("%w: orders[%d]: buying %v %s would turn the hedge into a long perpetual (short is %v); buy at most %v", ErrInvalidOrder, i, q, o.Asset, after.Perp[o.Asset], -after.Perp[o.Asset])
		}
	default:
		return Fill{}, fmt.Errorf("%w: orders[%d].side must be \"buy\" or \"sell\", got %q", ErrInvalidOrder, i, o.Side)
	}
	after.Perp[o.Asset] = pos
	notional := RoundUSD(q * price)
	f := Fill{Order: Order{Asset: o.Asset, Side: o.Side, Quantity: q}, Price: price, NotionalUSD: notional, FeeUSD: fee(notional)}
	after.CashUSD = RoundUSD(after.CashUSD - f.FeeUSD)
	after.FeesPaidUSD = RoundUSD(after.FeesPaidUSD + f.FeeUSD)
	return f, nil
}

// CloseOrders returns the buys that flatten every short, by asset name.
func CloseOrders(acct Account) []Order {
	var out []Order
	for a, q := range acct.Perp {
		if RoundQty(q) < 0 {
			out = append(out, Order{Asset: a, Side: Buy, Quantity: -RoundQty(q)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Asset < out[j].Asset })
	return out
}

// Orders returns the orders of the recommended adjustments.
func (an Analysis) Orders() []Order {
	out := make([]Order, len(an.Adjustments))
	for i, a := range an.Adjustments {
		out[i] = a.Order
	}
	return out
}

// Assets lists the priced assets, sorted.
func (p Prices) Assets() []string {
	out := make([]string, 0, len(p))
	for a := range p {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// DemoAccounts returns the paper exchange accounts `backend --seed-demo`
// creates, by tenant. They are chosen so an analysis has something to say:
// acme is inside the band on BTC (0.96) and ETH (1.0) but has SOL unhedged;
// globex is over-hedged on BTC (1.125), under-hedged on SOL (0.4) and holds
// an ETH short with no ETH to hedge.
func DemoAccounts() map[string]Account {
	return map[string]Account{
		"acme": {
			Spot:    map[string]float64{"BTC": 2.5, "ETH": 40, "SOL": 1000},
			Perp:    map[string]float64{"BTC": -2.4, "ETH": -40},
			CashUSD: 250000,
		},
		"globex": {
			Spot:    map[string]float64{"BTC": 0.8, "SOL": 5000},
			Perp:    map[string]float64{"BTC": -0.9, "ETH": -5, "SOL": -2000},
			CashUSD: 100000,
		},
	}
}
